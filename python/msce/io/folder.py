"""Frame folders (a directory of images, one per frame) as an input to the core.

Datasets such as DFEW (``Clip/jpg_256/<id>/``) and MAFW (``data/frames/<id>/``) ship
clips as extracted frames. A folder is read as an image sequence at a caller-given
frame rate (the images carry none): frame i is the i-th image in natural name order,
timestamp i / fps. Only the planned images are decoded (Pillow), then the native
transform writes them into the target layout exactly as for a video.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from msce.errors import DecodeError, DatasetError

__all__ = ["FrameFolder", "is_frame_folder"]

DEFAULT_FOLDER_FPS = 25.0


def is_frame_folder(path: str | os.PathLike) -> bool:
    """True for a directory that holds at least one image."""
    from msce._files import frame_files

    try:
        if not Path(path).is_dir():
            return False
    except OSError as exc:  # ENAMETOOLONG, EACCES on a parent, ... : the path cannot be read at all
        raise DecodeError(f"{os.fspath(path)}: cannot open: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL byte
        raise DecodeError(f"{os.fspath(path)!r}: not a usable path: {exc}") from None
    try:
        frame_files(path)
    except DatasetError:
        return False
    return True


class FrameFolder:
    """A directory of frame images read as a clip at ``fps`` frames per second."""

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FOLDER_FPS):
        from msce._files import frame_files
        from msce.io.metadata import VideoMetadata

        self.path = os.fspath(path)
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise DecodeError(f"{self.path}: frame folder fps must be positive (got {fps!r})")
        try:
            self.files = frame_files(self.path)
        except DatasetError as exc:
            raise DecodeError(str(exc)) from None
        first = self._read(0)
        h, w = first.shape[:2]
        self.metadata = VideoMetadata.synthetic(len(self.files), float(fps), h, w, path=self.path)
        self.metadata = _replace(self.metadata, container="image sequence", codec=_codec(self.files[0]))

    def __repr__(self) -> str:
        m = self.metadata
        return f"FrameFolder({self.path!r}, {m.num_frames} frames {m.width}x{m.height} at {m.average_fps:g} fps)"

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.files[i]
        try:
            with Image.open(path) as im:
                w, h = im.size
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and w * h > limit:
                    raise DecodeError(f"{path}: image header claims {w}x{h} = {w * h} pixels, over the "
                                      f"{limit}-pixel limit (PIL.Image.MAX_IMAGE_PIXELS); the file is corrupt "
                                      "or not a video frame")
                return np.asarray(im.convert("RGB"))
        except Image.DecompressionBombError as exc:  # header over 2x the limit, refused by Image.open
            raise DecodeError(f"{path}: image too large to decode: {exc}") from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DecodeError(f"{path}: cannot decode image: {exc}") from None

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """RGB uint8 (N, H, W, 3) for these frame indices (each decoded once)."""
        n = len(self.files)
        wanted = sorted({int(i) for i in indices})
        for i in wanted:
            if i < 0 or i >= n:
                from msce.errors import PlanError

                raise PlanError(f"{self.path}: frame index {i} is past the clip end ({n} frames)")
        h, w = self.metadata.height, self.metadata.width
        cache = {}
        for i in wanted:
            img = self._read(i)
            if img.shape[:2] != (h, w):
                raise DecodeError(f"{self.files[i]}: image is {img.shape[1]}x{img.shape[0]}, the folder's first "
                                  f"frame is {w}x{h}")
            cache[i] = img
        return np.stack([cache[int(i)] for i in indices])


def _codec(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "image"


def _replace(meta, **kw):
    import dataclasses

    return dataclasses.replace(meta, **kw)
