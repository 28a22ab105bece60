"""Deterministic test clips, generated with the ffmpeg CLI.

``make_media(out_dir)`` writes every clip this ffmpeg can make into ``out_dir`` and
returns ``{name: path}``. Names are stable; a clip whose encoder this ffmpeg lacks is
left out of the dict (tests skip on a missing key, a failure under MSCE_STRICT=1;
``missing_encoders(name)`` says which). Every clip is small (<= 320 px,
<= 8 s) so the whole set builds in a few seconds.

Content is ``testsrc2`` (moving shapes and a frame counter, so every frame differs),
softened by a light blur so that colour comparisons between converters that upsample
chroma differently stay within a level or two. Broken files (truncated, corrupt,
mislabelled, lying headers) are derived from good clips by cutting or patching bytes
with fixed offsets and a fixed seed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["make_media", "CLIP_NAMES", "ffmpeg_available", "ffmpeg_version", "missing_encoders", "cache_key"]

_BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]
_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1"]
_X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
         "log-level=error:pools=none:frame-threads=1"]


def _source(width: int, height: int, rate: float, seconds: float) -> list[str]:
    """A lavfi input: testsrc2 with a light blur (smooth chroma edges). Odd sizes are cut
    from the next even size in RGB (testsrc2 and 4:2:0 crops round to even)."""
    graph = f"testsrc2=size={width + width % 2}x{height + height % 2}:rate={rate}"
    if width % 2 or height % 2:
        graph += f",format=rgb24,crop={width}:{height}:0:0"
    return ["-f", "lavfi", "-t", str(seconds), "-i", graph + ",gblur=sigma=1.2"]


def _sine(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]


@dataclass(frozen=True)
class _Clip:
    name: str
    filename: str
    args: tuple[str, ...] = ()            # between "ffmpeg -v error -y" and the output; see _expand
    encoders: tuple[str, ...] = ()        # encoders the clip needs
    base: str | None = None               # derive from this clip instead of running ffmpeg
    post: Callable[[bytes], bytes] | None = field(default=None, compare=False)


# ---- byte patchers for broken files ---------------------------------------------------

def _cut_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_middle(data: bytes) -> bytes:
    """Overwrite 1.5 KiB at 40% and 3 KiB at 70% of the file with seeded random bytes."""
    rng = random.Random(1234)
    out = bytearray(data)
    for frac, size in ((0.40, 1536), (0.70, 3072)):
        start = int(len(out) * frac)
        out[start:start + size] = bytes(rng.randrange(256) for _ in range(size))[: len(out) - start]
    return bytes(out)


def _avi_chunk(data: bytes, fourcc: bytes) -> int:
    """Offset of the payload of the first AVI header chunk `fourcc` (after id and size)."""
    at = data.find(fourcc)
    if at < 0:
        raise ValueError(f"AVI chunk {fourcc!r} not found")
    return at + 8


def _avi_lie_frame_count(data: bytes) -> bytes:
    """Claim 1000 frames in avih.dwTotalFrames, strh.dwLength and the OpenDML dmlh."""
    out = bytearray(data)
    struct.pack_into("<I", out, _avi_chunk(data, b"avih") + 16, 1000)
    struct.pack_into("<I", out, _avi_chunk(data, b"strh") + 32, 1000)
    if data.find(b"dmlh") >= 0:
        struct.pack_into("<I", out, _avi_chunk(data, b"dmlh"), 1000)
    return bytes(out)


def _avi_unknown_fourcc(data: bytes) -> bytes:
    """Relabel the video codec as fourcc 'QQQQ' (no FFmpeg decoder knows it)."""
    out = bytearray(data)
    out[_avi_chunk(data, b"strh") + 4: _avi_chunk(data, b"strh") + 8] = b"QQQQ"
    out[_avi_chunk(data, b"strf") + 16: _avi_chunk(data, b"strf") + 20] = b"QQQQ"
    return bytes(out)


def _avi_huge_dims(data: bytes) -> bytes:
    """Claim a 20000x8000 picture in avih and in the BITMAPINFOHEADER.

    (FFmpeg itself rejects sizes whose area overflows, so stay below that.)
    """
    out = bytearray(data)
    struct.pack_into("<II", out, _avi_chunk(data, b"avih") + 32, 20000, 8000)
    struct.pack_into("<ii", out, _avi_chunk(data, b"strf") + 4, 20000, 8000)
    return bytes(out)


# ---- the clip table -------------------------------------------------------------------

def _h264(*extra: str) -> tuple[str, ...]:
    return (*_X264, "-pix_fmt", "yuv420p", *extra)


_CLIPS: tuple[_Clip, ...] = (
    # Mainstream codecs and containers.
    _Clip("h264_mp4", "h264.mp4",
          (*_source(320, 240, 25, 2), *_sine(2), *_h264("-g", "25"), "-c:a", "aac", "-b:a", "32k"),
          ("libx264", "aac")),
    _Clip("h264_bframes_mkv", "h264_bframes.mkv",
          (*_source(256, 144, 30, 2), *_h264("-bf", "2", "-g", "30")), ("libx264",)),
    _Clip("hevc_mp4", "hevc.mp4",
          (*_source(256, 144, 25, 2), *_X265, "-pix_fmt", "yuv420p", "-g", "25", "-tag:v", "hvc1"),
          ("libx265",)),
    _Clip("vp9_webm", "vp9.webm",
          (*_source(256, 144, 25, 2), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
           "-threads", "1", "-b:v", "300k", "-g", "25", "-pix_fmt", "yuv420p"), ("libvpx-vp9",)),
    # AV1 (libaom, one thread: deterministic) in MP4, VP8 in WebM.
    _Clip("av1_mp4", "av1.mp4",
          (*_source(176, 144, 25, 2), "-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "0", "-threads", "1",
           "-b:v", "200k", "-g", "25", "-pix_fmt", "yuv420p"), ("libaom-av1",)),
    _Clip("vp8_webm", "vp8.webm",
          (*_source(176, 144, 25, 2), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
           "-threads", "1", "-b:v", "300k", "-g", "25", "-pix_fmt", "yuv420p"), ("libvpx",)),
    # MPEG-2 with B-frames in an MPEG program stream (timestamps start at 0.5 s, not 0).
    _Clip("mpeg2_mpg", "mpeg2.mpg",
          (*_source(176, 144, 25, 2), "-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "4",
           "-pix_fmt", "yuv420p"), ("mpeg2video",)),
    # QuickTime: H.264 with B-frames and AAC audio, as phones write it.
    _Clip("h264_mov", "h264.mov",
          (*_source(256, 144, 30, 2), *_sine(2), *_h264("-bf", "2", "-g", "30"), "-c:a", "aac", "-b:a", "32k"),
          ("libx264", "aac")),
    # MPEG-4 part 2 with B-frames in AVI: packets of anchor frames carry no pts.
    _Clip("mpeg4_avi", "mpeg4.avi",
          (*_source(176, 144, 25, 2), "-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "4"), ("mpeg4",)),
    # MJPEG 4:2:2 full range (yuvj422p): converted by swscale.
    _Clip("mjpeg_avi", "mjpeg.avi",
          (*_source(160, 120, 15, 2), "-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-q:v", "3"), ("mjpeg",)),
    # Odd sizes: 4:2:0 read directly (ffv1) and 4:4:4 through swscale (x264 High 4:4:4).
    _Clip("odd_size_mkv", "odd_size.mkv",
          (*_source(321, 241, 15, 1.5), "-c:v", "ffv1", "-pix_fmt", "yuv420p"), ("ffv1",)),
    _Clip("yuv444p_mkv", "yuv444p.mkv",
          (*_source(321, 241, 15, 1.5), *_X264, "-pix_fmt", "yuv444p"), ("libx264",)),
    # Other pixel formats: gray (ffv1), rgb24 (png), nv12 (raw).
    _Clip("gray_mkv", "gray.mkv",
          (*_source(96, 64, 10, 1), "-c:v", "ffv1", "-pix_fmt", "gray"), ("ffv1",)),
    _Clip("rgb24_mkv", "rgb24.mkv",
          (*_source(96, 64, 10, 1), "-c:v", "png", "-pix_fmt", "rgb24"), ("png",)),
    _Clip("nv12_mkv", "nv12.mkv",
          (*_source(96, 64, 10, 1), "-c:v", "rawvideo", "-pix_fmt", "nv12"), ("rawvideo",)),
    # Display rotation: a display matrix asking for `cw` degrees clockwise (rotated90 is
    # what a phone held upright writes: ffprobe "rotation=-90"), added by a stream copy.
    _Clip("unrotated_mp4", "unrotated.mp4", (*_source(320, 240, 25, 1), *_h264("-g", "10")),
          ("libx264",)),
    _Clip("rotated90_mp4", "rotated90.mp4", ("{unrotated_mp4}", "rotate:90")),
    _Clip("rotated270_mp4", "rotated270.mp4", ("{unrotated_mp4}", "rotate:270")),
    _Clip("rotated180_mp4", "rotated180.mp4", ("{unrotated_mp4}", "rotate:180")),
    # Variable frame rate: 1 s at 10 fps, 1 s at 30 fps, 1 s at 5 fps (45 frames).
    _Clip("vfr_mkv", "vfr.mkv",
          ("-f", "lavfi", "-t", "3", "-i", "testsrc2=size=160x120:rate=10,gblur=sigma=1.2",
           "-filter_complex",
           "[0:v]split=3[a][b][c];[a]trim=0:1,setpts=PTS-STARTPTS[a1];"
           "[b]trim=1:2,fps=30,setpts=PTS-STARTPTS[b1];"
           "[c]trim=2:3,fps=5,setpts=PTS-STARTPTS[c1];"
           "[a1][b1][c1]concat=n=3:v=1:a=0[v]",
           "-map", "[v]", "-fps_mode", "vfr", *_h264("-bf", "2", "-g", "15")), ("libx264",)),
    # High bit depth and colour tags.
    _Clip("h264_10bit_mp4", "h264_10bit.mp4",
          (*_source(320, 240, 25, 1), *_X264, "-pix_fmt", "yuv420p10le", "-g", "10"), ("libx264",)),
    _Clip("bt709_full_mp4", "bt709_full.mp4",
          (*_source(320, 240, 25, 1), "-vf", "scale=out_color_matrix=bt709:out_range=full",
           *_h264("-g", "10"), "-color_range", "pc", "-colorspace", "bt709",
           "-color_primaries", "bt709", "-color_trc", "bt709"), ("libx264",)),
    _Clip("bt2020_10bit_mkv", "bt2020_10bit.mkv",
          (*_source(256, 144, 25, 1), "-vf", "scale=out_color_matrix=bt2020",
           *_X265, "-pix_fmt", "yuv420p10le", "-colorspace", "bt2020nc",
           "-color_primaries", "bt2020", "-color_trc", "bt2020-10", "-color_range", "tv"),
          ("libx265",)),
    # Seeking: the same content with one GOP (keyint 250) and with a keyframe every 10 frames.
    _Clip("long_gop_h264_mp4", "long_gop_h264.mp4",
          (*_source(160, 120, 25, 8), *_h264("-bf", "2", "-g", "250", "-sc_threshold", "0")),
          ("libx264",)),
    _Clip("short_gop_h264_mp4", "short_gop_h264.mp4",
          (*_source(160, 120, 25, 8), *_h264("-bf", "2", "-g", "10", "-keyint_min", "10",
                                             "-sc_threshold", "0")), ("libx264",)),
    _Clip("short_gop_h264_ts", "short_gop_h264.ts",
          (*_source(160, 120, 25, 4), *_h264("-bf", "2", "-g", "10", "-keyint_min", "10",
                                             "-sc_threshold", "0")), ("libx264",)),
    # Broken files.
    _Clip("faststart_h264_mp4", "faststart_h264.mp4",
          (*_source(160, 120, 25, 4), *_h264("-g", "10"), "-movflags", "+faststart"), ("libx264",)),
    _Clip("truncated_mp4", "truncated.mp4", base="faststart_h264_mp4", post=_cut_half),
    _Clip("truncated_nomoov_mp4", "truncated_nomoov.mp4", base="short_gop_h264_mp4", post=_cut_half),
    _Clip("corrupt_mp4", "corrupt.mp4", base="faststart_h264_mp4", post=_corrupt_middle),
    _Clip("plain_mpeg4_avi", "plain_mpeg4.avi",
          (*_source(96, 64, 10, 2), "-c:v", "mpeg4", "-q:v", "4"), ("mpeg4",)),
    _Clip("header_lying_avi", "header_lying.avi", base="plain_mpeg4_avi", post=_avi_lie_frame_count),
    _Clip("unknown_codec_avi", "unknown_codec.avi", base="plain_mpeg4_avi", post=_avi_unknown_fourcc),
    _Clip("raw_gray_avi", "raw_gray.avi",
          (*_source(16, 16, 10, 0.5), "-c:v", "rawvideo", "-pix_fmt", "gray"), ("rawvideo",)),
    _Clip("huge_dims_avi", "huge_dims.avi", base="raw_gray_avi", post=_avi_huge_dims),
    _Clip("zero_frames_avi", "zero_frames.avi",
          ("{plain_mpeg4_avi}", "-c", "copy", "-frames:v", "0"), ("mpeg4",)),
    _Clip("audio_only_m4a", "audio_only.m4a", (*_sine(1), "-c:a", "aac", "-b:a", "32k"), ("aac",)),
    _Clip("audio_only_wav", "audio_only.wav", (*_sine(1), "-c:a", "pcm_s16le"), ("pcm_s16le",)),
)

CLIP_NAMES: tuple[str, ...] = (*(c.name for c in _CLIPS), "text_as_mp4", "empty_mp4")
_TEXT = b"This is a text file, not a video.\n" * 40


@functools.lru_cache(maxsize=1)
def _encoders() -> frozenset[str]:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` (version, build), or "" without ffmpeg."""
    if not ffmpeg_available():
        return ""
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0] if out else ""


def cache_key(ffmpeg: str, pyav: str) -> str:
    """Directory name for the clips: a hash of this file's text, `ffmpeg` (``ffmpeg -version``'s
    first line: the encoders) and `pyav` (PyAV's and its libav*'s versions: the decoder the tests
    check them with). A change to any of them builds and checks a fresh set."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for part in (ffmpeg, pyav):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def missing_encoders(name: str) -> list[str]:
    """Encoders that clip `name` (or a clip it is derived from) needs and this ffmpeg lacks."""
    by_name = {c.name: c for c in _CLIPS}
    needed: set[str] = set()
    todo = [name] if name in by_name else []
    while todo:
        clip = by_name[todo.pop()]
        needed.update(clip.encoders)
        todo.extend(_depends_on(clip))
    return sorted(needed - _encoders())


def _run_ffmpeg(args: list[str], out: Path) -> None:
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *args, *_BITEXACT, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}) for {out.name}: {' '.join(cmd)}\n{proc.stderr}")


def _build(clip: _Clip, out_dir: Path, made: dict[str, Path]) -> Path:
    """Writes one clip under a temporary name, then renames it: a file under its final
    name is always complete, even with several sessions building at once."""
    out = out_dir / clip.filename
    if out.exists():
        return out
    tmp = out.with_name(f"{out.stem}.part{os.getpid()}{out.suffix}")  # keeps the extension for ffmpeg
    if clip.base is not None:
        tmp.write_bytes(made[clip.base].read_bytes())
    else:
        _run_ffmpeg(_expand(clip.args, made), tmp)
    if clip.post is not None:
        tmp.write_bytes(clip.post(tmp.read_bytes()))
    tmp.replace(out)
    return out


@functools.lru_cache(maxsize=1)
def _has_display_rotation() -> bool:
    """ffmpeg >= 6 sets display matrices with -display_rotation; 5.x maps a "rotate" tag."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-h", "full"], capture_output=True, text=True).stdout
    return "-display_rotation" in out


def _expand(args: tuple[str, ...], made: dict[str, Path]) -> list[str]:
    """Expand "{name}" (input: an earlier clip's path) and "rotate:CW" (a display matrix
    asking for CW degrees clockwise; both ffmpeg spellings take counter-clockwise degrees)."""
    out: list[str] = []
    for a in args:
        if a.startswith("{") and a.endswith("}"):
            out += ["-i", str(made[a[1:-1]])]
        elif a.startswith("rotate:"):
            ccw = (360 - int(a.split(":")[1])) % 360
            if _has_display_rotation():
                out = ["-display_rotation", str(ccw), *out, "-c", "copy"]
            else:
                out += ["-c", "copy", "-metadata:s:v:0", f"rotate={ccw}"]
        else:
            out.append(a)
    return out


def _depends_on(clip: _Clip) -> set[str]:
    deps = {clip.base} if clip.base else set()
    deps |= {a[1:-1] for a in clip.args if a.startswith("{") and a.endswith("}")}
    return deps


def make_media(out_dir: Path) -> dict[str, Path]:
    """Generate every clip this ffmpeg supports into `out_dir` (reusing files already there).

    Returns ``{name: path}``. Clips whose encoder is missing are omitted, as are clips
    derived from them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoders = _encoders()
    made: dict[str, Path] = {}
    pending = [c for c in _CLIPS if all(e in encoders for e in c.encoders)]
    # Build in waves: a clip runs once the clips it derives from exist.
    with ThreadPoolExecutor(max_workers=8) as pool:
        while pending:
            ready = [c for c in pending if _depends_on(c) <= made.keys()]
            blocked = [c for c in pending if not _depends_on(c) <= made.keys()]
            if not ready:  # derived from a skipped clip
                break
            for clip, path in zip(ready, pool.map(lambda c: _build(c, out_dir, made), ready)):
                made[clip.name] = path
            pending = blocked
    # Not videos at all, whatever the extension says.
    for name, filename, data in (("text_as_mp4", "text_as.mp4", _TEXT), ("empty_mp4", "empty.mp4", b"")):
        path = out_dir / filename
        if not path.exists():
            tmp = path.with_name(f"{path.name}.part{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        made[name] = path
    return made


if __name__ == "__main__":  # python tests/media.py OUT_DIR
    import sys

    for name, path in make_media(Path(sys.argv[1] if len(sys.argv) > 1 else "media_out")).items():
        print(f"{name:24s} {path}")
