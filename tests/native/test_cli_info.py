"""`msce info`: run as a command (subprocess), its exit codes and what it prints, checked
against ffprobe's reading of the same file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

W, H, RATE, SECONDS = 160, 96, 25, 2


def msce_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msce.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from msce._native import C

    if not C.has_ffmpeg:
        pytest.skip("msce was built without FFmpeg")
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("the ffmpeg and ffprobe CLIs are needed")
    path = tmp_path_factory.mktemp("info") / "clip.mp4"
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={RATE}",
           "-t", str(SECONDS), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-threads", "1", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def ffprobe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
           "stream=width,height,avg_frame_rate,nb_read_frames,codec_name", "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["streams"][0]


def test_info_json_agrees_with_ffprobe(clip) -> None:
    r = msce_cli("info", "--json", str(clip), str(clip))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out) == 2 and out[0] == out[1]
    m, ref = out[0], ffprobe(clip)
    assert Path(m["path"]) == clip
    assert (m["width"], m["height"]) == (ref["width"], ref["height"]) == (W, H)
    assert m["num_frames"] == int(ref["nb_read_frames"]) == RATE * SECONDS
    assert m["average_fps"] == pytest.approx(float(Fraction(ref["avg_frame_rate"])))
    assert m["average_fps"] == pytest.approx(RATE) and m["codec"] == ref["codec_name"] == "h264"
    assert m["duration"] == pytest.approx(SECONDS, abs=1.0 / RATE)
    assert "timestamps" not in m


def test_info_table_names_the_file_and_its_fields(clip) -> None:
    r = msce_cli("info", str(clip))
    assert r.returncode == 0, r.stderr
    assert clip.name in r.stdout
    for field in ("num_frames", "average_fps", "width", "height", "codec"):
        assert field in r.stdout
    assert str(RATE * SECONDS) in r.stdout and str(W) in r.stdout and str(H) in r.stdout


def test_info_errors_are_clean(tmp_path) -> None:
    missing = tmp_path / "missing.mp4"
    r = msce_cli("info", str(missing))
    assert r.returncode == 1
    assert r.stderr.startswith("msce info: error:") and "missing.mp4" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 64)
    r = msce_cli("info", "--json", str(garbage))
    assert r.returncode == 1 and "garbage.mp4" in r.stderr and "Traceback" not in r.stderr
    r = msce_cli("info")  # a video is required: argparse's usage error
    assert r.returncode == 2 and "usage:" in r.stderr
