"""SmolVLM2 video frames: transformers' ``SmolVLMVideoProcessor`` resizes every frame twice
with torch's antialiased uint8 Lanczos kernel: first so its longest edge is ``size``
(aspect kept, the other side made even: 640x360 -> 1456x820 at the defaults, an upscale),
then to the square ``max_image_size``; then fused rescale + normalize (mean = std = 0.5) in
float32. One video needs no padding, so ``pixel_attention_mask`` is all ones.

msce runs both resizes in one native transform (``pre_h``/``pre_w``: the first stage's
picture rounded to uint8 as torch rounds it, then read by the second stage), on CPU and
CUDA alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import torch

from msce.errors import TransformError, UnsupportedError
from msce.targets.base import DTYPE, INTERP, LAYOUT, Allocation, Target, fused
from msce.targets.resize_crop import PIL_RESAMPLE, _pair, check_fixed, check_pixel_options, hf_attrs, size_dict

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["SmolVLM", "longest_edge_size"]

MAX_SIDE = 4096  # transformers' smolvlm MAX_IMAGE_SIZE: the longest edge is capped here


def longest_edge_size(height: int, width: int, longest_edge: int) -> tuple[int, int]:
    """transformers' smolvlm ``get_resize_output_image_size``: the longest side becomes
    ``min(longest_edge, 4096)``, the other ``int(...)`` of it by the aspect ratio, rounded up
    to even; both at least 1."""
    side = min(MAX_SIDE, int(longest_edge))
    aspect = width / height
    if width >= height:
        w, h = side, int(side / aspect)
        h += h % 2
    else:
        h, w = side, int(side * aspect)
        w += w % 2
    return max(h, 1), max(w, 1)


def _edge(value: Any, name: str) -> int:
    if isinstance(value, Mapping):
        if "longest_edge" not in value:
            raise UnsupportedError(f"SmolVLM video processor: {name} {dict(value)} has no 'longest_edge'")
        value = value["longest_edge"]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TransformError(f"SmolVLM: {name} must be a positive integer (got {value!r})")
    return value


@dataclass(frozen=True)
class SmolVLM(Target):
    """SmolVLM2's video processor: ``pixel_values`` (1, T, 3, M, M) and
    ``pixel_attention_mask`` (1, T, M, M) int64, M = ``max_image_size``.

    ``longest_edge``: the first resize's longest side (HF ``size["longest_edge"]``), or
    ``size`` = (height, width) for a fixed first resize (HF ``size`` with height/width).
    ``interpolation`` is the filter of both resizes ("lanczos": HF's default LANCZOS).
    """

    longest_edge: int | None = 4 * 364
    size: tuple[int, int] | None = None
    max_image_size: int = 364
    interpolation: str = "lanczos"
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    do_pad: bool = True
    dtype: str = "float32"

    family: ClassVar[str] = "smolvlm"

    def __post_init__(self) -> None:
        if (self.longest_edge is None) == (self.size is None):
            raise TransformError("SmolVLM: give exactly one of longest_edge and size")
        if self.longest_edge is not None:
            _edge(self.longest_edge, "longest_edge")
        object.__setattr__(self, "size", _pair(self.size, "SmolVLM: size"))
        _edge(self.max_image_size, "max_image_size")
        check_pixel_options(self)

    def first_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the first resize of a height x width frame."""
        if self.size is not None:
            return self.size
        return longest_edge_size(height, width, int(self.longest_edge))

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        return self.max_image_size, self.max_image_size

    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        out = self.output_size(num_frames, height, width)
        if size is not None and tuple(size) != out:
            raise UnsupportedError("SmolVLM has a fixed output geometry; plans with a size (token_budget) are "
                                   "supported for msce.QwenVL targets")
        m = self.max_image_size
        scale = 1.0 if self.rescale_factor is None else 1.0 / self.rescale_factor
        spec = {"out_h": m, "out_w": m, "interp": INTERP[self.interpolation], "layout": LAYOUT["NCHW"],
                "dtype": DTYPE[self.dtype], "normalize": True, "mean": fused(self.mean, scale),
                "std": fused(self.std, scale), "patch": 0, "temporal": 1, "merge": 1}
        first = self.first_size(height, width)
        # torch returns a frame unchanged when a resize keeps its size: then one stage is left
        if first != (height, width) and first != (m, m):
            spec.update(pre_h=first[0], pre_w=first[1])
        return Allocation(spec, (num_frames, 3, m, m), self.dtype, num_frames, None, (m, m))

    def to_hf(self, batch: FrameBatch, as_image: bool = False) -> dict[str, Any]:
        if as_image:
            raise UnsupportedError("SmolVLM.to_hf() gives the video processor's tensors; as_image (the image "
                                   "processor's splitting into tiles) is not reproduced")
        data = batch.data.unsqueeze(0)
        out = {"pixel_values": data}
        if self.do_pad:
            t, _, h, w = batch.data.shape
            out["pixel_attention_mask"] = torch.ones((1, t, h, w), dtype=torch.int64, device=data.device)
        return out

    def to_dict(self) -> dict:
        return {"kind": self.family, "longest_edge": self.longest_edge,
                "size": list(self.size) if self.size else None, "max_image_size": self.max_image_size,
                "interpolation": self.interpolation, "rescale_factor": self.rescale_factor,
                "mean": list(self.mean), "std": list(self.std), "do_pad": self.do_pad, "dtype": self.dtype}

    @classmethod
    def from_hf(cls, processor: Any) -> SmolVLM:
        """Settings of a HF ``SmolVLMVideoProcessor`` (object) or its config dict. A config's
        ``video_sampling["video_size"]`` is the first resize's size unless ``size`` is given
        (the processor's ``__init__`` rule); ``max_image_size``, ``resample`` (LANCZOS,
        BICUBIC, BILINEAR), ``do_rescale``/``rescale_factor``, ``image_mean``/``image_std``
        and ``do_pad`` are carried over."""
        a = hf_attrs(processor, ("size", "max_image_size", "resample", "do_resize", "do_rescale", "rescale_factor",
                                 "do_normalize", "image_mean", "image_std", "do_pad", "video_sampling"))
        check_fixed(a, {"do_resize": True, "do_normalize": True}, "SmolVLM video processor", "msce.targets.SmolVLM")
        kw: dict[str, Any] = {}
        size = a.get("size")
        sampling = a.get("video_sampling")
        if isinstance(processor, Mapping) and size is None and isinstance(sampling, Mapping):
            size = sampling.get("video_size")
        if size is not None:
            size = size_dict(size)
            if "longest_edge" in size:
                kw.update(longest_edge=int(size["longest_edge"]), size=None)
            elif {"height", "width"} <= set(size):
                kw.update(size=(int(size["height"]), int(size["width"])), longest_edge=None)
            else:
                raise UnsupportedError(f"SmolVLM video processor: size {size} is not supported; msce supports "
                                       "{'longest_edge': n} and {'height': h, 'width': w}")
        if "max_image_size" in a:
            kw["max_image_size"] = _edge(a["max_image_size"], "max_image_size")
        if "resample" in a:
            try:
                code = int(a["resample"])
            except (TypeError, ValueError):
                code = None
            if code not in PIL_RESAMPLE:
                raise UnsupportedError(f"SmolVLM video processor: resample={a['resample']!r} is not supported; "
                                       "msce implements LANCZOS (1), BILINEAR (2) and BICUBIC (3)")
            kw["interpolation"] = PIL_RESAMPLE[code]
        if a.get("do_rescale") is False:
            kw["rescale_factor"] = None
        elif "rescale_factor" in a:
            kw["rescale_factor"] = float(a["rescale_factor"])
        for key, name in (("image_mean", "mean"), ("image_std", "std")):
            if key in a:
                v = a[key]
                kw[name] = tuple(float(x) for x in ([v] * 3 if isinstance(v, (int, float)) else v))
        if "do_pad" in a:
            kw["do_pad"] = bool(a["do_pad"])
        return cls(**kw)
