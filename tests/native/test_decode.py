"""msce.VideoReader on the generated clips (tests/media.py), checked against PyAV and ffprobe.

Reference conventions:
* Frame i is the i-th frame PyAV's decoder outputs (presentation order; where packets
  carry pts, the test checks that order is ascending pts).
* yuv420p/yuvj420p/nv12 sources are converted by msce's own transform, which follows
  swscale's default YUV->RGB (what ``frame.to_ndarray(format="rgb24")`` does for even
  sizes). The reference is exactly that conversion applied to PyAV's 4:2:0 planes (NV12
  de-interleaved, odd sizes padded to even and cropped back).
* Every other format is converted inside the reader by swscale with FFmpeg's default
  flags (bilinear, chroma sited as tagged), the same convention as the 4:2:0 path; the
  reference is PyAV's default ``to_ndarray(format="rgb24")`` with the same matrix and range.
* Rotated clips: the reference is ``np.rot90`` of the upright frame by the clockwise
  rotation PyAV reads from the display matrix.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading

import numpy as np
import pytest

import msce
from _deps import require_module, require_tool

av = require_module("av")

# Clips that decode completely, with the same frames in PyAV (FFmpeg's CLI made them).
GOOD = [
    "h264_mp4", "h264_bframes_mkv", "hevc_mp4", "vp9_webm", "av1_mp4", "vp8_webm", "mpeg2_mpg",
    "h264_mov", "mpeg4_avi", "mjpeg_avi",
    "odd_size_mkv", "yuv444p_mkv", "gray_mkv", "rgb24_mkv", "nv12_mkv",
    "unrotated_mp4", "rotated90_mp4", "rotated180_mp4", "rotated270_mp4", "vfr_mkv",
    "h264_10bit_mp4", "bt709_full_mp4", "bt2020_10bit_mkv", "long_gop_h264_mp4",
    "short_gop_h264_mp4", "short_gop_h264_ts", "plain_mpeg4_avi", "header_lying_avi", "raw_gray_avi",
]
DIRECT_FORMATS = {"yuv420p", "yuvj420p", "nv12"}  # read by msce's transform without swscale
MAX_LEVEL_DIFF = 2
MAX_MEAN_DIFF = 0.5

_pyav_cache: dict[str, list] = {}


def pyav_frames(path) -> list:
    """Every frame PyAV decodes, in output (= presentation) order."""
    key = str(path)
    if key not in _pyav_cache:
        with av.open(key) as container:
            frames = list(container.decode(video=0))
        pts = [f.pts for f in frames]
        if None not in pts:
            assert pts == sorted(pts), f"{path}: PyAV output is not in pts order"
        _pyav_cache[key] = frames
    return _pyav_cache[key]


def clockwise(frame) -> int:
    """Clockwise degrees to display `frame` upright (PyAV reports counter-clockwise)."""
    return int(round(-getattr(frame, "rotation", 0) or 0)) % 360


def matrix_name(meta) -> str:
    return {"bt709": "ITU709", "bt2020nc": "BT2020", "bt2020c": "BT2020"}.get(meta.color_space, "ITU601")


def full_range(meta) -> bool:
    return meta.color_range == "pc" or meta.pixel_format.startswith("yuvj")


def _plane(frame, i: int, cols: int, rows: int) -> np.ndarray:
    p = frame.planes[i]
    return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:rows, :cols]


def _yuv420_planes(frame):
    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2
    if frame.format.name == "nv12":
        uv = _plane(frame, 1, 2 * cw, ch)
        return _plane(frame, 0, w, h), uv[:, 0::2], uv[:, 1::2]
    return _plane(frame, 0, w, h), _plane(frame, 1, cw, ch), _plane(frame, 2, cw, ch)


def _swscale_default_420(frame, matrix: str, full: bool) -> np.ndarray:
    """swscale's default 4:2:0 -> RGB24 on the frame's planes, odd sizes padded to even."""
    y, u, v = _yuv420_planes(frame)
    h, w = y.shape
    y = np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge")
    packed = np.concatenate([y.ravel(), np.ascontiguousarray(u).ravel(), np.ascontiguousarray(v).ravel()])
    even = av.VideoFrame.from_ndarray(packed.reshape(-1, y.shape[1]), format="yuvj420p" if full else "yuv420p")
    rgb = even.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range="JPEG" if full else "MPEG",
                          dst_color_range="JPEG")
    return rgb[:h, :w]


def reference_rgb(frame, meta) -> np.ndarray:
    matrix, full = matrix_name(meta), full_range(meta)
    if frame.format.name in DIRECT_FORMATS:
        rgb = _swscale_default_420(frame, matrix, full)
    else:
        rgb = frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range="JPEG" if full else "MPEG",
                               dst_color_range="JPEG")
    return np.rot90(rgb, k=-clockwise(frame) // 90)


def assert_close_rgb(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == np.uint8, what
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= MAX_LEVEL_DIFF, f"{what}: max level difference {diff.max()}"
    assert diff.mean() < MAX_MEAN_DIFF, f"{what}: mean difference {diff.mean():.3f}"


def ffprobe_stream(path) -> dict:
    exe = require_tool("ffprobe")
    out = subprocess.run([exe, "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


# ---- metadata ---------------------------------------------------------------------------

# MPEG-PS (mpeg2_mpg) stores some anchor pictures with a dts only; the reader derives their
# presentation times from the reordering delay, which this test checks against PyAV's pts.
@pytest.mark.parametrize("name", GOOD)
def test_metadata_matches_pyav(media_clip, name):
    path = media_clip(name)
    meta = msce.VideoReader(path).metadata
    frames = pyav_frames(path)
    first = frames[0]
    assert meta.num_frames == len(frames)
    assert (meta.coded_width, meta.coded_height) == (first.width, first.height)
    assert meta.rotation == clockwise(first)
    upright = (first.height, first.width) if meta.rotation in (90, 270) else (first.width, first.height)
    assert (meta.width, meta.height) == upright
    assert meta.pixel_format == first.format.name
    assert meta.bit_depth == (10 if "10" in first.format.name else 8)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert meta.container == container.format.name
        assert meta.codec == stream.codec_context.codec.canonical_name  # "av1", not the decoder "libdav1d"
        time_base = stream.time_base
        rate = stream.average_rate
    assert meta.path == str(path)
    assert len(meta.timestamps) == meta.num_frames and meta.timestamps[0] == 0.0
    assert all(b > a for a, b in zip(meta.timestamps, meta.timestamps[1:]))
    if None not in (f.pts for f in frames):
        want = [float((f.pts - first.pts) * time_base) for f in frames]
        np.testing.assert_allclose(meta.timestamps, want, atol=1e-6)
    assert meta.variable_frame_rate == (name == "vfr_mkv")
    assert meta.duration > meta.timestamps[-1]
    assert meta.average_fps == pytest.approx(meta.num_frames / meta.duration)
    if not meta.variable_frame_rate:
        interval = meta.timestamps[1] - meta.timestamps[0]
        assert meta.duration == pytest.approx(meta.num_frames * interval, rel=0.02)
        if rate:
            assert meta.average_fps == pytest.approx(float(rate), rel=0.01)


@pytest.mark.parametrize("name", GOOD)
def test_metadata_matches_ffprobe(media_clip, name):
    path = media_clip(name)
    meta = msce.VideoReader(path).metadata
    probe = ffprobe_stream(path)
    assert meta.codec == probe["codec_name"]
    assert meta.pixel_format == probe["pix_fmt"]
    assert (meta.coded_width, meta.coded_height) == (probe["width"], probe["height"])
    assert meta.color_space == probe.get("color_space", "unknown")
    assert meta.color_range == probe.get("color_range", "unknown")
    nb = int(probe.get("nb_frames", 0) or 0)
    assert meta.header_num_frames == (nb if nb > 0 else -1)


@pytest.mark.parametrize("name, space, rng, pix_fmt, depth", [
    ("bt709_full_mp4", "bt709", "pc", "yuvj420p", 8),
    ("bt2020_10bit_mkv", "bt2020nc", "tv", "yuv420p10le", 10),
    ("mjpeg_avi", "bt470bg", "pc", "yuvj422p", 8),
    ("h264_10bit_mp4", "unknown", "unknown", "yuv420p10le", 10),
])
def test_colour_tags(media_clip, name, space, rng, pix_fmt, depth):
    meta = msce.VideoReader(media_clip(name)).metadata
    assert (meta.color_space, meta.color_range, meta.pixel_format, meta.bit_depth) == (space, rng, pix_fmt, depth)


def test_header_frame_count_is_not_trusted(media_clip):
    path = media_clip("header_lying_avi")
    reader = msce.VideoReader(path)
    meta = reader.metadata
    assert meta.header_num_frames == 1000
    assert meta.num_frames == len(pyav_frames(path)) == 20
    last = reader.get_frames([meta.num_frames - 1])
    assert_close_rgb(last[0], reference_rgb(pyav_frames(path)[-1], meta), "last frame")
    with pytest.raises(msce.PlanError, match="20"):
        reader.get_frames([meta.num_frames])


def test_variable_frame_rate(media_clip):
    path = media_clip("vfr_mkv")
    reader = msce.VideoReader(path)
    meta = reader.metadata
    assert meta.variable_frame_rate
    steps = np.diff(meta.timestamps)
    assert steps[:9] == pytest.approx(0.1, abs=1e-3)       # 10 fps
    assert steps[10:38] == pytest.approx(1 / 30, abs=1e-3)  # 30 fps
    assert steps[-4:] == pytest.approx(0.2, abs=1e-3)      # 5 fps
    idx = [0, 9, 10, 11, 25, 39, 40, 44]
    got = reader.get_frames(idx)
    frames = pyav_frames(path)
    for k, i in enumerate(idx):
        assert_close_rgb(got[k], reference_rgb(frames[i], meta), f"vfr frame {i}")


# ---- frames -----------------------------------------------------------------------------

def _patterns(n: int) -> dict[str, list[int]]:
    return {"dense": list(range(n)), "sparse": sorted(set(range(3, n, 7)) | {n - 1})}


@pytest.mark.parametrize("pattern", ["dense", "sparse"])
@pytest.mark.parametrize("name", GOOD)
def test_frames_match_pyav(media_clip, name, pattern):
    path = media_clip(name)
    reader = msce.VideoReader(path)
    meta = reader.metadata
    idx = _patterns(meta.num_frames)[pattern]
    got = reader.get_frames(idx)
    assert got.shape == (len(idx), meta.height, meta.width, 3)
    frames = pyav_frames(path)
    for k, i in enumerate(idx):
        assert_close_rgb(got[k], reference_rgb(frames[i], meta), f"{name} frame {i}")


@pytest.mark.parametrize("name, cw", [("rotated90_mp4", 90), ("rotated180_mp4", 180), ("rotated270_mp4", 270)])
def test_rotation_is_applied_clockwise(media_clip, name, cw):
    """The rotated clips are stream copies of unrotated_mp4 with a display matrix."""
    upright = msce.VideoReader(media_clip("unrotated_mp4")).get_frames([0, 7, 24])
    reader = msce.VideoReader(media_clip(name))
    assert reader.metadata.rotation == cw
    rotated = reader.get_frames([0, 7, 24])
    for k in range(3):
        assert_close_rgb(rotated[k], np.rot90(upright[k], k=-cw // 90), f"{name} frame {k}")


def test_sparse_decode_seeks_on_short_gop(media_clip):
    path = media_clip("short_gop_h264_mp4")
    reader = msce.VideoReader(path)
    n = reader.metadata.num_frames
    dense = reader.get_frames(list(range(n)))
    dense_stats = reader.last_stats
    sparse_idx = list(range(5, n, 40))
    sparse = msce.VideoReader(path).get_frames(sparse_idx)
    np.testing.assert_array_equal(sparse, dense[sparse_idx])
    reader = msce.VideoReader(path)
    reader.get_frames(sparse_idx)
    stats = reader.last_stats
    assert dense_stats["frames_decoded"] == n and dense_stats["seeks"] == 0
    assert stats["seeks"] >= 1
    assert stats["frames_decoded"] < n / 2


def test_long_gop_stops_at_the_last_wanted_frame(media_clip):
    reader = msce.VideoReader(media_clip("long_gop_h264_mp4"))
    reader.get_frames([10])
    stats = reader.last_stats
    assert stats["seeks"] == 0  # one GOP: nothing to seek to
    # frames 0..10 at most (non-reference frames before 10 need not be decoded at all),
    # and only the few packets the decoder's reordering delay needs past frame 10
    assert 1 <= stats["frames_decoded"] <= 11
    assert stats["packets_read"] < 20


def test_repeated_and_backward_requests(media_clip):
    path = media_clip("short_gop_h264_mp4")
    reader = msce.VideoReader(path)
    n = reader.metadata.num_frames
    dense = msce.VideoReader(path).get_frames(list(range(n)))
    for idx in ([150], [3, 4], [150, 199], [0], [199], [1, 100]):
        np.testing.assert_array_equal(reader.get_frames(idx), dense[idx], err_msg=str(idx))


def test_decoder_threads_do_not_change_frames(media_clip):
    path = media_clip("h264_bframes_mkv")
    one = msce.VideoReader(path, threads=1).get_frames(list(range(0, 60, 3)))
    many = msce.VideoReader(path, threads=4).get_frames(list(range(0, 60, 3)))
    np.testing.assert_array_equal(one, many)


def test_concurrent_readers_of_one_file(media_clip):
    path = media_clip("short_gop_h264_mp4")
    idx = list(range(0, 200, 3))
    expected = msce.VideoReader(path).get_frames(idx)
    results: list = [None] * 4
    errors: list = []

    def work(k: int) -> None:
        try:
            results[k] = msce.VideoReader(path, threads=2).get_frames(idx)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for got in results:
        np.testing.assert_array_equal(got, expected)


# ---- damaged files ----------------------------------------------------------------------

def pyav_frames_until_error(path) -> tuple[list, Exception | None]:
    """The frames PyAV decodes from a damaged file before its decoder gives up, and the error."""
    frames = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                frames.append(frame)
        except av.error.FFmpegError as exc:
            return frames, exc
    return frames, None


def test_truncated_file_decodes_every_frame_it_has(media_clip):
    """Cut in half: the index keeps the complete packets, and every one of them decodes to the
    frame of the intact file (PyAV, stricter, stops at the cut packet a few frames earlier)."""
    path = media_clip("truncated_mp4")
    reader = msce.VideoReader(path)
    meta = reader.metadata
    assert meta.header_num_frames == 100
    assert 0 < meta.num_frames < meta.header_num_frames
    head, _ = pyav_frames_until_error(path)
    assert 0 < len(head) <= meta.num_frames
    got = reader.get_frames(list(range(meta.num_frames)))
    intact = pyav_frames(media_clip("faststart_h264_mp4"))
    for i in range(meta.num_frames):
        assert_close_rgb(got[i], reference_rgb(intact[i], meta), f"truncated frame {i}")
    for i, frame in enumerate(head):
        assert_close_rgb(got[i], reference_rgb(frame, meta), f"truncated frame {i} vs PyAV on the cut file")


def test_corrupt_file_fails_cleanly(media_clip):
    """Damage at 40% and 70% of the file: the frames before it decode, asking for the first frame
    the reader cannot produce raises a DecodeError naming the file and that frame (no earlier than
    where PyAV's decoder gives up: the reader keeps frames the damaged stream outputs ahead of
    their turn, so it recovers a frame or two more), and the reader still serves the intact GOPs
    after the damage."""
    path = media_clip("corrupt_mp4")
    reader = msce.VideoReader(path)
    meta = reader.metadata
    assert meta.num_frames == 100
    before, error = pyav_frames_until_error(path)
    assert error is not None and 0 < len(before) < meta.num_frames
    first_bad = len(before)
    got = reader.get_frames(list(range(first_bad)))
    for i, frame in enumerate(before):
        assert_close_rgb(got[i], reference_rgb(frame, meta), f"corrupt frame {i}")
    with pytest.raises(msce.DecodeError) as info:
        reader.get_frames(list(range(meta.num_frames)))
    failed = re.search(r"frame (\d+) could not be decoded", str(info.value))
    assert path.name in str(info.value) and failed and first_bad <= int(failed.group(1)) < meta.num_frames
    intact = pyav_frames(media_clip("faststart_h264_mp4"))
    for gop in (range(50, 60), range(90, 100)):  # keyframe every 10 frames; damage near 38-40 and 74
        got = reader.get_frames(list(gop))
        for k, i in enumerate(gop):
            assert_close_rgb(got[k], reference_rgb(intact[i], meta), f"corrupt frame {i} after the damage")


# ---- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, error, words", [
    ("text_as_mp4", msce.DecodeError, "Invalid data"),
    ("empty_mp4", msce.DecodeError, "Invalid data"),
    ("truncated_nomoov_mp4", msce.DecodeError, ""),
    ("audio_only_m4a", msce.DecodeError, "no video stream"),
    ("audio_only_wav", msce.DecodeError, "no video stream"),
    ("zero_frames_avi", msce.DecodeError, "no frames"),
    ("unknown_codec_avi", msce.UnsupportedError, "no decoder"),
    ("huge_dims_avi", msce.UnsupportedError, "20000x8000"),
])
def test_open_errors(media_clip, name, error, words):
    path = media_clip(name)
    with pytest.raises(error) as info:
        msce.VideoReader(path)
    assert path.name in str(info.value) and words in str(info.value)
    if error is msce.DecodeError:
        assert not isinstance(info.value, msce.UnsupportedError)


def test_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.mp4"
    with pytest.raises(msce.DecodeError, match="No such file or directory") as info:
        msce.VideoReader(path)
    assert path.name in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(msce.DecodeError, match="directory") as info:
        msce.VideoReader(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("bad", [[-1], [50], [0, 50]])
def test_out_of_range_indices(media_clip, bad):
    reader = msce.VideoReader(media_clip("h264_mp4"))
    assert reader.metadata.num_frames == 50
    with pytest.raises(msce.PlanError) as info:
        reader.get_frames(bad)
    assert str(max(bad, key=lambda i: i < 0 or i >= 50)) in str(info.value)
    # the reader is still usable afterwards
    assert reader.get_frames([49]).shape == (1, 240, 320, 3)
