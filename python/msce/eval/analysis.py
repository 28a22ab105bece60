"""The paper's analyses on top of per-video predictions.

* **Frame-shuffle sensitivity** (Sec. 3.4, Tables 2, S2, S3): per-class F1 of a normal
  run against its frame-shuffled (FS) twin, with a paired test over videos.
* **FPS sweep** (Fig. 4): macro F1 (or another metric) against the sampling rate.
* **Long tail** (Sec. 3.3, Table 1, Fig. 2): per-class F1 against the lexical frequency
  of the class word: Pearson r with a two-tailed p (t-test, n-2 degrees of freedom) and
  Spearman rho. Frequencies come from ``wordfreq`` (built-in proxy, English or
  Chinese) or a user CSV ``label,count`` (e.g. Google Books Ngram counts).
* **Asymmetric confusion** (Sec. 3.3, Fig. 3): for each pair of classes the flow i->j
  (true i predicted j) against j->i; totals head->tail against tail->head with an
  exact binomial (sign) test. Head classes come from the training split's class counts
  when known (the most frequent classes holding at least half of the training clips),
  else the paper's MAFW head set (Sec. 3.3), else the user (:func:`resolve_head_tail`).
* **Training distribution** (Fig. S3): per-class F1 against training class counts
  (:func:`training_class_counts`, then :func:`frequency_correlation`).
* **Run comparison**: metrics of several runs on their common videos, with paired
  bootstrap intervals of the macro-F1 difference and an exact McNemar test.

Paired tests
------------
For two runs A and B on the same videos, let ``b`` = #videos A got right and B got
wrong, ``c`` = #videos A got wrong and B right. The exact McNemar test is the
two-sided binomial test of ``b`` successes in ``b + c`` trials with p = 1/2 (p = 1 when
``b + c = 0``). Paired bootstrap: resample video indices with replacement, apply the
same indices to both runs, and take percentiles of ``metric(B) - metric(A)``.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from msce.errors import ConfigError, DatasetError
from msce.labels import LabelSet, get_label_set
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
    "FpsCurve",
    "fps_sweep",
    "CHINESE_WORDS",
    "lexical_frequency",
    "load_frequency_csv",
    "Correlation",
    "correlate",
    "pearson_p_from_r",
    "frequency_correlation",
    "correlation_table",
    "PairFlow",
    "Asymmetry",
    "PAPER_HEAD_CLASSES",
    "SOURCE_COUNTS",
    "SOURCE_PAPER",
    "SOURCE_USER",
    "HeadTail",
    "training_class_counts",
    "head_tail_split",
    "resolve_head_tail",
    "asymmetric_confusion",
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


# --------------------------------------------------------------------------- FPS sweep


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


# --------------------------------------------------------------------------- long tail

#: Chinese words for the DFEW/MAFW class names (used with wordfreq's "zh" data).
CHINESE_WORDS: dict[str, str] = {
    "anger": "愤怒",
    "angry": "愤怒",
    "disgust": "厌恶",
    "fear": "恐惧",
    "happiness": "快乐",
    "happy": "快乐",
    "neutral": "中性",
    "sadness": "悲伤",
    "sad": "悲伤",
    "surprise": "惊讶",
    "contempt": "轻蔑",
    "anxiety": "焦虑",
    "helplessness": "无助",
    "disappointment": "失望",
}


def _label_names(labels: LabelSet | Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.names) if isinstance(labels, LabelSet) else tuple(labels)


def lexical_frequency(
    labels: LabelSet | Sequence[str], lang: str = "en", words: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Word frequency of each class word from ``wordfreq`` (a proxy for web-text prevalence).

    ``wordfreq.word_frequency(word, lang)`` is the word's share of tokens in its
    multi-source corpus (e.g. 1e-5). English uses the class name itself; Chinese
    (``lang="zh"``, segmented by jieba inside wordfreq, offline) uses
    :data:`CHINESE_WORDS`. ``words`` overrides the word of any class.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jieba's old regexes emit SyntaxWarnings when first compiled
            from wordfreq import word_frequency
    except ImportError:
        raise ConfigError("lexical_frequency needs the 'wordfreq' package (pip install 'msce[eval]')") from None
    if lang == "zh":
        try:
            import logging

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import jieba
            jieba.setLogLevel(logging.WARNING)  # silence the dictionary-loading banner on stderr
        except ImportError:
            pass  # wordfreq raises its own error naming the missing extra
    names = _label_names(labels)
    words = dict(words or {})
    out = {}
    for name in names:
        word = words.get(name)
        if word is None:
            if lang == "en":
                word = name
            elif lang == "zh":
                word = CHINESE_WORDS.get(name)
                if word is None:
                    raise ConfigError(f"no Chinese word known for class {name!r}; pass words={{{name!r}: ...}}")
            else:
                raise ConfigError(f"lang {lang!r} needs an explicit words mapping for every class")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = float(word_frequency(word, lang))
    return out


def load_frequency_csv(path: str | os.PathLike, labels: LabelSet | Sequence[str]) -> dict[str, float]:
    """Read ``label,count`` rows (header optional) mapped to class names.

    Labels go through the label set's names and synonyms (case-insensitive) when a
    LabelSet is given. Every class must appear exactly once; extra rows are an error
    too, so a typo cannot silently drop a class.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"frequency CSV not found: {path}")
    names = _label_names(labels)
    lset = labels if isinstance(labels, LabelSet) else None
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    for lineno, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DatasetError(f"{path}:{lineno}: expected label,count, got {row}")
        raw, cnt = row[0].strip(), row[1].strip()
        try:
            value = float(cnt)
        except ValueError:
            if lineno == 1:
                continue  # header
            raise DatasetError(f"{path}:{lineno}: count {cnt!r} is not a number") from None
        name = lset.canonical(raw) if lset else (raw.lower() if raw.lower() in names else None)
        if name is None:
            raise DatasetError(f"{path}:{lineno}: {raw!r} is not one of the classes {list(names)}")
        if name in out:
            raise DatasetError(f"{path}:{lineno}: class {name!r} appears twice")
        out[name] = value
    missing = [n for n in names if n not in out]
    if missing:
        raise DatasetError(f"{path}: no count for class(es) {missing}")
    return {n: out[n] for n in names}


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


# --------------------------------------------------------------------------- asymmetric confusion


@dataclass(frozen=True)
class PairFlow:
    """Misclassification flow between classes ``a`` and ``b`` (``a`` is the more frequent
    one when frequencies are known, else the earlier in label order).

    ``a_to_b`` counts videos of true class a predicted as b. ``p_value``: two-sided
    exact binomial test of ``a_to_b`` in ``a_to_b + b_to_a`` trials at 1/2.
    """

    a: str
    b: str
    a_to_b: int
    b_to_a: int
    p_value: float

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "a_to_b": self.a_to_b, "b_to_a": self.b_to_a, "p_value": self.p_value}


@dataclass(frozen=True)
class Asymmetry:
    """Head/tail confusion flows.

    ``tail_to_head`` = videos of a tail class predicted as a head class;
    ``head_to_tail`` the reverse. ``p_two_sided`` and ``p_greater`` are exact binomial
    tests of ``tail_to_head`` in ``tail_to_head + head_to_tail`` trials at 1/2
    (``p_greater``: H1 = tail->head is the more likely direction). Rates divide by the
    support of the source group. Counts are comparable only when class supports are
    equal, which the balanced split guarantees.
    """

    head: tuple[str, ...]
    tail: tuple[str, ...]
    head_to_tail: int
    tail_to_head: int
    head_support: int
    tail_support: int
    p_two_sided: float
    p_greater: float
    pairs: tuple[PairFlow, ...]
    source: str = ""
    rule: str = ""

    @property
    def head_to_tail_rate(self) -> float:
        return self.head_to_tail / self.head_support if self.head_support else 0.0

    @property
    def tail_to_head_rate(self) -> float:
        return self.tail_to_head / self.tail_support if self.tail_support else 0.0

    def to_dict(self) -> dict:
        return {
            "head": list(self.head),
            "tail": list(self.tail),
            "head_to_tail": self.head_to_tail,
            "tail_to_head": self.tail_to_head,
            "head_to_tail_rate": self.head_to_tail_rate,
            "tail_to_head_rate": self.tail_to_head_rate,
            "p_two_sided": self.p_two_sided,
            "p_greater": self.p_greater,
            "pairs": [p.to_dict() for p in self.pairs],
            "source": self.source,
            "rule": self.rule,
        }


def training_class_counts(split, labels: LabelSet | Sequence[str]) -> dict[str, int]:
    """Number of training clips per class of a split, in label order (zeros included).

    ``split`` is a :class:`msce.eval.splits.Split` (or anything with ``train`` ids and a
    ``labels`` mapping id -> class, as :meth:`Split.save` records it). Every training id
    must have a recorded class from ``labels``; otherwise DatasetError.
    """
    names = _label_names(labels)
    lset = labels if isinstance(labels, LabelSet) else None
    train = tuple(getattr(split, "train", ()))
    id_labels = getattr(split, "labels", None) or {}
    if not train:
        raise DatasetError("the split lists no training clips, so there are no training class counts")
    counts = {n: 0 for n in names}
    unlabelled, unknown = [], set()
    for i in train:
        lab = id_labels.get(i)
        if lab is None:
            unlabelled.append(i)
            continue
        name = lset.canonical(lab) if lset else (lab if lab in counts else None)
        if name is None:
            unknown.add(lab)
            continue
        counts[name] += 1
    if unlabelled:
        raise DatasetError(f"the split records no class for {len(unlabelled)} training clip(s) "
                           f"(first: {unlabelled[:5]}); training class counts need every label")
    if unknown:
        raise DatasetError(f"the split's training clips use class(es) {sorted(unknown)} outside {list(names)}")
    return counts


#: Head classes the paper names (Sec. 3.3, MAFW only): "anger, happiness, neutral,
#: sadness, surprise". The paper names three tail classes (contempt, disappointment,
#: helplessness) and is silent on anxiety, disgust and fear; msce puts every class that
#: is not head in the tail. The paper names no head set for DFEW.
PAPER_HEAD_CLASSES: dict[str, tuple[str, ...]] = {
    "mafw": ("anger", "happiness", "neutral", "sadness", "surprise"),
}

#: Where a head/tail split came from (printed in reports).
SOURCE_COUNTS = "training class counts"
SOURCE_PAPER = "paper Sec. 3.3"
SOURCE_USER = "user"


@dataclass(frozen=True)
class HeadTail:
    """A head/tail partition of the classes and where it came from.

    ``source`` is :data:`SOURCE_COUNTS`, :data:`SOURCE_PAPER` or :data:`SOURCE_USER`;
    ``counts`` holds the training class counts the split was ranked by (None otherwise);
    ``rule`` says in words how the head was chosen.
    """

    head: tuple[str, ...]
    tail: tuple[str, ...]
    source: str
    rule: str = ""
    counts: Mapping[str, float] | None = None

    def describe(self) -> str:
        text = f"Head: {', '.join(self.head)}. Tail: {', '.join(self.tail)}. Source: {self.source}"
        return text + (f" ({self.rule})." if self.rule else ".")

    def to_dict(self) -> dict:
        return {"head": list(self.head), "tail": list(self.tail), "source": self.source, "rule": self.rule,
                "counts": None if self.counts is None else dict(self.counts)}


def head_tail_split(
    counts: Mapping[str, float], n_head: int | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split classes by training class counts into (head, tail).

    Classes are ranked by count, largest first; equal counts keep the mapping's order
    (a stable sort, so with counts in label-set order a tie goes to the class listed
    first in the label set). Default (``n_head=None``): head is the shortest prefix of
    that ranking whose counts sum to at least half of all counts (``2 * prefix >= total``),
    so the head classes together hold at least half of the training clips. ``n_head``
    instead takes the ``n_head`` most frequent classes. The tail is every other class,
    in ranking order.
    """
    names = list(counts)
    k = len(names)
    if k < 2:
        raise ConfigError(f"a head/tail split needs at least 2 classes, got {names}")
    vals = {n: float(counts[n]) for n in names}
    bad = [n for n, v in vals.items() if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"class counts must be finite and >= 0; bad count for {bad}")
    ranked = sorted(names, key=lambda n: -vals[n])
    if n_head is None:
        total = sum(vals.values())
        if total <= 0:
            raise ConfigError("class counts sum to 0: cannot tell head from tail classes")
        cum, n_head = 0.0, 0
        while 2.0 * cum < total and n_head < k - 1:  # the smallest count is <= half: the tail is never empty
            cum += vals[ranked[n_head]]
            n_head += 1
    if not 0 < n_head < k:
        raise ConfigError(f"n_head must be between 1 and {k - 1}, got {n_head}")
    return tuple(ranked[:n_head]), tuple(ranked[n_head:])


def resolve_head_tail(
    labels: LabelSet | Sequence[str],
    *,
    head: Sequence[str] | None = None,
    tail: Sequence[str] | None = None,
    counts: Mapping[str, float] | None = None,
    n_head: int | None = None,
    counts_note: str = "",
) -> HeadTail:
    """The head/tail split used by :func:`asymmetric_confusion`, first rule that applies:

    1. ``head`` given (``tail``: default every other class) -> source "user";
    2. ``counts`` (training class counts, one per class) -> :func:`head_tail_split`
       (``n_head`` or the half-of-training-clips rule) -> source "training class counts";
    3. the labels are MAFW's 11 classes -> :data:`PAPER_HEAD_CLASSES` -> "paper Sec. 3.3";
    4. otherwise ConfigError: msce has no default (the paper names no head set for DFEW
       or other label sets), so pass training class counts or an explicit head.

    ``counts_note`` is added to the rule text (e.g. where the counts came from).
    """
    names = list(_label_names(labels))
    pos = set(names)
    if head is not None:
        head = tuple(head)
        tail = tuple(tail) if tail is not None else tuple(n for n in names if n not in head)
        unknown = [n for n in head + tail if n not in pos]
        if unknown:
            raise ConfigError(f"head/tail: unknown class(es) {unknown}; expected some of {names}")
        if set(head) & set(tail):
            raise ConfigError(f"head/tail: classes in both head and tail: {sorted(set(head) & set(tail))}")
        if not head or not tail:
            raise ConfigError("head/tail: head and tail must both be non-empty")
        return HeadTail(head, tail, SOURCE_USER, "head classes given explicitly")
    if tail is not None:
        raise ConfigError("head/tail: tail classes need head classes too")
    if counts is not None:
        unknown = [n for n in counts if n not in pos]
        missing = [n for n in names if n not in counts]
        if unknown or missing:
            raise ConfigError(f"training class counts: unknown class(es) {unknown}, missing class(es) {missing}; "
                              f"expected one count for each of {names}")
        ordered = {n: counts[n] for n in names}
        h, t = head_tail_split(ordered, n_head)
        total = sum(float(v) for v in ordered.values())
        rule = (f"the {n_head} most frequent classes" if n_head is not None
                else "the most frequent classes that together hold at least half")
        rule += f" of {total:g} training clips"
        if counts_note:
            rule += f", {counts_note}"
        return HeadTail(h, t, SOURCE_COUNTS, rule, ordered)
    if n_head is not None:
        raise ConfigError("n_head ranks classes by training class counts, and no counts were given")
    for key, paper_head in PAPER_HEAD_CLASSES.items():
        if set(names) == set(get_label_set(key).names):
            h = tuple(n for n in names if n in paper_head)
            return HeadTail(h, tuple(n for n in names if n not in paper_head), SOURCE_PAPER,
                            f"the head classes the paper names for {key.upper()}; every other class is tail")
    raise ConfigError(
        f"no default head/tail split for classes {names}: the paper names head classes only for MAFW "
        f"(Sec. 3.3), so give the training class counts or the head classes explicitly"
    )


def asymmetric_confusion(
    confusion: np.ndarray,
    labels: Sequence[str],
    head: Sequence[str] | HeadTail | None = None,
    tail: Sequence[str] | None = None,
    counts: Mapping[str, float] | None = None,
    n_head: int | None = None,
    frequencies: Mapping[str, float] | None = None,
) -> Asymmetry:
    """Pairwise and head/tail confusion flows of a (K, K) or (K, K+1) confusion matrix.

    The head/tail split is ``head`` when it is a :class:`HeadTail`, else
    :func:`resolve_head_tail` of ``head``/``tail`` (explicit classes), ``counts``
    (training class counts, optionally ``n_head``) or the paper's MAFW head set.
    ``frequencies`` (e.g. lexical frequencies) only orients the pairs when no counts
    are given: ``a`` is the more frequent class of a pair; with neither, head classes
    come first, then label order. The invalid column, if present, is ignored. Pairs are
    sorted by ``|a_to_b - b_to_a|``, largest first.
    """
    from scipy.stats import binomtest

    cm = np.asarray(confusion)
    labels = list(labels)
    k = len(labels)
    if cm.ndim != 2 or cm.shape[0] != k or cm.shape[1] not in (k, k + 1):
        raise ConfigError(f"confusion matrix shape {cm.shape} does not fit {k} labels")
    support = cm.sum(axis=1).astype(np.int64)  # every video of the true class, invalid answers included
    cm = cm[:, :k].astype(np.int64)
    pos = {n: i for i, n in enumerate(labels)}
    if isinstance(head, HeadTail):
        split = head
        bad = [n for n in split.head + split.tail if n not in pos]
        if bad:
            raise ConfigError(f"head/tail: unknown class(es) {bad}; expected some of {labels}")
    else:
        split = resolve_head_tail(labels, head=head, tail=tail, counts=counts, n_head=n_head)
    head, tail = split.head, split.tail
    hi = [pos[n] for n in head]
    ti = [pos[n] for n in tail]
    h2t = int(cm[np.ix_(hi, ti)].sum())
    t2h = int(cm[np.ix_(ti, hi)].sum())
    total = h2t + t2h
    if total:
        p2 = float(binomtest(t2h, total, 0.5, alternative="two-sided").pvalue)
        pg = float(binomtest(t2h, total, 0.5, alternative="greater").pvalue)
    else:
        p2 = pg = 1.0

    order_by = split.counts if split.counts is not None else counts if counts is not None else frequencies
    if order_by is not None:
        order = sorted(labels, key=lambda n: -float(order_by.get(n, -math.inf)))
    else:
        order = [n for n in labels if n in head] + [n for n in labels if n not in head]
    rank = {n: i for i, n in enumerate(order)}
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            a, b = sorted((labels[i], labels[j]), key=lambda n: rank[n])
            ab, ba = int(cm[pos[a], pos[b]]), int(cm[pos[b], pos[a]])
            p = 1.0 if ab + ba == 0 else float(binomtest(ab, ab + ba, 0.5).pvalue)
            pairs.append(PairFlow(a, b, ab, ba, p))
    pairs.sort(key=lambda f: (-abs(f.a_to_b - f.b_to_a), -(f.a_to_b + f.b_to_a), rank[f.a], rank[f.b]))
    return Asymmetry(
        head=head,
        tail=tail,
        head_to_tail=h2t,
        tail_to_head=t2h,
        head_support=int(support[hi].sum()),
        tail_support=int(support[ti].sum()),
        p_two_sided=p2,
        p_greater=pg,
        pairs=tuple(pairs),
        source=split.source,
        rule=split.rule,
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
