"""Video reading and the decode-to-token path.

``load(path, plan, target)`` decodes only the planned frames (seeking when that skips
work, never past the last one), transforms each frame on a thread pool as soon as it is
decoded, and writes it straight into its slot of the output tensor: a clip is never held
decoded in memory. The GIL is released for the whole native call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
import torch

from msce import _cuda
from msce.errors import DecodeError, TransformError
from msce.plan import Plan, PlanSpec, at_indices, resolve
from msce.targets import Frames, QwenVL

__all__ = ["VideoMetadata", "VideoReader", "FrameBatch", "load", "load_segments", "preprocess"]

Target = Union[QwenVL, Frames]
CropArg = Union[None, str, "FaceCrop", Sequence[int], Sequence[Sequence[int]]]

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop, FaceTrack


@dataclass(frozen=True)
class VideoMetadata:
    """What the reader found in a file. ``width``/``height`` are the display size (after
    rotation); ``num_frames`` is the true count from a packet scan; ``timestamps`` are the
    presentation times of every frame, seconds from the first."""

    path: str
    container: str
    codec: str
    pixel_format: str
    bit_depth: int
    coded_width: int
    coded_height: int
    width: int
    height: int
    rotation: int
    num_frames: int
    header_num_frames: int
    duration: float
    average_fps: float
    variable_frame_rate: bool
    color_space: str
    color_range: str
    timestamps: tuple[float, ...] = field(repr=False)

    @classmethod
    def _from_native(cls, d: dict) -> VideoMetadata:
        d = dict(d)
        d.pop("color_matrix", None)
        d.pop("full_range", None)
        d["timestamps"] = tuple(float(t) for t in np.asarray(d["timestamps"]))
        return cls(**d)

    @classmethod
    def synthetic(cls, num_frames: int, fps: float, height: int, width: int, path: str = "<frames>") -> VideoMetadata:
        """Metadata for frames already in memory (constant rate)."""
        ts = tuple(i / fps for i in range(num_frames))
        return cls(path, "memory", "rawvideo", "rgb24", 8, width, height, width, height, 0, num_frames, num_frames,
                   num_frames / fps, fps, False, "unknown", "pc", ts)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "timestamps"}
        return d


def _check_path(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    raise TypeError(f"video path must be a str or os.PathLike, got {type(path).__name__}")


def _threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise TransformError(f"threads must be a non-negative integer (got {threads!r})")
    return threads


class VideoReader:
    """A video file opened for frame-accurate reading.

    >>> r = VideoReader("clip.mp4"); r.metadata.num_frames

    Only local regular files are read by default: FIFOs, devices, directories, paths with a
    NUL byte and FFmpeg URLs ("concat:a|b", "http://...", "pipe:") raise DecodeError, so a
    dataset listing cannot make msce block or fetch something else. ``protocols`` opts in to
    URLs: the FFmpeg protocols allowed, e.g. ``("file", "http", "https", "tcp", "tls")``.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, seek_threshold: int = 16,
                 protocols: str | Sequence[str] | None = None):
        from msce._native import C

        self.path = _check_path(path)
        self._threads = _threads(threads)
        self._seek_threshold = int(seek_threshold)
        self._protocols = protocols if isinstance(protocols, str) or protocols is None else ",".join(protocols)
        self._native = C.VideoReader(self.path, self._threads, self._seek_threshold, self._protocols or "")
        self.metadata = VideoMetadata._from_native(self._native.metadata())

    def __repr__(self) -> str:
        m = self.metadata
        return (f"VideoReader({m.path!r}, {m.codec} {m.width}x{m.height}, {m.num_frames} frames, "
                f"{m.average_fps:.3f} fps)")

    @property
    def last_stats(self) -> dict:
        return dict(self._native.last_stats())

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """RGB frames at these indices as uint8 (N, H, W, 3), display orientation."""
        plan = at_indices(indices).resolve(self.metadata)
        batch = _run(self, plan, Frames(layout="NHWC"), None, self._threads, pin_memory=False)
        return batch.data.numpy()

    def get_frames_at(self, times: Sequence[float]) -> np.ndarray:
        """RGB frames nearest to these timestamps (seconds) as uint8 (N, H, W, 3)."""
        from msce.plan import at_times

        plan = at_times(times).resolve(self.metadata)
        return _run(self, plan, Frames(layout="NHWC"), None, self._threads, pin_memory=False).data.numpy()


@dataclass
class FrameBatch:
    """Frames of one plan in a model's layout.

    ``data``: Qwen targets -> (grid_t*grid_h*grid_w, 3*2*p*p) float; Frames -> (T, C, H, W)
    or (T, H, W, C). ``grid_thw``: (1, 3) int64 for Qwen targets, else None.
    """

    data: torch.Tensor
    grid_thw: torch.Tensor | None
    plan: Plan
    target: Target
    metadata: VideoMetadata
    size: tuple[int, int]
    stats: dict = field(default_factory=dict)
    faces: FaceTrack | None = None  # crop="face": boxes, landmarks, per-frame status (msce.faces)

    @property
    def indices(self) -> tuple[int, ...]:
        return self.plan.indices

    @property
    def timestamps(self) -> tuple[float, ...]:
        return self.plan.timestamps

    @property
    def roles(self) -> tuple[str, ...]:
        return self.plan.roles

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def num_tokens(self) -> int:
        """LLM tokens this batch costs (Qwen targets); 0 for plain frames."""
        if self.grid_thw is None:
            return 0
        t, h, w = (int(v) for v in self.grid_thw[0])
        m = self.target.merge
        return t * h * w // (m * m)

    def to_hf(self, as_image: bool = False) -> dict[str, torch.Tensor]:
        """What a Qwen model's forward/generate takes for this batch."""
        if self.grid_thw is None:
            raise TransformError("to_hf() needs a QwenVL target")
        if as_image:
            if len(self.plan) != 1:
                raise TransformError(f"as_image needs a one-frame batch (this one has {len(self.plan)} frames)")
            return {"pixel_values": self.data, "image_grid_thw": self.grid_thw}
        return {"pixel_values_videos": self.data, "video_grid_thw": self.grid_thw}

    def video_metadata(self) -> dict:
        """Sampling facts Qwen3-VL needs for its timestamp text (true fps and indices)."""
        return {"fps": float(self.metadata.average_fps), "frames_indices": list(self.plan.indices),
                "total_num_frames": int(self.metadata.num_frames), "timestamps": list(self.plan.timestamps),
                "duration": float(self.metadata.duration)}


def _pin(pin_memory: bool | None) -> bool:
    if pin_memory is None:
        return torch.cuda.is_available()
    return bool(pin_memory)


def _crops_for(crop: CropArg, plan: Plan, meta: VideoMetadata) -> list[tuple[int, int, int, int]] | None:
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


def _allocate(target: Target, plan: Plan, crops, meta: VideoMetadata, pin: bool,
              device: torch.device | None = None) -> tuple[dict, FrameBatch]:
    n = len(plan)
    if crops:
        src_h = max(c[3] for c in crops)
        src_w = max(c[2] for c in crops)
    else:
        src_h, src_w = meta.height, meta.width
    if plan.size is not None:
        out_h, out_w = plan.size
    else:
        out_h, out_w = target.output_size(n, src_h, src_w)
    spec = target.native_spec(out_h, out_w)
    if isinstance(target, QwenVL):
        gt, gh, gw = target.grid(n, out_h, out_w)
        slots = gt * target.temporal
        dtype = torch.float32 if target.dtype == "float32" else torch.float16
        shape = (gt * gh * gw, 3 * target.temporal * target.patch ** 2)
        grid = torch.tensor([[gt, gh, gw]], dtype=torch.int64, device=device)
    else:
        slots = n
        dtype = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32}[target.dtype]
        shape = (n, 3, out_h, out_w) if target.layout == "NCHW" else (n, out_h, out_w, 3)
        grid = None
    if device is None:
        data = torch.empty(shape, dtype=dtype, pin_memory=pin)
    else:  # the kernels write it in place (read through __cuda_array_interface__)
        data = torch.empty(shape, dtype=dtype, device=device)
    out = data.numpy() if device is None else data
    job = {"indices": list(plan.indices), "crops": crops, "spec": spec, "out": out, "slots": slots}
    batch = FrameBatch(data=data, grid_thw=grid, plan=plan, target=target, metadata=meta, size=(out_h, out_w))
    return job, batch


def _run(reader: VideoReader, plan: Plan, target: Target, crop: CropArg, threads: int,
         pin_memory: bool | None, device: torch.device | None = None) -> FrameBatch:
    crops = _crops_for(crop, plan, reader.metadata)
    job, batch = _allocate(target, plan, crops, reader.metadata, _pin(pin_memory), device)
    if device is None:
        batch.stats = dict(reader._native.run_jobs([job], threads))
    else:
        batch.stats = _cuda.run_jobs(reader, [job], device, reader._seek_threshold)
    return batch


def _open(path_or_reader: Any, threads: int | None) -> VideoReader:
    if isinstance(path_or_reader, VideoReader):
        return path_or_reader
    return VideoReader(path_or_reader, threads=threads)


def load(path: str | os.PathLike | VideoReader, plan: PlanSpec | Plan, target: Target, crop: CropArg = None,
         threads: int | None = None, pin_memory: bool | None = None,
         device: str | torch.device | None = None) -> FrameBatch:
    """Decode the planned frames of ``path`` into ``target``'s tensors.

    ``crop``: None, one (x, y, w, h) box for every frame, one box per planned frame, or
    "face" / ``msce.faces.FaceCrop(...)`` to crop to the tracked face (``batch.faces``).
    ``pin_memory``: None pins the output when CUDA is available.
    ``device``: None/"cpu", or "cuda[:N]" for CUDA tensors made by msce's kernels (bit-identical
    to the CPU output): NVDEC decode when available, else CPU decode + GPU transform (one
    warning). Face crops on "cuda" are transformed on the CPU and copied to the device.
    """
    _check_target(target)
    folder = _as_folder(path)
    if folder is not None:
        return _load_folder(folder, plan, target, crop, threads, pin_memory, device, segments=False)[0]
    dev = _cuda.resolve_device(device)
    reader = _open(path, threads)
    p = resolve(plan, reader.metadata)
    face = _face_options(crop)
    if face is not None:
        from msce.faces._pipeline import load_faces

        return _to_device(load_faces(reader, p, target, face, _threads(threads), _pin(pin_memory) or dev is not None),
                          dev)[0]
    return _run(reader, p, target, crop, _threads(threads), pin_memory, dev)


def _as_folder(path: Any):
    """A FrameFolder for a FrameFolder or a directory of images, else None (videos)."""
    from msce._folder import FrameFolder, is_frame_folder

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
                  device: str | torch.device | None = None) -> list[FrameBatch]:
    """One FrameBatch per ``plan.segments()`` (e.g. keyframe, gap, keyframe, ...), each
    transformed as its own clip, all from a single decode pass. ``device`` as for ``load``."""
    _check_target(target)
    folder = _as_folder(path)
    if folder is not None:
        return _load_folder(folder, plan, target, crop, threads, pin_memory, device, segments=True)
    dev = _cuda.resolve_device(device)
    reader = _open(path, threads)
    p = resolve(plan, reader.metadata)
    face = _face_options(crop)
    if face is not None:
        from msce.faces._pipeline import load_faces

        return _to_device(load_faces(reader, p, target, face, _threads(threads), _pin(pin_memory) or dev is not None,
                                     segments=True), dev)
    crops = _crops_for(crop, p, reader.metadata)
    jobs, batches = [], []
    start = 0
    for seg in p.segments():
        seg_crops = crops[start:start + len(seg)] if crops else None
        start += len(seg)
        job, batch = _allocate(target, seg, seg_crops, reader.metadata, _pin(pin_memory), dev)
        jobs.append(job)
        batches.append(batch)
    if dev is None:
        stats = dict(reader._native.run_jobs(jobs, _threads(threads)))
    else:
        stats = _cuda.run_jobs(reader, jobs, dev, reader._seek_threshold)
    for b in batches:
        b.stats = stats
    return batches


def preprocess(frames: Any, target: Target, fps: float | None = None, crop: CropArg = None,
               threads: int | None = None, pin_memory: bool | None = None,
               device: str | torch.device | None = None) -> FrameBatch:
    """Transform frames the caller already decoded: (T, H, W, 3) uint8 RGB, numpy or torch.

    ``device="cuda[:N]"``: outputs on that device; CUDA tensor input is read in place, host
    input is copied through pinned memory."""
    _check_target(target)
    dev = _cuda.resolve_device(device)
    if dev is not None and isinstance(frames, torch.Tensor) and frames.is_cuda:
        arr = _cuda.check_cuda_frames(frames, dev)
    else:
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        arr = np.asarray(frames)
        if arr.ndim == 3 and arr.shape[-1] == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise TransformError(f"frames must have shape (T, H, W, 3); got {arr.shape}")
        if arr.dtype != np.uint8:
            raise TransformError(f"frames must be uint8 RGB; got dtype {arr.dtype}")
        if arr.shape[0] == 0:
            raise TransformError("frames is empty")
        arr = np.ascontiguousarray(arr)
    t, h, w, _ = arr.shape
    meta = VideoMetadata.synthetic(t, float(fps) if fps else 1.0, h, w)
    plan = at_indices(range(t)).resolve(meta)
    if fps:
        plan = Plan(plan.indices, plan.timestamps, plan.roles, plan.groups, float(fps), float(fps), t, plan.spec)
    face = _face_options(crop)
    if face is not None:
        from msce.faces._pipeline import preprocess_faces

        if isinstance(arr, torch.Tensor):
            arr = arr.cpu().numpy()
        return _to_device([preprocess_faces(arr, meta, plan, target, face, _threads(threads),
                                            _pin(pin_memory) or dev is not None)], dev)[0]
    crops = _crops_for(crop, plan, meta)
    job, batch = _allocate(target, plan, crops, meta, _pin(pin_memory), dev)
    if dev is not None:
        _cuda.run_array_jobs(arr, [job], dev)
        return batch
    from msce._native import C

    C.run_array_jobs(arr, [job], _threads(threads))
    return batch


def _to_device(batches: list[FrameBatch], device: torch.device | None) -> list[FrameBatch]:
    """Copies CPU-made batches (pinned) to ``device``, asynchronously on its current stream."""
    if device is None:
        return batches
    for b in batches:
        b.data = b.data.to(device, non_blocking=True)
        if b.grid_thw is not None:
            b.grid_thw = b.grid_thw.to(device)
    return batches


def _face_options(crop: Any) -> FaceCrop | None:
    """The face-crop options for crop="face" or a msce.faces.FaceCrop, else None."""
    if crop is None or (isinstance(crop, Sequence) and not isinstance(crop, str)):
        return None
    from msce.faces import _pipeline

    return _pipeline.face_options(crop)


def _check_target(target: Any) -> None:
    if not isinstance(target, (QwenVL, Frames)):
        raise TransformError(f"target must be msce.QwenVL or msce.Frames (got {type(target).__name__})")


def cuda_available() -> tuple[bool, str]:
    """(available, reason): whether msce's CUDA path can run here, and why not. The reason
    says which: msce built without CUDA, no NVIDIA driver, a driver older than msce's CUDA
    runtime, no visible device, or a torch build without CUDA; "ok" when available."""
    return _cuda.status()

