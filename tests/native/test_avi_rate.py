"""AVI files whose stream header (strh dwScale/dwRate) lies about the frame rate.

AVI packets carry no time of their own: FFmpeg numbers them in strh's time base, so a
corrupt rate or scale stretches the whole clip (ffprobe then reports a 1-s clip as 1000 s).
The reader checks strh against the main header's frame period (avih.dwMicroSecPerFrame,
which FFmpeg ignores) and takes avih's when it gives a plausible frame rate (5..300 fps) and
strh's does not; otherwise strh stands, as in FFmpeg. The references are ffprobe (what the
lying header claims) and the clip as ffmpeg wrote it (25 frames at 25 fps, 1 s).
"""

from __future__ import annotations

import json
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

import msce
from _deps import missing, require_tool

RATE, SECONDS = 25, 1
FRAMES = RATE * SECONDS


def _chunk(data: bytes, fourcc: bytes) -> int:
    """Offset of the payload of the first AVI header chunk `fourcc`."""
    at = data.find(fourcc)
    assert at >= 0, fourcc
    return at + 8


def _patched(src: Path, dst: Path, scale: int | None = None, rate: int | None = None,
             usec: int | None = None) -> Path:
    data = bytearray(src.read_bytes())
    strh, avih = _chunk(data, b"strh"), _chunk(data, b"avih")
    old_scale, old_rate = struct.unpack_from("<II", data, strh + 20)
    struct.pack_into("<II", data, strh + 20, old_scale if scale is None else scale,
                     old_rate if rate is None else rate)
    if usec is not None:
        struct.pack_into("<I", data, avih, usec)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module", params=["mpeg4", "mjpeg"])
def avi(request, tmp_path_factory) -> Path:
    from msce._native import C

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg")
    exe = require_tool("ffmpeg")
    path = tmp_path_factory.mktemp("avi") / f"{request.param}.avi"
    subprocess.run([exe, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={RATE}",
                    "-t", str(SECONDS), "-c:v", request.param, "-q:v", "4", str(path)], check=True,
                   capture_output=True)
    data = path.read_bytes()
    assert struct.unpack_from("<II", data, _chunk(data, b"strh") + 20) == (1, RATE)
    assert struct.unpack_from("<I", data, _chunk(data, b"avih"))[0] == 1_000_000 // RATE
    return path


def ffprobe_rate(path: Path) -> float:
    exe = require_tool("ffprobe")
    out = subprocess.run([exe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=avg_frame_rate",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return float(Fraction(json.loads(out)["streams"][0]["avg_frame_rate"]))


@pytest.mark.parametrize("lie", [{"scale": 1000}, {"rate": 1}, {"scale": 1, "rate": 25_000}])
def test_lying_strh_rate_is_corrected_from_avih(avi, tmp_path, lie) -> None:
    path = _patched(avi, tmp_path / "lying.avi", **lie)
    claimed = ffprobe_rate(path)
    assert claimed == pytest.approx(lie.get("rate", RATE) / lie.get("scale", 1))  # the header does lie
    m = msce.VideoReader(path).metadata
    assert m.num_frames == FRAMES
    assert m.duration == pytest.approx(SECONDS, abs=1 / RATE)
    assert m.average_fps == pytest.approx(RATE, rel=0.01)
    assert m.timestamps[1] == pytest.approx(1 / RATE) and m.timestamps[-1] == pytest.approx((FRAMES - 1) / RATE)
    batch = msce.load(path, msce.plan.uniform(1), msce.Frames(size=(32, 32)))
    assert list(batch.indices) == [0] and tuple(batch.data.shape) == (1, 3, 32, 32)
    batch = msce.load(path, msce.plan.uniform(RATE), msce.Frames(size=(32, 32)))
    assert list(batch.indices) == list(range(FRAMES))


@pytest.mark.parametrize("usec", [1, 1_000_000, 1_000_000 // 30])
def test_strh_stands_unless_only_avih_is_plausible(avi, tmp_path, usec) -> None:
    """A lying avih (1 us, 1 s) or a plausible disagreement (30 vs 25 fps): strh, as FFmpeg."""
    path = _patched(avi, tmp_path / "avih.avi", usec=usec)
    assert ffprobe_rate(path) == pytest.approx(RATE)
    m = msce.VideoReader(path).metadata
    assert m.num_frames == FRAMES and m.average_fps == pytest.approx(RATE)
    assert m.duration == pytest.approx(SECONDS, abs=1 / RATE)


def test_both_headers_implausible_keep_strh(avi, tmp_path) -> None:
    """Nothing to correct from: the clip is read as the 0.025-fps clip both headers describe
    (strh's rate, ffprobe's reading), so uniform(1) repeats each frame for its 40 s."""
    path = _patched(avi, tmp_path / "both.avi", scale=1000, usec=40_000_000)
    m = msce.VideoReader(path).metadata
    assert m.average_fps == pytest.approx(ffprobe_rate(path)) == pytest.approx(RATE / 1000)
    assert m.num_frames == FRAMES and m.duration == pytest.approx(FRAMES * 40)
    batch = msce.load(path, msce.plan.uniform(1), msce.Frames(size=(32, 32)))
    assert len(batch) == FRAMES * 40 and sorted(set(batch.indices)) == list(range(FRAMES))
