"""What the reader found in a media file (or frames in memory): sizes, codec, colour tags,
the true frame count and every frame's timestamp."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["VideoMetadata", "VideoStreamInfo"]


@dataclass(frozen=True)
class VideoStreamInfo:
    """One video stream of a file as its container header describes it (no packets read;
    the decoded stream's exact frame count and timing are :class:`VideoMetadata`'s own
    fields). ``index`` is the container's stream index (ffprobe's ``index``, the ``stream=``
    msce takes); ``width``/``height`` the coded size; ``fps`` the header's average (else
    base) rate, 0.0 when absent; ``duration`` seconds and ``frames`` the header's values,
    -1 when absent; ``default`` and ``attached_pic`` the dispositions (a cover picture is
    never decoded as video)."""

    index: int
    codec: str
    width: int
    height: int
    rotation: int
    fps: float
    duration: float
    frames: int
    default: bool
    attached_pic: bool


@dataclass(frozen=True)
class VideoMetadata:
    """What the reader found in a file. ``width``/``height`` are the display size (after
    rotation); ``num_frames`` is the true count from a packet scan; ``timestamps`` are the
    presentation times of every frame, seconds from the first. ``stream`` is the
    container's index of the decoded video stream (-1 for frames not read from a file) and
    ``video_streams`` every video stream of the file."""

    path: str
    container: str
    codec: str
    pixel_format: str
    bit_depth: int
    coded_width: int
    coded_height: int
    width: int
    height: int
    rotation: int
    num_frames: int
    header_num_frames: int
    duration: float
    average_fps: float
    variable_frame_rate: bool
    color_space: str
    color_range: str
    timestamps: tuple[float, ...] = field(repr=False)
    stream: int = -1
    video_streams: tuple[VideoStreamInfo, ...] = ()

    @classmethod
    def _from_native(cls, d: dict) -> VideoMetadata:
        d = dict(d)
        d.pop("color_matrix", None)
        d.pop("full_range", None)
        d["timestamps"] = tuple(float(t) for t in np.asarray(d["timestamps"]))
        d["video_streams"] = tuple(VideoStreamInfo(**dict(s)) for s in d.get("video_streams", ()))
        return cls(**d)

    @classmethod
    def synthetic(cls, num_frames: int, fps: float, height: int, width: int, path: str = "<frames>") -> VideoMetadata:
        """Metadata for frames already in memory (constant rate)."""
        ts = tuple(i / fps for i in range(num_frames))
        return cls(path, "memory", "rawvideo", "rgb24", 8, width, height, width, height, 0, num_frames, num_frames,
                   num_frames / fps, fps, False, "unknown", "pc", ts)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "timestamps"}
        d["video_streams"] = [asdict(s) for s in self.video_streams]
        return d
