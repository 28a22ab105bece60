"""Real face photographs with facial landmarks, the material the generator animates.

Two sources, both shipped inside scikit-image (no download):

* ``"astronaut"``: ``skimage.data.astronaut()`` (512x512 RGB). Its landmarks were placed by
  hand on 8x enlargements of the photo with a 5-px grid (brows, eyelids, mouth corners,
  lips, nose tip, chin). The face spans about x 180..268, y 78..182 (cheek to cheek,
  hairline to chin); the head is tilted slightly, so the image-right features sit 1-3 px
  lower than the image-left ones. (An earlier note put the face at x 245..336: that is
  the hair and background to the right of it.)
* ``"lfw:K"`` (K = 0..99): face K of ``skimage.data.lfw_subset()`` (25x25 grey, aligned
  LFW crops in which the face fills the image). Landmarks are proportional: the same
  fractions of the crop for every face, measured on the mean of the 100 faces (brows at
  28 % of the height, eyes at 34-40 %, mouth corners at 74 %, ...).

Landmark names say the IMAGE side: ``brow_l_in`` is the inner end of the brow on the left
of the picture. Coordinates are (x, y) pixels of the source image, x to the right, y down.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from msce.errors import ConfigError

__all__ = ["Face", "LANDMARKS", "load_face", "face_names"]

# One row a landmark: its name; (x, y) in pixels of skimage.data.astronaut(), placed by hand
# (see the module docstring); (x, y) as fractions of an aligned LFW crop, measured on the mean
# of the 100 faces.
_POINTS = (
    ("brow_l_out", (191.0, 89.7), (0.20, 0.29)),
    ("brow_l_mid", (201.0, 88.3), (0.30, 0.27)),
    ("brow_l_in", (212.0, 91.4), (0.40, 0.29)),
    ("brow_r_in", (238.0, 93.5), (0.60, 0.29)),
    ("brow_r_mid", (249.0, 92.6), (0.70, 0.27)),
    ("brow_r_out", (260.0, 93.5), (0.80, 0.29)),
    ("lid_l_up", (202.5, 97.6), (0.32, 0.34)),
    ("lid_l_low", (202.5, 103.5), (0.32, 0.40)),
    ("lid_r_up", (246.3, 100.1), (0.67, 0.34)),
    ("lid_r_low", (246.3, 106.4), (0.67, 0.40)),
    ("mouth_l", (204.4, 140.6), (0.36, 0.74)),
    ("mouth_r", (243.1, 141.9), (0.64, 0.74)),
    ("lip_up", (222.5, 139.5), (0.50, 0.70)),
    ("lip_low", (222.5, 150.6), (0.50, 0.79)),
    ("nose", (225.0, 127.0), (0.50, 0.56)),
    ("chin", (225.0, 177.0), (0.50, 0.95)),
)
LANDMARKS = tuple(name for name, _, _ in _POINTS)
_ASTRONAUT = {name: xy for name, xy, _ in _POINTS}
_ASTRONAUT_BOX = (180.0, 78.0, 88.0, 104.0)  # x, y, w, h
_LFW = {name: xy for name, _, xy in _POINTS}
_LFW_BOX = (0.10, 0.12, 0.80, 0.86)


@dataclass(frozen=True)
class Face:
    """A face photo: ``image`` uint8 (H, W, 3) RGB, ``landmarks`` {name: (x, y)},
    ``box`` (x, y, w, h) around the face, all in the photo's pixels. ``width`` is the
    face width (box width) that expression displacements are scaled by."""

    name: str
    image: np.ndarray
    landmarks: dict
    box: tuple

    @property
    def width(self) -> float:
        return float(self.box[2])

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@functools.lru_cache(maxsize=1)
def _lfw_faces() -> np.ndarray:
    from skimage import data

    return data.lfw_subset()[:100]  # the first 100 entries are faces, the rest are not


def face_names() -> list[str]:
    """Every face the generator knows: "astronaut" and "lfw:0" .. "lfw:99"."""
    return ["astronaut"] + [f"lfw:{k}" for k in range(100)]


@functools.lru_cache(maxsize=16)
def load_face(name: str) -> Face:
    """The face photo ``name`` ("astronaut" or "lfw:K") with its landmarks."""
    if name == "astronaut":
        from skimage import data

        img = np.ascontiguousarray(data.astronaut())
        img.setflags(write=False)
        return Face(name, img, dict(_ASTRONAUT), _ASTRONAUT_BOX)
    if isinstance(name, str) and name.startswith("lfw:"):
        try:
            k = int(name[4:])
        except ValueError:
            raise ConfigError(f"face {name!r}: expected lfw:K with K an integer 0..99") from None
        faces = _lfw_faces()
        if not 0 <= k < len(faces):
            raise ConfigError(f"face {name!r}: K must be in 0..{len(faces) - 1}")
        grey = np.clip(np.rint(faces[k] * 255.0), 0, 255).astype(np.uint8)
        img = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        img.setflags(write=False)
        h, w = grey.shape
        lm = {n: (fx * w, fy * h) for n, (fx, fy) in _LFW.items()}
        bx, by, bw, bh = _LFW_BOX
        return Face(name, img, lm, (bx * w, by * h, bw * w, bh * h))
    raise ConfigError(f"unknown face {name!r}; expected 'astronaut' or 'lfw:K' (K = 0..99)")
