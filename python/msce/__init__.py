"""msce: decode-to-token video pipeline and evaluation toolkit for emotion recognition
with vision-language models (the multi-stage context enrichment paper, arXiv 2604.15280).
"""

from __future__ import annotations

from msce._version import __version__

from msce import errors, plan
from msce.errors import *  # noqa: F403  (the error tree: msce.errors.__all__, re-exported below)
from msce.io import (
    FrameBatch,
    FrameFolder,
    VideoMetadata,
    VideoReader,
    cuda_available,
    load,
    load_segments,
    output_cache,
    preprocess,
)
from msce.plan import Plan
from msce.targets import Frames, QwenVL, smart_resize, target_for

# Imported for what they register with the layers below: msce.faces adds crop="face" to
# msce.load/load_segments/preprocess (msce.io knows only boxes).
from msce import faces as _faces  # noqa: E402,F401

__all__ = [
    "__version__",
    "plan",
    "Plan",
    "Frames",
    "QwenVL",
    "smart_resize",
    "target_for",
    "FrameBatch",
    "FrameFolder",
    "VideoMetadata",
    "VideoReader",
    "cuda_available",
    "load",
    "load_segments",
    "output_cache",
    "preprocess",
    *errors.__all__,
]
