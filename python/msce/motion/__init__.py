"""Facial motion: per-frame motion energy, micro-expression spotting, motion-aware gaps.

Micro-expressions last 0.25-0.5 s (paper Sec. 1, 3.4), so a 1-FPS plan usually steps over
them, and MSCE's uniform gap frames (Sec. 4.2) land on them by chance. This module finds
them from the pixels, at full frame rate and for little compute:

1. :func:`analyze` decodes every frame ONCE at low resolution (``msce.load`` with a dense
   plan into ``Frames(size=(96, 96), layout="NHWC")``, cropped to the face when a crop is
   given) and computes the motion energy in the native core (csrc/motion): block
   Lucas-Kanade flow (8-px blocks) between consecutive frames, minus a fitted affine head
   motion, the mean of the largest 5 % of block residuals (a facial action moves a few
   blocks: averaging more of them dilutes it), in pixels per frame of the analysis frames. Global lighting changes cancel (each frame is normalized to zero mean and unit
   variance), head drift is fitted away, flat skin contributes nothing.
2. :func:`spot` finds events on that curve (baseline-relative peaks with hysteresis):

   * smooth the energy with a centred moving average of ``smooth_s`` (0.08 s);
   * baseline = running median over ``baseline_s`` (2 s); excess = smoothed - baseline;
   * noise = 1.4826 x the median absolute deviation of the excess over the clip;
   * an event is a run of excess > ``k_low`` (2.5) x noise, runs closer than ``merge_s``
     (0.2 s) merged (a movement and its return), whose peak reaches ``k_high`` (6) x noise
     and whose length is within [``min_s``, ``max_s``] = [0.1, 1.0] s;
   * onset/offset: the frame before the first, and the last, unsmoothed step above the
     low threshold; apex: the frame by which half of the event's motion has happened
     (rise and return carry equal motion, so that is the moment furthest from neutral).
3. :func:`motion_aware_gaps`: MSCE's keyframes,
   and in each gap the same number of frames as ``keyframes_with_gaps`` but placed on the
   motion: spotted apexes first, then the strongest energy peaks (at least
   ``separation_s`` apart), then MSCE's uniform positions for whatever is left, so a gap
   without motion gets exactly MSCE's frames.

Energy index convention: ``energy[t]`` is the motion between frames ``t-1`` and ``t``
(``energy[0] = 0``).
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from msce._validate import number
from msce.errors import ConfigError, PlanError, TransformError
from msce.plan import Plan, PlanSpec, _positive, _timestamps

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.metadata import VideoMetadata

__all__ = [
    "SpotOptions", "MotionCurve", "Spot", "motion_energy", "analyze", "spot", "energy_analysis",
    "MotionAwareGaps", "motion_aware_gaps",
]

# Analysis defaults, chosen on a synthetic tuning set (bench/README.md, "Micro-expressions").
DEFAULT_SIZE = 96
DEFAULT_BLOCK = 8
DEFAULT_TOP_FRACTION = 0.05
DEFAULT_REGULARIZATION = 0.2


@dataclass(frozen=True)
class SpotOptions:
    """Parameters of the spotting rule (see the module docstring); times in seconds."""

    smooth_s: float = 0.08
    baseline_s: float = 2.0
    k_high: float = 6.0
    k_low: float = 2.5
    merge_s: float = 0.2
    min_s: float = 0.1
    max_s: float = 1.0
    min_peak: float = 0.0

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            number("SpotOptions", k, v, lo_open=False)
        if self.k_low > self.k_high:
            raise ConfigError(f"SpotOptions needs k_low <= k_high (got {self.k_low} > {self.k_high})")
        if self.min_s > self.max_s:
            raise ConfigError(f"SpotOptions needs min_s <= max_s (got {self.min_s} > {self.max_s})")

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}


def _options(options: SpotOptions | dict | None) -> SpotOptions:
    if options is None:
        return SpotOptions()
    if isinstance(options, SpotOptions):
        return options
    if isinstance(options, dict):
        try:
            return SpotOptions(**options)
        except TypeError as exc:
            raise ConfigError(f"bad spotting options: {exc}") from None
    raise ConfigError(f"options must be SpotOptions or a dict (got {type(options).__name__})")


@dataclass(frozen=True)
class MotionCurve:
    """Motion of one clip, one value per frame (``energy[t]``: frames t-1 -> t).

    ``energy``: local facial motion, pixels/frame at the analysis size; ``difference``:
    mean absolute difference of the normalized frames; ``global_motion`` (T, 2): fitted
    head motion (dx, dy) per frame; ``timestamps``: seconds; ``fps``: the clip's average
    rate; ``size``: (height, width) of the analysis frames; ``decode_s`` / ``motion_s``:
    wall time of the low-resolution decode and of the native motion pass."""

    energy: np.ndarray
    difference: np.ndarray
    global_motion: np.ndarray
    timestamps: np.ndarray
    fps: float
    size: tuple[int, int]
    path: str = "<frames>"
    decode_s: float = 0.0
    motion_s: float = 0.0
    extra: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.energy)


@dataclass(frozen=True)
class Spot:
    """One spotted event: frames (onset, apex, offset), their times, the peak excess over
    the baseline (energy units) and ``score`` = peak / noise."""

    onset: int
    apex: int
    offset: int
    onset_s: float
    apex_s: float
    offset_s: float
    peak: float
    score: float

    @property
    def duration(self) -> float:
        return self.offset_s - self.onset_s


def motion_energy(frames: np.ndarray, block: int = DEFAULT_BLOCK, top_fraction: float = DEFAULT_TOP_FRACTION,
                  regularization: float = DEFAULT_REGULARIZATION, threads: int | None = None) -> dict[str, np.ndarray]:
    """The native motion pass on frames already small: uint8 (T, H, W), (T, H, W, 1) or
    (T, H, W, 3) RGB. Returns {"energy", "difference", "global_dx", "global_dy"} (T,)
    float32 arrays; the same for any ``threads`` (None = all cores). GIL released."""
    from msce._native import C

    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3)):
        raise TransformError(f"frames must be uint8 (T, H, W) or (T, H, W, 1|3); got {arr.dtype} {arr.shape}")
    if isinstance(block, bool) or not isinstance(block, int):
        raise TransformError(f"block must be an integer (got {block!r})")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise TransformError(f"threads must be a non-negative integer or None (got {threads!r})")
    return dict(C.motion_energy(np.ascontiguousarray(arr), block, float(top_fraction), float(regularization),
                                threads or 0))


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    else:
        try:
            hw = tuple(int(v) for v in size)  # type: ignore[union-attr]
        except TypeError:
            raise ConfigError(f"size must be an int or (height, width) (got {size!r})") from None
    if len(hw) != 2 or min(hw) < 16:
        raise ConfigError(f"the analysis size must be at least 16x16 (got {size!r})")
    return hw  # type: ignore[return-value]


def analyze(source: Any, fps: float | None = None, crop: Any = None, size: int | Sequence[int] = DEFAULT_SIZE,
            threads: int | None = None, block: int = DEFAULT_BLOCK, top_fraction: float = DEFAULT_TOP_FRACTION,
            regularization: float = DEFAULT_REGULARIZATION, stream: int | None = None) -> MotionCurve:
    """Motion energy of every frame of ``source``.

    ``source``: a video path or :class:`msce.VideoReader` (decoded once, every frame, at
    ``size`` by ``msce.load``), or frames in memory, uint8 (T, H, W, 3) RGB, with ``fps``.
    ``crop``: the face region, as ``msce.load`` takes it (one (x, y, w, h) box, one box per
    frame, or a face-crop option where the faces module provides one); None = whole frame.
    ``size``: analysis (height, width), or one int for a square.
    ``stream``: the video stream of a path, as ``msce.load`` takes it (None: the best one).
    """
    from msce.plan import dense
    from msce.targets import Frames
    from msce.io.video import VideoReader, load, preprocess

    hw = _size(size)
    target = Frames(size=hw, layout="NHWC", dtype="uint8")
    t0 = time.perf_counter()
    if isinstance(source, (str, os.PathLike, VideoReader)):
        batch = load(source, dense(), target, crop=crop, threads=threads, pin_memory=False, stream=stream)
        meta = batch.metadata
        clip_fps = float(meta.average_fps)
        ts = np.asarray(batch.timestamps, dtype=np.float64)
        path = meta.path
    else:
        if fps is None:
            raise ConfigError("analyze() needs fps for frames given in memory")
        clip_fps = _positive("fps", fps)
        batch = preprocess(source, target, fps=clip_fps, crop=crop, threads=threads, pin_memory=False)
        ts = np.arange(len(batch), dtype=np.float64) / clip_fps
        path = "<frames>"
    small = batch.data.numpy()
    t1 = time.perf_counter()
    raw = motion_energy(small, block, top_fraction, regularization, threads)
    t2 = time.perf_counter()
    return MotionCurve(
        energy=raw["energy"], difference=raw["difference"],
        global_motion=np.stack([raw["global_dx"], raw["global_dy"]], axis=1), timestamps=ts, fps=clip_fps,
        size=hw, path=path, decode_s=t1 - t0, motion_s=t2 - t1,
        extra={"block": block, "top_fraction": top_fraction, "regularization": regularization},
    )


def _energy_fps(curve: MotionCurve | np.ndarray | Sequence[float], fps: float | None) -> tuple[np.ndarray, float]:
    if isinstance(curve, MotionCurve):
        return np.asarray(curve.energy, dtype=np.float32), float(fps or curve.fps)
    if fps is None:
        raise ConfigError("spotting an energy array needs its fps")
    e = np.asarray(curve, dtype=np.float32)
    if e.ndim != 1:
        raise ConfigError(f"an energy curve is 1-D (got shape {e.shape})")
    return e, _positive("fps", fps)


def energy_analysis(curve: MotionCurve | np.ndarray, fps: float | None = None,
                    options: SpotOptions | dict | None = None) -> dict:
    """The spotting rule's intermediate curves: smoothed, baseline, excess, raw_excess
    (arrays) and noise, low, high (floats)."""
    from msce._native import C

    e, f = _energy_fps(curve, fps)
    return dict(C.motion_analyze(e, f, _options(options).to_dict()))


def spot(curve: MotionCurve | np.ndarray, fps: float | None = None,
         options: SpotOptions | dict | None = None) -> list[Spot]:
    """Micro-expression events on a motion curve (the rule is in the module docstring)."""
    from msce._native import C

    e, f = _energy_fps(curve, fps)
    ts = curve.timestamps if isinstance(curve, MotionCurve) else np.arange(len(e)) / f
    out = []
    for onset, apex, offset, peak, score in C.motion_spot(e, f, _options(options).to_dict()):
        out.append(Spot(int(onset), int(apex), int(offset), float(ts[onset]), float(ts[apex]), float(ts[offset]),
                        float(peak), float(score)))
    return out


# ---- the motion-aware plan ---------------------------------------------------------------------

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def _cache_key(path: str, crop: Any, size: tuple[int, int], stream: int | None) -> tuple | None:
    """The analysis cache's key: file version, crop, size and video stream (None: no file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size, repr(crop), size, stream)


def _remember(key: tuple | None, curve: MotionCurve) -> MotionCurve:
    if key is not None:
        _CACHE[key] = curve
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return curve


def _cached_analyze(path: str, crop: Any, size: tuple[int, int], threads: int | None,
                    stream: int | None = None) -> MotionCurve:
    """analyze(path, ...) memoized per file version, crop, size and video stream."""
    key = _cache_key(path, crop, size, stream)
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    return _remember(key, analyze(path, crop=crop, size=size, threads=threads, stream=stream))


def _jsonable(crop: Any) -> Any:
    if crop is None or isinstance(crop, str):
        return crop
    try:
        return np.asarray(crop, dtype=np.int64).tolist()
    except (TypeError, ValueError):
        return repr(crop)


class MotionAwareGaps(PlanSpec):
    """MSCE keyframes + ``gap_frames`` frames per gap at the motion peaks (see the module
    docstring). ``resolve(meta, motion=None)``: the motion is, in order, the ``motion``
    argument, the ``motion`` given to the constructor, or :func:`analyze` of
    ``meta.path`` (with ``crop`` and ``size``; cached per file), so the spec also works
    where a plain ``spec.resolve(meta)`` is called (``msce.load``, ``load_segments``).

    In ``msce.load`` / ``load_segments`` on the CPU, when the analysis is not cached yet and
    the whole clip fits in ``buffer_mb`` MiB as decoded (H*W*1.5 bytes a frame for 4:2:0;
    msce's default 512, 0 = never), the clip is decoded once: the decoded frames are held
    while the analysis runs on them, and the load then transforms its planned frames from
    them (the same tensors as two passes; ``batch.stats["shared_decode"]``). Otherwise the
    analysis decodes the clip on its own and the load decodes it again."""

    def __init__(self, keyframe_fps: float = 1.0, gap_frames: int = 4, crop: Any = None,
                 size: int | Sequence[int] = DEFAULT_SIZE, options: SpotOptions | dict | None = None,
                 separation_s: float = 0.08, motion: MotionCurve | np.ndarray | None = None,
                 threads: int | None = None, buffer_mb: float = 512.0):
        self.keyframe_fps = _positive("keyframe_fps", keyframe_fps)
        if isinstance(gap_frames, bool) or not isinstance(gap_frames, int) or gap_frames < 0:
            raise PlanError(f"gap_frames must be a non-negative integer (got {gap_frames!r})")
        self.gap_frames = gap_frames
        self.crop = crop
        self.size = _size(size)
        self.options = _options(options)
        try:
            sep = float(separation_s)
        except (TypeError, ValueError):
            raise PlanError(f"separation_s must be a number (got {separation_s!r})") from None
        if not (sep >= 0 and math.isfinite(sep)):
            raise PlanError(f"separation_s must be a non-negative number (got {separation_s!r})")
        self.separation_s = sep
        self.motion = motion
        self.threads = threads
        self.buffer_mb = number("motion_aware_gaps", "buffer_mb", buffer_mb, lo=0.0, lo_open=False, error=PlanError)

    def decode_once(self, reader: Any, threads: int) -> bool:
        """msce.load's hook: when this plan will analyse ``reader``'s clip and the clip fits in
        ``buffer_mb``, decode it once, hold it on the reader, run the analysis on the held
        frames (cached like any analysis) and return True; the load then runs on the same
        frames and releases them. False: nothing held (motion given or cached, too large)."""
        from msce.io.jobs import held_bytes, hold_all, release_held

        if self.motion is not None or self.buffer_mb <= 0:
            return False
        meta = reader.metadata
        stream = meta.stream if meta.stream >= 0 else None
        key = _cache_key(meta.path, self.crop, self.size, stream)
        if key is None or key in _CACHE or meta.num_frames < 1:
            return False
        if held_bytes(meta, meta.num_frames) > self.buffer_mb * 2 ** 20:
            return False
        hold_all(reader, threads)
        try:
            _remember(key, analyze(reader, crop=self.crop, size=self.size, threads=self.threads, stream=stream))
        except BaseException:
            release_held(reader)
            raise
        return True

    def _energy(self, meta: VideoMetadata, motion: MotionCurve | np.ndarray | None) -> tuple[np.ndarray, dict]:
        m = motion if motion is not None else self.motion
        if m is None:
            if not os.path.exists(meta.path):
                raise PlanError(f"{meta.path}: motion_aware_gaps needs the video file or a motion curve "
                                "(resolve(meta, motion=msce.motion.analyze(...)))")
            stream = meta.stream if meta.stream >= 0 else None  # the stream the plan is for
            m = _cached_analyze(meta.path, self.crop, self.size, self.threads, stream)
        if isinstance(m, MotionCurve):
            energy, info = m.energy, {"motion_size": list(m.size)}
        else:
            energy, info = np.asarray(m, dtype=np.float32), {}
        if energy.ndim != 1 or len(energy) != meta.num_frames:
            raise PlanError(f"{meta.path}: the motion curve has {len(energy)} values for "
                            f"{meta.num_frames} frames")
        return np.ascontiguousarray(energy, dtype=np.float32), info

    def resolve(self, meta: VideoMetadata, motion: MotionCurve | np.ndarray | None = None) -> Plan:
        from msce._native import C
        from msce.plan import ROLES

        energy, _ = self._energy(meta, motion)
        ts = _timestamps(meta)
        indices, _times, roles, groups = C.plan_motion_aware_gaps(
            ts, float(meta.duration), self.keyframe_fps, self.gap_frames, energy, float(meta.average_fps),
            self.options.to_dict(), self.separation_s)
        return Plan(
            indices=tuple(int(i) for i in indices), timestamps=tuple(float(ts[i]) for i in indices),
            roles=tuple(ROLES[r] for r in roles), groups=tuple(int(g) for g in groups), fps=self.keyframe_fps,
            source_fps=float(meta.average_fps), num_source_frames=int(meta.num_frames), spec=self.to_dict(),
        )

    def to_dict(self) -> dict:
        return {"kind": "motion_aware_gaps", "keyframe_fps": self.keyframe_fps, "gap_frames": self.gap_frames,
                "crop": _jsonable(self.crop), "size": list(self.size), "separation_s": self.separation_s,
                "options": self.options.to_dict()}


def motion_aware_gaps(keyframe_fps: float = 1.0, gap_frames: int = 4, **kwargs: Any) -> MotionAwareGaps:
    """MSCE sampling with each gap's frames at its motion peaks; the same frame count as
    ``keyframes_with_gaps(keyframe_fps, gap_frames)``. Options: ``crop``, ``size``,
    ``options`` (:class:`SpotOptions`), ``separation_s``, ``motion``, ``threads``."""
    return MotionAwareGaps(keyframe_fps, gap_frames, **kwargs)
