"""Hardening of the reader against inputs from other people's datasets (issue #14).

* Paths that are not regular files never reach FFmpeg (a FIFO would block forever), a NUL
  byte cannot cut the path short, and FFmpeg protocols ("concat:", "http:", ...) and
  demuxers that open other files (HLS, ffconcat) are off unless ``protocols=`` opts in.
* Lying timing fields (a flipped timestamp, a corrupt duration field) do not turn a 1-s clip
  into thousands of seconds; the lie itself is checked with ffprobe, the independent reference.
* swscale conversions (10-bit, 4:2:2, 4:4:4) equal PyAV's default ``to_ndarray("rgb24")``.
* FFmpeg's log lines go to the ``msce.ffmpeg`` logger, not to stderr.
* Errors on damaged files say so and name the file.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import msce
from _deps import require_module, require_tool

av = require_module("av")

FFMPEG_LINE_MARKERS = ("[h264 @", "[mov,mp4", "error while decoding", "moov atom", "Invalid NAL")


def _ffmpeg(*args: str, out: Path) -> Path:
    exe = require_tool("ffmpeg")
    subprocess.run([exe, "-v", "error", "-y", *args, str(out)], check=True, capture_output=True)
    return out


def _clip(tmp: Path, name: str, *codec: str, seconds: float = 1.0, size: str = "160x120") -> Path:
    return _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-t", str(seconds), *codec,
                   "-fflags", "+bitexact", "-flags:v", "+bitexact", out=tmp / name)


def _ffprobe_packets(path: Path) -> list[dict]:
    exe = require_tool("ffprobe")
    out = subprocess.run([exe, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts,duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["packets"]


def _run_python(code: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with this test's import path (the worktree's msce)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


# ---- paths that are not regular files -----------------------------------------------------

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    # In a child process: before the fix this blocked forever in open().
    proc = _run_python(f"""
        import msce
        try:
            msce.VideoReader({str(fifo)!r})
        except msce.DecodeError as e:
            print("DecodeError:", e)
    """, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "DecodeError:" in proc.stdout and "FIFO" in proc.stdout and str(fifo) in proc.stdout


def test_socket_device_and_directory_are_refused(tmp_path):
    sock_path = tmp_path / "s.mp4"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(sock_path))
        with pytest.raises(msce.DecodeError, match="socket") as info:
            msce.VideoReader(sock_path)
        assert str(sock_path) in str(info.value)
    with pytest.raises(msce.DecodeError, match="character device"):
        msce.VideoReader("/dev/null")
    with pytest.raises(msce.DecodeError, match="directory"):
        msce.VideoReader(tmp_path)


def test_nul_byte_is_refused(tmp_path):
    clip = _clip(tmp_path, "a.mp4", "-c:v", "libx264")
    assert msce.VideoReader(clip).metadata.num_frames == 25
    # The C string would end at the NUL and open a.mp4: the path names no file.
    with pytest.raises(msce.DecodeError, match="NUL byte"):
        msce.VideoReader(str(clip) + "\0.txt")


def test_missing_and_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(msce.DecodeError, match="No such file or directory") as info:
        msce.VideoReader(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(info.value)
    clip = _clip(tmp_path, "locked.mp4", "-c:v", "libx264")
    clip.chmod(0)
    try:
        if os.access(clip, os.R_OK):  # root reads anything: nothing to check
            return
        with pytest.raises(msce.DecodeError, match="Permission denied") as info:
            msce.VideoReader(clip)
        assert "locked.mp4" in str(info.value)
    finally:
        clip.chmod(0o644)


def test_symlink_to_a_regular_file_is_read(tmp_path):
    clip = _clip(tmp_path, "a.mp4", "-c:v", "libx264")
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert msce.VideoReader(link).metadata.num_frames == 25


def test_protocol_urls_are_file_names_by_default(tmp_path, monkeypatch):
    clip = _clip(tmp_path, "a.ts", "-c:v", "libx264")
    # Before the fix this loaded 50 frames from two files although no such file exists.
    with pytest.raises(msce.DecodeError, match="No such file or directory"):
        msce.VideoReader(f"concat:{clip}|{clip}")
    for url in ("http://127.0.0.1:9/x.mp4", f"subfile,,start,0,end,0,,:{clip}", "pipe:0", f"file:{clip}"):
        with pytest.raises(msce.DecodeError, match="No such file or directory"):
            msce.VideoReader(url)
    # A real file whose name looks like a URL is just a file.
    monkeypatch.chdir(tmp_path)
    odd = Path(f"concat:{clip.name}|x.ts")
    odd.write_bytes(clip.read_bytes())
    assert msce.VideoReader(str(odd)).metadata.num_frames == 25


def test_protocols_opt_in(tmp_path):
    clip = _clip(tmp_path, "a.ts", "-c:v", "libx264")
    reader = msce.VideoReader(f"file:{clip}", protocols="file")
    assert reader.metadata.num_frames == len(_ffprobe_packets(clip)) == 25
    assert reader.get_frames([0, 24]).shape == (2, 120, 160, 3)
    url = f"concat:{clip}|{clip}"
    assert msce.VideoReader(url, protocols=("file", "concat")).metadata.num_frames > 25
    with pytest.raises(msce.DecodeError, match="allowed protocols: file"):
        msce.VideoReader(url, protocols="file")


def test_demuxers_cannot_open_other_files(tmp_path):
    _clip(tmp_path, "seg.ts", "-c:v", "libx264")
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg.ts\n#EXT-X-ENDLIST\n")
    script = tmp_path / "list.ffconcat"
    script.write_text("ffconcat version 1.0\nfile 'seg.ts'\n")
    for path in (playlist, script):
        with pytest.raises(msce.DecodeError, match="naming other files") as info:
            msce.VideoReader(path)
        assert path.name in str(info.value)
    # Opting in to the file protocol lifts the one-file rule (the playlist is then read).
    assert msce.VideoReader(script, protocols="file").metadata.num_frames == 25


def test_undecodable_utf8_path(tmp_path):
    clip = _clip(tmp_path, "a.mp4", "-c:v", "libx264")
    raw = os.fsencode(tmp_path) + b"/clip-\xff.mp4"
    try:
        os.link(clip, raw)
    except OSError:
        return  # a filesystem that refuses non-UTF-8 names: nothing to check
    name = os.fsdecode(raw)  # surrogate-escaped str
    meta = msce.VideoReader(name).metadata
    assert meta.num_frames == 25 and meta.path == name


# ---- lying timing --------------------------------------------------------------------------

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _mp4_box(data: bytes, kind: bytes, off: int = 0, end: int | None = None, chain: tuple = ()) -> tuple:
    """Offsets of the enclosing boxes and of the first `kind` box (depth-first)."""
    end = len(data) if end is None else end
    while off + 8 <= end:
        size, typ = struct.unpack(">I4s", data[off:off + 8])
        if typ == kind:
            return chain + (off,)
        if typ in _MP4_CONTAINERS:
            found = _mp4_box(data, kind, off + 8, off + size, chain + (off,))
            if found:
                return found
        off += size
    return ()


def _mp4_without_edit_list(data: bytes) -> bytes:
    *_, edts = _mp4_box(data, b"edts")
    return data[:edts + 4] + b"free" + data[edts + 8:]


def _mp4_flip_ctts(data: bytes, entry: int, bit: int) -> bytes:
    *_, ctts = _mp4_box(data, b"ctts")
    count = struct.unpack(">I", data[ctts + 12:ctts + 16])[0]
    assert entry < count
    pos = ctts + 16 + 8 * entry + 4
    value = struct.unpack(">I", data[pos:pos + 4])[0] ^ (1 << bit)
    return data[:pos] + struct.pack(">I", value) + data[pos + 4:]


def _mp4_last_sample_delta(data: bytes, delta: int, media_duration: int) -> bytes:
    """stts with the last sample lasting `delta` ticks and mdhd claiming `media_duration`."""
    *parents, stts = _mp4_box(data, b"stts")
    size, count = struct.unpack(">I", data[stts:stts + 4])[0], struct.unpack(">I", data[stts + 12:stts + 16])[0]
    entries = [struct.unpack(">II", data[stts + 16 + 8 * i:stts + 24 + 8 * i]) for i in range(count)]
    n, d = entries[-1]
    entries[-1:] = [(n - 1, d), (1, delta)] if n > 1 else [(1, delta)]
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", *e) for e in entries)
    box = struct.pack(">I4s", 8 + len(body), b"stts") + body
    out = bytearray(data[:stts] + box + data[stts + size:])
    assert data.index(b"mdat") < parents[0], "moov must follow mdat (no chunk offset may move)"
    for p in parents:
        struct.pack_into(">I", out, p, struct.unpack(">I", out[p:p + 4])[0] + len(box) - size)
    mdhd = bytes(out).index(b"mdhd") - 4
    assert out[mdhd + 8] == 0  # version 0: 32-bit fields
    struct.pack_into(">I", out, mdhd + 24, media_duration)
    return bytes(out)


def _assert_one_second(reader, frames: int = 25) -> None:
    meta = reader.metadata
    assert meta.num_frames == frames
    assert meta.duration == pytest.approx(1.0, abs=0.05), meta.duration
    assert meta.average_fps == pytest.approx(25.0, rel=0.05)
    assert all(b > a for a, b in zip(meta.timestamps, meta.timestamps[1:]))
    assert meta.timestamps[-1] < meta.duration
    assert reader.get_frames(list(range(frames))).shape[0] == frames


def test_one_flipped_timestamp(tmp_path):
    """One composition offset with bit 24 flipped (no edit list to hide it): ffprobe shows a
    frame 1310 s after the others; msce reports the 1-s clip as 1 s and decodes every frame."""
    clip = _clip(tmp_path, "a.mp4", "-c:v", "libx264", "-g", "10", "-movflags", "+faststart")
    lying = tmp_path / "flipped.mp4"
    lying.write_bytes(_mp4_flip_ctts(_mp4_without_edit_list(clip.read_bytes()), entry=10, bit=24))
    pts = sorted(int(p["pts"]) for p in _ffprobe_packets(lying))
    assert (pts[-1] - pts[0]) / 12800 > 1000  # the lie is in the file
    _assert_one_second(msce.VideoReader(lying))


def test_lying_last_duration_mkv(tmp_path):
    """Matroska DefaultDuration set to 4.29 s (ffprobe gives every packet that duration)."""
    clip = _clip(tmp_path, "a.mkv", "-c:v", "libx264")
    data = clip.read_bytes()
    i = data.index(bytes.fromhex("23E38384"))  # DefaultDuration, 4-byte value
    lying = tmp_path / "lying.mkv"
    lying.write_bytes(data[:i + 4] + b"\xff\xff\xff\x00" + data[i + 8:])
    assert int(_ffprobe_packets(lying)[-1]["duration"]) > 4000  # milliseconds
    _assert_one_second(msce.VideoReader(lying))


def test_lying_stts_and_mdhd(tmp_path):
    """The last sample lasting 100000 frame periods in stts and mdhd: whatever the demuxer
    makes of it, the reader reports 1 s."""
    clip = _clip(tmp_path, "a.mp4", "-c:v", "libx264")  # moov after mdat: growing stts moves no chunk
    data = _mp4_without_edit_list(clip.read_bytes())
    lying = tmp_path / "stts.mp4"
    lying.write_bytes(_mp4_last_sample_delta(data, 512 * 100000, 12800 * 100000))
    _assert_one_second(msce.VideoReader(lying))


def test_lying_avi_stream_header(tmp_path):
    """strh dwLength claims 10^9 frames: ffprobe's duration is 4e7 s, the reader's 1 s."""
    clip = _clip(tmp_path, "a.avi", "-c:v", "mpeg4")
    data = bytearray(clip.read_bytes())
    strh = data.index(b"strh")
    struct.pack_into("<I", data, strh + 8 + 32, 10**9)  # fccType, fccHandler, ... dwLength
    lying = tmp_path / "lying.avi"
    lying.write_bytes(bytes(data))
    exe = require_tool("ffprobe")
    claimed = float(subprocess.run([exe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                    str(lying)], capture_output=True, text=True, check=True).stdout)
    assert claimed > 1e6
    _assert_one_second(msce.VideoReader(lying))


def test_real_pause_is_kept(tmp_path):
    """A long pause with many frames after it is real timing, not a stray timestamp."""
    a = _clip(tmp_path, "a.mkv", "-c:v", "libx264")
    out = _ffmpeg("-i", str(a), "-vf", "setpts='if(gte(N,10),PTS+30/TB,PTS)'", "-fps_mode", "passthrough",
                  "-c:v", "libx264", out=tmp_path / "pause.mkv")
    meta = msce.VideoReader(out).metadata
    assert meta.num_frames == 25
    assert meta.timestamps[10] - meta.timestamps[9] == pytest.approx(30.04, abs=0.01)
    assert meta.duration == pytest.approx(31.0, abs=0.05)


# ---- swscale formats follow FFmpeg's default conversion -------------------------------------

SWSCALE_CLIPS = [
    ("h264_yuv420p10le", ("-c:v", "libx264", "-pix_fmt", "yuv420p10le"), ("libx264",)),
    ("h264_yuv422p", ("-c:v", "libx264", "-pix_fmt", "yuv422p"), ("libx264",)),
    ("h264_yuv444p", ("-c:v", "libx264", "-pix_fmt", "yuv444p"), ("libx264",)),
    ("h264_yuv422p10le", ("-c:v", "libx264", "-pix_fmt", "yuv422p10le"), ("libx264",)),
    ("hevc_yuv420p10le", ("-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le"),
     ("libx265",)),
]


@pytest.mark.parametrize("name, codec, encoders", SWSCALE_CLIPS, ids=[c[0] for c in SWSCALE_CLIPS])
def test_swscale_formats_match_pyav_rgb24(tmp_path, name, codec, encoders):
    clip = _clip(tmp_path, name + ".mp4", *codec, seconds=0.4, size="320x240")
    reader = msce.VideoReader(clip)
    got = reader.get_frames(list(range(reader.metadata.num_frames))).astype(np.int16)
    with av.open(str(clip)) as container:
        want = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.int16)
    diff = np.abs(got - want)
    print(f"{name}: {reader.metadata.pixel_format} vs PyAV rgb24: mean {diff.mean():.4f} max {diff.max()}")
    assert got.shape == want.shape
    assert diff.mean() <= 1.0
    assert diff.max() <= 3


# ---- FFmpeg's log lines -----------------------------------------------------------------------

_DECODE_CORRUPT = """
    import json, logging, sys
    import msce
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelname, record.getMessage()))
    if sys.argv[-1] == "handler":
        logging.getLogger("msce.ffmpeg").addHandler(Keep())
        logging.getLogger("msce.ffmpeg").setLevel(logging.DEBUG)
    r = msce.VideoReader({path!r}, threads=2)
    try:
        r.get_frames(list(range(r.metadata.num_frames)))
    except msce.DecodeError:
        pass
    print(json.dumps(records))
"""


def _decode_corrupt(path: Path, mode: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    full_env.pop("MSCE_LOG_LEVEL", None)
    full_env.update(env or {})
    code = textwrap.dedent(_DECODE_CORRUPT.format(path=str(path)))
    return subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=120,
                          env=full_env)


def test_ffmpeg_lines_stay_off_stderr_and_reach_logging(media_clip):
    path = media_clip("corrupt_mp4")
    quiet = _decode_corrupt(path, "plain")
    assert quiet.returncode == 0, quiet.stderr
    assert not any(m in quiet.stderr for m in FFMPEG_LINE_MARKERS), quiet.stderr
    assert quiet.stderr.strip() == ""

    logged = _decode_corrupt(path, "handler")
    assert logged.returncode == 0, logged.stderr
    assert logged.stderr.strip() == ""
    records = json.loads(logged.stdout)
    assert records, "the corrupt clip produced no FFmpeg error lines"
    assert all(level == "WARNING" for level, _ in records)  # default: FFmpeg errors only
    assert any("[h264 @" in text for _, text in records)
    assert not any(text.endswith("\n") for _, text in records)

    verbose = _decode_corrupt(path, "handler", {"MSCE_LOG_LEVEL": "debug"})
    assert verbose.returncode == 0, verbose.stderr
    more = json.loads(verbose.stdout)
    assert len(more) > len(records) and {"DEBUG"} <= {level for level, _ in more}

    silent = _decode_corrupt(path, "handler", {"MSCE_LOG_LEVEL": "quiet"})
    assert json.loads(silent.stdout) == []


def test_log_level_setting():
    from msce._native import C

    before = C.ffmpeg_log_level()
    try:
        C.set_ffmpeg_log_level("warning")
        assert C.ffmpeg_log_level() == 24
        C.set_ffmpeg_log_level(40)
        assert C.ffmpeg_log_level() == 40
        with pytest.raises(ValueError, match="log level"):
            C.set_ffmpeg_log_level("loud")
    finally:
        C.set_ffmpeg_log_level(before)


# ---- messages on damaged files ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["text_as_mp4", "truncated_nomoov_mp4", "empty_mp4"])
def test_damaged_files_are_called_corrupt(media_clip, name):
    path = media_clip(name)
    with pytest.raises(msce.DecodeError) as info:
        msce.VideoReader(path)
    text = str(info.value)
    assert path.name in text and "looks corrupt or truncated" in text


# ---- damaged frames are reported ---------------------------------------------------------------

def test_damaged_frames_are_reported_like_pyav(tmp_path):
    """MPEG-2 with bytes inverted at seeded places: the frames the decoder flags (error
    concealment, AV_FRAME_FLAG_CORRUPT) are those PyAV's ``is_corrupt`` names."""
    clip = _clip(tmp_path, "m2.ts", "-c:v", "mpeg2video", "-g", "12", seconds=2.0)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(3)
    for i in rng.integers(len(data) // 8, len(data) - 1000, 12):
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    with av.open(str(damaged)) as container:
        flags = [f.is_corrupt for f in container.decode(video=0)]
    want = [i for i, bad in enumerate(flags) if bad]
    assert want, "the damage produced no flagged frame"
    reader = msce.VideoReader(damaged)
    assert reader.metadata.num_frames == len(flags)
    reader.get_frames(list(range(len(flags))))
    assert reader.last_stats["damaged_frames"] == want

    intact = msce.VideoReader(clip)
    intact.get_frames(list(range(intact.metadata.num_frames)))
    assert intact.last_stats["damaged_frames"] == []
