"""The visual-prompt interface, :class:`FrameTransform`, and the checks its variants share
(frames, parameters, the OpenCV import, face-finding options).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from msce._validate import count, number, rgb_frames
from msce.errors import ConfigError, FaceError
from msce.models.visual_prompts.face_info import FaceInfo, as_face_info

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop


# ---- checks ------------------------------------------------------------------------------------
def _check_frames(frames: Any) -> np.ndarray:
    arr = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    return np.ascontiguousarray(rgb_frames(arr, np.uint8, "visual prompt frames"))


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
        return _face_options(type(self).__name__, "face_options", opts)

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


def _face_options(cls: str, name: str, v: Any) -> Any:
    """A FaceCrop from None (the defaults), a FaceCrop or its to_dict()."""
    from msce.faces import FaceCrop

    if v is None:
        return FaceCrop()
    if isinstance(v, FaceCrop):
        return v
    if isinstance(v, Mapping):
        return FaceCrop(**dict(v))
    raise ConfigError(f"{cls}.{name} must be a msce.faces.FaceCrop, its to_dict(), or None "
                      f"(got {type(v).__name__})")


# A field check: called as check(class name, field name, value), it raises ConfigError naming
# Class.field or returns the value to keep (a float for a number, a tuple for a colour, ...).
Check = Callable[[str, str, Any], Any]


def _num(**bounds: Any) -> Check:
    """A number within ``bounds`` (those of :func:`msce._validate.number`)."""
    return lambda c, name, v: number(c, name, v, **bounds)


def _int(**bounds: Any) -> Check:
    """An int within ``bounds`` (those of :func:`msce._validate.count`)."""
    return lambda c, name, v: count(c, name, v, **bounds)


def _one_of(*allowed: str) -> Check:
    return lambda c, name, v: _choice(c, name, v, allowed)


def _flag(cls: str, name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{cls}.{name} must be a bool (got {v!r})")
    return v


def _check_fields(obj: Any, **checks: Check) -> None:
    """Check the named fields of a frozen variant, each with its check, and keep what the
    checks return."""
    c = type(obj).__name__
    for name, check in checks.items():
        object.__setattr__(obj, name, check(c, name, getattr(obj, name)))
