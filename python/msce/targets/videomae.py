"""VideoMAE (the vision-only classifier baseline): shortest edge 224, center crop 224x224,
bilinear, ImageNet-standard mean = std = 0.5, as transformers' ``VideoMAEVideoProcessor``
and ``VideoMAEImageProcessor`` (given the clip's frames as one video) compute it; the
tensor is ``pixel_values`` (1, T, 3, 224, 224)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msce.targets.resize_crop import ResizeCrop

__all__ = ["VideoMAE"]


@dataclass(frozen=True)
class VideoMAE(ResizeCrop):
    """VideoMAE's processors: ``pixel_values`` (1, T, 3, 224, 224)."""

    shortest_edge: int | None = 224
    size: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = (224, 224)
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    key: str = "pixel_values"

    family: ClassVar[str] = "videomae"
