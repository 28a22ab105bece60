"""Argument checks shared across the layers: a batch of RGB frames, and the numbers of
option records (``FaceCrop``, ``SpotOptions``, ``ClipSpec``, the visual prompts).

Each check raises an :class:`msce.errors.MsceError` subclass (chosen by the caller) whose
message names the parameter, what it must be and the value it got, so the same mistake
reads the same wherever it is made.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from msce.errors import ConfigError, MsceError, TransformError

__all__ = ["rgb_frames", "number", "count"]

A = TypeVar("A")


def rgb_frames(frames: A, uint8: Any, what: str = "frames") -> A:
    """``frames`` as a batch of RGB frames: shape (T, H, W, 3), dtype ``uint8``, no axis of
    length 0; a single (H, W, 3) frame becomes a batch of one (a view, nothing is copied).

    Works on NumPy arrays and torch tensors alike (``uint8``: ``np.uint8`` or
    ``torch.uint8``). Raises :class:`TransformError` naming ``what``.
    """
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    shape = tuple(frames.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise TransformError(f"{what} must have shape (T, H, W, 3); got {shape}")
    if frames.dtype != uint8:
        raise TransformError(f"{what} must be uint8 RGB; got dtype {frames.dtype}")
    if 0 in shape:
        raise TransformError(f"{what} is empty; got shape {shape}")
    return frames


def number(owner: str, name: str, v: Any, lo: float = 0.0, hi: float = math.inf, lo_open: bool = True,
           none_ok: bool = False, error: type[MsceError] = ConfigError) -> float | None:
    """``owner.name`` as a float: a finite real number (not a bool) in ``(lo, hi]``
    (``[lo, hi]`` when not ``lo_open``), or None when ``none_ok``."""
    if v is None and none_ok:
        return None
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v > hi or v < lo or (lo_open and v == lo):
        bound = (f"{'>' if lo_open else '>='} {lo:g}" if hi == math.inf
                 else f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
        raise error(f"{owner}.{name} must be a number {bound}{' or None' if none_ok else ''} (got {v!r})")
    return float(v)


def count(owner: str, name: str, v: Any, lo: int = 1, none_ok: bool = False,
          error: type[MsceError] = ConfigError) -> int | None:
    """``owner.name`` as an int: an integer (Python or NumPy, not a bool) >= ``lo``, or None
    when ``none_ok``."""
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise error(f"{owner}.{name} must be an int >= {lo}{' or None' if none_ok else ''} (got {v!r})")
    return int(v)
