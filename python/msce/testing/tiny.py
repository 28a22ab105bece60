"""Build tiny random-weight Qwen2.5-VL / Qwen3-VL checkpoints offline.

The checkpoint has the real architecture classes (``Qwen2_5_VLForConditionalGeneration``,
``Qwen3VLForConditionalGeneration``) at toy sizes (text hidden 64, 2 layers, 4 heads;
vision depth 2, hidden 32), a byte-level BPE tokenizer trained here on a small built-in
corpus, and the real Qwen processor classes, so the directory behaves like a hub
checkpoint for every code path that does not care what the weights mean: chat
templates, placeholder expansion, batched ``generate``, LoRA. Outputs are gibberish.

The same ``(version, seed)`` always gives byte-identical weights and tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["make_tiny_model", "TINY_VERSIONS", "SPECIAL_TOKENS", "chat_template", "train_tokenizer",
           "TINY_CONFIG_KEY", "TINY_MARKER_FILE", "mark_tiny", "tiny_model_name"]

#: The key every msce tiny checkpoint's ``config.json`` carries (``true``), beside
#: ``msce_tiny_name`` (the checkpoint's name, e.g. ``msce-tiny-qwen2.5-vl``).
TINY_CONFIG_KEY = "msce_tiny"
#: The file beside it that records how the checkpoint was built (version or family, seed).
TINY_MARKER_FILE = "msce_tiny.json"
# Hub checkpoints with random weights made for tests are named so (hf-internal-testing/tiny-random-...).
_RANDOM_NAME_PARTS = ("tiny-random", "tiny_random")

TINY_VERSIONS = ("2.5", "3")

# Qwen's special tokens, in Qwen's own relative order; ids here are 0..N-1.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

_VOCAB_SIZE = 384

# Training text for the toy tokenizer: words the prompts and labels use, so that
# rendered prompts tokenize into a sensible number of pieces.
_CORPUS = """
You are a helpful assistant. Watch the video of a person and classify the emotion.
What is the emotion of the person in the video? Answer with one word from the choices.
Analyze the following sequence of sparse keyframes and the detailed motion descriptions
for the gaps between them. FrameID 1, Motion, Question, Emotion Labels choices.
Describe the facial movements and micro-expressions across these frames: eyebrows raise,
lips press, mouth corners turn up or down, eyes widen, nose wrinkles, jaw drops, the gaze
shifts, cheeks lift, the forehead frowns, a brief smile appears and fades.
happy happiness sad sadness neutral angry anger surprise surprised disgust disgusted fear
fearful afraid scared contempt anxiety anxious helplessness helpless disappointment
disappointed joy calm worried nervous sorrow furious astonished scorn powerless
The answer is happy. The answer is sad. The person looks angry. She seems surprised.
He appears neutral and calm. They look disgusted. It shows fear. Emotion: happiness.
seconds 0.0 0.5 1.0 1.5 2.0 2.5 3.0 4.0 5.0 one two three four five six seven eight nine ten
0 1 2 3 4 5 6 7 8 9 , . : ; ! ? ( ) [ ] { } " ' - / <  > =
"""


def chat_template(version: str) -> str:
    """A Jinja chat template with Qwen's turn markers and vision placeholders.

    Content items may be strings or dicts with ``type`` ``text`` / ``image`` / ``video``.
    Qwen2.5-VL-style templates add a default system turn; Qwen3-VL-style ones do not.
    """
    default_system = (
        "{%- if messages[0]['role'] != 'system' -%}"
        "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
        "{%- endif -%}"
        if version == "2.5"
        else ""
    )
    return (
        default_system
        + "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
        "{%- elif item['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
        "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


def train_tokenizer(special_tokens, *, eos_token: str, pad_token: str, template: str,
                    bos_token: str | None = None, named_tokens: dict[str, str] | None = None):
    """A byte-level BPE tokenizer trained here on the built-in corpus, as
    ``PreTrainedTokenizerFast``: ``special_tokens`` get ids ``0..N-1`` in order, the
    vocabulary is ``_VOCAB_SIZE`` entries, ``template`` is its chat template and
    ``named_tokens`` become attributes (``tokenizer.<name>`` / ``<name>_id``), as
    processors such as InternVL's expect. Deterministic: no randomness in training."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special_tokens = list(special_tokens)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    named = dict(named_tokens or {})
    kwargs = {"extra_special_tokens": named} if named else {}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=None,
        additional_special_tokens=[t for t in special_tokens
                                   if t not in (pad_token, bos_token) and t not in named.values()],
        model_max_length=32768,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        **kwargs,
    )
    fast.chat_template = template
    return fast


def _build_tokenizer(version: str):
    return train_tokenizer(SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                           template=chat_template(version))


def _ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def _build_config(version: str, ids: dict[str, int], vocab_size: int):
    common_text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    token_ids = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if version == "2.5":
        from transformers import Qwen2_5_VLConfig

        text = dict(common_text, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                                   "mrope_section": [2, 3, 3]})
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                      patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=56,
                      fullatt_block_indexes=[1], tokens_per_second=2)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **token_ids)
    from transformers import Qwen3VLConfig

    text = dict(common_text, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                                             "mrope_section": [2, 3, 3], "mrope_interleaved": True})
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  patch_size=16, temporal_patch_size=2, spatial_merge_size=2, num_position_embeddings=64,
                  deepstack_visual_indexes=[0])
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **token_ids)


def _build_processor(version: str, tokenizer):
    if version == "2.5":
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        image = Qwen2VLImageProcessor(patch_size=14, temporal_patch_size=2, merge_size=2)
        video = Qwen2VLVideoProcessor(patch_size=14, temporal_patch_size=2, merge_size=2,
                                      cap_pixels_per_frame=False)
        return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                                   chat_template=tokenizer.chat_template)
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    half = [0.5, 0.5, 0.5]
    image = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=half,
                                  image_std=half, size={"shortest_edge": 65536, "longest_edge": 16777216})
    video = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=half,
                                  image_std=half, cap_pixels_per_frame=False)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                            chat_template=tokenizer.chat_template)


def seeded_model(cls: Any, config: Any, seed: int) -> Any:
    """``cls(config)`` with its weights drawn under ``torch.manual_seed(seed)`` (the global
    RNG state restored afterwards), in eval mode."""
    import torch

    saved_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = cls(config)
    finally:
        torch.random.set_rng_state(saved_rng)
    model.eval()
    return model


def greedy_generation(model: Any, eos_ids: Any, pad_id: int | None) -> None:
    """Set a tiny model's generation config to greedy decoding with these EOS and pad ids."""
    gen = model.generation_config
    gen.eos_token_id = eos_ids
    gen.pad_token_id = pad_id
    gen.do_sample = False
    gen.temperature = None
    gen.top_p = None
    gen.top_k = None


def mark_tiny(model: Any, name: str) -> None:
    """Mark a tiny random-weight model before ``save_pretrained``: its config gets
    ``msce_tiny: true`` and ``msce_tiny_name: name``, so the checkpoint says what it is
    wherever it is copied (:func:`tiny_model_name` reads it back)."""
    setattr(model.config, TINY_CONFIG_KEY, True)
    model.config.msce_tiny_name = name


def tiny_model_name(model: str | os.PathLike | None) -> str | None:
    """The name of a tiny random-weight model, or None for any other model.

    ``model`` is a model folder or a model id (a served model's name, a hub id; a
    ``+adapter:`` suffix is ignored). A tiny model is: a folder whose ``config.json`` has
    ``msce_tiny: true`` (every msce builder writes it; the name is its ``msce_tiny_name``),
    a folder holding ``msce_tiny.json`` (checkpoints made before that key), or an id whose
    last part names a random-weight test checkpoint (``tiny-random``, as the Hugging Face
    test checkpoints ``hf-internal-testing/tiny-random-*`` are named). Never raises: an
    unreadable config counts as no marker."""
    if model is None:
        return None
    text = os.fspath(model).split("+adapter:")[0].strip()
    if not text:
        return None
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            cfg_file = path / "config.json"
            if cfg_file.is_file():
                try:
                    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    cfg = {}
                if isinstance(cfg, dict) and cfg.get(TINY_CONFIG_KEY) is True:
                    return str(cfg.get("msce_tiny_name") or path.name)
            if (path / TINY_MARKER_FILE).is_file():
                return path.name or text
    except OSError:  # e.g. a name too long for the file system: not a folder
        pass
    last = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if any(part in last.lower() for part in _RANDOM_NAME_PARTS):
        return last
    return None


def make_tiny_model(directory: str | os.PathLike, version: str = "2.5", seed: int = 0) -> Path:
    """Write a tiny random-weight Qwen-VL checkpoint + processor to ``directory``.

    Args:
        directory: output folder (created; existing files of the same names are replaced).
        version: ``"2.5"`` (Qwen2.5-VL) or ``"3"`` (Qwen3-VL).
        seed: weight seed; the same seed always gives the same weights.

    Returns:
        The directory as a :class:`~pathlib.Path`, loadable with
        ``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``.
    """
    version = str(version)
    if version not in TINY_VERSIONS:
        from msce.errors import ConfigError

        raise ConfigError(f"version must be one of {TINY_VERSIONS}, got {version!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(version)
    ids = _ids(tokenizer)
    config = _build_config(version, ids, len(tokenizer))

    if version == "2.5":
        from transformers import Qwen2_5_VLForConditionalGeneration as cls
    else:
        from transformers import Qwen3VLForConditionalGeneration as cls

    model = seeded_model(cls, config, seed)
    greedy_generation(model, [ids["<|im_end|>"], ids["<|endoftext|>"]], ids["<|endoftext|>"])
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    mark_tiny(model, f"msce-tiny-qwen{version}-vl")
    model.save_pretrained(out)
    processor = _build_processor(version, tokenizer)
    processor.save_pretrained(out)
    (out / TINY_MARKER_FILE).write_text(json.dumps({"version": version, "seed": seed}, indent=2) + "\n")
    return out
