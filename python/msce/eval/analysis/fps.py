"""FPS sweep (Fig. 4): macro F1 (or another metric) against the sampling rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from msce.errors import ConfigError
from msce.eval.metrics import SCALAR_METRICS, Predictions

__all__ = ["FpsCurve", "fps_sweep"]


@dataclass(frozen=True)
class FpsCurve:
    """A metric against sampling rate, sorted by fps. ``low``/``high`` are NaN without bootstrap."""

    metric: str
    fps: np.ndarray
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    names: tuple[str, ...]

    @property
    def peak_fps(self) -> float:
        """The fps with the highest value (the lowest such fps on ties)."""
        return float(self.fps[int(np.argmax(self.value))])

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "fps": self.fps.tolist(),
            "value": self.value.tolist(),
            "low": [None if math.isnan(x) else x for x in self.low.tolist()],
            "high": [None if math.isnan(x) else x for x in self.high.tolist()],
            "n": self.n.tolist(),
            "names": list(self.names),
            "peak_fps": self.peak_fps,
        }


def fps_sweep(
    runs: Mapping[float, Predictions] | Sequence[tuple[float, Predictions]],
    metric: str = "macro_f1",
    n_boot: int = 0,
    level: float = 0.95,
    seed: int = 0,
) -> FpsCurve:
    """The curve of ``metric`` against fps (Fig. 4). ``n_boot > 0`` adds bootstrap intervals.

    Duplicate fps values are an error (pass one run per rate).
    """
    from msce.eval.metrics import bootstrap_ci

    items = list(runs.items()) if isinstance(runs, Mapping) else list(runs)
    if not items:
        raise ConfigError("fps_sweep needs at least one run")
    if metric not in SCALAR_METRICS:
        raise ConfigError(f"unknown metric {metric!r}; expected one of {list(SCALAR_METRICS)}")
    fps_vals = [float(f) for f, _ in items]
    if len(set(fps_vals)) != len(fps_vals):
        raise ConfigError(f"fps_sweep got the same fps twice: {sorted(fps_vals)}")
    items = sorted(zip(fps_vals, (p for _, p in items)), key=lambda x: x[0])
    value, low, high, n = [], [], [], []
    for _, pred in items:
        value.append(getattr(pred.report(), metric))
        if n_boot > 0:
            ci = bootstrap_ci(pred.y_true, pred.y_pred, pred.labels, (metric,), n_boot=n_boot, level=level,
                              seed=seed)[metric]
            low.append(ci.low)
            high.append(ci.high)
        else:
            low.append(float("nan"))
            high.append(float("nan"))
        n.append(len(pred))
    return FpsCurve(
        metric=metric,
        fps=np.array([f for f, _ in items]),
        value=np.array(value),
        low=np.array(low),
        high=np.array(high),
        n=np.array(n),
        names=tuple(p.name for _, p in items),
    )
