"""msce's Qwen tensors vs the Hugging Face video processors fed the same frames.

Bounds from the issue: identical grids and token counts, max abs error <= 0.05 and mean
<= 2e-3 in normalized units. msce reproduces torch's uint8 kernel, so the reached error is 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import msce

transformers = pytest.importorskip("transformers")
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402


def _natural_clip(frames: int, h: int, w: int) -> np.ndarray:
    """A real photo (skimage's astronaut) panned and scaled over time: natural image statistics."""
    skimage = pytest.importorskip("skimage")
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


def test_float16_output_is_rounded_float32():
    vid = _natural_clip(2, 200, 300)
    f32 = msce.preprocess(vid, msce.QwenVL("2.5")).data
    f16 = msce.preprocess(vid, msce.QwenVL("2.5", dtype="float16")).data
    assert f16.dtype == torch.float16 and torch.equal(f16, f32.half())
