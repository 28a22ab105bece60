"""The faces a visual prompt draws on: :class:`FaceInfo` (per-frame face boxes, eye / brow /
mouth regions, landmarks) and :func:`as_face_info`, which accepts a FaceInfo, a
``msce.faces.FaceTrack`` or plain boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from msce.errors import FaceError, TransformError

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceTrack

#: Regions a :class:`FaceInfo` may carry (``msce.faces.FaceTrack.regions()`` gives them all).
REGION_NAMES = ("eye_left", "eye_right", "brow_left", "brow_right", "mouth")


def _rows(name: str, a: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or (n is not None and arr.shape[0] != n):
        want = f"({n}, 4)" if n is not None else "(T, 4)"
        raise TransformError(f"FaceInfo.{name} must have shape {want} (x, y, w, h per frame); got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class FaceInfo:
    """The face on each of T frames, in the pixels of those frames.

    ``boxes``: (T, 4) float (x, y, w, h), NaN rows where a frame has no face.
    ``regions``: optional name -> (T, 4) boxes for "eye_left", "eye_right", "brow_left",
    "brow_right", "mouth" (:data:`REGION_NAMES`; ``msce.faces.FaceTrack.regions()``
    estimates them from the detector's keypoints; brows are geometric estimates).
    ``landmarks``: optional (T, K, 2) named by ``landmark_names``.
    """

    boxes: np.ndarray
    regions: Mapping[str, np.ndarray] | None = None
    landmarks: np.ndarray | None = None
    landmark_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        b = np.asarray(self.boxes, dtype=np.float64)
        if b.shape == (4,):
            b = b[None]
        b = _rows("boxes", b, None)
        n = b.shape[0]
        object.__setattr__(self, "boxes", b)
        if self.regions is not None:
            regs = {}
            for k, v in dict(self.regions).items():
                if k not in REGION_NAMES:
                    raise TransformError(f"FaceInfo.regions: unknown region {k!r}; expected {REGION_NAMES}")
                regs[k] = _rows(f"regions[{k!r}]", v, n)
            object.__setattr__(self, "regions", regs)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float64)
            if lm.ndim != 3 or lm.shape[0] != n or lm.shape[2] != 2 or lm.shape[1] != len(self.landmark_names):
                raise TransformError(f"FaceInfo.landmarks must have shape ({n}, {len(self.landmark_names)}, 2) "
                                     f"(one name per landmark); got {lm.shape}")
            object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "landmark_names", tuple(self.landmark_names))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def found(self) -> np.ndarray:
        """(T,) bool: frames with a usable face box (finite, positive size)."""
        b = self.boxes
        return np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)

    def region(self, name: str) -> np.ndarray:
        """(T, 4) boxes of one region (NaN where unknown); FaceError when there are none."""
        if not self.regions or name not in self.regions:
            have = sorted(self.regions) if self.regions else []
            raise FaceError(f"no {name!r} region in this FaceInfo (have {have}); pass regions, or let "
                            "load_prompted detect faces (msce.faces gives eyes, brows and mouth)")
        r = self.regions[name].copy()
        r[~self.found] = np.nan
        return r

    def take(self, index: Any) -> FaceInfo:
        """These frames (an index array or a slice), in that order."""
        idx = np.arange(len(self))[index]
        return FaceInfo(self.boxes[idx],
                        None if self.regions is None else {k: v[idx] for k, v in self.regions.items()},
                        None if self.landmarks is None else self.landmarks[idx], self.landmark_names)

    def scaled(self, sx: float, sy: float) -> FaceInfo:
        """Coordinates scaled by (sx, sy), e.g. from source pixels to resized frames."""
        s = np.array([sx, sy, sx, sy])
        return FaceInfo(self.boxes * s,
                        None if self.regions is None else {k: v * s for k, v in self.regions.items()},
                        None if self.landmarks is None else self.landmarks * s[:2], self.landmark_names)

    @classmethod
    def from_track(cls, track: FaceTrack) -> FaceInfo:
        """From ``msce.faces.track(...)`` / ``batch.faces`` (display pixels of the source):
        boxes, landmarks and, when the detector gives eye landmarks, the regions."""
        names = tuple(track.landmark_names)
        regions = track.regions() if ("eye_left" in names and "eye_right" in names) else None
        info = cls(np.asarray(track.boxes, dtype=np.float64), regions, np.asarray(track.landmarks), names)
        missing = ~info.found
        if regions is not None and missing.any():
            for v in info.regions.values():  # type: ignore[union-attr]
                v[missing] = np.nan
        return info

    @classmethod
    def from_boxes(cls, boxes: Any, num_frames: int | None = None) -> FaceInfo:
        """One (x, y, w, h) box for every frame (needs ``num_frames``), or one per frame
        (None for a frame without a face)."""
        seq = list(boxes)
        if len(seq) == 4 and all(isinstance(v, (int, float, np.integer, np.floating)) for v in seq):
            if num_frames is None:
                raise TransformError("FaceInfo.from_boxes: one box needs num_frames")
            return cls(np.tile(np.asarray(seq, dtype=np.float64), (num_frames, 1)))
        rows = [[math.nan] * 4 if b is None else [float(v) for v in b] for b in seq]
        return cls(np.asarray(rows, dtype=np.float64).reshape(-1, 4))


def as_face_info(faces: Any, num_frames: int) -> FaceInfo | None:
    """A FaceInfo from a FaceInfo, a ``msce.faces.FaceTrack``, or boxes; None stays None."""
    if faces is None:
        return None
    if isinstance(faces, FaceInfo):
        info = faces
    elif hasattr(faces, "regions") and hasattr(faces, "landmark_names") and hasattr(faces, "boxes"):
        info = FaceInfo.from_track(faces)
    else:
        info = FaceInfo.from_boxes(faces, num_frames)
    if len(info) != num_frames:
        raise TransformError(f"faces describe {len(info)} frames, the transform got {num_frames}")
    return info



def _face_side(box: np.ndarray) -> float:
    return float(max(box[2], box[3]))
