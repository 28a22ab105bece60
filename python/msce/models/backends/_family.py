"""Token-ready model inputs per model family ("tokens" mode of the transformers backend).

A :class:`TokenFamily` turns a batch of requests (text and ``FrameBatch`` parts) and their
chat-template texts into what the family's Hugging Face processor returns for the same
text and frames: ``input_ids`` with every image/video placeholder expanded to the family's
token sequence, ``attention_mask``, the pixel tensors and whatever else the processor
adds (grids, image sizes, ``mm_token_type_ids``, ...). Pixels come from msce targets
(``backend.target()``: a :class:`msce.targets.VideoOrImage` of the family's video and image
paths); where msce has no exact target for a family's image path, one-frame batches are
loaded as uint8 frames and go through the family's HF image processor (``image_fallback``).

Placeholders are expanded as transformers' ``ProcessorMixin`` does: the i-th image
placeholder of the batch gets the i-th image's replacement, the i-th video placeholder the
i-th video's, scanning the texts in order. One module per family holds its replacement
text and tensor layout (``_qwen_family``, ``_llava_family``, ``_internvl_family``,
``_glm4v_family``, ``_smolvlm_family``); :func:`family_for` picks one by ``config.model_type``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Hashable, Sequence

from msce.errors import BackendError, ConfigError, UnsupportedError
from msce.models.backends.base import Request, is_frames, is_image

if TYPE_CHECKING:  # pragma: no cover
    from msce.targets import Target

__all__ = ["TokenFamily", "family_for", "expand_text", "TOKEN_MODEL_TYPES", "uint8_frames", "hf_video_metadata", "mean_interval",
           "check_batch_target", "token_id", "merged_kwargs"]


def expand_text(texts: Sequence[str], tokens: dict[str, str], replacements: dict[str, Sequence[str]]) -> list[str]:
    """Each occurrence of ``tokens[kind]`` in ``texts`` (in order, across the texts) replaced by
    the next of ``replacements[kind]``; BackendError when a kind has more placeholders than
    replacements or replacements are left over."""
    if not tokens:
        return list(texts)
    kind_of = {t: k for k, t in tokens.items()}
    pattern = re.compile("|".join(re.escape(t) for t in tokens.values()))
    queues = {k: list(replacements.get(k, ()))[::-1] for k in tokens}
    out = []
    for text in texts:
        pieces, last = [], 0
        for m in pattern.finditer(text):
            kind = kind_of[m.group()]
            if not queues[kind]:
                raise BackendError(f"chat text has more {kind} placeholders than {kind} inputs")
            pieces += [text[last:m.start()], queues[kind].pop()]
            last = m.end()
        out.append("".join(pieces) + text[last:])
    if any(queues.values()):
        raise BackendError("more visual inputs than vision placeholders in the chat text")
    return out


class TokenFamily(ABC):
    """Builds one family's model inputs from msce tensors.

    Subclasses set ``model_types`` and implement :meth:`target`, :meth:`video_inputs` and
    :meth:`image_inputs`; the rest has defaults that fit most families.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    # True where one-frame batches are uint8 frames for the HF image processor
    image_fallback: ClassVar[bool] = False
    # True where the model casts pixel values to its vision tower's dtype before any arithmetic
    # (so tensors made in that dtype give it the same values): see with_pixel_dtype
    casts_pixels_to_vision_dtype: ClassVar[bool] = False

    def __init__(self, processor: Any, config: Any):
        self.processor = processor
        self.config = config
        self.tokenizer = processor.tokenizer
        self.model_type = str(getattr(config, "model_type", ""))
        self.image_token = str(getattr(processor, "image_token", "") or "")
        self.video_token = str(getattr(processor, "video_token", "") or "")

    # -- what subclasses define -------------------------------------------------------
    @abstractmethod
    def target(self) -> Target:
        """The msce target every part of a request is loaded with."""

    @abstractmethod
    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        """(tensors, one replacement text per video) for the batch's videos, in order."""

    @abstractmethod
    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        """(tensors, one replacement text per image) for the batch's one-frame parts, in order."""

    def with_pixel_dtype(self, target: Target, dtype: str) -> Target:
        """``target`` making its float tensors in ``dtype`` (families that set
        ``casts_pixels_to_vision_dtype``)."""
        raise UnsupportedError(f"{type(self).__name__} makes float32 pixel tensors only")

    def special_tokens(self) -> tuple[str, ...]:
        """Tokens user text may not contain (they would open vision slots)."""
        return tuple(t for t in (self.image_token, self.video_token) if t)

    def mm_token_type_ids(self, input_ids: Any) -> Any | None:
        """The processor's ``mm_token_type_ids`` for these ids, or None where it returns none."""
        return None

    def finish(self, inputs: dict[str, Any], requests: Sequence[Request]) -> dict[str, Any]:
        """Last layout step (InternVL interleaves image and video pixels in text order)."""
        return inputs

    def processor_kwargs(self, videos: Sequence[Any]) -> dict[str, Any]:
        """Extra kwargs processor mode passes with these videos (metadata, fps)."""
        return {}

    def batch_key(self, request: Request) -> Hashable:
        """Requests with different keys go to separate model batches (tensors that cannot be
        stacked); None for families that batch anything."""
        return None

    # -- shared machinery -------------------------------------------------------------
    def expand(self, texts: Sequence[str], image_repl: Sequence[str], video_repl: Sequence[str]) -> list[str]:
        """Each placeholder of ``texts`` replaced by the next replacement of its kind (kinds
        without replacements are left as they are)."""
        tokens = {"image": self.image_token, "video": self.video_token}
        repl = {"image": image_repl, "video": video_repl}
        return expand_text(texts, {k: t for k, t in tokens.items() if t and repl[k]}, repl)

    def expanded_texts(self, requests: Sequence[Request], texts: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        """(expanded texts, pixel tensors) of a batch."""
        parts = [p for r in requests for p in r if is_frames(p)]
        images = [p for p in parts if is_image(p)]
        videos = [p for p in parts if not is_image(p)]
        tensors: dict[str, Any] = {}
        image_repl: list[str] = []
        video_repl: list[str] = []
        if images:
            found, image_repl = self.image_inputs(images)
            tensors.update(found)
        if videos:
            found, video_repl = self.video_inputs(videos)
            tensors.update(found)
        return self.expand(texts, image_repl, video_repl), tensors

    def build_inputs(self, requests: Sequence[Request], texts: Sequence[str]) -> dict[str, Any]:
        """The model inputs of a batch; ``texts`` are the requests' chat-template texts."""
        expanded, tensors = self.expanded_texts(requests, texts)
        enc = self.tokenizer(expanded, padding=True, return_tensors="pt")
        inputs: dict[str, Any] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        types = self.mm_token_type_ids(enc["input_ids"])
        if types is not None:
            inputs["mm_token_type_ids"] = types
        inputs.update(tensors)
        return self.finish(inputs, requests)

    def token_id(self, token: str) -> int | None:
        return token_id(self.tokenizer, token)

    def hf_images(self, images: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        """The family's HF image processor on the uint8 frames of one-frame parts, with the
        kwargs its composite processor passes (``_merge_kwargs``'s images_kwargs)."""
        merged = dict(merged_kwargs(self.processor).get("images_kwargs") or {})
        merged.update(kwargs, return_tensors="pt")
        frames = [uint8_frames(p, "image parts of this family")[0] for p in images]
        try:
            return dict(self.processor.image_processor(frames, **merged))
        except (ValueError, TypeError) as exc:
            raise BackendError(f"{type(self.processor.image_processor).__name__} failed: {exc}") from exc


def token_id(tokenizer: Any, token: str) -> int | None:
    """The id of one token in ``tokenizer``'s vocabulary; None when it has none (or maps it to unk)."""
    ids = tokenizer.convert_tokens_to_ids([token])
    tid = ids[0] if ids else None
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        return None
    return int(tid)


def merged_kwargs(processor: Any) -> dict[str, Any]:
    """The composite processor's kwargs per modality as its ``__call__`` merges them (class
    defaults, its processors' settings, the tokenizer's init kwargs); {} where it cannot say."""
    tokenizer = getattr(processor, "tokenizer", None)
    try:
        return processor._merge_kwargs(tokenizer_init_kwargs=getattr(tokenizer, "init_kwargs", None) or {})
    except (AttributeError, TypeError, ValueError, KeyError):
        return {}


def check_batch_target(part: Any, want: type, what: str) -> None:
    """Refuse a part loaded with another target than the family's (a ConfigError naming it)."""
    got = getattr(part, "target", None)
    if not isinstance(got, want):
        raise ConfigError(f"tokens mode needs {what} loaded with backend.target() ({want.__name__}); this part was "
                          f"loaded with {type(got).__name__}")


def uint8_frames(batch: Any, what: str = "processor mode"):
    """A batch's frames as a (T, H, W, 3) uint8 array (frames loaded with
    ``msce.Frames(layout='NHWC', dtype='uint8')``); ConfigError otherwise."""
    import numpy as np

    data = batch.data
    if hasattr(data, "detach"):
        data = data.detach().to("cpu").numpy()
    arr = np.asarray(data)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ConfigError(f"{what} needs frames loaded with msce.Frames(layout='NHWC', dtype='uint8') "
                          f"(backend.target()); got dtype {arr.dtype} shape {arr.shape}")
    return arr


def mean_interval(batch: Any) -> float:
    """Mean time between consecutive frames on the sorted timeline (seconds); one frame
    period of the plan's fps (else 1 s) when the batch spans no time."""
    ts = sorted(float(t) for t in batch.timestamps)
    if len(ts) >= 2 and ts[-1] > ts[0]:
        return (ts[-1] - ts[0]) / (len(ts) - 1)
    plan = getattr(batch, "plan", None)
    fps = getattr(plan, "fps", None) or getattr(plan, "source_fps", None)
    return 1.0 / float(fps) if fps else 1.0


def hf_video_metadata(batch: Any):
    """HF ``VideoMetadata`` for pre-sampled frames, on the sorted (chronological) timeline:
    the clip's average fps, frame count and duration (seconds; frame count / fps where the
    clip has no duration, None without an fps), the sorted frame indices."""
    from transformers.video_utils import VideoMetadata

    meta = getattr(batch, "metadata", None)
    fps = getattr(meta, "average_fps", None)
    total = getattr(meta, "num_frames", None)
    indices = sorted(int(i) for i in batch.indices)
    total = int(total) if total else max(indices) + 1
    duration = getattr(meta, "duration", None)
    if not duration and fps:
        duration = total / float(fps)
    return VideoMetadata(total_num_frames=total, fps=float(fps) if fps else None, frames_indices=indices,
                         duration=float(duration) if duration else None)


# model_type -> "module:class" (imported when a backend of that type is built)
_FAMILIES = {
    "qwen2_vl": "msce.models.backends._qwen_family:QwenFamily",
    "qwen2_5_vl": "msce.models.backends._qwen_family:QwenFamily",
    "qwen3_vl": "msce.models.backends._qwen_family:QwenFamily",
    "qwen3_vl_moe": "msce.models.backends._qwen_family:QwenFamily",
    "qwen2_5_omni_thinker": "msce.models.backends._qwen_family:OmniFamily",
    "qwen2_5_omni": "msce.models.backends._qwen_family:OmniFamily",
    "llava_next_video": "msce.models.backends._llava_family:LlavaNextVideoFamily",
    "video_llava": "msce.models.backends._llava_family:VideoLlavaFamily",
    "llava_onevision": "msce.models.backends._llava_family:LlavaOneVisionFamily",
    "internvl": "msce.models.backends._internvl_family:InternVLFamily",
    "glm4v": "msce.models.backends._glm4v_family:Glm4vFamily",
    "glm4v_moe": "msce.models.backends._glm4v_family:Glm4vFamily",  # GLM-4.5V
    "smolvlm": "msce.models.backends._smolvlm_family:SmolVLMFamily",
}
TOKEN_MODEL_TYPES = tuple(sorted(_FAMILIES))


def family_for(model_type: str, processor: Any, config: Any, **options: Any) -> TokenFamily:
    """The tokens-mode family of ``model_type``; ConfigError naming the supported types."""
    import importlib

    path = _FAMILIES.get(str(model_type))
    if path is None:
        raise ConfigError(f"tokens mode supports model types {', '.join(TOKEN_MODEL_TYPES)}; got "
                               f"{model_type!r} (use mode='processor')")
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)(processor, config, **options)
