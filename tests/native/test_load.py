"""The decode -> plan -> transform path on real encoded clips."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import msce
from _deps import require_module
from msce.io.media import make_test_clip

av = require_module("av")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_clip(tmp_path_factory.mktemp("load") / "clip.mp4", seconds=3.0, fps=25, size=(640, 360))


def _pyav_rgb(path, indices):
    """Frames at presentation-order indices, RGB via PyAV/swscale."""
    with av.open(str(path)) as c:
        frames = sorted(c.decode(video=0), key=lambda f: f.pts)
        return np.stack([frames[i].to_ndarray(format="rgb24") for i in indices])


def test_load_qwen25_vs_pyav_plus_hf_processor(clip):
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    batch = msce.load(clip, msce.plan.uniform(5.0), msce.QwenVL("2.5"))
    assert len(batch) == 15
    rgb = _pyav_rgb(clip, batch.indices)
    ref = Qwen2VLVideoProcessor(cap_pixels_per_frame=False)(
        videos=[torch.from_numpy(rgb).permute(0, 3, 1, 2)], return_tensors="pt")
    assert batch.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    err = (batch.data - ref["pixel_values_videos"]).abs()
    # differences come only from YUV->RGB rounding (msce fixed point vs swscale tables)
    assert err.max().item() <= 0.05, err.max().item()
    assert err.mean().item() <= 2e-3, err.mean().item()
    hf = batch.to_hf()
    assert set(hf) == {"pixel_values_videos", "video_grid_thw"}
    assert batch.num_tokens == int(hf["video_grid_thw"].prod()) // 4


def test_load_equals_preprocess_of_get_frames(clip):
    r = msce.VideoReader(clip)
    plan = msce.plan.keyframes_with_gaps(1.0, 4).resolve(r.metadata)
    frames = r.get_frames(list(plan.indices))
    a = msce.load(clip, plan, msce.QwenVL("3"))
    b = msce.preprocess(frames, msce.QwenVL("3"))
    assert torch.equal(a.data, b.data) and torch.equal(a.grid_thw, b.grid_thw)


def test_segments_equal_separate_loads(clip):
    spec = msce.plan.keyframes_with_gaps(1.0, 4)
    segs = msce.load_segments(clip, spec, msce.QwenVL("2.5"))
    plan = spec.resolve(msce.VideoReader(clip).metadata)
    assert [s.roles[0] for s in segs] == ["keyframe", "gap", "keyframe", "gap", "keyframe"]
    for seg, sub in zip(segs, plan.segments()):
        one = msce.load(clip, sub, msce.QwenVL("2.5"))
        assert seg.indices == sub.indices
        assert torch.equal(seg.data, one.data)
    # a keyframe segment is one frame: usable as an image
    assert segs[0].to_hf(as_image=True)["image_grid_thw"].tolist()[0][0] == 1


def test_shuffled_output_follows_the_permutation(clip):
    base = msce.load(clip, msce.plan.uniform(5.0), msce.Frames(size=(90, 160)))
    sh = msce.load(clip, msce.plan.shuffled(msce.plan.uniform(5.0), seed=11), msce.Frames(size=(90, 160)))
    pos = {idx: k for k, idx in enumerate(base.indices)}
    assert sh.indices != base.indices
    for k, idx in enumerate(sh.indices):
        assert torch.equal(sh.data[k], base.data[pos[idx]])


def test_duplicate_indices_fill_every_slot(clip):
    b = msce.load(clip, msce.plan.at_indices([3, 3, 40, 3]), msce.Frames(size=(36, 64)))
    assert torch.equal(b.data[0], b.data[1]) and torch.equal(b.data[0], b.data[3])
    assert not torch.equal(b.data[0], b.data[2])


def test_get_frames_at_times(clip):
    r = msce.VideoReader(clip)
    a = r.get_frames_at([0.0, 1.0, 2.02])
    b = r.get_frames([0, 25, 50])
    assert np.array_equal(a, b)


def test_concurrent_loads_are_identical(clip):
    ref = msce.load(clip, msce.plan.dense(), msce.QwenVL("2.5"), threads=2).data
    results, errors = [None] * 4, []

    def work(k):
        try:
            results[k] = msce.load(clip, msce.plan.dense(), msce.QwenVL("2.5"), threads=2).data
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    assert all(torch.equal(r, ref) for r in results)


def test_thread_count_does_not_change_output(clip):
    a = msce.load(clip, msce.plan.dense(), msce.QwenVL("2.5"), threads=1).data
    b = msce.load(clip, msce.plan.dense(), msce.QwenVL("2.5"), threads=3).data
    assert torch.equal(a, b)


def test_crop_box_in_pipeline(clip):
    box = (100, 50, 200, 180)
    a = msce.load(clip, msce.plan.uniform(2.0), msce.Frames(size=(64, 64)), crop=box)
    frames = msce.VideoReader(clip).get_frames(list(a.indices))
    b = msce.preprocess(np.ascontiguousarray(frames[:, 50:230, 100:300]), msce.Frames(size=(64, 64)))
    assert torch.equal(a.data, b.data)
    with pytest.raises(msce.TransformError):
        msce.load(clip, msce.plan.uniform(2.0), msce.Frames(), crop=(600, 0, 100, 100))


def test_qwen3_metadata_carries_true_fps_and_indices(clip):
    b = msce.load(clip, msce.plan.uniform(2.0), msce.QwenVL("3"))
    md = b.video_metadata()
    assert md["fps"] == pytest.approx(25.0)
    assert md["frames_indices"] == [0, 12, 25, 37, 50, 62]  # 1.5 s is a tie: the earlier frame
    assert b.timestamps[1] == pytest.approx(0.48)


def test_sparse_plan_decodes_less_with_short_gop(tmp_path):
    short = make_test_clip(tmp_path / "short_gop.mp4", seconds=4.0, fps=25, size=(320, 180), gop=10)
    r = msce.VideoReader(short)
    b = msce.load(r, msce.plan.uniform(1.0), msce.Frames(size=(18, 32)))
    assert b.stats["frames_decoded"] < r.metadata.num_frames // 2
    assert b.stats["seeks"] >= 1
    dense = msce.load(r, msce.plan.dense(), msce.Frames(size=(18, 32)))
    assert torch.equal(dense.data[list(b.indices)], b.data)


_RSS_SCRIPT = r"""
import resource, sys, json, msce
path = sys.argv[1]
r = msce.VideoReader(path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
b = msce.load(r, msce.plan.dense(), msce.QwenVL("2.5", min_pixels=28*28, max_pixels=56*56), threads=2)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
m = r.metadata
print(json.dumps({"grow_kib": after - before, "decoded_mib": m.num_frames * m.width * m.height * 3 / 2**20,
                  "out_mib": b.data.numel() * 4 / 2**20}))
"""


def test_streaming_memory_is_bounded(tmp_path):
    """Dense decode of a clip whose RGB frames would take ~260 MiB grows RSS by far less."""
    long = make_test_clip(tmp_path / "long.mp4", seconds=20.0, fps=25, size=(640, 360))
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(long)], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert res["decoded_mib"] > 250
    assert res["grow_kib"] / 1024 < 60 + res["out_mib"], res
