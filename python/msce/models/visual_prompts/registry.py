"""The variants by name (:func:`get_visual_prompt`, :func:`available_visual_prompts`) and the
strategies' path from a video to prompted model inputs (:func:`load_prompted`,
:func:`sent_indices`, :func:`sent_timestamps`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from msce.errors import ConfigError, TransformError
from msce.io import load
from msce.io import preprocess
from msce.models.visual_prompts.base import FrameTransform
from msce.models.visual_prompts.face_info import FaceInfo, as_face_info
from msce.models.visual_prompts.variants import (FlowArrows, FocusedHeatmap, Montage, MotionHeatmap, PointTracks,
                                                 RedCircle)
from msce.targets import Frames

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop, FaceTrack
    from msce.plan import Plan
    from msce.io.video import FrameBatch


# ---- registry ---------------------------------------------------------------------------------
_VARIANTS: dict[str, type[FrameTransform]] = {
    cls.name: cls for cls in (RedCircle, MotionHeatmap, FocusedHeatmap, Montage, FlowArrows, PointTracks)
}


def available_visual_prompts() -> list[str]:
    return sorted(_VARIANTS)


def get_visual_prompt(spec: FrameTransform | str | Mapping[str, Any], **params: Any) -> FrameTransform:
    """A transform from itself, a name ("red_circle", ... see :func:`available_visual_prompts`)
    with ``params``, or a config dict ({"name": ..., **params}, as ``config()`` writes it)."""
    if isinstance(spec, FrameTransform):
        return replace(spec, **params) if params else spec  # type: ignore[type-var]
    if isinstance(spec, Mapping):
        d = dict(spec)
        name = d.pop("name", None)
        return get_visual_prompt(name, **{**d, **params}) if isinstance(name, str) else _unknown(name)
    if isinstance(spec, str):
        cls = _VARIANTS.get(spec.lower().replace("-", "_"))
        if cls is None:
            _unknown(spec)
        try:
            return cls(**params)  # type: ignore[misc]
        except TypeError as exc:
            raise ConfigError(f"visual prompt {spec!r}: {exc}") from None
    raise ConfigError(f"visual_prompt must be a FrameTransform, a name or a config dict (got {type(spec).__name__})")


def _unknown(name: Any):
    raise ConfigError(f"unknown visual prompt {name!r}; known: {available_visual_prompts()}")


# ---- strategies: decode, transform, preprocess ------------------------------------------------------
def _montage_plan(plan: Plan) -> Plan:
    from msce.plan import Plan

    return Plan(indices=(plan.indices[0],), timestamps=(plan.timestamps[0],), roles=(plan.roles[0],),
                groups=(plan.groups[0],), fps=plan.fps, source_fps=plan.source_fps,
                num_source_frames=plan.num_source_frames,
                spec={**plan.spec, "montage_of": {"indices": [int(i) for i in plan.indices],
                                                  "timestamps": [float(t) for t in plan.timestamps]}})


def sent_indices(batch: Any) -> list[int]:
    """The source frames a batch carries, in order: its plan's indices, or for a montage
    every frame composed into it."""
    m = (getattr(getattr(batch, "plan", None), "spec", None) or {}).get("montage_of")
    return list(m["indices"]) if m else [int(i) for i in batch.indices]


def sent_timestamps(batch: Any) -> list[float]:
    """Timestamps of :func:`sent_indices`."""
    m = (getattr(getattr(batch, "plan", None), "spec", None) or {}).get("montage_of")
    return list(m["timestamps"]) if m else [float(t) for t in batch.timestamps]


def _track_decoded(frames: np.ndarray, plan: Plan, meta: Any, options: FaceCrop, threads: int | None) -> FaceTrack:
    """The FaceTrack of ``plan`` from its decoded frames (plan order): detection on the
    frames ``msce.faces.detection_indices`` picks, resized to ``detection_size``, then the
    same detection -> track path as ``msce.faces.track``."""
    from msce.faces import detection_indices, detection_size
    from msce.faces._pipeline import _detect

    det_idx = detection_indices(meta.timestamps, plan.indices, options.detect_fps)
    row: dict[int, int] = {}
    for k, i in enumerate(plan.indices):
        row.setdefault(int(i), k)
    small = frames[[row[i] for i in det_idx]]
    size = detection_size(meta.height, meta.width, options.detect_size)
    if size != small.shape[1:3]:
        small = preprocess(small, Frames(size=size, layout="NHWC"), threads=threads,
                                pin_memory=False).data.numpy()
    return _detect(small, det_idx, meta, plan, options, {"mode": "visual prompt: planned frames"})


def load_prompted(source: Any, plan: Any, target: Any, transform: FrameTransform | str | Mapping[str, Any], *,
                  segments: bool = False, faces: Any = None, threads: int | None = None) -> list[FrameBatch]:
    """``msce.load`` (or ``load_segments`` with ``segments=True``) with a visual prompt.

    1. The planned frames are decoded as uint8 RGB (``msce.Frames(layout="NHWC")``; a plan
       with a fixed output size, e.g. ``token_budget``, decodes at that size).
    2. Faces, when the variant needs them: ``faces`` (FaceInfo / FaceTrack / boxes in the
       decoded frames' pixels, one per planned frame in plan order), else found as
       ``crop="face"`` finds them, with ``transform.face_crop``'s options: the detector runs
       on the planned frames nearest a ``detect_fps`` grid (taken from the frames already
       decoded, resized to ``detect_size``), and the native tracker smooths boxes and
       landmarks over every planned frame (``msce.faces.track``'s result, without a second
       decode pass; frame folders work too).
    3. The transform: per-frame variants see the whole plan in chronological order (so
       motion and tracks span keyframes and gaps alike), and the result goes back to plan
       order; the montage composes each batch's frames in plan order (one image per
       segment with ``segments=True``).
    4. ``msce.preprocess(frames, target)`` per batch; each batch keeps its plan (a
       montage's one-frame plan lists the composed frames in ``plan.spec["montage_of"]``,
       see :func:`sent_indices`) and the clip's metadata; ``batch.stats["visual_prompt"]``
       records the variant, the per-frame face status and the time of each step.

    Unlike the plain streaming path, the planned frames are held decoded (T x H x W x 3
    bytes). Returns one FrameBatch, or one per ``plan.segments()``, in a list.
    """
    from msce.io.jobs import check_target as _check_target

    transform = get_visual_prompt(transform)
    _check_target(target)
    t0 = time.perf_counter()
    decoded = load(source, plan, Frames(layout="NHWC", dtype="uint8"), threads=threads, pin_memory=False)
    frames = decoded.data.numpy()
    p, meta = decoded.plan, decoded.metadata
    t1 = time.perf_counter()
    info: FaceInfo | None = None
    face_record: dict | None = None
    if transform.needs_faces:
        if faces is None:
            track = _track_decoded(frames, p, meta, transform.face_crop, threads)
            info = FaceInfo.from_track(track)
            fh, fw = frames.shape[1:3]
            if (fh, fw) != (meta.height, meta.width):
                info = info.scaled(fw / meta.width, fh / meta.height)
            face_record = {"source": "detected", "detector": track.detector, "status": list(track.status)}
        else:
            info = as_face_info(faces, len(p))
            face_record = {"source": "given", "status": ["given" if f else "none" for f in info.found]}
    t2 = time.perf_counter()

    bounds, start = [], 0
    for seg in p.segments() if segments else [p]:
        bounds.append((seg, start, start + len(seg)))
        start += len(seg)
    pieces: list[tuple[Plan, np.ndarray]] = []
    if transform.reduces_time:
        for seg, a, b in bounds:
            sub = None if info is None else info.take(slice(a, b))
            pieces.append((_montage_plan(seg), transform(frames[a:b], sub)))
    else:
        order = np.argsort(np.asarray(p.timestamps, dtype=np.float64), kind="stable")
        out = np.empty_like(frames)
        out[order] = transform(frames[order], None if info is None else info.take(order))
        pieces = [(seg, out[a:b]) for seg, a, b in bounds]
    t3 = time.perf_counter()

    record = {"config": transform.config(), "faces": face_record, "decode_seconds": t1 - t0,
              "faces_seconds": t2 - t1, "transform_seconds": t3 - t2}
    batches = []
    for seg, arr in pieces:
        batch = preprocess(arr, target, fps=meta.average_fps, threads=threads, pin_memory=False)
        if seg.size is not None and not transform.reduces_time and tuple(batch.size) != tuple(seg.size):
            raise TransformError(f"the plan fixes the output size {tuple(seg.size)}, but {target!r} resizes the "
                                 f"prompted frames to {tuple(batch.size)}")
        batch.plan = seg
        batch.metadata = meta
        batch.stats = {"decode": dict(decoded.stats), "visual_prompt": record}
        batches.append(batch)
    record["preprocess_seconds"] = time.perf_counter() - t3
    return batches
