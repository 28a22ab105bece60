"""Pixel primitives of the visual prompts: colour maps, alpha blending, disks and line
segments stamped into frames, and the integer windows of ellipses and boxes.

All NumPy, so the drawn bytes do not depend on an OpenCV build. Coordinates are pixels,
x to the right, y down; pixel (row i, column j) covers [j, j+1) x [i, i+1).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from msce.errors import ConfigError


def colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table. "jet": r, g, b = clip(1.5 - |4x - c|) with c = 3, 2, 1;
    "hot": r, g, b = clip(3x - k) with k = 0, 1, 2 (x in [0, 1], clip to [0, 1])."""
    x = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        rgb = np.stack([1.5 - np.abs(4 * x - c) for c in (3, 2, 1)], axis=1)
    elif name == "hot":
        rgb = np.stack([3 * x - k for k in (0, 1, 2)], axis=1)
    else:
        raise ConfigError(f"unknown colormap {name!r}; expected 'jet' or 'hot'")
    return np.rint(255 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _blend(pixels: np.ndarray, colors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """round(pixels * (1 - alpha) + colors * alpha) in float32; alpha = 0 leaves a pixel exact."""
    a = alpha.astype(np.float32)[..., None]
    out = pixels.astype(np.float32) * (1.0 - a) + colors.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _disk(radius: float) -> np.ndarray:
    """(M, 2) integer (dy, dx) offsets with dy^2 + dx^2 <= radius^2 (radius 0: the centre)."""
    k = int(math.floor(max(radius, 0.0)))
    dy, dx = np.mgrid[-k:k + 1, -k:k + 1]
    keep = dy * dy + dx * dx <= radius * radius + 1e-9
    return np.stack([dy[keep], dx[keep]], axis=1)


def _stamp(img: np.ndarray, x: np.ndarray, y: np.ndarray, color: Sequence[int], radius: float) -> None:
    """Paints a disk of ``radius`` around each point (x, y) of ``img`` (H, W, 3) in place;
    a point lies in pixel (floor(y), floor(x)); non-finite points are skipped."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    cx = np.floor(x[ok]).astype(np.int64)
    cy = np.floor(y[ok]).astype(np.int64)
    off = _disk(radius)
    yy = (cy[:, None] + off[None, :, 0]).ravel()
    xx = (cx[:, None] + off[None, :, 1]).ravel()
    h, w = img.shape[:2]
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    img[yy[inside], xx[inside]] = np.asarray(color, dtype=np.uint8)


def _segment_points(p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along N segments p0 -> p1 ((N, 2) each), at most half a pixel apart."""
    p0 = np.asarray(p0, dtype=np.float64).reshape(-1, 2)
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1, 2)
    if p0.shape[0] == 0:
        return np.empty(0), np.empty(0)
    longest = float(np.nanmax(np.hypot(*(p1 - p0).T), initial=0.0))
    s = np.linspace(0.0, 1.0, int(math.ceil(2 * longest)) + 2)
    pts = p0[:, None, :] + (p1 - p0)[:, None, :] * s[None, :, None]
    return pts[..., 0].ravel(), pts[..., 1].ravel()


def _draw_segments(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: Sequence[int], thickness: int) -> None:
    x, y = _segment_points(p0, p1)
    _stamp(img, x, y, color, (thickness - 1) / 2)


def _ellipse_window(cx: float, cy: float, a: float, b: float, h: int, w: int):
    """Integer window [y0, y1) x [x0, x1) covering the ellipse, clipped to the frame, and the
    normalized radius^2 ((x - cx) / a)^2 + ((y - cy) / b)^2 at the window's pixel centres
    (None if the window is empty)."""
    x0, x1 = max(0, int(math.floor(cx - a))), min(w, int(math.ceil(cx + a)) + 1)
    y0, y1 = max(0, int(math.floor(cy - b))), min(h, int(math.ceil(cy + b)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1) + 0.5 - cx) / a
    ys = (np.arange(y0, y1) + 0.5 - cy) / b
    return (y0, y1, x0, x1), ys[:, None] ** 2 + xs[None, :] ** 2


def _box_window(box: np.ndarray, scale: float, h: int, w: int) -> tuple[int, int, int, int] | None:
    """The box scaled by ``scale`` about its centre, as an integer window [y0, y1) x [x0, x1)
    clipped to the frame (None when empty)."""
    x, y, bw, bh = (float(v) for v in box)
    cx, cy = x + bw / 2, y + bh / 2
    x0, x1 = max(0, int(math.floor(cx - scale * bw / 2))), min(w, int(math.ceil(cx + scale * bw / 2)))
    y0, y1 = max(0, int(math.floor(cy - scale * bh / 2))), min(h, int(math.ceil(cy + scale * bh / 2)))
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1

