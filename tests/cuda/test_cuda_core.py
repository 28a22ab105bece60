"""The CUDA path's parts that run without a GPU: the status and its reasons, device
arguments and their errors, the kernels' element bodies (emulated on the host) against the
CPU loop, the NVDEC reader's indexing and seeking (with FFmpeg's software decoder), and the
build itself (CUDA objects compiled whenever nvcc is there)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import msce
from gpu_frames import assert_same, make_frames, transform
from msce.io import cuda as _cuda
from msce._native import C

from _deps import GPU, missing

KNOWN_CAUSES = ("built without CUDA", "no NVIDIA driver", "upgrade the driver", "sees no CUDA device",
                "CUDA cannot initialize", "torch", "ok")


def test_cuda_available_gives_a_precise_reason():
    ok, why = msce.cuda_available()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    assert any(c in why for c in KNOWN_CAUSES), why
    status = C.cuda_status()
    assert status["built_with_cuda"] == C.built_with_cuda
    if not status["ok"]:
        assert not ok and why == status["reason"]


@pytest.mark.parametrize("status,torch_cuda,torch_version,expect", [
    ({"ok": False, "reason": "msce was built without CUDA (x)", "device_count": 0}, False, None, "built without CUDA"),
    ({"ok": False, "reason": "no NVIDIA driver: libcuda.so.1 cannot be loaded", "device_count": 0}, False, None,
     "no NVIDIA driver"),
    ({"ok": True, "reason": "ok", "device_count": 1}, False, None, "no CUDA support"),
    ({"ok": True, "reason": "ok", "device_count": 2}, False, "13.0", "torch sees none"),
    ({"ok": True, "reason": "ok", "device_count": 1}, True, "13.0", "ok"),
])
def test_status_reason_by_cause(monkeypatch, status, torch_cuda, torch_version, expect):
    monkeypatch.setattr(C, "cuda_status", lambda: status)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_cuda)
    monkeypatch.setattr(torch.version, "cuda", torch_version)
    ok, why = msce.cuda_available()
    assert ok == (expect == "ok")
    assert expect in why


def test_cuda_device_without_cuda_raises_cuda_error_with_the_cause():
    ok, why = msce.cuda_available()
    if ok:
        pytest.skip(GPU + "CUDA is available here")
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(msce.CudaError) as info:
        msce.preprocess(frames, msce.QwenVL("2.5"), device="cuda")
    assert why in str(info.value)
    with pytest.raises(msce.CudaError):
        msce.preprocess(frames, msce.Frames(), device=torch.device("cuda", 0))


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", 3.5, "gpu"])
def test_bad_device_is_a_transform_error(bad):
    with pytest.raises(msce.TransformError):
        msce.preprocess(np.zeros((1, 8, 8, 3), np.uint8), msce.Frames(), device=bad)


def test_cpu_device_is_the_cpu_path():
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    a = msce.preprocess(frames, msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 8))
    b = msce.preprocess(frames, msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 8), device="cpu")
    assert torch.equal(a.data, b.data) and b.data.device.type == "cpu"


def test_decode_mode_is_validated(monkeypatch):
    monkeypatch.setenv("MSCE_CUDA_DECODE", "gpu")
    with pytest.raises(msce.ConfigError, match="MSCE_CUDA_DECODE"):
        _cuda._decode_mode()


def test_cuda_entry_points_fail_cleanly_without_a_device():
    """No segfault, no bare RuntimeError: an msce error that says what is wrong."""
    if msce.cuda_available()[0]:
        pytest.skip(GPU + "CUDA is available here")

    class FakeCudaArray:
        __cuda_array_interface__ = {"data": (4096, False), "shape": (2, 3, 8, 8), "typestr": "|u1", "version": 2,
                                    "strides": None}

    target = msce.Frames(size=(8, 8))
    job = {"indices": [0, 1], "crops": None, "spec": target.native_spec(8, 8), "out": FakeCudaArray(), "slots": 2}
    with pytest.raises(msce.MsceError):
        C.cuda_run_array_jobs(np.zeros((2, 8, 8, 3), np.uint8), [job], 0, 0)
    job["out"] = np.zeros((2, 3, 8, 8), np.uint8)
    if not C.built_with_cuda:
        with pytest.raises(msce.CudaError, match="built without CUDA"):
            C.cuda_run_array_jobs(np.zeros((2, 8, 8, 3), np.uint8), [job], 0, 0)
        return
    with pytest.raises(msce.TransformError, match="__cuda_array_interface__"):
        C.cuda_run_array_jobs(np.zeros((2, 8, 8, 3), np.uint8), [job], 0, 0)


# ---- the kernels' element bodies, run on the host ------------------------------------------

EMU_TARGETS = [
    msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 8),
    msce.QwenVL("3", min_pixels=32 * 32 * 2, max_pixels=32 * 32 * 10, dtype="float16"),
    msce.Frames(size=(40, 56), dtype="float32", mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)),
    msce.Frames(layout="NHWC"),
    msce.Frames(size=(17, 13), interpolation="bilinear"),
    msce.Frames(size=(120, 90), layout="NHWC", dtype="float16"),  # upscaling
    msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 8, dtype="bfloat16"),
    msce.Frames(size=(40, 56), layout="NHWC", dtype="bfloat16", mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)),
]


@pytest.mark.parametrize("layout", ["yuv420p", "nv12", "rgb24"])
@pytest.mark.parametrize("size", [(64, 48), (101, 77), (33, 17)])
@pytest.mark.parametrize("t", range(len(EMU_TARGETS)))
def test_emulated_kernels_equal_the_cpu_loop(layout, size, t):
    w, h = size
    target = EMU_TARGETS[t]
    frames = make_frames(layout, w, h, 3, seed=w * 7 + t, matrix=t % 3, full_range=bool(t % 2))
    out_size = target.output_size(3, h, w)
    for crops in (None, [(1, 2, w - 4, h - 3), (0, 0, w, h), (w // 3, h // 4, w // 2, h // 2)]):
        if crops is not None and not isinstance(target, msce.Frames):
            out_size = target.output_size(3, h - 3, w - 4)
        ref = transform(frames, [2, 0, 1], target, out_size, crops, "cpu")
        got = transform(frames, [2, 0, 1], target, out_size, crops, "emulate")
        assert_same(got, ref, f"{layout} {size} {target} crops={crops}")


@pytest.mark.parametrize("layout", ["yuv420p", "nv12", "rgb24"])
def test_emulated_two_stage_resize_equals_the_cpu_loop(layout):
    """SmolVLM's chained resizes: the kernels' first stage writes packed RGB that the second
    stage reads as an RGB24 frame, as the CUDA transformer chains them (crops included)."""
    w, h = 101, 77
    target = msce.targets.SmolVLM(longest_edge=180, max_image_size=48)
    frames = make_frames(layout, w, h, 3, seed=11)
    for crops in (None, [(1, 2, w - 4, h - 3)] * 3):
        src_h, src_w = (h, w) if crops is None else (h - 3, w - 4)
        alloc = target.allocation(3, src_h, src_w)
        assert "pre_h" in alloc.spec  # both stages resample
        outs = {}
        for backend in ("cpu", "emulate"):
            out = torch.full(alloc.shape, 7, dtype=torch.float32)
            job = {"indices": [2, 0, 1], "crops": crops, "spec": alloc.spec, "out": out.numpy(), "slots": alloc.slots}
            C.transform_frame_list(frames, [job], backend)
            outs[backend] = out
        assert_same(outs["emulate"], outs["cpu"], f"{layout} crops={crops}")


def test_emulated_single_frame_qwen_padding():
    frames = make_frames("nv12", 64, 64, 1, seed=5)
    target = msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 8)
    size = target.output_size(1, 64, 64)
    ref = transform(frames, [0], target, size, None, "cpu")
    got = transform(frames, [0], target, size, None, "emulate")
    assert_same(got, ref)


# ---- the NVDEC reader's frame indexing and seeking (software decoder) -----------------------

@pytest.fixture(scope="module")
def nvdec_reader_build():
    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    if not C.built_with_cuda:
        pytest.skip(GPU + "the NVDEC reader exists only in builds with CUDA")


@pytest.mark.parametrize("clip", ["gop12", "odd_full"])
@pytest.mark.parametrize("threshold", [16, 1, 0])
def test_nvdec_reader_indexing_matches_the_cpu_reader(nvdec_reader_build, gpu_clips, clip, threshold):
    path = gpu_clips[clip]
    reader = msce.VideoReader(path)
    n = reader.metadata.num_frames
    for indices in (list(range(n)), [0, 5, 37, 38, 80, 99], [n - 1], [3, 60, 61, n - 2], list(range(0, n, 13))):
        indices = sorted({i for i in indices if i < n})
        got, stats = C.nvdec_reader_software_frames(reader._native, indices, threshold)
        assert stats["indices"] == indices
        np.testing.assert_array_equal(got, reader.get_frames(indices))
        if threshold == 0:
            assert stats["seeks"] == 0


def test_nvdec_reader_seeks_on_short_gops(nvdec_reader_build, gpu_clips):
    reader = msce.VideoReader(gpu_clips["gop12"])
    _, stats = C.nvdec_reader_software_frames(reader._native, [0, 50, 90], 1)
    assert stats["seeks"] >= 2
    assert stats["frames_decoded"] < 91


# ---- the build -------------------------------------------------------------------------------

def _nvcc() -> str | None:
    found = shutil.which("nvcc") or os.environ.get("CUDACXX")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def test_cuda_objects_are_built_when_nvcc_is_present():
    """CI has nvcc: MSCE_CUDA=AUTO must then compile the kernels, so a CUDA compile error
    fails CI instead of silently producing a CPU-only build."""
    if os.environ.get("MSCE_CUDA", "AUTO").upper() == "OFF":
        pytest.skip(GPU + "MSCE_CUDA=OFF")
    if _nvcc() is None:
        pytest.skip(GPU + "no nvcc on this machine")
    assert C.built_with_cuda, "nvcc is installed but msce._C was built without the CUDA kernels"
