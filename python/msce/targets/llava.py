"""LLaVA video families: LLaVA-NeXT-Video and Video-LLaVA (CLIP: shortest edge 224, center
crop 224x224, bicubic), LLaVA-OneVision (384x384 without crop, bicubic). Defaults are those
of transformers' ``LlavaNextVideoVideoProcessor``, ``VideoLlavaVideoProcessor`` and
``LlavaOnevisionVideoProcessor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msce.targets.resize_crop import ClipCrop224, Square384

__all__ = ["LlavaNextVideo", "VideoLlava", "LlavaOneVision"]


@dataclass(frozen=True)
class LlavaNextVideo(ClipCrop224):
    """LLaVA-NeXT-Video's video processor: ``pixel_values_videos`` (1, T, 3, 224, 224)."""

    family: ClassVar[str] = "llava_next_video"


@dataclass(frozen=True)
class VideoLlava(ClipCrop224):
    """Video-LLaVA's video processor: ``pixel_values_videos`` (1, T, 3, 224, 224)."""

    family: ClassVar[str] = "video_llava"


@dataclass(frozen=True)
class LlavaOneVision(Square384):
    """LLaVA-OneVision's video processor: ``pixel_values_videos`` (1, T, 3, 384, 384), no crop."""

    family: ClassVar[str] = "llava_onevision"
