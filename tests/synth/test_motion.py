"""Motion energy (csrc/motion), micro-expression spotting, and the motion-aware plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import msce
from msce import motion
from msce._native import C
from msce.errors import ConfigError, PlanError, TransformError
from msce.synth import ClipRecord, ClipSpec, interval_iou, render
from msce.io.video import VideoMetadata

from _deps import MISSING

needs_ffmpeg = pytest.mark.skipif(not C.has_ffmpeg, reason=MISSING + "an msce build with FFmpeg")


def texture(seed: int = 0, size: int = 96) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    f = gaussian_filter(rng.standard_normal((size + 40, size + 40)), 2.0)
    f = (f - f.min()) / (f.max() - f.min())
    return f * 200 + 28


def crop(img: np.ndarray, dx: float = 0.0, dy: float = 0.0, size: int = 96) -> np.ndarray:
    from scipy.ndimage import shift

    return np.clip(np.rint(shift(img, (dy, dx), order=3, mode="nearest")[20:20 + size, 20:20 + size]), 0, 255).astype(np.uint8)


def test_head_motion_and_lighting_are_not_facial_motion():
    img = texture()
    frames = np.stack([crop(img, 0.4 * t, -0.25 * t) for t in range(6)])
    frames[5] = np.clip(frames[4].astype(float) * 1.25 + 12, 0, 255).astype(np.uint8)  # lighting only
    r = motion.motion_energy(frames)
    assert r["energy"][0] == 0.0
    assert np.all(r["energy"][1:] < 0.05), r["energy"]
    np.testing.assert_allclose(r["global_dx"][1:5], 0.4, atol=0.08)
    np.testing.assert_allclose(r["global_dy"][1:5], -0.25, atol=0.08)
    assert abs(r["global_dx"][5]) < 0.05 and r["difference"][5] < r["difference"][1]


def test_local_motion_is_facial_motion():
    img = texture(1)
    base = crop(img)
    # a 20x20 region moves 1 px to the right while the rest stands still
    moved = base.copy()
    moved[40:60, 41:61] = base[40:60, 40:60]
    frames = np.stack([base, base, moved, moved])
    e = motion.motion_energy(frames)["energy"]
    assert e[1] < 0.02 and e[3] < 0.02
    assert e[2] > 0.3
    rgb = np.repeat(frames[..., None], 3, axis=3)
    np.testing.assert_allclose(motion.motion_energy(rgb)["energy"], e, atol=0.02)


def test_motion_energy_checks_its_input():
    with pytest.raises(TransformError):
        motion.motion_energy(np.zeros((3, 96, 96), dtype=np.float32))
    with pytest.raises(TransformError):
        motion.motion_energy(np.zeros((3, 4, 4), dtype=np.uint8))
    with pytest.raises(TransformError):
        motion.motion_energy(np.zeros((3, 32, 32, 2), dtype=np.uint8))
    with pytest.raises(TransformError):
        motion.motion_energy(np.zeros((3, 32, 32), dtype=np.uint8), top_fraction=0.0)
    assert motion.motion_energy(np.zeros((1, 32, 32), dtype=np.uint8))["energy"].tolist() == [0.0]


def bump_curve(n: int = 100, start: int = 40, seed: int = 0) -> np.ndarray:
    """A noisy baseline with the two humps of a movement (frames start..start+9) and its return."""
    rng = np.random.default_rng(seed)
    e = 0.05 + 0.004 * rng.standard_normal(n)
    e[start + 1:start + 5] += [0.2, 0.5, 0.5, 0.2]
    e[start + 6:start + 10] += [0.15, 0.35, 0.35, 0.15]
    e[0] = 0.0
    return e.astype(np.float32)


def test_spot_a_hand_made_event():
    e = bump_curve()
    spots = motion.spot(e, fps=25.0)
    assert len(spots) == 1
    s = spots[0]
    assert s.onset == 40 and s.offset == 49
    assert 43 <= s.apex <= 46 and s.score > 6
    assert s.onset_s == pytest.approx(1.6) and s.offset_s == pytest.approx(1.96)
    a = motion.energy_analysis(e, fps=25.0)
    assert a["high"] == pytest.approx(6 * a["noise"]) and a["low"] == pytest.approx(2.5 * a["noise"])
    quiet = bump_curve()
    quiet[41:51] = quiet[20:30]
    assert motion.spot(quiet, fps=25.0) == []


def test_spot_options_are_checked_and_used():
    e = bump_curve()
    assert motion.spot(e, fps=25.0, options={"max_s": 0.2}) == []  # too long for that bound
    assert len(motion.spot(e, fps=25.0, options=motion.SpotOptions(k_high=8.0))) == 1
    with pytest.raises(ConfigError):
        motion.SpotOptions(k_low=7.0, k_high=6.0)
    with pytest.raises(ConfigError):
        motion.spot(e, fps=25.0, options={"nope": 1})
    with pytest.raises(ConfigError):
        motion.spot(e)  # an array needs its fps


EVENTS = [("astronaut", "smile"), ("lfw:3", "brow_lower"), ("astronaut", "brow_raise"),
          ("lfw:8", "lip_corner_depress"), ("astronaut", "upper_lip_raise")]


@pytest.mark.parametrize("face,action", EVENTS)
def test_spotting_finds_generated_events(face, action):
    spec = ClipSpec(seed=21, face=face, action=action, onset=0.9, apex=1.03, offset=1.25, amplitude=0.8,
                    baseline_action="smile" if action != "smile" else "brow_raise", baseline_amplitude=0.2,
                    seconds=2.2, width=192, height=192)
    clip = render(spec)
    rec = ClipRecord.from_clip("mem", clip)
    curve = motion.analyze(clip.frames, fps=spec.fps, crop=rec.crop())
    assert len(curve) == spec.num_frames and curve.size == (96, 96)
    spots = motion.spot(curve)
    assert len(spots) == 1, spots
    s = spots[0]
    assert interval_iou((s.onset_s, s.offset_s), (spec.onset, spec.offset)) >= 0.5
    assert abs(s.apex_s - spec.apex) <= 0.1


@needs_ffmpeg
def test_motion_pass_on_a_decoded_clip(tmp_path):
    from msce.synth import generate_clip

    spec = ClipSpec(seed=3, action="smile", onset=1.3, apex=1.42, offset=1.7, seconds=2.4, width=192, height=192)
    rec = generate_clip(tmp_path / "s.mp4", spec)
    curve = motion.analyze(tmp_path / "s.mp4", crop=rec.crop())
    assert len(curve) == spec.num_frames and curve.fps == pytest.approx(25.0)
    assert curve.decode_s > 0 and curve.motion_s > 0
    spots = motion.spot(curve)
    assert len(spots) == 1
    assert interval_iou((spots[0].onset_s, spots[0].offset_s), (spec.onset, spec.offset)) >= 0.5


# ---- the motion-aware plan ------------------------------------------------------------------

def meta(n: int = 126, fps: float = 25.0) -> VideoMetadata:
    return VideoMetadata.synthetic(n, fps, 96, 96, path="<no file>")


@pytest.mark.parametrize("m", [1, 2, 4])
def test_motion_aware_gaps_same_budget_and_keyframes_as_msce(m):
    md = meta()
    e = bump_curve(126, start=60)
    uni = msce.plan.keyframes_with_gaps(1.0, m).resolve(md)
    mot = msce.motion.motion_aware_gaps(1.0, m).resolve(md, motion=e)
    assert len(mot) == len(uni)
    assert mot.keyframes().indices == uni.keyframes().indices
    assert mot.roles == uni.roles and mot.groups == uni.groups
    for seg in mot.segments():
        if seg.roles[0] == "gap":
            j = seg.groups[0]
            lo, hi = uni.keyframes().indices[j], uni.keyframes().indices[j + 1]
            assert all(lo < i < hi for i in seg.indices) and list(seg.indices) == sorted(set(seg.indices))
    # the event (frames 60..69) lies in gap 2 (frames 50..75): a gap frame lands on it
    assert any(60 < i <= 69 for i in mot.gap(2).indices)
    # the other gaps have no motion: exactly MSCE's uniform frames there
    for j in (0, 1, 3, 4):
        assert mot.gap(j).indices == uni.gap(j).indices


def test_motion_aware_gaps_puts_the_apex_first():
    md = meta()
    e = bump_curve(126, start=60)
    (spot,) = motion.spot(e, fps=25.0)
    p = msce.motion.motion_aware_gaps(1.0, 1).resolve(md, motion=e)
    assert p.gap(2).indices == (spot.apex,)
    q = msce.motion.motion_aware_gaps(1.0, 3).resolve(md, motion=e)
    g = q.gap(2).indices
    assert spot.apex in g and all(abs(a - b) >= 2 for a, b in zip(g, g[1:]))


def test_motion_aware_gaps_spec_contract():
    md = meta()
    spec = msce.motion.motion_aware_gaps(1.0, 4, size=64, options={"k_high": 5.0})
    assert spec.to_dict()["kind"] == "motion_aware_gaps" and spec.to_dict()["options"]["k_high"] == 5.0
    assert spec == msce.motion.motion_aware_gaps(1.0, 4, size=64, options=motion.SpotOptions(k_high=5.0))
    plan = spec.resolve(md, motion=np.zeros(126, dtype=np.float32))
    assert msce.Plan.from_json(plan.to_json()) == plan
    json.dumps(plan.spec)
    with pytest.raises(PlanError):
        spec.resolve(md, motion=np.zeros(125, dtype=np.float32))
    with pytest.raises(PlanError):
        spec.resolve(md)  # no file to analyse and no curve given
    with pytest.raises(PlanError):
        msce.motion.motion_aware_gaps(0.0, 4)
    with pytest.raises(PlanError):
        msce.motion.motion_aware_gaps(1.0, -1)
    bound = msce.motion.motion_aware_gaps(1.0, 2, motion=bump_curve(126, start=60))
    assert msce.plan.resolve(bound, md) == bound.resolve(md)


@needs_ffmpeg
def test_motion_aware_gaps_with_load_segments(tmp_path):
    from msce.synth import generate_clip

    spec = ClipSpec(seed=4, action="brow_raise", onset=1.3, apex=1.42, offset=1.7, seconds=2.0, width=128,
                    height=128)
    rec = generate_clip(tmp_path / "b.mp4", spec)
    plan_spec = msce.motion.motion_aware_gaps(1.0, 1, crop=rec.crop())
    segs = msce.load_segments(tmp_path / "b.mp4", plan_spec, msce.Frames(size=(32, 32)))
    roles = [s.roles[0] for s in segs]
    assert roles == ["keyframe", "gap", "keyframe", "gap", "keyframe"]
    (gap_frame,) = segs[3].indices
    assert spec.onset < gap_frame / spec.fps < spec.offset


@needs_ffmpeg
def test_motion_aware_load_decodes_the_clip_once(tmp_path):
    """The analysis and the load share one decode pass (the clip held on the reader) when it
    fits in buffer_mb; the tensors, plans and curve equal those of two separate passes."""
    from msce.synth import generate_clip

    spec = ClipSpec(seed=5, action="smile", onset=0.9, apex=1.02, offset=1.3, seconds=2.0, width=128, height=128)
    path = tmp_path / "once.mp4"
    rec = generate_clip(path, spec)
    target = msce.Frames(size=(40, 40))

    def load(buffer_mb, segments, reader=None):
        motion._CACHE.clear()
        spec_ = msce.motion.motion_aware_gaps(1.0, 2, crop=rec.crop(), size=48, buffer_mb=buffer_mb)
        src = reader if reader is not None else path
        out = msce.load_segments(src, spec_, target) if segments else [msce.load(src, spec_, target)]
        return out, next(iter(motion._CACHE.values()))

    for segments in (False, True):
        two, curve_two = load(0, segments)
        one, curve_one = load(512, segments)
        assert [b.plan.indices for b in one] == [b.plan.indices for b in two]
        for a, b in zip(one, two):
            assert torch.equal(a.data, b.data)
            assert a.stats.get("shared_decode") is True and "shared_decode" not in b.stats
            assert a.stats["frames_decoded"] == spec.num_frames  # the single pass decoded the clip
        np.testing.assert_array_equal(curve_one.energy, curve_two.energy)
    # A reader the caller gave is released after the load, and reads on as before.
    reader = msce.VideoReader(path)
    (got,), _ = load(512, False, reader)
    assert getattr(reader, "_held", None) is None and got.stats["shared_decode"]
    again = msce.load(reader, msce.plan.at_indices(list(got.plan.indices)), target)
    assert torch.equal(again.data, got.data) and "shared_decode" not in again.stats
    # Too large for the buffer: the analysis decodes on its own (two passes).
    (big,), _ = load(0.001, False)
    assert "shared_decode" not in big.stats
    with pytest.raises(PlanError, match="buffer_mb"):
        msce.motion.motion_aware_gaps(1.0, 2, buffer_mb=-1)


@needs_ffmpeg
def test_motion_aware_load_releases_the_clip_on_error(tmp_path):
    from msce.synth import generate_clip

    spec = ClipSpec(seed=6, onset=0.5, apex=0.6, offset=0.8, seconds=1.2, width=96, height=96)
    path = tmp_path / "err.mp4"
    generate_clip(path, spec)
    reader = msce.VideoReader(path)
    motion._CACHE.clear()
    with pytest.raises(TransformError):  # a crop box outside the frame, found after the analysis
        msce.load(reader, msce.motion.motion_aware_gaps(1.0, 1, size=32), msce.Frames(size=(16, 16)),
                  crop=(500, 500, 10, 10))
    assert len(motion._CACHE) == 1  # the analysis ran on the held clip before the load failed
    assert getattr(reader, "_held", None) is None
    motion._CACHE.clear()


@needs_ffmpeg
def test_msce_keyframe_controls_share_the_motion_decode(tmp_path):
    """The MSCE controls load only the keyframes of a motion-aware plan; the wrapper passes the
    one-pass hook on, so they decode once too, with the keyframes of the two-pass path."""
    from msce.models.strategies.msce import _KeyframesOf
    from msce.synth import generate_clip

    spec = ClipSpec(seed=7, onset=0.6, apex=0.7, offset=0.9, seconds=2.0, width=96, height=96)
    path = tmp_path / "kf.mp4"
    rec = generate_clip(path, spec)
    out = {}
    for mb in (0, 512):
        motion._CACHE.clear()
        out[mb] = msce.load_segments(path, _KeyframesOf(msce.motion.motion_aware_gaps(1.0, 2, crop=rec.crop(),
                                                                                      buffer_mb=mb)),
                                     msce.Frames(size=(24, 24)))
    motion._CACHE.clear()
    assert [s.indices for s in out[512]] == [s.indices for s in out[0]]
    assert out[512][0].plan.spec["gaps_with_frames"] == out[0][0].plan.spec["gaps_with_frames"]
    assert out[512][0].stats.get("shared_decode") is True and "shared_decode" not in out[0][0].stats
    for a, b in zip(out[512], out[0]):
        assert torch.equal(a.data, b.data)
