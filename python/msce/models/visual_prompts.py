"""Visual prompting variants (paper Appendix S1, Table S1, Fig. S1) as frame transforms.

The paper asked whether pixels can guide a VLM's attention to facial motion as well as
MSCE's text does, tried six variants on Qwen2.5-VL, and found that every one of them
lowered macro-F1 below the sparse baseline (0.2449): the artifacts move the input out of
the frozen visual encoder's training distribution. This module makes the six variants
reproducible, so that finding can be checked on other models and datasets:

============================  =====================  ==========================================
paper (Table S1)              class / name           what is drawn
============================  =====================  ==========================================
Red Circle On Face            ``RedCircle``          an ellipse outline around the face
                              ``"red_circle"``
Heatmap                       ``MotionHeatmap``      per-pixel motion, colour-mapped, blended
                              ``"motion_heatmap"``   over the face region
Focused Heatmap               ``FocusedHeatmap``     the same, only over the eyes and the lips
                              ``"focused_heatmap"``
Video Montage                 ``Montage``            all frames as one grid image
                              ``"montage"``
MotionFlow Arrow              ``FlowArrows``         dense optical flow sampled on a grid over
                              ``"flow_arrows"``      the face, drawn as arrows
PointTrack                    ``PointTracks``        lip and brow points tracked across the
                              ``"point_tracks"``     frames, their trajectories drawn
============================  =====================  ==========================================

A :class:`FrameTransform` maps uint8 RGB frames ``(T, H, W, 3)`` (and, for the face-based
variants, a :class:`FaceInfo` with per-frame face boxes and eye / brow / mouth regions) to
new frames: ``(T, H, W, 3)``, or ``(1, h, w, 3)`` for the montage. The input is never
modified. ``config()`` records every parameter (JSON), and ``get_visual_prompt(config)``
rebuilds the same transform.

With a strategy: ``Sparse(fps=1, visual_prompt="red_circle")`` (any of Sparse, Dense,
Shuffled, MSCE; a transform object, a name, or a config dict). The strategy then calls
:func:`load_prompted`: the planned frames are decoded as uint8 RGB
(``msce.load(..., msce.Frames(layout="NHWC"))``), faces are found when the variant needs
them (``msce.faces``' detectors and tracker, run on the decoded frames: smoothed boxes
and landmarks), the transform runs, and ``msce.preprocess`` builds the model's tensors, so
a Qwen target's ``pixel_values_videos`` are exactly what ``msce.load`` would have produced
from the modified pixels (``tests/e2e/test_visual_prompts.py`` checks this bit for bit
against the plain path). The response cache keys frames by the digest of those tensors,
so a variant, or any change of its parameters that changes a pixel, gets its own entries.

Conventions

* Coordinates are pixels of the frames given, x to the right, y down; pixel (row i,
  column j) covers [j, j+1) x [i, i+1). Boxes are (x, y, w, h).
* Time: the per-frame variants see the frames in chronological order (``load_prompted``
  sorts by timestamp, transforms, then restores the plan's order, so a shuffled plan sends
  the same modified frames in permuted order). Motion "at frame t" is the motion between
  frames t-1 and t; frame 0 takes the motion between frames 0 and 1; a single frame has
  no motion.
* Frames without a face (``FaceInfo.found`` false, e.g. track status "none") are left
  unchanged by the face-based variants.
* Deterministic: the same input gives the same bytes. Drawing, colour maps and blending
  are NumPy (independent of any OpenCV build); dense optical flow (Farneback) and point
  tracking (pyramidal Lucas-Kanade) are OpenCV's: ``pip install 'msce[visual]'``.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from msce.errors import ConfigError, FaceError, TransformError
from msce.io import load
from msce.io import preprocess
from msce.targets import Frames

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop, FaceTrack
    from msce.plan import Plan
    from msce.io.video import FrameBatch

__all__ = [
    "FrameTransform",
    "FaceInfo",
    "RedCircle",
    "MotionHeatmap",
    "FocusedHeatmap",
    "Montage",
    "FlowArrows",
    "PointTracks",
    "get_visual_prompt",
    "available_visual_prompts",
    "load_prompted",
    "sent_indices",
    "sent_timestamps",
    "motion_maps",
    "colormap",
    "REGION_NAMES",
]

#: Regions a :class:`FaceInfo` may carry (``msce.faces.FaceTrack.regions()`` gives them all).
REGION_NAMES = ("eye_left", "eye_right", "brow_left", "brow_right", "mouth")

# BT.601 luma weights, for motion and tracking on one channel.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# ---- checks ------------------------------------------------------------------------------------
def _check_frames(frames: Any) -> np.ndarray:
    arr = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise TransformError(f"visual prompts need frames of shape (T, H, W, 3); got {arr.shape}")
    if arr.dtype != np.uint8:
        raise TransformError(f"visual prompts need uint8 RGB frames; got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise TransformError(f"visual prompts need at least one non-empty frame; got {arr.shape}")
    return np.ascontiguousarray(arr)


def _number(cls: str, name: str, v: Any, lo: float = 0.0, hi: float = math.inf, lo_open: bool = True,
            none_ok: bool = False) -> float | None:
    if v is None and none_ok:
        return None
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v > hi or v < lo or (lo_open and v == lo):
        side = "(" if lo_open else "["
        raise ConfigError(f"{cls}.{name} must be a number in {side}{lo:g}, {hi:g}]"
                          f"{' or None' if none_ok else ''} (got {v!r})")
    return float(v)


def _count(cls: str, name: str, v: Any, lo: int = 1, none_ok: bool = False) -> int | None:
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ConfigError(f"{cls}.{name} must be an int >= {lo}{' or None' if none_ok else ''} (got {v!r})")
    return int(v)


def _color(cls: str, name: str, v: Any) -> tuple[int, int, int]:
    try:
        c = tuple(int(x) for x in v)
        ok = len(c) == 3 and all(0 <= x <= 255 for x in c) and all(float(x) == int(x) for x in v)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{cls}.{name} must be an RGB triple of ints in [0, 255] (got {v!r})")
    return c  # type: ignore[return-value]


def _choice(cls: str, name: str, v: Any, allowed: Sequence[str]) -> str:
    if v not in allowed:
        raise ConfigError(f"{cls}.{name} must be one of {list(allowed)} (got {v!r})")
    return v


def _pair(cls: str, name: str, v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    try:
        p = tuple(v)
    except TypeError:
        p = ()
    if len(p) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1 for x in p):
        raise ConfigError(f"{cls}.{name} must be None or two ints >= 1 (got {v!r})")
    return int(p[0]), int(p[1])


def _cv2(variant: str):
    try:
        import cv2
    except ImportError as exc:
        raise ConfigError(f"{variant} needs OpenCV's optical flow: pip install 'msce[visual]' ({exc})") from None
    return cv2


# ---- faces -------------------------------------------------------------------------------------
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


# ---- pixels: colour maps, blending, drawing ------------------------------------------------------
def colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table. "jet": r, g, b = clip(1.5 - |4x - c|) with c = 3, 2, 1;
    "hot": r, g, b = clip(3x - k) with k = 0, 1, 2 (x in [0, 1], clip to [0, 1])."""
    x = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        rgb = np.stack([1.5 - np.abs(4 * x - c) for c in (3, 2, 1)], axis=1)
    elif name == "hot":
        rgb = np.stack([3 * x - k for k in (0, 1, 2)], axis=1)
    else:
        raise ConfigError(f"unknown colormap {name!r}; expected 'jet' or 'hot'")
    return np.rint(255 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _blend(pixels: np.ndarray, colors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """round(pixels * (1 - alpha) + colors * alpha) in float32; alpha = 0 leaves a pixel exact."""
    a = alpha.astype(np.float32)[..., None]
    out = pixels.astype(np.float32) * (1.0 - a) + colors.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _disk(radius: float) -> np.ndarray:
    """(M, 2) integer (dy, dx) offsets with dy^2 + dx^2 <= radius^2 (radius 0: the centre)."""
    k = int(math.floor(max(radius, 0.0)))
    dy, dx = np.mgrid[-k:k + 1, -k:k + 1]
    keep = dy * dy + dx * dx <= radius * radius + 1e-9
    return np.stack([dy[keep], dx[keep]], axis=1)


def _stamp(img: np.ndarray, x: np.ndarray, y: np.ndarray, color: Sequence[int], radius: float) -> None:
    """Paints a disk of ``radius`` around each point (x, y) of ``img`` (H, W, 3) in place;
    a point lies in pixel (floor(y), floor(x)); non-finite points are skipped."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    cx = np.floor(x[ok]).astype(np.int64)
    cy = np.floor(y[ok]).astype(np.int64)
    off = _disk(radius)
    yy = (cy[:, None] + off[None, :, 0]).ravel()
    xx = (cx[:, None] + off[None, :, 1]).ravel()
    h, w = img.shape[:2]
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    img[yy[inside], xx[inside]] = np.asarray(color, dtype=np.uint8)


def _segment_points(p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along N segments p0 -> p1 ((N, 2) each), at most half a pixel apart."""
    p0 = np.asarray(p0, dtype=np.float64).reshape(-1, 2)
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1, 2)
    if p0.shape[0] == 0:
        return np.empty(0), np.empty(0)
    longest = float(np.nanmax(np.hypot(*(p1 - p0).T), initial=0.0))
    s = np.linspace(0.0, 1.0, int(math.ceil(2 * longest)) + 2)
    pts = p0[:, None, :] + (p1 - p0)[:, None, :] * s[None, :, None]
    return pts[..., 0].ravel(), pts[..., 1].ravel()


def _draw_segments(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: Sequence[int], thickness: int) -> None:
    x, y = _segment_points(p0, p1)
    _stamp(img, x, y, color, (thickness - 1) / 2)


def _ellipse_window(cx: float, cy: float, a: float, b: float, h: int, w: int):
    """Integer window [y0, y1) x [x0, x1) covering the ellipse, clipped to the frame, and the
    normalized radius^2 ((x - cx) / a)^2 + ((y - cy) / b)^2 at the window's pixel centres
    (None if the window is empty)."""
    x0, x1 = max(0, int(math.floor(cx - a))), min(w, int(math.ceil(cx + a)) + 1)
    y0, y1 = max(0, int(math.floor(cy - b))), min(h, int(math.ceil(cy + b)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1) + 0.5 - cx) / a
    ys = (np.arange(y0, y1) + 0.5 - cy) / b
    return (y0, y1, x0, x1), ys[:, None] ** 2 + xs[None, :] ** 2


def _box_window(box: np.ndarray, scale: float, h: int, w: int) -> tuple[int, int, int, int] | None:
    """The box scaled by ``scale`` about its centre, as an integer window [y0, y1) x [x0, x1)
    clipped to the frame (None when empty)."""
    x, y, bw, bh = (float(v) for v in box)
    cx, cy = x + bw / 2, y + bh / 2
    x0, x1 = max(0, int(math.floor(cx - scale * bw / 2))), min(w, int(math.ceil(cx + scale * bw / 2)))
    y0, y1 = max(0, int(math.floor(cy - scale * bh / 2))), min(h, int(math.ceil(cy + scale * bh / 2)))
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


# ---- motion ------------------------------------------------------------------------------------
def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ _LUMA


def _luma_u8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(_luma(frame)), 0, 255).astype(np.uint8)


def _box_blur(m: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window (edges repeated), separable, by cumulative sums."""
    if radius <= 0:
        return m
    k = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(m, pad, mode="edge"), axis=axis, dtype=np.float64)
        hi = np.take(c, np.arange(k, c.shape[axis]), axis=axis)
        lo = np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
        m = ((hi - lo) / k).astype(np.float32)
    return m


def _pairwise(frames: np.ndarray, fn) -> Iterator[Any]:
    """fn(frame t-1, frame t) for t = 1..T-1, with frame 0 given the result for (0, 1):
    yields T results in order (None for a single frame)."""
    if len(frames) < 2:
        yield None
        return
    first = fn(frames[0], frames[1])
    yield first
    yield first
    for t in range(2, len(frames)):
        yield fn(frames[t - 1], frames[t])


def _farneback(cv2, levels: int, winsize: int):
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(_luma_u8(a), _luma_u8(b), None, 0.5, levels, winsize, 3, 5, 1.1, 0)

    return flow


def _motion_iter(frames: np.ndarray, method: str, smooth_px: int, levels: int = 3,
                 winsize: int = 15) -> Iterator[np.ndarray]:
    h, w = frames.shape[1:3]
    if method == "diff":
        def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.abs(_luma(b) - _luma(a))
    else:
        flow = _farneback(_cv2("motion='flow'"), levels, winsize)

        def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            f = flow(a, b)
            return np.hypot(f[..., 0], f[..., 1]).astype(np.float32)

    for m in _pairwise(frames, fn):
        yield np.zeros((h, w), np.float32) if m is None else _box_blur(m, smooth_px)


def motion_maps(frames: Any, method: str = "diff", smooth: int = 0, levels: int = 3,
                winsize: int = 15) -> np.ndarray:
    """Per-pixel motion magnitude (T, H, W) float32 of uint8 RGB frames (T, H, W, 3).

    ``method="diff"``: |Y_t - Y_{t-1}| of the BT.601 luma (grey levels per frame);
    ``"flow"``: the length of OpenCV's Farneback dense flow from frame t-1 to t (pixels per
    frame; ``levels`` pyramid levels, ``winsize`` averaging window). Frame 0 gets the
    motion between frames 0 and 1; a single frame gets zeros. ``smooth``: radius (px) of a
    box filter applied twice to each map (0 = none).
    """
    arr = _check_frames(frames)
    _choice("motion_maps", "method", method, ("diff", "flow"))
    r = _count("motion_maps", "smooth", smooth, lo=0)
    return np.stack(list(_motion_iter(arr, method, r, levels, winsize)))


# ---- the interface -----------------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return v


class FrameTransform(ABC):
    """A visual prompt: uint8 RGB frames (T, H, W, 3) + optional faces -> new frames.

    ``transform(frames, faces=None)`` checks its inputs and returns a new uint8 array:
    (T, H, W, 3), or (1, h, w, 3) when ``reduces_time`` (the montage). ``faces``: a
    :class:`FaceInfo`, a ``msce.faces.FaceTrack``, or boxes (one (x, y, w, h) for all
    frames, or one per frame, None where there is no face), in the pixels of ``frames``.
    ``needs_faces`` says whether ``faces`` is required; ``face_options`` (a
    ``msce.faces.FaceCrop``; None = the defaults) says how :func:`load_prompted` finds them.
    ``config()`` is JSON with every parameter and the ``name``.
    """

    name: ClassVar[str] = ""
    reduces_time: ClassVar[bool] = False

    @property
    def needs_faces(self) -> bool:
        return False

    @property
    def face_crop(self) -> FaceCrop:
        """The face-finding options used when the caller gives no faces."""
        opts = getattr(self, "face_options", None)
        return _face_options(type(self).__name__, opts)

    def __call__(self, frames: Any, faces: Any = None) -> np.ndarray:
        arr = _check_frames(frames)
        info = as_face_info(faces, arr.shape[0])
        if self.needs_faces and info is None:
            raise FaceError(f"{self.name} needs faces: pass faces= (msce.models.visual_prompts.FaceInfo, a "
                            "msce.faces.FaceTrack, or boxes), or use load_prompted, which detects them")
        return self.apply(arr, info)

    @abstractmethod
    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        """The transform itself, on checked frames (C-contiguous uint8 (T, H, W, 3))."""

    def config(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "face_options":
                if self.needs_faces:
                    out["face_options"] = self.face_crop.to_dict()
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


def _face_options(cls: str, v: Any) -> Any:
    """A FaceCrop from None (the defaults), a FaceCrop or its to_dict()."""
    from msce.faces import FaceCrop

    if v is None:
        return FaceCrop()
    if isinstance(v, FaceCrop):
        return v
    if isinstance(v, Mapping):
        return FaceCrop(**dict(v))
    raise ConfigError(f"{cls}.face_options must be a msce.faces.FaceCrop, its to_dict(), or None "
                      f"(got {type(v).__name__})")


def _set(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        object.__setattr__(obj, k, v)


def _face_side(box: np.ndarray) -> float:
    return float(max(box[2], box[3]))


# ---- 1. red circle -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedCircle(FrameTransform):
    """An ellipse outline around the face on every frame with a face (Table S1 "Red Circle
    On Face"; the 2D spatial annotation of visual-prompting work).

    The ellipse is centred on the face box, with semi-axes ``margin`` x (w/2, h/2) (the
    default 1.25 clears the box's sides; sqrt(2) would pass through its corners); the
    outline is ``thickness`` x the box's larger side thick (at least 1 px), centred on
    that ellipse: a pixel is painted ``color`` when its centre lies inside the ellipse with
    semi-axes grown by half the thickness and outside the one shrunk by half of it.
    Nothing else changes.
    """

    name: ClassVar[str] = "red_circle"
    color: tuple[int, int, int] = (255, 0, 0)
    thickness: float = 0.04
    margin: float = 1.25
    face_options: Any = None

    def __post_init__(self) -> None:
        c = type(self).__name__
        _set(self, color=_color(c, "color", self.color), thickness=_number(c, "thickness", self.thickness, hi=1.0),
             margin=_number(c, "margin", self.margin, hi=10.0), face_options=_face_options(c, self.face_options))

    @property
    def needs_faces(self) -> bool:
        return True

    def ring(self, box: np.ndarray, size: tuple[int, int]):
        """((y0, y1, x0, x1), mask) of the outline for one face box in a frame of ``size``
        (H, W), or None when it lies outside the frame."""
        x, y, w, h = (float(v) for v in box)
        half = max(1.0, self.thickness * max(w, h)) / 2
        cx, cy, a, b = x + w / 2, y + h / 2, self.margin * w / 2, self.margin * h / 2
        win = _ellipse_window(cx, cy, a + half, b + half, *size)
        if win is None:
            return None
        (y0, y1, x0, x1), outer = win
        mask = outer <= 1.0
        if a > half and b > half:
            xs = (np.arange(x0, x1) + 0.5 - cx) / (a - half)
            ys = (np.arange(y0, y1) + 0.5 - cy) / (b - half)
            mask &= ys[:, None] ** 2 + xs[None, :] ** 2 > 1.0
        return (y0, y1, x0, x1), mask

    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        out = frames.copy()
        assert faces is not None
        found = faces.found
        for t in range(len(out)):
            if not found[t]:
                continue
            r = self.ring(faces.boxes[t], out.shape[1:3])
            if r is None:
                continue
            (y0, y1, x0, x1), mask = r
            out[t, y0:y1, x0:x1][mask] = self.color
        return out


# ---- 2./3. heatmaps ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Heatmap(FrameTransform):
    method: str = "diff"
    alpha: float = 0.5
    weighting: str = "constant"
    colormap: str = "jet"
    vmax: float | None = None
    smooth: float = 0.01
    levels: int = 3
    winsize: int = 15
    face_options: Any = None

    def _check_common(self) -> None:
        c = type(self).__name__
        _set(self, method=_choice(c, "method", self.method, ("diff", "flow")),
             alpha=_number(c, "alpha", self.alpha, hi=1.0),
             weighting=_choice(c, "weighting", self.weighting, ("constant", "motion")),
             colormap=_choice(c, "colormap", self.colormap, ("jet", "hot")),
             vmax=_number(c, "vmax", self.vmax, none_ok=True),
             smooth=_number(c, "smooth", self.smooth, hi=1.0, lo_open=False),
             levels=_count(c, "levels", self.levels), winsize=_count(c, "winsize", self.winsize, lo=3),
             face_options=_face_options(c, self.face_options))
        if self.method == "flow":
            _cv2(f"{c}(method='flow')")

    @abstractmethod
    def _mask(self, faces: FaceInfo | None, t: int, size: tuple[int, int]):
        """((y0, y1, x0, x1), bool mask) of frame t's overlay, or None for none."""

    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        out = frames.copy()
        size = out.shape[1:3]
        masks = [self._mask(faces, t, size) for t in range(len(out))]
        if all(m is None for m in masks):
            return out
        smooth_px = int(round(self.smooth * min(size)))
        crops: list[np.ndarray | None] = []
        peak = 0.0
        for t, m in enumerate(_motion_iter(frames, self.method, smooth_px, self.levels, self.winsize)):
            if masks[t] is None:
                crops.append(None)
                continue
            (y0, y1, x0, x1), mask = masks[t]
            crop = m[y0:y1, x0:x1]
            crops.append(crop)
            if mask.any():
                peak = max(peak, float(crop[mask].max()))
        scale = self.vmax if self.vmax is not None else peak
        lut = colormap(self.colormap)
        for t, crop in enumerate(crops):
            if crop is None:
                continue
            (y0, y1, x0, x1), mask = masks[t]
            level = np.clip(crop / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(crop)
            heat = lut[np.rint(level * 255).astype(np.intp)]
            alpha = self.alpha * (level if self.weighting == "motion" else np.ones_like(level))
            alpha = np.where(mask, alpha, 0.0)
            out[t, y0:y1, x0:x1] = _blend(out[t, y0:y1, x0:x1], heat, alpha)
        return out


_HEATMAP_DOC = """

    Motion (``method``): "diff" = |luma_t - luma_{t-1}| in grey levels (NumPy), "flow" =
    the length of OpenCV's Farneback flow from frame t-1 to t in pixels (``levels``
    pyramid levels, ``winsize`` px window; needs ``msce[visual]``); frame 0 uses the
    motion between frames 0 and 1. Each map is smoothed by a box filter of radius
    ``smooth`` x the frame's shorter side (applied twice; 0 = none). Scale: motion / ``vmax``
    clipped to [0, 1]; ``vmax=None`` uses the largest motion inside the overlay over the
    whole clip, so colours compare across frames. That level indexes ``colormap`` ("jet":
    blue = still, red = most motion; "hot") and is blended over the frame with opacity
    ``alpha`` ("constant" ``weighting``: the whole region is tinted, a still face evenly)
    or ``alpha`` x level ("motion": still pixels stay unchanged). Outside the region, and
    on frames without a face, nothing changes.
"""


@dataclass(frozen=True)
class MotionHeatmap(_Heatmap):
    """A motion heatmap over the face (Table S1 "Heatmap").

    Region: the face box scaled by ``margin`` about its centre (``region="face"``), or the
    whole frame (``region="frame"``, no faces needed)."""

    name: ClassVar[str] = "motion_heatmap"
    region: str = "face"
    margin: float = 1.2

    def __post_init__(self) -> None:
        self._check_common()
        c = type(self).__name__
        _set(self, region=_choice(c, "region", self.region, ("face", "frame")),
             margin=_number(c, "margin", self.margin, hi=10.0))

    @property
    def needs_faces(self) -> bool:
        return self.region == "face"

    def _mask(self, faces: FaceInfo | None, t: int, size: tuple[int, int]):
        h, w = size
        if self.region == "frame":
            return (0, h, 0, w), np.ones((h, w), bool)
        assert faces is not None
        if not faces.found[t]:
            return None
        win = _box_window(faces.boxes[t], self.margin, h, w)
        if win is None:
            return None
        y0, y1, x0, x1 = win
        return win, np.ones((y1 - y0, x1 - x0), bool)


@dataclass(frozen=True)
class FocusedHeatmap(_Heatmap):
    """A motion heatmap on the eyes and the lips only (Table S1 "Focused Heatmap").

    Region: the union of the ellipses inscribed in each of ``regions`` (names from
    :data:`REGION_NAMES`; default both eyes and the mouth), each box scaled by
    ``region_margin`` about its centre. Regions come from the face's landmarks
    (``FaceInfo.regions``; ``msce.faces.FaceTrack.regions()``)."""

    name: ClassVar[str] = "focused_heatmap"
    regions: tuple[str, ...] = ("eye_left", "eye_right", "mouth")
    region_margin: float = 1.3

    def __post_init__(self) -> None:
        self._check_common()
        c = type(self).__name__
        regs = (self.regions,) if isinstance(self.regions, str) else tuple(self.regions)
        if not regs or any(r not in REGION_NAMES for r in regs):
            raise ConfigError(f"{c}.regions must name one or more of {REGION_NAMES} (got {self.regions!r})")
        _set(self, regions=regs, region_margin=_number(c, "region_margin", self.region_margin, hi=10.0))

    @property
    def needs_faces(self) -> bool:
        return True

    def _mask(self, faces: FaceInfo | None, t: int, size: tuple[int, int]):
        assert faces is not None
        h, w = size
        if not faces.found[t]:
            return None
        ells = []
        for name in self.regions:
            x, y, bw, bh = faces.region(name)[t]
            if not (np.isfinite([x, y, bw, bh]).all() and bw > 0 and bh > 0):
                continue
            ells.append((x + bw / 2, y + bh / 2, self.region_margin * bw / 2, self.region_margin * bh / 2))
        if not ells:
            return None
        wins = [_ellipse_window(cx, cy, a, b, h, w) for cx, cy, a, b in ells]
        wins = [wn for wn in wins if wn is not None]
        if not wins:
            return None
        y0 = min(wn[0][0] for wn in wins)
        y1 = max(wn[0][1] for wn in wins)
        x0 = min(wn[0][2] for wn in wins)
        x1 = max(wn[0][3] for wn in wins)
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for (ey0, ey1, ex0, ex1), r2 in wins:
            mask[ey0 - y0:ey1 - y0, ex0 - x0:ex1 - x0] |= r2 <= 1.0
        return (y0, y1, x0, x1), mask


MotionHeatmap.__doc__ = (MotionHeatmap.__doc__ or "") + _HEATMAP_DOC
FocusedHeatmap.__doc__ = (FocusedHeatmap.__doc__ or "") + _HEATMAP_DOC


# ---- 4. montage ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Montage(FrameTransform):
    """All frames as one grid image (Table S1 "Video Montage": time "spatialized"; each
    frame gets a fraction of the resolution).

    ``grid``: (rows, cols), or None for cols = ceil(sqrt(T)), rows = ceil(T / cols).
    Frames fill the grid row-major in the order given. ``size``: the montage's (height,
    width); None = the input frame size (so the montage costs one frame's visual tokens).
    Cells are (size - (n - 1) x ``spacing``) / n px (floored), the grid is centred, and
    each frame is resized into its cell by msce's antialiased resize (``interpolation``),
    keeping its aspect ratio and centred in the cell (``keep_aspect``) or filling it.
    Empty cells, spacing and margins are ``fill``. Output: (1, height, width, 3).
    """

    name: ClassVar[str] = "montage"
    reduces_time: ClassVar[bool] = True
    grid: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    spacing: int = 0
    keep_aspect: bool = True
    fill: tuple[int, int, int] = (0, 0, 0)
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        c = type(self).__name__
        if not isinstance(self.keep_aspect, bool):
            raise ConfigError(f"{c}.keep_aspect must be a bool (got {self.keep_aspect!r})")
        _set(self, grid=_pair(c, "grid", self.grid), size=_pair(c, "size", self.size),
             spacing=_count(c, "spacing", self.spacing, lo=0), fill=_color(c, "fill", self.fill),
             interpolation=_choice(c, "interpolation", self.interpolation, ("bicubic", "bilinear")))

    def shape(self, num_frames: int) -> tuple[int, int]:
        """(rows, cols) for ``num_frames`` frames."""
        if self.grid is not None:
            rows, cols = self.grid
            if rows * cols < num_frames:
                raise TransformError(f"Montage grid {rows}x{cols} holds {rows * cols} frames, got {num_frames}")
            return rows, cols
        cols = math.ceil(math.sqrt(num_frames))
        return math.ceil(num_frames / cols), cols

    def layout(self, num_frames: int,
               frame_size: tuple[int, int]) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
        """((height, width) of the montage, [(x, y, w, h) of each frame's tile, in order])."""
        fh, fw = frame_size
        out_h, out_w = self.size if self.size is not None else (fh, fw)
        rows, cols = self.shape(num_frames)
        cell_h = (out_h - (rows - 1) * self.spacing) // rows
        cell_w = (out_w - (cols - 1) * self.spacing) // cols
        if cell_h < 1 or cell_w < 1:
            raise TransformError(f"Montage of {rows}x{cols} cells with spacing {self.spacing} does not fit "
                                 f"{out_h}x{out_w} pixels")
        if self.keep_aspect:
            s = min(cell_h / fh, cell_w / fw)
            th, tw = min(cell_h, max(1, round(fh * s))), min(cell_w, max(1, round(fw * s)))
        else:
            th, tw = cell_h, cell_w
        oy = (out_h - (rows * cell_h + (rows - 1) * self.spacing)) // 2
        ox = (out_w - (cols * cell_w + (cols - 1) * self.spacing)) // 2
        tiles = []
        for k in range(num_frames):
            r, c = divmod(k, cols)
            tiles.append((ox + c * (cell_w + self.spacing) + (cell_w - tw) // 2,
                          oy + r * (cell_h + self.spacing) + (cell_h - th) // 2, tw, th))
        return (out_h, out_w), tiles

    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        (out_h, out_w), tiles = self.layout(frames.shape[0], frames.shape[1:3])
        _, _, tw, th = tiles[0]
        if (th, tw) == frames.shape[1:3]:
            small = frames
        else:

            small = preprocess(frames, Frames(size=(th, tw), layout="NHWC", interpolation=self.interpolation),
                                    pin_memory=False).data.numpy()
        canvas = np.empty((1, out_h, out_w, 3), np.uint8)
        canvas[...] = np.asarray(self.fill, np.uint8)
        for k, (x, y, w, h) in enumerate(tiles):
            canvas[0, y:y + h, x:x + w] = small[k]
        return canvas


# ---- 5. flow arrows ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowArrows(FrameTransform):
    """Dense optical-flow vectors drawn as arrows over the face (Table S1 "MotionFlow Arrow").

    Flow: OpenCV's Farneback flow from frame t-1 to t (frame 0: from 0 to 1; ``levels``,
    ``winsize`` as in :func:`motion_maps`; needs ``msce[visual]``). It is sampled at the
    centres of a ``grid`` x ``grid`` lattice over the face box scaled by ``margin``
    (``region="face"``) or over the whole frame (``region="frame"``); a vector (u, v) of
    length >= ``min_magnitude`` px is drawn from its point p to p + ``scale`` x (u, v), with
    two head strokes of ``head`` x the arrow's length at +-25 degrees. Strokes are
    ``thickness`` x the face box's larger side (the frame's shorter side for "frame") thick,
    at least 1 px, in ``color``. A still face, or a frame without a face, is unchanged.
    """

    name: ClassVar[str] = "flow_arrows"
    grid: int = 8
    scale: float = 3.0
    min_magnitude: float = 0.5
    head: float = 0.3
    color: tuple[int, int, int] = (0, 255, 0)
    thickness: float = 0.01
    region: str = "face"
    margin: float = 1.2
    levels: int = 3
    winsize: int = 15
    face_options: Any = None

    _HEAD_ANGLE: ClassVar[float] = math.radians(25.0)

    def __post_init__(self) -> None:
        c = type(self).__name__
        _set(self, grid=_count(c, "grid", self.grid), scale=_number(c, "scale", self.scale, hi=1000.0),
             min_magnitude=_number(c, "min_magnitude", self.min_magnitude, lo_open=False),
             head=_number(c, "head", self.head, hi=1.0, lo_open=False), color=_color(c, "color", self.color),
             thickness=_number(c, "thickness", self.thickness, hi=1.0),
             region=_choice(c, "region", self.region, ("face", "frame")),
             margin=_number(c, "margin", self.margin, hi=10.0), levels=_count(c, "levels", self.levels),
             winsize=_count(c, "winsize", self.winsize, lo=3), face_options=_face_options(c, self.face_options))
        _cv2(c)

    @property
    def needs_faces(self) -> bool:
        return self.region == "face"

    def arrows(self, flow: np.ndarray, box: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) (N, 2) of the arrows for one flow field (H, W, 2) and face box
        (None for the whole frame)."""
        h, w = flow.shape[:2]
        if box is None:
            x0, y0, bw, bh = 0.0, 0.0, float(w), float(h)
        else:
            x, y, fw, fh = (float(v) for v in box)
            bw, bh = self.margin * fw, self.margin * fh
            x0, y0 = x + fw / 2 - bw / 2, y + fh / 2 - bh / 2
        steps = (np.arange(self.grid) + 0.5) / self.grid
        px, py = np.meshgrid(x0 + steps * bw, y0 + steps * bh)
        px, py = px.ravel(), py.ravel()
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        px, py = px[inside], py[inside]
        vec = flow[np.floor(py).astype(np.intp), np.floor(px).astype(np.intp)].astype(np.float64)
        keep = np.hypot(vec[:, 0], vec[:, 1]) >= max(self.min_magnitude, 1e-9)
        starts = np.stack([px, py], axis=1)[keep]
        return starts, starts + self.scale * vec[keep]

    def _strokes(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = ends - starts
        length = np.hypot(d[:, 0], d[:, 1])[:, None]
        back = -d / np.maximum(length, 1e-12) * (self.head * length)
        wings = []
        for ang in (self._HEAD_ANGLE, -self._HEAD_ANGLE):
            c, s = math.cos(ang), math.sin(ang)
            wings.append(ends + np.stack([c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1]], axis=1))
        return np.concatenate([starts, ends, ends]), np.concatenate([ends, wings[0], wings[1]])

    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        out = frames.copy()
        h, w = out.shape[1:3]
        if self.region == "face":
            assert faces is not None
            found = faces.found
            if not found.any():
                return out
        flow_fn = _farneback(_cv2(type(self).__name__), self.levels, self.winsize)
        for t, flow in enumerate(_pairwise(frames, flow_fn)):
            if flow is None:
                break
            if self.region == "face":
                if not found[t]:
                    continue
                box = faces.boxes[t]
                ref = _face_side(box)
            else:
                box, ref = None, float(min(h, w))
            starts, ends = self.arrows(flow, box)
            if len(starts) == 0:
                continue
            p0, p1 = self._strokes(starts, ends)
            _draw_segments(out[t], p0, p1, self.color, max(1, round(self.thickness * ref)))
        return out


# ---- 6. point tracks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointTracks(FrameTransform):
    """Lip and brow points tracked across the frames, their trajectories drawn (Table S1
    "PointTrack").

    Seeds, on the first frame whose face has mouth and brow regions: ``lip_points`` points
    evenly spaced in angle (from the right end, counter-clockwise in the image) on the
    ellipse inscribed in the mouth box (corners, upper and lower lip), and ``brow_points``
    points along the horizontal centre line of each brow box (at (k + 0.5) / n of its
    width). Tracking: OpenCV's pyramidal Lucas-Kanade from each frame to the next (window
    ``window`` x the face box's larger side, odd, >= 7 px; ``levels`` pyramid levels), with
    a forward-backward check: a point whose backward track lands more than
    ``fb_threshold`` px from where it started (0 = no check), or that leaves the frame, is
    lost from then on. Tracks run between the frames given (e.g. 1 s apart for a 1-FPS
    plan). Drawing, on frame t: each point's path over the last ``history`` steps (None =
    since the seed frame) as ``thickness`` x face-size strokes (>= 1 px) and a dot at its
    current position (radius = stroke width), lips in ``lips_color``, brows in
    ``brows_color``. Frames before the seed frame are unchanged. Needs ``msce[visual]``.
    """

    name: ClassVar[str] = "point_tracks"
    lip_points: int = 6
    brow_points: int = 3
    lips_color: tuple[int, int, int] = (255, 0, 255)
    brows_color: tuple[int, int, int] = (0, 255, 255)
    thickness: float = 0.012
    history: int | None = None
    window: float = 0.15
    levels: int = 3
    fb_threshold: float = 1.0
    face_options: Any = None

    def __post_init__(self) -> None:
        c = type(self).__name__
        _set(self, lip_points=_count(c, "lip_points", self.lip_points, lo=0),
             brow_points=_count(c, "brow_points", self.brow_points, lo=0),
             lips_color=_color(c, "lips_color", self.lips_color),
             brows_color=_color(c, "brows_color", self.brows_color),
             thickness=_number(c, "thickness", self.thickness, hi=1.0),
             history=_count(c, "history", self.history, none_ok=True),
             window=_number(c, "window", self.window, hi=1.0), levels=_count(c, "levels", self.levels, lo=0),
             fb_threshold=_number(c, "fb_threshold", self.fb_threshold, lo_open=False),
             face_options=_face_options(c, self.face_options))
        if self.lip_points + self.brow_points == 0:
            raise ConfigError(f"{c} needs lip_points or brow_points > 0")
        _cv2(c)

    @property
    def needs_faces(self) -> bool:
        return True

    def seeds(self, faces: FaceInfo, t: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(points (N, 2), is_lip (N,) bool) seeded on frame t, or None without regions."""
        pts, lip = [], []
        if self.lip_points:
            x, y, w, h = faces.region("mouth")[t]
            ang = 2 * np.pi * np.arange(self.lip_points) / self.lip_points
            pts.append(np.stack([x + w / 2 + w / 2 * np.cos(ang), y + h / 2 - h / 2 * np.sin(ang)], axis=1))
            lip.append(np.ones(self.lip_points, bool))
        if self.brow_points:
            for name in ("brow_left", "brow_right"):
                x, y, w, h = faces.region(name)[t]
                xs = x + w * (np.arange(self.brow_points) + 0.5) / self.brow_points
                pts.append(np.stack([xs, np.full_like(xs, y + h / 2)], axis=1))
                lip.append(np.zeros(self.brow_points, bool))
        p = np.concatenate(pts)
        if not np.isfinite(p).all():
            return None
        return p, np.concatenate(lip)

    def tracks(self, frames: np.ndarray, faces: FaceInfo) -> tuple[np.ndarray, np.ndarray, int | None]:
        """(positions (T, N, 2) with NaN before the seed frame and once lost, is_lip (N,),
        seed frame or None)."""
        cv2 = _cv2(type(self).__name__)
        n_frames = len(frames)
        start, seeded = None, None
        for t in np.flatnonzero(faces.found):
            seeded = self.seeds(faces, int(t))
            if seeded is not None:
                start = int(t)
                break
        if seeded is None or start is None:
            return np.full((n_frames, 0, 2), np.nan), np.zeros(0, bool), None
        p0, is_lip = seeded
        pos = np.full((n_frames, len(p0), 2), np.nan)
        pos[start] = p0
        side = _face_side(faces.boxes[start])
        win = max(7, int(round(self.window * side)) | 1)
        lk = {"winSize": (win, win), "maxLevel": self.levels,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
        h, w = frames.shape[1:3]
        prev = _luma_u8(frames[start])
        for t in range(start + 1, n_frames):
            cur = _luma_u8(frames[t])
            alive = np.isfinite(pos[t - 1]).all(axis=1)
            if alive.any():
                src = pos[t - 1][alive].astype(np.float32).reshape(-1, 1, 2)
                nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, src, None, **lk)
                good = ok.reshape(-1).astype(bool)
                if self.fb_threshold > 0:
                    back, ok2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **lk)
                    err = np.hypot(*(back - src).reshape(-1, 2).T)
                    good &= ok2.reshape(-1).astype(bool) & (err <= self.fb_threshold)
                q = nxt.reshape(-1, 2).astype(np.float64)
                good &= (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
                q[~good] = np.nan
                pos[t][alive] = q
            prev = cur
        return pos, is_lip, start

    def apply(self, frames: np.ndarray, faces: FaceInfo | None) -> np.ndarray:
        assert faces is not None
        out = frames.copy()
        pos, is_lip, start = self.tracks(frames, faces)
        if start is None:
            return out
        width = max(1, round(self.thickness * _face_side(faces.boxes[start])))
        for t in range(start, len(out)):
            lo = start if self.history is None else max(start, t - self.history)
            a, b = pos[lo:t].reshape(-1, 2), pos[lo + 1:t + 1].reshape(-1, 2)
            lips_seg = np.tile(is_lip, t - lo)
            both = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
            now = np.isfinite(pos[t]).all(axis=1)
            for sel, sel_now, color in ((lips_seg, is_lip, self.lips_color), (~lips_seg, ~is_lip, self.brows_color)):
                _draw_segments(out[t], a[both & sel], b[both & sel], color, width)
                _stamp(out[t], pos[t][now & sel_now, 0], pos[t][now & sel_now, 1], color, float(width))
        return out


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
