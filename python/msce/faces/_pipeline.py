"""``crop="face"`` inside msce.load / load_segments / preprocess.

1. Detection frames: planned frames at most ``1/detect_fps`` s apart (and the last one),
   decoded at reduced resolution (long side ``detect_size``) as uint8 NHWC.
2. The detector runs on them; boxes are scaled back to display pixels.
3. The native tracker resamples the chosen face at every planned frame and returns square
   crop boxes, which the fused transform uses like explicit boxes.

When the planned frames fit in ``FaceCrop.buffer_mb`` the clip is decoded once: that pass
writes the detection frames and holds the planned frames as decoded (planes copied into a
reused output-pool block, no conversion; csrc/face/hold.hpp), which the fused transform then crops.
Otherwise the clip is decoded twice (detection frames, then the crops), which keeps memory
flat for long dense plans. When the reader already holds the whole clip (the motion-aware
plan's single pass, msce.io.jobs.hold_all) both steps run on those frames.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from msce.errors import FaceError
from msce.faces._detect import Detection, get_detector
from msce.faces._track import FaceCrop, FaceTrack, track_detections
from msce.plan import Plan, at_indices
from msce.targets import Frames

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch, Target
    from msce.io.metadata import VideoMetadata
    from msce.io.reader import VideoReader

__all__ = ["face_options", "detection_indices", "detection_size", "load_faces", "preprocess_faces", "track"]


def face_options(crop: Any) -> FaceCrop | None:
    """FaceCrop for ``crop="face"`` (defaults) or a FaceCrop; None for anything else."""
    if isinstance(crop, FaceCrop):
        return crop
    if isinstance(crop, str) and crop == "face":
        return FaceCrop()
    return None


def detection_indices(timestamps: Sequence[float], indices: Sequence[int], fps: float) -> list[int]:
    """The planned frames nearest to t0 + k/fps (t0 = the first planned frame's time,
    k = 0, 1, ...) and the last planned frame: ascending and distinct. On a uniform plan at
    ``fps`` or slower that is every planned frame."""
    uniq = sorted(set(int(i) for i in indices))
    times = [float(timestamps[i]) for i in uniq]
    picked = {uniq[0], uniq[-1]}
    steps = int(math.floor((times[-1] - times[0]) * fps + 1e-9))
    for k in range(1, steps + 1):
        t = times[0] + k / fps
        j = bisect.bisect_left(times, t)
        if j == len(times) or (j > 0 and t - times[j - 1] <= times[j] - t):
            j -= 1
        picked.add(uniq[j])
    return sorted(picked)


def detection_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) of the detection frames: long side ``long_side`` (0 or larger = source size)."""
    if long_side <= 0 or long_side >= max(height, width):
        return height, width
    s = long_side / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def _run_detector(detector: Any, frames: np.ndarray, det_indices: Sequence[int], memo: dict | None) -> tuple[list, int]:
    """The detector's results for ``frames`` (source frames ``det_indices``) and how many came
    from ``memo`` (a held clip's: the same frame at the same size gave them before)."""
    def checked(found: list, n: int) -> list:
        if len(found) != n:
            raise FaceError(f"detector {getattr(detector, 'name', detector)!r} returned {len(found)} results "
                            f"for {n} frames")
        return found

    if memo is None:
        return checked(detector.detect(frames), len(det_indices)), 0
    owner, seen = memo.setdefault(id(detector), (detector, {}))
    if owner is not detector:  # another object at a reused address: start its own memo
        owner, seen = memo[id(detector)] = (detector, {})
    size = tuple(frames.shape[1:3])
    todo = [k for k, i in enumerate(det_indices) if (int(i), size) not in seen]
    if todo:
        for k, faces in zip(todo, checked(detector.detect(frames[todo]), len(todo))):
            seen[(int(det_indices[k]), size)] = faces
    return [seen[(int(i), size)] for i in det_indices], len(det_indices) - len(todo)


def _detect(frames: np.ndarray, det_indices: Sequence[int], meta: VideoMetadata, plan: Plan,
            options: FaceCrop, extra_stats: dict, memo: dict | None = None) -> FaceTrack:
    detector = get_detector(options.detector)
    h, w = frames.shape[1:3]
    sx, sy = meta.width / w, meta.height / h
    t0 = time.perf_counter()
    found, reused = _run_detector(detector, frames, det_indices, memo)
    seconds = time.perf_counter() - t0
    if reused:
        extra_stats = {**extra_stats, "detect_reused": reused}
    scale = np.array([sx, sy])
    detections = []
    for idx, faces in zip(det_indices, found):
        scaled = []
        for d in faces:
            box, score, marks = d
            x, y, bw, bh = (float(v) for v in box)
            lm = None if marks is None else np.asarray(marks, dtype=np.float64) * scale
            scaled.append(Detection((x * sx, y * sy, bw * sx, bh * sy), float(score), lm))
        detections.append((int(idx), float(meta.timestamps[idx]), scaled))
    n = len(det_indices)
    stats = {"detector": getattr(detector, "name", type(detector).__name__), "detect_frames": n,
             "detect_size": [int(h), int(w)], "detect_seconds": seconds,
             "detect_ms_per_frame": 1000.0 * seconds / max(n - reused, 1), **extra_stats}
    t1 = time.perf_counter()
    track_ = track_detections(detections, plan.indices, [meta.timestamps[i] for i in plan.indices],
                              (meta.height, meta.width), tuple(detector.landmark_names), options,
                              detector=stats["detector"], stats=stats)
    track_.stats["track_seconds"] = time.perf_counter() - t1
    return track_


def _detection_job(meta: VideoMetadata, plan: Plan, options: FaceCrop):
    from msce.io.jobs import allocate as _allocate

    det_idx = detection_indices(meta.timestamps, plan.indices, options.detect_fps)
    size = detection_size(meta.height, meta.width, options.detect_size)
    job, batch = _allocate(Frames(size=size, layout="NHWC"), at_indices(det_idx).resolve(meta), None, meta, False)
    return det_idx, job, batch


def track(source: Any, plan: Any, options: FaceCrop | None = None, threads: int | None = None,
          fps: float | None = None, stream: int | None = None) -> FaceTrack:
    """Find and follow the face over a plan's frames without producing model tensors.

    ``source``: a path, a :class:`msce.VideoReader`, or frames uint8 (T, H, W, 3) at
    ``fps`` frames per second (default 1). ``stream``: the video stream of a path, as
    ``msce.load`` takes it (None: the best one).
    """
    from msce.faces._detect import check_frames
    from msce.plan import resolve
    from msce.io.jobs import threads_arg as _threads
    from msce.io.metadata import VideoMetadata
    from msce.io.video import _open

    options = options or FaceCrop()
    if isinstance(source, np.ndarray):
        source = check_frames(source)
        meta = VideoMetadata.synthetic(source.shape[0], float(fps or 1.0), source.shape[1], source.shape[2])
        p = resolve(plan, meta)
        return _track_array(source, meta, p, options, _threads(threads))
    reader = _open(source, threads, stream)
    p = resolve(plan, reader.metadata)
    det_idx, job, batch = _detection_job(reader.metadata, p, options)
    t0 = time.perf_counter()
    reader._native.run_jobs([job], _threads(threads))
    return _detect(batch.data.numpy(), det_idx, reader.metadata, p, options,
                   {"mode": "detect-only", "detect_decode_seconds": time.perf_counter() - t0})


def load_faces(reader: VideoReader, plan: Plan, target: Target, options: FaceCrop, threads: int, pin: bool,
               segments: bool = False) -> list[FrameBatch]:
    """The FrameBatch of ``plan`` (or one per ``plan.segments()``) with face crops."""
    from msce._native import C
    from msce.io.jobs import allocate as _allocate, held_bytes, held_frames, run_native

    t0 = time.perf_counter()
    meta = reader.metadata
    det_idx, det_job, det_batch = _detection_job(meta, plan, options)
    uniq = sorted(set(plan.indices))
    clip = held_frames(reader)  # a clip the reader holds already: no decode here
    own = None  # frames this call holds
    if clip is not None:
        mode = "decoded clip held by the plan"
    elif held_bytes(meta, len(uniq)) <= options.buffer_mb * 2 ** 20:
        mode = "one decode pass"
        own, decode = C.face_decode_and_hold(reader._native, uniq, [det_job], threads)
        decode = dict(decode)
    else:
        mode = "two decode passes"
    if own is None:
        decode = run_native(reader, [det_job], threads)
    t1 = time.perf_counter()
    faces = _detect(det_batch.data.numpy(), det_idx, meta, plan, options,
                    {"mode": mode, "detect_decode_seconds": t1 - t0}, clip.detections if clip else None)

    jobs, batches = [], []
    start = 0
    for seg in plan.segments() if segments else [plan]:
        stop = start + len(seg)
        job, batch = _allocate(target, seg, faces.crop_boxes()[start:stop], meta, pin)
        batch.faces = faces.subset(start, stop) if segments else faces
        jobs.append(job)
        batches.append(batch)
        start = stop
    t2 = time.perf_counter()
    if own is not None:
        C.face_run_held_jobs(own, jobs, threads)
        del own  # releases the decoded frames
        stats = decode
    else:
        stats = run_native(reader, jobs, threads)
        if clip is None:  # two decode passes: count both
            for key in ("frames_decoded", "seeks", "decode_seconds"):
                stats[key] = stats.get(key, 0) + decode.get(key, 0)
    faces.stats["crop_transform_seconds"] = time.perf_counter() - t2
    stats["total_seconds"] = time.perf_counter() - t0
    stats["faces"] = faces.stats
    for b in batches:
        b.stats = stats
    return batches


def _track_array(frames: np.ndarray, meta: VideoMetadata, plan: Plan, options: FaceCrop, threads: int) -> FaceTrack:
    from msce._native import C
    from msce.io.jobs import allocate as _allocate

    det_idx = detection_indices(meta.timestamps, plan.indices, options.detect_fps)
    size = detection_size(meta.height, meta.width, options.detect_size)
    if size == (meta.height, meta.width):
        small = frames[det_idx]
    else:
        job, batch = _allocate(Frames(size=size, layout="NHWC"), at_indices(det_idx).resolve(meta), None, meta, False)
        C.run_array_jobs(frames, [job], threads)
        small = batch.data.numpy()
    return _detect(small, det_idx, meta, plan, options, {"mode": "frames in memory"})


def preprocess_faces(frames: np.ndarray, meta: VideoMetadata, plan: Plan, target: Target, options: FaceCrop,
                     threads: int, pin: bool) -> FrameBatch:
    """``msce.preprocess(frames, target, crop="face")``: frames already decoded."""
    from msce._native import C
    from msce.io.jobs import allocate as _allocate

    t0 = time.perf_counter()
    faces = _track_array(frames, meta, plan, options, threads)
    job, batch = _allocate(target, plan, faces.crop_boxes(), meta, pin)
    C.run_array_jobs(frames, [job], threads)
    batch.faces = faces
    batch.stats = {"total_seconds": time.perf_counter() - t0, "faces": faces.stats}
    return batch


class _FaceCropMode:
    """crop="face" / ``FaceCrop(...)`` for msce.io's load paths (msce.faces registers it
    with :func:`msce.io.video.register_crop_provider` when imported)."""

    options = staticmethod(face_options)
    load = staticmethod(load_faces)
    preprocess = staticmethod(preprocess_faces)


FACE_CROP = _FaceCropMode()
