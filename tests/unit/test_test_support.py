"""The suite's own guards: which skips MSCE_STRICT / MSCE_REQUIRE_CUDA refuse (tests/_deps.py),
and what the cache key of the generated clips covers (tests/media.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from _deps import GPU, MISSING, NEEDS_CUDA, refusal, require_module, require_tool

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("reason, needs_cuda, strict, require_cuda, refused", [
    # dependency skips: allowed on a developer machine, failures under MSCE_STRICT
    (MISSING + "the ffmpeg command", False, False, False, False),
    (MISSING + "the ffmpeg command", False, True, False, True),
    ("could not import 'av': No module named 'av'", False, True, False, True),  # a bare importorskip
    ("msce built without FFmpeg", False, True, False, True),  # a skipif without the helpers
    # GPU skips: allowed under MSCE_STRICT; needs_cuda ones fail under MSCE_REQUIRE_CUDA
    (NEEDS_CUDA + "no NVIDIA driver", True, True, False, False),
    (NEEDS_CUDA + "no NVIDIA driver", True, True, True, True),
    (NEEDS_CUDA + "no NVIDIA driver", False, False, True, False),
    (GPU + "no NVDEC here", True, True, True, False),
    (GPU + "CUDA is available here", False, True, False, False),
])
def test_which_skips_fail(reason, needs_cuda, strict, require_cuda, refused):
    why = refusal(reason, needs_cuda=needs_cuda, strict=strict, require_cuda=require_cuda)
    assert (why is not None) == refused
    if refused:
        assert reason in why


def test_require_skips_with_the_missing_prefix(monkeypatch):
    monkeypatch.setitem(sys.modules, "msce_no_such_module", None)  # import fails: ModuleNotFoundError
    with pytest.raises(pytest.skip.Exception, match="^" + MISSING + "Python module 'msce_no_such_module'") as info:
        require_module("msce_no_such_module")
    assert info.value.allow_module_level  # `x = require_module(...)` at import skips the module
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.skip.Exception, match="^" + MISSING + "the ffprobe command"):
        require_tool("ffprobe")


def test_require_module_does_not_hide_a_broken_package(tmp_path, monkeypatch):
    """A package that is installed but fails to import (here: it imports a module that does not
    exist) is an error, not a skip."""
    (tmp_path / "msce_broken_pkg.py").write_text("import msce_missing_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="msce_missing_inner_dependency"):
        require_module("msce_broken_pkg")


def _media_module():
    spec = importlib.util.spec_from_file_location("msce_test_media_key", TESTS / "media.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_media_cache_key_covers_ffmpeg_and_pyav():
    key = _media_module().cache_key
    base = key("ffmpeg version 5.1.9-0+deb12u1", "PyAV 18.1.0 (libavcodec 62.28.102)")
    assert base == key("ffmpeg version 5.1.9-0+deb12u1", "PyAV 18.1.0 (libavcodec 62.28.102)")
    assert base != key("ffmpeg version 6.1.1", "PyAV 18.1.0 (libavcodec 62.28.102)")
    assert base != key("ffmpeg version 5.1.9-0+deb12u1", "PyAV 17.0.0 (libavcodec 62.28.102)")
    assert base != key("ffmpeg version 5.1.9-0+deb12u1", "PyAV 18.1.0 (libavcodec 61.19.100)")
    assert base != key("ffmpeg version 5.1.9-0+deb12u1PyAV 18.1.0", " (libavcodec 62.28.102)")
