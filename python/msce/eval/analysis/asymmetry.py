"""Head/tail classes and asymmetric confusion (Sec. 3.3, Fig. 3, Fig. S3).

For each pair of classes the flow i->j (true i predicted j) against j->i; totals
head->tail against tail->head with an exact binomial (sign) test. Head classes come
from the training split's class counts when known (the most frequent classes holding at
least half of the training clips), else the paper's MAFW head set (Sec. 3.3), else the
user (:func:`resolve_head_tail`). :func:`training_class_counts` also feeds the training
distribution probe (Fig. S3, with :func:`msce.eval.analysis.frequency_correlation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from msce.errors import ConfigError, DatasetError
from msce.labels import LabelSet, get_label_set
from msce.eval.analysis._common import label_names as _label_names

__all__ = [
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
]


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
