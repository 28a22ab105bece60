"""Classification metrics for closed-set emotion recognition with invalid answers.

Inputs are per-video true labels and predictions. A prediction is *invalid* when it
is ``None`` (the answer could not be parsed) or any value outside the class list.
Invalid predictions are kept, counted, and scored as wrong for every metric, exactly
as scikit-learn does when ``labels=<class list>`` and a prediction lies outside it.

Notation (K classes, index k; n videos)
---------------------------------------
* ``C`` is the K x (K+1) confusion matrix: ``C[i, j]`` counts videos of true class i
  predicted as class j; column K counts invalid predictions of true class i.
* support ``s_k = sum_j C[k, j]`` (row sum, invalid included); predicted count
  ``q_k = sum_i C[i, k]`` (column sum over the K classes); ``tp_k = C[k, k]``.
* precision ``P_k = tp_k / q_k``, recall ``R_k = tp_k / s_k``,
  ``F1_k = 2 tp_k / (s_k + q_k)`` (the harmonic mean of P_k and R_k); a zero
  denominator gives 0 (scikit-learn's ``zero_division=0``).
* macro = unweighted mean over the K classes (classes without support included);
  weighted = mean weighted by ``s_k``.
* UAR = macro recall; WAR = ``sum_k tp_k / n`` = accuracy = weighted recall.
* invalid rate = ``sum_i C[i, K] / n``.

Bootstrap confidence intervals resample videos with replacement (seeded
``PCG64``), recompute the metric on each resample and report the percentile interval.
Everything here is plain numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from msce.errors import ConfigError
from msce.labels import LabelSet

__all__ = [
    "Predictions",
    "ClassificationReport",
    "ConfidenceInterval",
    "encode",
    "confusion_matrix",
    "scores_from_confusion",
    "classification_report",
    "bootstrap_ci",
    "normalize_confusion",
    "as_label_names",
    "SCALAR_METRICS",
]

#: Scalar metrics a report exposes (and bootstrap_ci understands).
SCALAR_METRICS = (
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "uar",
    "war",
    "accuracy",
    "invalid_rate",
)

INVALID = -1


def _names(labels: LabelSet | Sequence[str]) -> tuple[str, ...]:
    names = tuple(labels.names) if isinstance(labels, LabelSet) else tuple(labels)
    if not names:
        raise ConfigError("labels must list at least one class")
    if len(set(names)) != len(names):
        raise ConfigError(f"labels contain duplicates: {list(names)}")
    return names


def encode(
    y_true: Iterable, y_pred: Iterable, labels: LabelSet | Sequence[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Map label values to class indices; invalid predictions become -1.

    ``y_true`` values must all be in ``labels`` (ConfigError otherwise); a prediction
    that is ``None`` or not in ``labels`` is invalid. Values are compared exactly
    (map answers to canonical names before calling).
    """
    names = _names(labels)
    pos = {n: i for i, n in enumerate(names)}
    t_list, p_list = list(y_true), list(y_pred)
    if len(t_list) != len(p_list):
        raise ConfigError(f"y_true has {len(t_list)} items but y_pred has {len(p_list)}")
    try:
        t = np.fromiter((pos[v] for v in t_list), dtype=np.int64, count=len(t_list))
    except KeyError as exc:
        raise ConfigError(f"true label {exc.args[0]!r} is not in the class list {list(names)}") from None
    except TypeError as exc:  # unhashable label
        raise ConfigError(f"true labels must be hashable class names: {exc}") from None
    p = np.fromiter(
        (pos.get(v, INVALID) if v is not None and _hashable(v) else INVALID for v in p_list),
        dtype=np.int64,
        count=len(p_list),
    )
    return t, p, names


def _hashable(v) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _cm_from_codes(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    col = np.where(p < 0, k, p)
    return np.bincount(t * (k + 1) + col, minlength=k * (k + 1)).reshape(k, k + 1)


def confusion_matrix(y_true: Iterable, y_pred: Iterable, labels: LabelSet | Sequence[str]) -> np.ndarray:
    """K x (K+1) integer counts; rows = true class, columns = predicted class then invalid."""
    t, p, names = encode(y_true, y_pred, labels)
    return _cm_from_codes(t, p, len(names))


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """All metrics from one confusion matrix (K, K+1) or a stack (..., K, K+1).

    Returns per-class arrays ``precision``, ``recall``, ``f1``, ``support``, ``predicted``
    (shape (..., K)) and every name in :data:`SCALAR_METRICS` (shape (...)). A matrix
    of shape (K, K) (no invalid column) is accepted too.
    """
    cm = np.asarray(cm)
    if cm.ndim < 2 or cm.shape[-1] not in (cm.shape[-2], cm.shape[-2] + 1):
        raise ConfigError(f"confusion matrix must be (K, K+1) or (K, K), got shape {cm.shape}")
    k = cm.shape[-2]
    cls = cm[..., :, :k]
    tp = np.diagonal(cls, axis1=-2, axis2=-1).astype(np.float64)
    support = cm.sum(axis=-1).astype(np.float64)
    predicted = cls.sum(axis=-2).astype(np.float64)
    n = support.sum(axis=-1)
    invalid = (cm[..., :, k].sum(axis=-1) if cm.shape[-1] == k + 1 else np.zeros_like(n)).astype(np.float64)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2.0 * tp, support + predicted)
    w = _div(support, n[..., None])
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
        "macro_precision": precision.mean(axis=-1),
        "macro_recall": recall.mean(axis=-1),
        "macro_f1": f1.mean(axis=-1),
        "weighted_precision": (w * precision).sum(axis=-1),
        "weighted_recall": (w * recall).sum(axis=-1),
        "weighted_f1": (w * f1).sum(axis=-1),
        "uar": recall.mean(axis=-1),
        "war": _div(tp.sum(axis=-1), n),
        "invalid_rate": _div(invalid, n),
    }
    out["accuracy"] = out["war"]
    return out


@dataclass(frozen=True)
class ConfidenceInterval:
    """Percentile bootstrap interval around a point estimate."""

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClassificationReport:
    """Metrics of one set of predictions (see the module docstring for definitions)."""

    labels: tuple[str, ...]
    confusion: np.ndarray  # (K, K+1) int64, last column = invalid
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    n: int
    n_invalid: int
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    uar: float
    war: float
    accuracy: float
    invalid_rate: float
    ci: Mapping[str, ConfidenceInterval] = field(default_factory=dict)

    @classmethod
    def from_confusion(cls, cm: np.ndarray, labels: Sequence[str]) -> "ClassificationReport":
        cm = np.asarray(cm, dtype=np.int64)
        if cm.shape != (len(labels), len(labels) + 1):
            raise ConfigError(f"confusion matrix shape {cm.shape} does not fit {len(labels)} labels (K, K+1)")
        s = scores_from_confusion(cm)
        return cls(
            labels=tuple(labels),
            confusion=cm,
            precision=s["precision"],
            recall=s["recall"],
            f1=s["f1"],
            support=cm.sum(axis=1),
            n=int(cm.sum()),
            n_invalid=int(cm[:, -1].sum()),
            **{m: float(s[m]) for m in SCALAR_METRICS},
        )

    def with_ci(self, ci: Mapping[str, ConfidenceInterval]) -> "ClassificationReport":
        from dataclasses import replace

        return replace(self, ci=dict(ci))

    def per_class(self) -> dict[str, dict[str, float]]:
        """``{label: {"precision", "recall", "f1", "support"}}`` in label order."""
        return {
            name: {
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "f1": float(self.f1[i]),
                "support": int(self.support[i]),
            }
            for i, name in enumerate(self.labels)
        }

    def scalars(self) -> dict[str, float]:
        return {m: float(getattr(self, m)) for m in SCALAR_METRICS}

    def to_dict(self) -> dict:
        """JSON-serializable form (``from_dict`` inverts it)."""
        return {
            "labels": list(self.labels),
            "n": self.n,
            "n_invalid": self.n_invalid,
            **self.scalars(),
            "per_class": self.per_class(),
            "confusion": self.confusion.tolist(),
            "confusion_columns": list(self.labels) + ["<invalid>"],
            "ci": {k: v.to_dict() for k, v in self.ci.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "ClassificationReport":
        rep = cls.from_confusion(np.asarray(d["confusion"], dtype=np.int64), d["labels"])
        ci = {k: ConfidenceInterval(**v) for k, v in (d.get("ci") or {}).items()}
        return rep.with_ci(ci) if ci else rep


def classification_report(
    y_true: Iterable, y_pred: Iterable, labels: LabelSet | Sequence[str]
) -> ClassificationReport:
    """Every metric of the module docstring for one prediction set."""
    t, p, names = encode(y_true, y_pred, labels)
    return ClassificationReport.from_confusion(_cm_from_codes(t, p, len(names)), names)


def bootstrap_ci(
    y_true: Iterable,
    y_pred: Iterable,
    labels: LabelSet | Sequence[str],
    metrics: Sequence[str] = ("macro_f1", "uar", "war"),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 256,
) -> dict[str, ConfidenceInterval]:
    """Percentile bootstrap intervals for scalar metrics.

    Each of ``n_boot`` resamples draws n videos with replacement (indices from
    ``numpy.random.Generator(PCG64(seed)).integers``); the interval is the
    ``(1-level)/2`` and ``(1+level)/2`` quantiles (numpy's default linear
    interpolation) of the resampled metric. ``estimate`` is the metric on the full
    data. Resamples are evaluated ``chunk`` at a time via stacked confusion matrices.
    """
    t, p, names = encode(y_true, y_pred, labels)
    unknown = [m for m in metrics if m not in SCALAR_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; expected some of {list(SCALAR_METRICS)}")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    n, k = len(t), len(names)
    full = scores_from_confusion(_cm_from_codes(t, p, k))
    if n == 0:
        nan = float("nan")
        return {m: ConfidenceInterval(nan, nan, nan, level, n_boot) for m in metrics}
    rng = np.random.Generator(np.random.PCG64(seed))
    col = np.where(p < 0, k, p)
    code = t * (k + 1) + col
    cells = k * (k + 1)
    values = {m: np.empty(n_boot) for m in metrics}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * cells + code[idx]).ravel()
        cms = np.bincount(flat, minlength=b * cells).reshape(b, k, k + 1)
        s = scores_from_confusion(cms)
        for m in metrics:
            values[m][done : done + b] = s[m]
        done += b
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    return {
        m: ConfidenceInterval(
            estimate=float(full[m]),
            low=float(np.quantile(values[m], lo_q)),
            high=float(np.quantile(values[m], hi_q)),
            level=level,
            n_boot=n_boot,
        )
        for m in metrics
    }


def normalize_confusion(cm: np.ndarray, mode: str = "true") -> np.ndarray:
    """Row- (``"true"``: each true class sums to 1, invalid column included), column-
    (``"pred"``) or total- (``"all"``) normalized float copy; all-zero rows stay zero."""
    cm = np.asarray(cm, dtype=np.float64)
    if mode == "true":
        return _div(cm, cm.sum(axis=1, keepdims=True))
    if mode == "pred":
        return _div(cm, cm.sum(axis=0, keepdims=True))
    if mode == "all":
        return _div(cm, np.asarray(cm.sum()))
    raise ConfigError(f"normalize mode must be 'true', 'pred' or 'all', got {mode!r}")


def as_label_names(values: Iterable, labels: LabelSet | Sequence[str]) -> list[str | None]:
    """Canonical names for raw answers/labels via a LabelSet (synonyms), None if unknown."""
    if isinstance(labels, LabelSet):
        return [labels.canonical(v) if isinstance(v, str) else None for v in values]
    names = set(_names(labels))
    return [v if v in names else None for v in values]


@dataclass(frozen=True)
class Predictions:
    """Per-video predictions of one run: aligned ``ids``, ``y_true``, ``y_pred``.

    ``y_true`` holds canonical class names from ``labels``; ``y_pred`` canonical names or
    None (invalid). ``name`` identifies the run in comparisons and reports.
    """

    ids: tuple[str, ...]
    y_true: tuple[str, ...]
    y_pred: tuple[str | None, ...]
    labels: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.y_true) == len(self.y_pred)):
            raise ConfigError(
                f"predictions {self.name!r}: ids, y_true and y_pred lengths differ "
                f"({len(self.ids)}, {len(self.y_true)}, {len(self.y_pred)})"
            )
        if len(set(self.ids)) != len(self.ids):
            raise ConfigError(f"predictions {self.name!r}: duplicate video ids")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping], labels: LabelSet | Sequence[str], name: str = ""
    ) -> "Predictions":
        """From prediction records with keys ``id``, ``label`` and ``parsed``."""
        recs = list(records)
        return cls(
            ids=tuple(str(r["id"]) for r in recs),
            y_true=tuple(r["label"] for r in recs),
            y_pred=tuple(r.get("parsed") for r in recs),
            labels=_names(labels),
            name=name,
        )

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Class indices of (y_true, y_pred); invalid predictions are -1."""
        t, p, _ = encode(self.y_true, self.y_pred, self.labels)
        return t, p

    def correct(self) -> np.ndarray:
        """Boolean per video: prediction equals the true label (invalid = False)."""
        t, p = self.codes()
        return t == p

    def report(self) -> ClassificationReport:
        return classification_report(self.y_true, self.y_pred, self.labels)

    def subset(self, ids: Iterable[str]) -> "Predictions":
        """The predictions for ``ids``, in that order (KeyError names a missing id)."""
        pos = {i: k for k, i in enumerate(self.ids)}
        order = []
        for i in ids:
            if i not in pos:
                raise KeyError(f"video {i!r} is not in predictions {self.name!r}")
            order.append(pos[i])
        return Predictions(
            ids=tuple(self.ids[k] for k in order),
            y_true=tuple(self.y_true[k] for k in order),
            y_pred=tuple(self.y_pred[k] for k in order),
            labels=self.labels,
            name=self.name,
        )

    def align(self, other: "Predictions") -> tuple["Predictions", "Predictions"]:
        """Both restricted to their common ids (in this run's order).

        ConfigError when the label lists differ or a common video has different true
        labels in the two runs.
        """
        if tuple(self.labels) != tuple(other.labels):
            raise ConfigError(f"runs {self.name!r} and {other.name!r} use different label lists")
        other_ids = set(other.ids)
        common = [i for i in self.ids if i in other_ids]
        a, b = self.subset(common), other.subset(common)
        bad = [i for i, x, y in zip(a.ids, a.y_true, b.y_true) if x != y]
        if bad:
            raise ConfigError(f"runs {self.name!r} and {other.name!r} disagree on true labels of {bad[:5]}")
        return a, b
