"""Output targets: the tensor layout a model consumes.

:class:`Target` (``base.py``) is the interface the rest of msce uses. One module per
family: ``qwen.py`` (:class:`QwenVL`: Qwen2-VL, Qwen2.5-VL, Qwen2.5-Omni, Qwen3-VL patches),
``frames.py`` (:class:`Frames`: plain frames), ``resize_crop.py`` (:class:`ResizeCrop`: HF's
CLIP-style resize + center crop + normalize) with ``llava.py`` (LLaVA-NeXT-Video,
Video-LLaVA, LLaVA-OneVision), ``internvl.py``, ``videomae.py``, ``glm4v.py`` (GLM-4.1V) and
``smolvlm.py`` (SmolVLM2: two chained Lanczos resizes); ``video_or_image.py`` (:class:`VideoOrImage`:
a family's video path for clips, its image path for single frames); ``registry.py`` maps HF
processors, model directories and model types to them (:func:`target_for`).
"""

from __future__ import annotations

from msce.targets.base import Allocation, Target
from msce.targets.frames import Frames
from msce.targets.glm4v import Glm4V
from msce.targets.internvl import InternVL
from msce.targets.llava import LlavaNextVideo, LlavaOneVision, VideoLlava
from msce.targets.qwen import QwenVL, patchify, smart_resize, smart_resize_video
from msce.targets.registry import SUPPORTED_MODEL_TYPES, target_for
from msce.targets.resize_crop import ResizeCrop
from msce.targets.smolvlm import SmolVLM
from msce.targets.video_or_image import VideoOrImage
from msce.targets.videomae import VideoMAE

__all__ = ["Target", "Allocation", "QwenVL", "Frames", "ResizeCrop", "LlavaNextVideo", "VideoLlava",
           "LlavaOneVision", "InternVL", "VideoMAE", "Glm4V", "SmolVLM", "VideoOrImage", "smart_resize",
           "smart_resize_video",
           "patchify", "target_for", "SUPPORTED_MODEL_TYPES"]
