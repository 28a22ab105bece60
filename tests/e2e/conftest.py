"""Shared fixtures for end-to-end model runs on CPU: tiny Qwen checkpoints built
offline, small backends over them, and generated clips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _deps import missing, require_tool

# backend_fakes (FrameBatch stand-in, fake chat server) lives with the unit tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_env import CLIP_H, CLIP_W, PIXELS, VERSIONS  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    from msce.testing import make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {v: make_tiny_model(root / f"qwen{v}", version=v, seed=0) for v in VERSIONS}


@pytest.fixture(scope="session")
def tiny_backends(tiny_dirs):
    from msce.models.backends import get_backend

    out = {}
    for v in VERSIONS:
        lo, hi = PIXELS[v]
        out[v] = get_backend("transformers", model=str(tiny_dirs[v]), dtype="float32", device="cpu",
                             min_pixels=lo, max_pixels=hi)
    return out


def _ffmpeg_clip(path: Path, seconds: float, rate: int, size: str = f"{CLIP_W}x{CLIP_H}") -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
           "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", str(rate),
           "-fflags", "+bitexact", "-flags:v", "+bitexact", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """``main``: 3.2 s at 10 fps (keyframes at 0, 1, 2, 3 s: 4 keyframes, 3 gaps);
    ``short``: 0.6 s (a single keyframe)."""
    require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("clips")
    paths = {"main": _ffmpeg_clip(root / "main.mp4", 3.2, 10), "short": _ffmpeg_clip(root / "short.mp4", 0.6, 10)}
    import msce
    from msce._native import C

    if not C.has_ffmpeg:  # file-based strategies decode
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    msce.VideoReader(paths["main"])
    return paths
