"""Shared pieces of msce's benchmarks: clips, the timer, peak RSS, run metadata.

Nothing here imports msce or the peers: the per-cell worker processes import only the
libraries their peer needs, so each one's peak RSS is its own.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MEDIA_DIR = BENCH_DIR / ".media"
RESULTS_DIR = BENCH_DIR / "results"

FPS = 25
PLANS = ("fps1", "fps5", "dense")
PLAN_LABEL = {"fps1": "1 FPS", "fps5": "5 FPS", "dense": "dense"}
# HF Qwen2/2.5-VL video defaults (per-frame pixel budget) and the 448x448 budget.
HF_MIN_PIXELS = 128 * 28 * 28
HF_MAX_PIXELS = 768 * 28 * 28
BUDGET_448 = 448 * 448


# ---- clips -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    name: str
    width: int
    height: int
    seconds: float
    gop: int = 250
    source: str = "testsrc2"

    @property
    def filename(self) -> str:
        return f"{self.name}.mp4"

    @property
    def frames(self) -> int:
        return int(round(self.seconds * FPS))


def standard_clips(gop: int = 250, source: str = "testsrc2") -> list[Clip]:
    sfx = "" if gop == 250 else f"_g{gop}"
    return [
        Clip(f"360p_3s{sfx}", 640, 360, 3, gop, source),
        Clip(f"720p_5s{sfx}", 1280, 720, 5, gop, source),
        Clip(f"1080p_10s{sfx}", 1920, 1080, 10, gop, source),
    ]


def long_clip(source: str = "testsrc2") -> Clip:
    return Clip("1080p_60s", 1920, 1080, 60, 250, source)


def _lavfi(clip: Clip) -> str:
    size = f"{clip.width}x{clip.height}"
    if clip.source == "testsrc2":
        # moving shapes, scrolling gradient and a frame counter: every frame differs
        return f"testsrc2=size={size}:rate={FPS}"
    if clip.source == "mandelbrot":
        # continuous zoom: full-frame motion, natural-looking gradients (slow to render at 1080p)
        return f"mandelbrot=size={size}:rate={FPS}"
    raise ValueError(f"unknown clip source {clip.source!r} (testsrc2 or mandelbrot)")


def make_clip(clip: Clip, media_dir: Path = MEDIA_DIR, force: bool = False, preset: str = "medium") -> Path:
    """H.264 (libx264, preset ``preset``, CRF 23, yuv420p, GOP ``clip.gop``, B-frames) in MP4."""
    media_dir.mkdir(parents=True, exist_ok=True)
    out = media_dir / clip.filename
    if out.exists() and out.stat().st_size > 0 and not force:
        return out
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("the ffmpeg CLI is needed to generate the benchmark clips (apt-get install ffmpeg)")
    tmp = out.with_suffix(".part.mp4")
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", _lavfi(clip), "-t", str(clip.seconds),
           "-c:v", "libx264", "-preset", preset, "-crf", "23", "-pix_fmt", "yuv420p",
           "-g", str(clip.gop), "-keyint_min", str(min(clip.gop, 25)), "-an", "-movflags", "+faststart", str(tmp)]
    subprocess.run(cmd, check=True)
    tmp.replace(out)
    return out


def probe_clip(path: Path) -> dict:
    """Codec facts of a clip from ffprobe (bitrate, frames, keyframe interval)."""
    info: dict = {"file": path.name, "bytes": path.stat().st_size}
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=codec_name,profile,pix_fmt,width,height,avg_frame_rate,nb_frames,bit_rate,has_b_frames",
             "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
        s = json.loads(out)["streams"][0]
        info.update({k: s.get(k) for k in ("codec_name", "profile", "pix_fmt", "width", "height", "avg_frame_rate",
                                            "has_b_frames")})
        info["nb_frames"] = int(s.get("nb_frames", 0) or 0)
        info["bit_rate_kbps"] = round(int(s.get("bit_rate", 0) or 0) / 1000)
        kf = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries",
             "frame=pts", "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
        info["keyframes"] = len([ln for ln in kf.splitlines() if ln.strip()])
    except (OSError, subprocess.CalledProcessError, KeyError, IndexError, ValueError) as exc:
        info["probe_error"] = str(exc)
    return info


# ---- timing ----------------------------------------------------------------------------
def _pct(sorted_v: list[float], q: float) -> float:
    if len(sorted_v) == 1:
        return sorted_v[0]
    pos = q * (len(sorted_v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (sorted_v[hi] - sorted_v[lo]) * (pos - lo)


def summarize(times_s: list[float], cpu_s: list[float] | None = None) -> dict:
    """median / min / p25 / p75 / IQR of wall times, in milliseconds (and the median CPU
    time of the process, all threads, per call: less sensitive than wall time to other load)."""
    v = sorted(t * 1e3 for t in times_s)
    p25, p75 = _pct(v, 0.25), _pct(v, 0.75)
    out = {"median_ms": statistics.median(v), "min_ms": v[0], "max_ms": v[-1], "p25_ms": p25, "p75_ms": p75,
           "iqr_ms": p75 - p25, "n": len(v), "times_ms": [round(t, 3) for t in v]}
    if cpu_s:
        out["cpu_median_ms"] = statistics.median(c * 1e3 for c in cpu_s)
    return out


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_fn(fn: Callable[[], object], warmup: int = 1, min_repeats: int = 3, max_repeats: int = 15,
            budget_s: float = 3.0) -> dict:
    """Warm up, then time ``fn`` at least ``min_repeats`` times and keep going while the
    total stays under ``budget_s`` (at most ``max_repeats``). The result of each call is
    dropped (and garbage collected) outside the timed region."""
    for _ in range(warmup):
        out = fn()
        del out
        gc.collect()
    times: list[float] = []
    cpu: list[float] = []
    spent = 0.0
    while len(times) < max_repeats and (len(times) < min_repeats or spent < budget_s):
        c0 = _cpu_s()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        cpu.append(_cpu_s() - c0)
        del out
        gc.collect()
        times.append(dt)
        spent += dt
    return summarize(times, cpu)


def peak_rss_mib() -> float:
    """Peak resident set of this process so far (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / (1024.0 * 1024.0)


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except OSError:
        return float("nan")


# ---- run metadata ---------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f in {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                                        "avx512vl", "avx512_vnni"})
    except OSError:
        pass
    return []


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit, read from .git without running git."""
    git = root / ".git"
    try:
        if git.is_file():  # worktree: "gitdir: <path>"
            git = Path(git.read_text().split(":", 1)[1].strip())
            if not git.is_absolute():
                git = (root / git).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        for base in (git, Path((git / "commondir").read_text().strip()) if (git / "commondir").exists() else git):
            base = base if base.is_absolute() else (git / base).resolve()
            if (base / ref).exists():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        pass
    return None


def _ffmpeg_cli_version() -> str | None:
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
        m = re.match(r"ffmpeg version (\S+)", out)
        return m.group(1) if m else out.splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        return None


def _pkgconfig_version(lib: str) -> str | None:
    try:
        return subprocess.run(["pkg-config", "--modversion", lib], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_name() -> str:
    cores = os.cpu_count() or 0
    cpu = re.sub(r"[^a-z0-9]+", "-", _cpu_model().lower()).strip("-")
    return f"{cpu}-{cores}c"


def run_metadata() -> dict:
    """Where and with what the numbers were measured."""
    meta: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "machine": machine_name(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": None,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "msce_commit": git_commit(),
        "versions": {d: _version(d) for d in ("msce", "torch", "torchvision", "transformers", "av", "torchcodec",
                                              "qwen-vl-utils", "numpy")},
        "ffmpeg": {"cli": _ffmpeg_cli_version(), "libavcodec_system (msce, torchcodec)": _pkgconfig_version(
            "libavcodec")},
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                meta["mem_total_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        import av  # noqa: PLC0415

        meta["ffmpeg"]["pyav_bundled"] = getattr(av, "ffmpeg_version_info", None)
        meta["ffmpeg"]["pyav_libavcodec"] = ".".join(str(x) for x in av.library_versions.get("libavcodec", ()))
    except Exception:  # noqa: BLE001 - metadata only
        pass
    return meta


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=_json_default))
    tmp.replace(path)


def _json_default(o: object) -> object:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[arg-type]
    return str(o)
