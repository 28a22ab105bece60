"""msce: decode-to-token video pipeline and evaluation toolkit for emotion recognition
with vision-language models (the multi-stage context enrichment paper, arXiv 2604.15280).
"""

from __future__ import annotations

__version__ = "0.1.0"

from msce import plan
from msce.errors import (
    BackendError,
    ConfigError,
    CudaError,
    DatasetError,
    DecodeError,
    FaceError,
    MsceError,
    PlanError,
    TransformError,
    UnsupportedError,
)
from msce._folder import FrameFolder
from msce.plan import Plan
from msce.targets import Frames, QwenVL, smart_resize
from msce.video import (
    FrameBatch,
    VideoMetadata,
    VideoReader,
    cuda_available,
    load,
    load_segments,
    preprocess,
)

__all__ = [
    "__version__",
    "plan",
    "Plan",
    "Frames",
    "QwenVL",
    "smart_resize",
    "FrameBatch",
    "FrameFolder",
    "VideoMetadata",
    "VideoReader",
    "cuda_available",
    "load",
    "load_segments",
    "preprocess",
    "MsceError",
    "DecodeError",
    "FaceError",
    "UnsupportedError",
    "PlanError",
    "TransformError",
    "CudaError",
    "BackendError",
    "DatasetError",
    "ConfigError",
]
