"""Video reading and the decode-to-token path.

``load(path, plan, target)`` decodes only the planned frames (seeking when that skips
work, never past the last one), transforms each frame on a thread pool as soon as it is
decoded, and writes it straight into its slot of the output tensor: a clip is never held
decoded in memory, except where holding decoded frames (under a memory limit) saves a
second decode pass: ``crop="face"`` holds the planned frames (``FaceCrop.buffer_mb``) and
``motion_aware_gaps`` the whole clip for its analysis and the load
(``MotionAwareGaps.buffer_mb``). The GIL is released for the whole native call.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from msce._validate import rgb_frames
from msce.errors import ConfigError, TransformError
from msce.io import cuda as _cuda
from msce.io.batch import CropArg, FrameBatch, Target
from msce.io.damage import DEFAULT_ON_DAMAGE, apply_on_damage, check_on_damage, record_damage
from msce.io.jobs import (allocate, check_target, crops_for, held_frames, pin, release_held, run, run_native,
                          threads_arg, to_device)
from msce.io.metadata import VideoMetadata
from msce.io.reader import VideoReader, stream_arg
from msce.plan import Plan, PlanSpec, at_indices, resolve

__all__ = ["VideoMetadata", "VideoReader", "FrameBatch", "load", "load_segments", "preprocess",
           "CropProvider", "register_crop_provider"]


class CropProvider(Protocol):
    """A crop mode that a layer above io adds to ``load``/``load_segments``/``preprocess``
    (``msce.faces`` registers crop="face" / ``FaceCrop(...)`` when it is imported, and
    ``import msce`` imports it). io itself knows only boxes."""

    def options(self, crop: Any) -> Any | None:
        """Its options for this ``crop`` argument, or None when the argument is not its kind."""

    def load(self, reader: VideoReader, plan: Plan, target: Target, options: Any, threads: int, pin: bool,
             segments: bool = False) -> list[FrameBatch]:
        """One decode pass over ``plan``: one batch, or one per segment when ``segments``."""

    def preprocess(self, frames: np.ndarray, meta: VideoMetadata, plan: Plan, target: Target, options: Any,
                   threads: int, pin: bool) -> FrameBatch:
        """The same for frames in memory."""


_CROP_PROVIDERS: list[CropProvider] = []


def register_crop_provider(provider: CropProvider) -> None:
    """Adds a crop mode (once; later registrations of the same object are ignored)."""
    if provider not in _CROP_PROVIDERS:
        _CROP_PROVIDERS.append(provider)


def _provider_for(crop: Any) -> tuple[CropProvider, Any] | None:
    """The provider that takes this ``crop`` argument and its options, else None (boxes)."""
    if crop is None or (isinstance(crop, Sequence) and not isinstance(crop, str)):
        return None
    for provider in _CROP_PROVIDERS:
        options = provider.options(crop)
        if options is not None:
            return provider, options
    if isinstance(crop, str):
        return None  # crops_for names the accepted values
    raise TransformError(f"crop: {type(crop).__name__} is not a crop mode; pass 'face', msce.faces.FaceCrop(...) "
                         "or boxes (x, y, w, h)")


def _open(path_or_reader: Any, threads: int | None, stream: int | None = None) -> VideoReader:
    if isinstance(path_or_reader, VideoReader):
        if stream is not None and stream_arg(stream) != path_or_reader.metadata.stream:
            raise ConfigError(f"{path_or_reader.path}: stream={stream} but the VideoReader given decodes stream "
                              f"{path_or_reader.metadata.stream}; open it with VideoReader(path, stream={stream})")
        return path_or_reader
    return VideoReader(path_or_reader, threads=threads, stream=stream)


def load(path: str | os.PathLike | VideoReader, plan: PlanSpec | Plan, target: Target, crop: CropArg = None,
         threads: int | None = None, pin_memory: bool | None = None,
         device: str | torch.device | None = None, on_damage: str = DEFAULT_ON_DAMAGE,
         stream: int | None = None) -> FrameBatch:
    """Decode the planned frames of ``path`` into ``target``'s tensors.

    ``crop``: None, one (x, y, w, h) box for every frame, one box per planned frame, or
    "face" / ``msce.faces.FaceCrop(...)`` to crop to the tracked face (``batch.faces``).
    ``threads``: None (or 0) = FFmpeg's frame threads and one transform worker per CPU this
    process may use (its affinity mask, capped by a cgroup CPU quota); N = N of each.
    ``pin_memory``: None pins the output when CUDA is available; CPU outputs that are not pinned
    come from msce's reusable output memory (:func:`msce.output_cache`).
    ``device``: None/"cpu", or "cuda[:N]" for CUDA tensors made by msce's kernels (bit-identical
    to the CPU output): NVDEC decode when available, else CPU decode + GPU transform (one
    warning). Face crops on "cuda" are transformed on the CPU and copied to the device.
    ``on_damage``: frames the decoder flagged as corrupt or error-concealed (``batch.damaged``)
    -> "raise" (DecodeError naming the file and frames), "warn" (default: one
    DamagedFramesWarning per call, frames kept) or "keep" (kept silently).
    ``stream``: the video stream of a file with several, as for :class:`VideoReader`: None
    = FFmpeg's best, else the container's stream index (ffprobe's ``index``).
    """
    done, video = _load_start(path, plan, target, crop, threads, pin_memory, device, on_damage, stream,
                              segments=False)
    if done is not None:
        return done[0]
    reader, p, dev, held = video
    try:
        batches = [run(reader, p, target, crop, threads_arg(threads), pin_memory, dev)]
    finally:
        if held:
            release_held(reader)
    apply_on_damage(reader.path, batches, on_damage)
    return batches[0]


def _load_start(path, plan, target, crop, threads, pin_memory, device, on_damage, stream, segments: bool):
    """What load and load_segments share: the checks, then (batches, None) for a frame folder
    or a crop provider (damage applied, on the device), else (None, (reader, resolved plan,
    device, held)) for the caller's own decode of the video; ``held``: this call made the
    reader hold its decoded clip (a plan's ``decode_once`` hook), which the caller releases."""
    check_target(target)
    check_on_damage(on_damage)
    folder = _as_folder(path)
    if folder is not None:
        if stream is not None:
            raise ConfigError(f"{folder.path}: stream={stream!r} was given, but a frame folder has no streams")
        return _load_folder(folder, plan, target, crop, threads, pin_memory, device, segments=segments), None
    dev = _cuda.resolve_device(device)
    reader = _open(path, threads, stream)
    held = False
    try:
        # A plan that analyses every frame first (motion-aware gaps) may decode the clip once
        # for its analysis and for this load (CPU loads only; see MotionAwareGaps.decode_once).
        decode_once = getattr(plan, "decode_once", None)
        if dev is None and callable(decode_once) and held_frames(reader) is None:
            held = bool(decode_once(reader, threads_arg(threads)))
        p = resolve(plan, reader.metadata)
        mode = _provider_for(crop)
        if mode is None:
            return None, (reader, p, dev, held)
        provider, options = mode
        batches = provider.load(reader, p, target, options, threads_arg(threads),
                                pin(pin_memory) or dev is not None, segments=segments)
    except BaseException:
        if held:
            release_held(reader)
        raise
    if held:
        release_held(reader)
    record_damage(reader, batches, batches[0].stats if batches else {})
    apply_on_damage(reader.path, batches, on_damage)
    return to_device(batches, dev), None


def _as_folder(path: Any):
    """A FrameFolder for a FrameFolder or a directory of images, else None (videos)."""
    from msce.io.folder import FrameFolder, is_frame_folder

    if isinstance(path, FrameFolder):
        return path
    if isinstance(path, (str, os.PathLike)) and is_frame_folder(path):
        return FrameFolder(path)
    return None


def _load_folder(folder, plan, target, crop, threads, pin_memory, device, segments: bool) -> list[FrameBatch]:
    """Frame folders: decode each planned image once, then the same transform as preprocess()."""
    p = resolve(plan, folder.metadata)
    parts = p.segments() if segments else [p]
    crops = crop if crop is None or isinstance(crop, str) or _is_single_box(crop) else list(crop)
    unique = sorted(set(p.indices))
    frames = folder.get_frames(unique)
    row = {idx: k for k, idx in enumerate(unique)}
    out, start = [], 0
    for part in parts:
        part_crop = crops[start:start + len(part)] if isinstance(crops, list) else crops
        start += len(part)
        batch = preprocess(frames[[row[i] for i in part.indices]], target, fps=folder.metadata.average_fps,
                           crop=part_crop, threads=threads, pin_memory=pin_memory, device=device)
        batch.plan = part
        batch.metadata = folder.metadata
        out.append(batch)
    return out


def _is_single_box(crop: Any) -> bool:
    try:
        return len(crop) == 4 and all(isinstance(v, (int, np.integer)) for v in crop)
    except TypeError:
        return False


def load_segments(path: str | os.PathLike | VideoReader, plan: PlanSpec | Plan, target: Target,
                  crop: CropArg = None, threads: int | None = None,
                  pin_memory: bool | None = None,
                  device: str | torch.device | None = None,
                  on_damage: str = DEFAULT_ON_DAMAGE, stream: int | None = None) -> list[FrameBatch]:
    """One FrameBatch per ``plan.segments()`` (e.g. keyframe, gap, keyframe, ...), each
    transformed as its own clip, all from a single decode pass. ``device``, ``on_damage``
    and ``stream`` as for ``load`` (one warning or error for the whole call)."""
    done, video = _load_start(path, plan, target, crop, threads, pin_memory, device, on_damage, stream,
                              segments=True)
    if done is not None:
        return done
    reader, p, dev, held = video
    try:
        crops = crops_for(crop, p, reader.metadata)
        jobs, batches = [], []
        start = 0
        for seg in p.segments():
            seg_crops = crops[start:start + len(seg)] if crops else None
            start += len(seg)
            job, batch = allocate(target, seg, seg_crops, reader.metadata, pin(pin_memory), dev)
            jobs.append(job)
            batches.append(batch)
        if dev is None:
            stats = run_native(reader, jobs, threads_arg(threads))
        else:
            stats = _cuda.run_jobs(reader, jobs, dev, reader._seek_threshold)
    finally:
        if held:
            release_held(reader)
    for b in batches:
        b.stats = stats
    record_damage(reader, batches, stats)
    apply_on_damage(reader.path, batches, on_damage)
    return batches


def preprocess(frames: Any, target: Target, fps: float | None = None, crop: CropArg = None,
               threads: int | None = None, pin_memory: bool | None = None,
               device: str | torch.device | None = None) -> FrameBatch:
    """Transform frames the caller already decoded: (T, H, W, 3) uint8 RGB, numpy or torch.

    ``device="cuda[:N]"``: outputs on that device; CUDA tensor input is read in place, host
    input is copied through pinned memory."""
    check_target(target)
    dev = _cuda.resolve_device(device)
    if dev is not None and isinstance(frames, torch.Tensor) and frames.is_cuda:
        arr = _cuda.check_cuda_frames(frames, dev)
    else:
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        arr = np.ascontiguousarray(rgb_frames(np.asarray(frames), np.uint8))
    t, h, w, _ = arr.shape
    meta = VideoMetadata.synthetic(t, float(fps) if fps else 1.0, h, w)
    plan = at_indices(range(t)).resolve(meta)
    if fps:
        plan = Plan(plan.indices, plan.timestamps, plan.roles, plan.groups, float(fps), float(fps), t, plan.spec)
    mode = _provider_for(crop)
    if mode is not None:
        provider, options = mode
        if isinstance(arr, torch.Tensor):
            arr = arr.cpu().numpy()
        return to_device([provider.preprocess(arr, meta, plan, target, options, threads_arg(threads),
                                              pin(pin_memory) or dev is not None)], dev)[0]
    crops = crops_for(crop, plan, meta)
    job, batch = allocate(target, plan, crops, meta, pin(pin_memory), dev)
    if dev is not None:
        _cuda.run_array_jobs(arr, [job], dev)
        return batch
    from msce._native import C

    C.run_array_jobs(arr, [job], threads_arg(threads))
    return batch


def cuda_available() -> tuple[bool, str]:
    """(available, reason): whether msce's CUDA path can run here, and why not. The reason
    says which: msce built without CUDA, no NVIDIA driver, a driver older than msce's CUDA
    runtime, no visible device, or a torch build without CUDA; "ok" when available."""
    return _cuda.status()

