"""Fuzzing the reader with damaged files: never a crash, a hang, a stray exception type or a
memory blow-up, whatever the bytes.

A seeded corpus is made with the ffmpeg CLI (mp4, mkv, avi, ts, webm; H.264 8/10-bit, HEVC,
MPEG-4 part 2, MPEG-2, MJPEG, VP9), then mutated with a seeded ``numpy.random.Generator``:
structured mutations of container fields (mp4 box sizes and table entries, EBML element sizes
and values, AVI chunk headers, MPEG-TS packet headers and PES timestamps) and plain byte/bit
flips, truncations and splices. Each mutant is opened and decoded (tests/native/_fuzz_worker.py)
in a process of its own under RLIMIT_AS = 2 GiB with a 20-s limit. Asserted: no signal, no
timeout, only msce.errors classes raised, peak RSS under 1 GiB (under AddressSanitizer: 1 GiB
above an intact input's peak, and no RLIMIT_AS). The classification table
(outcome -> count) is printed (pytest -s, or -rA).

The normal suite runs FUZZ_MUTANTS mutants; the ``slow`` test runs MSCE_FUZZ_MUTANTS (default
3000) with another seed.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import re
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _deps import require_tool

FUZZ_MUTANTS = 240
TIME_LIMIT_S = 20
ADDRESS_SPACE = 2 << 30
MAX_PEAK_RSS = 1 << 30
WORKER = Path(__file__).with_name("_fuzz_worker.py")

# name, file name, ffmpeg output arguments, encoder the clip needs
_CORPUS = [
    ("h264_mp4", "h264.mp4", ["-c:v", "libx264", "-g", "5", "-bf", "2", "-movflags", "+faststart"], "libx264"),
    ("h264_10bit_mkv", "h264_10.mkv", ["-c:v", "libx264", "-g", "6", "-pix_fmt", "yuv420p10le"], "libx264"),
    ("hevc_mp4", "hevc.mp4", ["-c:v", "libx265", "-x265-params", "log-level=none:keyint=6"], "libx265"),
    ("mpeg4_avi", "mpeg4.avi", ["-c:v", "mpeg4", "-g", "5", "-bf", "1"], "mpeg4"),
    ("mpeg2_ts", "mpeg2.ts", ["-c:v", "mpeg2video", "-g", "5"], "mpeg2video"),
    ("h264_ts", "h264.ts", ["-c:v", "libx264", "-g", "5"], "libx264"),
    ("mjpeg_avi", "mjpeg.avi", ["-c:v", "mjpeg"], "mjpeg"),
    ("vp9_webm", "vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "6"], "libvpx-vp9"),
]


def _encoders(ffmpeg: str) -> str:
    return subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, bytes]:
    ffmpeg = require_tool("ffmpeg")
    have = _encoders(ffmpeg)
    out_dir = tmp_path_factory.mktemp("fuzz_corpus")
    clips = {}
    for name, file, args, encoder in _CORPUS:
        if f" {encoder} " not in have:
            continue  # this ffmpeg lacks the encoder: the corpus is smaller, the test still runs
        out = out_dir / file
        subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-t", "0.48",
                        *args, "-fflags", "+bitexact", "-flags:v", "+bitexact", str(out)], check=True,
                       capture_output=True)
        clips[name] = out.read_bytes()
    assert len(clips) >= 4, f"only {sorted(clips)} could be made"
    return clips


# ---- mutations ------------------------------------------------------------------------------

_EXTREMES = (0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE)
_MP4_PARENTS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex", b"moof", b"traf"}
# EBML IDs: Segment, Cluster, Tracks, TrackEntry, Video, PixelWidth, PixelHeight, DefaultDuration,
# CodecID, CodecPrivate, SimpleBlock, BlockGroup, Timecode, TimecodeScale, Cues, CuePoint, CueTime,
# CueClusterPosition, SeekHead, Seek, SeekPosition, Duration, TrackNumber, EBMLMaxSizeLength
_EBML_IDS = [bytes.fromhex(h) for h in (
    "18538067", "1F43B675", "1654AE6B", "AE", "E0", "B0", "BA", "23E383", "86", "63A2", "A3", "A0", "E7",
    "2AD7B1", "1C53BB6B", "BB", "B3", "F1", "114D9B74", "4DBB", "53AC", "4489", "D7", "42F3")]
_AVI_CHUNKS = (b"RIFF", b"LIST", b"avih", b"strh", b"strf", b"idx1", b"movi", b"00dc", b"00db", b"indx", b"JUNK")


def _be32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def _mp4_boxes(data: bytes, off: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[int, int, bytes]]:
    end = len(data) if end is None else end
    boxes = []
    while off + 8 <= end and depth < 8:
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        if size < 8 or off + size > end:
            break
        boxes.append((off, size, kind))
        if kind in _MP4_PARENTS:
            boxes += _mp4_boxes(data, off + 8, off + size, depth + 1)
        elif kind == b"stsd":
            boxes += _mp4_boxes(data, off + 16, off + size, depth + 1)
        off += size
    return boxes


def _mut_mp4(data: bytearray, rng: np.random.Generator) -> str:
    boxes = _mp4_boxes(bytes(data))
    if not boxes:
        return _mut_bytes(data, rng)
    off, size, kind = boxes[rng.integers(len(boxes))]
    name = kind.decode("latin-1")
    if rng.random() < 0.3:
        value = int(rng.choice([0, 1, 7, 8, size - 1, size + 1, size * 2, 0xFFFFFFFF, int(rng.integers(1 << 32))]))
        data[off:off + 4] = _be32(value)
        return f"mp4 {name} size"
    if size <= 12:
        return _mut_bytes(data, rng)
    field = off + 8 + 4 * int(rng.integers((size - 8) // 4))
    data[field:field + 4] = _be32(int(rng.choice(_EXTREMES)) if rng.random() < 0.7 else int(rng.integers(1 << 32)))
    return f"mp4 {name} field"


def _mut_mkv(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(8):
        eid = _EBML_IDS[rng.integers(len(_EBML_IDS))]
        hits = [m.start() for m in re.finditer(re.escape(eid), bytes(data))]
        if not hits:
            continue
        at = hits[rng.integers(len(hits))] + len(eid)
        if at >= len(data) - 1:
            continue
        if rng.random() < 0.5:  # the size vint: a new first byte (length marker and top bits)
            data[at] = int(rng.choice([0x01, 0x08, 0x10, 0x40, 0x80, 0x81, 0xFF, int(rng.integers(256))]))
            return "mkv size"
        width = int(rng.integers(1, 5))
        data[at + 1:at + 1 + width] = bytes(rng.choice([0x00, 0xFF, int(rng.integers(256))]) for _ in range(width))
        return "mkv value"
    return _mut_bytes(data, rng)


def _mut_avi(data: bytearray, rng: np.random.Generator) -> str:
    kind = _AVI_CHUNKS[rng.integers(len(_AVI_CHUNKS))]
    hits = [m.start() for m in re.finditer(re.escape(kind), bytes(data))]
    if not hits:
        return _mut_bytes(data, rng)
    at = hits[rng.integers(len(hits))] + 4
    dword = at + 4 * int(rng.integers(0, 16)) if rng.random() < 0.7 else at
    if dword + 4 > len(data):
        return _mut_bytes(data, rng)
    value = int(rng.choice(_EXTREMES)) if rng.random() < 0.7 else int(rng.integers(1 << 32))
    data[dword:dword + 4] = struct.pack("<I", value)
    return f"avi {kind.decode()} field"


def _mut_ts(data: bytearray, rng: np.random.Generator) -> str:
    packets = len(data) // 188
    if packets == 0:
        return _mut_bytes(data, rng)
    at = 188 * int(rng.integers(packets))
    if rng.random() < 0.5:  # PID, flags, continuity counter
        i = at + int(rng.integers(1, 4))
        data[i] = int(rng.integers(256))
        return "ts header"
    pes = bytes(data).find(b"\x00\x00\x01", at, at + 188)
    if pes < 0 or pes + 19 > len(data):
        return _mut_bytes(data, rng)
    i = pes + int(rng.integers(4, 19))  # PES length, flags, header length, PTS/DTS
    data[i] ^= 1 << int(rng.integers(8))
    return "ts pes"


def _mut_bytes(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(len(data)))] = int(rng.integers(256))
    return "bytes"


def _mut_bits(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 17))):
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    return "bits"


def _mut_truncate(data: bytearray, rng: np.random.Generator) -> str:
    del data[int(rng.integers(len(data))):]
    return "truncate"


def _mut_splice(data: bytearray, rng: np.random.Generator) -> str:
    n = len(data)
    length = int(rng.integers(1, max(2, n // 8)))
    src, dst = int(rng.integers(n)), int(rng.integers(n))
    data[dst:dst + length] = data[src:src + length]
    return "splice"


_STRUCTURED = {"mp4": _mut_mp4, "mkv": _mut_mkv, "webm": _mut_mkv, "avi": _mut_avi, "ts": _mut_ts}
_GENERIC = (_mut_bytes, _mut_bits, _mut_truncate, _mut_splice)


def mutate(data: bytes, ext: str, rng: np.random.Generator) -> tuple[bytes, str]:
    out = bytearray(data)
    kinds = []
    for _ in range(int(rng.integers(1, 4))):  # one to three mutations stacked
        if rng.random() < 0.55:
            kinds.append(_STRUCTURED[ext](out, rng))
        else:
            kinds.append(_GENERIC[rng.integers(len(_GENERIC))](out, rng))
        if not out:
            break
    return bytes(out), "+".join(kinds)


# ---- running ----------------------------------------------------------------------------------

# AddressSanitizer (make sanitize) reserves terabytes of address space for its shadow memory,
# so under it the address-space limit is left off; the peak-RSS check still applies.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def _limits() -> None:  # in the child, before exec
    if not UNDER_ASAN:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _package_dir() -> str:
    """The folders holding the errors module and the native module these tests import (one
    folder for a wheel; two for an editable install, where the build lands in site-packages),
    joined with os.pathsep."""
    import msce._C  # noqa: PLC0415 - the copy of msce these tests import
    import msce.errors  # noqa: PLC0415

    dirs = dict.fromkeys(str(Path(m.__file__).parent) for m in (msce.errors, msce._C))
    return os.pathsep.join(dirs)


def _run_one(path: Path, package_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MSCE_LOG_LEVEL"}
    try:
        proc = subprocess.run([sys.executable, str(WORKER), package_dir, str(path)], capture_output=True, text=True,
                              timeout=TIME_LIMIT_S, preexec_fn=_limits, env=env)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "error": "timeout", "message": f"no answer within {TIME_LIMIT_S} s"}
    if proc.returncode < 0:
        return {"outcome": "crash", "error": f"signal {-proc.returncode}", "message": proc.stderr[-400:]}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"outcome": "other", "error": f"exit {proc.returncode}", "message": proc.stderr[-400:]}
    result = json.loads(lines[-1])
    result["stderr"] = proc.stderr
    return result


def _label(result: dict, path: Path) -> str:
    """Outcome class and message with the file name and numbers taken out."""
    if result["outcome"] == "ok":
        return "ok (decoded)"
    message = result["message"].replace(str(path), "<file>")
    message = re.sub(r"0x[0-9a-f]+|\d+", "N", message)
    return f"{result['error']}: {message[:110]}"


def _write(work: Path, name: str, data: bytes) -> Path:
    path = work / f"intact_{name}.{name.rsplit('_', 1)[1]}"
    path.write_bytes(data)
    return path


def fuzz(corpus: dict[str, bytes], count: int, seed: int, work: Path) -> None:
    rng = np.random.default_rng(seed)
    names = sorted(corpus)
    jobs = []
    for i in range(count):
        name = names[i % len(names)]
        ext = name.rsplit("_", 1)[1]
        data, how = mutate(corpus[name], ext, rng)
        path = work / f"m{i:05d}_{name}.{ext}"
        path.write_bytes(data)
        jobs.append((path, f"{name}: {how}"))
    package_dir = _package_dir()
    max_rss = MAX_PEAK_RSS
    if UNDER_ASAN:  # ASan's shadow and quarantine come on top: allow 1 GiB above an intact input
        baseline = max(int(_run_one(_write(work, name, corpus[name]), package_dir).get("peak_rss_kb", 0)) * 1024
                       for name in names)
        max_rss = baseline + MAX_PEAK_RSS
    table: collections.Counter[str] = collections.Counter()
    failures, peak = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: _run_one(job[0], package_dir), jobs))
    for (path, how), result in zip(jobs, results):
        table[_label(result, path)] += 1
        peak = max(peak, int(result.get("peak_rss_kb", 0)) * 1024)
        if result["outcome"] not in ("ok", "msce"):
            failures.append(f"{path.name} ({how}): {result['outcome']} {result['error']}: {result['message'][:300]}")
        elif int(result.get("peak_rss_kb", 0)) * 1024 > max_rss:
            failures.append(f"{path.name} ({how}): peak RSS {result['peak_rss_kb'] // 1024} MiB")
        elif result.get("stderr", "").strip():
            failures.append(f"{path.name} ({how}): wrote to stderr: {result['stderr'][:300]}")
        else:
            path.unlink()  # keep only the inputs that failed, for reproduction
    width = max(len(k) for k in table)
    print(f"\nfuzz: {count} mutants of {len(names)} clips (seed {seed}), peak RSS {peak / 2**20:.0f} MiB "
          f"(limit {max_rss / 2**20:.0f} MiB" + (", AddressSanitizer: no RLIMIT_AS)" if UNDER_ASAN else ")"))
    for label, n in table.most_common():
        print(f"  {n:6d}  {label:<{width}}")
    assert not failures, "\n".join(failures[:20])


def test_fuzz_reader(corpus, tmp_path):
    fuzz(corpus, FUZZ_MUTANTS, seed=20260514, work=tmp_path)


@pytest.mark.slow
def test_fuzz_reader_long(corpus, tmp_path):
    fuzz(corpus, int(os.environ.get("MSCE_FUZZ_MUTANTS", "3000")), seed=14, work=tmp_path)
