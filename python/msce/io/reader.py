"""A video file opened for frame-accurate reading (the native reader: packet-scan index,
keyframe seeking, display orientation)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from msce.io.jobs import run, threads_arg
from msce.io.metadata import VideoMetadata
from msce.plan import at_indices, at_times
from msce.targets import Frames

__all__ = ["VideoReader"]


def _check_path(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    raise TypeError(f"video path must be a str or os.PathLike, got {type(path).__name__}")


class VideoReader:
    """A video file opened for frame-accurate reading.

    >>> r = VideoReader("clip.mp4"); r.metadata.num_frames

    Only local regular files are read by default: FIFOs, devices, directories, paths with a
    NUL byte and FFmpeg URLs ("concat:a|b", "http://...", "pipe:") raise DecodeError, so a
    dataset listing cannot make msce block or fetch something else. ``protocols`` opts in to
    URLs: the FFmpeg protocols allowed, e.g. ``("file", "http", "https", "tcp", "tls")``.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, seek_threshold: int = 16,
                 protocols: str | Sequence[str] | None = None):
        from msce._native import C

        self.path = _check_path(path)
        self._threads = threads_arg(threads)
        self._seek_threshold = int(seek_threshold)
        self._protocols = protocols if isinstance(protocols, str) or protocols is None else ",".join(protocols)
        self._native = C.VideoReader(self.path, self._threads, self._seek_threshold, self._protocols or "")
        self.metadata = VideoMetadata._from_native(self._native.metadata())

    def __repr__(self) -> str:
        m = self.metadata
        return (f"VideoReader({m.path!r}, {m.codec} {m.width}x{m.height}, {m.num_frames} frames, "
                f"{m.average_fps:.3f} fps)")

    @property
    def last_stats(self) -> dict:
        return dict(self._native.last_stats())

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """RGB frames at these indices as uint8 (N, H, W, 3), display orientation."""
        plan = at_indices(indices).resolve(self.metadata)
        batch = run(self, plan, Frames(layout="NHWC"), None, self._threads, pin_memory=False)
        return batch.data.numpy()

    def get_frames_at(self, times: Sequence[float]) -> np.ndarray:
        """RGB frames nearest to these timestamps (seconds) as uint8 (N, H, W, 3)."""
        plan = at_times(times).resolve(self.metadata)
        return run(self, plan, Frames(layout="NHWC"), None, self._threads, pin_memory=False).data.numpy()
