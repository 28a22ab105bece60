"""msce's Qwen tensors vs the Hugging Face video processors fed the same frames.

Bounds from the issue: identical grids and token counts, max abs error <= 0.05 and mean
<= 2e-3 in normalized units. msce reproduces torch's uint8 kernel, so the reached error is 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import msce
from _deps import require_module

transformers = require_module("transformers", "pip install 'msce[hf]'")
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402

HF_VIDEO_PROCESSOR = {"2": Qwen2VLVideoProcessor, "2.5": Qwen2VLVideoProcessor, "3": Qwen3VLVideoProcessor}


def _natural_clip(frames: int, h: int, w: int) -> np.ndarray:
    """A real photo (skimage's astronaut) panned and scaled over time: natural image statistics."""
    skimage = require_module("skimage")
    from skimage.transform import resize

    img = skimage.data.astronaut()
    out = []
    for t in range(frames):
        y0, x0 = 10 + 3 * t, 20 + 5 * t
        crop = img[y0:y0 + 400, x0:x0 + 400]
        out.append((resize(crop, (h, w), order=1, anti_aliasing=False) * 255).round().astype(np.uint8))
    return np.stack(out)


CASES = [(4, 360, 640), (5, 241, 321), (3, 720, 1280), (2, 1080, 1920), (6, 100, 90)]


def _hf(processor, vid: np.ndarray, **kw):
    return processor(videos=[torch.from_numpy(vid).permute(0, 3, 1, 2)], return_tensors="pt", **kw)


@pytest.mark.parametrize("frames,h,w", CASES)
@pytest.mark.parametrize("kind", ["random", "natural"])
def test_qwen25_matches_hf(frames, h, w, kind):
    vid = (np.random.default_rng(h).integers(0, 256, (frames, h, w, 3), dtype=np.uint8) if kind == "random"
           else _natural_clip(frames, h, w))
    ref = _hf(Qwen2VLVideoProcessor(cap_pixels_per_frame=False), vid)
    got = msce.preprocess(vid, msce.QwenVL("2.5"))
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert got.num_tokens == int(ref["video_grid_thw"].prod()) // 4
    err = (got.data - ref["pixel_values_videos"]).abs()
    assert err.max().item() <= 0.05 and err.mean().item() <= 2e-3
    assert err.max().item() == 0.0  # what msce reaches: bit-identical


@pytest.mark.parametrize("frames,h,w", CASES)
def test_qwen3_matches_hf(frames, h, w):
    vid = _natural_clip(frames, h, w)
    ref = _hf(Qwen3VLVideoProcessor(cap_pixels_per_frame=False), vid, do_sample_frames=False)
    got = msce.preprocess(vid, msce.QwenVL("3"))
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert (got.data - ref["pixel_values_videos"]).abs().max().item() == 0.0


@pytest.mark.parametrize("version", ["2.5", "3"])
def test_cap_pixels_per_frame_matches_hf(version):
    vid = _natural_clip(24, 480, 640)
    cls = Qwen3VLVideoProcessor if version == "3" else Qwen2VLVideoProcessor
    kw = {"do_sample_frames": False} if version == "3" else {}
    proc = cls(cap_pixels_per_frame=True, max_video_tokens=2000)
    ref = _hf(proc, vid, **kw)
    got = msce.preprocess(vid, msce.QwenVL(version, cap_pixels_per_frame=True, max_video_tokens=2000))
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert (got.data - ref["pixel_values_videos"]).abs().max().item() == 0.0


def test_custom_pixel_budget_matches_hf():
    vid = _natural_clip(4, 480, 640)
    ref = _hf(Qwen2VLVideoProcessor(cap_pixels_per_frame=False, size={"shortest_edge": 3136, "longest_edge": 448 * 448}),
              vid)
    got = msce.preprocess(vid, msce.QwenVL("2.5", min_pixels=3136, max_pixels=448 * 448))
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert torch.equal(got.data, ref["pixel_values_videos"])


@pytest.mark.parametrize("version", ["2.5", "3"])
def test_bfloat16_output_equals_the_hf_processor_cast_to_bfloat16(version):
    """A model run in bfloat16 casts the processor's float32 pixel_values to its vision tower's
    dtype; msce's bfloat16 output is that cast, bit for bit (and half the memory)."""
    vid = _natural_clip(4, 240, 320)
    if version == "3":
        ref = _hf(Qwen3VLVideoProcessor(cap_pixels_per_frame=False), vid, do_sample_frames=False)
    else:
        ref = _hf(Qwen2VLVideoProcessor(cap_pixels_per_frame=False), vid)
    got = msce.preprocess(vid, msce.QwenVL(version, dtype="bfloat16"))
    assert got.data.dtype == torch.bfloat16
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert torch.equal(got.data, ref["pixel_values_videos"].to(torch.bfloat16))


def test_float16_output_is_rounded_float32():
    vid = _natural_clip(2, 200, 300)
    f32 = msce.preprocess(vid, msce.QwenVL("2.5")).data
    f16 = msce.preprocess(vid, msce.QwenVL("2.5", dtype="float16")).data
    assert f16.dtype == torch.float16 and torch.equal(f16, f32.half())


def test_qwen25_is_served_by_the_qwen2_video_processor():
    from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING_NAMES as names

    for model_type, version in (("qwen2_vl", "2"), ("qwen2_5_vl", "2.5"), ("qwen3_vl", "3")):
        assert names[model_type]["torchvision"] == HF_VIDEO_PROCESSOR[version].__name__


@pytest.mark.parametrize("version", ["2", "2.5", "3"])
def test_defaults_equal_hf_video_processor(version):
    from transformers.image_utils import PILImageResampling

    hf = HF_VIDEO_PROCESSOR[version]()
    t = msce.QwenVL(version)
    assert t.resolved_pixels == (hf.size["shortest_edge"], hf.size["longest_edge"])
    assert (t.patch, t.temporal, t.merge) == (hf.patch_size, hf.temporal_patch_size, hf.merge_size)
    assert t.mean == tuple(hf.image_mean) and t.std == tuple(hf.image_std)
    assert t.rescale_factor == hf.rescale_factor
    assert {"bicubic": PILImageResampling.BICUBIC}[t.interpolation] == hf.resample
    assert t.max_video_tokens == hf.max_video_tokens
    assert t.cap_pixels_per_frame is bool(hf.cap_pixels_per_frame)  # HF's unset (None) behaves as False
    # steps msce always applies; a processor that skipped one would no longer be what msce reproduces
    assert hf.do_resize and hf.do_rescale and hf.do_normalize and hf.do_convert_rgb


def test_qwen3_per_frame_cap_with_raised_max_pixels_matches_hf():
    # 768 tokens per frame (HF's Qwen3 max_video_tokens) bind before the raised clip budget does
    vid = _natural_clip(4, 720, 1280)
    size = {"shortest_edge": 128 * 32 * 32, "longest_edge": 32 * 32 * 768 * 16}
    ref = _hf(Qwen3VLVideoProcessor(cap_pixels_per_frame=True, size=size), vid, do_sample_frames=False)
    got = msce.preprocess(vid, msce.QwenVL("3", max_pixels=size["longest_edge"], cap_pixels_per_frame=True))
    assert ref["video_grid_thw"].tolist() == [[2, 40, 72]]
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert torch.equal(got.data, ref["pixel_values_videos"])


QWEN2_SIZES = [None, {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280},
               {"shortest_edge": 3136, "longest_edge": 224 * 224}]


@pytest.mark.parametrize("size", QWEN2_SIZES, ids=["defaults", "56x56-1280", "3136-224x224"])
@pytest.mark.parametrize("frames,h,w", [(4, 360, 640), (3, 720, 1280)])
def test_qwen2_matches_hf(size, frames, h, w):
    vid = _natural_clip(frames, h, w)
    proc = Qwen2VLVideoProcessor(cap_pixels_per_frame=False, **({} if size is None else {"size": size}))
    ref = _hf(proc, vid)
    kw = {} if size is None else {"min_pixels": size["shortest_edge"], "max_pixels": size["longest_edge"]}
    got = msce.preprocess(vid, msce.QwenVL("2", **kw))
    assert got.grid_thw.tolist() == ref["video_grid_thw"].tolist()
    assert got.num_tokens == int(ref["video_grid_thw"].prod()) // 4
    assert torch.equal(got.data, ref["pixel_values_videos"])


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "768"])
def test_bad_max_video_tokens_raises(bad):
    with pytest.raises(msce.TransformError, match="max_video_tokens"):
        msce.QwenVL("3", max_video_tokens=bad)
