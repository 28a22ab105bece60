"""The two kinds of skip this suite may take, by their reason's prefix (enforced in tests/conftest.py).

* ``MISSING`` (``require_module``, ``require_tool``, ``missing``): something the tests need is
  not installed here: a Python package, the ffmpeg/ffprobe commands, an encoder, an FFmpeg-enabled
  build of msce. A skip on a developer machine; a failure under ``MSCE_STRICT=1`` (CI).
* ``NEEDS_CUDA`` (the ``needs_cuda`` marker) and ``GPU``: the answer depends on the GPU machine
  itself (no usable GPU, no NVDEC, CUDA present so a no-CUDA check has nothing to check). Allowed
  under ``MSCE_STRICT=1``; ``MSCE_REQUIRE_CUDA=1`` fails the ``needs_cuda`` ones too.

Under ``MSCE_STRICT=1`` a skip whose reason starts with neither GPU prefix fails, whatever raised
it (``pytest.importorskip``, a ``skipif``, a bare ``pytest.skip``): a skip cannot slip past CI by
not going through these helpers. The helpers give the reasons one form, with what to install.
"""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

MISSING = "missing dependency: "
NEEDS_CUDA = "needs CUDA: "
GPU = "GPU: "

TEST_EXTRAS = "pip install -e '.[test]'"
APT_FFMPEG = "apt-get install ffmpeg (make sysdeps)"


def missing(what: str) -> NoReturn:
    """Skip the test, or the whole module when called at import: `what` (a package, a command,
    an encoder) is not installed here."""
    pytest.skip(MISSING + what, allow_module_level=True)


def require_module(name: str, install: str = TEST_EXTRAS) -> ModuleType:
    """``import name``, or skip when that module (or its package) is not installed.

    Any other import failure (the package is there but broken, or one of its own
    dependencies is missing) propagates: that is a broken environment, not an absent extra.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise
        missing(f"Python module {name!r} ({install})")


def require_tool(name: str, install: str = APT_FFMPEG) -> str:
    """Path of the command `name` on PATH, or skip when it is not installed."""
    path = shutil.which(name)
    if path is None:
        missing(f"the {name} command ({install})")
    return path


def refusal(reason: str, *, needs_cuda: bool, strict: bool, require_cuda: bool) -> str | None:
    """Why a skip with this reason must count as a failure, or None when it may stand.

    `needs_cuda`: the test carries the ``needs_cuda`` marker; `strict`: ``MSCE_STRICT=1``;
    `require_cuda`: ``MSCE_REQUIRE_CUDA=1``.
    """
    if reason.startswith(NEEDS_CUDA):
        if needs_cuda and require_cuda:
            return f"MSCE_REQUIRE_CUDA=1 but this CUDA test was skipped: {reason}"
        return None
    if reason.startswith(GPU):  # e.g. "no NVDEC": a property of the GPU machine
        return None
    if strict:
        return f"MSCE_STRICT=1 allows only GPU skips, and this one is not: {reason}"
    return None
