"""CPU vs CUDA parity of the fused transform and of the decode-to-token path.

The parity tests are marked ``needs_cuda`` (skipped without a usable GPU, a failure under
MSCE_REQUIRE_CUDA=1): the reference is the CPU path, the result comes from the GPU. The CUDA
kernels run the same pixel_math.hpp integer arithmetic, so outputs must be bit-identical (and
within the issue's bound of 1e-3 in normalized units, checked first). Without a GPU there is
nothing to compare the CPU path with here, so no "parity" test runs on CPU; the CPU path's own
references are HF's processors (tests/parity) and NumPy (tests/native).

One test runs without a GPU and says what it checks: the CUDA kernels' per-element bodies,
compiled for the host ("emulate"), against the CPU loop (same input planes, all layouts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import msce
from gpu_frames import assert_same, make_frames, transform
from msce.io import cuda as _cuda
from msce._native import C

from _deps import GPU, missing

QWEN25 = msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 12)
QWEN3_F16 = msce.QwenVL("3", min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 24, dtype="float16")
TARGETS = {
    "qwen2.5-f32": QWEN25,
    "qwen3-f16": QWEN3_F16,
    "qwen2.5-bf16": msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 12, dtype="bfloat16"),
    "frames-nchw-bf16-norm": msce.Frames(size=(44, 52), dtype="bfloat16", mean=(0.48, 0.46, 0.41),
                                         std=(0.27, 0.26, 0.28)),
    "frames-nchw-f32-norm": msce.Frames(size=(64, 48), dtype="float32", mean=(0.48, 0.46, 0.41),
                                        std=(0.27, 0.26, 0.28)),
    "frames-nhwc-u8-native": msce.Frames(layout="NHWC"),
    "frames-nhwc-f16-bilinear": msce.Frames(size=(40, 72), layout="NHWC", dtype="float16", interpolation="bilinear"),
    "frames-nchw-f32-raw": msce.Frames(size=(97, 61), dtype="float32", rescale=False),
    # two chained Lanczos resizes (the first an upscale, its uint8 picture read by the second)
    "smolvlm-two-stage-lanczos": msce.targets.SmolVLM(longest_edge=262, max_image_size=56),
    "resize-crop-lanczos": msce.targets.ResizeCrop(shortest_edge=80, crop_size=(64, 72), interpolation="lanczos"),
}


def _frames(t=5, h=97, w=131, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _expect_device(x: torch.Tensor, device: str) -> None:
    assert x.device.type == device


@pytest.mark.needs_cuda
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_preprocess_on_cuda_equals_cpu(name):
    target = TARGETS[name]
    frames = _frames()
    ref = msce.preprocess(frames, target)
    got = msce.preprocess(frames, target, device="cuda")
    _expect_device(got.data, "cuda")
    assert_same(got.data, ref.data, name)
    if ref.grid_thw is not None:
        assert got.grid_thw.tolist() == ref.grid_thw.tolist()


@pytest.mark.needs_cuda
@pytest.mark.parametrize("name", ["qwen2.5-f32", "frames-nhwc-f16-bilinear"])
def test_preprocess_crops_on_cuda_equal_cpu(name):
    target = TARGETS[name]
    frames = _frames(t=3, h=120, w=90, seed=1)
    crops = [(3, 5, 60, 70), (0, 0, 90, 120), (29, 40, 61, 80)]
    ref = msce.preprocess(frames, target, crop=crops)
    got = msce.preprocess(frames, target, crop=crops, device="cuda")
    assert_same(got.data, ref.data, name)


@pytest.mark.needs_cuda
def test_preprocess_reads_cuda_tensors_in_place():
    frames = _frames(t=4, seed=2)
    ref = msce.preprocess(frames, QWEN25)
    got = msce.preprocess(torch.from_numpy(frames).cuda(), QWEN25, device="cuda")
    assert got.data.is_cuda
    assert_same(got.data, ref.data)


@pytest.mark.needs_cuda
def test_work_is_ordered_on_the_current_stream():
    frames = _frames(t=6, h=240, w=320, seed=3)
    ref = msce.preprocess(frames, QWEN25)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = msce.preprocess(frames, QWEN25, device="cuda")
        total = got.data.double().sum()  # same stream: no synchronization needed
    side.synchronize()
    assert_same(got.data, ref.data)
    assert float(total) == pytest.approx(float(ref.data.double().sum()), rel=1e-12)


def _check_decoded_layouts(backend: str, layout: str, size: tuple[int, int]) -> None:
    w, h = size
    for matrix, full in [(0, False), (1, True), (2, False)]:
        frames = make_frames(layout, w, h, 3, seed=w + matrix, matrix=matrix, full_range=full)
        for name in ("qwen2.5-f32", "frames-nchw-f32-norm", "frames-nhwc-u8-native"):
            target = TARGETS[name]
            out_size = target.output_size(3, h, w)
            crops = None if name != "frames-nchw-f32-norm" else [(1, 2, w - 3, h - 5), (0, 0, w, h), (7, 3, 40, 31)]
            ref = transform(frames, [2, 0, 1], target, out_size, crops, "cpu")
            got = transform(frames, [2, 0, 1], target, out_size, crops, backend)
            assert_same(got, ref, f"{backend}: {layout} {size} matrix={matrix} full={full} {name}")


@pytest.mark.needs_cuda
@pytest.mark.parametrize("layout", ["yuv420p", "nv12", "rgb24"])
@pytest.mark.parametrize("size", [(160, 90), (101, 77)])
def test_decoded_layouts_on_cuda_equal_cpu(layout, size):
    """Planes as decoders hand them over (padded rows, odd sizes), all colour matrices."""
    _check_decoded_layouts("cuda", layout, size)


@pytest.mark.parametrize("layout", ["yuv420p", "nv12", "rgb24"])
@pytest.mark.parametrize("size", [(160, 90), (101, 77)])
def test_cuda_kernel_bodies_emulated_on_the_host_equal_the_cpu_loop(layout, size):
    """No GPU involved: transform_cuda.cu's per-element functions, built for the host, against
    transform_cpu.cpp's loop on the same planes. A disagreement here is a kernel bug that a
    CPU-only machine can already see; it is not a CPU-vs-GPU parity result."""
    _check_decoded_layouts("emulate", layout, size)


# ---- decode -> transform ------------------------------------------------------------------

DECODERS = ["cpu", "nvdec"]  # decode on the CPU or with NVDEC, transform on the GPU


def _use_decoder(monkeypatch, decoder: str) -> None:
    if decoder == "nvdec":
        ok, why = C.nvdec_status()
        if not ok:
            pytest.skip(GPU + f"no NVDEC here: {why}")
    monkeypatch.setenv("MSCE_CUDA_DECODE", decoder)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("plan", ["fps1", "dense", "count5", "sparse"])
@pytest.mark.parametrize("clip", ["gop12", "odd_full"])
def test_load_on_cuda_equals_cpu(gpu_clips, monkeypatch, plan, clip):
    if clip not in gpu_clips:
        missing(f"an ffmpeg that can make the {clip} clip (libx264)")
    path = gpu_clips[clip]
    spec = {"fps1": msce.plan.uniform(1.0), "dense": msce.plan.dense(), "count5": msce.plan.count(5),
            "sparse": msce.plan.at_indices([0, 1, 40, 41, 70])}[plan]
    for name in ("qwen2.5-f32", "frames-nchw-f32-norm"):
        target = TARGETS[name]
        ref = msce.load(path, spec, target)
        for decoder in DECODERS:
            _use_decoder(monkeypatch, decoder)
            got = msce.load(path, spec, target, device="cuda")
            _expect_device(got.data, "cuda")
            assert got.indices == ref.indices
            assert_same(got.data, ref.data, f"{clip} {plan} {name} via {decoder}")
            assert got.stats["decoder"] == decoder


@pytest.mark.needs_cuda
def test_load_segments_on_cuda_equal_cpu(gpu_clips, monkeypatch):
    path = gpu_clips["gop12"]
    spec = msce.plan.keyframes_with_gaps(1.0, 3)
    ref = msce.load_segments(path, spec, QWEN25)
    for decoder in DECODERS:
        _use_decoder(monkeypatch, decoder)
        got = msce.load_segments(path, spec, QWEN25, device="cuda")
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            _expect_device(g.data, "cuda")
            assert g.indices == r.indices
            assert_same(g.data, r.data, f"segment via {decoder}")


@pytest.mark.needs_cuda
def test_load_crops_on_cuda_equal_cpu(gpu_clips):
    path = gpu_clips["gop12"]
    plan = msce.plan.count(4).resolve(msce.VideoReader(path).metadata)
    crops = [(10, 20, 200, 150), (0, 0, 320, 240), (100, 60, 97, 111), (5, 5, 64, 64)]
    target = TARGETS["frames-nhwc-f16-bilinear"]
    ref = msce.load(path, plan, target, crop=crops)
    got = msce.load(path, plan, target, crop=crops, device="cuda")
    assert_same(got.data, ref.data)


@pytest.mark.needs_cuda
def test_nvdec_fallback_is_said_once(gpu_clips, monkeypatch):
    """A clip NVDEC cannot take (rotated) falls back to CPU decode + GPU transform with one
    warning naming the cause; the result still equals the CPU path."""
    if "rotated" not in gpu_clips:
        missing("an ffmpeg that can make the rotated clip (libx264)")
    path = gpu_clips["rotated"]
    monkeypatch.setenv("MSCE_CUDA_DECODE", "auto")
    monkeypatch.setattr(_cuda, "_warned_fallback", False)
    ref = msce.load(path, msce.plan.dense(), QWEN25)
    with pytest.warns(RuntimeWarning, match="NVDEC is not used"):
        got = msce.load(path, msce.plan.dense(), QWEN25, device="cuda")
    assert got.stats["decoder"] == "cpu" and got.stats["nvdec_unavailable"]
    assert_same(got.data, ref.data)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = msce.load(path, msce.plan.count(3), QWEN25, device="cuda")
    assert again.stats["decoder"] == "cpu"


@pytest.mark.needs_cuda
def test_forced_nvdec_names_the_cause(gpu_clips, monkeypatch):
    if "rotated" not in gpu_clips:
        missing("an ffmpeg that can make the rotated clip (libx264)")
    monkeypatch.setenv("MSCE_CUDA_DECODE", "nvdec")
    with pytest.raises(msce.UnsupportedError, match="rotat|NVDEC|nvcuvid|FFmpeg"):
        msce.load(gpu_clips["rotated"], msce.plan.count(2), QWEN25, device="cuda")
