"""Motion between consecutive frames for the visual prompts: luma differences, OpenCV's
Farneback dense flow, and :func:`motion_maps` (per-pixel motion magnitude).

Motion "at frame t" is the motion between frames t-1 and t; frame 0 takes the motion
between frames 0 and 1; a single frame has no motion.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from msce._validate import count
from msce.models.visual_prompts.base import _check_frames, _choice, _cv2

# BT.601 luma weights, for motion and tracking on one channel.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ _LUMA


def _luma_u8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(_luma(frame)), 0, 255).astype(np.uint8)


def _box_blur(m: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window (edges repeated), separable, by cumulative sums."""
    if radius <= 0:
        return m
    k = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(m, pad, mode="edge"), axis=axis, dtype=np.float64)
        hi = np.take(c, np.arange(k, c.shape[axis]), axis=axis)
        lo = np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
        m = ((hi - lo) / k).astype(np.float32)
    return m


def _pairwise(frames: np.ndarray, fn) -> Iterator[Any]:
    """fn(frame t-1, frame t) for t = 1..T-1, with frame 0 given the result for (0, 1):
    yields T results in order (None for a single frame)."""
    if len(frames) < 2:
        yield None
        return
    first = fn(frames[0], frames[1])
    yield first
    yield first
    for t in range(2, len(frames)):
        yield fn(frames[t - 1], frames[t])


def _farneback(cv2, levels: int, winsize: int):
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(_luma_u8(a), _luma_u8(b), None, 0.5, levels, winsize, 3, 5, 1.1, 0)

    return flow


def _motion_iter(frames: np.ndarray, method: str, smooth_px: int, levels: int = 3,
                 winsize: int = 15) -> Iterator[np.ndarray]:
    h, w = frames.shape[1:3]
    if method == "diff":
        def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.abs(_luma(b) - _luma(a))
    else:
        flow = _farneback(_cv2("motion='flow'"), levels, winsize)

        def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            f = flow(a, b)
            return np.hypot(f[..., 0], f[..., 1]).astype(np.float32)

    for m in _pairwise(frames, fn):
        yield np.zeros((h, w), np.float32) if m is None else _box_blur(m, smooth_px)


def motion_maps(frames: Any, method: str = "diff", smooth: int = 0, levels: int = 3,
                winsize: int = 15) -> np.ndarray:
    """Per-pixel motion magnitude (T, H, W) float32 of uint8 RGB frames (T, H, W, 3).

    ``method="diff"``: |Y_t - Y_{t-1}| of the BT.601 luma (grey levels per frame);
    ``"flow"``: the length of OpenCV's Farneback dense flow from frame t-1 to t (pixels per
    frame; ``levels`` pyramid levels, ``winsize`` averaging window). Frame 0 gets the
    motion between frames 0 and 1; a single frame gets zeros. ``smooth``: radius (px) of a
    box filter applied twice to each map (0 = none).
    """
    arr = _check_frames(frames)
    _choice("motion_maps", "method", method, ("diff", "flow"))
    r = count("motion_maps", "smooth", smooth, lo=0)
    return np.stack(list(_motion_iter(arr, method, r, levels, winsize)))

