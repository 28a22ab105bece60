"""Paired comparisons of runs on the same videos.

* **Frame-shuffle sensitivity** (Sec. 3.4, Tables 2, S2, S3): per-class F1 of a normal
  run against its frame-shuffled (FS) twin, with a paired test over videos.
* **Run comparison**: metrics of several runs on their common videos, with paired
  bootstrap intervals of the macro-F1 difference and an exact McNemar test.

For two runs A and B on the same videos, let ``b`` = #videos A got right and B got
wrong, ``c`` = #videos A got wrong and B right. The exact McNemar test is the
two-sided binomial test of ``b`` successes in ``b + c`` trials with p = 1/2 (p = 1 when
``b + c = 0``). Paired bootstrap: resample video indices with replacement, apply the
same indices to both runs, and take percentiles of ``metric(B) - metric(A)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from msce.errors import ConfigError
from msce.eval.metrics import (
    SCALAR_METRICS,
    ClassificationReport,
    ConfidenceInterval,
    Predictions,
    _cm_from_codes,
    scores_from_confusion,
)

__all__ = [
    "macro_f1_from_per_class",
    "McNemarResult",
    "mcnemar_exact",
    "paired_bootstrap_delta",
    "ShuffleSensitivity",
    "shuffle_sensitivity",
    "RunDelta",
    "RunComparison",
    "compare_runs",
]


# --------------------------------------------------------------------------- basics


def macro_f1_from_per_class(f1: Sequence[float] | Mapping[str, float]) -> float:
    """Unweighted mean of per-class F1 scores (the macro-F1 of the paper's tables)."""
    vals = np.asarray(list(f1.values()) if isinstance(f1, Mapping) else list(f1), dtype=np.float64)
    if vals.size == 0:
        raise ConfigError("macro F1 needs at least one per-class value")
    return float(vals.mean())


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test. ``b``: A right, B wrong; ``c``: A wrong, B right."""

    b: int
    c: int
    p_value: float

    @property
    def n_discordant(self) -> int:
        return self.b + self.c

    def to_dict(self) -> dict:
        return {"b": self.b, "c": self.c, "p_value": self.p_value}


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """Exact (binomial) McNemar test on paired per-video correctness."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ConfigError(f"paired correctness vectors must be 1-D and equal length, got {a.shape} and {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(b, c, p)


def paired_bootstrap_delta(
    a: Predictions,
    b: Predictions,
    metric: str = "macro_f1",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 256,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``metric(b) - metric(a)`` over common videos.

    The same resampled video indices (``Generator(PCG64(seed))``) are applied to both
    runs, so the interval reflects the paired design.
    """
    if metric not in SCALAR_METRICS:
        raise ConfigError(f"unknown metric {metric!r}; expected one of {list(SCALAR_METRICS)}")
    if n_boot < 1 or not 0 < level < 1:
        raise ConfigError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    a, b = a.align(b)
    k = len(a.labels)
    ta, pa = a.codes()
    _, pb = b.codes()
    n = len(ta)
    score_a = scores_from_confusion(_cm_from_codes(ta, pa, k))[metric]
    score_b = scores_from_confusion(_cm_from_codes(ta, pb, k))[metric]
    est = float(score_b - score_a)
    if n == 0:
        nan = float("nan")
        return ConfidenceInterval(nan, nan, nan, level, n_boot)
    cells = k * (k + 1)
    code_a = ta * (k + 1) + np.where(pa < 0, k, pa)
    code_b = ta * (k + 1) + np.where(pb < 0, k, pb)
    rng = np.random.Generator(np.random.PCG64(seed))
    deltas = np.empty(n_boot)
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        off = np.arange(m)[:, None] * cells
        cma = np.bincount((off + code_a[idx]).ravel(), minlength=m * cells).reshape(m, k, k + 1)
        cmb = np.bincount((off + code_b[idx]).ravel(), minlength=m * cells).reshape(m, k, k + 1)
        deltas[done : done + m] = scores_from_confusion(cmb)[metric] - scores_from_confusion(cma)[metric]
        done += m
    return ConfidenceInterval(
        estimate=est,
        low=float(np.quantile(deltas, (1 - level) / 2)),
        high=float(np.quantile(deltas, (1 + level) / 2)),
        level=level,
        n_boot=n_boot,
    )


# --------------------------------------------------------------------------- frame shuffle


@dataclass(frozen=True)
class ShuffleSensitivity:
    """Normal vs frame-shuffled run on the same videos.

    Per-class arrays are in ``labels`` order. ``tests[label]`` is the exact McNemar
    test restricted to that class's videos (correct = predicted the true class);
    ``overall`` uses every video. ``macro_f1_delta`` is FS minus normal with a paired
    bootstrap interval.
    """

    labels: tuple[str, ...]
    n: int
    normal: ClassificationReport
    shuffled: ClassificationReport
    tests: Mapping[str, McNemarResult]
    overall: McNemarResult
    macro_f1_delta: ConfidenceInterval

    @property
    def f1_delta(self) -> np.ndarray:
        return self.shuffled.f1 - self.normal.f1

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "n": self.n,
            "per_class": {
                lab: {
                    "f1_normal": float(self.normal.f1[i]),
                    "f1_shuffled": float(self.shuffled.f1[i]),
                    "f1_delta": float(self.f1_delta[i]),
                    "mcnemar": self.tests[lab].to_dict(),
                }
                for i, lab in enumerate(self.labels)
            },
            "macro_f1_normal": self.normal.macro_f1,
            "macro_f1_shuffled": self.shuffled.macro_f1,
            "macro_f1_delta": self.macro_f1_delta.to_dict(),
            "mcnemar": self.overall.to_dict(),
        }


def shuffle_sensitivity(
    normal: Predictions, shuffled: Predictions, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> ShuffleSensitivity:
    """Compare a normal run with its frame-shuffled twin on their common videos."""
    a, b = normal.align(shuffled)
    if len(a) == 0:
        raise ConfigError(f"runs {normal.name!r} and {shuffled.name!r} share no videos")
    ca, cb = a.correct(), b.correct()
    t, _ = a.codes()
    tests = {lab: mcnemar_exact(ca[t == i], cb[t == i]) for i, lab in enumerate(a.labels)}
    return ShuffleSensitivity(
        labels=a.labels,
        n=len(a),
        normal=a.report(),
        shuffled=b.report(),
        tests=tests,
        overall=mcnemar_exact(ca, cb),
        macro_f1_delta=paired_bootstrap_delta(a, b, "macro_f1", n_boot=n_boot, level=level, seed=seed),
    )


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class RunDelta:
    """One run against the baseline on their common videos."""

    name: str
    n_common: int
    macro_f1_delta: ConfidenceInterval
    mcnemar: McNemarResult

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_common": self.n_common,
            "macro_f1_delta": self.macro_f1_delta.to_dict(),
            "mcnemar": self.mcnemar.to_dict(),
        }


@dataclass(frozen=True)
class RunComparison:
    """Metrics of several runs (each on all its videos) and paired deltas vs the baseline."""

    names: tuple[str, ...]
    reports: tuple[ClassificationReport, ...]
    baseline: str
    deltas: tuple[RunDelta, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "runs": {n: r.to_dict() for n, r in zip(self.names, self.reports)},
            "deltas": [d.to_dict() for d in self.deltas],
        }


def compare_runs(
    runs: Sequence[Predictions], baseline: int = 0, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> RunComparison:
    """Compare runs that share a label list. Deltas are ``run - baseline`` (paired)."""
    runs = list(runs)
    if len(runs) < 1:
        raise ConfigError("compare_runs needs at least one run")
    if not 0 <= baseline < len(runs):
        raise ConfigError(f"baseline index {baseline} out of range for {len(runs)} runs")
    names = [r.name or f"run{i}" for i, r in enumerate(runs)]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be distinct: {names}")
    base = runs[baseline]
    deltas = []
    for i, r in enumerate(runs):
        if i == baseline:
            continue
        a, b = base.align(r)
        deltas.append(
            RunDelta(
                name=names[i],
                n_common=len(a),
                macro_f1_delta=paired_bootstrap_delta(a, b, "macro_f1", n_boot=n_boot, level=level, seed=seed),
                mcnemar=mcnemar_exact(a.correct(), b.correct()),
            )
        )
    return RunComparison(
        names=tuple(names),
        reports=tuple(r.report() for r in runs),
        baseline=names[baseline],
        deltas=tuple(deltas),
    )
