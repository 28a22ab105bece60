"""Correlations of per-class series (Sec. 3.3, Eq. 1, Table 1, Figs. 2 and S3).

Per-class F1 against the lexical frequency of the class word, or against training
class counts: Pearson r with a two-tailed p (t-test, n-2 degrees of freedom) and
Spearman rho.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from msce.errors import ConfigError
from msce.eval.metrics import ClassificationReport

__all__ = ["Correlation", "correlate", "pearson_p_from_r", "frequency_correlation", "frequency_correlations",
           "correlation_table"]


@dataclass(frozen=True)
class Correlation:
    """Pearson r with two-tailed p, and Spearman rho with its p, over ``n`` points."""

    r: float
    p: float
    rho: float
    rho_p: float
    n: int

    def to_dict(self) -> dict:
        return {"pearson_r": self.r, "pearson_p": self.p, "spearman_rho": self.rho, "spearman_p": self.rho_p,
                "n": self.n}


def pearson_p_from_r(r: float, n: int) -> float:
    """Two-tailed p of Pearson's r under H0 (no correlation, bivariate normal).

    ``t = r sqrt((n-2) / (1-r^2))`` follows Student's t with n-2 degrees of freedom;
    ``p = 2 P(T > |t|)``. Equal to ``scipy.stats.pearsonr``'s p-value.
    """
    from scipy.stats import t as student_t

    if n < 3:
        return 1.0
    if abs(r) >= 1.0:
        return 0.0
    tval = abs(r) * math.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * student_t.sf(tval, n - 2))


def correlate(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Pearson (Eq. 1 of the paper) and Spearman correlations of two equal-length series.

    ``r = sum((x - mean x)(y - mean y)) / sqrt(sum (x - mean x)^2 * sum (y - mean y)^2)``.
    A constant series gives NaN r and p (no warning).
    """
    from scipy.stats import spearmanr

    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ConfigError(f"correlate needs two 1-D series of equal length, got {xa.shape} and {ya.shape}")
    n = xa.size
    if n < 2:
        raise ConfigError(f"correlate needs at least 2 points, got {n}")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        nan = float("nan")
        return Correlation(nan, nan, nan, nan, n)
    dx, dy = xa - xa.mean(), ya - ya.mean()
    r = float(np.sum(dx * dy) / math.sqrt(float(np.sum(dx * dx)) * float(np.sum(dy * dy))))
    r = max(-1.0, min(1.0, r))
    if n > 2:
        s = spearmanr(xa, ya)
        rho, rho_p = float(s.statistic), float(s.pvalue)
    else:
        rho, rho_p = float(np.sign(r)), 1.0
    return Correlation(r, pearson_p_from_r(r, n), rho, rho_p, n)


def _per_class_values(values: ClassificationReport | Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    if isinstance(values, ClassificationReport):
        d = dict(zip(values.labels, values.f1.tolist()))
    else:
        d = dict(values)
    missing = [n for n in names if n not in d]
    if missing:
        raise ConfigError(f"no value for class(es) {missing}")
    return np.array([d[n] for n in names], dtype=np.float64)


def frequency_correlation(
    per_class_f1: ClassificationReport | Mapping[str, float],
    frequencies: Mapping[str, float],
    log: bool = False,
) -> Correlation:
    """Correlation of per-class F1 with class frequency over the classes of ``frequencies``.

    ``log=True`` correlates with ``log10(frequency)`` (frequencies must be > 0); the
    default (raw frequencies) is what Eq. 1 of the paper applies.
    """
    names = list(frequencies)
    f = np.array([frequencies[n] for n in names], dtype=np.float64)
    if log:
        if np.any(f <= 0):
            raise ConfigError("log frequencies need every frequency > 0")
        f = np.log10(f)
    return correlate(f, _per_class_values(per_class_f1, names))


def frequency_correlations(
    per_class_f1: ClassificationReport | Mapping[str, float], frequencies: Mapping[str, float]
) -> dict[str, Correlation]:
    """F1 against frequency on both scales: ``{"raw": ..., "log10": ...}``.

    ``"raw"`` is Eq. 1 of the paper on the frequencies as they are; ``"log10"`` on
    ``log10(frequency)``, which a long tail spanning orders of magnitude needs so that
    one head class does not decide r. ``"log10"`` is left out when a frequency is <= 0.
    """
    out = {"raw": frequency_correlation(per_class_f1, frequencies)}
    if all(float(v) > 0 for v in frequencies.values()):
        out["log10"] = frequency_correlation(per_class_f1, frequencies, log=True)
    return out


def correlation_table(
    series: Mapping[str, Mapping[str, float]], classes: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairwise Pearson r and p between named per-class series (Table 1 layout).

    Returns (names, r, p) with ``r[i, i] = 1`` and ``p[i, i] = NaN``.
    """
    names = list(series)
    if classes is None:
        classes = list(next(iter(series.values()))) if series else []
    vecs = [_per_class_values(series[n], classes) for n in names]
    m = len(names)
    r = np.eye(m)
    p = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(i + 1, m):
            c = correlate(vecs[i], vecs[j])
            r[i, j] = r[j, i] = c.r
            p[i, j] = p[j, i] = c.p
    return names, r, p
