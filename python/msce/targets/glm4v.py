"""GLM-4.1V video patches: transformers' ``Glm4vVideoProcessor`` is Qwen-VL's patch layout
(patch 14, temporal patch 2, merge 2, CLIP mean/std, bicubic) with Qwen3-VL's whole-clip
``smart_resize`` (t*h*w budget) at factor 28, min 112*112 and max 28*28*2*30000 pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msce.errors import UnsupportedError
from msce.targets.qwen import CLIP_MEAN, CLIP_STD, QwenVL

__all__ = ["Glm4V"]


@dataclass(frozen=True)
class Glm4V(QwenVL):
    """GLM-4.1V's video processor: ``pixel_values_videos`` / ``video_grid_thw``."""

    version: str = "3"  # the whole-clip pixel budget of Qwen3-VL's smart_resize
    min_pixels: int | None = 112 * 112
    max_pixels: int | None = 28 * 28 * 2 * 30000

    @property
    def patch(self) -> int:
        return 14

    @property
    def mean(self) -> tuple[float, float, float]:
        return CLIP_MEAN

    @property
    def std(self) -> tuple[float, float, float]:
        return CLIP_STD

    def __post_init__(self) -> None:
        if self.version != "3" or self.cap_pixels_per_frame:
            raise UnsupportedError("Glm4V takes min_pixels, max_pixels, dtype and interpolation only")
        super().__post_init__()

    @classmethod
    def from_hf(cls, processor: Any, version: str | None = None) -> Glm4V:
        """Settings of a HF ``Glm4vVideoProcessor`` (object or config dict): ``size``
        shortest_edge / longest_edge; patch sizes, mean/std and the filter must be the defaults."""
        from msce.targets.resize_crop import check_fixed, hf_attrs, size_dict

        a = hf_attrs(processor, ("size", "patch_size", "temporal_patch_size", "merge_size", "image_mean",
                                 "image_std", "resample", "do_resize", "do_rescale", "rescale_factor",
                                 "do_normalize"))
        fixed = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "image_mean": CLIP_MEAN,
                 "image_std": CLIP_STD, "resample": 3, "do_resize": True, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True}
        check_fixed(a, fixed, "GLM-4.1V video processor", "msce.targets.Glm4V")
        size = size_dict(a["size"]) if "size" in a else {}
        kw = {}
        if "shortest_edge" in size:
            kw["min_pixels"] = int(size["shortest_edge"])
        if "longest_edge" in size:
            kw["max_pixels"] = int(size["longest_edge"])
        return cls(**kw)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "kind": "glm4v"}
