"""LLaVA video families: LLaVA-NeXT-Video and Video-LLaVA (CLIP: shortest edge 224, center
crop 224x224, bicubic), LLaVA-OneVision (384x384 without crop, bicubic). Defaults are those
of transformers' ``LlavaNextVideoVideoProcessor``, ``VideoLlavaVideoProcessor`` and
``LlavaOnevisionVideoProcessor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msce.targets.qwen import CLIP_MEAN, CLIP_STD
from msce.targets.resize_crop import ResizeCrop

__all__ = ["LlavaNextVideo", "VideoLlava", "LlavaOneVision"]


@dataclass(frozen=True)
class LlavaNextVideo(ResizeCrop):
    """LLaVA-NeXT-Video's video processor: ``pixel_values_videos`` (1, T, 3, 224, 224)."""

    shortest_edge: int | None = 224
    size: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = (224, 224)
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    family: ClassVar[str] = "llava_next_video"


@dataclass(frozen=True)
class VideoLlava(ResizeCrop):
    """Video-LLaVA's video processor: ``pixel_values_videos`` (1, T, 3, 224, 224)."""

    shortest_edge: int | None = 224
    size: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = (224, 224)
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    family: ClassVar[str] = "video_llava"


@dataclass(frozen=True)
class LlavaOneVision(ResizeCrop):
    """LLaVA-OneVision's video processor: ``pixel_values_videos`` (1, T, 3, 384, 384), no crop."""

    shortest_edge: int | None = None
    size: tuple[int, int] | None = (384, 384)
    crop_size: tuple[int, int] | None = None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    family: ClassVar[str] = "llava_onevision"
