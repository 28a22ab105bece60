"""Train/test splits: the paper's class-balanced test split and the official folds.

Balanced split (Sec. 3.1 of the paper): ``N`` test clips are drawn per class (MAFW 45 ->
495 clips, DFEW 100 -> 700 clips); every other clip is train. With equal class
support, UAR and WAR coincide on the test split.

Determinism
-----------
The draw must be identical on every platform and numpy version, so it does not use
``numpy.random.Generator`` methods (whose streams numpy may change) nor Python's
``hash()``. For each class the ids are sorted, a stream is seeded with
``numpy.random.SeedSequence([seed, k])`` where ``k`` is the first 8 bytes of the
SHA-256 of the class name (big-endian), the raw 64-bit outputs of ``PCG64`` (a fixed,
documented bit stream) drive a partial Fisher-Yates shuffle, and bounded integers are
drawn by rejection (``x < 2**64 - 2**64 % m``, then ``x % m``) so they are unbiased.
Each class's draw therefore depends only on the seed, its name and its own ids.

Files
-----
:meth:`Split.save` writes JSON (canonical, with all metadata) or, for a ``.csv`` path,
rows ``id,label,part``. :meth:`Split.load` reads either.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from msce.eval.datasets import DEFAULT_N_PER_CLASS, Dataset, Sample
from msce.errors import ConfigError, DatasetError

__all__ = ["Split", "balanced_split", "official_split", "seeded_permutation", "ALGORITHM"]

ALGORITHM = "msce-balanced-v1"
_TWO64 = 1 << 64


@dataclass(frozen=True)
class Split:
    """A train/test partition of a dataset, as sample ids.

    ``labels`` maps every id in ``train`` and ``test`` to its class name at the time
    the split was made; applying the split to a dataset checks them, so a split file
    made for other annotations fails loudly instead of silently mixing classes.
    """

    kind: str  # "balanced" | "official" | "file"
    dataset: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    seed: int | None = None
    n_per_class: int | None = None
    fold: int | None = None
    algorithm: str | None = None

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise DatasetError(f"split has {len(overlap)} id(s) in both train and test (first: {sorted(overlap)[:5]})")
        if len(set(self.test)) != len(self.test) or len(set(self.train)) != len(self.train):
            raise DatasetError("split lists an id twice")

    @property
    def name(self) -> str:
        if self.kind == "balanced":
            return f"balanced-n{self.n_per_class}-seed{self.seed}"
        if self.kind == "official":
            return f"official-fold{self.fold}"
        return self.kind

    # ------------------------------------------------------------------ applying
    def _samples(self, dataset: Dataset, ids: tuple[str, ...]) -> list[Sample]:
        samples = dataset.select(ids)
        if self.labels:
            bad = [
                (s.id, self.labels[s.id], s.label)
                for s in samples
                if s.id in self.labels and self.labels[s.id] != s.label
            ]
            if bad:
                raise DatasetError(
                    f"split {self.name} disagrees with the {dataset.name} annotations at {dataset.root} "
                    f"on {len(bad)} clip(s) (id, split label, dataset label; first: {bad[:3]})"
                )
        return samples

    def test_samples(self, dataset: Dataset) -> list[Sample]:
        """Test samples in split order (DatasetError on unknown ids or label mismatch)."""
        return self._samples(dataset, self.test)

    def train_samples(self, dataset: Dataset) -> list[Sample]:
        return self._samples(dataset, self.train)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {
            "format": "msce-split",
            "version": 1,
            "kind": self.kind,
            "name": self.name,
            "dataset": self.dataset,
            "seed": self.seed,
            "n_per_class": self.n_per_class,
            "fold": self.fold,
            "algorithm": self.algorithm,
            "num_train": len(self.train),
            "num_test": len(self.test),
            "test": [[i, self.labels.get(i)] for i in self.test],
            "train": [[i, self.labels.get(i)] for i in self.train],
        }

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "Split":
        try:
            if d.get("format") != "msce-split":
                raise KeyError("format")
            test = [(str(i), lab) for i, lab in d["test"]]
            train = [(str(i), lab) for i, lab in d["train"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{source} is not an msce split file ({exc})") from None
        labels = {i: lab for i, lab in test + train if lab is not None}
        return cls(
            kind=d.get("kind", "file"),
            dataset=d.get("dataset", "unknown"),
            train=tuple(i for i, _ in train),
            test=tuple(i for i, _ in test),
            labels=labels,
            seed=d.get("seed"),
            n_per_class=d.get("n_per_class"),
            fold=d.get("fold"),
            algorithm=d.get("algorithm"),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON, or CSV (``id,label,part``) when the path ends in ``.csv``; atomic."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                w = csv.writer(f)
                w.writerow(["id", "label", "part"])
                for part, ids in (("test", self.test), ("train", self.train)):
                    for i in ids:
                        w.writerow([i, self.labels.get(i, ""), part])
            else:
                json.dump(self.to_dict(), f, indent=1)
                f.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"split file not found: {path}")
        if path.suffix.lower() == ".csv":
            test, train, labels = [], [], {}
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or not {"id", "part"} <= set(reader.fieldnames):
                    raise DatasetError(f"{path}: expected columns id,label,part")
                for n, row in enumerate(reader, start=2):
                    part = (row.get("part") or "").strip().lower()
                    if part not in ("train", "test"):
                        raise DatasetError(f"{path}:{n}: part must be train or test, got {part!r}")
                    (test if part == "test" else train).append(row["id"].strip())
                    if row.get("label"):
                        labels[row["id"].strip()] = row["label"].strip()
            return cls("file", "unknown", tuple(train), tuple(test), labels)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read split file {path}: {exc}") from None
        return cls.from_dict(d, source=str(path))


# ---------------------------------------------------------------------- sampling


def _class_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def _bounded(bitgen: np.random.PCG64, m: int) -> int:
    """Uniform integer in [0, m) from raw 64-bit outputs, by rejection."""
    limit = _TWO64 - (_TWO64 % m)
    while True:
        x = int(bitgen.random_raw())
        if x < limit:
            return x % m


def seeded_permutation(items: list, seed: int, key: int = 0, k: int | None = None) -> list:
    """The first ``k`` items (all when None) of a seeded random permutation.

    Partial Fisher-Yates: for ``i`` in ``0..k-1`` swap position ``i`` with
    ``i + U[0, n-i)``, ``U`` drawn from ``PCG64(SeedSequence([seed, key]))`` raw output.
    Identical on every platform and numpy version.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    a = list(items)
    n = len(a)
    k = n if k is None else k
    bitgen = np.random.PCG64(np.random.SeedSequence([int(seed), int(key)]))
    for i in range(min(k, max(n - 1, 0))):
        j = i + _bounded(bitgen, n - i)
        a[i], a[j] = a[j], a[i]
    return a[:k]


def balanced_split(dataset: Dataset, n_per_class: int | None = None, seed: int = 0) -> Split:
    """The paper's balanced test split: ``n_per_class`` clips of every class; the rest train.

    ``n_per_class`` defaults to 45 for MAFW and 100 for DFEW (required otherwise).
    Test ids are listed class by class in label-set order, each class in draw order;
    train ids sorted. DatasetError when a class has fewer than ``n_per_class`` clips.
    """
    if n_per_class is None:
        n_per_class = DEFAULT_N_PER_CLASS.get(dataset.name)
        if n_per_class is None:
            raise ConfigError(f"n_per_class is required for the {dataset.name} dataset")
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    by_class: dict[str, list[str]] = {name: [] for name in dataset.label_set.names}
    for s in dataset.samples:
        by_class[s.label].append(s.id)
    short = {c: len(ids) for c, ids in by_class.items() if len(ids) < n_per_class}
    if short:
        raise DatasetError(
            f"{dataset.name} at {dataset.root}: class(es) with fewer than n_per_class={n_per_class} clips: {short}"
        )
    test: list[str] = []
    for name, ids in by_class.items():
        test.extend(seeded_permutation(sorted(ids), seed, _class_key(name), n_per_class))
    chosen = set(test)
    train = tuple(sorted(s.id for s in dataset.samples if s.id not in chosen))
    labels = {s.id: s.label for s in dataset.samples}
    return Split(
        kind="balanced",
        dataset=dataset.name,
        train=train,
        test=tuple(test),
        labels=labels,
        seed=int(seed),
        n_per_class=int(n_per_class),
        algorithm=ALGORITHM,
    )


def official_split(dataset: Dataset, fold: int) -> Split:
    """An official fold (DFEW, MAFW: 1..5). Clips skipped for missing media are dropped."""
    if fold not in dataset.folds:
        raise DatasetError(
            f"{dataset.name} at {dataset.root} has no official fold {fold}; "
            f"available: {sorted(dataset.folds) or 'none'}"
        )
    f = dataset.folds[fold]
    train = tuple(i for i in f.train if i in dataset)
    test = tuple(i for i in f.test if i in dataset)
    labels = {s.id: s.label for s in dataset.samples}
    return Split(kind="official", dataset=dataset.name, train=train, test=test, labels=labels, fold=fold)
