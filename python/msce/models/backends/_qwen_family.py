"""Tokens mode for the Qwen-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and Qwen2.5-Omni's thinker.

Placeholders: ``<|image_pad|>`` / ``<|video_pad|>`` (Omni: ``<|IMAGE|>`` / ``<|VIDEO|>``)
become ``t*h*w / merge_size**2`` pads of the part's grid; for Qwen3-VL a video becomes,
per temporal patch, ``<{t:.1f} seconds><|vision_start|>`` + ``h*w/merge_size**2`` pads +
``<|vision_end|>``, as ``Qwen3VLProcessor`` writes it: transformers <= 5.24 keeps the
template's outer vision markers around the whole video, 5.25 drops them (msce follows the
installed version). The time ``t`` of a temporal patch is the mean of its first and last frame time
(the last frame repeats when the count is odd).

Targets (``backend.target()``, a VideoOrImage): clips through msce.QwenVL of the video path
(the backend's ``min_pixels`` / ``max_pixels``, else the version's video defaults), one-frame
parts (MSCE's stage-2 keyframes) through msce.QwenVL of the checkpoint's own image processor
(``image=True``: its ``min_pixels`` / ``max_pixels``, per image; Qwen3-VL's with patch 16),
so images equal what the HF processor makes of them. The backend's pixel bounds are video
bounds: HF's processor applies its image processor's bounds to images whatever the videos
get, and msce does the same (msce's choice where the paper is silent).

Tensors: ``pixel_values`` / ``pixel_values_videos`` and the grids from
``FrameBatch.to_hf()``; the Qwen-VL models also get ``mm_token_type_ids`` (image 1, video
2) and Qwen2.5-VL ``second_per_grid_ts`` (temporal patch size x the mean frame interval,
so MRoPE time positions follow the true clock).

Qwen2.5-Omni: videos through the composite processor's video path (``target_for(processor)``:
its call-time size), images through its own ``Qwen2VLImageProcessor`` settings (an exact
msce.QwenVL for one-frame parts); ``video_second_per_grid`` is the temporal patch size
divided by the clip's frame rate (1 / mean frame interval), which processor mode passes as
the processor's ``fps``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from msce.errors import BackendError, ConfigError
from msce.models.backends._family import TokenFamily, expand_text, mean_interval
from msce.targets import QwenVL, Target, VideoOrImage, target_for

__all__ = ["QwenFamily", "OmniFamily", "expand_placeholders", "qwen3_frame_times", "QWEN_VERSIONS"]

# model_type -> msce.QwenVL version
QWEN_VERSIONS = {
    "qwen2_vl": "2",
    "qwen2_5_vl": "2.5",
    "qwen3_vl": "3",
    "qwen3_vl_moe": "3",
}

_QWEN_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def qwen3_frame_times(timestamps: Sequence[float], temporal_patch_size: int = 2) -> list[float]:
    """One time per temporal patch: mean of the patch's first and last frame time.

    The list is padded with its last time to a multiple of ``temporal_patch_size``,
    as the frames are.
    """
    ts = [float(t) for t in timestamps]
    if not ts:
        return []
    if len(ts) % temporal_patch_size:
        ts += [ts[-1]] * (temporal_patch_size - len(ts) % temporal_patch_size)
    return [(ts[i] + ts[i + temporal_patch_size - 1]) / 2 for i in range(0, len(ts), temporal_patch_size)]


def _replacement(kind: str, grid: Sequence[int], times: Sequence[float] | None, *, version: str, merge_size: int,
                 temporal_patch_size: int, token: str, vision_start: str, vision_end: str, index: int = 0) -> str:
    t, h, w = (int(v) for v in grid)
    merge = merge_size * merge_size
    if kind == "video" and version == "3":
        frame_times = qwen3_frame_times(times or [], temporal_patch_size)
        if len(frame_times) != t:
            raise BackendError(f"video #{index}: {len(frame_times)} temporal patches from timestamps but grid t = {t}")
        per = h * w // merge
        return "".join(f"<{ft:.1f} seconds>{vision_start}{token * per}{vision_end}" for ft in frame_times)
    return token * (t * h * w // merge)


def expand_placeholders(
    text: str,
    visuals: Sequence[tuple[str, Sequence[int], Sequence[float] | None]],
    *,
    version: str,
    merge_size: int = 2,
    temporal_patch_size: int = 2,
    image_token: str = "<|image_pad|>",
    video_token: str = "<|video_pad|>",
    vision_start: str = "<|vision_start|>",
    vision_end: str = "<|vision_end|>",
) -> str:
    """Expand each image/video placeholder of a rendered chat text.

    ``visuals`` lists, in order of appearance, ``(kind, (t, h, w), times)`` with kind
    ``"image"`` or ``"video"``; ``times`` (frame timestamps in seconds, chronological)
    is needed for Qwen3-VL videos only.
    """
    import re

    tokens = {"image": image_token, "video": video_token}
    kinds = ["image" if m == image_token else "video"
             for m in re.findall(f"{re.escape(image_token)}|{re.escape(video_token)}", text)]
    for count, (kind, (vkind, _, _)) in enumerate(zip(kinds, visuals)):
        if vkind != kind:
            raise BackendError(f"placeholder #{count} is {kind} but visual input #{count} is {vkind}")
    repl: dict[str, list[str]] = {"image": [], "video": []}
    for count, (kind, grid, times) in enumerate(visuals):
        repl[kind].append(_replacement(kind, grid, times, version=version, merge_size=merge_size,
                                       temporal_patch_size=temporal_patch_size, token=tokens[kind],
                                       vision_start=vision_start, vision_end=vision_end, index=count))
    return expand_text([text], tokens, repl)[0]


def grid_of(batch: Any) -> tuple[int, int, int]:
    """A batch's one (t, h, w) patch grid; ConfigError for a batch without one."""
    grid = getattr(batch, "grid_thw", None)
    if grid is None:
        raise ConfigError("tokens mode needs frames loaded with the backend's target (a msce.QwenVL-style patch "
                          "target; batch.grid_thw is None)")
    vals = grid.reshape(-1).tolist() if hasattr(grid, "reshape") else list(grid)
    if len(vals) != 3:
        raise ConfigError(f"expected one (t, h, w) grid per batch, got {vals}")
    return int(vals[0]), int(vals[1]), int(vals[2])


class QwenFamily(TokenFamily):
    """Qwen2-VL, Qwen2.5-VL, Qwen3-VL: msce.QwenVL of the video path for clips (the backend's
    min/max_pixels, else the version's video defaults) and of the image processor for images."""

    model_types = tuple(QWEN_VERSIONS)
    casts_pixels_to_vision_dtype = True

    def __init__(self, processor: Any, config: Any, min_pixels: int | None = None, max_pixels: int | None = None):
        super().__init__(processor, config)
        self.version = QWEN_VERSIONS.get(self.model_type, "2.5")
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.image_token = self.image_token or "<|image_pad|>"
        self.video_token = self.video_token or "<|video_pad|>"
        vp = getattr(processor, "video_processor", None)
        ip = getattr(processor, "image_processor", None)
        self.merge_size = int(getattr(vp or ip, "merge_size", 2) or 2)
        self.image_merge_size = int(getattr(ip or vp, "merge_size", 2) or 2)
        self.temporal_patch_size = int(getattr(vp or ip, "temporal_patch_size", 2) or 2)

    def target(self) -> Target:
        video = QwenVL(version=self.version, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        return VideoOrImage(video=video, image=self.image_target())

    def collapses_video_wrapper(self) -> bool:
        """Whether the HF processor drops the chat template's outer ``<|vision_start|>`` /
        ``<|vision_end|>`` around a Qwen3-VL video (each frame carries its own pair): transformers
        5.25 added this to ``Qwen3VLProcessor`` (its own ``get_text_with_replacements``); earlier
        versions keep both. msce writes the prompt as the installed processor does."""
        return self.version == "3" and "get_text_with_replacements" in vars(type(self.processor))

    def expand(self, texts: Sequence[str], image_repl: Sequence[str], video_repl: Sequence[str]) -> list[str]:
        if video_repl and self.collapses_video_wrapper():
            wrapper = "<|vision_start|>" + self.video_token + "<|vision_end|>"
            texts = [t.replace(wrapper, self.video_token) for t in texts]
        return super().expand(texts, image_repl, video_repl)

    def with_pixel_dtype(self, target: Target, dtype: str) -> Target:
        # get_video_features / get_image_features start with pixel_values.type(self.visual.dtype)
        return VideoOrImage(video=dataclasses.replace(target.video, dtype=dtype),
                            image=dataclasses.replace(target.image, dtype=dtype))

    def image_target(self) -> QwenVL:
        """The image processor's own target (its pixel bounds, patch and mean/std): the
        backend's min/max_pixels are video bounds and do not reach images."""
        ip = getattr(self.processor, "image_processor", None)
        if ip is None:
            return QwenVL(version=self.version, image=True)
        return QwenVL.from_hf(ip, self.version, image=True)

    def special_tokens(self) -> tuple[str, ...]:
        return _QWEN_VISION_TOKENS

    def _replace(self, kind: str, part: Any, index: int) -> str:
        times = sorted(float(t) for t in part.timestamps) if kind == "video" else None
        return _replacement(kind, grid_of(part), times, version=self.version,
                            merge_size=self.merge_size if kind == "video" else self.image_merge_size,
                            temporal_patch_size=self.temporal_patch_size,
                            token=self.image_token if kind == "image" else self.video_token,
                            vision_start="<|vision_start|>", vision_end="<|vision_end|>", index=index)

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        repl = [self._replace("image", p, i) for i, p in enumerate(images)]
        hf = [p.to_hf(as_image=True) for p in images]
        return {"pixel_values": torch.cat([torch.as_tensor(h["pixel_values"]) for h in hf], 0),
                "image_grid_thw": torch.cat([torch.as_tensor(h["image_grid_thw"]).reshape(-1, 3)
                                             for h in hf], 0).long()}, repl

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        repl = [self._replace("video", p, i) for i, p in enumerate(videos)]
        hf = [p.to_hf() for p in videos]
        out = {"pixel_values_videos": torch.cat([torch.as_tensor(h["pixel_values_videos"]) for h in hf], 0),
               "video_grid_thw": torch.cat([torch.as_tensor(h["video_grid_thw"]).reshape(-1, 3)
                                            for h in hf], 0).long()}
        if self.version == "2.5":
            out["second_per_grid_ts"] = torch.tensor([self.temporal_patch_size * mean_interval(p) for p in videos],
                                                     dtype=torch.float32)
        return out, repl

    def mm_token_type_ids(self, input_ids: Any) -> Any:
        import torch

        types = torch.zeros_like(input_ids)
        for token, value in ((self.image_token, 1), (self.video_token, 2)):
            tid = self.token_id(token)
            if tid is not None:
                types[input_ids == tid] = value
        return types

    def processor_kwargs(self, videos: Sequence[Any]) -> dict[str, Any]:
        from msce.models.backends._family import hf_video_metadata

        return {"video_metadata": [hf_video_metadata(p) for p in videos]}


class OmniFamily(QwenFamily):
    """Qwen2.5-Omni's thinker: Qwen2-VL patches for video (the composite's call-time size)
    and for images (the image processor's own pixel bounds), ``video_second_per_grid``."""

    model_types = ("qwen2_5_omni_thinker", "qwen2_5_omni")

    def __init__(self, processor: Any, config: Any, min_pixels: int | None = None, max_pixels: int | None = None):
        super().__init__(processor, config, min_pixels, max_pixels)
        self.version = "2.5"

    def target(self) -> Target:
        video = target_for(self.processor)
        if self.min_pixels is not None or self.max_pixels is not None:
            lo, hi = video.resolved_pixels
            video = dataclasses.replace(video, min_pixels=self.min_pixels if self.min_pixels is not None else lo,
                                        max_pixels=self.max_pixels if self.max_pixels is not None else hi)
        return VideoOrImage(video=video, image=self.image_target())

    def special_tokens(self) -> tuple[str, ...]:
        names = ("image_token", "video_token", "audio_token", "vision_bos_token", "vision_eos_token",
                 "audio_bos_token", "audio_eos_token")
        return tuple(t for t in (getattr(self.processor, n, None) for n in names) if t)

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        out, repl = super().video_inputs(videos)
        out.pop("second_per_grid_ts", None)
        out["video_second_per_grid"] = torch.tensor([self.temporal_patch_size / _fps(p) for p in videos],
                                                    dtype=torch.float32)
        return out, repl

    def mm_token_type_ids(self, input_ids: Any) -> None:
        return None  # Qwen2_5OmniProcessor returns none

    def processor_kwargs(self, videos: Sequence[Any]) -> dict[str, Any]:
        # one fps for the whole call: the first video's (the processor takes a single value)
        return {"fps": _fps(videos[0])}


def _fps(batch: Any) -> float:
    """The clip's frame rate on its sorted timeline: 1 / mean frame interval."""
    return 1.0 / mean_interval(batch)
