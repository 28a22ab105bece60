"""The steps every load path shares (video files, frames in memory, face crops, DALI):
checking the target and thread count, resolving crop boxes, allocating the output tensor
and its native job, running the job, and moving CPU-made batches to a device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import math
import os

import numpy as np
import torch

from msce._native import C
from msce.errors import TransformError
from msce.io import cuda as _cuda
from msce.io.batch import CropArg, FrameBatch, Target
from msce.io.damage import record_damage
from msce.io.metadata import VideoMetadata
from msce.plan import Plan

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.reader import VideoReader

_DTYPES = {"uint8": torch.uint8, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

__all__ = ["threads_arg", "pin", "crops_for", "allocate", "run", "run_native", "held_bytes", "HeldClip", "hold_all",
           "held_frames", "release_held", "to_device", "check_target",
           "MAX_OUTPUT_BYTES_ENV", "DEFAULT_MAX_OUTPUT_BYTES", "max_output_bytes", "output_cache"]

#: msce's choice: one output tensor (one load call's batch, one segment) may take at most this
#: many bytes unless ``MSCE_MAX_OUTPUT_BYTES`` says otherwise (an integer; 0 turns the cap off).
#: 8 GiB holds e.g. 1000 1080p frames as uint8 or 256 of them as float32; a larger request is
#: almost always a plan or metadata gone wrong. It is also refused when it exceeds the memory
#: available (MemAvailable on Linux for CPU tensors, free device memory for CUDA tensors).
MAX_OUTPUT_BYTES_ENV = "MSCE_MAX_OUTPUT_BYTES"
DEFAULT_MAX_OUTPUT_BYTES = 8 << 30


def max_output_bytes() -> int | None:
    """The output cap in bytes (``MSCE_MAX_OUTPUT_BYTES``, default 8 GiB); None when off."""
    raw = os.environ.get(MAX_OUTPUT_BYTES_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_OUTPUT_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        raise TransformError(f"{MAX_OUTPUT_BYTES_ENV}={raw!r} is not an integer number of bytes") from None
    if value < 0:
        raise TransformError(f"{MAX_OUTPUT_BYTES_ENV}={raw!r} must be >= 0 (0 turns the cap off)")
    return value or None


def _available_bytes(device: torch.device | None) -> int | None:
    """Memory a new tensor can take there, when known."""
    try:
        if device is not None:
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError, IndexError, AssertionError):
        return None
    return None


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def _check_output_size(shape: tuple, dtype: torch.dtype, meta: VideoMetadata, plan: Plan,
                       device: torch.device | None) -> int:
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    where = "device memory" if device is not None else "memory"
    what = (f"{meta.path}: the output tensor for {len(plan)} planned frames would be {tuple(shape)} "
            f"{str(dtype).replace('torch.', '')} = {nbytes} bytes ({_gib(nbytes)})")
    cap = max_output_bytes()
    if cap is not None and nbytes > cap:
        raise TransformError(f"{what}, over msce's output limit of {cap} bytes ({_gib(cap)}); load fewer frames "
                             f"or a smaller size, or raise {MAX_OUTPUT_BYTES_ENV}")
    avail = _available_bytes(device)
    if avail is not None and nbytes > avail:
        raise TransformError(f"{what}, more than the {avail} bytes ({_gib(avail)}) of {where} available")
    return nbytes


def threads_arg(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise TransformError(f"threads must be a non-negative integer (got {threads!r})")
    return threads


def pin(pin_memory: bool | None) -> bool:
    if pin_memory is None:
        return torch.cuda.is_available()
    return bool(pin_memory)


def crops_for(crop: CropArg, plan: Plan, meta: VideoMetadata) -> list[tuple[int, int, int, int]] | None:
    if crop is None:
        return None
    if isinstance(crop, str):
        raise TransformError(f"crop={crop!r} is not a crop mode; pass 'face', msce.faces.FaceCrop(...) "
                             "or boxes (x, y, w, h)")
    boxes = list(crop)
    if len(boxes) == 4 and all(isinstance(v, (int, np.integer)) for v in boxes):
        boxes = [boxes] * len(plan)
    if len(boxes) != len(plan):
        raise TransformError(f"crop: got {len(boxes)} boxes for {len(plan)} planned frames")
    out = []
    for b in boxes:
        x, y, w, h = (int(v) for v in b)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > meta.width or y + h > meta.height:
            raise TransformError(f"crop box {(x, y, w, h)} lies outside the {meta.width}x{meta.height} frame")
        out.append((x, y, w, h))
    return out


def output_cache(limit_bytes: int | None = None, clear: bool = False) -> dict[str, int]:
    """The reuse cache of msce's CPU output memory, and its settings.

    CPU output tensors that are not pinned come from a process-wide pool of 2-MiB-aligned blocks
    (advised for transparent huge pages). When a tensor is freed its block is kept for the next
    load instead of going back to the kernel: a fresh block costs a page fault and a page zeroing
    on every first touch, which for a dense 720p clip into Qwen2.5-VL tensors is about as much CPU
    as the resize itself (bench/README.md). A block is reused for requests of half its size up
    to its size. Pinned tensors come from torch's own caching host allocator instead.

    ``limit_bytes`` sets how many bytes of freed blocks are kept (default 1 GiB, or
    ``MSCE_OUTPUT_CACHE_MB`` megabytes; 0 turns reuse off); ``clear=True`` returns every cached
    block to the system now. Returns the pool's counters: ``hits``, ``misses``, ``cached_bytes``,
    ``cached_blocks``, ``in_use_bytes`` and ``limit_bytes``.
    """
    if limit_bytes is not None:
        if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, (int, np.integer)) or limit_bytes < 0:
            raise TransformError(f"output_cache: limit_bytes must be a non-negative integer (got {limit_bytes!r})")
        C.output_pool_set_limit(int(limit_bytes))
    if clear:
        C.output_pool_clear()
    return dict(C.output_pool_stats())


def _empty_cpu(shape: tuple, dtype: torch.dtype, nbytes: int) -> torch.Tensor:
    """An uninitialised CPU tensor whose memory comes from msce's output pool (see output_cache)."""
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(C.OutputBuffer(nbytes), dtype=torch.uint8)
    return raw.view(dtype).view(shape)


def allocate(target: Target, plan: Plan, crops, meta: VideoMetadata, pin: bool,
              device: torch.device | None = None) -> tuple[dict, FrameBatch]:
    n = len(plan)
    if crops:
        src_h = max(c[3] for c in crops)
        src_w = max(c[2] for c in crops)
    else:
        src_h, src_w = meta.height, meta.width
    alloc = target.allocation(n, src_h, src_w, plan.size)
    dtype = _DTYPES[alloc.dtype]
    shape = alloc.shape
    grid = None if alloc.grid is None else torch.tensor([list(alloc.grid)], dtype=torch.int64, device=device)
    out_h, out_w = alloc.size
    nbytes = _check_output_size(shape, dtype, meta, plan, device)
    try:
        if device is None and pin:  # torch's caching host allocator (cudaHostAlloc, reused)
            data = torch.empty(shape, dtype=dtype, pin_memory=True)
        elif device is None:
            data = _empty_cpu(shape, dtype, nbytes)
        else:  # the kernels write it in place (read through __cuda_array_interface__)
            data = torch.empty(shape, dtype=dtype, device=device)
    # torch.OutOfMemoryError included; pinned allocations fail this way too, the pool with TransformError
    except (RuntimeError, TransformError) as exc:
        raise TransformError(f"{meta.path}: cannot allocate the output tensor {tuple(shape)} "
                             f"{str(dtype).replace('torch.', '')} ({nbytes} bytes, {_gib(nbytes)}): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    # bfloat16 crosses to the native core as an int16 view of the same memory (neither numpy nor
    # torch's __cuda_array_interface__ has a bfloat16 type)
    raw = data.view(torch.int16) if data.dtype == torch.bfloat16 else data
    out = raw.numpy() if device is None else raw
    job = {"indices": list(plan.indices), "crops": crops, "spec": alloc.spec, "out": out, "slots": alloc.slots}
    batch = FrameBatch(data=data, grid_thw=grid, plan=plan, target=target, metadata=meta, size=(out_h, out_w))
    return job, batch


# ---- one decode pass shared by several loads of one reader ------------------------------------
# A plan that must look at every frame before it knows which ones it wants (the motion-aware
# gaps) decodes the clip once, holds the decoded frames on the reader (planes copied into a
# reused output-pool block, no conversion: csrc/face/hold.hpp) and lets its analysis load and the load that
# follows run their jobs on them; the reader's last decode call stays that pass, so damage
# flags are reported as usual.


def held_bytes(meta: VideoMetadata, frames: int) -> float:
    """Memory ``frames`` decoded frames take when held (4:2:0 planes, else RGB24)."""
    per_pixel = 1.5 if meta.pixel_format in ("yuv420p", "yuvj420p", "nv12") else 3.0
    return frames * meta.height * meta.width * per_pixel


class HeldClip(NamedTuple):
    """A clip decoded once and held on its reader: the native frames, the stats of their
    decode pass, and ``detections``, a memo the face-crop loads on these frames share (per
    detector object: (frame index, detection size) -> that frame's detections), so a frame
    detected by the analysis is not detected again by the load that follows."""

    frames: Any
    stats: dict
    detections: dict


def hold_all(reader: VideoReader, threads: int) -> None:
    """Decode every frame of ``reader`` once and hold them for the loads that follow."""
    held, stats = C.face_decode_and_hold(reader._native, list(range(reader.metadata.num_frames)), [], threads)
    reader._held = HeldClip(held, dict(stats), {})


def held_frames(reader: VideoReader) -> HeldClip | None:
    """The clip ``reader`` holds, else None."""
    return reader._held


def release_held(reader: VideoReader) -> None:
    reader._held = None


def run_native(reader: VideoReader, jobs: list, threads: int) -> dict:
    """Runs CPU jobs: on the frames ``reader`` holds, else in a decode pass of their own."""
    held = held_frames(reader)
    if held is None:
        return dict(reader._native.run_jobs(jobs, threads))
    C.face_run_held_jobs(held.frames, jobs, threads)
    return dict(held.stats, shared_decode=True)


def run(reader: VideoReader, plan: Plan, target: Target, crop: CropArg, threads: int,
        pin_memory: bool | None, device: torch.device | None = None) -> FrameBatch:
    crops = crops_for(crop, plan, reader.metadata)
    job, batch = allocate(target, plan, crops, reader.metadata, pin(pin_memory), device)
    if device is None:
        batch.stats = run_native(reader, [job], threads)
    else:
        batch.stats = _cuda.run_jobs(reader, [job], device, reader._seek_threshold)
    record_damage(reader, [batch], batch.stats)
    return batch


def to_device(batches: list[FrameBatch], device: torch.device | None) -> list[FrameBatch]:
    """Copies CPU-made batches (pinned) to ``device``, asynchronously on its current stream."""
    if device is None:
        return batches
    for b in batches:
        b.data = b.data.to(device, non_blocking=True)
        if b.grid_thw is not None:
            b.grid_thw = b.grid_thw.to(device)
    return batches


def check_target(target: Any) -> None:
    if not isinstance(target, Target):
        raise TransformError(f"target must be a msce.targets.Target: msce.QwenVL, msce.Frames or "
                             f"msce.target_for(...) (got {type(target).__name__})")
