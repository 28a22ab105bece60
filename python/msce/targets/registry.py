"""``target_for``: the msce target that reproduces a Hugging Face processor's video path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from msce.errors import UnsupportedError
from msce.targets.base import Target
from msce.targets.glm4v import Glm4V
from msce.targets.internvl import InternVL
from msce.targets.llava import LlavaNextVideo, LlavaOneVision, VideoLlava
from msce.targets.qwen import QwenVL
from msce.targets.videomae import VideoMAE

__all__ = ["target_for", "SUPPORTED_MODEL_TYPES", "SUPPORTED_PROCESSORS"]

# model_type (config.json) -> builder from a processor object or config dict
_BY_MODEL_TYPE: dict[str, Callable[[Any], Target]] = {
    "qwen2_vl": lambda p: QwenVL.from_hf(p, "2"),
    "qwen2_5_vl": lambda p: QwenVL.from_hf(p, "2.5"),
    "qwen2_5_omni": lambda p: QwenVL.from_hf(p, "2.5"),  # served by Qwen2VLVideoProcessor
    "qwen3_vl": lambda p: QwenVL.from_hf(p, "3"),
    "llava_next_video": LlavaNextVideo.from_hf,
    "video_llava": VideoLlava.from_hf,
    "llava_onevision": LlavaOneVision.from_hf,
    "videomae": VideoMAE.from_hf,
    "internvl": InternVL.from_hf,
    "glm4v": Glm4V.from_hf,
}
# HF processor class name -> builder
_BY_CLASS: dict[str, Callable[[Any], Target]] = {
    "Qwen2VLVideoProcessor": lambda p: QwenVL.from_hf(p, "2.5"),
    "Qwen3VLVideoProcessor": lambda p: QwenVL.from_hf(p, "3"),
    "LlavaNextVideoVideoProcessor": LlavaNextVideo.from_hf,
    "VideoLlavaVideoProcessor": VideoLlava.from_hf,
    "LlavaOnevisionVideoProcessor": LlavaOneVision.from_hf,
    "VideoMAEVideoProcessor": VideoMAE.from_hf,
    "VideoMAEImageProcessor": VideoMAE.from_hf,
    "InternVLVideoProcessor": InternVL.from_hf,
    "Glm4vVideoProcessor": Glm4V.from_hf,
}
SUPPORTED_MODEL_TYPES = tuple(sorted(_BY_MODEL_TYPE))
SUPPORTED_PROCESSORS = tuple(sorted(_BY_CLASS))


def _unsupported(what: str) -> UnsupportedError:
    return UnsupportedError(f"no msce target for {what}; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}; "
                            f"processor classes: {', '.join(SUPPORTED_PROCESSORS)}")


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UnsupportedError(f"{path}: cannot read the processor config ({exc})") from None


def _from_directory(directory: Path) -> Target:
    config = _read_json(directory / "config.json") or {}
    proc = _read_json(directory / "video_preprocessor_config.json")
    if proc is None:
        proc = _read_json(directory / "preprocessor_config.json") or {}
    model_type = config.get("model_type")
    cls = proc.get("video_processor_type") or proc.get("image_processor_type")
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type](proc)
    if cls in _BY_CLASS:
        return _BY_CLASS[cls](proc)
    raise _unsupported(f"{directory} (model_type {model_type!r}, processor {cls!r})")


def target_for(x: Any) -> Target:
    """The :class:`~msce.targets.Target` that reproduces a Hugging Face processor's video path.

    ``x``: a HF processor (its ``video_processor`` is used) or video/image processor object;
    a local model directory (``video_preprocessor_config.json`` or
    ``preprocessor_config.json``, and ``config.json``'s ``model_type``); or a model type name
    ("qwen2_5_vl", "llava_next_video", ...), which gives the processor class's defaults.
    The target carries the processor's configured sizes, crop, resample filter, rescale,
    mean/std and patching; ``msce.preprocess(frames, target).to_hf()`` then holds the
    tensors the processor returns for ``videos=[frames]``. Anything else raises
    UnsupportedError naming what is supported.
    """
    if isinstance(x, Target):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if path.is_dir():
            return _from_directory(path)
        key = str(x).lower().replace("-", "_")
        if key in _BY_MODEL_TYPE:
            return _BY_MODEL_TYPE[key]({})
        raise _unsupported(f"{str(x)!r} (not a model type or a local model directory)")
    video = getattr(x, "video_processor", None)
    if video is not None and type(x).__name__ not in _BY_CLASS:
        x = video
    name = type(x).__name__
    if name in _BY_CLASS:
        return _BY_CLASS[name](x)
    raise _unsupported(f"{name} objects")
