"""Tokens mode for the LLaVA video families: LLaVA-NeXT-Video, Video-LLaVA, LLaVA-OneVision.

Videos: msce's exact target of the family's video processor (``msce.target_for(processor)``:
CLIP resize + center crop, or a fixed square), ``pixel_values_videos`` (videos, T, 3, H, W).
The ``<video>`` placeholder becomes, with ``p`` the vision patch size and T frames of H x W:

* LLaVA-NeXT-Video: ``T * (H//p) * (W//p) // 4`` tokens (2x2 average pooling);
* Video-LLaVA: ``T * ((H//p) * (W//p) + num_additional_image_tokens)`` (the CLS token per frame);
* LLaVA-OneVision: ``T * ceil(s/2)**2 + 1`` with ``s = isqrt(num_image_tokens)`` (pooled
  frames and one newline token).

Images (one-frame parts: MSCE's stage-2 keyframes): these families' image processors are
not msce targets (LLaVA-NeXT and OneVision tile the image at its best "anyres" resolution;
Video-LLaVA's image processor resizes with PIL, not torchvision's uint8 kernel), so
one-frame parts are loaded as uint8 frames and go through the family's HF image processor;
msce counts the ``<image>`` tokens itself from the image's original size:

* LLaVA-NeXT (and OneVision for a text sample with one image): the base tile's
  ``ph*pw`` features (+ extra tokens), plus the anyres grid at the best resolution with the
  letterbox rows/columns removed, plus one newline per remaining row; OneVision caps the
  grid at ``anyres_max_N`` tiles by scaling both sides down;
* OneVision with several images in one text sample: ``num_image_tokens + 1`` each;
* Video-LLaVA: ``(H//p) * (W//p) + num_additional_image_tokens``;

and every family drops one token for ``vision_feature_select_strategy == "default"``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Hashable, Sequence

from msce.models.backends._family import TokenFamily, check_batch_target
from msce.models.backends.base import Request, is_frames, is_image
from msce.targets import Frames, Target, VideoOrImage, target_for

__all__ = ["LlavaNextVideoFamily", "VideoLlavaFamily", "LlavaOneVisionFamily", "best_resolution",
           "anyres_features"]


def best_resolution(height: int, width: int, candidates: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The (height, width) among ``candidates`` that keeps the most of a height x width image
    when it is scaled (aspect kept) to fit inside it; ties go to the smallest unused area."""
    best, best_kept, best_waste = None, -1, None
    area = height * width
    for ch, cw in candidates:
        s = min(cw / width, ch / height)
        kept = min(int(width * s) * int(height * s), area)
        waste = ch * cw - kept
        if kept > best_kept or (kept == best_kept and waste < best_waste):
            best, best_kept, best_waste = (int(ch), int(cw)), kept, waste
    if best is None:
        raise ValueError("no candidate resolutions")
    return best


def anyres_features(height: int, width: int, rows: int, cols: int, grid_h: int, grid_w: int,
                    max_tiles: int | None = None) -> tuple[int, int]:
    """(features, newline tokens) of the anyres grid: ``grid_h x grid_w`` tiles of
    ``rows x cols`` patches over a height x width image, minus the patch rows (or columns)
    the letterbox adds on both sides; with ``max_tiles`` both sides shrink by
    ``sqrt(area / (max_tiles * rows**2))`` when that exceeds 1.1."""
    cur_h, cur_w = rows * grid_h, cols * grid_w
    if width / height > cur_w / cur_h:  # wider than the grid: bands above and below
        fitted = int(round(height * (cur_w / width), 7))
        cur_h -= 2 * ((cur_h - fitted) // 2)
    else:
        fitted = int(round(width * (cur_h / height), 7))
        cur_w -= 2 * ((cur_w - fitted) // 2)
    features, newlines = cur_h * cur_w, cur_h
    if max_tiles is not None:
        shrink = math.sqrt(cur_h * cur_w / (max_tiles * rows ** 2))
        if shrink > 1.1:
            features = int(cur_h // shrink) * int(cur_w // shrink)
            newlines = int(cur_h // shrink)
    return features, newlines


class _LlavaFamily(TokenFamily):
    image_fallback = True

    def __init__(self, processor: Any, config: Any, **_: Any):
        super().__init__(processor, config)
        self.patch = int(getattr(processor, "patch_size", None) or 14)
        self.extra = int(getattr(processor, "num_additional_image_tokens", 0) or 0)
        self.drop_cls = getattr(processor, "vision_feature_select_strategy", None) == "default"

    def target(self) -> Target:
        return VideoOrImage(video=target_for(self.processor), image=Frames(layout="NHWC", dtype="uint8"))

    def batch_key(self, request: Request) -> Hashable:
        # (videos, T, 3, H, W) tensors stack only for equal T, H, W
        return tuple(tuple(p.data.shape) for p in request if is_frames(p) and not is_image(p))

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        tensors = []
        for p in videos:
            check_batch_target(p, VideoOrImage, "videos")
            tensors.append(torch.as_tensor(p.to_hf()["pixel_values_videos"]))
        if len({tuple(t.shape) for t in tensors}) > 1:
            from msce.errors import BackendError

            raise BackendError(f"videos of different shapes {sorted({tuple(t.shape) for t in tensors})} cannot "
                               "share one model batch")
        repl = [self.video_token * self.video_count(*t.shape[1:2], *t.shape[-2:]) for t in tensors]
        return {"pixel_values_videos": torch.cat(tensors, 0)}, repl

    @abstractmethod
    def video_count(self, frames: int, height: int, width: int) -> int:
        """Video tokens of a (frames, height, width) clip in this family's model."""


class LlavaNextVideoFamily(_LlavaFamily):
    model_types = ("llava_next_video",)

    def video_count(self, frames: int, height: int, width: int) -> int:
        return frames * ((height // self.patch) * (width // self.patch) // 4)

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        out = self.hf_images(images)
        tile_h, tile_w = (int(v) for v in out["pixel_values"].shape[-2:])
        pinpoints = self.processor.image_processor.image_grid_pinpoints
        repl = []
        for h, w in out["image_sizes"].tolist():
            bh, bw = best_resolution(h, w, pinpoints)
            rows, cols = tile_h // self.patch, tile_w // self.patch
            feats, newlines = anyres_features(h, w, rows, cols, bh // tile_h, bw // tile_w)
            n = feats + newlines + rows * cols + self.extra - (1 if self.drop_cls else 0)
            repl.append(self.image_token * n)
        return out, repl


class VideoLlavaFamily(_LlavaFamily):
    model_types = ("video_llava",)

    def video_count(self, frames: int, height: int, width: int) -> int:
        return frames * ((height // self.patch) * (width // self.patch) + self.extra)

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        out = self.hf_images(images)
        key = "pixel_values_images" if "pixel_values_images" in out else "pixel_values"
        h, w = (int(v) for v in out[key].shape[-2:])
        n = (h // self.patch) * (w // self.patch) + self.extra - (1 if self.drop_cls else 0)
        return out, [self.image_token * n] * len(images)


class LlavaOneVisionFamily(_LlavaFamily):
    model_types = ("llava_onevision",)

    def __init__(self, processor: Any, config: Any, **options: Any):
        super().__init__(processor, config, **options)
        self.num_image_tokens = int(processor.num_image_tokens)
        aspect = str(getattr(processor, "vision_aspect_ratio", "anyres_max_9") or "anyres_max_9")
        self.max_tiles = int(aspect.rsplit("_", 1)[-1]) if aspect.startswith("anyres_max_") else None

    def video_count(self, frames: int, height: int, width: int) -> int:
        side = math.isqrt(self.num_image_tokens)
        return frames * (-(-side // 2)) ** 2 + 1

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        out = self.hf_images(images)
        tile_h, tile_w = (int(v) for v in out["pixel_values"].shape[-2:])
        side = math.isqrt(self.num_image_tokens)
        pinpoints = self.processor.image_processor.image_grid_pinpoints
        per_sample = [int(n) for n in out["batch_num_images"].tolist()]
        alone = [n == 1 for n in per_sample for _ in range(n)]
        repl = []
        for k, (h, w) in enumerate(out["image_sizes"].tolist()):
            if alone[k]:
                bh, bw = best_resolution(h, w, pinpoints)
                feats, newlines = anyres_features(h, w, side, side, bh // tile_h, bw // tile_w, self.max_tiles)
                n = feats + newlines + self.num_image_tokens
            else:
                n = self.num_image_tokens + 1
            repl.append(self.image_token * (n - (1 if self.drop_cls else 0)))
        return out, repl
