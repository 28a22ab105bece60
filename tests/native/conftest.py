"""Tests marked ``slow`` (the long fuzz run) are collected only when ``-m`` names them,
e.g. ``pytest -m slow tests/native/test_fuzz.py``; a plain run leaves them out."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("markexpr") or ""):
        return
    here = __file__.rsplit("/", 1)[0]
    slow = [item for item in items if item.get_closest_marker("slow") and str(item.fspath).startswith(here)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]
