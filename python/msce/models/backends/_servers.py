"""How the openai backend renders frames for each kind of OpenAI-compatible server.

:class:`ServerOptions` holds the options that decide what a server receives (the
``server`` preset, ``frames``, ``image_format``, ``server_resize``, ``resize_factor``,
``reasoning_effort``); :func:`server_options` resolves a preset's defaults and validates
every value with a :class:`~msce.errors.ConfigError` naming the option.
:func:`content_parts` turns one request part into chat-message content parts and
:func:`request_extras` computes the extra top-level JSON fields of one request.

The presets (docs/api-models.md explains each choice and its source):

* ``generic``: any OpenAI-compatible server; frames as ``image_url`` parts, JPEG.
* ``vllm``: frames as PNG ``image_url`` parts (exact pixels), or with ``frames="video"``
  one ``video_url`` part whose URL is ``data:video/jpeg;base64,<frame 1>,<frame 2>,...``
  (vLLM's frame-sequence form: it base64-decodes each comma-separated piece and opens it
  with PIL, which reads PNG as well as JPEG). With ``server_resize="off"`` each request
  carries ``mm_processor_kwargs`` with ``min_pixels``/``max_pixels`` equal to the
  smallest and largest frame area of the request, so the Qwen-VL processor's
  ``smart_resize`` keeps every frame whose sides are multiples of ``resize_factor``.
  Video parts add ``do_sample_frames: false`` and the frames' sampling rate as ``fps``
  (and ``media_io_kwargs.video`` ``{"num_frames": -1, "fps": ...}``: keep every frame,
  and the metadata of a clip sampled at that rate).
* ``sglang``: PNG ``image_url`` parts; SGLang takes no per-request processor options, its
  own Qwen-VL resize (factor 28, at least 4*28*28 pixels) keeps frames whose sides are
  multiples of 28.
* ``gemini``: Gemini's OpenAI-compatible endpoint; JPEG ``image_url`` parts, no ``seed``
  field (the endpoint rejects it), ``reasoning_effort="none"`` (no thinking tokens: on
  Gemini 2.5 Flash they count against ``max_tokens`` and can leave the answer empty),
  key from ``GEMINI_API_KEY``; its base URL is :data:`GEMINI_BASE_URL`.
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from msce.errors import ConfigError
from msce.models.backends.base import is_frames, is_image

__all__ = ["SERVERS", "GEMINI_BASE_URL", "ServerOptions", "server_options", "frame_array", "encode_image",
           "content_parts", "request_extras", "check_frame_sizes"]

SERVERS = ("generic", "vllm", "sglang", "gemini")
FRAME_MODES = ("images", "video")
IMAGE_FORMATS = ("jpeg", "png")
RESIZE_MODES = ("off", "server")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "server")
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}
#: vLLM's frame-sequence media type: comma-separated base64 images, each opened with PIL.
VIDEO_FRAMES_MIME = "video/jpeg"


@dataclass(frozen=True)
class _Preset:
    api_key_env: str
    image_format: str
    frames: tuple[str, ...]  # allowed frame modes, the first is the default
    server_resize: tuple[str, ...]  # allowed, the first is the default
    resize_factor: int | None
    reasoning_effort: str | None
    send_seed: bool


_PRESETS = {
    "generic": _Preset("OPENAI_API_KEY", "jpeg", ("images",), ("server",), None, None, True),
    "vllm": _Preset("OPENAI_API_KEY", "png", ("images", "video"), ("off", "server"), 28, None, True),
    "sglang": _Preset("OPENAI_API_KEY", "png", ("images",), ("server",), 28, None, True),
    "gemini": _Preset("GEMINI_API_KEY", "jpeg", ("images",), ("server",), None, "none", False),
}


@dataclass(frozen=True)
class ServerOptions:
    """The resolved request-shaping options of one backend (see the module docstring)."""

    server: str
    frames: str
    image_format: str
    jpeg_quality: int
    server_resize: str
    resize_factor: int | None
    reasoning_effort: str | None
    send_seed: bool
    api_key_env: str

    def fingerprint(self) -> dict:
        """The options that change what the server sees, for cache keys; the generic
        preset's defaults are left out so caches made before presets existed still hit."""
        generic = server_options()
        skip = ("api_key_env", "send_seed", "jpeg_quality")  # jpeg_quality: its own key
        return {k: v for k, v in asdict(self).items() if k not in skip and v != getattr(generic, k)}


def _choice(value: Any, allowed: Sequence[str], key: str, why: str = "") -> str:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, allowed))}{why}, got {value!r}")
    return value


def server_options(server: str = "generic", frames: str | None = None, image_format: str | None = None,
                   jpeg_quality: int = 90, server_resize: str | None = None, resize_factor: int | None = None,
                   reasoning_effort: str | None = None, api_key_env: str | None = None) -> ServerOptions:
    """Fill in the ``server`` preset's defaults (every None) and validate every option.

    ``resize_factor=0`` turns the frame-size check off; ``reasoning_effort="server"``
    sends no ``reasoning_effort`` (the server's default applies). Raises ConfigError
    naming the option."""
    server = _choice(server, SERVERS, "server")
    preset = _PRESETS[server]
    frames = _choice(preset.frames[0] if frames is None else frames, preset.frames, "frames",
                     "" if server == "vllm" else f" with server={server!r} (a video part is vLLM's format: "
                     f"use server='vllm', or frames='images')")
    image_format = _choice(preset.image_format if image_format is None else str(image_format).lower(),
                           IMAGE_FORMATS, "image_format")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality must be an int in 1..100, got {jpeg_quality!r}")
    server_resize = _choice(preset.server_resize[0] if server_resize is None else server_resize,
                            preset.server_resize, "server_resize",
                            "" if server == "vllm" else f" with server={server!r} (only vLLM takes per-request "
                            f"processor options)")
    if resize_factor is None:
        resize_factor = preset.resize_factor
    elif isinstance(resize_factor, bool) or not isinstance(resize_factor, int) or resize_factor < 0:
        raise ConfigError(f"resize_factor must be an int >= 0 (28 for Qwen2/2.5-VL, 32 for Qwen3-VL, 0: no check), "
                          f"got {resize_factor!r}")
    resize_factor = resize_factor or None
    if reasoning_effort is None:
        reasoning_effort = preset.reasoning_effort
    else:
        _choice(reasoning_effort, REASONING_EFFORTS, "reasoning_effort")
        reasoning_effort = None if reasoning_effort == "server" else reasoning_effort
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise ConfigError(f"api_key_env must name an environment variable, got {api_key_env!r}")
    return ServerOptions(server, frames, image_format, int(jpeg_quality), server_resize, resize_factor,
                         reasoning_effort, preset.send_seed, api_key_env or preset.api_key_env)


def frame_array(frame: Any):
    """One frame as a contiguous (H, W, 3) uint8 NumPy array (ConfigError otherwise)."""
    import numpy as np

    if hasattr(frame, "detach"):
        frame = frame.detach().to("cpu").numpy()
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigError(
            f"the openai backend needs uint8 RGB frames (H, W, 3); got dtype {arr.dtype} shape {arr.shape}. "
            "Load frames with msce.Frames(layout='NHWC', dtype='uint8')."
        )
    return np.ascontiguousarray(arr)


def encode_image(frame: Any, image_format: str = "jpeg", quality: int = 90) -> str:
    """Base64 of one (H, W, 3) uint8 RGB frame as a JPEG (PIL, ``quality``, 4:2:0
    chroma) or a PNG (lossless: decodes to exactly these pixels)."""
    from PIL import Image

    image = Image.fromarray(frame_array(frame), mode="RGB")
    buf = io.BytesIO()
    if image_format == "png":
        image.save(buf, format="PNG")
    else:
        image.save(buf, format="JPEG", quality=int(quality))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def data_url(frame: Any, image_format: str = "jpeg", quality: int = 90) -> str:
    return f"data:{_MIME[image_format]};base64,{encode_image(frame, image_format, quality)}"


def _sampled_fps(part: Any) -> float | None:
    """Frames per second of a frame batch: (n - 1) over the span of its timestamps (the
    mean sampling rate; a shuffled batch has the same span). None without a span."""
    stamps = [float(t) for t in getattr(part, "timestamps", ()) or ()]
    if len(stamps) < 2 or max(stamps) <= min(stamps):
        return None
    return (len(stamps) - 1) / (max(stamps) - min(stamps))


def content_parts(part: Any, opts: ServerOptions) -> list[dict]:
    """Chat content parts for one request part (text, an image, or a frame batch)."""
    if isinstance(part, str):
        return [{"type": "text", "text": part}]
    if opts.frames == "video" and is_frames(part) and not is_image(part):
        pieces = ",".join(encode_image(f, opts.image_format, opts.jpeg_quality) for f in part.data)
        return [{"type": "video_url", "video_url": {"url": f"data:{VIDEO_FRAMES_MIME};base64,{pieces}"}}]
    return [{"type": "image_url", "image_url": {"url": data_url(f, opts.image_format, opts.jpeg_quality)}}
            for f in part.data]


def check_frame_sizes(request: Sequence[Any], opts: ServerOptions) -> None:
    """ConfigError when a frame's sides are not multiples of ``resize_factor``: the
    server's own resize would then change the pixels msce computed."""
    if opts.resize_factor is None or opts.server not in ("vllm", "sglang"):
        return
    f = opts.resize_factor
    for part in request:
        if is_frames(part):
            h, w = (int(s) for s in frame_array(part.data[0]).shape[:2])
            if h % f or w % f:
                raise ConfigError(
                    f"frames of {h}x{w} pixels are not multiples of resize_factor={f}: the {opts.server} server's "
                    f"processor would resize them. Choose frame_size with both sides multiples of {f} (e.g. "
                    f"[{max(f, round(h / f) * f)}, {max(f, round(w / f) * f)}]), or pass resize_factor=0 to "
                    f"accept the server's resize")


def request_extras(request: Sequence[Any], opts: ServerOptions) -> dict:
    """The extra top-level JSON fields of one request (``mm_processor_kwargs``,
    ``media_io_kwargs``, ``reasoning_effort``)."""
    extras: dict[str, Any] = {}
    if opts.reasoning_effort is not None:
        extras["reasoning_effort"] = opts.reasoning_effort
    if opts.server != "vllm":
        return extras
    batches = [p for p in request if is_frames(p)]
    processor: dict[str, Any] = {}
    if opts.server_resize == "off" and batches:
        areas = [int(s[0]) * int(s[1]) for s in (frame_array(b.data[0]).shape[:2] for b in batches)]
        processor.update(min_pixels=min(areas), max_pixels=max(areas))
    videos = [b for b in batches if opts.frames == "video" and not is_image(b)]
    if videos:
        processor["do_sample_frames"] = False
        rates = [_sampled_fps(v) for v in videos]
        video_io: dict[str, Any] = {"num_frames": -1}
        if all(r is not None for r in rates):
            if max(rates) - min(rates) <= 1e-9 * max(rates):
                processor["fps"] = rates[0]
                video_io["fps"] = rates[0]
            else:
                processor["fps"] = rates
        extras["media_io_kwargs"] = {"video": video_io}
    if processor:
        extras["mm_processor_kwargs"] = processor
    return extras
