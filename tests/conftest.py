"""Suite-wide pytest hooks.

CUDA gate: tests marked ``needs_cuda`` are skipped when msce's CUDA path cannot run here
(the reason says why: built without CUDA, no driver, no device, CPU-only torch). With
``MSCE_REQUIRE_CUDA=1`` (GPU machines, GPU CI) those skips become failures, so a broken
driver or a CPU-only build cannot pass as green.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

_NEEDS_CUDA_PREFIX = "needs CUDA: "


@functools.lru_cache(maxsize=1)
def _msce_cuda_status() -> tuple[bool, str]:
    try:
        import msce
    except ImportError as exc:  # the native build is missing: say so instead of erroring per test
        return False, f"msce cannot be imported ({exc})"
    return msce.cuda_available()


def _msce_require_cuda() -> bool:
    return os.environ.get("MSCE_REQUIRE_CUDA", "").strip() not in ("", "0")


@pytest.hookimpl(specname="pytest_runtest_setup")
def pytest_runtest_setup_msce_cuda(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_cuda") is None:
        return
    ok, why = _msce_cuda_status()
    if not ok:
        pytest.skip(_NEEDS_CUDA_PREFIX + why)


@pytest.hookimpl(hookwrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_msce_cuda(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and _msce_require_cuda() and item.get_closest_marker("needs_cuda")):
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not reason.startswith("Skipped: " + _NEEDS_CUDA_PREFIX) and not reason.startswith(_NEEDS_CUDA_PREFIX):
        return  # e.g. "no NVDEC": a property of the machine, not a missing GPU
    report.outcome = "failed"
    report.longrepr = f"MSCE_REQUIRE_CUDA=1 but this CUDA test was skipped: {reason}"


# ---- generated media ----------------------------------------------------------------
# Clips from tests/media.py, built once per content of that file into
# tests/.media/<hash>/ and reused by later runs (make_media keeps existing files and
# writes new ones atomically, so concurrent sessions can share the directory).

_TESTS_DIR = Path(__file__).resolve().parent
_MEDIA_ROOT = _TESTS_DIR / ".media"


def _load_media_module():
    spec = importlib.util.spec_from_file_location("msce_test_media", _TESTS_DIR / "media.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def media() -> dict[str, Path]:
    """``{name: path}`` of the test clips (tests/media.py); skips when ffmpeg is missing.
    A clip this ffmpeg cannot encode is absent from the dict (see ``media_clip``)."""
    module = _load_media_module()
    if not module.ffmpeg_available():
        pytest.skip("the ffmpeg command is needed to generate test media")
    digest = hashlib.sha256((_TESTS_DIR / "media.py").read_bytes()).hexdigest()[:16]
    return module.make_media(_MEDIA_ROOT / digest)


@pytest.fixture(scope="session")
def media_clip(media):
    """``media_clip(name) -> Path``, skipping the test when this ffmpeg could not make it."""

    def get(name: str) -> Path:
        if name not in media:
            pytest.skip(f"test clip {name!r} needs an encoder this ffmpeg lacks")
        return media[name]

    return get
