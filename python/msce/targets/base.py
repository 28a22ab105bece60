"""The Target interface: what a model family's processor does to a clip of frames.

A target answers, for a clip of ``num_frames`` frames of ``height`` x ``width`` (after any
source crop): the output size (:meth:`Target.output_size`), the native transform and the
output tensor to allocate (:meth:`Target.allocation`), the LLM tokens it costs
(:meth:`Target.num_tokens`), the largest size that fits a token budget
(:meth:`Target.fit_budget`) and the tensors the Hugging Face model takes
(:meth:`Target.to_hf`). Code outside ``msce.targets`` uses only this interface: no other
module knows a family's formulas.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from msce._native import C

from msce.errors import TransformError, UnsupportedError

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["Target", "Allocation", "LAYOUT", "DTYPE", "INTERP", "fused"]

# The native TransformSpec's enums by name, as the bindings export them (msce._C.Layout,
# DType, Interp from csrc/pixel/transform.hpp and resample.hpp): no integer copies here.
LAYOUT = dict(C.Layout.__members__)
DTYPE = dict(C.DType.__members__)
# float output dtypes; bfloat16 is torch's float32 -> bfloat16 cast (round to nearest even)
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
INTERP = dict(C.Interp.__members__)


def fused(values: tuple[float, float, float], scale: float = 255.0) -> list[float]:
    """HF's fused rescale+normalize constants: ``torch.tensor(values) * (1 / rescale_factor)``
    in float32 (``scale`` = 1 / rescale_factor)."""
    return [float(v) for v in (np.asarray(values, dtype=np.float32) * np.float32(scale))]


@dataclass(frozen=True)
class Allocation:
    """The output of one clip: the native transform ``spec`` (a TransformSpec dict), the
    output ``shape`` and ``dtype`` ("uint8", "float16", "bfloat16", "float32"), the number of frame
    ``slots`` the native job writes (Qwen pads to a multiple of the temporal patch), the
    patch ``grid`` (t, h, w) or None, and the per-frame output ``size`` (height, width)."""

    spec: dict
    shape: tuple[int, ...]
    dtype: str
    slots: int
    grid: tuple[int, int, int] | None
    size: tuple[int, int]


class Target(ABC):
    """Base class of every output target (frozen dataclasses, one module per family).

    Subclasses implement :meth:`output_size`, :meth:`allocation` and :meth:`to_dict`;
    token-counting families also :meth:`num_tokens` and :meth:`fit_budget` (and set
    ``counts_tokens``), HF-shaped families :meth:`to_hf`.
    """

    counts_tokens = False  # True when num_tokens/fit_budget are defined (token_budget plans)

    @abstractmethod
    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """Per-frame output (height, width) for a clip of ``num_frames`` frames of height x width."""

    @abstractmethod
    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        """The native job and output tensor for the clip; ``size`` overrides the output size
        (a plan's size chosen by :meth:`fit_budget`)."""

    def num_tokens(self, num_frames: int, height: int, width: int) -> int:
        """LLM tokens of a clip of ``num_frames`` frames resized to height x width; 0 when the
        target does not count tokens."""
        return 0

    def fit_budget(self, max_tokens: int, num_frames: int, height: int, width: int) -> tuple[int, int] | None:
        """The largest output (height, width) for ``num_frames`` frames of a height x width
        source that costs at most ``max_tokens``, or None when no size fits."""
        raise UnsupportedError(f"{type(self).__name__} does not count tokens; token budgets are supported for "
                               "msce.QwenVL targets")

    def to_hf(self, batch: FrameBatch, as_image: bool = False) -> dict[str, Any]:
        """The tensors the family's Hugging Face model takes for ``batch``."""
        raise TransformError(f"to_hf() is not defined for {type(self).__name__} targets; use msce.target_for(...) "
                             "or msce.QwenVL for Hugging Face tensors")

    @abstractmethod
    def to_dict(self) -> dict:
        """The target's settings as JSON-ready data (recorded in plans and runs)."""
