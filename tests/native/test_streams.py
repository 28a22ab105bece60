"""Files with several video streams: ``stream=`` on VideoReader, load, load_segments,
motion analysis and ``msce info``, checked against PyAV's decode of the same stream and
ffprobe's stream list.

Each clip holds stream 0 = testsrc2 320x240 at 25 fps, stream 1 = AAC audio and stream 2 =
smptebars 160x120 at 10 fps, all H.264 with a keyframe every 10 frames; ``default2`` marks
stream 2 as the default one (FFmpeg's best stream becomes 2). ``stream=`` is the container's
absolute index, the ``index`` ffprobe prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import msce
from _deps import GPU, missing, require_module, require_tool

av = require_module("av")

SECONDS = 2
STREAMS = {0: (320, 240, 25), 2: (160, 120, 10)}  # index -> (width, height, fps)


def _make(path: Path, default_second: bool) -> Path:
    exe = require_tool("ffmpeg")
    cmd = [exe, "-v", "error", "-nostdin", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
           "-f", "lavfi", "-i", "smptebars=size=160x120:rate=10",
           "-t", str(SECONDS), "-map", "0:v", "-map", "1:a", "-map", "2:v",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-threads", "1", "-c:a", "aac", "-b:a", "32k"]
    if default_second:
        cmd += ["-disposition:v:0", "0", "-disposition:v:1", "default"]
    r = subprocess.run([*cmd, str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        missing(f"an ffmpeg with libx264 and aac to make {path.name} ({r.stderr.strip()[-200:]})")
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    from msce._native import C

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg")
    d = tmp_path_factory.mktemp("streams")
    return {"mp4": _make(d / "two.mp4", False), "mkv": _make(d / "two.mkv", False),
            "default2": _make(d / "default2.mkv", True)}


def pyav_rgb(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams[index])])


def pyav_best(path: Path) -> int:
    with av.open(str(path)) as c:
        return c.streams.best("video").index


def ffprobe_streams(path: Path) -> list[dict]:
    exe = require_tool("ffprobe")
    out = subprocess.run([exe, "-v", "error", "-show_entries",
                          "stream=index,codec_type,codec_name,width,height,avg_frame_rate:stream_disposition=default,"
                          "attached_pic", "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"]


@pytest.mark.parametrize("name", ["mp4", "mkv", "default2"])
def test_default_is_ffmpegs_best_stream(clips, name) -> None:
    path = clips[name]
    r = msce.VideoReader(path)
    best = pyav_best(path)
    assert best == (2 if name == "default2" else 0)
    assert r.metadata.stream == best
    w, h, fps = STREAMS[best]
    assert (r.metadata.width, r.metadata.height) == (w, h)
    assert r.metadata.num_frames == fps * SECONDS
    np.testing.assert_array_equal(r.get_frames(range(r.metadata.num_frames)), pyav_rgb(path, best))


@pytest.mark.parametrize("name", ["mp4", "mkv"])
@pytest.mark.parametrize("index", [0, 2])
def test_stream_frames_equal_pyav(clips, name, index) -> None:
    path = clips[name]
    r = msce.VideoReader(path, stream=index)
    m = r.metadata
    w, h, fps = STREAMS[index]
    want = pyav_rgb(path, index)
    assert m.stream == index and (m.width, m.height) == (w, h)
    assert m.num_frames == len(want) == fps * SECONDS
    assert m.average_fps == pytest.approx(fps) and m.duration == pytest.approx(SECONDS, abs=1 / fps)
    np.testing.assert_array_equal(r.get_frames(range(m.num_frames)), want)
    # Seeking: a sparse, out-of-GOP selection decodes the same pictures.
    picks = [m.num_frames - 1, 3, 11]
    np.testing.assert_array_equal(r.get_frames(sorted(picks)), want[sorted(picks)])


@pytest.mark.parametrize("name", ["mp4", "mkv", "default2"])
@pytest.mark.parametrize("stream", [None, 0, 2])
def test_nvdec_reader_opens_the_same_stream(clips, name, stream) -> None:
    """The NVDEC reader (here with FFmpeg's software decoder, no GPU needed) reopens the file
    on the CPU reader's stream."""
    from msce._native import C

    if not C.built_with_cuda:
        pytest.skip(GPU + "the NVDEC reader exists only in builds with CUDA")
    r = msce.VideoReader(clips[name], stream=stream)
    n = r.metadata.num_frames
    indices = [0, 3, 11, n - 1]
    got, stats = C.nvdec_reader_software_frames(r._native, indices, 1)
    assert stats["indices"] == indices
    np.testing.assert_array_equal(got, pyav_rgb(clips[name], r.metadata.stream)[indices])


@pytest.mark.parametrize("index", [0, 2])
def test_load_and_load_segments_take_the_stream(clips, index) -> None:
    path = clips["mkv"]
    want = pyav_rgb(path, index)
    _, _, fps = STREAMS[index]
    target = msce.Frames(layout="NHWC")
    batch = msce.load(path, msce.plan.uniform(1), target, stream=index)
    assert batch.metadata.stream == index and list(batch.indices) == [0, fps]
    np.testing.assert_array_equal(batch.data.numpy(), want[[0, fps]])
    segs = msce.load_segments(path, msce.plan.keyframes_with_gaps(1.0, 2), target, stream=index)
    got = np.concatenate([s.data.numpy() for s in segs])
    idx = np.concatenate([np.asarray(s.indices) for s in segs])
    np.testing.assert_array_equal(got, want[idx])
    # A reader given to load decodes its own stream; asking for another one is an error.
    reader = msce.VideoReader(path, stream=index)
    np.testing.assert_array_equal(msce.load(reader, msce.plan.uniform(1), target).data.numpy(), want[[0, fps]])
    with pytest.raises(msce.ConfigError, match=f"decodes stream {index}"):
        msce.load(reader, msce.plan.uniform(1), target, stream=2 - index)


def test_motion_analysis_follows_the_stream(clips) -> None:
    from msce.motion import analyze

    for index, (_, _, fps) in STREAMS.items():
        curve = analyze(clips["mp4"], size=32, stream=index)
        assert len(curve.energy) == fps * SECONDS
    # The motion-aware plan analyses the stream its metadata names; its per-file cache keeps
    # the two streams apart (a curve of the other stream has the wrong length: PlanError).
    from msce.motion import motion_aware_gaps

    for index in (2, 0, 2):
        meta = msce.VideoReader(clips["mkv"], stream=index).metadata
        plan = motion_aware_gaps(1.0, 2, size=32).resolve(meta)
        assert plan.num_source_frames == meta.num_frames and max(plan.indices) < meta.num_frames


@pytest.mark.parametrize("name", ["mp4", "mkv", "default2"])
def test_metadata_lists_every_video_stream(clips, name) -> None:
    path = clips[name]
    m = msce.VideoReader(path, stream=2).metadata
    probe = [s for s in ffprobe_streams(path) if s["codec_type"] == "video"]
    assert [s.index for s in m.video_streams] == [s["index"] for s in probe] == [0, 2]
    for got, ref in zip(m.video_streams, probe):
        assert (got.codec, got.width, got.height) == (ref["codec_name"], ref["width"], ref["height"])
        assert got.fps == pytest.approx(float(Fraction(ref["avg_frame_rate"])))
        assert got.fps == pytest.approx(STREAMS[got.index][2])
        assert got.default == bool(ref["disposition"]["default"])
        assert got.attached_pic == bool(ref["disposition"]["attached_pic"]) is False
        assert got.rotation == 0
        if got.frames >= 0:  # mp4 headers count frames, Matroska's do not
            assert got.frames == STREAMS[got.index][2] * SECONDS
    d = m.to_dict()
    assert d["stream"] == 2 and [s["index"] for s in d["video_streams"]] == [0, 2]


@pytest.mark.parametrize("stream, words", [
    (1, ["stream 1 is an audio stream, not video"]),
    (3, ["stream 3 does not exist", "has 3 streams"]),
    (99, ["stream 99 does not exist"]),
])
def test_bad_stream_index_names_file_index_and_video_streams(clips, stream, words) -> None:
    path = clips["mp4"]
    for call in (lambda: msce.VideoReader(path, stream=stream),
                 lambda: msce.load(path, msce.plan.uniform(1), msce.Frames(), stream=stream)):
        with pytest.raises(msce.DecodeError) as e:
            call()
        text = str(e.value)
        assert str(path) in text and "0 (h264 320x240), 2 (h264 160x120)" in text
        for w in words:
            assert w in text


def test_cover_picture_is_listed_but_not_decoded(clips, tmp_path) -> None:
    exe = require_tool("ffmpeg")
    cover, path = tmp_path / "cover.png", tmp_path / "cover.mp4"
    subprocess.run([exe, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "color=c=red:size=64x48",
                    "-frames:v", "1", str(cover)], check=True, capture_output=True)
    subprocess.run([exe, "-v", "error", "-nostdin", "-y", "-i", str(clips["mp4"]), "-i", str(cover), "-map", "0:v:0",
                    "-map", "1", "-c:v:0", "copy", "-c:v:1", "png", "-disposition:v:1", "attached_pic", str(path)],
                   check=True, capture_output=True)
    probe = {s["index"]: s for s in ffprobe_streams(path)}
    assert probe[1]["disposition"]["attached_pic"] == 1
    m = msce.VideoReader(path).metadata
    assert m.stream == 0 and [(s.index, s.attached_pic) for s in m.video_streams] == [(0, False), (1, True)]
    assert (m.video_streams[1].width, m.video_streams[1].height, m.video_streams[1].fps) == (64, 48, 0.0)
    with pytest.raises(msce.DecodeError, match=r"stream 1 is a cover picture \(attached_pic\), not video") as e:
        msce.VideoReader(path, stream=1)
    assert str(path) in str(e.value) and "1 (png 64x48, cover picture)" in str(e.value)


@pytest.mark.parametrize("stream", [-1, True, 1.0, "2"])
def test_stream_argument_type(clips, stream) -> None:
    with pytest.raises(msce.ConfigError, match="stream must be"):
        msce.VideoReader(clips["mp4"], stream=stream)


def test_frame_folder_refuses_a_stream(tmp_path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{i:03d}.png")
    with pytest.raises(msce.ConfigError, match="frame folder has no streams"):
        msce.load(tmp_path, msce.plan.uniform(1), msce.Frames(), stream=0)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msce.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_info_shows_the_streams(clips) -> None:
    path = clips["mp4"]
    r = _cli("info", "--json", str(path))
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(r.stdout)
    assert m["stream"] == 0 and [s["index"] for s in m["video_streams"]] == [0, 2]
    assert [(s["width"], s["height"]) for s in m["video_streams"]] == [(320, 240), (160, 120)]
    r = _cli("info", "--json", "--stream", "2", str(path))
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(r.stdout)
    assert (m["stream"], m["width"], m["num_frames"]) == (2, 160, 10 * SECONDS)
    r = _cli("info", str(path))
    assert r.returncode == 0, r.stderr
    assert "0: h264 320x240 25.000 fps" in r.stdout and "2: h264 160x120 10.000 fps" in r.stdout
    assert "selected" in r.stdout
    r = _cli("info", "--stream", "1", str(path))
    assert r.returncode == 1 and "stream 1 is an audio stream" in r.stderr and "Traceback" not in r.stderr
