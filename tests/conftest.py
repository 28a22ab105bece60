"""Suite-wide pytest hooks.

Skips come in two kinds, told apart by their reason's prefix (tests/_deps.py):

* GPU: tests marked ``needs_cuda`` are skipped when msce's CUDA path cannot run here (reason
  "needs CUDA: ...": built without CUDA, no driver, no device, CPU-only torch), and a few skips
  depend on the GPU machine itself (reason "GPU: ...": no NVDEC, CUDA present so a check of the
  no-CUDA errors has nothing to check). With ``MSCE_REQUIRE_CUDA=1`` (GPU machines, GPU CI) the
  ``needs_cuda`` skips become failures, so a broken driver or a CPU-only build cannot pass as green.
* Everything else is a missing dependency: the ffmpeg/ffprobe commands, an encoder the test
  clips need (libx265, libvpx, libvpx-vp9, libaom-av1, mpeg2video, ...), an FFmpeg-enabled msce
  build, PyAV, or an optional extra (transformers, peft, mediapipe, onnxruntime, cv2, sklearn,
  scipy, wordfreq, skimage, ...). ``MSCE_STRICT=1`` (set by ``.ci/run``) turns every such skip,
  at collection or at run time, into a failure: in CI the only skips left are GPU ones.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from _deps import NEEDS_CUDA, missing, refusal, require_tool


@functools.lru_cache(maxsize=1)
def _msce_cuda_status() -> tuple[bool, str]:
    try:
        import msce
    except ImportError as exc:  # the native build is missing: say so instead of erroring per test
        return False, f"msce cannot be imported ({exc})"
    return msce.cuda_available()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


@pytest.hookimpl(specname="pytest_runtest_setup")
def pytest_runtest_setup_msce_cuda(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_cuda") is None:
        return
    ok, why = _msce_cuda_status()
    if not ok:
        pytest.skip(NEEDS_CUDA + why)


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_refused_skip(report: pytest.CollectReport | pytest.TestReport, needs_cuda: bool) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    why = refusal(_skip_reason(report), needs_cuda=needs_cuda, strict=_env_flag("MSCE_STRICT"),
                  require_cuda=_env_flag("MSCE_REQUIRE_CUDA"))
    if why is not None:
        report.outcome = "failed"
        report.longrepr = why


@pytest.hookimpl(hookwrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_msce_skips(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    _fail_refused_skip(outcome.get_result(), item.get_closest_marker("needs_cuda") is not None)


@pytest.hookimpl(hookwrapper=True, specname="pytest_make_collect_report")
def pytest_make_collect_report_msce_skips(collector: pytest.Collector):
    """Module-level skips (``pytest.importorskip`` at import) happen while collecting."""
    outcome = yield
    _fail_refused_skip(outcome.get_result(), needs_cuda=False)


# ---- generated media ----------------------------------------------------------------
# Clips from tests/media.py, built once per cache key into tests/.media/<key>/ and reused
# by later runs (make_media keeps existing files and writes new ones atomically, so
# concurrent sessions can share the directory). The key covers what the clips and their
# checks depend on: media.py itself, the ffmpeg that encodes them, and the PyAV with its
# bundled libav* that the decode tests compare msce against.

_TESTS_DIR = Path(__file__).resolve().parent
_MEDIA_ROOT = _TESTS_DIR / ".media"


@functools.lru_cache(maxsize=1)
def _load_media_module():
    spec = importlib.util.spec_from_file_location("msce_test_media", _TESTS_DIR / "media.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


def _pyav_versions() -> str:
    try:
        import av
    except ModuleNotFoundError:
        return "PyAV not installed"
    libs = ", ".join(f"{name} {'.'.join(map(str, v))}" for name, v in sorted(av.library_versions.items()))
    return f"PyAV {av.__version__} ({libs})"


@pytest.fixture(scope="session")
def media() -> dict[str, Path]:
    """``{name: path}`` of the test clips (tests/media.py); skips when ffmpeg is missing.
    A clip this ffmpeg cannot encode is absent from the dict (see ``media_clip``)."""
    module = _load_media_module()
    require_tool("ffmpeg")
    return module.make_media(_MEDIA_ROOT / module.cache_key(module.ffmpeg_version(), _pyav_versions()))


@pytest.fixture(scope="session")
def media_clip(media):
    """``media_clip(name) -> Path``, skipping the test when this ffmpeg could not make it."""
    module = _load_media_module()

    def get(name: str) -> Path:
        if name not in media:
            lacking = ", ".join(module.missing_encoders(name))
            missing(f"test clip {name!r} needs the {lacking} encoder(s), which this ffmpeg lacks")
        return media[name]

    return get
