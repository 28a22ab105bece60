"""The CLIP-style video path of Hugging Face's ``BaseVideoProcessor``: resize (shortest edge
or a fixed size) with torch's antialiased uint8 kernel, center crop, fused rescale +
normalize in float32, frames as (T, C, H, W) in one video of ``pixel_values_videos``.

The center crop runs inside the native transform as an output crop: the resampler
computes only the kept rows and columns of the resized frame, which equal those of
resize-then-crop exactly (each output sample has its own filter taps). Cropping the
source first and resizing that would not: the antialiasing filter reads across the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from msce.errors import TransformError, UnsupportedError
from msce.targets.base import DTYPE, FLOAT_DTYPES, INTERP, LAYOUT, Allocation, Target, fused

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["ResizeCrop", "ClipCrop224", "Square384", "shortest_edge_size", "center_crop_offsets", "hf_attrs",
           "check_fixed", "size_dict"]

# PIL resampling codes (PILImageResampling) msce implements -> native filter names. transformers'
# torchvision backend maps them to torch's uint8 antialiased kernels (LANCZOS -> mode "lanczos",
# on CPU with torchvision >= 0.27; older torchvision and CUDA tensors fall back to BICUBIC there).
PIL_RESAMPLE = {1: "lanczos", 2: "bilinear", 3: "bicubic"}


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """HF ``get_resize_output_image_size(default_to_square=False)``: the short side becomes
    ``shortest_edge``, the long side ``int(shortest_edge * long / short)`` (truncated)."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(shortest_edge * long / short)
    return (new_long, shortest_edge) if width <= height else (shortest_edge, new_long)


def center_crop_offsets(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """HF ``center_crop``'s (top, left): ``int((size - crop) / 2.0)`` per side."""
    return int((height - crop_h) / 2.0), int((width - crop_w) / 2.0)


def hf_attrs(processor: Any, names: tuple[str, ...]) -> dict:
    """The named attributes of a HF processor object (or keys of its config dict) that are set."""
    if isinstance(processor, Mapping):
        return {k: processor[k] for k in names if processor.get(k) is not None}
    return {k: getattr(processor, k) for k in names if getattr(processor, k, None) is not None}


_SIZE_KEYS = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width", "min_pixels",
              "max_pixels")


def check_fixed(attrs: Mapping, fixed: Mapping, what: str, target: str) -> None:
    """Refuse a processor whose settings in ``attrs`` differ from the ``fixed`` ones msce's
    ``target`` reproduces (a setting it does not have counts as the fixed value)."""
    for k, want in fixed.items():
        got = attrs.get(k, want)
        same = (tuple(float(v) for v in got) == tuple(want)) if isinstance(want, tuple) else got == want
        if not same:
            raise UnsupportedError(f"{what} with {k}={got!r} is not supported; {target} reproduces {k}={want!r}")


def size_dict(value: Any) -> dict:
    """A HF size (dict or ``SizeDict``) as a dict of its set keys."""
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    return {k: getattr(value, k) for k in _SIZE_KEYS if getattr(value, k, None) is not None}


def _pair(value: Any, name: str) -> tuple[int, int] | None:
    """``value`` as (height, width) ints, None kept; a bool or a non-positive side is an error."""
    if value is None:
        return None
    if len(value) != 2 or any(isinstance(v, bool) or int(v) <= 0 for v in value):
        raise TransformError(f"{name} must be (height, width) with positive sides (got {value!r})")
    return int(value[0]), int(value[1])


def check_pixel_options(target) -> None:
    """The checks every resize + rescale + normalize target shares: a resample filter msce
    implements, a float output dtype, 3 means and 3 non-zero stds, a positive rescale factor."""
    if target.interpolation not in INTERP:
        raise UnsupportedError(f"interpolation {target.interpolation!r} is not supported; msce implements "
                               f"{sorted(INTERP)}")
    if target.dtype not in FLOAT_DTYPES:
        raise TransformError(f"dtype must be one of {', '.join(FLOAT_DTYPES)} (got {target.dtype!r})")
    if len(target.mean) != 3 or len(target.std) != 3 or any(s == 0 for s in target.std):
        raise TransformError("mean and std need 3 values each, std non-zero")
    if target.rescale_factor is not None and not target.rescale_factor > 0:
        raise TransformError(f"rescale_factor must be positive or None (got {target.rescale_factor!r})")

@dataclass(frozen=True)
class ResizeCrop(Target):
    """Resize + center crop + rescale/normalize, as HF's ``BaseVideoProcessor._preprocess``.

    Exactly one of ``shortest_edge`` (short side to this many pixels, aspect kept) and
    ``size`` (height, width). ``crop_size`` (height, width) or None for no center crop.
    Output values are ``(x * rescale_factor - mean) / std`` computed as HF fuses them:
    ``(x - mean / rescale_factor) / (std / rescale_factor)`` in float32 (``rescale_factor``
    None: no rescale, mean/std in 0..255 units). ``FrameBatch.data`` is (T, C, H, W);
    ``to_hf()`` gives ``{key: data[None]}`` as the processor returns one video.
    """

    shortest_edge: int | None = None
    size: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = None
    interpolation: str = "bicubic"
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    dtype: str = "float32"
    key: str = "pixel_values_videos"

    family: ClassVar[str] = "resize_crop"

    def __post_init__(self) -> None:
        if (self.shortest_edge is None) == (self.size is None):
            raise TransformError(f"{type(self).__name__}: give exactly one of shortest_edge and size")
        if self.shortest_edge is not None and (isinstance(self.shortest_edge, bool)
                                               or int(self.shortest_edge) <= 0):
            raise TransformError(f"shortest_edge must be a positive integer (got {self.shortest_edge!r})")
        object.__setattr__(self, "size", _pair(self.size, "size"))
        object.__setattr__(self, "crop_size", _pair(self.crop_size, "crop_size"))
        check_pixel_options(self)

    def resize_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize, before the crop."""
        if self.size is not None:
            return self.size
        return shortest_edge_size(height, width, int(self.shortest_edge))

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        rh, rw = self.resize_size(height, width)
        if self.crop_size is None:
            return rh, rw
        ch, cw = self.crop_size
        if ch > rh or cw > rw:
            raise UnsupportedError(f"center crop {ch}x{cw} is larger than the {rh}x{rw} resized frame; HF pads "
                                   "with zeros there, msce supports crops inside the resized frame only")
        return ch, cw

    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        if size is not None and tuple(size) != self.output_size(num_frames, height, width):
            raise UnsupportedError(f"{type(self).__name__} has a fixed output geometry; plans with a size "
                                   "(token_budget) are supported for msce.QwenVL targets")
        rh, rw = self.resize_size(height, width)
        out_h, out_w = self.output_size(num_frames, height, width)
        top, left = center_crop_offsets(rh, rw, out_h, out_w)
        scale = 1.0 if self.rescale_factor is None else 1.0 / self.rescale_factor
        spec = {"out_h": out_h, "out_w": out_w, "interp": INTERP[self.interpolation], "layout": LAYOUT["NCHW"],
                "dtype": DTYPE[self.dtype], "normalize": True, "mean": fused(self.mean, scale),
                "std": fused(self.std, scale), "patch": 0, "temporal": 1, "merge": 1}
        if (rh, rw) != (out_h, out_w):
            spec.update(resize_h=rh, resize_w=rw, crop_y=top, crop_x=left)
        return Allocation(spec, (num_frames, 3, out_h, out_w), self.dtype, num_frames, None, (out_h, out_w))

    def to_hf(self, batch: FrameBatch, as_image: bool = False) -> dict[str, Any]:
        if as_image:
            raise UnsupportedError(f"{type(self).__name__}.to_hf() gives the video processor's tensors; "
                                   "as_image is supported for msce.QwenVL targets")
        return {self.key: batch.data.unsqueeze(0)}

    def to_dict(self) -> dict:
        return {"kind": self.family, "shortest_edge": self.shortest_edge,
                "size": list(self.size) if self.size else None,
                "crop_size": list(self.crop_size) if self.crop_size else None,
                "interpolation": self.interpolation, "rescale_factor": self.rescale_factor,
                "mean": list(self.mean), "std": list(self.std), "dtype": self.dtype, "key": self.key}

    @classmethod
    def from_hf(cls, processor: Any) -> ResizeCrop:
        """This family's target with a HF processor's settings (an object or its config dict):
        ``size`` ({"shortest_edge"} or {"height", "width"}), ``do_center_crop`` +
        ``crop_size``, ``resample``, ``do_rescale`` + ``rescale_factor``, ``do_normalize`` +
        ``image_mean``/``image_std``; unset ones keep this class's defaults."""
        a = hf_attrs(processor, ("size", "crop_size", "do_center_crop", "resample", "do_rescale",
                                 "rescale_factor", "do_normalize", "image_mean", "image_std", "do_resize"))
        kw: dict[str, Any] = {}
        if a.get("do_resize") is False:
            raise UnsupportedError(f"{cls.__name__}: do_resize=False is not supported (msce always resamples "
                                   "to the processor's size)")
        size = size_dict(a["size"]) if "size" in a else None
        if size is not None:
            if set(size) == {"shortest_edge"}:
                kw.update(shortest_edge=int(size["shortest_edge"]), size=None)
            elif set(size) == {"height", "width"}:
                kw.update(size=(int(size["height"]), int(size["width"])), shortest_edge=None)
            else:
                raise UnsupportedError(f"{cls.__name__}: size {size} is not supported; msce supports "
                                       "{'shortest_edge': n} and {'height': h, 'width': w}")
        if "do_center_crop" in a or "crop_size" in a:
            crop = a.get("crop_size") if a.get("do_center_crop", cls.crop_size is not None) else None
            if crop is not None:
                crop = size_dict(crop)
                kw["crop_size"] = (int(crop["height"]), int(crop["width"]))
            elif "do_center_crop" in a:
                kw["crop_size"] = None
        if "resample" in a:
            code = int(a["resample"])
            if code not in PIL_RESAMPLE:
                raise UnsupportedError(f"{cls.__name__}: resample={code} is not supported; msce implements "
                                       "LANCZOS (1), BILINEAR (2) and BICUBIC (3)")
            kw["interpolation"] = PIL_RESAMPLE[code]
        if a.get("do_normalize") is False:
            raise UnsupportedError(f"{cls.__name__}: do_normalize=False is not supported (HF multiplies by "
                                   "rescale_factor there, msce's transform divides); keep do_normalize=True")
        if a.get("do_rescale") is False:
            kw["rescale_factor"] = None
        elif "rescale_factor" in a:
            kw["rescale_factor"] = float(a["rescale_factor"])
        if "image_mean" in a:
            kw["mean"] = tuple(float(v) for v in _three(a["image_mean"]))
        if "image_std" in a:
            kw["std"] = tuple(float(v) for v in _three(a["image_std"]))
        return cls(**kw)


@dataclass(frozen=True)
class ClipCrop224(ResizeCrop):
    """The CLIP video preset: shortest edge 224, center crop 224x224, bicubic, CLIP mean/std."""

    shortest_edge: int | None = 224
    crop_size: tuple[int, int] | None = (224, 224)


@dataclass(frozen=True)
class Square384(ResizeCrop):
    """A fixed 384x384 resize without crop, bicubic, CLIP mean/std."""

    size: tuple[int, int] | None = (384, 384)


def _three(v: Any) -> list:
    return [v] * 3 if isinstance(v, (int, float)) else list(v)
