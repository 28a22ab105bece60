"""``FrameBatch.to_hf(timing=True)`` and ``FrameBatch.video_metadata()`` vs the Hugging Face
Qwen processors (the full processors, text and video) fed the same frames with that metadata.

Qwen2.5-VL: ``second_per_grid_ts`` as ``Qwen2_5_VLProcessor`` computes it. Qwen3-VL: no time
tensor; its processor accepts ``video_metadata()`` and writes ``<t seconds>`` per temporal
patch, t = the mean time of the patch's two frames (docs/api.md says how to get them).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

import msce
from _deps import require_module

require_module("transformers", "pip install 'msce[hf]'")

TEXT_KEYS = {"input_ids", "attention_mask", "mm_token_type_ids"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2.6 s at 5 FPS (13 frames): a 1 FPS plan takes 3 frames, so HF's sampled rate
    (3 / 13 * 5) differs from the plan's."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    path = tmp_path_factory.mktemp("timing") / "c.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5", "-t", "2.6",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)], check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def processors(tmp_path_factory):
    from transformers import AutoProcessor

    from msce.testing import make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {v: AutoProcessor.from_pretrained(make_tiny_model(root / v, version=v), local_files_only=True)
            for v in ("2.5", "3")}


def _hf(processor, clip, spec, metadata):
    frames = msce.load(clip, spec, msce.Frames(layout="NHWC", dtype="uint8"))
    video = torch.from_numpy(np.ascontiguousarray(frames.data.numpy())).permute(0, 3, 1, 2)
    return processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[video],
                     video_metadata=[metadata], do_sample_frames=False, return_tensors="pt")


SPECS = {"uniform1": msce.plan.uniform(1.0), "uniform2": msce.plan.uniform(2.0), "dense": msce.plan.dense(),
         "shuffled": msce.plan.shuffled(msce.plan.uniform(2.0), seed=3), "above_rate": msce.plan.uniform(8.0)}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_qwen25_second_per_grid_ts_is_the_processors(processors, clip, name):
    processor = processors["2.5"]
    batch = msce.load(clip, SPECS[name], msce.target_for(processor))
    ref = _hf(processor, clip, SPECS[name], batch.video_metadata())
    got = batch.to_hf(timing=True)
    assert set(got) == set(ref.keys()) - TEXT_KEYS
    for key in got:
        assert got[key].dtype == ref[key].dtype and got[key].shape == ref[key].shape, key
        assert torch.equal(got[key], ref[key]), key
    assert set(batch.to_hf()) == {"pixel_values_videos", "video_grid_thw"}  # the video processor's keys


def test_qwen25_second_per_grid_ts_value(processors, clip):
    batch = msce.load(clip, msce.plan.uniform(1.0), msce.target_for(processors["2.5"]))
    assert batch.indices == (0, 5, 10)
    assert batch.to_hf(timing=True)["second_per_grid_ts"].item() == pytest.approx(2 / (3 / 13 * 5))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_qwen3_metadata_gives_the_processors_frame_times(processors, clip, name):
    processor = processors["3"]
    batch = msce.load(clip, SPECS[name], msce.target_for(processor))
    ref = _hf(processor, clip, SPECS[name], batch.video_metadata())
    got = batch.to_hf(timing=True)
    assert set(got) == set(ref.keys()) - TEXT_KEYS == {"pixel_values_videos", "video_grid_thw"}
    assert torch.equal(got["pixel_values_videos"], ref["pixel_values_videos"])
    text = processor.tokenizer.decode(ref["input_ids"][0])
    ts = list(batch.timestamps) + ([batch.timestamps[-1]] if len(batch.timestamps) % 2 else [])
    want = [f"{(ts[k] + ts[k + 1]) / 2:.1f}" for k in range(0, len(ts), 2)]
    assert re.findall(r"<(\d+\.\d) seconds>", text) == want


def test_images_and_other_targets_take_no_timing(processors, clip):
    one = msce.load(clip, msce.plan.at_indices([3]), msce.target_for(processors["2.5"]))
    assert set(one.to_hf(as_image=True, timing=True)) == {"pixel_values", "image_grid_thw"}
    frames = msce.load(clip, msce.plan.uniform(1.0), msce.Frames())
    with pytest.raises(msce.TransformError, match="to_hf"):
        frames.to_hf(timing=True)
