"""Fixtures of the CPU-vs-CUDA tests: a few small encoded clips."""

from __future__ import annotations

import subprocess

import pytest

from _deps import missing, require_tool


@pytest.fixture(scope="session")
def ffmpeg_build():
    from msce._native import C

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    require_tool("ffmpeg")


@pytest.fixture(scope="session")
def gpu_clips(tmp_path_factory, ffmpeg_build) -> dict:
    """Small H.264 clips: short GOP with B-frames (seeks), long GOP in Matroska (odd size,
    full-range yuvj420p), and one tagged with a 90-degree rotation."""
    root = tmp_path_factory.mktemp("gpu_clips")
    specs = {
        "gop12": ("gop12.mp4", "testsrc2=size=320x240:rate=25", 4,
                  ["-g", "12", "-bf", "3", "-pix_fmt", "yuv420p", "-colorspace", "bt709"]),
        "odd_full": ("odd_full.mkv", "testsrc2=size=161x91:rate=30", 3,
                     ["-g", "250", "-bf", "2", "-pix_fmt", "yuvj420p", "-color_range", "pc"]),
        "rotated": ("rotated.mp4", "testsrc2=size=160x96:rate=25", 2,
                    ["-g", "25", "-pix_fmt", "yuv420p", "-metadata:s:v:0", "rotate=90"]),
    }
    out = {}
    for name, (fname, src, secs, extra) in specs.items():
        path = root / fname
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src, "-t", str(secs),
               "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", *extra, "-bitexact", str(path)]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            out[name] = path
    return out
