"""The frame-shuffle probe's plan: per-video seeds, the no-identity rule, Kendall distance
(scipy as the reference), and the SplitMix64 Fisher-Yates permutation (a pure-Python
reimplementation of the documented algorithm as the reference)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import msce
from msce import plan as P
from msce._native import C
from msce.io.video import VideoMetadata
from _refs import splitmix_permutation as ref_permutation

scipy_stats = pytest.importorskip("scipy.stats")

MASK = 2**64 - 1


def meta(n=125, fps=25.0, path="clip.mp4"):
    return VideoMetadata.synthetic(n, fps, 36, 64, path=path)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 64])
def test_native_permutation_is_the_documented_algorithm(n):
    for seed in (0, 1, 7, 2**63 + 5, MASK):
        assert list(C.seeded_permutation(n, seed)) == ref_permutation(n, seed)


def test_kendall_distance_matches_scipy():
    rng = np.random.default_rng(1234)
    for n in (2, 3, 4, 7, 20, 101):
        for _ in range(20):
            perm = rng.permutation(n).tolist()
            tau = scipy_stats.kendalltau(np.arange(n), perm).statistic
            assert P.kendall_distance(perm) == pytest.approx((1.0 - tau) / 2.0, abs=1e-12)
    assert P.kendall_distance([0, 1, 2, 3]) == 0.0
    assert P.kendall_distance([3, 2, 1, 0]) == 1.0
    assert P.kendall_distance([0]) == 0.0 and P.kendall_distance([]) == 0.0


def test_video_seed_derivation():
    want = int.from_bytes(hashlib.sha256(b"0:id:00025").digest()[:8], "big")
    assert P.shuffle_seed(0, "id:00025") == want == 15857823220488557661  # same on every platform
    assert P.shuffle_seed(1, "id:00025") != want and P.shuffle_seed(0, "id:00026") != want
    for bad in (-1, 2**64, 1.0, True):
        with pytest.raises(msce.PlanError):
            P.shuffle_seed(bad, "id:x")
    with pytest.raises(msce.PlanError):
        P.shuffle_seed(0, "")


def test_never_the_identity_and_redraw_rule():
    # seed 0 on two frames: the first native draw IS the identity (the old behaviour)
    assert list(C.seeded_permutation(2, 0)) == [0, 1]
    perm, draws = P.shuffle_permutation(2, 0)
    assert list(C.seeded_permutation(2, 1)) == [0, 1]
    assert perm == [1, 0] and draws == 3  # seeds 0 and 0 + 1 draw the identity, 0 + 2 does not
    for n in range(2, 9):
        for seed in range(300):
            perm, draws = P.shuffle_permutation(n, seed)
            assert sorted(perm) == list(range(n)) and perm != list(range(n))
            assert perm == ref_permutation(n, (seed + draws - 1) & MASK)
            assert all(ref_permutation(n, (seed + d) & MASK) == list(range(n)) for d in range(draws - 1))
    assert P.shuffle_permutation(1, 5) == ([0], 0) and P.shuffle_permutation(0, 5) == ([], 0)
    assert P.shuffle_permutation(2, MASK)[0] == [1, 0]  # the seed wraps around 2**64


def test_orders_are_uniform_over_the_non_identity_permutations():
    counts = Counter(tuple(P.shuffle_permutation(3, P.shuffle_seed(9, f"id:{k}"))[0]) for k in range(5000))
    others = [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]
    assert set(counts) == set(others)
    chi2 = sum((counts[p] - 1000) ** 2 / 1000 for p in others)
    assert chi2 < 25.0  # 4 degrees of freedom: p < 1e-4


def test_resolved_plan_records_the_permutation():
    base = P.uniform(5.0).resolve(meta())
    spec = P.shuffled(P.uniform(5.0), seed=3, identity="00025")
    p = spec.resolve(meta())
    rec = p.spec
    assert rec["identity"] == "id:00025" and rec["video_seed"] == P.shuffle_seed(3, "id:00025")
    assert list(p.indices) == [base.indices[k] for k in rec["permutation"]]
    assert rec["kendall_distance"] == P.kendall_distance(rec["permutation"]) > 0
    assert spec.to_dict() == {"kind": "shuffled", "seed": 3, "identity": "00025", "inner": base.spec}
    assert msce.Plan.from_json(p.to_json()) == p
    # another video, same length: another order
    assert P.shuffled(P.uniform(5.0), seed=3, identity="00026").resolve(meta()).indices != p.indices
    # a resolved inner plan is shuffled the same way
    assert P.shuffled(base, seed=3, identity="00025").resolve(meta()).indices == p.indices


def test_content_identity_follows_bytes_not_paths(tmp_path):
    a = tmp_path / "a" / "clip.mp4"
    a.parent.mkdir()
    a.write_bytes(b"not really a video, but bytes to hash" * 1000)
    b = tmp_path / "elsewhere" / "renamed.mp4"
    b.parent.mkdir()
    shutil.copy(a, b)
    want = "sha256:" + hashlib.sha256(a.read_bytes()).hexdigest()
    assert P.media_digest(a) == P.media_digest(b) == want
    pa = P.shuffled(P.uniform(5.0), seed=1).resolve(meta(path=str(a)))
    pb = P.shuffled(P.uniform(5.0), seed=1).resolve(meta(path=str(b)))
    assert pa.indices == pb.indices and pa.spec["identity"] == want
    assert str(tmp_path) not in json.dumps(pa.spec)  # no machine path is recorded
    # a frame folder: lines "<name> <sha256 of the file>" in frame order
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10):
        (folder / f"img_{i}.jpg").write_bytes(bytes([i]) * 50)
    lines = "".join(f"img_{i}.jpg {hashlib.sha256(bytes([i]) * 50).hexdigest()}\n" for i in (1, 2, 10))
    assert P.media_digest(folder) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    with pytest.raises(msce.PlanError, match="identity="):
        P.shuffled(P.uniform(5.0), seed=1).resolve(meta(path=str(tmp_path / "missing.mp4")))
    with pytest.raises(msce.PlanError):
        P.shuffled(P.uniform(5.0), seed=1, identity="")


def test_same_order_in_another_process_and_thread_count():
    code = ("import json, msce; from msce.io.video import VideoMetadata as V; "
            "m = V.synthetic(125, 25.0, 36, 64, path='x.mp4'); "
            "print(json.dumps(msce.plan.shuffled(msce.plan.uniform(5.0), 11, identity='v7').resolve(m).spec"
            "['permutation']))")
    env = {**os.environ, "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1", "MSCE_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = P.shuffled(P.uniform(5.0), 11, identity="v7").resolve(meta()).spec["permutation"]
    assert json.loads(out.stdout) == here
