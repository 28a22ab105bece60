"""InternVL 3 / 3.5 video frames: transformers' ``InternVLVideoProcessor`` resizes every
frame to 384x384 (bicubic, no crop) and normalizes with CLIP mean/std."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msce.targets.resize_crop import Square384

__all__ = ["InternVL"]


@dataclass(frozen=True)
class InternVL(Square384):
    """InternVL's video processor: ``pixel_values_videos`` (1, T, 3, 384, 384)."""

    family: ClassVar[str] = "internvl"
