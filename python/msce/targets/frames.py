"""Plain frames (NCHW or NHWC; uint8, float16, bfloat16 or float32) for any stack."""

from __future__ import annotations

from dataclasses import dataclass

from msce.errors import TransformError
from msce.targets.base import DTYPE, INTERP, LAYOUT, Allocation, Target, fused

__all__ = ["Frames"]


@dataclass(frozen=True)
class Frames(Target):
    """Plain frames for any stack (LLaVA, InternVL, CLIP, JPEG export, ...).

    ``size`` = (height, width) or None to keep the source (or crop) size. Float outputs
    are ``(x/255 - mean) / std`` when ``mean``/``std`` are given (in 0..1 units), else
    ``x/255`` when ``rescale`` is true, else raw 0..255 values.
    """

    size: tuple[int, int] | None = None
    layout: str = "NCHW"
    dtype: str = "uint8"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    rescale: bool = True
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise TransformError(f"layout must be 'NCHW' or 'NHWC' (got {self.layout!r})")
        if self.dtype not in DTYPE:
            raise TransformError(f"dtype must be one of {sorted(DTYPE)} (got {self.dtype!r})")
        if self.interpolation not in INTERP:
            raise TransformError(f"interpolation must be one of {sorted(INTERP)}")
        if (self.mean is None) != (self.std is None):
            raise TransformError("give both mean and std, or neither")
        if self.mean is not None:
            if self.dtype == "uint8":
                raise TransformError("mean/std normalization needs a float dtype (float32, float16 or bfloat16)")
            if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
                raise TransformError("mean and std need 3 values each, std non-zero")
        if self.size is not None:
            if len(self.size) != 2 or any(int(s) <= 0 for s in self.size):
                raise TransformError(f"size must be (height, width) with positive sides (got {self.size!r})")

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        return (int(self.size[0]), int(self.size[1])) if self.size is not None else (height, width)

    def native_spec(self, out_h: int, out_w: int) -> dict:
        if self.dtype == "uint8":
            normalize, mean, std = False, [0.0] * 3, [1.0] * 3
        elif self.mean is not None:
            normalize, mean, std = True, fused(self.mean), fused(self.std)
        elif self.rescale:
            normalize, mean, std = True, [0.0] * 3, [255.0] * 3
        else:
            normalize, mean, std = False, [0.0] * 3, [1.0] * 3
        return {"out_h": out_h, "out_w": out_w, "interp": INTERP[self.interpolation],
                "layout": LAYOUT[self.layout], "dtype": DTYPE[self.dtype], "normalize": normalize,
                "mean": mean, "std": std, "patch": 0, "temporal": 1, "merge": 1}

    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        out_h, out_w = size if size is not None else self.output_size(num_frames, height, width)
        shape = (num_frames, 3, out_h, out_w) if self.layout == "NCHW" else (num_frames, out_h, out_w, 3)
        return Allocation(self.native_spec(out_h, out_w), shape, self.dtype, num_frames, None, (out_h, out_w))

    def to_dict(self) -> dict:
        return {"kind": "frames", "size": list(self.size) if self.size else None, "layout": self.layout,
                "dtype": self.dtype, "mean": self.mean, "std": self.std, "rescale": self.rescale,
                "interpolation": self.interpolation}
