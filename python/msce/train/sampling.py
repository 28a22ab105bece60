"""Class-balanced sampling (the paper's "decoupled" balanced fine-tuning, Sec. 4.1).

:class:`ClassBalancedSampler` is a ``torch.utils.data.Sampler`` over dataset positions
that draws EXACTLY ``n_per_class`` positions of every class per epoch:

* ``mode="undersample"``: each class gives a seeded random subset of ``n_per_class``
  of its samples (without replacement). A class with fewer samples is an error.
  ``n_per_class`` defaults to the smallest class.
* ``mode="oversample"``: a class with at least ``n_per_class`` samples is subsampled as
  above; a smaller class with ``m`` samples repeats every sample ``n // m`` times and
  adds a seeded subset of ``n % m`` of them, so repetition counts differ by at most one
  (lower variance than drawing with replacement). ``n_per_class`` defaults to the
  largest class.

By default the per-class selection is drawn once (from ``seed`` alone) and every epoch
visits the same subset in a new order, as in the paper, which fine-tunes on one
balanced subset of about 1,500 MAFW videos. ``resample_each_epoch=True`` draws a new
subset every epoch instead (more of the data is seen over several epochs).

Determinism
-----------
Selections and orders are partial Fisher-Yates shuffles driven by the raw 64-bit
output of ``numpy.random.PCG64(SeedSequence([seed, key]))`` with unbiased rejection
(:func:`msce.eval.splits.seeded_permutation`), where ``key`` is the first 8 bytes of the
SHA-256 of a tag naming the draw (the class, the epoch). The bit stream is fixed by
numpy's documented PCG64 algorithm, not by ``Generator`` methods whose streams may
change, so the same ``(labels, seed, epoch)`` gives the same order on every platform
and numpy version. A class's selection depends only on the seed and its own sample
positions.

Leakage guard
-------------
Pass ``ids`` (one per position) and the train/test ``split``: a sampler built over any
id of the split's test part raises :class:`msce.errors.DatasetError`, as does an id the
split does not know.

The sampler is independent of VLMs: use it with any map-style dataset, e.g. a
vision-only classifier::

    sampler = ClassBalancedSampler(labels, n_per_class=136, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader: ...
"""

from __future__ import annotations

import hashlib
from typing import Any, Hashable, Iterable, Iterator, Mapping, Sequence

from torch.utils.data import Sampler

from msce.errors import ConfigError, DatasetError
from msce.eval.splits import seeded_permutation

__all__ = ["ClassBalancedSampler", "SAMPLER_ALGORITHM", "MODES"]

SAMPLER_ALGORITHM = "msce-class-balanced-v1"
MODES = ("undersample", "oversample")


def _key(*parts: Any) -> int:
    """A 64-bit stream key from a tag: first 8 bytes (big-endian) of SHA-256."""
    text = "\x1f".join([SAMPLER_ALGORITHM, *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _sorted_classes(values: Iterable[Hashable]) -> list:
    uniq = set(values)
    try:
        return sorted(uniq)
    except TypeError:  # mixed types: order by their text
        return sorted(uniq, key=str)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ClassBalancedSampler(Sampler[int]):
    """Exactly ``n_per_class`` positions of every class per epoch, seeded and epoch-aware.

    Args:
        labels: the class of every dataset position (class names or integer ids).
        n_per_class: samples drawn per class and epoch (default: the smallest class
            for ``"undersample"``, the largest for ``"oversample"``).
        mode: ``"undersample"`` or ``"oversample"`` (see the module docstring).
        seed: non-negative integer; the same seed gives the same selection and orders.
        classes: the classes to balance, in report order (default: sorted distinct
            labels). Every class listed must have samples, and every label must be listed.
        ids: one sample id per position (needed with ``split``; recorded otherwise).
        split: a train/test split (anything with ``test`` and optionally ``train`` id
            collections, e.g. :class:`msce.eval.splits.Split`): test ids are refused.
        shuffle: shuffle each epoch's positions (otherwise class by class, each class
            in draw order).
        resample_each_epoch: draw a new per-class subset every epoch.
    """

    def __init__(
        self,
        labels: Sequence[Hashable],
        n_per_class: int | None = None,
        *,
        mode: str = "undersample",
        seed: int = 0,
        classes: Sequence[Hashable] | None = None,
        ids: Sequence[str] | None = None,
        split: Any = None,
        shuffle: bool = True,
        resample_each_epoch: bool = False,
    ):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.n_per_class = n_per_class
        self.classes: list = []
        self.seed = _check_int("seed", seed, 0)
        labels = list(labels)
        if not labels:
            raise DatasetError("cannot balance an empty dataset")
        if ids is not None:
            ids = [str(i) for i in ids]
            if len(ids) != len(labels):
                raise ConfigError(f"ids has {len(ids)} entries but labels has {len(labels)}")
            if len(set(ids)) != len(ids):
                raise DatasetError("ids contain duplicates")
        if split is not None:
            if ids is None:
                raise ConfigError("pass ids (one per position) so the sampler can check them against the split")
            _check_split(ids, split)
        self.classes = list(classes) if classes is not None else _sorted_classes(labels)
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes lists a class twice: {self.classes}")
        known = set(self.classes)
        strange = sorted({str(v) for v in labels if v not in known})
        if strange:
            raise DatasetError(f"labels outside the class list {self.classes}: {strange[:5]}")
        self.positions: dict[Hashable, list[int]] = {c: [] for c in self.classes}
        for pos, lab in enumerate(labels):
            self.positions[lab].append(pos)
        empty = [c for c, p in self.positions.items() if not p]
        if empty:
            raise DatasetError(f"class(es) without any sample cannot be balanced: {empty}")
        counts = [len(p) for p in self.positions.values()]
        if n_per_class is None:
            n_per_class = min(counts) if mode == "undersample" else max(counts)
        self.n_per_class = _check_int("n_per_class", n_per_class, 1)
        if mode == "undersample":
            short = {str(c): len(p) for c, p in self.positions.items() if len(p) < self.n_per_class}
            if short:
                raise DatasetError(
                    f"undersampling to {self.n_per_class} per class, but class(es) have fewer samples: {short}; "
                    f"use a smaller n_per_class or mode='oversample'"
                )
        self.ids = ids
        self.labels = labels
        self.shuffle = bool(shuffle)
        self.resample_each_epoch = bool(resample_each_epoch)
        self.epoch = 0
        self._cache: dict[int, list[int]] = {}

    @classmethod
    def from_samples(cls, samples: Sequence[Any], n_per_class: int | None = None, **options: Any
                     ) -> "ClassBalancedSampler":
        """A sampler over objects with ``id`` and ``label`` (e.g. :class:`msce.eval.datasets.Sample`).

        ``classes`` may be a :class:`msce.labels.LabelSet` (its names, in order).
        """
        classes = options.pop("classes", None)
        if classes is not None and hasattr(classes, "names"):
            present = {s.label for s in samples}
            classes = [c for c in classes.names if c in present]  # a label set may list absent classes
        return cls([s.label for s in samples], n_per_class, ids=[str(s.id) for s in samples],
                   classes=classes, **options)

    # ------------------------------------------------------------------ draws
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields (call before each epoch)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def __len__(self) -> int:
        return self.n_per_class * len(self.classes)

    def selection(self, epoch: int | None = None) -> dict[Hashable, list[int]]:
        """Per class, the positions drawn for ``epoch`` (in draw order; repeats included)."""
        epoch = self.epoch if epoch is None else _check_int("epoch", epoch, 0)
        out: dict[Hashable, list[int]] = {}
        n = self.n_per_class
        for c in self.classes:
            pos = self.positions[c]
            key = _key("select", c, epoch) if self.resample_each_epoch else _key("select", c)
            if n <= len(pos):
                out[c] = seeded_permutation(pos, self.seed, key, n)
            else:  # oversampling: every sample n // m times, plus a subset of n % m
                q, r = divmod(n, len(pos))
                out[c] = pos * q + seeded_permutation(pos, self.seed, key, r)
        return out

    def epoch_order(self, epoch: int | None = None) -> list[int]:
        """The positions of one epoch in the order the sampler yields them."""
        epoch = self.epoch if epoch is None else _check_int("epoch", epoch, 0)
        cached = self._cache.get(epoch)
        if cached is None:
            flat = [p for c in self.classes for p in self.selection(epoch)[c]]
            cached = seeded_permutation(flat, self.seed, _key("order", epoch)) if self.shuffle else flat
            self._cache = {epoch: cached}  # keep one epoch: orders are cheap to redraw
        return list(cached)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_order(self.epoch))

    def stream(self, start: int = 0) -> Iterator[tuple[int, int]]:
        """``(epoch, position)`` pairs of the concatenated epochs, from global sample
        number ``start`` on (epoch ``start // len(self)``). Training resumes with this."""
        start = _check_int("start", start, 0)
        epoch, offset = divmod(start, len(self))
        while True:
            order = self.epoch_order(epoch)
            for p in order[offset:]:
                yield epoch, p
            epoch += 1
            offset = 0

    def used_positions(self, epochs: int = 1) -> list[int]:
        """Sorted distinct positions drawn in epochs ``0..epochs-1``."""
        if not self.resample_each_epoch:
            epochs = 1
        seen: set[int] = set()
        for e in range(epochs):
            for pos in self.selection(e).values():
                seen.update(pos)
        return sorted(seen)

    # ------------------------------------------------------------------ reports
    def histogram(self) -> dict[str, int]:
        """Samples drawn per class and epoch (equal for every class by construction)."""
        return {str(c): self.n_per_class for c in self.classes}

    def available(self) -> dict[str, int]:
        """Samples available per class."""
        return {str(c): len(self.positions[c]) for c in self.classes}

    def describe(self) -> dict:
        """JSON-serializable settings and class histograms (recorded with fine-tuning runs)."""
        avail = self.available()
        return {
            "algorithm": SAMPLER_ALGORITHM,
            "mode": self.mode,
            "n_per_class": self.n_per_class,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "resample_each_epoch": self.resample_each_epoch,
            "classes": [str(c) for c in self.classes],
            "epoch_size": len(self),
            "histogram": self.histogram(),
            "available": avail,
            "oversampled": {c: n for c, n in avail.items() if n < self.n_per_class},
            "distinct_per_epoch": {c: min(n, self.n_per_class) for c, n in avail.items()},
        }

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "settings": self._settings()}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the epoch; ConfigError when the state comes from other settings."""
        settings = state.get("settings")
        if settings is not None and settings != self._settings():
            raise ConfigError("sampler state was saved with other settings (data, mode, n_per_class or seed)")
        self.set_epoch(int(state.get("epoch", 0)))

    def _settings(self) -> dict:
        h = hashlib.sha256()
        for i, lab in enumerate(self.labels):
            h.update(f"{self.ids[i] if self.ids else i}\x1f{lab}\n".encode("utf-8"))
        return {"algorithm": SAMPLER_ALGORITHM, "mode": self.mode, "n_per_class": self.n_per_class,
                "seed": self.seed, "shuffle": self.shuffle, "resample_each_epoch": self.resample_each_epoch,
                "classes": [str(c) for c in self.classes], "data_sha256": h.hexdigest()}

    def __repr__(self) -> str:
        return (f"ClassBalancedSampler(mode={self.mode!r}, n_per_class={self.n_per_class}, "
                f"classes={len(self.classes)}, seed={self.seed})")


def _check_split(ids: Sequence[str], split: Any) -> None:
    test = getattr(split, "test", None)
    if test is None:
        raise ConfigError(f"split must have a 'test' collection of ids, got {type(split).__name__}")
    test = {str(i) for i in test}
    leaked = [i for i in ids if i in test]
    if leaked:
        raise DatasetError(
            f"{len(leaked)} sample(s) to train on belong to the test split (first: {leaked[:5]}); "
            f"training on test clips would leak them into the evaluation"
        )
    train = getattr(split, "train", None)
    if train:
        train = {str(i) for i in train}
        unknown = [i for i in ids if i not in train]
        if unknown:
            raise DatasetError(f"{len(unknown)} sample(s) are not in the split's train part (first: {unknown[:5]})")
