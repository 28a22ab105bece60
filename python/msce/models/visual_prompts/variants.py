"""The six variants of paper Table S1: :class:`RedCircle`, :class:`MotionHeatmap`,
:class:`FocusedHeatmap`, :class:`Montage`, :class:`FlowArrows` and :class:`PointTracks`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from msce.errors import ConfigError, TransformError
from msce.io import preprocess
from msce.models.visual_prompts.base import (FrameTransform, _check_fields, _color, _cv2, _face_options, _flag, _int,
                                             _num, _one_of, _pair)
from msce.models.visual_prompts.drawing import (_blend, _box_window, _draw_segments, _ellipse_window, _stamp,
                                                colormap)
from msce.models.visual_prompts.face_info import REGION_NAMES, FaceInfo, _face_side
from msce.models.visual_prompts.flow import _farneback, _luma_u8, _motion_iter, _pairwise
from msce.targets import Frames


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
        _check_fields(self, color=_color, thickness=_num(hi=1.0), margin=_num(hi=10.0), face_options=_face_options)

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
        _check_fields(self, method=_one_of("diff", "flow"), alpha=_num(hi=1.0),
                      weighting=_one_of("constant", "motion"), colormap=_one_of("jet", "hot"),
                      vmax=_num(none_ok=True), smooth=_num(hi=1.0, lo_open=False), levels=_int(),
                      winsize=_int(lo=3), face_options=_face_options)
        if self.method == "flow":
            _cv2(f"{type(self).__name__}(method='flow')")

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
        _check_fields(self, region=_one_of("face", "frame"), margin=_num(hi=10.0))

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


def _regions(cls: str, name: str, v: Any) -> tuple[str, ...]:
    try:
        regs = (v,) if isinstance(v, str) else tuple(v)
    except TypeError:
        regs = ()
    if not regs or any(r not in REGION_NAMES for r in regs):
        raise ConfigError(f"{cls}.{name} must name one or more of {REGION_NAMES} (got {v!r})")
    return regs


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
        _check_fields(self, regions=_regions, region_margin=_num(hi=10.0))

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
        _check_fields(self, keep_aspect=_flag, grid=_pair, size=_pair, spacing=_int(lo=0), fill=_color,
                      interpolation=_one_of("bicubic", "bilinear"))

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
        _check_fields(self, grid=_int(), scale=_num(hi=1000.0), min_magnitude=_num(lo_open=False),
                      head=_num(hi=1.0, lo_open=False), color=_color, thickness=_num(hi=1.0),
                      region=_one_of("face", "frame"), margin=_num(hi=10.0), levels=_int(), winsize=_int(lo=3),
                      face_options=_face_options)
        _cv2(type(self).__name__)

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
        _check_fields(self, lip_points=_int(lo=0), brow_points=_int(lo=0), lips_color=_color, brows_color=_color,
                      thickness=_num(hi=1.0), history=_int(none_ok=True), window=_num(hi=1.0), levels=_int(lo=0),
                      fb_threshold=_num(lo_open=False), face_options=_face_options)
        c = type(self).__name__
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

