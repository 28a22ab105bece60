"""Scoring plans and spotters against the synthetic ground truth.

* **Event coverage** of a plan: the event counts as covered when at least one planned
  frame lies inside it, onset <= t <= offset (times in seconds; the generator's events
  are not snapped to frames, so every frame inside shows some of the expression).
* **Apex coverage**: at least one planned frame shows the expression at >= ``level``
  (default 0.5) of its peak intensity; a frame at the edge of an event "covers" it but
  shows almost nothing, so this is the stricter number.
* **Spotting**: a spotted interval matches a true event when their temporal IoU is at
  least ``iou`` (0.5, the MEGC spotting convention); matching is one-to-one, best IoU
  first. Precision = matched spots / spots, recall = matched events / events,
  F1 = 2PR / (P + R).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "covers", "peak_intensity", "interval_iou", "match_spots", "SpotScore", "score_spots", "CoverageRow",
    "coverage_row",
]


def _times(plan: Any) -> np.ndarray:
    ts = plan.timestamps if hasattr(plan, "timestamps") else plan
    return np.asarray(ts, dtype=np.float64)


def covers(plan: Any, event: Any) -> bool:
    """True when a planned frame (``plan.timestamps`` or a sequence of seconds) lies in
    [event.onset, event.offset]."""
    t = _times(plan)
    return bool(np.any((t >= event.onset) & (t <= event.offset)))


def peak_intensity(plan: Any, event: Any) -> float:
    """The largest share (0..1) of the event's peak intensity any planned frame shows."""
    t = _times(plan)
    if len(t) == 0:
        return 0.0
    return float(np.max(event.intensity(t)) / event.amplitude) if event.amplitude > 0 else 0.0


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two closed intervals (start, end)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else (1.0 if a == b else 0.0)


def match_spots(spots: Sequence[Any], events: Sequence[Any], iou: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches (spot index, event index, IoU) with IoU >= ``iou``, greedy by IoU.
    Spots need ``onset_s``/``offset_s``, events ``onset``/``offset`` (seconds)."""
    pairs = []
    for i, s in enumerate(spots):
        for j, e in enumerate(events):
            v = interval_iou((s.onset_s, s.offset_s), (e.onset, e.offset))
            if v >= iou:
                pairs.append((v, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_s: set[int] = set()
    used_e: set[int] = set()
    out = []
    for v, i, j in pairs:
        if i in used_s or j in used_e:
            continue
        used_s.add(i)
        used_e.add(j)
        out.append((i, j, v))
    return out


@dataclass(frozen=True)
class SpotScore:
    spots: int
    events: int
    matched: int
    precision: float
    recall: float
    f1: float
    onset_error_s: float   # mean |spotted - true| over matched events
    apex_error_s: float
    offset_error_s: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def score_spots(per_clip: Iterable[tuple[Sequence[Any], Sequence[Any]]], iou: float = 0.5) -> SpotScore:
    """Spotting precision/recall/F1 over clips: ``per_clip`` yields (spots, events) per clip."""
    n_s = n_e = n_m = 0
    errs: list[tuple[float, float, float]] = []
    for spots, events in per_clip:
        m = match_spots(spots, events, iou)
        n_s += len(spots)
        n_e += len(events)
        n_m += len(m)
        for i, j, _ in m:
            s, e = spots[i], events[j]
            errs.append((abs(s.onset_s - e.onset), abs(s.apex_s - e.apex), abs(s.offset_s - e.offset)))
    p = n_m / n_s if n_s else 0.0
    r = n_m / n_e if n_e else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    err = np.mean(np.asarray(errs), axis=0) if errs else np.full(3, np.nan)
    return SpotScore(n_s, n_e, n_m, p, r, f1, float(err[0]), float(err[1]), float(err[2]))


@dataclass(frozen=True)
class CoverageRow:
    """Coverage of one plan over a set of events."""

    plan: str
    events: int
    mean_frames: float       # planned frames per clip
    coverage: float          # share of events with a planned frame inside
    apex_coverage: float     # share with a frame at >= level of the peak intensity
    mean_peak: float         # mean over events of the best intensity share seen

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def coverage_row(name: str, plans: Sequence[Any], events: Sequence[Any], level: float = 0.5) -> CoverageRow:
    """Coverage numbers for ``plans[i]`` against ``events[i]`` (one event per clip)."""
    if len(plans) != len(events):
        raise ValueError(f"{len(plans)} plans for {len(events)} events")
    if not events:
        raise ValueError("coverage of an empty set")
    cov = [covers(p, e) for p, e in zip(plans, events)]
    peaks = [peak_intensity(p, e) for p, e in zip(plans, events)]
    return CoverageRow(name, len(events), float(np.mean([len(_times(p)) for p in plans])), float(np.mean(cov)),
                       float(np.mean([v >= level for v in peaks])), float(np.mean(peaks)))
