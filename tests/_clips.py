"""Tiny bit-exact H.264 clips from an ffmpeg lavfi source, for toy datasets in tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def lavfi_clip(path: Path, source: str, seconds: float, size: str, rate: int = 10) -> Path:
    """Encodes ``seconds`` of the lavfi ``source`` (e.g. "testsrc2") at ``size`` ("WxH") and
    ``rate`` fps, one keyframe per second, with bit-exact muxing."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}",
           "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", str(rate),
           "-fflags", "+bitexact", "-flags:v", "+bitexact", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path
