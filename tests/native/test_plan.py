"""Frame plans: counts, roles, order, seeds, JSON, errors (index math in csrc/select)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import msce
from msce import plan as P
from msce._native import C
from msce.io.video import VideoMetadata
from _refs import splitmix_permutation as _python_permutation


def meta(n=125, fps=25.0, ts=None):
    m = VideoMetadata.synthetic(n, fps, 360, 640, path="clip.mp4")
    if ts is not None:
        m = dataclasses.replace(m, timestamps=tuple(ts), num_frames=len(ts), duration=ts[-1] + (ts[-1] - ts[-2]))
    return m


def test_uniform_is_nearest_frame_to_k_over_fps():
    p = P.uniform(1.0).resolve(meta())
    assert p.indices == (0, 25, 50, 75, 100)
    assert p.timestamps == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert set(p.roles) == {"frame"}
    p5 = P.uniform(5.0).resolve(meta())
    assert len(p5) == 25 and p5.indices[:3] == (0, 5, 10)


def test_uniform_short_clip_still_gets_a_keyframe():
    p = P.uniform(1.0).resolve(meta(n=12))  # 0.48 s
    assert p.indices == (0,)
    kg = P.keyframes_with_gaps(1.0, 4).resolve(meta(n=12))
    assert kg.indices == (0,) and kg.roles == ("keyframe",) and kg.num_gaps == 0


def test_uniform_never_past_the_end_at_high_fps():
    m = meta(n=75, fps=25.0)  # the 75-frame clip that trips HF/torchcodec at 5 FPS
    for fps in (1, 5, 10, 15, 20, 25, 30, 60):
        p = P.uniform(float(fps)).resolve(m)
        assert max(p.indices) <= 74
        assert list(p.indices) == sorted(p.indices)


def test_uniform_on_vfr_uses_timestamps():
    ts = [0.0, 0.1, 0.2, 0.9, 1.05, 1.5, 2.2, 2.3]
    p = P.uniform(1.0).resolve(meta(ts=ts))
    assert p.indices == (0, 4, 6)  # nearest to 0, 1, 2 s


def test_dense_and_count():
    m = meta(n=48)
    assert P.dense().resolve(m).indices == tuple(range(48))
    c = P.count(8).resolve(m)
    assert len(c) == 8 and len(set(c.indices)) == 8
    assert c.indices == tuple(int(C.nearest_frame(list(m.timestamps), (k + 0.5) * m.duration / 8)) for k in range(8))


def test_keyframes_with_gaps_structure():
    p = P.keyframes_with_gaps(1.0, 4).resolve(meta(n=125))
    keys = p.keyframes()
    assert keys.indices == (0, 25, 50, 75, 100)
    assert p.num_gaps == 4
    for j in range(4):
        g = p.gap(j)
        assert len(g) == 4
        a, b = keys.indices[j], keys.indices[j + 1]
        assert all(a < i < b for i in g.indices)
        assert list(g.indices) == sorted(set(g.indices))
        assert g.indices == (a + 5, a + 10, a + 15, a + 20)  # uniform inside the gap
    # chronological: k0 g0 k1 g1 ...
    assert list(p.indices) == sorted(p.indices)
    segs = p.segments()
    assert [(s.roles[0], s.groups[0]) for s in segs] == [
        ("keyframe", 0), ("gap", 0), ("keyframe", 1), ("gap", 1), ("keyframe", 2), ("gap", 2), ("keyframe", 3),
        ("gap", 3), ("keyframe", 4)]


def test_gap_with_fewer_frames_than_requested_uses_all():
    p = P.keyframes_with_gaps(1.0, 4).resolve(meta(n=9, fps=3.0))  # 3 fps: 2 frames per gap
    assert p.gap(0).indices == (1, 2)


def test_shuffled_is_a_seeded_permutation():
    base = P.uniform(5.0).resolve(meta())
    s1 = P.shuffled(P.uniform(5.0), seed=3, identity="a").resolve(meta())
    s2 = P.shuffled(P.uniform(5.0), seed=3, identity="a").resolve(meta())
    s3 = P.shuffled(P.uniform(5.0), seed=4, identity="a").resolve(meta())
    assert s1.indices == s2.indices
    assert s1.indices != s3.indices
    assert sorted(s1.indices) == sorted(base.indices) and s1.indices != base.indices
    # roles/groups/timestamps travel with their frame
    kg = P.shuffled(P.keyframes_with_gaps(1.0, 4), seed=1, identity="a").resolve(meta())
    for i, t, r in zip(kg.indices, kg.timestamps, kg.roles):
        assert t == i / 25.0
        assert (r == "keyframe") == (i % 25 == 0)


def test_permutation_is_platform_independent_golden():
    # SplitMix64 + Fisher-Yates with rejection: these values are the contract. The reference
    # is _python_permutation below (the algorithm restated in Python ints), not C itself.
    for n, seed in [(10, 0), (10, 12345), (1, 7), (2, 3), (97, 2**63 + 11)]:
        assert C.seeded_permutation(n, seed) == _python_permutation(n, seed), (n, seed)
    golden = C.seeded_permutation(10, 12345)
    assert sorted(golden) == list(range(10))
    assert golden == REGRESSION_PIN_10_12345


# Regression pin: the reference's output for (10, 12345), written down so that a change to
# the reference itself cannot go unnoticed either.
REGRESSION_PIN_10_12345 = [8, 6, 7, 2, 1, 3, 9, 5, 0, 4]


def test_multi_fps():
    plans = P.multi_fps([1, 5, 10, 15, 20, 25]).resolve(meta())
    assert [len(plans[f]) for f in (1, 5, 10, 15, 20, 25)] == [5, 25, 50, 75, 100, 125]


def test_token_budget_fits():
    target = msce.QwenVL("2.5")
    m = meta(n=250)  # 10 s 640x360
    p = P.token_budget(1024, target, fps=2.0).resolve(m)
    h, w = p.size
    assert target.num_tokens(len(p), h, w) <= 1024
    assert len(p) == 20  # resolution shrinks before frames are dropped
    tiny = P.token_budget(8, target, fps=2.0).resolve(m)
    assert target.num_tokens(len(tiny), *tiny.size) <= 8
    with pytest.raises(msce.PlanError):
        P.token_budget(0, target)


def test_json_round_trip():
    p = P.shuffled(P.keyframes_with_gaps(1.0, 4), seed=9, identity="a").resolve(meta())
    q = msce.Plan.from_json(p.to_json())
    assert q == p
    with pytest.raises(msce.PlanError):
        msce.Plan.from_json("{not json")
    with pytest.raises(msce.PlanError):
        msce.Plan.from_json('{"indices": [1]}')


@pytest.mark.parametrize("make", [lambda: P.uniform(0), lambda: P.uniform(-1), lambda: P.uniform(float("nan")),
                                  lambda: P.count(0), lambda: P.keyframes_with_gaps(1, -1),
                                  lambda: P.shuffled(P.dense(), seed=-1), lambda: P.multi_fps([])])
def test_bad_parameters_raise_plan_error(make):
    with pytest.raises(msce.PlanError):
        make()


def test_plan_past_clip_end_raises():
    with pytest.raises(msce.PlanError, match="past the clip end"):
        P.at_indices([0, 200]).resolve(meta())
    with pytest.raises(msce.PlanError, match="outside the clip"):
        P.at_times([0.0, 99.0]).resolve(meta())
    other = P.uniform(1).resolve(meta(n=50))
    with pytest.raises(msce.PlanError):
        P.resolve(other, meta(n=125))


def test_smart_resize_matches_hf():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(14, 3000, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        lo = 128 * 28 * 28
        hi = int(rng.integers(lo, 28 * 28 * 2000))
        assert msce.smart_resize(h, w, 28, lo, hi) == hf(h, w, 28, lo, hi)
    assert msce.smart_resize(42, 42, 28, 1, 10**7) == hf(42, 42, 28, 1, 10**7)  # round half to even


# ---- at_times: nearest vs displayed ---------------------------------------------------------
NTSC = 30000 / 1001  # 29.97 fps: frame i at i * 1001 / 30000 s


def test_at_times_displayed_vs_nearest_hand_computed():
    m = meta(n=300, fps=NTSC)  # frame 180 at 6.006 s, frame 181 at 6.0393667 s, duration 10.01 s
    assert P.at_times([6.039]).resolve(m).indices == (181,)  # nearest (the default)
    assert P.at_times([6.039], mode="nearest").resolve(m).indices == (181,)
    shown = P.at_times([6.039, 0.0, 0.03, 6.006, 6.006 - 5e-7, 6.006 - 2e-6, 10.0, 10.0099], mode="displayed")
    # frame 0 until 0.0333 s; 6.006 is frame 180's own timestamp; 0.5 us early is within the
    # 1 us tolerance, 2 us early is still frame 179; frame 299 (9.9766 s) stays until 10.01 s
    assert shown.resolve(m).indices == (180, 0, 0, 180, 180, 179, 299, 299)
    assert P.at_times([0.03]).resolve(m).indices == (1,)


def test_at_times_displayed_out_of_range_and_bad_mode():
    m = meta(n=300, fps=NTSC)
    for t in (-0.001, 10.01, 11.0, float("nan")):
        with pytest.raises(msce.PlanError, match="outside the clip"):
            P.at_times([t], mode="displayed").resolve(m)
    late = meta(ts=[0.5, 0.6, 0.7, 0.8])  # metadata whose first frame is not at 0
    assert P.at_times([0.2]).resolve(late).indices == (0,)
    with pytest.raises(msce.PlanError, match="before the first frame"):
        P.at_times([0.2], mode="displayed").resolve(late)
    assert P.at_times([0.65], mode="displayed").resolve(late).indices == (1,)
    for bad in ("closest", "", None, 1):
        with pytest.raises(msce.PlanError, match="mode"):
            P.at_times([1.0], mode=bad)


def test_at_times_mode_json_round_trip():
    import json

    spec = P.at_times([6.039, 1.0], mode="displayed")
    d = spec.to_dict()
    assert d == {"kind": "at_times", "times": [6.039, 1.0], "mode": "displayed"}
    rebuilt = P.at_times(**{k: v for k, v in json.loads(json.dumps(d)).items() if k != "kind"})
    assert rebuilt == spec and rebuilt != P.at_times([6.039, 1.0])
    p = spec.resolve(meta(n=300, fps=NTSC))
    q = msce.Plan.from_json(p.to_json())
    assert q == p and q.spec["mode"] == "displayed" and q.indices == (180, 29)
    assert P.at_times([1.0]).to_dict()["mode"] == "nearest"


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    import shutil
    import subprocess

    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("needs the ffmpeg command")
    path = tmp_path_factory.mktemp("ntsc") / "ntsc.mp4"
    subprocess.run([exe, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30000/1001",
                    "-t", "7", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2",
                    "-pix_fmt", "yuv420p", "-threads", "1", str(path)], check=True)
    return path


def test_at_times_displayed_matches_pyav_frame_times(ntsc_clip):
    av = pytest.importorskip("av")
    with av.open(str(ntsc_clip)) as c:
        frames = sorted(c.decode(video=0), key=lambda f: f.pts)
        ref_rgb = [f.to_ndarray(format="rgb24") for f in frames]
        start = frames[0].time
        rel = np.array([f.time - start for f in frames])  # PyAV: pts * time_base, from the first frame
    m = msce.VideoReader(ntsc_clip).metadata
    assert m.num_frames == len(frames) and abs(m.average_fps - NTSC) < 1e-3

    def on_screen(t):  # the reference: last frame PyAV presents at or before t
        return int(np.searchsorted(rel, t, side="right")) - 1

    rng = np.random.default_rng(7)
    times = [6.039] + [float(t) for t in rng.uniform(0.0, m.duration, 200)] + [rel[-1] + 0.02]
    got = P.at_times(times, mode="displayed").resolve(m).indices
    assert got[0] == 180
    assert list(got) == [on_screen(t) for t in times]
    # at each frame's own PyAV timestamp, that frame is on screen (float rounding absorbed)
    assert P.at_times(list(rel), mode="displayed").resolve(m).indices == tuple(range(len(frames)))
    # and the nearest default still differs on the 29.97 fps example
    assert P.at_times([6.039]).resolve(m).indices == (181,)

    batch = msce.load(ntsc_clip, P.at_times([6.039], mode="displayed"), msce.Frames(layout="NHWC"))
    img = batch.data.numpy()[0].astype(np.int16)
    shown, next_one = (np.abs(img - ref_rgb[i].astype(np.int16)).mean() for i in (180, 181))
    assert shown < 2.0 and shown < next_one
