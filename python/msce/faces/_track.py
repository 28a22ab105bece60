"""Face crop options, the per-frame face track, and detections -> track (native core).

The tracking math lives in csrc/face/track.cpp (association by IoU, policy, zero-phase
local-linear smoothing, square crops); this module turns detector output into its inputs
and its arrays into a :class:`FaceTrack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from msce._validate import count, number
from msce.errors import FaceError, TransformError
from msce.faces._detect import Detection, FaceDetector, detections_to_arrays

__all__ = ["FaceCrop", "FaceTrack", "STATUS", "track_detections"]

STATUS = ("detected", "interpolated", "held", "none")
_SELECT = {"largest": 0, "central": 1}
_MISSING = {"full": 0, "center": 1, "error": 2}


@dataclass(frozen=True)
class FaceCrop:
    """How ``crop="face"`` finds, follows and crops the face (``crop="face"`` = the defaults).

    Detection: ``detector`` ("blazeface", "retinaface" or your :class:`FaceDetector`) runs on
    the planned frames nearest to a ``detect_fps`` grid (and the last one), resized so their
    long side is ``detect_size`` px (0 = source size). BlazeFace costs 3-5 ms per detection
    frame through mediapipe (whatever the frame size: the model sees 128x128); at 1 FPS that
    adds about 5-10 % to a 720p call and about 30 % to a short 360p one (bench/README.md,
    "Faces" and "Issue 17, fifth pass"). Raise ``detect_fps`` for fast head motion.

    Tracking: detections are linked into tracks when IoU with the track's predicted box is
    >= ``min_iou`` (else, for fast motion, when the face moved at most 1.5 face sizes and
    kept its size within 1.5x), across gaps of up to ``max_gap`` s; ``select`` picks one track:
    "largest" (greatest summed area: size x time on screen), "central" (closest to the
    frame centre over time) or an int track id (ids count from 0 in order of first
    appearance). Tracks with fewer than ``min_hits`` detections are not chosen.

    Smoothing: every planned frame's face box and landmarks come from a local-linear
    Gaussian-kernel fit over the track's detections (``sigma`` s; 0 = plain linear
    interpolation): zero phase, so no lag, exact on linear pans and zooms, continuous in
    time, so no jitter. Boxes are held for ``hold`` s before the first / after the last
    detection.

    Crop: a square of side ``margin`` x the face's larger side, centred on the face and
    shifted (never squeezed) inside the frame. ``fixed_size`` (default) uses one side per
    clip, from the largest smoothed face over the planned frames, so the output resolution
    and the face scale do not jitter (a zooming face then fills more or less of the crop);
    off, each frame's crop follows its own face size and the transform resizes every crop
    to the largest one's output size. ``missing``: the crop of frames with no face:
    "center" (a centred square of the clip's crop side, or of min(H, W) when there is no
    face at all), "full" (the whole frame, squeezed into the output shape) or "error"
    (raise :class:`msce.errors.FaceError`). Each frame's case is recorded in ``FaceTrack.status``.

    ``buffer_mb``: when the planned frames fit (as decoded: H*W*1.5 bytes each for 4:2:0
    video), the clip is decoded once and they are held, as decoded, while the face is found;
    otherwise it is decoded twice (small detection frames first, then the crops).
    """

    detector: str | FaceDetector = "blazeface"
    detect_fps: float = 2.0
    detect_size: int = 320
    select: str | int = "largest"
    missing: str = "center"
    margin: float = 1.5
    fixed_size: bool = True
    sigma: float = 0.25
    hold: float = 0.5
    min_iou: float = 0.2
    max_gap: float = 1.0
    min_hits: int = 1
    buffer_mb: float = 512.0

    def __post_init__(self) -> None:
        c, err = "FaceCrop", TransformError
        number(c, "detect_fps", self.detect_fps, error=err)
        for name in ("sigma", "hold", "max_gap", "buffer_mb"):
            number(c, name, getattr(self, name), lo_open=False, error=err)
        number(c, "margin", self.margin, lo=1.0, lo_open=False, error=err)
        number(c, "min_iou", self.min_iou, hi=1.0, error=err)
        for name, lo in (("detect_size", 0), ("min_hits", 1)):  # as Python ints: to_dict() is JSON
            object.__setattr__(self, name, count(c, name, getattr(self, name), lo=lo, error=err))
        if isinstance(self.select, bool) or not (self.select in _SELECT or (isinstance(self.select, int)
                                                                          and self.select >= 0)):
            raise TransformError(f"FaceCrop.select must be 'largest', 'central' or a track id >= 0 "
                                 f"(got {self.select!r})")
        if self.missing not in _MISSING:
            raise TransformError(f"FaceCrop.missing must be one of {sorted(_MISSING)} (got {self.missing!r})")
        if not isinstance(self.detector, str) and not isinstance(self.detector, FaceDetector):
            raise TransformError("FaceCrop.detector must be a detector name or implement msce.faces.FaceDetector "
                                 f"(got {type(self.detector).__name__})")

    def native_options(self) -> dict:
        by_id = isinstance(self.select, int)
        return {"min_iou": float(self.min_iou), "max_gap": float(self.max_gap), "min_hits": int(self.min_hits),
                "select": 2 if by_id else _SELECT[self.select], "track_id": int(self.select) if by_id else -1,
                "sigma": float(self.sigma), "hold": float(self.hold), "margin": float(self.margin),
                "fixed_size": bool(self.fixed_size), "missing": _MISSING[self.missing]}

    def to_dict(self) -> dict:
        det = self.detector if isinstance(self.detector, str) else getattr(self.detector, "name",
                                                                            type(self.detector).__name__)
        return {"detector": det, "detect_fps": self.detect_fps, "detect_size": self.detect_size,
                "select": self.select, "missing": self.missing, "margin": self.margin,
                "fixed_size": self.fixed_size, "sigma": self.sigma, "hold": self.hold, "min_iou": self.min_iou,
                "max_gap": self.max_gap, "min_hits": self.min_hits, "buffer_mb": self.buffer_mb}


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """The face on every planned frame (output order), in display pixels of the source.

    ``boxes`` (N, 4) float64 smoothed face boxes (x, y, w, h), NaN on frames without a face;
    ``crops`` (N, 4) int64 the crop boxes given to the transform; ``landmarks`` (N, K, 2)
    named by ``landmark_names`` (NaN where missing); ``scores`` (N,) detector confidence
    (smoothed); ``status`` per frame: "detected" (a detection at this frame), "interpolated"
    (between detections), "held" (within ``hold`` s outside them) or "none" (the
    ``missing`` policy's crop). ``track_id``: the chosen track (None without a face);
    ``tracks``: every track found; ``detections``: the raw detector output as
    (frame index, time, [Detection in display pixels]); ``stats``: detection frames,
    seconds and ms per frame, decode mode.
    """

    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    status: tuple[str, ...]
    boxes: np.ndarray
    crops: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    landmark_names: tuple[str, ...]
    frame_size: tuple[int, int]
    crop_side: int
    track_id: int | None
    tracks: tuple[dict, ...]
    detections: tuple[tuple[int, float, tuple[Detection, ...]], ...]
    detector: str
    options: FaceCrop
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: frames with a face (status other than "none")."""
        return np.array([s != "none" for s in self.status], dtype=bool)

    def crop_boxes(self) -> list[tuple[int, int, int, int]]:
        """The crop boxes as (x, y, w, h) tuples: ``msce.load(..., crop=track.crop_boxes())``
        reuses them for another target without detecting again."""
        return [tuple(int(v) for v in c) for c in self.crops]

    def landmark(self, name: str) -> np.ndarray:
        """(N, 2) positions of one named landmark (NaN where missing)."""
        if name not in self.landmark_names:
            raise KeyError(f"no landmark {name!r}; this detector gives {self.landmark_names}")
        return self.landmarks[:, self.landmark_names.index(name)]

    def subset(self, start: int, stop: int) -> FaceTrack:
        """Frames [start, stop) of the plan (e.g. one segment of load_segments)."""
        sl = slice(start, stop)
        return replace(self, indices=self.indices[sl], timestamps=self.timestamps[sl], status=self.status[sl],
                       boxes=self.boxes[sl], crops=self.crops[sl], scores=self.scores[sl],
                       landmarks=self.landmarks[sl])

    def regions(self) -> dict[str, np.ndarray]:
        """Boxes (N, 4) xywh around the eyes, brows and mouth, for visual prompting.

        Geometric estimates from the keypoints, not detected contours. With D the distance
        between the eye centres and "up" the unit normal of the eye line pointing to the
        forehead: each eye a 0.6D x 0.4D box on the eye centre; each brow a 0.8D x 0.3D box
        at the eye centre + 0.4D up; the mouth centred on the mouth point (or the corners'
        midpoint), as wide as the corners' span x 1.3 (0.9D without corners), 0.5D tall.
        Keys: eye_left, eye_right, brow_left, brow_right, mouth (image sides); NaN where
        the landmarks are missing. Needs eye landmarks (both built-in detectors give them).
        """
        names = self.landmark_names
        if "eye_left" not in names or "eye_right" not in names:
            raise FaceError(f"regions() needs eye landmarks; {self.detector} gives {names}")
        el, er = self.landmark("eye_left"), self.landmark("eye_right")
        axis = er - el
        dist = np.hypot(axis[:, 0], axis[:, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = axis / dist[:, None]
        up = np.stack([unit[:, 1], -unit[:, 0]], axis=1)  # image y grows downwards

        def box(centre: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
            return np.stack([centre[:, 0] - w / 2, centre[:, 1] - h / 2, w, h], axis=1)

        if "mouth_left" in names and "mouth_right" in names:
            ml, mr = self.landmark("mouth_left"), self.landmark("mouth_right")
            mouth = (ml + mr) / 2
            mouth_w = 1.3 * np.hypot(*(mr - ml).T)
        elif "mouth" in names:
            mouth = self.landmark("mouth")
            mouth_w = 0.9 * dist
        else:
            mouth = np.full_like(el, np.nan)
            mouth_w = dist * np.nan
        mouth_box = box(mouth, mouth_w, 0.5 * dist)
        mouth_box[np.isnan(mouth_box).any(axis=1)] = np.nan
        return {
            "eye_left": box(el, 0.6 * dist, 0.4 * dist),
            "eye_right": box(er, 0.6 * dist, 0.4 * dist),
            "brow_left": box(el + 0.4 * dist[:, None] * up, 0.8 * dist, 0.3 * dist),
            "brow_right": box(er + 0.4 * dist[:, None] * up, 0.8 * dist, 0.3 * dist),
            "mouth": mouth_box,
        }

    def project(self, size: tuple[int, int]) -> dict[str, Any]:
        """Boxes, landmarks and regions in the pixels of an output frame of ``size``
        (height, width), e.g. ``batch.size``: each frame's crop is mapped onto the output."""
        out_h, out_w = size
        crops = self.crops.astype(np.float64)
        origin = crops[:, None, :2]
        scale = np.stack([out_w / crops[:, 2], out_h / crops[:, 3]], axis=1)[:, None, :]

        def boxes(b: np.ndarray) -> np.ndarray:
            xy = (b[:, None, :2] - origin) * scale
            wh = b[:, None, 2:] * scale
            return np.concatenate([xy, wh], axis=2)[:, 0]

        out: dict[str, Any] = {"boxes": boxes(self.boxes), "landmarks": (self.landmarks - origin) * scale}
        if "eye_left" in self.landmark_names and "eye_right" in self.landmark_names:
            out["regions"] = {k: boxes(v) for k, v in self.regions().items()}
        return out

    def to_dict(self) -> dict:
        """JSON-ready record (NaN as None)."""

        def clean(a: np.ndarray) -> list:
            return np.where(np.isnan(a), None, a).tolist() if a.dtype.kind == "f" else a.tolist()

        return {"indices": list(self.indices), "timestamps": list(self.timestamps), "status": list(self.status),
                "boxes": clean(self.boxes), "crops": clean(self.crops), "scores": clean(self.scores),
                "landmarks": clean(self.landmarks), "landmark_names": list(self.landmark_names),
                "frame_size": list(self.frame_size), "crop_side": self.crop_side, "track_id": self.track_id,
                "tracks": [dict(t) for t in self.tracks], "detector": self.detector,
                "options": self.options.to_dict(), "stats": dict(self.stats)}


def track_detections(detections: Sequence[tuple[int, float, Sequence[Detection]]], indices: Sequence[int],
                     timestamps: Sequence[float], frame_size: tuple[int, int], landmark_names: Sequence[str],
                     options: FaceCrop, detector: str = "custom", stats: dict | None = None) -> FaceTrack:
    """Detections in display pixels, as (frame index, time, detections) per detection frame
    -> the FaceTrack of the planned frames (``indices`` with their ``timestamps``)."""
    from msce._native import C

    height, width = int(frame_size[0]), int(frame_size[1])
    k = len(landmark_names)
    native_frames, frozen = [], []
    for i, t, faces in detections:
        boxes, scores, marks = detections_to_arrays(list(faces), k)
        native_frames.append((float(t), boxes, scores, marks))
        frozen.append((int(i), float(t), tuple(Detection(tuple(float(v) for v in b), float(s), m)
                                               for b, s, m in zip(boxes, scores, marks))))
    r = C.face_track(native_frames, [float(t) for t in timestamps], width, height, k, options.native_options())

    status = tuple(STATUS[int(s)] for s in r["status"])
    found = np.array([s != "none" for s in status], dtype=bool)
    boxes = np.asarray(r["faces"], dtype=np.float64)
    boxes[~found] = np.nan
    scores = np.asarray(r["scores"], dtype=np.float64)
    marks = np.asarray(r["landmarks"], dtype=np.float64).reshape(len(status), k, 2)

    summaries = []
    for tid, points in r["tracks"]:
        bs = np.array([frozen[f][2][d].box for f, d in points], dtype=np.float64).reshape(-1, 4)
        times = [frozen[f][1] for f, _ in points]
        summaries.append({"id": int(tid), "hits": len(points), "first_time": min(times), "last_time": max(times),
                          "mean_box": [float(v) for v in bs.mean(axis=0)]})
    selected = int(r["selected"])
    track_id = summaries[selected]["id"] if selected >= 0 else None
    if isinstance(options.select, int) and track_id is None:
        raise FaceError(f"no face track with id {options.select}; tracks found: {[s['id'] for s in summaries]}")
    if options.missing == "error" and not found.all():
        missing = [int(i) for i, ok in zip(indices, found) if not ok]
        raise FaceError(f"no face on {len(missing)} of {len(status)} planned frames (frame indices "
                        f"{missing[:10]}{' ...' if len(missing) > 10 else ''}); crop='face' with missing='error'")
    return FaceTrack(indices=tuple(int(i) for i in indices), timestamps=tuple(float(t) for t in timestamps),
                     status=status, boxes=boxes, crops=np.asarray(r["crops"], dtype=np.int64), scores=scores,
                     landmarks=marks, landmark_names=tuple(landmark_names), frame_size=(height, width),
                     crop_side=int(r["crop_side"]), track_id=track_id, tracks=tuple(summaries),
                     detections=tuple(frozen), detector=detector, options=options, stats=dict(stats or {}))
