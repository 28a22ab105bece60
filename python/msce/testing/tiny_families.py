"""Tiny random-weight checkpoints of the non-Qwen-VL families msce has targets for.

Each family is built from its real transformers classes at toy sizes (text hidden 64,
2 layers; vision hidden 32, 2 layers, 112x112 input where the family has a fixed input
size), with a byte-level BPE tokenizer trained here (:func:`msce.testing.tiny.train_tokenizer`)
holding the family's special tokens, a chat template in the family's turn format and the
family's real processor classes (tokenizer + image processor + video processor, and a
Whisper feature extractor for Qwen2.5-Omni), so ``AutoProcessor.from_pretrained(dir)``
and ``AutoModelForImageTextToText.from_pretrained(dir)`` load the directory offline.

=================  =========================================  ===========================
family             model class                                video processor
=================  =========================================  ===========================
llava_next_video   LlavaNextVideoForConditionalGeneration     shortest edge 112, crop 112
video_llava        VideoLlavaForConditionalGeneration         shortest edge 112, crop 112
llava_onevision    LlavaOnevisionForConditionalGeneration     112 x 112
internvl           InternVLForConditionalGeneration           112 x 112
glm4v              Glm4vForConditionalGeneration              Qwen layout, <= 16 patches/frame
glm4v_moe          Glm4vMoeForConditionalGeneration (4.5V)    the same as glm4v
qwen2_5_omni       Qwen2_5OmniThinkerForConditionalGeneration Qwen2-VL, <= 16 patches/frame
smolvlm2           SmolVLMForConditionalGeneration            longest edge 224, then 112 x 112
=================  =========================================  ===========================

SmolVLM2's processor needs the ``num2words`` package (``msce[hf]`` installs it).

Outputs are gibberish. The same ``(family, seed)`` always gives byte-identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from msce.testing.tiny import TINY_MARKER_FILE, greedy_generation, mark_tiny, seeded_model, train_tokenizer

__all__ = ["make_tiny_family", "TINY_FAMILIES"]

TINY_FAMILIES = ("llava_next_video", "video_llava", "llava_onevision", "internvl", "glm4v", "glm4v_moe",
                 "qwen2_5_omni", "smolvlm2")

_SIDE = 112  # input side of the fixed-size vision towers (8 x 8 patches of 14)
_TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=4096)
_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             image_size=_SIDE, patch_size=14)
_PINPOINTS = [[_SIDE, _SIDE], [_SIDE, 2 * _SIDE], [2 * _SIDE, _SIDE], [2 * _SIDE, 2 * _SIDE]]
# Qwen-layout pixel bounds: 4..16 patches of 28 x 28 per frame.
_QWEN_PIXELS = (28 * 28 * 4, 28 * 28 * 16)


def _template(*, prefix: str, open_turn: str, close_turn: str, image: str, video: str, generation: str,
              system: str = "") -> str:
    """A Jinja chat template: ``prefix`` once, then per message ``open_turn`` (a Jinja
    expression over ``message``), its content (strings, or ``text`` / ``image`` / ``video``
    items in order, visual items rendered as ``image`` / ``video``) and ``close_turn``;
    ``generation`` when ``add_generation_prompt``; ``system`` as a default first turn."""
    default_system = ("{%- if messages[0]['role'] != 'system' -%}{{- " + json.dumps(system) + " -}}{%- endif -%}"
                      if system else "")
    return (
        "{{- " + json.dumps(prefix) + " -}}" + default_system
        + "{%- for message in messages -%}"
        "{{- " + open_turn + " -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' -%}{{- " + json.dumps(image) + " -}}"
        "{%- elif item['type'] == 'video' -%}{{- " + json.dumps(video) + " -}}"
        "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{- " + json.dumps(close_turn) + " -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + json.dumps(generation) + " -}}{%- endif -%}"
    )


_VICUNA = dict(prefix="", open_turn="message['role'].upper() + ': '", close_turn=" ", generation="ASSISTANT:")
_CHATML = dict(prefix="", open_turn="'<|im_start|>' + message['role'] + '\\n'", close_turn="<|im_end|>\n",
               generation="<|im_start|>assistant\n")


def _ids(tokenizer, *tokens: str) -> list[int]:
    return [int(tokenizer.convert_tokens_to_ids(t)) for t in tokens]


# -- one builder per family: (tokenizer, config, model class, processor) ------------------
def _llava_next_video():
    from transformers import (LlavaNextImageProcessor, LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration,
                              LlavaNextVideoProcessor, LlavaNextVideoVideoProcessor)

    tok = train_tokenizer(["<pad>", "<s>", "</s>", "<image>", "<video>"], bos_token="<s>", eos_token="</s>",
                          pad_token="<pad>", template=_template(image="<image>\n", video="<video>\n", **_VICUNA))
    pad, bos, eos, image, video = _ids(tok, "<pad>", "<s>", "</s>", "<image>", "<video>")
    config = LlavaNextVideoConfig(
        vision_config=dict(_CLIP, model_type="clip_vision_model", projection_dim=32),
        text_config=dict(_TEXT, model_type="llama", vocab_size=len(tok), pad_token_id=pad, bos_token_id=bos,
                         eos_token_id=eos),
        image_token_index=image, video_token_index=video, image_grid_pinpoints=_PINPOINTS,
        vision_feature_layer=-2, vision_feature_select_strategy="default", spatial_pool_stride=2,
        image_seq_length=(_SIDE // 14) ** 2, video_seq_length=(_SIDE // 28) ** 2, tie_word_embeddings=False)
    crop = {"height": _SIDE, "width": _SIDE}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": _SIDE}, crop_size=crop),
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": _SIDE}, crop_size=crop,
                                                image_grid_pinpoints=_PINPOINTS),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=tok.chat_template)
    return tok, config, LlavaNextVideoForConditionalGeneration, processor, [eos, pad]


def _video_llava():
    from transformers import (VideoLlavaConfig, VideoLlavaForConditionalGeneration, VideoLlavaImageProcessor,
                              VideoLlavaProcessor, VideoLlavaVideoProcessor)

    tok = train_tokenizer(["<pad>", "<s>", "</s>", "<image>", "<video>"], bos_token="<s>", eos_token="</s>",
                          pad_token="<pad>", template=_template(image="<image>\n", video="<video>\n", **_VICUNA))
    pad, bos, eos, image, video = _ids(tok, "<pad>", "<s>", "</s>", "<image>", "<video>")
    per_frame = (_SIDE // 14) ** 2 + 1
    config = VideoLlavaConfig(
        vision_config=dict(_CLIP, model_type="clip_vision_model", projection_dim=32),
        text_config=dict(_TEXT, model_type="llama", vocab_size=len(tok), pad_token_id=pad, bos_token_id=bos,
                         eos_token_id=eos),
        image_token_index=image, video_token_index=video, vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=per_frame - 1, video_seq_length=per_frame * 8,
        tie_word_embeddings=False)
    kw = dict(size={"shortest_edge": _SIDE}, crop_size={"height": _SIDE, "width": _SIDE})
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**kw), video_processor=VideoLlavaVideoProcessor(**kw),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=tok.chat_template)
    return tok, config, VideoLlavaForConditionalGeneration, processor, [eos, pad]


def _chatml_tokenizer(extra: list[str], named: dict[str, str] | None = None):
    image, video = (extra[0], extra[1]) if len(extra) >= 2 else ("<image>", "<video>")
    return train_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra], eos_token="<|im_end|>",
                           pad_token="<|endoftext|>", named_tokens=named,
                           template=_template(image=image + "\n", video=video + "\n", **_CHATML))


def _llava_onevision():
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    tok = _chatml_tokenizer(["<image>", "<video>"])
    pad, eos, image, video = _ids(tok, "<|endoftext|>", "<|im_end|>", "<image>", "<video>")
    config = LlavaOnevisionConfig(
        vision_config=dict(_CLIP, model_type="siglip_vision_model"),
        text_config=dict(_TEXT, model_type="qwen2", vocab_size=len(tok), pad_token_id=pad, eos_token_id=eos),
        image_token_index=image, video_token_index=video, image_grid_pinpoints=_PINPOINTS,
        vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=False)
    size = {"height": _SIDE, "width": _SIDE}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=_PINPOINTS),
        video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=tok,
        num_image_tokens=(_SIDE // 14) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=tok.chat_template)
    return tok, config, LlavaOnevisionForConditionalGeneration, processor, [eos, pad]


def _internvl():
    from transformers import (GotOcr2ImageProcessor, InternVLConfig, InternVLForConditionalGeneration,
                              InternVLProcessor, InternVLVideoProcessor)

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = _chatml_tokenizer(["<IMG_CONTEXT>", "<video>", "<img>", "</img>"], named)
    pad, eos, context = _ids(tok, "<|endoftext|>", "<|im_end|>", "<IMG_CONTEXT>")
    seq = (_SIDE // 14) ** 2 // 4  # downsample ratio 0.5 -> a quarter of the patches
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=[_SIDE, _SIDE], patch_size=[14, 14]),
        text_config=dict(_TEXT, model_type="qwen2", vocab_size=len(tok), pad_token_id=pad, eos_token_id=eos),
        image_token_id=context, image_seq_length=seq, downsample_ratio=0.5, vision_feature_layer=-1,
        vision_feature_select_strategy="default", tie_word_embeddings=False)
    size = {"height": _SIDE, "width": _SIDE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size), tokenizer=tok, image_seq_length=seq,
        chat_template=tok.chat_template)
    return tok, config, InternVLForConditionalGeneration, processor, [eos, pad]


def _glm4v(moe: bool = False):
    """GLM-4.1V, or with ``moe`` GLM-4.5V (Glm4vMoe: the same vision tower and processor, a
    mixture-of-experts text model: 4 routed experts, 2 per token, 1 shared, layer 0 dense)."""
    from transformers import (Glm4vConfig, Glm4vForConditionalGeneration, Glm4vImageProcessor, Glm4vMoeConfig,
                              Glm4vMoeForConditionalGeneration, Glm4vProcessor, Glm4vVideoProcessor)

    specials = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
                "<|image|>", "<|video|>"]
    template = _template(prefix="[gMASK]<sop>", open_turn="'<|' + message['role'] + '|>\\n'", close_turn="",
                         image="<|begin_of_image|><|image|><|end_of_image|>",
                         video="<|begin_of_video|><|video|><|end_of_video|>", generation="<|assistant|>\n")
    tok = train_tokenizer(specials, eos_token="<|endoftext|>", pad_token="<|endoftext|>", template=template)
    pad, user, boi, eoi, bov, eov, image, video = _ids(tok, "<|endoftext|>", "<|user|>", "<|begin_of_image|>",
                                                       "<|end_of_image|>", "<|begin_of_video|>",
                                                       "<|end_of_video|>", "<|image|>", "<|video|>")
    text = dict(_TEXT, vocab_size=len(tok), pad_token_id=pad, eos_token_id=[pad, user], partial_rotary_factor=0.5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2],
                                 "partial_rotary_factor": 0.5})
    if moe:
        text.update(moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                    first_k_dense_replace=1, n_group=1, topk_group=1)
    config = (Glm4vMoeConfig if moe else Glm4vConfig)(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, temporal_patch_size=2, spatial_merge_size=2, image_size=_SIDE),
        text_config=text,
        image_token_id=image, video_token_id=video, image_start_token_id=boi, image_end_token_id=eoi,
        video_start_token_id=bov, video_end_token_id=eov, tie_word_embeddings=False)
    lo, hi = _QWEN_PIXELS
    processor = Glm4vProcessor(
        image_processor=Glm4vImageProcessor(size={"shortest_edge": lo, "longest_edge": hi}, patch_size=14,
                                            temporal_patch_size=2, merge_size=2),
        video_processor=Glm4vVideoProcessor(size={"shortest_edge": lo, "longest_edge": hi * 8}, patch_size=14,
                                            temporal_patch_size=2, merge_size=2),
        tokenizer=tok, chat_template=template)
    return tok, config, Glm4vMoeForConditionalGeneration if moe else Glm4vForConditionalGeneration, processor, [pad, user]


def _qwen2_5_omni():
    from transformers import (Qwen2_5OmniProcessor, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor, WhisperFeatureExtractor)

    named = {"image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "audio_token": "<|AUDIO|>",
             "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
             "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}
    tok = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
         "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>"],
        eos_token="<|im_end|>", pad_token="<|endoftext|>", named_tokens=named,
        template=_template(image="<|vision_bos|><|IMAGE|><|vision_eos|>", video="<|vision_bos|><|VIDEO|><|vision_eos|>",
                           system="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", **_CHATML))
    pad, eos, audio, abos, aeos, image, video, vbos, veos = _ids(
        tok, "<|endoftext|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>",
        "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>")
    config = Qwen2_5OmniThinkerConfig(
        audio_config=dict(num_mel_bins=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          d_model=32, output_dim=64, n_window=4, max_source_positions=64),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        text_config=dict(_TEXT, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                      "mrope_section": [2, 3, 3]}),
        audio_token_index=audio, image_token_index=image, video_token_index=video, audio_start_token_id=abos,
        audio_end_token_id=aeos, vision_start_token_id=vbos, vision_end_token_id=veos, pad_token_id=pad)
    lo, hi = _QWEN_PIXELS
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=lo, max_pixels=hi),
        video_processor=Qwen2VLVideoProcessor(size={"shortest_edge": lo, "longest_edge": hi},
                                              cap_pixels_per_frame=False),
        feature_extractor=WhisperFeatureExtractor(feature_size=32), tokenizer=tok, chat_template=tok.chat_template)
    return tok, config, Qwen2_5OmniThinkerForConditionalGeneration, processor, [eos, pad]


def _smolvlm2():
    import importlib.util

    if importlib.util.find_spec("num2words") is None:
        from msce.errors import ConfigError

        raise ConfigError("make_tiny_family('smolvlm2') needs the num2words package, which transformers' "
                          "SmolVLMProcessor imports (pip install 'msce[hf]')")
    from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor,
                              SmolVLMProcessor, SmolVLMVideoProcessor)

    named = {"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
             "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
             "video_token": "<video>"}
    # SmolVLM's turn format: "<|im_start|>User: ...<end_of_utterance>\nAssistant:"
    template = _template(prefix="<|im_start|>", open_turn="message['role'] | capitalize + ': '",
                         close_turn="<end_of_utterance>\n", image="<image>", video="<video>",
                         generation="Assistant:")
    tok = train_tokenizer(["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>",
                           "<fake_token_around_image>", "<global-img>", "<video>"],
                          eos_token="<end_of_utterance>", pad_token="<|endoftext|>", named_tokens=named,
                          template=template)
    pad, eos, image = _ids(tok, "<|endoftext|>", "<end_of_utterance>", "<image>")
    scale = 2
    seq = (_SIDE // 14) ** 2 // scale ** 2  # pixel shuffle: scale^2 patches per token
    config = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=_SIDE, patch_size=14),
        text_config=dict(_TEXT, model_type="llama", vocab_size=len(tok), pad_token_id=pad, eos_token_id=eos),
        image_token_id=image, scale_factor=scale, pad_token_id=pad, tie_word_embeddings=False)
    # the real checkpoints' video path at toy sizes: longest edge 2 x 112 first, then 112 x 112
    sampling = {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 2 * _SIDE}}
    kw = dict(size={"longest_edge": 2 * _SIDE}, max_image_size={"longest_edge": _SIDE}, resample=1)
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **kw),
        video_processor=SmolVLMVideoProcessor(video_sampling=sampling, **kw), tokenizer=tok,
        image_seq_len=seq, chat_template=template)
    return tok, config, SmolVLMForConditionalGeneration, processor, [eos, pad]


_BUILDERS: dict[str, Callable[[], tuple[Any, Any, Any, Any, list[int]]]] = {
    "llava_next_video": _llava_next_video,
    "video_llava": _video_llava,
    "llava_onevision": _llava_onevision,
    "internvl": _internvl,
    "glm4v": _glm4v,
    "glm4v_moe": lambda: _glm4v(moe=True),
    "qwen2_5_omni": _qwen2_5_omni,
    "smolvlm2": _smolvlm2,
}


def make_tiny_family(directory: str | os.PathLike, family: str, seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint + processor of ``family`` to ``directory``.

    Args:
        directory: output folder (created; existing files of the same names are replaced).
        family: one of :data:`TINY_FAMILIES` (model types as in ``msce.target_for``).
        seed: weight seed; the same ``(family, seed)`` always gives byte-identical files.

    Returns:
        The directory, loadable offline with ``AutoProcessor.from_pretrained`` and
        ``AutoModelForImageTextToText.from_pretrained`` (and the family's own class).
    """
    if family not in _BUILDERS:
        from msce.errors import ConfigError

        raise ConfigError(f"family must be one of {TINY_FAMILIES}, got {family!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, config, cls, processor, eos_ids = _BUILDERS[family]()
    model = seeded_model(cls, config, seed)
    greedy_generation(model, eos_ids, tokenizer.pad_token_id)
    mark_tiny(model, f"msce-tiny-{family.replace('_', '-')}")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / TINY_MARKER_FILE).write_text(json.dumps({"family": family, "seed": seed}, indent=2) + "\n")
    return out
