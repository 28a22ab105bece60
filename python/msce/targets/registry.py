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
from msce.targets.smolvlm import SmolVLM
from msce.targets.videomae import VideoMAE

__all__ = ["target_for", "SUPPORTED_MODEL_TYPES", "SUPPORTED_PROCESSORS"]

# model_type (config.json) -> builder from a processor object or config dict
_BY_MODEL_TYPE: dict[str, Callable[[Any], Target]] = {
    "qwen2_vl": lambda p: QwenVL.from_hf(p, "2"),
    "qwen2_5_vl": lambda p: QwenVL.from_hf(p, "2.5"),
    "qwen2_5_omni": lambda p: QwenVL.from_hf(p, "2.5"),  # served by Qwen2VLVideoProcessor
    "qwen2_5_omni_thinker": lambda p: QwenVL.from_hf(p, "2.5"),  # the thinker alone (AutoModelForImageTextToText)
    "qwen3_vl": lambda p: QwenVL.from_hf(p, "3"),
    "qwen3_vl_moe": lambda p: QwenVL.from_hf(p, "3"),  # Qwen3VLVideoProcessor too
    "llava_next_video": LlavaNextVideo.from_hf,
    "video_llava": VideoLlava.from_hf,
    "llava_onevision": LlavaOneVision.from_hf,
    "videomae": VideoMAE.from_hf,
    "internvl": InternVL.from_hf,
    "glm4v": Glm4V.from_hf,
    "glm4v_moe": Glm4V.from_hf,  # GLM-4.5V: Glm4vProcessor and its Glm4vVideoProcessor
    "smolvlm": SmolVLM.from_hf,  # SmolVLM2 checkpoints' config.json model_type
    "smolvlm2": SmolVLM.from_hf,
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
    "SmolVLMVideoProcessor": SmolVLM.from_hf,
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
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedError(f"{path}: cannot read the processor config ({exc})") from None
    if not isinstance(data, dict):
        raise UnsupportedError(f"{path}: cannot read the processor config (a JSON object was expected, "
                               f"got {type(data).__name__})")
    return data


# What a composite processor passes its video processor when it is called, when that is not
# the video processor's own configuration (transformers 5.24 ``ProcessorMixin._merge_kwargs``:
# the class attribute ``videos_kwargs`` and ``valid_processor_kwargs._defaults``). Used for
# model directories when transformers cannot be imported; with transformers the class is read.
_CALL_VIDEO_KWARGS: dict[str, dict[str, Any]] = {
    "Qwen2_5OmniProcessor": {"size": {"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28}},
}
# model_type -> the processor class AutoProcessor picks when the directory names none
_PROCESSOR_BY_MODEL_TYPE = {"qwen2_5_omni": "Qwen2_5OmniProcessor", "qwen2_5_omni_thinker": "Qwen2_5OmniProcessor"}


def _class_video_kwargs(cls: Any) -> dict[str, Any]:
    """A processor class's (or object's) call-time video defaults: ``videos_kwargs``
    overridden by ``valid_processor_kwargs._defaults["videos_kwargs"]``, as HF merges them."""
    kw = dict(getattr(cls, "videos_kwargs", None) or {})
    defaults = getattr(getattr(cls, "valid_processor_kwargs", None), "_defaults", None) or {}
    kw.update(defaults.get("videos_kwargs", {}) or {})
    return {k: v for k, v in kw.items() if v is not None}


def _call_video_kwargs(processor: Any) -> dict[str, Any]:
    """The kwargs a composite HF processor object gives its video processor when called
    without any: its ``_merge_kwargs`` (class/instance ``videos_kwargs``, ``_defaults``,
    tokenizer init kwargs), or the class attributes where it has no such method."""
    merge = getattr(processor, "_merge_kwargs", None)
    if callable(merge):
        tokenizer = getattr(processor, "tokenizer", None)
        try:
            merged = merge(tokenizer_init_kwargs=getattr(tokenizer, "init_kwargs", None) or {})
            return {k: v for k, v in dict(merged.get("videos_kwargs") or {}).items() if v is not None}
        except (TypeError, ValueError, AttributeError, KeyError):
            pass
    return _class_video_kwargs(processor)


def _processor_class_video_kwargs(name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    try:
        import transformers
    except ImportError:
        return dict(_CALL_VIDEO_KWARGS.get(name, {}))
    try:
        cls = getattr(transformers, name, None)
    except Exception:  # noqa: BLE001 - a lazy transformers module that fails to import
        cls = None
    if cls is None:
        return dict(_CALL_VIDEO_KWARGS.get(name, {}))
    return _class_video_kwargs(cls)


class _AsCalled:
    """A video processor as its composite processor calls it: the call's kwargs over the
    processor's attributes (what ``BaseVideoProcessor.preprocess`` does with them)."""

    def __init__(self, processor: Any, kwargs: dict[str, Any]):
        self._processor = processor
        self._kwargs = kwargs

    def __getattr__(self, name: str) -> Any:
        if name in self._kwargs:
            return self._kwargs[name]
        return getattr(self._processor, name)


def _with_call_kwargs(config: dict, kwargs: dict[str, Any]) -> dict:
    """A video processor config dict with a composite processor's call kwargs applied. A
    config's min_pixels / max_pixels were folded into ``size`` by the Qwen video processor's
    ``__init__``, so a call-time ``size`` replaces them too."""
    if not kwargs:
        return config
    out = dict(config)
    if "size" in kwargs:
        for k in ("min_pixels", "max_pixels"):
            if k not in kwargs:
                out.pop(k, None)
    out.update(kwargs)
    return out


_PROCESSOR_FILES = ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json")


def _nested(path: Path, config: dict, key: str) -> dict | None:
    entry = config.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise UnsupportedError(f"{path}: cannot read the processor config ({key!r} is a "
                               f"{type(entry).__name__}, not an object)")
    return entry


def _directory_processor(directory: Path) -> tuple[dict, Path, str | None]:
    """The video (else image) processor config HF loads from a model directory, the file it
    comes from and the composite processor class named there. Order as transformers 5.24's
    ``BaseVideoProcessor.get_video_processor_dict``: ``processor_config.json``'s
    ``video_processor`` entry, ``video_preprocessor_config.json``, ``preprocessor_config.json``;
    then ``processor_config.json``'s ``image_processor`` entry (image-processor families)."""
    paths = {name: directory / name for name in _PROCESSOR_FILES}
    composite = _read_json(paths["processor_config.json"])
    video_file = _read_json(paths["video_preprocessor_config.json"])
    image_file = _read_json(paths["preprocessor_config.json"])
    if composite is None and video_file is None and image_file is None:
        raise UnsupportedError(f"{directory}: no processor config ({', '.join(_PROCESSOR_FILES)}); "
                               "msce.target_for reads the one the Hugging Face processor loads")
    pc = paths["processor_config.json"]
    candidates = [
        (None if composite is None else _nested(pc, composite, "video_processor"), pc),
        (video_file, paths["video_preprocessor_config.json"]),
        (image_file, paths["preprocessor_config.json"]),
        (None if composite is None else _nested(pc, composite, "image_processor"), pc),
    ]
    for config, path in candidates:
        if config is not None:
            break
    else:
        raise UnsupportedError(f"{pc}: cannot read the processor config (no 'video_processor' or "
                               "'image_processor' entry, and no video_preprocessor_config.json or "
                               "preprocessor_config.json beside it)")
    name = None
    for source in (composite, config, video_file, image_file,
                   _read_json(directory / "tokenizer_config.json")):
        if source and isinstance(source.get("processor_class"), str):
            name = source["processor_class"]
            break
    return config, path, name


def _from_directory(directory: Path) -> Target:
    config = _read_json(directory / "config.json") or {}
    model_type = config.get("model_type")
    proc, path, processor_class = _directory_processor(directory)
    processor_class = processor_class or _PROCESSOR_BY_MODEL_TYPE.get(model_type)
    proc = _with_call_kwargs(proc, _processor_class_video_kwargs(processor_class))
    cls = proc.get("video_processor_type") or proc.get("image_processor_type")
    if model_type in _BY_MODEL_TYPE:
        build = _BY_MODEL_TYPE[model_type]
    elif cls in _BY_CLASS:
        build = _BY_CLASS[cls]
    else:
        raise _unsupported(f"{directory} (model_type {model_type!r}, processor {cls!r} in {path.name})")
    try:
        return build(proc)
    except UnsupportedError as exc:
        raise UnsupportedError(f"{path}: {exc}") from None


def target_for(x: Any) -> Target:
    """The :class:`~msce.targets.Target` that reproduces a Hugging Face processor's video path.

    ``x``: a HF processor (its ``video_processor`` as the processor calls it: with the
    composite's call-time video kwargs, e.g. ``Qwen2_5OmniProcessor``'s own size) or a
    video/image processor object; a local model directory (the processor config HF loads:
    ``processor_config.json``'s ``video_processor`` entry, ``video_preprocessor_config.json``,
    ``preprocessor_config.json``, then ``processor_config.json``'s ``image_processor``;
    ``config.json``'s ``model_type``; a directory without a readable one raises
    UnsupportedError naming the file); or a model type name
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
        name = type(video).__name__
        if name not in _BY_CLASS:
            raise _unsupported(f"{name} objects")
        # what the composite passes its video processor when called (Qwen2_5OmniProcessor: size)
        kwargs = _call_video_kwargs(x)
        return _BY_CLASS[name](_AsCalled(video, kwargs) if kwargs else video)
    name = type(x).__name__
    if name in _BY_CLASS:
        return _BY_CLASS[name](x)
    raise _unsupported(f"{name} objects")
