"""The native motion energy (csrc/motion/energy.cpp, SIMD warp and block sums) against a
plain float64 NumPy implementation of the method its header documents: luma, binomial blur,
normalization, block Lucas-Kanade with Tikhonov regularization, a weighted affine head motion
refitted without its worst 30 % of blocks, coarse to fine with a Catmull-Rom warp, and the mean
of the largest block residuals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msce import motion


# ---- reference ---------------------------------------------------------------------------

def ref_prepare(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float64)
    if f.ndim == 3:
        f = (77 * f[..., 0] + 150 * f[..., 1] + 29 * f[..., 2]) / 256
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    h, w = f.shape
    p = np.pad(f, ((0, 0), (2, 2)), mode="edge")
    f = sum(k[i] * p[:, i:i + w] for i in range(5))
    p = np.pad(f, ((2, 2), (0, 0)), mode="edge")
    f = sum(k[i] * p[i:i + h, :] for i in range(5))
    var = max(0.0, float(np.mean(f * f)) - float(np.mean(f)) ** 2)
    return (f - f.mean()) * (1 / math.sqrt(var) if var > 1e-12 else 1.0)


def ref_halve(f: np.ndarray) -> np.ndarray:
    h, w = f.shape[0] // 2 * 2, f.shape[1] // 2 * 2
    f = f[:h, :w]
    return 0.25 * (f[0::2, 0::2] + f[0::2, 1::2] + f[1::2, 0::2] + f[1::2, 1::2])


class Grid:
    """Block LK normal equations, flows and corner strengths of one frame pair."""

    def __init__(self, i0, i1, valid, bs, reg):
        h, w = i0.shape
        nby, nbx = h // bs, w // bs
        mid = 0.5 * (i0 + i1)
        xs, ys = np.arange(w), np.arange(h)
        gx = 0.5 * (mid[:, np.minimum(xs + 1, w - 1)] - mid[:, np.maximum(xs - 1, 0)])
        gy = 0.5 * (mid[np.minimum(ys + 1, h - 1), :] - mid[np.maximum(ys - 1, 0), :])
        gt = i1 - i0
        if valid is not None:
            gx, gy = gx * valid, gy * valid

        def blocks(a):
            return a[:nby * bs, :nbx * bs].reshape(nby, bs, nbx, bs).sum(axis=(1, 3)).ravel()

        self.sxx, self.sxy, self.syy = blocks(gx * gx), blocks(gx * gy), blocks(gy * gy)
        self.sxt, self.syt = blocks(gx * gt), blocks(gy * gt)
        by, bx = np.meshgrid(np.arange(nby), np.arange(nbx), indexing="ij")
        self.cx = (((bx + 0.5) * bs - 0.5 * w) / (0.5 * w)).ravel()
        self.cy = (((by + 0.5) * bs - 0.5 * h) / (0.5 * h)).ravel()
        self.lam = reg * float(np.mean(self.sxx + self.syy)) + 1e-9
        a, c, d = self.sxx + self.lam, self.syy + self.lam, self.sxy
        det = a * c - d * d
        self.vx = (-c * self.sxt + d * self.syt) / det
        self.vy = (d * self.sxt - a * self.syt) / det
        tr = self.sxx + self.syy
        disc = np.sqrt(np.maximum(0.0, tr * tr - 4 * (self.sxx * self.syy - self.sxy ** 2)))
        self.weight = np.maximum(0.0, 0.5 * (tr - disc))

    def field(self, p, which):
        return p[which] + p[which + 1] * self.cx + p[which + 2] * self.cy

    def fit(self, used):
        m = used & (self.weight > 0)
        phi = np.stack([np.ones(m.sum()), self.cx[m], self.cy[m]], axis=1)
        wt = self.weight[m]
        n = (phi * wt[:, None]).T @ phi
        ax = np.linalg.solve(n, (phi * wt[:, None]).T @ self.vx[m])
        ay = np.linalg.solve(n, (phi * wt[:, None]).T @ self.vy[m])
        return np.concatenate([ax, ay])

    def robust_fit(self):
        g = self.fit(np.ones_like(self.weight, dtype=bool))
        tex = self.weight > 0
        err = np.hypot(self.vx - self.field(g, 0), self.vy - self.field(g, 3))[tex]
        if err.size < 4:
            return g
        cut = np.sort(err)[int(0.7 * (err.size - 1))]
        used = np.zeros_like(tex)
        used[tex] = err <= cut
        return self.fit(used)

    def residuals(self, dg):
        gx, gy = self.field(dg, 0), self.field(dg, 3)
        rx = -self.sxt - (self.sxx * gx + self.sxy * gy)
        ry = -self.syt - (self.sxy * gx + self.syy * gy)
        a, c, d = self.sxx + self.lam, self.syy + self.lam, self.sxy
        det = a * c - d * d
        return np.hypot((c * rx - d * ry) / det, (-d * rx + a * ry) / det)


def catmull_rom(f):
    return [0.5 * (-f ** 3 + 2 * f ** 2 - f), 0.5 * (3 * f ** 3 - 5 * f ** 2 + 2),
            0.5 * (-3 * f ** 3 + 4 * f ** 2 + f), 0.5 * (f ** 3 - f ** 2)]


def ref_warp(src, p):
    """dst(x) = src(x - g(x)), g affine over coordinates normalized to [-1, 1] about the centre."""
    h, w = src.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (x + 0.5 - w / 2) / (w / 2), (y + 0.5 - h / 2) / (h / 2)
    ux = x - (p[0] + p[1] * cx + p[2] * cy)
    uy = y - (p[3] + p[4] * cx + p[5] * cy)
    valid = ((ux >= 0) & (ux <= w - 1) & (uy >= 0) & (uy <= h - 1)).astype(np.float64)
    sx, sy = np.clip(ux, 0, w - 1), np.clip(uy, 0, h - 1)
    ix, iy = np.floor(sx).astype(int), np.floor(sy).astype(int)
    wx, wy = catmull_rom(sx - ix), catmull_rom(sy - iy)
    out = np.zeros_like(src)
    for j in range(4):
        for i in range(4):
            out += wy[j] * wx[i] * src[np.clip(iy - 1 + j, 0, h - 1), np.clip(ix - 1 + i, 0, w - 1)]
    return out, valid


def ref_motion_energy(frames, block=8, top_fraction=0.05, regularization=0.2):
    n = len(frames)
    out = {k: np.zeros(n) for k in ("energy", "difference", "global_dx", "global_dy")}
    h, w = frames.shape[1:3]
    coarse = h // 2 >= 3 * block and w // 2 >= 3 * block
    prepared = [ref_prepare(f) for f in frames]
    for t in range(1, n):
        prev, cur = prepared[t - 1], prepared[t]
        out["difference"][t] = np.mean(np.abs(cur - prev))
        if coarse:
            g = 2 * Grid(ref_halve(prev), ref_halve(cur), None, block, regularization).robust_fit()
            fine = warped_grid(prev, g, cur, block, regularization)
            g = g + fine.robust_fit()
            fine = warped_grid(prev, g, cur, block, regularization)
        else:
            g = np.zeros(6)
            fine = Grid(prev, cur, None, block, regularization)
        dg = fine.robust_fit()
        mags = np.sort(fine.residuals(dg))[::-1]
        top = max(1, math.ceil(top_fraction * mags.size))
        g = g + dg
        out["energy"][t] = mags[:top].mean()
        out["global_dx"][t], out["global_dy"][t] = g[0], g[3]
    return out


def warped_grid(prev, g, cur, block, reg):
    """The pair (prev moved by g, cur), over the pixels that have a source."""
    moved, valid = ref_warp(prev, g)
    return Grid(moved, cur, valid, block, reg)


# ---- clips ------------------------------------------------------------------------------

def texture(seed: int, size: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    f = gaussian_filter(rng.standard_normal((size, size)), 2.0)
    return (f - f.min()) / (f.max() - f.min()) * 200 + 28


def clip(seed: int, h: int, w: int, n: int = 6, rgb: bool = True) -> np.ndarray:
    """A textured head that turns, shifts and scales a little each frame, with one patch that
    moves on its own (local motion) in the middle frames."""
    from scipy.ndimage import affine_transform

    img = texture(seed, 2 * max(h, w))
    frames = []
    for t in range(n):
        a = math.radians(0.6 * t)
        s = 1.0 + 0.004 * t
        m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) / s
        centre = np.array([h, w]) / 2 + np.array([0.5 * max(h, w)] * 2)
        offset = centre - m @ (np.array([h, w]) / 2) + np.array([0.3 * t, -0.45 * t])
        f = affine_transform(img, m, offset=offset, output_shape=(h, w), order=3, mode="nearest")
        if 2 <= t <= 3:
            y0, x0 = h // 3, w // 3
            f[y0:y0 + h // 5, x0:x0 + w // 5] = f[y0:y0 + h // 5, x0 - 2:x0 - 2 + w // 5]
        f = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        frames.append(np.stack([f, (0.8 * f + 20).astype(np.uint8), (0.6 * f + 40).astype(np.uint8)], -1) if rgb else f)
    return np.stack(frames)


# ---- tests ------------------------------------------------------------------------------

CASES = [
    # (h, w, block, rgb): coarse to fine (96x96 as the motion pass uses), ragged sizes that are
    # not multiples of the block or of the warp's 4-pixel step, a block of 6, and frames too
    # small for the coarse level
    (96, 96, 8, True),
    (90, 70, 8, False),
    (61, 83, 6, True),
    (40, 36, 8, False),
]


@pytest.mark.parametrize("h,w,block,rgb", CASES)
def test_motion_energy_matches_a_numpy_reference(h, w, block, rgb):
    frames = clip(h * 7 + w, h, w, rgb=rgb)
    got = motion.motion_energy(frames, block=block, threads=1)
    ref = ref_motion_energy(frames, block=block)
    assert got["energy"][0] == 0.0 and ref["energy"][0] == 0.0
    # float32 image arithmetic against float64 (seen: <= 1.2e-6 on these clips)
    for key in ("difference", "global_dx", "global_dy", "energy"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, atol=2e-5, err_msg=key)
    # the clip is not trivial: a head motion, and more energy in the frames with local motion
    assert np.abs(ref["global_dx"][1:]).max() > 0.1
    assert ref["energy"][2] > 2 * ref["energy"][5]


def test_motion_energy_is_the_same_for_any_thread_count():
    frames = clip(5, 96, 96, n=40)
    one = motion.motion_energy(frames, threads=1)
    for threads in (2, 3, None):
        other = motion.motion_energy(frames, threads=threads)
        for key in one:
            np.testing.assert_array_equal(other[key], one[key])


@pytest.mark.parametrize("h,w,block", [(10, 6, 2), (7, 9, 3), (24, 26, 4)])
def test_motion_energy_matches_the_reference_on_tiny_frames(h, w, block):
    # narrower than the warp's 4-pixel step, rows and blocks that do not fill the frame
    frames = clip(h + 100 * w, h, w, n=4, rgb=False)
    got = motion.motion_energy(frames, block=block, threads=1)
    ref = ref_motion_energy(frames, block=block)
    for key in ("difference", "global_dx", "global_dy", "energy"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, atol=2e-5, err_msg=key)
