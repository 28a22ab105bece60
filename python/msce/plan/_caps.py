"""Repeat caps for computed plans (msce's choice; see docs/api.md, "Bad input")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from msce.errors import PlanError

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.metadata import VideoMetadata
    from msce.plan import Plan

__all__ = ["MAX_REPEAT_FLOOR", "MAX_REPEAT_FACTOR", "max_repeats"]

# ---- repeat caps --------------------------------------------------------------------------
# msce's choice. Sampling at `rate` frames per second a clip whose frames come `src` per
# second legitimately takes one frame up to ceil(rate / src) times (uniform(60) on a 25 fps
# clip: 3). A computed plan (uniform, count, keyframes_with_gaps, token_budget, and
# shuffled() of them) may repeat one frame at most
#     max(MAX_REPEAT_FLOOR, MAX_REPEAT_FACTOR * ceil(rate / src))
# times, where src is measured from the frame timestamps ((n - 1) / (last - first), not the
# header duration, which is what lies) and the factor and floor leave room for variable frame
# rates. More than that means the metadata's duration does not match its frames (the last
# frame would fill the missing time) and the plan is refused with PlanError before any
# tensor is made. at_indices / at_times plans are taken as given.
MAX_REPEAT_FLOOR = 8
MAX_REPEAT_FACTOR = 4


def _frame_rate(meta: VideoMetadata) -> float | None:
    ts = meta.timestamps
    if len(ts) > 1 and ts[-1] > ts[0]:
        return (len(ts) - 1) / (ts[-1] - ts[0])
    fps = float(meta.average_fps)
    return fps if fps > 0 and math.isfinite(fps) else None


def max_repeats(rate: float, meta: VideoMetadata) -> int:
    """The most times a computed plan sampling ``rate`` frames/s may take one frame of ``meta``."""
    src = _frame_rate(meta)
    if src is None or not (rate > 0 and math.isfinite(rate)):
        return MAX_REPEAT_FLOOR
    return max(MAX_REPEAT_FLOOR, MAX_REPEAT_FACTOR * math.ceil(rate / src - 1e-9))


def _describe(meta: VideoMetadata, spec: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "kind")
    span = meta.timestamps[-1] - meta.timestamps[0] if meta.timestamps else 0.0
    return (f"{meta.path}: plan {spec.get('kind')}({args}) on a clip of {meta.num_frames} frames "
            f"(frames span {span:.3f} s, metadata duration {meta.duration!r} s)")


def _check_size(meta: VideoMetadata, spec: dict, rate: float, planned: float) -> None:
    """Refuses a plan of about ``planned`` frames that must repeat frames past the cap, before
    the native code builds it."""
    bound = max_repeats(rate, meta)
    if not math.isfinite(planned) or planned > int(meta.num_frames) * bound + 1:
        raise PlanError(f"{_describe(meta, spec)} would take {planned:.0f} frames, more than {bound} (msce's "
                        f"repeat cap) times each of its {meta.num_frames} frames; the plan asks for more "
                        "frames than the clip holds, or the metadata's duration does not match its frames")


def _check_repeats(plan: Plan, meta: VideoMetadata, rate: float) -> Plan:
    bound = max_repeats(rate, meta)
    counts: dict[int, int] = {}
    for i in plan.indices:
        counts[i] = counts.get(i, 0) + 1
    worst = max(counts, key=counts.__getitem__)
    if counts[worst] > bound:
        raise PlanError(f"{_describe(meta, plan.spec)} would repeat frame {worst} {counts[worst]} times in "
                        f"{len(plan)} planned frames; msce's cap is {bound} (max({MAX_REPEAT_FLOOR}, "
                        f"{MAX_REPEAT_FACTOR} * ceil({rate:g} / {_frame_rate(meta) or 0:g} frames/s))); the "
                        "metadata's duration probably does not match its frames")
    return plan
