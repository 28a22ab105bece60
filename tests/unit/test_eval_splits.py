"""Balanced and official splits: sizes, disjointness, determinism, files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from msce.eval import splits
from msce.eval.datasets import Dataset, Fold, Sample
from msce.errors import ConfigError, DatasetError
from msce.labels import DFEW, MAFW, LabelSet


def synthetic(lset: LabelSet, name: str, base: int = 60, step: int = 37) -> Dataset:
    """Imbalanced classes: class k has base + step*k clips (ids 5-digit strings)."""
    samples, n = [], 0
    for k, label in enumerate(lset.names):
        for _ in range(base + step * k):
            n += 1
            samples.append(Sample(id=f"{n:05d}", path=Path(f"/data/{n:05d}.mp4"), label=label))
    return Dataset(name, Path("/data"), lset, samples)


@pytest.mark.parametrize("lset,name,n,total", [(MAFW, "mafw", 45, 495), (DFEW, "dfew", 100, 700)])
def test_paper_sizes(lset, name, n, total):
    ds = synthetic(lset, name, base=n + 5)
    sp = splits.balanced_split(ds, seed=3)  # default n per class comes from the dataset name
    assert sp.n_per_class == n and len(sp.test) == total
    assert not set(sp.test) & set(sp.train)
    assert set(sp.test) | set(sp.train) == {s.id for s in ds.samples}
    counts = {}
    for s in sp.test_samples(ds):
        counts[s.label] = counts.get(s.label, 0) + 1
    assert counts == {lab: n for lab in lset.names}
    assert len(sp.train_samples(ds)) == len(ds) - total


def test_deterministic_and_seed_dependent():
    ds = synthetic(MAFW, "mafw")
    a, b = splits.balanced_split(ds, seed=7), splits.balanced_split(ds, seed=7)
    assert a.test == b.test and a.train == b.train
    assert splits.balanced_split(ds, seed=8).test != a.test


def test_class_draws_are_independent_of_other_classes():
    ds = synthetic(DFEW, "dfew", base=120)
    extra = Dataset("dfew", ds.root, DFEW, ds.samples + [Sample("99999", Path("/data/x.mp4"), "fear")])
    a, b = splits.balanced_split(ds, seed=1), splits.balanced_split(extra, seed=1)
    a_by = {lab: [i for i in a.test if a.labels[i] == lab] for lab in DFEW.names}
    b_by = {lab: [i for i in b.test if b.labels[i] == lab] for lab in DFEW.names}
    for lab in DFEW.names:
        if lab != "fear":
            assert a_by[lab] == b_by[lab]


def reference_permutation(items, seed, key, k):
    """Independent restatement of the documented algorithm (Python ints only)."""
    gen = np.random.PCG64(np.random.SeedSequence([seed, key]))
    a = list(items)
    for i in range(min(k, len(a) - 1)):
        m = len(a) - i
        limit = 2**64 - (2**64 % m)
        while True:
            x = int(gen.random_raw())
            if x < limit:
                break
        j = i + x % m
        a[i], a[j] = a[j], a[i]
    return a[:k]


def test_seeded_permutation_matches_documented_algorithm():
    items = [f"{i:05d}" for i in range(200)]
    for seed in (0, 1, 12345):
        for key in (0, 2**63 + 5):
            assert splits.seeded_permutation(items, seed, key, 45) == reference_permutation(items, seed, key, 45)
    full = splits.seeded_permutation(items, 0, 0)
    assert sorted(full) == items and full != items


def reference_balanced_test(ds: Dataset, n_per_class: int, seed: int) -> list[str]:
    """The documented balanced draw restated without msce.eval.splits: per class in label-set
    order, the sorted ids drawn by reference_permutation with key = first 8 bytes
    (big-endian) of SHA-256 of the class name."""
    out = []
    for name in ds.label_set.names:
        ids = sorted(s.id for s in ds.samples if s.label == name)
        key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
        out += reference_permutation(ids, seed, key, n_per_class)
    return out


def test_seed0_draw_matches_reference_and_regression_pin():
    ds = synthetic(MAFW, "mafw")
    sp = splits.balanced_split(ds, seed=0)
    assert list(sp.test) == reference_balanced_test(ds, 45, 0)  # independent derivation
    # Regression pin, recorded from the reference above: catches a change to the documented
    # algorithm (or numpy's PCG64 / SeedSequence bit streams) that would move both together.
    digest = hashlib.sha256("\n".join(sp.test).encode()).hexdigest()
    assert sp.test[:5] == PIN_FIRST5
    assert digest == PIN_SHA256


PIN_FIRST5 = ("00054", "00048", "00024", "00059", "00010")
PIN_SHA256 = "94478da78f3d5d83707857d7bb3f5d491be06239f0bcace19de0ec6e391f2d64"


def test_too_few_and_bad_parameters():
    ds = synthetic(DFEW, "dfew", base=50, step=0)
    with pytest.raises(DatasetError, match="fewer than n_per_class=100"):
        splits.balanced_split(ds)
    with pytest.raises(ConfigError):
        splits.balanced_split(ds, n_per_class=0)
    with pytest.raises(ConfigError):
        splits.balanced_split(ds, n_per_class=10, seed=-1)
    generic = Dataset("generic", ds.root, DFEW, ds.samples)
    with pytest.raises(ConfigError, match="n_per_class is required"):
        splits.balanced_split(generic)
    assert len(splits.balanced_split(generic, n_per_class=10).test) == 70


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_load_roundtrip(tmp_path, suffix):
    ds = synthetic(MAFW, "mafw")
    sp = splits.balanced_split(ds, seed=5)
    path = sp.save(tmp_path / f"split{suffix}")
    back = splits.Split.load(path)
    assert back.test == sp.test and back.train == sp.train
    assert [s.id for s in back.test_samples(ds)] == list(sp.test)
    if suffix == ".json":
        assert (back.kind, back.seed, back.n_per_class, back.algorithm) == ("balanced", 5, 45, splits.ALGORITHM)


def test_applying_to_other_annotations_fails(tmp_path):
    ds = synthetic(DFEW, "dfew", base=120)
    sp = splits.balanced_split(ds, seed=0)
    relabelled = [Sample(s.id, s.path, "sad" if s.label == "happy" else s.label) for s in ds.samples]
    with pytest.raises(DatasetError, match="disagrees"):
        sp.test_samples(Dataset("dfew", ds.root, DFEW, relabelled))
    with pytest.raises(DatasetError, match="not in the dfew dataset"):
        sp.test_samples(Dataset("dfew", ds.root, DFEW, ds.samples[:10]))
    with pytest.raises(DatasetError, match="not found"):
        splits.Split.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DatasetError, match="not an msce split"):
        splits.Split.load(tmp_path / "bad.json")


def test_official_fold():
    ds = synthetic(DFEW, "dfew")
    ids = [s.id for s in ds.samples]
    ds.folds[2] = Fold(2, tuple(ids[100:]), tuple(ids[:100]))
    sp = splits.official_split(ds, 2)
    assert sp.name == "official-fold2" and sp.test == tuple(ids[:100]) and len(sp.train) == len(ids) - 100
    with pytest.raises(DatasetError, match="no official fold 4"):
        splits.official_split(ds, 4)


def test_overlap_is_rejected():
    with pytest.raises(DatasetError, match="both train and test"):
        splits.Split("file", "x", train=("a", "b"), test=("b",))
