"""Small synthetic clips for demos and smoke tests, made with the ffmpeg command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from msce.errors import MsceError

__all__ = ["make_test_clip"]


def make_test_clip(path: str | Path, seconds: float = 5.0, fps: int = 25, size: tuple[int, int] = (1280, 720),
                   codec: str = "libx264", gop: int = 250) -> Path:
    """Writes a moving test pattern (ffmpeg's testsrc2) as an H.264 mp4 and returns its path."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MsceError("the ffmpeg command is needed to generate the demo clip (apt-get install ffmpeg)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial" + path.suffix)
    w, h = size
    cmd = [exe, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={seconds}",
           "-c:v", codec, "-pix_fmt", "yuv420p", "-g", str(gop), "-bf", "2", "-bitexact", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise MsceError(f"ffmpeg failed to write {path}: {proc.stderr.strip()}")
    tmp.replace(path)
    return path
