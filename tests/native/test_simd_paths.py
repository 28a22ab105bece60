"""The CPU transform's SIMD paths (csrc/pixel/simd_dispatch.hpp): each path, forced with
MSCE_SIMD in a subprocess, against independent references (NumPy FFmpeg arithmetic + torch's
uint8 antialiased resize, the HF Qwen processors, PyAV + HF on a decoded clip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import msce
from msce._native import C

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ["scalar", "sse41", "avx2", "avx512"]
_ORDER = {name: i for i, name in enumerate(LEVELS)}


def _detected() -> str:
    return C.simd_level()[1]


def _bt601_limited_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """FFmpeg's x86 yuv420 -> rgb24 arithmetic (BT.601, limited range) in NumPy, per pixel."""
    y = y.astype(np.int64)
    u = np.repeat(np.repeat(u.astype(np.int64), 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    v = np.repeat(np.repeat(v.astype(np.int64), 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    yy = ((8 * y - 128) * 9539) >> 16
    du, dv = 8 * u - 1024, 8 * v - 1024
    r = yy + ((dv * 13075) >> 16)
    g = yy + ((du * -3209) >> 16) + ((dv * -6660) >> 16)
    b = yy + ((du * 16525) >> 16)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


# (width, height, crop (x, y, w, h) or None, output (h, w), layout): the 720p and 1080p
# Qwen2.5-VL 448x448-budget sizes, odd crops and widths, an upscale, downscales strong
# enough to leave the shuffle kernel (per-output and scalar fallbacks), no resize at all.
CASES = [
    (1280, 720, None, (336, 588), "yuv420p"),
    (1920, 1080, None, (336, 588), "nv12"),
    (330, 190, (3, 1, 321, 181), (84, 140), "nv12"),
    (97, 61, None, (130, 202), "yuv420p"),
    (700, 90, (1, 0, 699, 90), (20, 100), "nv12"),
    (1000, 40, None, (8, 30), "yuv420p"),
    (45, 33, (1, 1, 43, 31), (31, 43), "yuv420p"),
    # one axis unresized (width only, with an odd row count; height only), and a vertical
    # filter longer than the unrolled kernels (> 8 pair rows)
    (200, 51, None, (51, 90), "yuv420p"),
    (64, 90, (0, 1, 64, 87), (40, 64), "nv12"),
    (600, 300, None, (35, 300), "yuv420p"),
]


def _planes(width: int, height: int, layout: str, rng) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y = rng.integers(0, 256, (height, width + 5), dtype=np.uint8)
    u = rng.integers(0, 256, (ch, cw + 3), dtype=np.uint8)
    v = rng.integers(0, 256, (ch, cw + 1), dtype=np.uint8)
    if layout == "nv12":
        uv = np.zeros((ch, 2 * cw + 4), np.uint8)
        uv[:, 0 : 2 * cw : 2], uv[:, 1 : 2 * cw : 2] = u[:, :cw], v[:, :cw]
        planes = [y, uv]
    else:
        planes = [y, u, v]
    return planes, y[:, :width], u[:, :cw], v[:, :cw]


@pytest.mark.parametrize("width,height,crop,out,layout", CASES)
def test_yuv_crop_resize_matches_numpy_and_torch(width, height, crop, out, layout):
    """Decoded-layout frame -> RGB (FFmpeg arithmetic in NumPy) -> crop -> torch uint8 antialiased
    bicubic resize, bit for bit, on whichever SIMD path this process runs."""
    rng = np.random.default_rng(width * 7 + height)
    planes, y, u, v = _planes(width, height, layout, rng)
    frame = {"layout": {"yuv420p": 0, "nv12": 1}[layout], "planes": planes, "width": width, "height": height,
             "matrix": 0, "full_range": False}
    oh, ow = out
    target = msce.Frames(size=(oh, ow), layout="NHWC")
    got = np.full((1, oh, ow, 3), 7, np.uint8)
    job = {"indices": [0], "crops": [list(crop)] if crop else None, "spec": target.native_spec(oh, ow), "out": got,
           "slots": 1}
    C.transform_frame_list([frame], [job], "cpu")
    rgb = _bt601_limited_rgb(y, u, v)
    if crop:
        x0, y0, cw_, ch_ = crop
        rgb = rgb[y0 : y0 + ch_, x0 : x0 + cw_]
    src = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    ref = F.interpolate(src, size=(oh, ow), mode="bicubic", antialias=True, align_corners=False)
    assert np.array_equal(got[0], ref[0].permute(1, 2, 0).numpy()), f"SIMD path {C.simd_level()[0]}"


def test_simd_level_reports_and_validates_msce_simd():
    env = {k: v for k, v in os.environ.items() if k != "MSCE_SIMD"}
    code = "from msce._native import C; print(*C.simd_level())"
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert default.returncode == 0, default.stderr
    active, detected = default.stdout.split()
    assert active == detected and detected in LEVELS
    for level in LEVELS[: _ORDER[detected] + 1]:
        proc = subprocess.run([sys.executable, "-c", code], env={**env, "MSCE_SIMD": level}, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [level, detected]
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "MSCE_SIMD": "avx9"}, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "MSCE_SIMD must be scalar, sse41, avx2 or avx512" in bad.stderr
    for level in LEVELS[_ORDER[detected] + 1 :]:
        above = subprocess.run([sys.executable, "-c", code], env={**env, "MSCE_SIMD": level}, capture_output=True,
                               text=True, timeout=120)
        assert above.returncode != 0 and f"MSCE_SIMD={level}" in above.stderr


# What each forced path must pass: the references above, torch's resize and the colour path,
# the HF Qwen2/2.5 processors, and a decoded clip against PyAV + HF.
FORCED_TESTS = [
    "tests/native/test_simd_paths.py::test_yuv_crop_resize_matches_numpy_and_torch",
    "tests/native/test_pixel_math.py::test_resize_bit_exact_vs_torch_uint8_antialias",
    "tests/native/test_pixel_math.py::test_frame_colour_path_equals_per_pixel_function",
    "tests/native/test_pixel_math.py::test_native_qwen_layout_equals_patchify_of_frames",
    "tests/parity/test_hf_processor.py::test_qwen25_matches_hf",
    "tests/parity/test_hf_processor.py::test_bfloat16_output_equals_the_hf_processor_cast_to_bfloat16",
    "tests/native/test_pixel_math.py::test_bfloat16_rounding_ties_match_torch",
    "tests/native/test_pixel_math.py::test_normalization_equals_float32_division_where_the_fused_form_fails",
    "tests/native/test_load.py::test_load_qwen25_vs_pyav_plus_hf_processor",
]


@pytest.mark.skipif("MSCE_SIMD" in os.environ, reason="already running on a forced SIMD path")
# Only the paths below this CPU's default: the default runs the whole suite, and a path the CPU
# or the build lacks cannot run (parametrizing over those would leave skips, failures under
# MSCE_STRICT=1 on every CI machine); test_simd_level_reports_and_validates_msce_simd covers both.
@pytest.mark.parametrize("level", LEVELS[: _ORDER[_detected()]])
def test_forced_path_matches_references(level):
    """Forces each path below the default and reruns the reference tests in a subprocess."""
    env = {**os.environ, "MSCE_SIMD": level}
    check = subprocess.run([sys.executable, "-c", "from msce._native import C; print(C.simd_level()[0])"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.strip() == level, check.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *FORCED_TESTS],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    summary = proc.stdout.strip().splitlines()[-1:] or [proc.stderr[-2000:]]
    assert proc.returncode == 0, f"MSCE_SIMD={level}: {summary}\n{proc.stdout[-4000:]}"
    assert "passed" in summary[0]
