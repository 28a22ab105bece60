"""Unit tests of the shared pixel math (pixel_math.hpp) through the bindings."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import msce
from msce._native import C
from msce.targets import patchify


def _ref_rgb(matrix: int, full: bool, y: int, u: int, v: int) -> np.ndarray:
    kr, kb = [(0.299, 0.114), (0.2126, 0.0722), (0.2627, 0.0593)][matrix]
    kg = 1 - kr - kb
    if full:
        yy, cs = float(y), 1.0
    else:
        yy, cs = (y - 16) * 255 / 219, 255 / 224
    du, dv = (u - 128) * cs, (v - 128) * cs
    r = yy + 2 * (1 - kr) * dv
    g = yy - 2 * kb * (1 - kb) / kg * du - 2 * kr * (1 - kr) / kg * dv
    b = yy + 2 * (1 - kb) * du
    return np.clip(np.round([r, g, b]), 0, 255)


@pytest.mark.parametrize("matrix", [0, 1, 2])
@pytest.mark.parametrize("full", [False, True])
def test_yuv_to_rgb_close_to_float_formula(matrix, full):
    """FFmpeg's 13-bit floor arithmetic stays within 3 levels of the exact matrix (legal and illegal codes)."""
    rng = np.random.default_rng(matrix * 2 + full)
    diffs = []
    for y, u, v in rng.integers(0, 256, (2000, 3)):
        got = np.array(C.yuv_to_rgb(matrix, full, int(y), int(u), int(v)))
        diffs.append(got - _ref_rgb(matrix, full, int(y), int(u), int(v)))
    d = np.abs(np.array(diffs))
    assert d.max() <= 3 and d.mean() < 0.8


def _swscale_simd(y, u, v):
    """FFmpeg's x86 yuv420 -> rgb24 arithmetic for BT.601 limited range, written out in NumPy."""
    y, u, v = (np.asarray(a, dtype=np.int64) for a in (y, u, v))
    yy = ((8 * y - 128) * 9539) >> 16
    du, dv = 8 * u - 1024, 8 * v - 1024
    r = yy + ((dv * 13075) >> 16)
    g = yy + ((du * -3209) >> 16) + ((dv * -6660) >> 16)
    b = yy + ((du * 16525) >> 16)
    return np.clip(np.stack([r, g, b], -1), 0, 255)


def test_yuv_to_rgb_equals_ffmpeg_default_arithmetic():
    y, u, v = np.meshgrid(np.arange(0, 256, 5), np.arange(0, 256, 7), np.arange(0, 256, 9), indexing="ij")
    ref = _swscale_simd(y.ravel(), u.ravel(), v.ravel())
    got = np.array([C.yuv_to_rgb(0, False, int(a), int(b), int(c)) for a, b, c in zip(y.ravel(), u.ravel(), v.ravel())])
    assert np.array_equal(got, ref)


def test_yuv_grey_axis_is_exact():
    assert C.yuv_to_rgb(0, False, 16, 128, 128) == (0, 0, 0)
    assert C.yuv_to_rgb(0, False, 235, 128, 128) == (255, 255, 255)
    assert C.yuv_to_rgb(1, True, 77, 128, 128) == (77, 77, 77)


@pytest.mark.parametrize("interp", [0, 1, 2])
@pytest.mark.parametrize("in_size,out_size", [(1280, 504), (720, 280), (321, 224), (80, 112), (7, 3), (3, 28)])
def test_resample_weights_are_normalized(in_size, out_size, interp):
    ax = C.resample_axis(in_size, out_size, interp)
    w = np.array(ax["weights"]).reshape(out_size, ax["taps"])
    sums = w.sum(axis=1) / (1 << ax["precision"])
    assert np.all(np.abs(sums - 1) < 2e-3)
    first, count = np.array(ax["first"]), np.array(ax["count"])
    assert first.min() >= 0 and (first + count).max() <= in_size
    assert np.abs(w).max() < (1 << 15)


# torch's uint8 antialiased resize takes one of two kernels, by the CPU capability it dispatches
# to: the AVX2 one (UpSampleKernelAVXAntialias.h, compiled under CPU_CAPABILITY_AVX2 only, for
# <= 4 channels) and the generic separable one that the DEFAULT and AVX512 builds run. In the torch
# versions msce supports (>= 2.4) both use the same int16 fixed-point weights for bilinear and
# bicubic alike, the arithmetic msce reproduces, so msce must equal each of them. The reference is
# torch in this process (its own choice) and, forced by ATEN_CPU_CAPABILITY, in a subprocess for
# each lower x86 level this CPU also runs (forcing a level the CPU lacks would crash): so the
# DEFAULT kernel is always compared, and the AVX2 one whenever the CPU has AVX2. Lanczos (3 lobes,
# what transformers' LANCZOS runs on CPU with torchvision >= 0.27) is compared where torch has it.
RESIZE_SHAPES = [(360, 640, 252, 448), (241, 321, 224, 308), (50, 70, 140, 112), (33, 47, 33, 20)]
RESIZE_MODES = ["bicubic", "bilinear", "lanczos"]
_X86_LEVELS = ["DEFAULT", "AVX2", "AVX512"]


def _torch_has_lanczos() -> bool:
    try:
        F.interpolate(torch.zeros((1, 3, 4, 4), dtype=torch.uint8), size=(2, 2), mode="lanczos", antialias=True)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


_MODES_HERE = [m for m in RESIZE_MODES if m != "lanczos" or _torch_has_lanczos()]
_TORCH_RESIZE = """
import sys
import numpy as np
import torch
import torch.nn.functional as F

inputs = np.load(sys.argv[1])
out = {}
for key in inputs.files:
    mode, oh, ow, _ = key.split(":")
    x = torch.from_numpy(inputs[key]).permute(0, 3, 1, 2).contiguous()
    out[key] = F.interpolate(x, size=(int(oh), int(ow)), mode=mode, antialias=True, align_corners=False).numpy()
np.savez(sys.argv[2], **out)
print(torch.backends.cpu.get_cpu_capability())
"""


def _resize_input(shape) -> np.ndarray:
    h, w, _, _ = shape
    return np.random.default_rng(h * w).integers(0, 256, (2, h, w, 3), dtype=np.uint8)


def _resize_key(mode: str, shape) -> str:
    return f"{mode}:{shape[2]}:{shape[3]}:{shape[0]}x{shape[1]}"


@pytest.fixture(scope="module")
def torch_resized(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """``{capability: {key: torch's NCHW uint8 output}}`` for every kernel path torch runs here."""
    native = torch.backends.cpu.get_cpu_capability()
    forced = _X86_LEVELS[: _X86_LEVELS.index(native)] if native in _X86_LEVELS else ["DEFAULT"]
    jobs = {_resize_key(m, s): (m, s) for m in _MODES_HERE for s in RESIZE_SHAPES}
    results = {native: {}}
    for key, (mode, shape) in jobs.items():
        x = torch.from_numpy(_resize_input(shape)).permute(0, 3, 1, 2).contiguous()
        results[native][key] = F.interpolate(x, size=shape[2:], mode=mode, antialias=True, align_corners=False).numpy()
    tmp = tmp_path_factory.mktemp("torch_resize")
    inputs = tmp / "inputs.npz"
    np.savez(inputs, **{key: _resize_input(shape) for key, (_, shape) in jobs.items()})
    for level in forced:
        out = tmp / f"{level}.npz"
        env = {**os.environ, "ATEN_CPU_CAPABILITY": level.lower()}
        proc = subprocess.run([sys.executable, "-c", _TORCH_RESIZE, str(inputs), str(out)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == level, f"ATEN_CPU_CAPABILITY={level.lower()} gave {proc.stdout!r}"
        with np.load(out) as data:
            results[level] = {k: data[k] for k in data.files}
    return results


@pytest.mark.parametrize("interp", RESIZE_MODES)
@pytest.mark.parametrize("shape", RESIZE_SHAPES)
def test_resize_bit_exact_vs_torch_uint8_antialias(torch_resized, interp, shape):
    if interp not in _MODES_HERE:
        pytest.skip(f"torch {torch.__version__} has no interpolate(mode='lanczos')")
    oh, ow = shape[2:]
    got = msce.preprocess(_resize_input(shape), msce.Frames(size=(oh, ow), interpolation=interp)).data
    assert "DEFAULT" in torch_resized
    for capability, outputs in torch_resized.items():
        ref = torch.from_numpy(outputs[_resize_key(interp, shape)])
        assert torch.equal(got, ref), f"differs from torch's {capability} kernel"


def test_float16_conversion_matches_torch():
    vals = np.concatenate([np.linspace(-70000, 70000, 2001), np.array([0.0, -0.0, 1e-8, 6e-8, 3e-5, 65504, 65520]),
                           np.random.default_rng(1).normal(0, 3, 3000)]).astype(np.float32)
    ref = torch.from_numpy(vals).to(torch.float16).view(torch.int16).numpy().astype(np.uint16)
    got = np.array([C.float_to_half(float(v)) for v in vals], dtype=np.uint16)
    assert np.array_equal(got, ref)


def test_bfloat16_conversion_matches_torch():
    vals = np.concatenate([np.linspace(-3e38, 3e38, 2001), np.array([0.0, -0.0, 1e-40, -1e-45, 1.0, 1.00390625,
                                                                     1.01171875, 3.3895e38, np.inf, -np.inf]),
                           np.random.default_rng(2).normal(0, 3, 5000)]).astype(np.float32)
    ref = torch.from_numpy(vals).to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16)
    got = np.array([C.float_to_bfloat16(float(v)) for v in vals], dtype=np.uint16)
    assert np.array_equal(got, ref)
    nan = C.float_to_bfloat16(float("nan"))
    assert (nan & 0x7F80) == 0x7F80 and (nan & 0x7F) != 0  # still a NaN


class _TieQwen(msce.QwenVL):
    """QwenVL's layout with a normalization whose results include bfloat16 rounding ties."""

    def native_spec(self, out_h: int, out_w: int) -> dict:
        return {**super().native_spec(out_h, out_w), "mean": [63.75, 31.875, 63.75], "std": [1.0, 4.0, 1.0]}


@pytest.mark.parametrize("target", ["frames", "qwen"])
def test_bfloat16_rounding_ties_match_torch(target):
    """Every uint8 level through a normalization whose float32 results include exact bfloat16
    rounding ties (mean 63.75, std 1: v - 63.75), on the row path (Frames) and the Qwen band
    path (the SIMD kernels; test_simd_paths forces each level): round to nearest even, as
    torch's float32 -> bfloat16 cast of the same float32 values."""
    levels = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    vid = np.ascontiguousarray(np.stack([levels, levels[::-1], levels.T], -1)[None].repeat(2, 0))
    m = torch.tensor([63.75, 31.875, 63.75]).view(1, 3, 1, 1)
    s = torch.tensor([1.0, 4.0, 1.0]).view(1, 3, 1, 1)
    ref32 = (torch.from_numpy(vid).permute(0, 3, 1, 2).float() - m) / s
    assert int(((ref32.view(torch.int32) & 0xFFFF) == 0x8000).sum()) > 100  # ties are really exercised
    if target == "frames":
        got = msce.preprocess(vid, msce.Frames(dtype="bfloat16", mean=(0.25, 0.125, 0.25),
                                                std=(1 / 255, 4 / 255, 1 / 255))).data
        assert torch.equal(got, ref32.bfloat16())
    else:
        got = msce.preprocess(vid, _TieQwen("2.5", min_pixels=28 * 28, max_pixels=28 * 28, dtype="bfloat16")).data
        ref = torch.from_numpy(patchify(ref32.numpy(), 14)).bfloat16()
        assert torch.equal(got, ref)


# Channel 0: a normalization whose division overflows (d / sd = +-inf) where the fused
# reciprocal form the FMA kernels use would give NaN; channel 1: CLIP's (the fused form is exact
# there); channel 2: std 1.
_EXTREME_NORM = {"mean": [228.464005, 0.4578275 * 255, 0.0], "std": [-6.44882374e-38, 0.26130258 * 255, 1.0]}


class _ExtremeQwen(msce.QwenVL):
    def native_spec(self, out_h: int, out_w: int) -> dict:
        return {**super().native_spec(out_h, out_w), **_EXTREME_NORM}


class _ExtremeFrames(msce.Frames):
    def native_spec(self, out_h: int, out_w: int) -> dict:
        return {**super().native_spec(out_h, out_w), "normalize": True, **_EXTREME_NORM}


@pytest.mark.parametrize("target", ["frames", "qwen"])
def test_normalization_equals_float32_division_where_the_fused_form_fails(target):
    """The FMA kernels replace (v - mean) / std by a fused reciprocal form only where it equals
    the division for all 256 levels (checked per channel); elsewhere they divide. Every level,
    row path (Frames) and Qwen band path, against torch's float32 division."""
    levels = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    vid = np.ascontiguousarray(np.stack([levels, levels[::-1], levels.T], -1)[None].repeat(2, 0))
    m = torch.tensor(_EXTREME_NORM["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(_EXTREME_NORM["std"], dtype=torch.float32).view(1, 3, 1, 1)
    ref = (torch.from_numpy(vid).permute(0, 3, 1, 2).float() - m) / s
    assert torch.isinf(ref[:, 0]).any() and torch.isfinite(ref[:, 1:]).all()  # overflow exercised
    if target == "frames":
        got = msce.preprocess(vid, _ExtremeFrames(dtype="float32")).data
    else:
        got = msce.preprocess(vid, _ExtremeQwen("2.5", min_pixels=28 * 28, max_pixels=28 * 28)).data
        ref = torch.from_numpy(patchify(ref.numpy(), 14))
    assert not torch.isnan(got).any()
    assert torch.equal(got, ref)


def test_patchify_reference_matches_hf_layout():
    x = np.arange(3 * 3 * 56 * 84, dtype=np.float32).reshape(3, 3, 56, 84)
    got = patchify(x, 14)
    # HF's view/permute on a padded clip
    xp = np.concatenate([x, x[-1:]], 0)
    v = torch.from_numpy(xp).view(1, 2, 2, 3, 2, 2, 14, 3, 2, 14).permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    assert np.array_equal(got, v.reshape(2 * 4 * 6, 3 * 2 * 14 * 14).numpy())


@pytest.mark.parametrize("version", ["2.5", "3"])
@pytest.mark.parametrize("frames", [1, 4, 5])
def test_native_qwen_layout_equals_patchify_of_frames(version, frames):
    rng = np.random.default_rng(frames)
    vid = rng.integers(0, 256, (frames, 96, 128, 3), dtype=np.uint8)
    target = msce.QwenVL(version, min_pixels=64 * 64, max_pixels=128 * 128 * (frames if version == "3" else 1))
    batch = msce.preprocess(vid, target)
    oh, ow = batch.size
    plain = msce.preprocess(vid, msce.Frames(size=(oh, ow), dtype="float32", mean=target.mean, std=target.std)).data
    ref = patchify(plain.numpy(), target.patch)
    assert np.array_equal(batch.data.numpy(), ref)
    assert list(batch.grid_thw[0]) == [(frames + 1) // 2, oh // target.patch, ow // target.patch]


def test_frames_layouts_and_dtypes_agree():
    vid = np.random.default_rng(3).integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    u8 = msce.preprocess(vid, msce.Frames(size=(30, 45))).data
    nhwc = msce.preprocess(vid, msce.Frames(size=(30, 45), layout="NHWC")).data
    assert torch.equal(u8.permute(0, 2, 3, 1), nhwc)
    f32 = msce.preprocess(vid, msce.Frames(size=(30, 45), dtype="float32")).data
    assert torch.allclose(f32, u8.float() / 255, atol=1e-7)
    f16 = msce.preprocess(vid, msce.Frames(size=(30, 45), dtype="float16")).data
    assert torch.equal(f16, (u8.float() / 255).half())
    bf16 = msce.preprocess(vid, msce.Frames(size=(30, 45), dtype="bfloat16", mean=(0.5, 0.4, 0.3),
                                            std=(0.2, 0.25, 0.3))).data
    mean, std = torch.tensor([0.5, 0.4, 0.3]) * 255, torch.tensor([0.2, 0.25, 0.3]) * 255
    ref = ((u8.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).bfloat16()
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, ref)
    same = msce.preprocess(vid, msce.Frames()).data
    assert torch.equal(same.permute(0, 2, 3, 1), torch.from_numpy(vid))


def test_crop_equals_crop_then_resize():
    vid = np.random.default_rng(4).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    box = (30, 20, 90, 80)
    got = msce.preprocess(vid, msce.Frames(size=(56, 56)), crop=box).data
    cropped = np.ascontiguousarray(vid[:, 20:100, 30:120])
    ref = msce.preprocess(cropped, msce.Frames(size=(56, 56))).data
    assert torch.equal(got, ref)
    with pytest.raises(msce.TransformError, match="outside"):
        msce.preprocess(vid, msce.Frames(size=(56, 56)), crop=(100, 0, 90, 80))


@pytest.mark.parametrize("bad", [np.zeros((2, 10, 10), np.uint8), np.zeros((1, 10, 10, 3), np.float32),
                                 np.zeros((0, 10, 10, 3), np.uint8)])
def test_preprocess_rejects_bad_frames(bad):
    with pytest.raises(msce.TransformError):
        msce.preprocess(bad, msce.QwenVL("2.5"))


def test_target_validation():
    with pytest.raises(msce.TransformError):
        msce.QwenVL("4")
    with pytest.raises(msce.TransformError):
        msce.QwenVL("2.5", min_pixels=10, max_pixels=5)
    with pytest.raises(msce.TransformError):
        msce.Frames(layout="CHW")
    with pytest.raises(msce.TransformError):
        msce.Frames(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # uint8 cannot be normalized


@pytest.mark.parametrize("matrix,full", [(0, False), (1, False), (1, True), (2, False)])
@pytest.mark.parametrize("w,h", [(64, 16), (47, 9), (33, 5)])
def test_frame_colour_path_equals_per_pixel_function(matrix, full, w, h):
    """The vectorized row converter (AVX2 where available) equals px::yuv_to_rgb per pixel."""
    rng = np.random.default_rng(w * h + matrix)
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
    v = rng.integers(0, 256, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
    got = C.yuv420_to_rgb(y, u, v, matrix, full)
    ref = np.array([[C.yuv_to_rgb(matrix, full, int(y[r, c]), int(u[r // 2, c // 2]), int(v[r // 2, c // 2]))
                     for c in range(w)] for r in range(h)], dtype=np.uint8)
    assert np.array_equal(got, ref)
    uv = np.ascontiguousarray(np.stack([u, v], axis=-1).reshape(u.shape[0], -1))
    assert np.array_equal(C.yuv420_to_rgb(y, uv, None, matrix, full), ref)
    # crops starting at odd columns go through the scalar head then the vector body
    sub = msce.preprocess(np.ascontiguousarray(ref), msce.Frames(), crop=(1, 1, w - 1, h - 1)).data
    assert torch.equal(sub.permute(0, 2, 3, 1)[0], torch.from_numpy(ref[1:, 1:]))
