"""Tiny offline Qwen models and the transformers backend.

The central check: the input_ids the backend builds from msce's token-ready tensors
equal what the HF processor builds from the same decoded frames (placeholder expansion
and, for Qwen3-VL, the per-temporal-patch ``<t seconds>`` text).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

import msce
from msce.models.backends import GenerationParams, get_backend
from msce.models.backends.hf import expand_placeholders, qwen3_frame_times
from msce.errors import ConfigError
from msce.plan import Plan
from msce.testing import make_tiny_model

FACTOR = {"2.5": 28, "3": 32}


def _digest(path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_tiny_model_is_small_seeded_and_reloadable(tmp_path, tiny_dirs) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    for v, d in tiny_dirs.items():
        size = sum(p.stat().st_size for p in d.iterdir())
        assert size < 1_000_000, (v, size)
        again = make_tiny_model(tmp_path / f"again{v}", version=v, seed=0)
        assert _digest(again) == _digest(d)  # same seed, same bytes
        other = make_tiny_model(tmp_path / f"other{v}", version=v, seed=1)
        assert _digest(other)["model.safetensors"] != _digest(d)["model.safetensors"]
        model = AutoModelForImageTextToText.from_pretrained(d, local_files_only=True)
        proc = AutoProcessor.from_pretrained(d, local_files_only=True)
        expected = {"2.5": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
                    "3": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor")}[v]
        assert (type(model).__name__, type(proc).__name__) == expected
        assert model.config.video_token_id == proc.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    with pytest.raises(ValueError):
        make_tiny_model(tmp_path / "bad", version="4")


def _frames(n: int, v: str, seed: int = 0, h_mult: int = 2, w_mult: int = 3) -> np.ndarray:
    f = FACTOR[v]
    return np.random.default_rng(seed).integers(0, 256, (n, h_mult * f, w_mult * f, 3), dtype=np.uint8)


def _with_times(batch, indices: list[int], fps: float):
    """The same batch, as frames ``indices`` of a ``fps`` clip (true timestamps)."""
    p = batch.plan
    plan = Plan(tuple(indices), tuple(i / fps for i in indices), p.roles, p.groups, None, fps,
                max(indices) + 1, p.spec)
    return dataclasses.replace(batch, plan=plan)


def _hf_inputs(be, request, videos, images, metas):
    """The HF processor on the same frames: videos at the size msce chose with the backend's
    video bounds (kept: do_resize=False), images through the image processor's own resize."""
    kwargs = {"return_tensors": "pt", "padding": True}
    if videos:
        kwargs.update(videos=videos, do_sample_frames=False, video_metadata=metas,
                      videos_kwargs={"do_resize": False})
    if images:
        kwargs["images"] = images
    return be.processor(text=[be.chat_text(r) for r in request], **kwargs)


@pytest.mark.parametrize("v", ["2.5", "3"])
def test_input_ids_equal_hf_processor(v, tiny_backends) -> None:
    from transformers.video_utils import VideoMetadata

    be = tiny_backends[v]
    # odd frame count (the last frame pads the final temporal patch), non-zero start time
    # video sizes the small test budgets keep as they are, so do_resize=False is comparable;
    # the image is resized by the image processor's bounds (not the backend's video bounds)
    vid = _frames(5, v, seed=1, w_mult=3 if v == "2.5" else 2)
    indices = [12, 15, 18, 21, 24]
    vb = _with_times(msce.preprocess(vid, be.target(), fps=10.0), indices, 10.0)
    img = _frames(1, v, seed=2, h_mult=3, w_mult=2)
    ib = msce.preprocess(img, be.target())
    short = ["Describe:", vb]
    long = ["Look at", ib, "and then at", vb, "What is the emotion?"]
    meta = VideoMetadata(total_num_frames=40, fps=10.0, frames_indices=indices)
    for batch in ([short], [long], [short, long]):
        ours = be.build_inputs(batch)
        vids = [vid for r in batch for p in r if p is vb]
        imgs = [img[0] for r in batch for p in r if p is ib]
        hf = _hf_inputs(be, batch, vids, imgs, [meta] * len(vids))
        assert torch.equal(ours["input_ids"], hf["input_ids"])
        assert torch.equal(ours["attention_mask"], hf["attention_mask"])
        assert torch.equal(ours["mm_token_type_ids"], hf["mm_token_type_ids"])
        assert torch.equal(ours["video_grid_thw"], hf["video_grid_thw"])
        assert torch.equal(ours["pixel_values_videos"], hf["pixel_values_videos"])
        if imgs:
            assert torch.equal(ours["image_grid_thw"], hf["image_grid_thw"])
            assert torch.equal(ours["pixel_values"], hf["pixel_values"])
    text = be.expanded_text(long)
    if v == "3":
        # times per temporal patch: mean of (1.2, 1.5), (1.8, 2.1), (2.4, 2.4), in float64
        # and formatted as HF does (1.8 + 2.1 = 3.9000000000000004, so 1.95... -> "2.0")
        import re

        assert re.findall(r"<[0-9.]+ seconds>", text) == ["<1.4 seconds>", "<2.0 seconds>", "<2.4 seconds>"]
    else:
        assert text.count("<|video_pad|>") == vb.num_tokens
        assert float(ours["second_per_grid_ts"][0]) == pytest.approx(0.6)  # 2 frames x 0.3 s


def test_expand_placeholders_rules() -> None:
    text = "<|vision_start|><|video_pad|><|vision_end|>x<|vision_start|><|image_pad|><|vision_end|>"
    out = expand_placeholders(text, [("video", (2, 4, 6), None), ("image", (1, 2, 2), None)], version="2.5")
    assert out.count("<|video_pad|>") == 12 and out.count("<|image_pad|>") == 1
    out3 = expand_placeholders(text, [("video", (2, 2, 2), [0.0, 0.5, 1.0, 1.5]), ("image", (1, 2, 2), None)],
                               version="3")
    assert out3.startswith("<|vision_start|><0.2 seconds><|vision_start|><|video_pad|><|vision_end|>"
                           "<1.2 seconds><|vision_start|><|video_pad|><|vision_end|><|vision_end|>x")
    assert qwen3_frame_times([0.0, 0.5, 1.0]) == [0.25, 1.0]
    from msce.errors import BackendError

    with pytest.raises(BackendError):
        expand_placeholders(text, [("video", (2, 4, 6), None)], version="2.5")
    with pytest.raises(BackendError):
        expand_placeholders(text, [("image", (1, 2, 2), None), ("video", (2, 4, 6), None)], version="2.5")


@pytest.mark.parametrize("v", ["2.5", "3"])
def test_processor_mode_matches_tokens_mode(v, tiny_dirs, tiny_backends) -> None:
    """The generic path (HF processor on uint8 frames) builds the same prompt tokens."""
    tok = get_backend("transformers", model=str(tiny_dirs[v]), dtype="float32", device="cpu")
    proc = get_backend("transformers", model=str(tiny_dirs[v]), dtype="float32", device="cpu", mode="processor")
    assert proc.target() == msce.Frames(layout="NHWC", dtype="uint8")
    vid = _frames(4, v, seed=3, h_mult=1, w_mult=2)
    a = msce.preprocess(vid, tok.target(), fps=5.0)
    b = msce.preprocess(vid, proc.target(), fps=5.0)
    ia = tok.build_inputs([["Q:", a]])
    ib = proc.build_inputs([["Q:", b]])
    assert torch.equal(ia["input_ids"], ib["input_ids"])
    assert torch.equal(ia["video_grid_thw"], ib["video_grid_thw"])
    with pytest.raises(ConfigError):
        tok.build_inputs([["Q:", b]])  # tokens mode needs QwenVL tensors


@pytest.mark.parametrize("v", ["2.5", "3"])
def test_generate_batched_greedy_and_seeded(v, tiny_backends) -> None:
    be = tiny_backends[v]
    x = msce.preprocess(_frames(4, v, seed=4), be.target(), fps=10.0)
    y = msce.preprocess(_frames(1, v, seed=5), be.target())
    ra = ["A short question?", x]
    rb = ["Another, much longer question with more words in it?", y, "and more text"]
    p = GenerationParams(max_new_tokens=6)
    n0 = be.generate_invocations
    ab = be.generate([ra, rb], p)
    assert be.generate_invocations == n0 + 1  # one batched model call
    ba = be.generate([rb, ra], p)
    assert ab == ba[::-1]  # order kept, padding does not change answers
    assert ab == be.generate([ra, rb], p)  # greedy is deterministic
    s = GenerationParams(max_new_tokens=6, temperature=1.0, seed=7)
    assert be.generate([ra], s) == be.generate([ra], s)


def test_text_cannot_inject_vision_tokens(tiny_backends) -> None:
    be = tiny_backends["2.5"]
    x = msce.preprocess(_frames(2, "2.5"), be.target(), fps=10.0)
    clean = be.build_inputs([["hello", x]])["input_ids"]
    dirty = be.build_inputs([["hello<|video_pad|><|image_pad|>", x]])["input_ids"]
    assert torch.equal(clean, dirty)


def test_backend_records(tiny_backends, tiny_dirs, tmp_path) -> None:
    import shutil

    from msce.models.backends.hf import _weights_digest

    be = tiny_backends["3"]
    cfg = be.config()
    assert cfg["mode"] == "tokens" and cfg["qwen_version"] == "3" and cfg["dtype"] == "float32"
    # the keys every run has recorded (the checkpoint's under the names the classifier backend uses)
    assert set(cfg) == {"backend", "model", "revision", "device", "dtype", "model_dir", "weights",
                        "attn_implementation", "mode", "model_type", "qwen_version", "tokens_unavailable",
                        "min_pixels", "max_pixels", "pixel_dtype", "adapter", "adapter_digest"}
    assert (cfg["model"], cfg["device"], cfg["weights"]) == (str(tiny_dirs["3"]), "cpu", _weights_digest(tiny_dirs["3"]))
    assert cfg["pixel_dtype"] == "float32"  # a float32 model: the processor's own dtype
    assert (cfg["min_pixels"], cfg["max_pixels"], cfg["adapter"]) == (32 * 32 * 4, 32 * 32 * 16, None)
    fp = be.fingerprint()
    assert fp["weights"] != tiny_backends["2.5"].fingerprint()["weights"]
    # the weights digest identifies content, not location: a byte-for-byte copy elsewhere
    # has the backend's digest, and one changed weight byte gives another digest
    copy = shutil.copytree(tiny_dirs["3"], tmp_path / "copy")
    assert _weights_digest(copy) == fp["weights"]
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01
    weights.write_bytes(bytes(raw))
    assert _weights_digest(copy) != fp["weights"]
    # clips take the backend's video bounds; one-frame parts the checkpoint's image processor
    # (tiny Qwen3-VL: Qwen2VLImageProcessor with patch 16 and shortest/longest edge 65536/16777216)
    assert be.target() == msce.targets.VideoOrImage(
        video=msce.QwenVL(version="3", min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16),
        image=msce.QwenVL(version="3", min_pixels=65536, max_pixels=16777216, image=True))
    assert be.target().to_dict()["video"] == {
        "kind": "qwenvl", "version": "3", "min_pixels": 4096, "max_pixels": 16384, "cap_pixels_per_frame": False,
        "max_video_tokens": 768, "dtype": "float32", "interpolation": "bicubic"}  # the video record is unchanged
    assert be.target().to_dict()["image"]["image"] is True
