"""Generated face clips with known face boxes (real faces from scikit-image).

Faces: the astronaut's head (``skimage.data.astronaut()``) and LFW faces
(``skimage.data.lfw_subset()``, 25x25 grey crops, upscaled), pasted onto a smooth
gradient background at known positions and scales, encoded as H.264 (yuv420p) with PyAV.
Every clip records, per frame, the ground-truth face box (x, y, w, h) of each face in
display pixels (None where a face is absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 25
# The astronaut's head region and, inside it, her face (hand-labelled: ear to ear, brow to
# chin) in the 512x512 image.
HEAD = (110, 20, 230, 240)   # x, y, w, h
FACE = (178, 78, 94, 100)


@dataclass
class Clip:
    path: Path
    frames: np.ndarray                  # (T, H, W, 3) uint8, what was encoded
    boxes: dict[str, list]              # face name -> per frame (x, y, w, h) or None

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def background(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([60 + 80 * xx / w, 90 + 60 * yy / h, 140 - 40 * xx / w], axis=-1)
    return bg.astype(np.uint8)


def astronaut_head(scale: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The head patch at ``scale`` and the face box inside it."""
    from skimage import data

    x, y, w, h = HEAD
    patch = data.astronaut()[y:y + h, x:x + w]
    pw, ph = round(w * scale), round(h * scale)
    fx, fy, fw, fh = FACE
    return _resize(patch, pw, ph), ((fx - x) * pw / w, (fy - y) * ph / h, fw * pw / w, fh * ph / h)


def lfw_face(size: int, index: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """An LFW face upscaled to size x size (RGB) and its face box (the crop is tight:
    the box is the middle 80 % horizontally, brow to chin vertically)."""
    from skimage import data

    grey = (data.lfw_subset()[index] * 255).round().astype(np.uint8)
    img = np.repeat(_resize(grey, size, size)[..., None], 3, axis=-1)
    return img, (0.1 * size, 0.12 * size, 0.8 * size, 0.85 * size)


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    frame[y:y + h, x:x + w] = patch


def encode(path: Path, frames: np.ndarray, fps: int = FPS) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"preset": "ultrafast", "crf": "16"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make(kind: str, out_dir: Path, seconds: float = 2.4, size: tuple[int, int] = (360, 640)) -> Clip:
    """Clips: "pan" (head moves left to right), "zoom" (0.75x -> 1.2x about the centre),
    "still" (fixed head, per-frame sensor noise), "two" (a large LFW face at the left, the
    smaller astronaut in the centre), "gap" (head for the first 40 % only, then nothing)."""
    h, w = size
    n = round(seconds * FPS)
    rng = np.random.default_rng(7)
    bg = background(h, w)
    frames = np.empty((n, h, w, 3), np.uint8)
    boxes: dict[str, list] = {"astronaut": [], "lfw": []}
    head, face = astronaut_head(0.8)
    for t in range(n):
        f = bg.copy()
        a = lfw_box = None
        if kind == "pan":
            x = round(30 + (w - head.shape[1] - 60) * t / (n - 1))
            y = (h - head.shape[0]) // 2
            paste(f, head, x, y)
            a = (x + face[0], y + face[1], face[2], face[3])
        elif kind == "zoom":
            s = 0.75 + 0.45 * t / (n - 1)
            hd, fc = astronaut_head(s)
            x, y = (w - hd.shape[1]) // 2, max(0, (h - hd.shape[0]) // 2)
            hd = hd[: h - y]
            paste(f, hd, x, y)
            a = (x + fc[0], y + fc[1], fc[2], fc[3])
        elif kind == "still":
            x, y = (w - head.shape[1]) // 2, (h - head.shape[0]) // 2
            paste(f, head, x, y)
            noise = rng.integers(-3, 4, size=f.shape)
            f = np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            a = (x + face[0], y + face[1], face[2], face[3])
        elif kind == "two":
            big, big_face = lfw_face(200)
            lx, ly = 20, (h - 200) // 2
            paste(f, big, lx, ly)
            lfw_box = (lx + big_face[0], ly + big_face[1], big_face[2], big_face[3])
            x, y = (w - head.shape[1]) // 2 + 40, (h - head.shape[0]) // 2
            paste(f, head, x, y)
            a = (x + face[0], y + face[1], face[2], face[3])
        elif kind == "gap":
            if t < 0.4 * n:
                x, y = (w - head.shape[1]) // 2, (h - head.shape[0]) // 2
                paste(f, head, x, y)
                a = (x + face[0], y + face[1], face[2], face[3])
        else:
            raise ValueError(kind)
        frames[t] = f
        boxes["astronaut"].append(a)
        boxes["lfw"].append(lfw_box)
    path = encode(out_dir / f"{kind}.mp4", frames)
    return Clip(path, frames, boxes)
