"""Qwen-VL targets (Qwen2-VL, Qwen2.5-VL, Qwen2.5-Omni's video path, Qwen3-VL).

``QwenVL`` gives ``pixel_values_videos`` / ``video_grid_thw`` exactly as the Hugging Face
Qwen2-VL / Qwen3-VL video processors compute them: ``smart_resize`` to a multiple of
patch*merge, antialiased bicubic resize with torch's uint8 arithmetic, fused
rescale+normalize in float32, temporal padding by repeating the last frame, and the
(t, h-block, w-block, merge, merge) x (C, tp, p, p) patch order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from msce.errors import TransformError, UnsupportedError
from msce.targets.base import DTYPE, FLOAT_DTYPES, INTERP, LAYOUT, Allocation, Target, fused

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["QwenVL", "smart_resize", "smart_resize_video", "patchify", "CLIP_MEAN", "CLIP_STD"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

# Defaults of the HF video processors (transformers qwen2_vl / qwen3_vl video_processing_*.py;
# Qwen2.5-VL is served by the Qwen2-VL one). Each side of a frame is a multiple of patch*merge.
_QWEN2 = {"patch": 14, "mean": CLIP_MEAN, "std": CLIP_STD, "min_pixels": 128 * 28 * 28,
          "max_pixels": 28 * 28 * 768, "max_video_tokens": 128000}
_HF_DEFAULTS = {
    "2": _QWEN2,
    "2.5": _QWEN2,
    "3": {"patch": 16, "mean": HALF, "std": HALF, "min_pixels": 128 * 32 * 32, "max_pixels": 32 * 32 * 768,
          "max_video_tokens": 768},
}
# Qwen2VLImageProcessor's own pixel bounds (it serves the images of every version, Qwen3-VL's
# with patch 16): min 56*56, max 28*28*1280, per image
_IMAGE_PIXELS = (56 * 56, 28 * 28 * 1280)



def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 14 * 14 * 4 * 1280) -> tuple[int, int]:
    """Qwen2/2.5-VL ``smart_resize``: each side rounded (half to even) to a multiple of
    ``factor``; if the area exceeds ``max_pixels`` both sides shrink by sqrt(area/max) and
    floor, if below ``min_pixels`` they grow and ceil. Computed by the native core."""
    from msce._native import C

    return tuple(C.smart_resize(int(height), int(width), int(factor), int(min_pixels), int(max_pixels)))


def smart_resize_video(num_frames: int, height: int, width: int, temporal_factor: int = 2, factor: int = 32,
                       min_pixels: int = 128 * 32 * 32, max_pixels: int = 768 * 32 * 32) -> tuple[int, int]:
    """Qwen3-VL's video ``smart_resize``: the pixel budget covers the whole clip (t*h*w)."""
    if num_frames < temporal_factor:
        raise TransformError(
            f"Qwen3-VL video budget needs at least {temporal_factor} frames (got {num_frames}); "
            "send single frames as images")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise TransformError(f"aspect ratio must be below 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


@dataclass(frozen=True)
class QwenVL(Target):
    """Qwen-VL video tensors. ``version`` is "2", "2.5" or "3".

    Every default equals the default-constructed HF video processor of that version
    (Qwen2-VL and Qwen2.5-VL share ``Qwen2VLVideoProcessor``; Qwen3-VL has
    ``Qwen3VLVideoProcessor``); tests/parity/test_hf_processor.py checks them field by field.
    ``min_pixels`` / ``max_pixels`` default to the processor's ``size``
    (shortest_edge / longest_edge): per frame for Qwen2/2.5, for the whole clip (t*h*w) for
    Qwen3. ``cap_pixels_per_frame`` mirrors the HF option of the same name (HF leaves it
    unset, which behaves as False). ``max_video_tokens`` (None = the version's HF default) is
    read only with ``cap_pixels_per_frame`` and its unit differs by version, as in HF:
    Qwen2/2.5 take it as the context length in tokens (128000; each frame may use
    ``0.9 * max_video_tokens * factor**2 * temporal / num_frames`` pixels), Qwen3 as a
    per-frame token ceiling (768; each frame may use ``max_video_tokens * factor**2``
    pixels). Frame sampling (HF's fps / num_frames) is not a target setting: msce plans
    choose the frames.

    ``image=True`` follows the image processor instead (``Qwen2VLImageProcessor``, which HF
    uses for the images of Qwen2-VL, Qwen2.5-VL and, with patch 16 and mean = std = 0.5,
    Qwen3-VL): ``smart_resize`` of each frame within ``min_pixels`` / ``max_pixels`` (default
    its own 56*56 and 28*28*1280), for every version; the layout is the same (one frame is
    repeated to the temporal patch, as the image processor tiles it).
    """

    version: str = "2.5"
    min_pixels: int | None = None
    max_pixels: int | None = None
    cap_pixels_per_frame: bool = False
    max_video_tokens: int | None = None
    dtype: str = "float32"
    interpolation: str = "bicubic"
    image: bool = False

    def __post_init__(self) -> None:
        if self.version not in _HF_DEFAULTS:
            raise TransformError(f"QwenVL version must be '2', '2.5' or '3' (got {self.version!r})")
        if self.max_video_tokens is None:
            object.__setattr__(self, "max_video_tokens", _HF_DEFAULTS[self.version]["max_video_tokens"])
        elif (isinstance(self.max_video_tokens, bool) or not isinstance(self.max_video_tokens, int)
              or self.max_video_tokens <= 0):
            raise TransformError(f"QwenVL max_video_tokens must be a positive integer (got {self.max_video_tokens!r})")
        if self.dtype not in FLOAT_DTYPES:
            raise TransformError(f"QwenVL dtype must be one of {', '.join(FLOAT_DTYPES)} (got {self.dtype!r})")
        if self.interpolation not in INTERP:
            raise TransformError(f"interpolation must be one of {sorted(INTERP)}")
        lo, hi = self.resolved_pixels
        if lo <= 0 or hi <= 0 or lo > hi:
            raise TransformError(f"need 0 < min_pixels <= max_pixels (got {lo}, {hi})")

    @property
    def patch(self) -> int:
        return _HF_DEFAULTS[self.version]["patch"]

    temporal: int = field(default=2, init=False)
    merge: int = field(default=2, init=False)

    @property
    def factor(self) -> int:
        return self.patch * self.merge

    @property
    def mean(self) -> tuple[float, float, float]:
        return _HF_DEFAULTS[self.version]["mean"]

    @property
    def std(self) -> tuple[float, float, float]:
        return _HF_DEFAULTS[self.version]["std"]

    @property
    def rescale_factor(self) -> float:
        """uint8 -> [0, 1] scale applied before mean/std (fused: ``(x - mean/r) / (std/r)``)."""
        return 1 / 255

    @property
    def clip_budget(self) -> bool:
        """True where the pixel budget covers the whole clip (Qwen3-VL videos)."""
        return self.version == "3" and not self.image

    @property
    def resolved_pixels(self) -> tuple[int, int]:
        lo, hi = _IMAGE_PIXELS if self.image else (_HF_DEFAULTS[self.version]["min_pixels"],
                                                    _HF_DEFAULTS[self.version]["max_pixels"])
        return (self.min_pixels if self.min_pixels is not None else lo,
                self.max_pixels if self.max_pixels is not None else hi)

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """Resized (height, width) for a clip of ``num_frames`` frames of height x width."""
        lo, hi = self.resolved_pixels
        f = self.factor
        if self.image:
            return smart_resize(height, width, f, lo, hi)
        if self.version == "3":
            if self.cap_pixels_per_frame:
                per_frame = max(min(self.max_video_tokens * f * f, hi // num_frames), int(lo * 1.05))
                hi = per_frame * num_frames
            return smart_resize_video(max(num_frames, self.temporal), height, width, self.temporal, f, lo, hi)
        if self.cap_pixels_per_frame:
            total = int(self.max_video_tokens * f * f * 0.9)
            hi = max(min(hi, total * self.temporal // num_frames), int(lo * 1.05))
        return smart_resize(height, width, f, lo, hi)

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        gt = -(-num_frames // self.temporal)
        return gt, height // self.patch, width // self.patch

    def num_tokens(self, num_frames: int, height: int, width: int) -> int:
        gt, gh, gw = self.grid(num_frames, height, width)
        return gt * gh * gw // (self.merge * self.merge)

    counts_tokens = True

    def fit_budget(self, max_tokens: int, num_frames: int, height: int, width: int) -> tuple[int, int] | None:
        """Largest smart-resized size whose ``num_frames``-frame clip costs <= ``max_tokens``:
        the token budget of a temporal patch, as pixels per frame, caps the per-frame pixel
        budget (Qwen2/2.5) or the clip budget (Qwen3, whose budget covers t*h*w)."""
        n = num_frames
        lo, hi = self.resolved_pixels
        f = self.factor
        gt = -(-n // self.temporal)
        budget = (max_tokens // gt) * self.merge * self.merge * self.patch * self.patch
        frame_pixels = min(hi if not self.clip_budget else hi // max(n, self.temporal), budget)
        if frame_pixels < f * f:
            return None
        if self.clip_budget:
            if frame_pixels * max(n, 2) >= hi:
                h, w = self.output_size(n, height, width)
            else:
                total = frame_pixels * max(n, self.temporal)
                h, w = smart_resize_video(max(n, self.temporal), height, width, self.temporal, f, min(lo, total),
                                          total)
        else:
            h, w = smart_resize(height, width, f, min(lo, frame_pixels), frame_pixels)
        return (h, w) if self.num_tokens(n, h, w) <= max_tokens else None

    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        out_h, out_w = size if size is not None else self.output_size(num_frames, height, width)
        gt, gh, gw = self.grid(num_frames, out_h, out_w)
        shape = (gt * gh * gw, 3 * self.temporal * self.patch ** 2)
        return Allocation(self.native_spec(out_h, out_w), shape, self.dtype, gt * self.temporal, (gt, gh, gw),
                          (out_h, out_w))

    def to_hf(self, batch: FrameBatch, as_image: bool = False) -> dict[str, Any]:
        """``pixel_values_videos`` / ``video_grid_thw`` (``pixel_values`` / ``image_grid_thw``
        with ``as_image`` for a one-frame batch), as the Qwen processors return them."""
        if as_image:
            if len(batch.plan) != 1:
                raise TransformError(f"as_image needs a one-frame batch (this one has {len(batch.plan)} frames)")
            return {"pixel_values": batch.data, "image_grid_thw": batch.grid_thw}
        return {"pixel_values_videos": batch.data, "video_grid_thw": batch.grid_thw}

    def hf_timing(self, batch: FrameBatch) -> dict[str, Any]:
        """The time inputs the model's HF processor adds for this video: for Qwen2.5-VL
        ``second_per_grid_ts`` = tensor([temporal_patch_size / sampled_fps]) as
        ``Qwen2_5_VLProcessor`` computes it, with HF's ``VideoMetadata.sampled_fps`` =
        len(frames_indices) / total_num_frames * fps of :meth:`FrameBatch.video_metadata`
        (24 FPS where the rate is unknown, as HF). Qwen2-VL and Qwen3-VL take none ({})."""
        if self.version != "2.5":
            return {}
        import torch

        md = batch.video_metadata()
        fps, total, n = md.get("fps"), md.get("total_num_frames"), len(md.get("frames_indices") or ())
        sampled = n / total * fps if fps and total and n else (fps or 24.0)
        return {"second_per_grid_ts": torch.tensor([self.temporal / sampled], dtype=torch.float32)}

    def native_spec(self, out_h: int, out_w: int) -> dict:
        return {
            "out_h": out_h, "out_w": out_w, "interp": INTERP[self.interpolation], "layout": LAYOUT["qwen"],
            "dtype": DTYPE[self.dtype], "normalize": True, "mean": fused(self.mean, 1.0 / self.rescale_factor),
            "std": fused(self.std, 1.0 / self.rescale_factor),
            "patch": self.patch, "temporal": self.temporal, "merge": self.merge,
        }

    @classmethod
    def from_hf(cls, processor: Any, version: str | None = None, image: bool = False) -> QwenVL:
        """The QwenVL target of a HF Qwen2-VL / Qwen3-VL video processor (object or config
        dict): version from the class (or ``version``), min/max pixels from ``size``
        (shortest_edge / longest_edge) or ``min_pixels`` / ``max_pixels`` (which win, as in
        HF). Patch sizes, mean/std and the filter must be the version's HF defaults.
        ``image=True`` reads a ``Qwen2VLImageProcessor`` (an ``image=True`` target; the
        version from its patch size, 16 for Qwen3-VL, unless given)."""
        from msce.targets.resize_crop import check_fixed, hf_attrs, size_dict

        if version is None:
            name = processor.get("video_processor_type", processor.get("image_processor_type", "")) \
                if isinstance(processor, dict) else type(processor).__name__
            version = "3" if name.startswith("Qwen3VL") else "2.5"
            if image:
                patch = processor.get("patch_size") if isinstance(processor, dict) else \
                    getattr(processor, "patch_size", None)
                version = "3" if patch == 16 else "2.5"
        a = hf_attrs(processor, ("size", "min_pixels", "max_pixels", "patch_size", "temporal_patch_size",
                                 "merge_size", "image_mean", "image_std", "resample", "do_resize", "do_rescale",
                                 "rescale_factor", "do_normalize", "do_center_crop"))
        d = _HF_DEFAULTS[version]
        fixed = {"patch_size": d["patch"], "temporal_patch_size": 2, "merge_size": 2, "image_mean": d["mean"],
                 "image_std": d["std"], "resample": 3, "do_resize": True, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True}
        what = "image" if image else "video"
        check_fixed(a, fixed, f"Qwen-VL {version} {what} processor", "msce.QwenVL")
        if a.get("do_center_crop"):
            raise UnsupportedError(f"Qwen-VL {what} processor with do_center_crop=True is not supported")
        size = size_dict(a["size"]) if "size" in a else {}
        lo = a.get("min_pixels", size.get("shortest_edge"))
        hi = a.get("max_pixels", size.get("longest_edge"))
        return cls(version=version, min_pixels=None if lo is None else int(lo),
                   max_pixels=None if hi is None else int(hi), image=bool(image))

    def to_dict(self) -> dict:
        d = {"kind": "qwenvl", "version": self.version, "min_pixels": self.resolved_pixels[0],
             "max_pixels": self.resolved_pixels[1], "cap_pixels_per_frame": self.cap_pixels_per_frame,
             "max_video_tokens": self.max_video_tokens, "dtype": self.dtype, "interpolation": self.interpolation}
        if self.image:  # video targets keep the dict (and the run records) they had
            d["image"] = True
        return d


def patchify(frames: "np.ndarray", patch: int, temporal: int = 2, merge: int = 2) -> "np.ndarray":
    """Reference Qwen-VL patch layout in NumPy: (T, C, H, W) -> (gt*gh*gw, C*temporal*patch*patch).

    T is padded to a multiple of ``temporal`` by repeating the last frame; rows are ordered
    (t, h-block, w-block, merge-row, merge-col), columns (channel, temporal, y, x). The native
    transform writes this layout directly; this function is its specification and test oracle.
    """
    x = np.asarray(frames)
    if x.ndim != 4:
        raise TransformError(f"patchify expects (T, C, H, W), got shape {x.shape}")
    t, c, h, w = x.shape
    if h % (patch * merge) or w % (patch * merge):
        raise TransformError(f"frame size {h}x{w} is not a multiple of patch*merge = {patch * merge}")
    if t % temporal:
        x = np.concatenate([x, np.repeat(x[-1:], temporal - t % temporal, axis=0)], axis=0)
        t = x.shape[0]
    gt, gh, gw = t // temporal, h // patch, w // patch
    v = x.reshape(gt, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    v = v.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return v.reshape(gt * gh * gw, c * temporal * patch * patch)
