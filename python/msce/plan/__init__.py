"""Frame plans: which frames of a clip a model sees, and in which order.

A *spec* (``uniform(1.0)``, ``keyframes_with_gaps(1, 4)``, ...) says how to choose
frames; ``spec.resolve(metadata)`` turns it into a :class:`Plan` for one clip: plain data
(frame indices, their timestamps, each frame's role and group) in OUTPUT order, with a
JSON round trip. The index and timestamp math runs in the native core (csrc/select).

Conventions: frame i is the i-th frame in presentation order; timestamps are seconds from
the first frame. ``uniform(fps)`` takes the frame nearest to k/fps for k = 0, 1, ... while
k/fps < duration, so a clip shorter than 1/fps still gets frame 0. In
``keyframes_with_gaps`` gap j lies between keyframe j and keyframe j+1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import bisect
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from msce.errors import PlanError
from msce.plan._caps import MAX_REPEAT_FACTOR, MAX_REPEAT_FLOOR, _check_repeats, _check_size, max_repeats

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.metadata import VideoMetadata

__all__ = [
    "Plan", "PlanSpec", "uniform", "dense", "count", "shuffled", "multi_fps", "keyframes_with_gaps",
    "token_budget", "at_indices", "at_times", "resolve",
    "shuffle_seed", "shuffle_permutation", "kendall_distance", "media_digest",
    "MAX_REPEAT_FLOOR", "MAX_REPEAT_FACTOR", "max_repeats",
]

ROLES = ("frame", "keyframe", "gap")


@dataclass(frozen=True)
class Plan:
    """Frames chosen for one clip, in output order."""

    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    roles: tuple[str, ...]
    groups: tuple[int, ...]
    fps: float | None
    source_fps: float
    num_source_frames: int
    spec: dict = field(default_factory=dict)
    size: tuple[int, int] | None = None  # output (height, width) chosen by token_budget

    def __post_init__(self) -> None:
        n = len(self.indices)
        if not (len(self.timestamps) == len(self.roles) == len(self.groups) == n):
            raise PlanError("plan fields must have one entry per frame")
        if n == 0:
            raise PlanError("a plan needs at least one frame")
        for r in self.roles:
            if r not in ROLES:
                raise PlanError(f"unknown frame role {r!r}; expected one of {ROLES}")
        for i in self.indices:
            if i < 0 or i >= self.num_source_frames:
                raise PlanError(
                    f"frame index {i} is past the clip end ({self.num_source_frames} frames)")

    def __len__(self) -> int:
        return len(self.indices)

    # ---- views ---------------------------------------------------------------------
    def _subset(self, keep: Sequence[int], **spec_extra: Any) -> Plan:
        return Plan(
            indices=tuple(self.indices[k] for k in keep),
            timestamps=tuple(self.timestamps[k] for k in keep),
            roles=tuple(self.roles[k] for k in keep),
            groups=tuple(self.groups[k] for k in keep),
            fps=self.fps, source_fps=self.source_fps, num_source_frames=self.num_source_frames,
            spec={**self.spec, **spec_extra}, size=self.size,
        )

    def keyframes(self) -> Plan:
        keep = [k for k, r in enumerate(self.roles) if r == "keyframe"]
        if not keep:
            raise PlanError("this plan has no keyframes")
        return self._subset(keep, view="keyframes")

    def gap(self, j: int) -> Plan:
        keep = [k for k, (r, g) in enumerate(zip(self.roles, self.groups)) if r == "gap" and g == j]
        if not keep:
            raise PlanError(f"this plan has no frames in gap {j}")
        return self._subset(keep, view=f"gap {j}")

    @property
    def num_gaps(self) -> int:
        gaps = {g for r, g in zip(self.roles, self.groups) if r == "gap"}
        return len(gaps)

    def segments(self) -> list[Plan]:
        """Runs of consecutive frames with the same (role, group), in output order:
        for keyframes_with_gaps that is [kf0, gap0, kf1, gap1, ..., kf(n-1)]."""
        out: list[Plan] = []
        start = 0
        for k in range(1, len(self) + 1):
            if k == len(self) or (self.roles[k], self.groups[k]) != (self.roles[start], self.groups[start]):
                out.append(self._subset(list(range(start, k)), view=f"{self.roles[start]} {self.groups[start]}"))
                start = k
        return out

    # ---- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["indices"] = list(self.indices)
        d["timestamps"] = list(self.timestamps)
        d["roles"] = list(self.roles)
        d["groups"] = list(self.groups)
        d["size"] = list(self.size) if self.size else None
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        try:
            return cls(
                indices=tuple(int(i) for i in d["indices"]),
                timestamps=tuple(float(t) for t in d["timestamps"]),
                roles=tuple(str(r) for r in d["roles"]),
                groups=tuple(int(g) for g in d["groups"]),
                fps=None if d.get("fps") is None else float(d["fps"]),
                source_fps=float(d["source_fps"]),
                num_source_frames=int(d["num_source_frames"]),
                spec=dict(d.get("spec") or {}),
                size=tuple(d["size"]) if d.get("size") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"not a valid plan: {exc}") from exc

    @classmethod
    def from_json(cls, s: str) -> Plan:
        try:
            return cls.from_dict(json.loads(s))
        except json.JSONDecodeError as exc:
            raise PlanError(f"plan JSON does not parse: {exc}") from exc


# ---- specs ---------------------------------------------------------------------------------
def _native():
    from msce._native import C

    return C


def _timestamps(meta: VideoMetadata) -> list[float]:
    ts = list(meta.timestamps)
    if not ts:
        raise PlanError(f"{meta.path}: the clip has no frames")
    return ts


def _from_native(meta: VideoMetadata, result: tuple, fps: float | None, spec: dict) -> Plan:
    indices, _times, roles, groups = result
    ts = meta.timestamps
    return Plan(
        indices=tuple(int(i) for i in indices),
        timestamps=tuple(float(ts[i]) for i in indices),
        roles=tuple(ROLES[r] for r in roles),
        groups=tuple(int(g) for g in groups),
        fps=fps, source_fps=float(meta.average_fps), num_source_frames=int(meta.num_frames), spec=spec,
    )


def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{name} must be a number (got {value!r})") from None
    if not (v > 0 and math.isfinite(v)):
        raise PlanError(f"{name} must be a positive finite number (got {value!r})")
    return v


class PlanSpec(ABC):
    """How to choose frames; ``resolve(metadata)`` gives the :class:`Plan` for a clip."""

    @abstractmethod
    def resolve(self, meta: VideoMetadata) -> Plan:
        """The plan for the clip ``meta`` describes."""

    @abstractmethod
    def to_dict(self) -> dict:
        """The spec as JSON-ready data (``kind`` plus its parameters)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{self.to_dict()['kind']}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlanSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))


class _Uniform(PlanSpec):
    def __init__(self, fps: float):
        self.fps = _positive("fps", fps)

    def resolve(self, meta: VideoMetadata) -> Plan:
        ts = _timestamps(meta)
        _check_size(meta, self.to_dict(), self.fps, float(meta.duration) * self.fps)
        r = _native().plan_uniform(ts, float(meta.duration), self.fps)
        return _check_repeats(_from_native(meta, r, self.fps, self.to_dict()), meta, self.fps)

    def to_dict(self) -> dict:
        return {"kind": "uniform", "fps": self.fps}


class _Dense(PlanSpec):
    def resolve(self, meta: VideoMetadata) -> Plan:
        r = _native().plan_dense(_timestamps(meta))
        return _from_native(meta, r, float(meta.average_fps), self.to_dict())

    def to_dict(self) -> dict:
        return {"kind": "dense"}


class _Count(PlanSpec):
    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise PlanError(f"count needs a positive integer number of frames (got {n!r})")
        self.n = n

    def resolve(self, meta: VideoMetadata) -> Plan:
        ts = _timestamps(meta)
        fps = self.n / meta.duration if meta.duration > 0 else None
        rate = fps if fps is not None and math.isfinite(fps) else float(meta.average_fps)
        _check_size(meta, self.to_dict(), rate, float(self.n))
        r = _native().plan_count(ts, float(meta.duration), self.n)
        return _check_repeats(_from_native(meta, r, fps, self.to_dict()), meta, rate)

    def to_dict(self) -> dict:
        return {"kind": "count", "n": self.n}


class _KeyframesWithGaps(PlanSpec):
    def __init__(self, keyframe_fps: float = 1.0, gap_frames: int = 4):
        self.keyframe_fps = _positive("keyframe_fps", keyframe_fps)
        if isinstance(gap_frames, bool) or not isinstance(gap_frames, int) or gap_frames < 0:
            raise PlanError(f"gap_frames must be a non-negative integer (got {gap_frames!r})")
        self.gap_frames = gap_frames

    def resolve(self, meta: VideoMetadata) -> Plan:
        ts = _timestamps(meta)
        _check_size(meta, self.to_dict(), self.keyframe_fps, float(meta.duration) * self.keyframe_fps)
        r = _native().plan_keyframes_with_gaps(ts, float(meta.duration), self.keyframe_fps, self.gap_frames)
        # a keyframe and the gap frames after it share one keyframe interval
        rate = self.keyframe_fps * (self.gap_frames + 1)
        return _check_repeats(_from_native(meta, r, self.keyframe_fps, self.to_dict()), meta, rate)

    def to_dict(self) -> dict:
        return {"kind": "keyframes_with_gaps", "keyframe_fps": self.keyframe_fps, "gap_frames": self.gap_frames}


# ---- the frame-shuffle probe ----------------------------------------------------------------
SHUFFLE_MAX_DRAWS = 64


def shuffle_seed(seed: int, identity: str) -> int:
    """The per-video seed of the frame-shuffle probe: the first 8 bytes of
    ``sha256(f"{seed}:{identity}")`` (UTF-8) read as a big-endian unsigned 64-bit integer.

    ``identity`` is the video's identity string (``"id:<sample id>"`` or
    ``"sha256:<hex digest of the media>"``); the result is the same on every platform."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or seed >= 2**64:
        raise PlanError(f"seed must be an integer in [0, 2**64) (got {seed!r})")
    if not isinstance(identity, str) or not identity:
        raise PlanError(f"identity must be a non-empty string (got {identity!r})")
    digest = hashlib.sha256(f"{seed}:{identity}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def media_digest(path: str | os.PathLike) -> str:
    """``"sha256:<hex>"``: the content digest of a clip, independent of where it lies.

    A video file: sha256 of its bytes. A frame folder: sha256 of the UTF-8 lines
    ``"<file name> <sha256 hex of its bytes>\n"``, one per image in frame order
    (``msce._files.frame_files``). Raises PlanError when the media cannot be read.
    """
    p = Path(path)
    try:
        if p.is_dir():
            from msce._files import frame_files
            from msce.errors import DatasetError

            try:
                files = frame_files(p)
            except DatasetError as exc:
                raise PlanError(str(exc)) from None
            h = hashlib.sha256()
            for f in files:
                h.update(f"{f.name} {_file_sha256(f)}\n".encode("utf-8"))
            return "sha256:" + h.hexdigest()
        return "sha256:" + _file_sha256(p)
    except OSError as exc:
        raise PlanError(
            f"{os.fspath(path)}: cannot read the media to derive the frame-shuffle seed from its content "
            f"({exc.strerror or exc}); pass identity= (e.g. the sample id) to shuffled()") from None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shuffle_permutation(n: int, video_seed: int) -> tuple[list[int], int]:
    """``(permutation, draws)`` for an n-frame plan: position k of the output shows frame
    ``permutation[k]`` of the chronological plan.

    Draw d (d = 0, 1, ...) is the native SplitMix64 Fisher-Yates permutation
    (``msce._C.seeded_permutation``) with seed ``(video_seed + d) mod 2**64``; the first draw
    that is not the identity is used, so for n >= 2 the order always changes. After
    :data:`SHUFFLE_MAX_DRAWS` identity draws (probability 2**-64 for n = 2, less for larger n)
    the rotation ``[1, 2, ..., n-1, 0]`` is used. n < 2 has only the identity (draws = 0).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise PlanError(f"n must be a non-negative integer (got {n!r})")
    if n < 2:
        return list(range(n)), 0
    identity = list(range(n))
    C = _native()
    for d in range(SHUFFLE_MAX_DRAWS):
        perm = [int(i) for i in C.seeded_permutation(n, (video_seed + d) % 2**64)]
        if perm != identity:
            return perm, d + 1
    return [(i + 1) % n for i in range(n)], SHUFFLE_MAX_DRAWS + 1


def kendall_distance(permutation: Sequence[int]) -> float:
    """Normalized Kendall tau distance between ``permutation`` and the identity: the pairs
    k < l sent in reversed order (``permutation[k] > permutation[l]``) divided by n(n-1)/2.
    0 = chronological order, 1 = reversed; 0 for n < 2."""
    p = np.asarray(permutation, dtype=np.int64)
    n = len(p)
    if n < 2:
        return 0.0
    discordant = int(np.triu(p[:, None] > p[None, :], k=1).sum())
    return discordant / (n * (n - 1) / 2)


class _Shuffled(PlanSpec):
    def __init__(self, inner: PlanSpec | Plan, seed: int, identity: str = "content"):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or seed >= 2**64:
            raise PlanError(f"seed must be an integer in [0, 2**64) (got {seed!r})")
        if not isinstance(inner, (PlanSpec, Plan)):
            raise PlanError(f"shuffled() needs a plan or plan spec (got {type(inner).__name__})")
        if not isinstance(identity, str) or not identity:
            raise PlanError(f"identity must be 'content' or a non-empty sample id string (got {identity!r})")
        self.inner = inner
        self.seed = seed
        self.identity = identity

    def video_identity(self, meta: VideoMetadata | None) -> str:
        """``"id:<identity>"`` for a given sample id, else the media's content digest."""
        if self.identity != "content":
            return f"id:{self.identity}"
        if meta is None:
            raise PlanError("a content-derived shuffle needs the clip's metadata (or pass identity=)")
        return media_digest(meta.path)

    def apply(self, plan: Plan, meta: VideoMetadata | None = None) -> Plan:
        identity = self.video_identity(meta)
        video_seed = shuffle_seed(self.seed, identity)
        perm, draws = shuffle_permutation(len(plan), video_seed)
        out = plan._subset(perm)
        spec = {**self.to_dict(), "identity": identity, "video_seed": video_seed, "draws": draws,
                "permutation": perm, "kendall_distance": kendall_distance(perm)}
        return Plan(indices=out.indices, timestamps=out.timestamps, roles=out.roles, groups=out.groups,
                    fps=out.fps, source_fps=out.source_fps, num_source_frames=out.num_source_frames,
                    spec=spec, size=out.size)

    def resolve(self, meta: VideoMetadata) -> Plan:
        base = self.inner if isinstance(self.inner, Plan) else self.inner.resolve(meta)
        return self.apply(base, meta)

    def to_dict(self) -> dict:
        inner = self.inner.spec if isinstance(self.inner, Plan) else self.inner.to_dict()
        return {"kind": "shuffled", "seed": self.seed, "identity": self.identity, "inner": inner}


class _Indices(PlanSpec):
    def __init__(self, indices: Iterable[int]):
        self.indices = [int(i) for i in indices]
        if not self.indices:
            raise PlanError("at_indices() needs at least one index")

    def resolve(self, meta: VideoMetadata) -> Plan:
        n = int(meta.num_frames)
        for i in self.indices:
            if i < 0 or i >= n:
                raise PlanError(f"{meta.path}: frame index {i} is past the clip end ({n} frames)")
        ts = meta.timestamps
        k = len(self.indices)
        return Plan(tuple(self.indices), tuple(float(ts[i]) for i in self.indices), ("frame",) * k, (0,) * k,
                    None, float(meta.average_fps), n, self.to_dict())

    def to_dict(self) -> dict:
        return {"kind": "at_indices", "indices": list(self.indices)}


AT_TIMES_MODES = ("nearest", "displayed")
# at_times(mode="displayed"): a frame whose timestamp is at most this far past t counts as
# displayed at t. One microsecond is far below any frame interval and above the float
# rounding of t and of pts * time_base (about 1e-15 s per second of clip).
DISPLAYED_TOLERANCE_S = 1e-6


class _Times(PlanSpec):
    def __init__(self, times: Iterable[float], mode: str = "nearest"):
        self.times = [float(t) for t in times]
        if not self.times:
            raise PlanError("at_times() needs at least one timestamp")
        if not isinstance(mode, str) or mode not in AT_TIMES_MODES:
            raise PlanError(f"at_times() mode must be one of {AT_TIMES_MODES} (got {mode!r})")
        self.mode = mode

    def resolve(self, meta: VideoMetadata) -> Plan:
        C = _native()
        ts = _timestamps(meta)
        idx = []
        for t in self.times:
            if not (0.0 <= t < meta.duration) or not math.isfinite(t):
                raise PlanError(f"{meta.path}: time {t} s is outside the clip (duration {meta.duration:.3f} s)")
            if self.mode == "nearest":
                idx.append(int(C.nearest_frame(ts, t)))
                continue
            shown = bisect.bisect_right(ts, t + DISPLAYED_TOLERANCE_S) - 1
            if shown < 0:
                raise PlanError(f"{meta.path}: time {t} s is before the first frame (at {ts[0]:.6f} s), "
                                "so no frame is displayed yet")
            idx.append(shown)
        k = len(idx)
        return Plan(tuple(idx), tuple(float(ts[i]) for i in idx), ("frame",) * k, (0,) * k, None,
                    float(meta.average_fps), int(meta.num_frames), self.to_dict())

    def to_dict(self) -> dict:
        return {"kind": "at_times", "times": list(self.times), "mode": self.mode}


class _MultiFps:
    """Several uniform plans at once (the FPS sweep); ``resolve`` gives {fps: Plan}."""

    def __init__(self, fps_list: Iterable[float]):
        self.fps_list = [_positive("fps", f) for f in fps_list]
        if not self.fps_list:
            raise PlanError("multi_fps() needs at least one rate")
        if len(set(self.fps_list)) != len(self.fps_list):
            raise PlanError(f"multi_fps() got repeated rates: {self.fps_list}")

    def resolve(self, meta: VideoMetadata) -> dict[float, Plan]:
        return {f: _Uniform(f).resolve(meta) for f in self.fps_list}

    def to_dict(self) -> dict:
        return {"kind": "multi_fps", "fps": list(self.fps_list)}


class _TokenBudget(PlanSpec):
    """Most frames (up to ``fps``) at the largest resolution that fit ``max_tokens``: for
    n = the uniform plan's count, n-1, ... the first n for which ``target.fit_budget``
    finds a size (the target owns its token formulas)."""

    def __init__(self, max_tokens: int, target: Any, fps: float = 2.0, min_frames: int = 1):
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise PlanError(f"max_tokens must be a positive integer (got {max_tokens!r})")
        if not getattr(target, "counts_tokens", False):
            raise PlanError("token_budget() needs a token-counting target such as msce.QwenVL "
                            f"(got {type(target).__name__})")
        self.max_tokens = max_tokens
        self.target = target
        self.fps = _positive("fps", fps)
        self.min_frames = int(min_frames)

    def resolve(self, meta: VideoMetadata) -> Plan:
        base = _Uniform(self.fps).resolve(meta)
        n = len(base)
        while n >= max(1, self.min_frames):
            size = self.target.fit_budget(self.max_tokens, n, meta.height, meta.width)
            if size is not None:
                plan = base if n == len(base) else _Count(n).resolve(meta)
                return Plan(plan.indices, plan.timestamps, plan.roles, plan.groups, plan.fps, plan.source_fps,
                            plan.num_source_frames, self.to_dict(), size=tuple(size))
            n -= 1
        raise PlanError(f"{meta.path}: no frame count and resolution fit {self.max_tokens} tokens")

    def to_dict(self) -> dict:
        tgt = self.target.to_dict() if hasattr(self.target, "to_dict") else repr(self.target)
        return {"kind": "token_budget", "max_tokens": self.max_tokens, "fps": self.fps, "target": tgt}


# ---- public constructors ---------------------------------------------------------------------
def uniform(fps: float) -> PlanSpec:
    """Frame nearest to k/fps, k = 0, 1, ... (by timestamp, not by index arithmetic)."""
    return _Uniform(fps)


def dense() -> PlanSpec:
    """Every frame of the clip."""
    return _Dense()


def count(n: int) -> PlanSpec:
    """n frames at the centres of n equal segments of the clip."""
    return _Count(n)


def shuffled(plan: PlanSpec | Plan, seed: int, identity: str = "content") -> PlanSpec:
    """The same frames in a seeded random order that differs from video to video (the
    frame-shuffle probe).

    Per clip: identity = ``"id:<identity>"`` when ``identity`` is a sample id, else (the
    default ``"content"``) :func:`media_digest` of the file; video seed =
    :func:`shuffle_seed` (seed, identity); order = :func:`shuffle_permutation`, never the
    original order when the plan has 2+ frames. The resolved plan's ``spec`` records
    ``identity``, ``video_seed``, ``draws``, ``permutation`` and ``kendall_distance``."""
    return _Shuffled(plan, seed, identity)


def multi_fps(fps_list: Iterable[float] = (1, 5, 10, 15, 20, 25)) -> _MultiFps:
    """Uniform plans at several rates; ``resolve`` gives {fps: Plan}. A sweep, not one plan:
    ``msce.load`` refuses it (PlanError); load once per rate with ``uniform(fps)``."""
    return _MultiFps(fps_list)


def keyframes_with_gaps(keyframe_fps: float = 1.0, gap_frames: int = 4) -> PlanSpec:
    """MSCE sampling: keyframes at keyframe_fps plus gap_frames frames inside each gap."""
    return _KeyframesWithGaps(keyframe_fps, gap_frames)


def token_budget(max_tokens: int, target: Any, fps: float = 2.0, min_frames: int = 1) -> PlanSpec:
    """Frame count and resolution that fit a visual-token budget for ``target``."""
    return _TokenBudget(max_tokens, target, fps, min_frames)


def at_indices(indices: Iterable[int]) -> PlanSpec:
    """Exactly these frame indices (presentation order), in this order."""
    return _Indices(indices)


def at_times(times: Iterable[float], mode: str = "nearest") -> PlanSpec:
    """One frame per timestamp t (seconds from the first frame), in this order.

    ``mode="nearest"`` (default): the frame whose timestamp is closest to t (ties go to
    the earlier frame). ``mode="displayed"``: the frame on screen at t, as players and
    torchcodec's ``get_frames_played_at`` give it: the last frame whose timestamp is
    <= t + :data:`DISPLAYED_TOLERANCE_S`. Either mode needs 0 <= t < duration (PlanError
    otherwise); the last frame is displayed from its timestamp up to the clip's end, and a
    t before the first frame's timestamp (only possible with metadata whose first timestamp
    is not 0) raises PlanError in displayed mode. The spec's ``to_dict()`` records ``mode``
    and ``at_times(**{k: v for k, v in d.items() if k != "kind"})`` rebuilds it."""
    return _Times(times, mode)


def resolve(spec_or_plan: PlanSpec | Plan, meta: VideoMetadata) -> Plan:
    if isinstance(spec_or_plan, Plan):
        if spec_or_plan.num_source_frames != meta.num_frames:
            raise PlanError(
                f"{meta.path}: the plan was made for a clip of {spec_or_plan.num_source_frames} frames, "
                f"this clip has {meta.num_frames}")
        return spec_or_plan
    if isinstance(spec_or_plan, PlanSpec):
        return spec_or_plan.resolve(meta)
    if isinstance(spec_or_plan, _MultiFps):
        rates = ", ".join(f"{f:g}" for f in spec_or_plan.fps_list)
        raise PlanError(f"msce.plan.multi_fps([{rates}]) is a sweep of {len(spec_or_plan.fps_list)} plans, not one: "
                        f"call msce.load once per rate with msce.plan.uniform(fps) (its resolve(meta) gives "
                        f"{{fps: Plan}})")
    raise PlanError(f"expected a msce.plan spec or Plan, got {type(spec_or_plan).__name__}")
