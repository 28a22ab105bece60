"""Tokens mode of the transformers backend for every family with a tiny checkpoint
(``msce.testing.make_tiny_family``: LLaVA-NeXT-Video, Video-LLaVA, LLaVA-OneVision,
InternVL, GLM-4.1V, GLM-4.5V, Qwen2.5-Omni's thinker, SmolVLM2).

The reference is each family's own HF processor, called on the same uint8 frames and the
same chat text: ``processor(text=[chat], videos=[frames], images=[...])``. msce's inputs
(from its own targets, placeholder expansion and layout) must equal it key by key: the same
keys, ``input_ids`` / ``attention_mask`` equal, every tensor with max abs difference 0. Then
greedy generation through tokens mode and processor mode must give the same text.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import msce
from msce.errors import ConfigError
from msce.models.backends import GenerationParams, get_backend
from msce.plan import Plan
from msce.testing import TINY_FAMILIES, make_tiny_family

from _deps import require_module

require_module("transformers", "pip install 'msce[hf]'")
require_module("num2words", "pip install 'msce[hf]'")  # SmolVLMProcessor imports it

FPS = 10.0
INDICES = [5, 15, 25, 35, 45]  # 1 s apart, starting at 0.5 s: GLM writes seconds 0, 2, 4
CLIP_FRAMES = 61  # the clip the indices come from: 6.1 s at FPS (SmolVLM writes its whole seconds)
QWEN = {"2.5": "qwen2_5_vl", "3": "qwen3_vl"}
KEYFRAMES_ONLY = ("smolvlm2", *QWEN.values())


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens_families")
    return {f: make_tiny_family(root / f, f, seed=0) for f in TINY_FAMILIES}


@pytest.fixture(scope="module")
def backends(family_dirs):
    out = {}
    for f, d in family_dirs.items():
        out[f] = {mode: get_backend("transformers", model=str(d), dtype="float32", device="cpu", mode=mode)
                  for mode in ("auto", "processor")}
    return out


@pytest.fixture(scope="module")
def qwen_backends(tmp_path_factory):
    """Tiny Qwen2.5-VL and Qwen3-VL with video pixel bounds set on the backend (which images
    must not take: they follow the image processor)."""
    from msce.testing import make_tiny_model

    root = tmp_path_factory.mktemp("tokens_qwen")
    out = {}
    for v in QWEN:
        d = make_tiny_model(root / v, version=v, seed=0)
        out[v] = {mode: get_backend("transformers", model=str(d), dtype="float32", device="cpu", mode=mode,
                                    min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16)
                  for mode in ("auto", "processor")}
    return out


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


VIDEO = _frames(5, 60, 80, seed=1)  # odd count: the Qwen-layout families repeat the last frame
IMAGES = [_frames(1, 90, 70, seed=2), _frames(1, 40, 100, seed=3)]  # portrait and wide (anyres grids)


def _video_part(target) -> msce.FrameBatch:
    """VIDEO as frames INDICES of a CLIP_FRAMES-frame FPS clip (true timestamps, indices and metadata)."""
    batch = msce.preprocess(VIDEO, target, fps=FPS)
    p = batch.plan
    plan = Plan(tuple(INDICES), tuple(i / FPS for i in INDICES), p.roles, p.groups, None, FPS, CLIP_FRAMES,
                p.spec)
    meta = dataclasses.replace(batch.metadata, num_frames=CLIP_FRAMES, header_num_frames=CLIP_FRAMES,
                               duration=CLIP_FRAMES / FPS)
    return dataclasses.replace(batch, plan=plan, metadata=meta)


def _requests(target, family: str = "") -> tuple[dict[str, list], dict[int, np.ndarray]]:
    """Named batches of requests with parts built with ``target``, and each part's uint8 frames."""
    v = _video_part(target)
    a, b = (msce.preprocess(x, target) for x in IMAGES)
    raw = {id(v): VIDEO, id(a): IMAGES[0][0], id(b): IMAGES[1][0]}
    # MSCE stage 2: keyframes as interleaved images, then a video-bearing request in the same batch
    stage2 = [["FrameID 1:", a, "FrameID 2:", b, "Emotion?"], ["Clip:", v, "then", a, "Emotion?"]]
    if family in KEYFRAMES_ONLY:
        # SmolVLM's processor returns images and videos under one key (pixel_values): no request
        # holds both; Qwen-VL videos are checked in test_hf_backend.py (msce's second_per_grid_ts
        # follows the frames' clock, not HF's sampled fps). Stage 2 proper: keyframe requests
        # of different image counts in one batch
        stage2 = [stage2[0], ["FrameID 1:", b, "Emotion?"]]
    return {
        "video": [["Describe the face.", v]],
        "image": [["Look:", a, "Emotion?"]],
        "stage2": stage2,
    }, raw


def _hf_reference(be, requests, raw) -> dict:
    """The family's HF processor on the same uint8 frames and chat texts."""
    from transformers.video_utils import VideoMetadata

    texts = [be.chat_text(r) for r in requests]
    parts = [p for r in requests for p in r if not isinstance(p, str)]
    images = [raw[id(p)] for p in parts if len(p.indices) == 1]
    videos = [raw[id(p)] for p in parts if len(p.indices) > 1]
    kwargs = {"padding": True, "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
        if be.model_type == "smolvlm":  # the processor counts images per text sample
            kwargs["images"] = [[raw[id(p)] for p in r if not isinstance(p, str)] for r in requests]
    if videos:
        kwargs.update(videos=videos, do_sample_frames=False)
        if be.model_type in ("glm4v", "glm4v_moe", "smolvlm"):  # the true clock for the per-frame time text
            kwargs["video_metadata"] = [VideoMetadata(total_num_frames=CLIP_FRAMES, fps=FPS, duration=CLIP_FRAMES / FPS,
                                                      frames_indices=list(INDICES))] * len(videos)
        if be.model_type.startswith("qwen2_5_omni"):  # video_second_per_grid = 2 / fps
            kwargs["fps"] = 1.0 / ((INDICES[-1] - INDICES[0]) / FPS / (len(INDICES) - 1))
    return dict(be.processor(text=texts, **kwargs))


def _assert_same(ours: dict, want: dict) -> None:
    assert set(ours) == set(want), (sorted(ours), sorted(want))
    for k, w in want.items():
        o = ours[k]
        assert isinstance(o, torch.Tensor) and o.shape == w.shape and o.dtype == w.dtype, (k, o, w)
        if o.is_floating_point():
            assert (o - w).abs().max().item() == 0.0, k
        else:
            assert torch.equal(o, w), k


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_auto_mode_is_tokens_with_the_family_target(backends, family):
    be = backends[family]["auto"]
    assert be.mode == "tokens" and be.config()["model_type"] == be.model_type
    t = be.target()
    assert isinstance(t, msce.targets.VideoOrImage)
    assert t.video == msce.target_for(be.processor)  # the exact video path


@pytest.mark.parametrize("kind", ["video", "image", "stage2"])
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_inputs_equal_hf_processor(backends, family, kind):
    be = backends[family]["auto"]
    batches, raw = _requests(be.target(), family)
    _assert_same(be.build_inputs(batches[kind]), _hf_reference(be, batches[kind], raw))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_greedy_text_equal_in_tokens_and_processor_modes(backends, family):
    params = GenerationParams(max_new_tokens=5)
    tok, proc = backends[family]["auto"], backends[family]["processor"]
    a_req, b_req = _requests(tok.target(), family)[0], _requests(proc.target(), family)[0]
    batches = {"keyframes+video": lambda r: [r["stage2"][0], r["video"][0]], "stage2": lambda r: r["stage2"]}
    if family in ("glm4v", "glm4v_moe"):
        # transformers' GLM-4.1V (and 4.5V) counts a video's tokens as image tokens: a request holding an
        # image and a video fails in HF itself (both modes); msce keeps such requests apart
        del batches["stage2"]
    for name, pick in batches.items():
        a = tok.generate(pick(a_req), params)
        b = proc.generate(pick(b_req), params)
        assert a == b and all(isinstance(x, str) for x in a), (name, a, b)


@pytest.mark.parametrize("family", ["llava_next_video", "llava_onevision"])
def test_anyres_image_counts_equal_hf_over_many_sizes(family_dirs, family):
    """msce's anyres token count against the HF processor's own count, for image sizes from
    narrow strips to wide ones (best grid, letterbox trimming, OneVision's tile cap)."""
    from transformers import AutoProcessor

    from msce.models.backends._llava_family import anyres_features, best_resolution

    proc = AutoProcessor.from_pretrained(family_dirs[family], local_files_only=True)
    side = 112
    # a real checkpoint's grid (up to 6 x 6 tiles, as LLaVA-OneVision's), so the 9-tile cap applies
    pins = [[side * i, side * j] for i in range(1, 7) for j in range(1, 7)]
    proc.image_processor.image_grid_pinpoints = pins
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in rng.integers(8, 900, (150, 2))] + [(112, 112), (224, 112), (50, 400)]
    for h, w in sizes:
        want = proc._get_number_of_features(h, w, side, side)
        bh, bw = best_resolution(h, w, pins)
        if family == "llava_onevision":
            s = int(proc.num_image_tokens ** 0.5)
            feats, rows = anyres_features(h, w, s, s, bh // side, bw // side, max_tiles=9)
            got = feats + rows + proc.num_image_tokens
        else:
            s = side // proc.patch_size
            feats, rows = anyres_features(h, w, s, s, bh // side, bw // side)
            got = feats + rows + s * s + proc.num_additional_image_tokens
        assert got == want, (h, w)


def test_processor_beyond_msce_targets_falls_back_in_auto_and_refuses_tokens(family_dirs, tmp_path):
    """A video processor set to a filter msce does not implement (nearest): auto mode runs it
    in processor mode and says why; tokens mode refuses it by name."""
    import json
    import shutil

    d = shutil.copytree(family_dirs["internvl"], tmp_path / "internvl-nearest")
    cfg = json.loads((d / "processor_config.json").read_text())
    cfg["video_processor"]["resample"] = 0
    (d / "processor_config.json").write_text(json.dumps(cfg))
    be = get_backend("transformers", model=str(d), dtype="float32", device="cpu")
    assert be.mode == "processor" and "resample" in be.config()["tokens_unavailable"]
    with pytest.raises(ConfigError, match="resample"):
        get_backend("transformers", model=str(d), dtype="float32", device="cpu", mode="tokens")


def test_unsupported_model_type_names_the_supported_ones():
    from msce.models.backends._family import TOKEN_MODEL_TYPES, family_for

    with pytest.raises(ConfigError) as err:
        family_for("idefics3", None, None)
    for name in ("glm4v", "glm4v_moe", "internvl", "llava_next_video", "llava_onevision", "qwen2_5_omni_thinker",
                 "video_llava", "qwen2_5_vl", "smolvlm"):
        assert name in TOKEN_MODEL_TYPES and name in str(err.value)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_strategies_end_to_end_match_processor_mode(backends, clips, family):
    """Sparse (a decoded clip as one video) and MSCE (gap clips, then keyframes as images)
    from a real file: tokens mode answers as processor mode does."""
    from msce.labels import DFEW
    from msce.models.strategies import MSCE, Sparse

    ans, s1 = GenerationParams(max_new_tokens=3), GenerationParams(max_new_tokens=4)
    for make in (lambda: Sparse(fps=1.0, params=ans), lambda: MSCE(1, 4, params=ans, stage1_params=s1)):
        a = make().run(str(clips["main"]), DFEW, backends[family]["auto"])
        b = make().run(str(clips["main"]), DFEW, backends[family]["processor"])
        assert a.raw_answer == b.raw_answer and a.model_calls == b.model_calls >= 1
        assert a.frame_indices == b.frame_indices


def test_smolvlm_processor_mode_gets_the_real_clock(backends, monkeypatch):
    """Processor mode passes SmolVLMProcessor the clip's VideoMetadata: no "assuming 24 fps"
    warning, and the prompt's frame times and duration are the frames' real times
    (INDICES / FPS) and the clip's length, in both modes."""
    from transformers.models.smolvlm import processing_smolvlm

    warned: list[str] = []
    monkeypatch.setattr(processing_smolvlm.logger, "warning_once", lambda msg, *a, **k: warned.append(msg))
    want = [f"Frame from {int(i / FPS) // 60:02d}:{int(i / FPS) % 60:02d}:" for i in INDICES]
    for mode in ("processor", "auto"):
        be = backends["smolvlm2"][mode]
        text = be.tokenizer.decode(be.build_inputs(_requests(be.target(), "smolvlm2")[0]["video"])["input_ids"][0])
        assert [line[:len(want[0])] for line in text.split("\n") if line.startswith("Frame from")] == want, mode
        assert "series of five frames from a 0:00:06 [H:MM:SS] video" in text, mode
    assert warned == []
    # an unsplit keyframe batch of two requests goes through the processor nested per request
    proc = backends["smolvlm2"]["processor"]
    inputs = proc.build_inputs(_requests(proc.target(), "smolvlm2")[0]["stage2"])
    assert tuple(inputs["pixel_values"].shape[:2]) == (2, 2)
    assert inputs["pixel_attention_mask"][1, 1].sum().item() == 0  # the second request's padding image


def test_smolvlm_request_with_images_and_videos_is_refused(backends):
    from msce.errors import BackendError

    be = backends["smolvlm2"]["auto"]
    reqs = _requests(be.target(), "")[0]
    with pytest.raises(BackendError, match="images and videos"):
        be.build_inputs(reqs["stage2"][1:])
    # generate() keeps keyframe requests and clip requests in separate model batches
    assert be.family.batch_key(reqs["image"][0]) != be.family.batch_key(reqs["video"][0])


@pytest.mark.parametrize("kind", ["image", "stage2"])
@pytest.mark.parametrize("version", list(QWEN))
def test_qwen_image_parts_equal_hf_processor(qwen_backends, version, kind):
    """Keyframes sent as images go through the checkpoint's image processor settings (not the
    backend's video min/max_pixels): inputs equal the HF processor's, greedy text equals
    processor mode's, and a 720p keyframe gets the image processor's smart_resize size."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    be, proc = qwen_backends[version]["auto"], qwen_backends[version]["processor"]
    assert be.mode == "tokens"
    batches, raw = _requests(be.target(), QWEN[version])
    _assert_same(be.build_inputs(batches[kind]), _hf_reference(be, batches[kind], raw))
    params = GenerationParams(max_new_tokens=5)
    assert be.generate(batches[kind], params) == proc.generate(_requests(proc.target(), QWEN[version])[0][kind],
                                                                params)
    ip = be.processor.image_processor
    factor = ip.patch_size * ip.merge_size
    want = smart_resize(720, 1280, factor, ip.size["shortest_edge"], ip.size["longest_edge"])
    assert be.target().output_size(1, 720, 1280) == tuple(want)
    assert be.target().output_size(5, 720, 1280) == be.target().video.output_size(5, 720, 1280) != tuple(want)


def test_smolvlm_split_images_equal_hf_processor(family_dirs, tmp_path):
    """The released checkpoints split images into max_image_size tiles (do_image_splitting):
    tile rows/columns text and tensors equal the HF processor's for an image and a keyframe batch."""
    import json
    import shutil

    d = shutil.copytree(family_dirs["smolvlm2"], tmp_path / "smolvlm2-split")
    cfg = json.loads((d / "processor_config.json").read_text())
    cfg["image_processor"]["do_image_splitting"] = True
    (d / "processor_config.json").write_text(json.dumps(cfg))
    be = get_backend("transformers", model=str(d), dtype="float32", device="cpu")
    assert be.mode == "tokens"
    batches, raw = _requests(be.target(), "smolvlm2")
    for kind in ("image", "stage2"):
        ours = be.build_inputs(batches[kind])
        _assert_same(ours, _hf_reference(be, batches[kind], raw))
        assert "<row_1_col_1>" in be.tokenizer.decode(ours["input_ids"][0])


@pytest.mark.parametrize("version", list(QWEN))
def test_bfloat16_qwen_model_gets_bfloat16_pixels_equal_to_its_own_cast(tmp_path, version):
    """A Qwen-VL model run in bfloat16 casts pixel_values to its vision tower's dtype before any
    arithmetic: tokens mode then makes the tensors in bfloat16 (pixel_dtype="auto"), equal to the
    float32 tensors cast, and generation is unchanged; float32 can still be forced."""
    from msce.testing import make_tiny_model

    d = make_tiny_model(tmp_path / version, version=version, seed=0)
    kw = dict(model=str(d), dtype="bfloat16", device="cpu", min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16)
    auto = get_backend("transformers", **kw)
    f32 = get_backend("transformers", pixel_dtype="float32", **kw)
    assert auto.target().video.dtype == auto.target().image.dtype == "bfloat16"
    assert f32.target().video.dtype == f32.target().image.dtype == "float32"
    assert (auto.config()["pixel_dtype"], f32.config()["pixel_dtype"]) == ("bfloat16", "float32")
    ours, _ = _requests(auto.target(), QWEN[version])
    ref, _ = _requests(f32.target(), QWEN[version])
    params = GenerationParams(max_new_tokens=5)
    for kind in ours:
        a, b = auto.build_inputs(ours[kind]), f32.build_inputs(ref[kind])
        assert set(a) == set(b)
        for k in b:
            if b[k].dtype == torch.float32 and k.startswith("pixel_values"):
                assert a[k].dtype == torch.bfloat16 and torch.equal(a[k], b[k].to(torch.bfloat16)), k
            else:
                assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        assert auto.generate(ours[kind], params) == f32.generate(ref[kind], params)


def test_pixel_dtype_is_refused_where_the_model_would_not_cast(family_dirs):
    """Families whose models are not known to cast pixel values first keep float32 on auto and
    refuse a forced bfloat16 with the reason."""
    be = get_backend("transformers", model=str(family_dirs["llava_next_video"]), dtype="bfloat16", device="cpu")
    assert be.mode == "tokens" and be.config()["pixel_dtype"] == "float32"
    with pytest.raises(ConfigError, match="pixel_dtype='bfloat16' needs tokens mode on a family"):
        get_backend("transformers", model=str(family_dirs["llava_next_video"]), dtype="bfloat16", device="cpu",
                    pixel_dtype="bfloat16")
    with pytest.raises(ConfigError, match="pixel_dtype must be"):
        get_backend("transformers", model=str(family_dirs["llava_next_video"]), pixel_dtype="int8")
