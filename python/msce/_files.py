"""Frame-folder listing shared by the plans (content digests), the reader of image
sequences (``msce.io.folder``) and the dataset loaders: which files of a folder are frames,
and in which order."""

from __future__ import annotations

import os
import re
from pathlib import Path

from msce.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "frame_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


_NUM_RE = re.compile(r"(\d+)")


def _natural_key(name: str) -> tuple:
    """Sort key treating digit runs as numbers: ``2.jpg`` before ``10.jpg``."""
    parts = _NUM_RE.split(name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in parts)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """Images of a frame folder in frame order.

    Files with an image extension (:data:`IMAGE_EXTENSIONS`, case-insensitive) are
    sorted by *natural* order, so ``img_2.jpg`` precedes ``img_10.jpg`` whether or not
    the names are zero-padded. Hidden files are ignored. Raises DatasetError when the
    folder is missing or has no images.
    """
    folder = Path(folder)
    try:
        if not folder.is_dir():
            raise DatasetError(f"frame folder not found: {folder}")
        with os.scandir(folder) as entries:
            files = [
                Path(e.path)
                for e in entries
                if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
                and e.is_file()
            ]
    except OSError as exc:  # a name too long, no permission, ...: named, not an OSError
        raise DatasetError(f"frame folder cannot be read: {folder}: {exc.strerror or exc}") from None
    if not files:
        raise DatasetError(f"frame folder has no images ({', '.join(IMAGE_EXTENSIONS)}): {folder}")
    files.sort(key=lambda p: _natural_key(p.name))
    return files
