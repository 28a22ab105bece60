"""Synthetic decoded frames (yuv420p / nv12 / rgb24 planes with padded rows) and the three
ways to transform them: the CPU loop, the CUDA kernels' element bodies emulated on the host,
and the CUDA kernels."""

from __future__ import annotations

import numpy as np
import torch

from msce.targets import Frames, QwenVL

LAYOUTS = {"yuv420p": 0, "nv12": 1, "rgb24": 2}


def make_frames(layout: str, width: int, height: int, count: int, seed: int, matrix: int = 1,
                full_range: bool = False) -> list[dict]:
    """Random planes; every row carries a few bytes of padding past the picture."""
    rng = np.random.default_rng(seed)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    frames = []
    for _ in range(count):
        if layout == "rgb24":
            planes = [rng.integers(0, 256, (height, 3 * width + 5), dtype=np.uint8)]
        elif layout == "nv12":
            planes = [rng.integers(0, 256, (height, width + 3), dtype=np.uint8),
                      rng.integers(0, 256, (ch, 2 * cw + 6), dtype=np.uint8)]
        else:
            planes = [rng.integers(0, 256, (height, width + 7), dtype=np.uint8),
                      rng.integers(0, 256, (ch, cw + 1), dtype=np.uint8),
                      rng.integers(0, 256, (ch, cw + 2), dtype=np.uint8)]
        frames.append({"layout": LAYOUTS[layout], "planes": planes, "width": width, "height": height,
                       "matrix": matrix, "full_range": full_range})
    return frames


def output_shape(target, n: int, out_h: int, out_w: int) -> tuple[tuple[int, ...], torch.dtype, int]:
    """(shape, dtype, slots) of the buffer msce allocates for ``n`` frames."""
    if isinstance(target, QwenVL):
        gt, gh, gw = target.grid(n, out_h, out_w)
        dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[target.dtype]
        return (gt * gh * gw, 3 * target.temporal * target.patch ** 2), dt, gt * target.temporal
    assert isinstance(target, Frames)
    dt = {"uint8": torch.uint8, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[target.dtype]
    shape = (n, 3, out_h, out_w) if target.layout == "NCHW" else (n, out_h, out_w, 3)
    return shape, dt, n


def transform(frames: list[dict], indices: list[int], target, out_size: tuple[int, int], crops, backend: str,
              device: str = "cuda") -> torch.Tensor:
    """Runs one job through ``backend`` ("cpu", "emulate" or "cuda"); returns a CPU tensor."""
    from msce._native import C

    out_h, out_w = out_size
    shape, dt, slots = output_shape(target, len(indices), out_h, out_w)
    if backend == "cuda":
        dev = torch.device(device)
        out = torch.full(shape, 7, dtype=dt, device=dev)
        raw = out.view(torch.int16) if dt == torch.bfloat16 else out  # bfloat16 crosses as int16 (as msce.io does)
        job = {"indices": list(indices), "crops": crops, "spec": target.native_spec(out_h, out_w), "out": raw,
               "slots": slots}
        C.transform_frame_list(frames, [job], "cuda", dev.index or 0, torch.cuda.current_stream(dev).cuda_stream)
        return out.cpu()
    out = torch.full(shape, 7, dtype=dt)
    raw = out.view(torch.int16) if dt == torch.bfloat16 else out
    job = {"indices": list(indices), "crops": crops, "spec": target.native_spec(out_h, out_w), "out": raw.numpy(),
           "slots": slots}
    C.transform_frame_list(frames, [job], backend)
    return out


def assert_same(got: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    """The issue's bound (max abs error <= 1e-3 in normalized units), then msce's design claim:
    the GPU runs the same integer math, so the outputs are bit-identical."""
    got = got.cpu()
    assert got.shape == ref.shape and got.dtype == ref.dtype, (what, got.shape, ref.shape, got.dtype, ref.dtype)
    diff = (got.double() - ref.double()).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    if got.is_floating_point():
        assert worst <= 1e-3, f"{what}: max abs error {worst}"
    same = got.view(torch.uint8) if got.dtype != torch.uint8 else got
    ref_bytes = ref.view(torch.uint8) if ref.dtype != torch.uint8 else ref
    mismatched = int((same != ref_bytes).sum())
    assert mismatched == 0, f"{what}: {mismatched} bytes differ (max abs error {worst})"
