"""InternVL 3 / 3.5 video frames: transformers' ``InternVLVideoProcessor`` resizes every
frame to 384x384 (bicubic, no crop) and normalizes with CLIP mean/std."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msce.targets.qwen import CLIP_MEAN, CLIP_STD
from msce.targets.resize_crop import ResizeCrop

__all__ = ["InternVL"]


@dataclass(frozen=True)
class InternVL(ResizeCrop):
    """InternVL's video processor: ``pixel_values_videos`` (1, T, 3, 384, 384)."""

    shortest_edge: int | None = None
    size: tuple[int, int] | None = (384, 384)
    crop_size: tuple[int, int] | None = None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    family: ClassVar[str] = "internvl"
