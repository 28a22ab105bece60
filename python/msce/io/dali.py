"""NVIDIA DALI as a GPU decoder for msce (optional extra: ``pip install msce[dali]``, which
installs ``nvidia-dali-cuda130``).

DALI decodes exactly the frames of msce's plan on the GPU (``fn.decoders.video`` on the
"mixed" backend with ``frames=[...]``); its output is handed to torch through DLPack (no
host copy) and msce's CUDA kernels crop, resize, normalize and patchify it like every other
msce path. Frame selection stays msce's: the plan is resolved from msce's own packet index.

Exactness: DALI converts YUV to RGB with its own kernels, so results are close to, but not
bit-identical with, msce's CPU and NVDEC paths (which share one integer colour conversion).
Rotated videos are refused (UnsupportedError) rather than decoded in coded orientation.

>>> from msce.io import dali
>>> batch = dali.load("clip.mp4", msce.plan.uniform(1.0), msce.QwenVL("2.5"))  # on cuda:0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msce.io import cuda as _cuda
from msce.errors import ConfigError, CudaError, TransformError, UnsupportedError

__all__ = ["available", "DaliDecoder", "load"]


def _dali_missing() -> str | None:
    """Why DALI cannot be imported (naming the extra that installs it), or None."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError as exc:
        return f"NVIDIA DALI is not installed (pip install 'msce[dali]'): {exc}"
    return None


def available() -> tuple[bool, str]:
    """(available, reason): DALI importable and msce's CUDA path usable."""
    missing = _dali_missing()
    if missing is not None:
        return False, missing
    return _cuda.status()


def _resolve_cuda_device(device: Any, what: str) -> torch.device:
    """Checks in a fixed order, cheapest first, so one mistake always raises one error type:
    a malformed device (TransformError), a non-CUDA device (CudaError), DALI missing
    (ConfigError naming ``msce[dali]``), then CUDA unusable here (CudaError)."""
    try:
        dev = None if device is None else torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise TransformError(f"device must be 'cuda' or 'cuda:N' (got {device!r})") from exc
    if dev is None or dev.type != "cuda":
        raise CudaError(f"{what} decodes on a CUDA device; pass device='cuda[:N]' (got {device!r})")
    missing = _dali_missing()
    if missing is not None:
        raise ConfigError(f"{what} needs NVIDIA DALI: {missing}")
    return _cuda.resolve_device(dev)


class DaliDecoder:
    """A reusable DALI pipeline: encoded file bytes + frame indices in, (F, H, W, 3) uint8 RGB
    frames on the GPU out. Build it once and decode many clips (building costs ~0.1-1 s)."""

    def __init__(self, device: Any = "cuda", num_threads: int = 2):
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ConfigError(f"num_threads must be a positive integer (got {num_threads!r})")
        dev = _resolve_cuda_device(device, "the DALI decoder")
        from nvidia.dali import fn, pipeline_def, types

        self.device = dev

        @pipeline_def(batch_size=1, num_threads=num_threads, device_id=dev.index, prefetch_queue_depth=1)
        def _pipe():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1, device="cpu")
            frames = fn.external_source(name="frames", dtype=types.INT32, ndim=1, device="cpu")
            return fn.decoders.video(encoded, device="mixed", frames=frames)

        self._pipe = _pipe()
        self._pipe.build()

    def decode(self, source: str | os.PathLike | bytes, indices: list[int]) -> torch.Tensor:
        """Frames at ``indices`` as a CUDA uint8 tensor (F, H, W, 3), in the order given.

        The tensor views DALI's output buffer: it is valid until the next ``decode`` call
        (``load`` consumes it before then). Outputs are synchronized with the host."""
        data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        self._pipe.feed_input("encoded", [np.frombuffer(data, dtype=np.uint8)])
        self._pipe.feed_input("frames", [np.asarray(indices, dtype=np.int32)])
        (out,) = self._pipe.run()
        tensor = out[0]
        if hasattr(tensor, "__dlpack__"):
            return torch.from_dlpack(tensor)
        return torch.utils.dlpack.from_dlpack(tensor._expose_dlpack_capsule())


_decoders: dict[int, DaliDecoder] = {}


def load(path: str | os.PathLike, plan: Any, target: Any, crop: Any = None, device: Any = "cuda",
         decoder: DaliDecoder | None = None):
    """Like ``msce.load(path, plan, target, crop, device=...)`` with DALI decoding the frames.

    Returns a FrameBatch whose tensors live on ``device``; ``stats['decoder'] == 'dali'``.
    Errors, checked in this order: TransformError (bad target or malformed device),
    ConfigError (bad ``decoder``), CudaError (a non-CUDA device), ConfigError naming
    ``msce[dali]`` (DALI not installed), CudaError (CUDA unusable here), then the reader's
    errors for the file."""
    import time

    from msce.plan import resolve
    from msce.io.jobs import allocate as _allocate, check_target as _check_target, crops_for as _crops_for
    from msce.io.reader import VideoReader

    _check_target(target)
    if decoder is not None and not isinstance(decoder, DaliDecoder):
        raise ConfigError(f"decoder must be an msce.io.dali.DaliDecoder or None (got {type(decoder).__name__})")
    dev = _resolve_cuda_device(device, "msce.io.dali.load")
    if decoder is not None and decoder.device != dev:
        raise ConfigError(f"the decoder runs on {decoder.device}, but device={str(device)!r}")
    t0 = time.perf_counter()
    reader = VideoReader(path)
    meta = reader.metadata
    if meta.rotation:
        raise UnsupportedError(f"{path}: rotated video ({meta.rotation} degrees) is not supported by the DALI path")
    if len(meta.video_streams) > 1:  # DALI picks a stream of its own, which may not be msce's
        raise UnsupportedError(f"{path}: the file has {len(meta.video_streams)} video streams and the DALI path "
                               "cannot choose one; use msce.load(..., stream=i)")
    p = resolve(plan, meta)
    crops = _crops_for(crop, p, meta)
    job, batch = _allocate(target, p, crops, meta, False, dev)
    if decoder is None:
        if dev.index not in _decoders:
            _decoders[dev.index] = DaliDecoder(dev)
        decoder = _decoders[dev.index]
    unique = sorted(set(p.indices))
    frames = decoder.decode(path, unique)
    if frames.shape[0] != len(unique) or tuple(frames.shape[1:]) != (meta.height, meta.width, 3):
        raise UnsupportedError(f"{path}: DALI returned frames of shape {tuple(frames.shape)}, expected "
                               f"({len(unique)}, {meta.height}, {meta.width}, 3)")
    t1 = time.perf_counter()
    position = {idx: k for k, idx in enumerate(unique)}
    job = dict(job, indices=[position[i] for i in p.indices])
    with torch.cuda.device(dev):
        _cuda.run_array_jobs(frames, [job], dev)
        # DALI reuses its output buffer on the next run: finish reading it first.
        torch.cuda.current_stream(dev).synchronize()
    batch.stats = {"decoder": "dali", "frames_decoded": len(unique), "decode_seconds": t1 - t0,
                   "total_seconds": time.perf_counter() - t0}
    return batch
