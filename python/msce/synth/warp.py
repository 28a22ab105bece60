"""The local warp: a smooth displacement field from landmark moves, applied exactly.

Landmark ``l`` at ``p_l`` moving by ``d_l`` drags the skin around it with a Gaussian
weight; the forward field is ``u(y) = sum_l exp(-|y - p_l|^2 / (2 sigma_l^2)) d_l``: the
content at ``y`` goes to ``y + u(y)``, so a landmark moves by ``u(p_l)`` (its own ``d_l``
plus whatever its neighbours' weights add). A frame is made by backward mapping,
``out(x) = src(x - v(x))``, where the backward field ``v`` solves ``v(x) = u(x - v(x))``;
it is found by fixed-point iteration (:func:`backward_displacement`), which converges
because ``|grad u| < 1`` for the actions in this package (no fold-over). Far from every
landmark ``u = v = 0`` and the picture is unchanged. Sampling is bilinear (torch
``grid_sample``).
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["gaussian_weights", "bilinear_sample", "backward_displacement"]


def gaussian_weights(points: Sequence[Sequence[float]], sigmas: Sequence[float], x0: int, y0: int, x1: int,
                     y1: int) -> torch.Tensor:
    """``exp(-|y - p_l|^2 / (2 sigma_l^2))`` on the pixel grid [x0, x1) x [y0, y1):
    float32 (L, y1 - y0, x1 - x0). The field of moves ``d`` (L, 2) is then
    ``einsum("lc,lhw->chw", d, weights)``."""
    gy, gx = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32), torch.arange(x0, x1, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([torch.exp(((gx - float(px)) ** 2 + (gy - float(py)) ** 2) * (-0.5 / float(s) ** 2))
                        for (px, py), s in zip(points, sigmas)])


def bilinear_sample(planes: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, outside: str = "border") -> torch.Tensor:
    """``planes`` float32 (C, H, W) sampled at (xs, ys) (float32 (h, w); pixel centres at
    integers) with bilinear weights (``grid_sample`` with align_corners). Positions outside
    take the nearest edge pixel (``outside="border"``) or 0 (``"zeros"``). Returns (C, h, w)."""
    _, h, w = planes.shape
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0
    gy = ys * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)[None]
    out = torch.nn.functional.grid_sample(planes[None], grid, mode="bilinear", padding_mode=outside,
                                          align_corners=True)
    return out[0]


def backward_displacement(field: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, x0: float, y0: float,
                          iterations: int = 8, tolerance: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward field ``v`` with ``v(x) = u(x - v(x))`` at positions (xs, ys), for the
    forward field ``u`` given as ``field`` (2, h, w) on the grid whose first pixel is at
    (x0, y0) (0 outside it). Fixed-point steps (each shrinks the error by about
    max|grad u|) until no value changes by more than ``tolerance`` pixels, at most
    ``iterations`` of them."""
    v = bilinear_sample(field, xs - x0, ys - y0, outside="zeros")
    for _ in range(iterations):
        nxt = bilinear_sample(field, xs - v[0] - x0, ys - v[1] - y0, outside="zeros")
        done = float((nxt - v).abs().max()) < tolerance
        v = nxt
        if done:
            break
    return v[0], v[1]
