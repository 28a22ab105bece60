"""Reading media into tensors: video metadata and the reader, frame folders, and the
``load``/``load_segments``/``preprocess`` entry points (CPU, CUDA and DALI paths).

Layer: above ``msce.targets`` and ``msce.plan``; below faces/motion, models, eval, train
and the CLI (see docs/architecture.md).
"""

from __future__ import annotations

from msce.io.folder import FrameFolder, is_frame_folder
from msce.io.jobs import output_cache
from msce.io.video import FrameBatch, VideoMetadata, VideoReader, cuda_available, load, load_segments, preprocess

__all__ = ["FrameBatch", "FrameFolder", "VideoMetadata", "VideoReader", "cuda_available", "is_frame_folder",
           "load", "load_segments", "output_cache", "preprocess"]
