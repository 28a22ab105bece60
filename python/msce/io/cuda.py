"""The CUDA placement behind ``msce.load(..., device="cuda")`` and friends.

Outputs are torch CUDA tensors written by msce's kernels (the same integer pixel math as the
CPU path, so results are bit-identical). Decoding uses NVDEC (FFmpeg's CUDA hwaccel) when it
can; otherwise the CPU decodes and the GPU transforms, which is said once in a warning.
``MSCE_CUDA_DECODE=auto|nvdec|cpu`` forces a decoder (``nvdec`` fails instead of falling back).

All work is enqueued on ``torch.cuda.current_stream(device)``; the returned tensors are
complete in that stream's order, so the usual torch code on the same stream needs no
synchronization.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from msce._validate import rgb_frames
from msce.errors import ConfigError, CudaError, TransformError, UnsupportedError

__all__ = ["status", "resolve_device", "run_jobs", "run_array_jobs", "check_cuda_frames"]

_DECODE_MODES = ("auto", "nvdec", "cpu")
_warned_fallback = False


def status() -> tuple[bool, str]:
    """(available, reason) for msce's CUDA path: built with CUDA, a driver new enough for the
    runtime msce links, a visible device, and a torch build that can use it."""
    from msce._native import C

    s = C.cuda_status()
    if not s["ok"]:
        return False, s["reason"]
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return False, (f"the CUDA driver sees {s['device_count']} device(s) but this torch build has no CUDA "
                           f"support (torch {torch.__version__}); install a CUDA build of torch")
        return False, f"the CUDA driver sees {s['device_count']} device(s) but torch sees none (CUDA_VISIBLE_DEVICES?)"
    return True, "ok"


def resolve_device(device: Any) -> torch.device | None:
    """None for CPU outputs, else the concrete ``torch.device('cuda', index)``.

    Raises TransformError for a malformed device and CudaError (with the precise cause) when
    CUDA was asked for but cannot run here."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise TransformError(f"device must be 'cpu', 'cuda' or 'cuda:N' (got {device!r})") from exc
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        raise TransformError(f"device must be 'cpu', 'cuda' or 'cuda:N' (got {device!r})")
    ok, why = status()
    if not ok:
        raise CudaError(f"device={str(device)!r} needs CUDA: {why}")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise CudaError(f"device={str(device)!r}: there are {count} CUDA device(s)")
    return torch.device("cuda", index)


def _stream(dev: torch.device) -> int:
    return int(torch.cuda.current_stream(dev).cuda_stream)


def _decode_mode() -> str:
    mode = os.environ.get("MSCE_CUDA_DECODE", "auto").strip().lower() or "auto"
    if mode not in _DECODE_MODES:
        raise ConfigError(f"MSCE_CUDA_DECODE must be one of {', '.join(_DECODE_MODES)} (got {mode!r})")
    return mode


def _warn_fallback(reason: str) -> None:
    global _warned_fallback
    if _warned_fallback:
        return
    _warned_fallback = True
    warnings.warn(f"msce: NVDEC is not used ({reason}); decoding on the CPU and transforming on the GPU "
                  "(said once per process; batch.stats['decoder'] records it for every call)",
                  RuntimeWarning, stacklevel=4)


def run_jobs(reader: Any, jobs: list[dict], dev: torch.device, seek_threshold: int = 16) -> dict:
    """Decode ``reader``'s file into the jobs' CUDA outputs: NVDEC first, then CPU decode."""
    from msce._native import C

    mode = _decode_mode()
    stream = _stream(dev)
    reason = None
    if mode != "cpu":
        try:
            stats = dict(C.nvdec_run_jobs(reader._native, jobs, dev.index, stream, int(seek_threshold)))
            stats["decoder"] = "nvdec"
            return stats
        except UnsupportedError as exc:
            if mode == "nvdec":
                raise
            reason = str(exc)
            _warn_fallback(reason)
    stats = dict(C.cuda_run_jobs(reader._native, jobs, dev.index, stream))
    stats["decoder"] = "cpu"
    if reason is not None:
        stats["nvdec_unavailable"] = reason
    return stats


def run_array_jobs(frames: Any, jobs: list[dict], dev: torch.device) -> None:
    """(T, H, W, 3) uint8 frames (numpy: staged through pinned memory; CUDA tensor: in place)."""
    from msce._native import C

    C.cuda_run_array_jobs(frames, jobs, dev.index, _stream(dev))


def check_cuda_frames(frames: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """A CUDA tensor of frames as the kernels read it: (T, H, W, 3) uint8, contiguous, on ``dev``
    (the same checks and messages as the host path of ``msce.preprocess``)."""
    x = rgb_frames(frames.detach(), torch.uint8)
    if x.device != dev:
        x = x.to(dev)
    return x.contiguous()
