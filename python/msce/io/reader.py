"""A video file opened for frame-accurate reading (the native reader: packet-scan index,
keyframe seeking, display orientation)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from msce.errors import ConfigError
from msce.io.jobs import run, threads_arg
from msce.io.metadata import VideoMetadata
from msce.plan import at_indices, at_times
from msce.targets import Frames

__all__ = ["VideoReader", "stream_arg"]


def _check_path(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    raise TypeError(f"video path must be a str or os.PathLike, got {type(path).__name__}")


def stream_arg(stream: int | None) -> int:
    """``stream=`` as the native reader takes it: None -> -1 (FFmpeg's best video stream)."""
    if stream is None:
        return -1
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
        raise ConfigError(f"stream must be None (the best video stream) or a stream index >= 0, as ffprobe "
                          f"numbers streams (got {stream!r})")
    return stream


class VideoReader:
    """A video file opened for frame-accurate reading.

    >>> r = VideoReader("clip.mp4"); r.metadata.num_frames

    Only local regular files are read by default: FIFOs, devices, directories, paths with a
    NUL byte and FFmpeg URLs ("concat:a|b", "http://...", "pipe:") raise DecodeError, so a
    dataset listing cannot make msce block or fetch something else. ``protocols`` opts in to
    URLs: the FFmpeg protocols allowed, e.g. ``("file", "http", "https", "tcp", "tls")``.

    ``stream``: which video stream of a file with several to decode. None (the default) is
    FFmpeg's best video stream (``av_find_best_stream``, what ``ffmpeg -i f`` and PyAV's
    ``container.decode(video=0)`` pick in ordinary files). An int is the container's absolute
    stream index, the ``index`` ffprobe prints and ``-map 0:<i>`` uses (PyAV's
    ``stream.index``), not the position among video streams (``0:v:<i>``): in a file with
    streams [video, audio, video] the second video is ``stream=2``. An index that does not
    exist, is not video (audio, subtitles) or is a cover picture raises DecodeError naming
    the file, the index and the video streams there are. ``metadata.video_streams`` lists
    every video stream and ``metadata.stream`` the one decoded.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, seek_threshold: int = 16,
                 protocols: str | Sequence[str] | None = None, stream: int | None = None):
        from msce._native import C

        self.path = _check_path(path)
        self._threads = threads_arg(threads)
        self._seek_threshold = int(seek_threshold)
        self._protocols = protocols if isinstance(protocols, str) or protocols is None else ",".join(protocols)
        self._native = C.VideoReader(self.path, self._threads, self._seek_threshold, self._protocols or "",
                                     stream_arg(stream))
        self.metadata = VideoMetadata._from_native(self._native.metadata())
        self._held = None  # a decoded clip held for several loads (msce.io.jobs.hold_all)

    def __repr__(self) -> str:
        m = self.metadata
        where = f", stream {m.stream}" if len(m.video_streams) > 1 else ""
        return (f"VideoReader({m.path!r}{where}, {m.codec} {m.width}x{m.height}, {m.num_frames} frames, "
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
