"""``msce.preprocess(frames, msce.target_for(processor))`` vs the transformers (5.24) video
processors on the same uint8 frames: 8 seeded random 360x640 frames, each family at its
defaults and two other sizes. Every family here computes in torch's uint8 resize kernels
(bilinear, bicubic, and Lanczos for SmolVLM2, whose two chained resizes msce runs as one
two-stage native transform) and float32 fused normalize, which msce reproduces: the bound is
max abs difference 0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import msce
from msce.errors import UnsupportedError
from _deps import require_module

transformers = require_module("transformers", "pip install 'msce[hf]'")
from transformers import (  # noqa: E402
    Glm4vVideoProcessor,
    InternVLVideoProcessor,
    LlavaNextVideoVideoProcessor,
    LlavaOnevisionVideoProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLVideoProcessor,
    SmolVLMVideoProcessor,
    VideoLlavaVideoProcessor,
    VideoMAEImageProcessor,
    VideoMAEVideoProcessor,
)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(20240515).integers(0, 256, (8, 360, 640, 3), dtype=np.uint8)


def _crop(size: int, crop: tuple[int, int] | None = None) -> dict:
    ch, cw = crop or (size, size)
    return {"size": {"shortest_edge": size}, "crop_size": {"height": ch, "width": cw}}


CLIP_SIZES = [{}, _crop(336), {**_crop(160, (128, 144)), "resample": 2}]
FIXED_SIZES = [{}, {"size": {"height": 224, "width": 224}}, {"size": {"height": 200, "width": 300}}]
CASES = [
    *[("llava_next_video", LlavaNextVideoVideoProcessor, kw) for kw in CLIP_SIZES],
    *[("video_llava", VideoLlavaVideoProcessor, kw) for kw in CLIP_SIZES],
    *[("llava_onevision", LlavaOnevisionVideoProcessor, kw) for kw in FIXED_SIZES],
    *[("internvl", InternVLVideoProcessor, kw) for kw in
      [{}, {"size": {"height": 448, "width": 448}}, {"size": {"height": 256, "width": 320}}]],
    *[("videomae", VideoMAEVideoProcessor, kw) for kw in
      [{}, _crop(160), {**_crop(256, (224, 200)), "resample": 3}]],
    # first resize to the longest edge (an upscale of 640x360 at the defaults), then to the square
    *[("smolvlm", SmolVLMVideoProcessor, kw) for kw in
      [{}, {"size": {"longest_edge": 2 * 384}, "max_image_size": {"longest_edge": 384}},
       {"size": {"height": 300, "width": 500}, "max_image_size": {"longest_edge": 224}}]],
]


def _exact(got: dict, ref, keys: set[str]) -> None:
    assert set(got) == keys == set(ref.keys())
    for k in keys:
        assert got[k].shape == ref[k].shape and got[k].dtype == ref[k].dtype, k
        assert (got[k] - ref[k]).abs().max().item() == 0.0, k


@pytest.mark.parametrize("model_type,cls,kwargs", CASES, ids=[f"{c[0]}-{i % 3}" for i, c in enumerate(CASES)])
def test_family_matches_hf_video_processor(frames, model_type, cls, kwargs):
    proc = cls(**kwargs)
    ref = proc(videos=[frames], return_tensors="pt")
    target = msce.target_for(proc)
    if not kwargs:
        assert target.to_dict() == msce.target_for(model_type).to_dict()
    got = msce.preprocess(frames, target).to_hf()
    _exact(got, ref, set(ref.keys()))


def test_lanczos_resample_of_a_clip_family(frames):
    """LANCZOS (PIL code 1) in any ResizeCrop family: torch's uint8 Lanczos kernel, then the crop."""
    proc = LlavaNextVideoVideoProcessor(resample=1, **_crop(256, (224, 240)))
    ref = proc(videos=[frames], return_tensors="pt")
    target = msce.target_for(proc)
    assert target.interpolation == "lanczos"
    _exact(msce.preprocess(frames, target).to_hf(), ref, {"pixel_values_videos"})


# The SmolVLM2 checkpoints' preprocessor_config.json (their only processor config; the video
# processor reads it too): HuggingFaceTB/SmolVLM2-256M-Video-Instruct (as of its
# "video_sampling.longest_edge -> 512" revision; SmolVLM2-500M-Video-Instruct has the same values)
# and SmolVLM2-2.2B-Instruct. The processor's __init__ lets ``size`` override
# ``video_sampling.video_size``, so the first resize goes to 2048 / 1536, not 512 / 384.
_SMOL_COMMON = {"do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True,
                "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "SmolVLMImageProcessor", "image_std": [0.5, 0.5, 0.5],
                "processor_class": "SmolVLMProcessor", "resample": 1, "rescale_factor": 0.00392156862745098}
SMOLVLM2_CONFIGS = {
    "SmolVLM2-256M-Video-Instruct": {**_SMOL_COMMON, "max_image_size": {"longest_edge": 512},
                                     "size": {"longest_edge": 2048},
                                     "video_sampling": {"fps": 1, "max_frames": 64,
                                                        "video_size": {"longest_edge": 512}}},
    "SmolVLM2-2.2B-Instruct": {**_SMOL_COMMON, "max_image_size": {"longest_edge": 384},
                               "size": {"longest_edge": 1536},
                               "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 384}}},
}


@pytest.mark.parametrize("name", sorted(SMOLVLM2_CONFIGS))
def test_smolvlm2_checkpoint_configs(tmp_path, frames, name):
    from transformers import AutoVideoProcessor

    config = SMOLVLM2_CONFIGS[name]
    _write(tmp_path, "config.json", {"model_type": "smolvlm"})
    _write(tmp_path, "processor_config.json", {"image_seq_len": 64, "processor_class": "SmolVLMProcessor"})
    _write(tmp_path, "preprocessor_config.json", config)
    proc = AutoVideoProcessor.from_pretrained(tmp_path, local_files_only=True)
    assert type(proc) is SmolVLMVideoProcessor
    target = msce.target_for(tmp_path)
    assert target == msce.target_for(proc)
    assert (target.longest_edge, target.max_image_size) == (config["size"]["longest_edge"],
                                                            config["max_image_size"]["longest_edge"])
    ref = proc(videos=[frames], return_tensors="pt")
    _exact(msce.preprocess(frames, target).to_hf(), ref, {"pixel_values", "pixel_attention_mask"})


def test_smolvlm_frames_already_at_the_first_size(frames):
    """A resize that keeps the size is skipped by torch: one stage left (either one)."""
    small = np.ascontiguousarray(frames[:3, :126, :224])
    for kw in ({"size": {"longest_edge": 224}, "max_image_size": {"longest_edge": 112}},
               {"size": {"longest_edge": 448}, "max_image_size": {"longest_edge": 224}}):
        proc = SmolVLMVideoProcessor(**kw)
        ref = proc(videos=[small], return_tensors="pt")
        _exact(msce.preprocess(small, msce.target_for(proc)).to_hf(), ref, {"pixel_values", "pixel_attention_mask"})
    square = np.ascontiguousarray(frames[:3, :300, :300])
    proc = SmolVLMVideoProcessor(size={"longest_edge": 200}, max_image_size={"longest_edge": 200})
    _exact(msce.preprocess(square, msce.target_for(proc)).to_hf(), proc(videos=[square], return_tensors="pt"),
           {"pixel_values", "pixel_attention_mask"})


@pytest.mark.parametrize("kwargs", [{}, _crop(160), {**_crop(256, (224, 200)), "resample": 3}])
def test_videomae_image_processor(frames, kwargs):
    proc = VideoMAEImageProcessor(**kwargs)
    ref = proc([list(frames)], return_tensors="pt")
    got = msce.preprocess(frames, msce.target_for(proc)).to_hf()
    _exact(got, ref, {"pixel_values"})


QWEN = [
    ("qwen2_5_vl", Qwen2VLVideoProcessor, {}),
    ("qwen2_5_omni", Qwen2VLVideoProcessor, {"min_pixels": 64 * 28 * 28, "max_pixels": 256 * 28 * 28}),
    ("qwen2_vl", Qwen2VLVideoProcessor, {"size": {"shortest_edge": 3136, "longest_edge": 128 * 28 * 28}}),
    ("qwen3_vl", Qwen3VLVideoProcessor, {}),
    ("qwen3_vl", Qwen3VLVideoProcessor, {"size": {"shortest_edge": 4096, "longest_edge": 8 * 200 * 32 * 32}}),
    ("glm4v", Glm4vVideoProcessor, {}),
    ("glm4v", Glm4vVideoProcessor, {"size": {"shortest_edge": 12544, "longest_edge": 8 * 200 * 28 * 28}}),
    ("glm4v", Glm4vVideoProcessor, {"size": {"shortest_edge": 12544, "longest_edge": 8 * 100 * 28 * 28}}),
]


@pytest.mark.parametrize("model_type,cls,kwargs", QWEN)
def test_qwen_families_via_target_for(frames, model_type, cls, kwargs):
    proc = cls(**kwargs)
    ref = proc(videos=[frames], return_tensors="pt", do_sample_frames=False)
    target = msce.target_for(proc)
    assert isinstance(target, msce.QwenVL)  # Glm4V too: the same patch layout
    if not kwargs:
        assert target.to_dict() == msce.target_for(model_type).to_dict()
    _exact(msce.preprocess(frames, target).to_hf(), ref, {"pixel_values_videos", "video_grid_thw"})


def test_target_for_model_directory(tmp_path, frames):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_next_video"}))
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({
        "video_processor_type": "LlavaNextVideoVideoProcessor", "size": {"shortest_edge": 288},
        "crop_size": {"height": 256, "width": 256}, "resample": 2}))
    target = msce.target_for(tmp_path)
    ref = LlavaNextVideoVideoProcessor(size={"shortest_edge": 288}, crop_size={"height": 256, "width": 256},
                                       resample=2)(videos=[frames], return_tensors="pt")
    _exact(msce.preprocess(frames, target).to_hf(), ref, {"pixel_values_videos"})


def test_target_for_qwen_directory_reads_pixels(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 12845056}))
    assert msce.target_for(tmp_path).resolved_pixels == (3136, 12845056)


def test_target_for_processor_with_video_part():
    class Processor:  # a composite processor (tokenizer + video processor)
        video_processor = VideoLlavaVideoProcessor(size={"shortest_edge": 336}, crop_size={"height": 336,
                                                                                           "width": 336})

    assert msce.target_for(Processor()) == msce.targets.VideoLlava(shortest_edge=336, crop_size=(336, 336))


@pytest.mark.parametrize("x", ["paligemma", "not_a_model", object()])
def test_target_for_unknown_names_supported(x):
    with pytest.raises(UnsupportedError, match="llava_next_video.*qwen2_5_vl"):
        msce.target_for(x)


def test_unsupported_settings_raise():
    with pytest.raises(UnsupportedError, match="LANCZOS.*BICUBIC"):
        msce.target_for(LlavaNextVideoVideoProcessor(resample=0))
    with pytest.raises(UnsupportedError, match="LANCZOS.*BICUBIC"):
        msce.target_for(SmolVLMVideoProcessor(resample=4))
    with pytest.raises(UnsupportedError, match="do_normalize"):
        msce.target_for(SmolVLMVideoProcessor(do_normalize=False))
    with pytest.raises(UnsupportedError, match="patch_size"):
        msce.target_for(Qwen2VLVideoProcessor(patch_size=16))
    with pytest.raises(UnsupportedError, match="larger than"):
        msce.preprocess(np.zeros((2, 100, 100, 3), np.uint8), msce.targets.VideoLlava(shortest_edge=200))


def test_output_crop_equals_resize_then_slice(frames):
    """The native output crop keeps exactly the samples of the full resize (both filters,
    and an axis whose resize is the identity)."""
    for interp in ("bicubic", "bilinear"):
        for shortest, crop in ((224, (224, 300)), (360, (300, 500)), (200, (100, 100))):
            t = msce.targets.ResizeCrop(shortest_edge=shortest, crop_size=crop, interpolation=interp)
            rh, rw = t.resize_size(360, 640)
            full = msce.targets.ResizeCrop(size=(rh, rw), interpolation=interp)
            top, left = (rh - crop[0]) // 2, (rw - crop[1]) // 2
            whole = msce.preprocess(frames, full).data[:, :, top:top + crop[0], left:left + crop[1]]
            assert torch.equal(msce.preprocess(frames, t).data, whole)


def test_token_budget_asks_the_target():
    with pytest.raises(msce.PlanError, match="token-counting"):
        msce.plan.token_budget(1000, msce.targets.LlavaNextVideo())
    t = msce.QwenVL("2.5")
    assert t.fit_budget(3, 8, 360, 640) is None  # under one token per temporal patch
    assert t.fit_budget(10, 8, 360, 640) == (28, 28)
    h, w = t.fit_budget(2000, 8, 360, 640)
    assert t.num_tokens(8, h, w) <= 2000


# -- model directories as transformers 5.24 saves them (one processor_config.json) ----------------
@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict:
    from msce.testing import TINY_FAMILIES, make_tiny_family

    root = tmp_path_factory.mktemp("tiny_families")

    class Lazy(dict):  # built on first use: a -k selection builds only its families
        def __missing__(self, f):
            if f == "smolvlm2":  # SmolVLMProcessor imports num2words
                require_module("num2words", "pip install 'msce[hf]'")
            self[f] = d = make_tiny_family(root / f, f, seed=0)
            return d

    assert set(TINY_FAMILIES) >= {"glm4v", "smolvlm2"}
    return Lazy()


def _hf_video_tensors(processor, frames: np.ndarray) -> dict:
    """The video tensors the composite processor itself makes for one video in a chat prompt."""
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"},
                                                                        {"type": "text", "text": "Emotion?"}]}],
                                         tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], videos=[frames], return_tensors="pt", do_sample_frames=False)
    if "pixel_attention_mask" in out:  # SmolVLMProcessor: the video processor's own keys
        return {k: out[k] for k in ("pixel_values", "pixel_attention_mask")}
    if "pixel_values_videos" not in out:  # InternVLProcessor flattens video frames into pixel_values
        return {"pixel_values_videos": out["pixel_values"].unsqueeze(0)}
    return {k: out[k] for k in ("pixel_values_videos", "video_grid_thw") if k in out}


@pytest.mark.parametrize("family", ["llava_next_video", "video_llava", "llava_onevision", "internvl", "glm4v",
                                    "glm4v_moe", "qwen2_5_omni", "smolvlm2"])
def test_tiny_family_directory_equals_its_processor(tiny_dirs, frames, family):
    from transformers import AutoProcessor

    directory = tiny_dirs[family]
    assert (directory / "processor_config.json").is_file()
    assert not (directory / "video_preprocessor_config.json").exists()
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    from_dir, from_obj = msce.target_for(directory), msce.target_for(processor)
    assert from_dir == from_obj
    # the tiny sizes, not the model type's defaults (Omni: the processor's own size, which are those)
    assert (from_dir.to_dict() == msce.target_for(family).to_dict()) == (family == "qwen2_5_omni")
    ref = _hf_video_tensors(processor, frames)
    _exact(msce.preprocess(frames, from_dir).to_hf(), ref, set(ref))


def test_omni_processor_size_is_the_composites(tiny_dirs):
    """Qwen2_5OmniProcessor calls its video processor with its own class videos_kwargs size."""
    from transformers import AutoProcessor, Qwen2_5OmniProcessor

    processor = AutoProcessor.from_pretrained(tiny_dirs["qwen2_5_omni"], local_files_only=True)
    assert processor.video_processor.size.longest_edge == 12544  # what the directory configures ...
    size = Qwen2_5OmniProcessor.videos_kwargs["size"]  # ... and what the processor uses
    assert msce.target_for(processor).resolved_pixels == (size["shortest_edge"], size["longest_edge"])


def _write(directory, name: str, content) -> None:
    (directory / name).write_text(content if isinstance(content, str) else json.dumps(content))


def test_directory_nested_video_processor_wins(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "internvl"})
    _write(tmp_path, "processor_config.json", {
        "processor_class": "InternVLProcessor",
        "video_processor": {"video_processor_type": "InternVLVideoProcessor", "size": {"height": 224, "width": 224}},
        "image_processor": {"image_processor_type": "GotOcr2ImageProcessor", "size": {"height": 448, "width": 448}}})
    _write(tmp_path, "preprocessor_config.json", {"image_processor_type": "GotOcr2ImageProcessor",
                                                  "size": {"height": 448, "width": 448}})
    assert msce.target_for(tmp_path).size == (224, 224)


@pytest.mark.parametrize("files,bad", [
    ({"processor_config.json": "{not json"}, "processor_config.json"),
    ({"processor_config.json": {"processor_class": "InternVLProcessor"}}, "processor_config.json"),
    ({"processor_config.json": {"video_processor": [1, 2]}}, "processor_config.json"),
    ({"processor_config.json": {"video_processor": {"video_processor_type": "InternVLVideoProcessor",
                                                    "size": {"shortest_edge": 5, "longest_edge": 9}}}},
     "processor_config.json"),
    ({"preprocessor_config.json": "[]"}, "preprocessor_config.json"),
    ({}, "no processor config"),
])
def test_directory_without_a_readable_processor_config_raises(tmp_path, files, bad):
    _write(tmp_path, "config.json", {"model_type": "internvl"})
    for name, content in files.items():
        _write(tmp_path, name, content)
    with pytest.raises(UnsupportedError, match=bad.replace(".", r"\.")):
        msce.target_for(tmp_path)


def test_moe_model_types_take_their_dense_siblings_processors():
    """Qwen3-VL-MoE and GLM-4.5V (glm4v_moe) ship the video processors of Qwen3-VL and GLM-4.1V
    (transformers' auto mappings say so): the same targets, by model type too."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING_NAMES

    assert VIDEO_PROCESSOR_MAPPING_NAMES["qwen3_vl_moe"] == VIDEO_PROCESSOR_MAPPING_NAMES["qwen3_vl"]
    assert PROCESSOR_MAPPING_NAMES["glm4v_moe"] == "Glm4vProcessor"
    assert msce.target_for("qwen3_vl_moe") == msce.target_for("qwen3_vl")
    assert msce.target_for("glm4v_moe") == msce.target_for("glm4v")
