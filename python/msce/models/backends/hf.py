"""Hugging Face transformers backend: local weights, msce's token-ready tensors.

"tokens" mode (the default for every family msce has exact targets for: Qwen2-VL,
Qwen2.5-VL, Qwen3-VL, Qwen2.5-Omni's thinker, LLaVA-NeXT-Video, Video-LLaVA,
LLaVA-OneVision, InternVL 3/3.5, GLM-4.1V, SmolVLM2) bypasses HF's image and video preprocessing:

1. The conversation (one user turn whose content interleaves the request's text and
   visual parts) is rendered with the processor's chat template, which writes one image
   or video placeholder per visual part.
2. The backend's target (:meth:`TransformersBackend.target`) loaded every part: the
   family's exact video target for clips and its image target for one-frame parts.
3. The family module (``_qwen_family``, ``_llava_family``, ``_internvl_family``,
   ``_glm4v_family``, ``_smolvlm_family``; chosen by ``config.model_type``) expands each placeholder to the
   family's token sequence and lays out the pixel tensors, grids and extra inputs exactly
   as the family's HF processor returns them for the same text and frames.

Frame times: a video is presented on the chronological timeline of its frames (the
sorted frame timestamps). For ordinary plans this is the frames' own times; a shuffled
plan permutes the content but not the clock, as if the permuted frames had been
re-encoded as a new video, which is the paper's frame-shuffle probe.

Other models ("processor" mode) get uint8 frames through their own HF processor with
frame sampling disabled; msce still chooses the frames.

All requests of one :meth:`TransformersBackend.generate` call go through as few batched
``model.generate`` calls as their tensors allow (left padding; LLaVA families batch videos
of one shape together), greedy unless ``temperature > 0``; only the new tokens are decoded.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Sequence

from msce.models.backends._family import TOKEN_MODEL_TYPES, family_for, token_id, uint8_frames
from msce.models.backends._qwen_family import QWEN_VERSIONS, expand_placeholders, qwen3_frame_times
from msce.models.backends._weights import weights_config
from msce.models.backends.base import GenerationParams, Request, check_request, is_frames, is_image
from msce.errors import BackendError, ConfigError, UnsupportedError
from msce.targets import Frames

__all__ = ["TransformersBackend", "expand_placeholders", "qwen3_frame_times", "QWEN_VERSIONS", "TOKEN_MODEL_TYPES"]


# Files besides the weights that change what a checkpoint answers: its configs, tokenizer
# and chat template, and the processors' settings.
_DIGESTED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "chat_template.json", "chat_template.jinja",
                   "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
                   "adapter_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_file_digests: dict[tuple[str, int, int], str] = {}
_file_digests_lock = threading.Lock()


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's content, memoized by (resolved path, size, mtime_ns): an
    unchanged file is read once per process, a rewritten one again."""
    real = path.resolve()  # hub caches link snapshot files to blobs
    st = real.stat()
    memo_key = (str(real), st.st_size, st.st_mtime_ns)
    with _file_digests_lock:
        known = _file_digests.get(memo_key)
    if known is not None:
        return known
    h = hashlib.sha256()
    with real.open("rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _file_digests_lock:
        _file_digests[memo_key] = digest
    return digest


def _weights_identity(model_name: str, revision: str | None, config: Any) -> tuple[Path | None, str]:
    """(local model directory or None, weights identity): the local files' digest, else the
    hub revision and the config's commit hash."""
    model_dir = _resolved_model_dir(model_name, revision)
    if model_dir is not None:
        return model_dir, _weights_digest(model_dir)
    return None, f"hub:{revision or 'main'}:{getattr(config, '_commit_hash', None)}"


def _weights_digest(path: Path) -> str:
    """Digest identifying a local checkpoint directory: the content of every weight file
    in it (``*.safetensors``, ``*.bin``, ``*.pt``, ``*.pth``, ``*.gguf``, ``*.h5``,
    ``*.msgpack``; subfolders such as training checkpoints are not part of the model
    ``from_pretrained`` loads) and of its configs, tokenizer and chat template files,
    each with its name. File digests are memoized (:func:`_file_digest`), so building a
    second backend over the same unchanged directory reads nothing again. Raises
    BackendError when the directory holds no weight file."""
    path = Path(path)
    files = sorted((p for p in path.iterdir() if p.is_file()
                    and (p.suffix in _WEIGHT_SUFFIXES or p.name in _DIGESTED_FILES)), key=lambda p: p.name)
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        raise BackendError(f"no weight files ({', '.join('*' + s for s in _WEIGHT_SUFFIXES)}) in {path}")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{_file_digest(p)}\n".encode())
    return h.hexdigest()


def _resolved_model_dir(model: str, revision: str | None) -> Path | None:
    """The local directory the weights of ``model`` were loaded from: ``model`` itself
    when it is a directory, else its snapshot in the Hugging Face cache (None when the
    cache does not hold it)."""
    if Path(model).is_dir():
        return Path(model).resolve()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except (ValueError, OSError):  # not a hub id, unreadable cache
        return None
    return Path(found).parent if isinstance(found, str) else None


def _load_adapter(model: Any, path: Path) -> tuple[Any, str]:
    """``model`` wrapped with the PEFT adapter at ``path`` (inference mode), and the
    adapter's digest (its config plus weights)."""
    cfg = path / "adapter_config.json"
    if not cfg.is_file():
        raise BackendError(f"not a PEFT adapter directory (no adapter_config.json): {path}")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ConfigError(f"loading an adapter needs peft (pip install 'msce[finetune]'): {exc}") from None
    try:
        wrapped = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BackendError(f"cannot apply adapter {str(path)!r}: {exc}") from exc
    h = hashlib.sha256(cfg.read_bytes())
    h.update(_weights_digest(path).encode())
    return wrapped, h.hexdigest()


def _vision_parameters(model: Any):
    """Parameters of the model's vision tower (the module named ``visual`` in the Qwen-VL
    family and Qwen2.5-Omni, also under a PEFT wrapper), or none."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "visual":
            return module.parameters()
    return iter(())


def _resolve_dtype(dtype: Any):
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    try:
        return table[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"dtype must be auto, float32, float16 or bfloat16; got {dtype!r}") from None


class TransformersBackend:
    """Run an image-text-to-text model from transformers.

    Args:
        model: local checkpoint directory or hub id (a hub id downloads only where the
            machine has network and ``local_files_only`` is false).
        dtype: ``"auto"`` (the checkpoint's), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
        attn_implementation: passed to ``from_pretrained`` (``"sdpa"``, ``"eager"``,
            ``"flash_attention_2"``); None keeps transformers' default.
        mode: ``"auto"`` (tokens for every model type in :data:`TOKEN_MODEL_TYPES` whose
            processor msce's targets reproduce, processor otherwise: ``config()["tokens_unavailable"]``
            says why), ``"tokens"`` (ConfigError where it cannot) or ``"processor"``.
        min_pixels, max_pixels: the video pixel bounds of the Qwen-VL and Qwen2.5-Omni
            targets (None = the HF processor's); their images take the image processor's own
            bounds, as HF's processor gives them (msce's choice, docs/families.md); other
            families take their processor's sizes.
        max_batch_size: split a generate call into model batches of at most this many
            requests (None = all at once).
        pixel_dtype: the element type of tokens mode's pixel tensors. ``"auto"`` (default):
            the vision tower's dtype when the model is bfloat16 or float16 and its family casts
            pixel values to that dtype before using them (the Qwen-VL family and Qwen2.5-Omni:
            ``pixel_values.type(self.visual.dtype)``), so the model sees the same values at half
            the memory; float32 (the processor's own output) otherwise. ``"float32"``,
            ``"bfloat16"``, ``"float16"`` force one (bfloat16/float16 on those families only).
        adapter: a PEFT adapter directory (``adapter_config.json`` + weights, e.g. from
            ``msce finetune``) applied on top of ``model`` with ``PeftModel.from_pretrained``.
            The adapter's digest joins the fingerprint and ``model_id``, so cached answers
            and run directories of the base model are never reused for the adapted one.
    """

    def __init__(
        self,
        model: str,
        dtype: Any = "auto",
        device: str = "auto",
        attn_implementation: str | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        trust_remote_code: bool = False,
        mode: str = "auto",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_batch_size: int | None = None,
        adapter: str | None = None,
        pixel_dtype: str = "auto",
    ):
        if mode not in ("auto", "tokens", "processor"):
            raise ConfigError(f"mode must be auto, tokens or processor; got {mode!r}")
        if max_batch_size is not None and int(max_batch_size) < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        if pixel_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"pixel_dtype must be auto, float32, bfloat16 or float16; got {pixel_dtype!r}")
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_name = str(model)
        self.model_id = self.model_name
        self.revision = revision
        self.max_batch_size = None if max_batch_size is None else int(max_batch_size)
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        local = Path(self.model_name).is_dir()
        if local_files_only is None:
            local_files_only = local
        kwargs: dict[str, Any] = dict(revision=revision, local_files_only=local_files_only,
                                      trust_remote_code=trust_remote_code)
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_name, **kwargs)
            model_kwargs = dict(kwargs, dtype=_resolve_dtype(dtype))
            if attn_implementation is not None:
                model_kwargs["attn_implementation"] = attn_implementation
            self.model = AutoModelForImageTextToText.from_pretrained(self.model_name, **model_kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"cannot load model {self.model_name!r}: {exc}") from exc
        self.adapter = None if adapter is None else str(adapter)
        self._adapter_digest = None
        if self.adapter is not None:
            self.model, self._adapter_digest = _load_adapter(self.model, Path(self.adapter))
            self.model_id = f"{self.model_name}+adapter:{self._adapter_digest[:16]}"
        self.model.to(self.device)
        self.model.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise BackendError(f"model {self.model_name!r}: its processor has no tokenizer")
        self.tokenizer.padding_side = "left"
        model_type = getattr(self.model.config, "model_type", "")
        self.model_type = str(model_type)
        self.qwen_version = QWEN_VERSIONS.get(model_type)
        requested = mode
        if mode == "auto":
            mode = "tokens" if model_type in TOKEN_MODEL_TYPES else "processor"
        if mode == "tokens" and model_type not in TOKEN_MODEL_TYPES:
            raise ConfigError(f"tokens mode supports model types {', '.join(TOKEN_MODEL_TYPES)}; "
                              f"{self.model_name!r} is {model_type!r}: use mode='processor'")
        # the family's placeholder and tensor rules (processor mode uses its metadata kwargs)
        self.family = (family_for(model_type, self.processor, self.model.config, min_pixels=min_pixels,
                                  max_pixels=max_pixels) if model_type in TOKEN_MODEL_TYPES else None)
        self.tokens_unavailable = None  # why auto mode fell back to processor mode
        if mode != "processor" and self.family is not None:
            try:  # a processor configured beyond what msce's targets reproduce
                self._target = self.family.target()
            except UnsupportedError as exc:
                if requested == "tokens":
                    raise ConfigError(f"{self.model_name!r}: tokens mode cannot reproduce its processor: {exc}; "
                                      "use mode='processor'") from None
                mode, self.tokens_unavailable = "processor", str(exc)
        self.mode = mode
        self.pixel_dtype = self._pixel_dtype(pixel_dtype)
        if self.mode == "tokens" and self.pixel_dtype != "float32":
            self._target = self.family.with_pixel_dtype(self._target, self.pixel_dtype)
        self.dtype_name = str(self.model.dtype).replace("torch.", "")
        self.attn_implementation = getattr(self.model.config, "_attn_implementation", attn_implementation)
        self.model_dir, self._digest = _weights_identity(self.model_name, revision, self.model.config)
        self._lock = threading.Lock()
        self._vision_tokens = self._special_tokens()
        self._suppress = [i for i in (token_id(self.tokenizer, t) for t in self._vision_tokens) if i is not None]
        self.generate_invocations = 0  # model.generate calls made (diagnostics and tests)

    def _pixel_dtype(self, requested: str) -> str:
        """The element type of tokens mode's pixel tensors (``pixel_dtype`` in the docstring);
        processor mode always gives the model the processor's float32."""
        casts = self.mode == "tokens" and self.family.casts_pixels_to_vision_dtype
        if requested == "auto":
            vision = next(iter(_vision_parameters(self.model)), None)
            name = str(vision.dtype).replace("torch.", "") if vision is not None else "float32"
            return name if casts and name in ("bfloat16", "float16") else "float32"
        if requested != "float32" and not casts:
            raise ConfigError(f"pixel_dtype={requested!r} needs tokens mode on a family whose model casts pixel values "
                              f"to its vision tower's dtype (Qwen-VL, Qwen2.5-Omni); {self.model_name!r} runs "
                              f"{self.model_type!r} in {self.mode} mode")
        return requested

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model_name!r}, device={str(self.device)!r}, mode={self.mode!r})"

    def _special_tokens(self) -> tuple[str, ...]:
        """Vision tokens user text may not contain and generation may not emit."""
        if self.family is not None:
            return tuple(dict.fromkeys(self.family.special_tokens()))
        names = ("image_token", "video_token", "audio_token")
        return tuple(t for t in (getattr(self.processor, n, None) for n in names) if isinstance(t, str) and t)

    # -- the Backend protocol -------------------------------------------------------
    def target(self):
        """tokens mode: the family's target (a ``msce.targets.VideoOrImage`` of its video and
        image paths); processor mode: uint8 frames."""
        if self.mode == "tokens":
            return self._target
        return Frames(layout="NHWC", dtype="uint8")

    def fingerprint(self) -> dict:
        fp = {"backend": "transformers", "weights": self._digest, "dtype": self.dtype_name, "mode": self.mode}
        if self._adapter_digest is not None:
            fp["adapter"] = self._adapter_digest
        return fp

    def config(self) -> dict:
        return {
            "backend": "transformers",
            **weights_config(self),
            "attn_implementation": self.attn_implementation,
            "mode": self.mode,
            "model_type": self.model_type,
            "qwen_version": self.qwen_version,
            "tokens_unavailable": self.tokens_unavailable,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "pixel_dtype": self.pixel_dtype,
            "adapter": self.adapter,
            "adapter_digest": self._adapter_digest,
        }

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[str]:
        for r in requests:
            check_request(r)
        if not requests:
            return []
        step = self.max_batch_size or len(requests)
        out: list[str | None] = [None] * len(requests)
        with self._lock:
            for positions in self._model_batches(requests):
                for start in range(0, len(positions), step):
                    chunk = positions[start:start + step]
                    for k, text in zip(chunk, self._generate_batch([requests[k] for k in chunk], params)):
                        out[k] = text
        return out

    def _model_batches(self, requests: Sequence[Request]) -> list[list[int]]:
        """Request positions grouped into batches whose tensors stack (the family's batch
        key; one group, in order, where any batch works)."""
        if self.family is None:
            return [list(range(len(requests)))]
        groups: dict[Any, list[int]] = {}
        for k, r in enumerate(requests):
            groups.setdefault(self.family.batch_key(r), []).append(k)
        return list(groups.values())

    # -- prompt building --------------------------------------------------------------
    def _messages(self, request: Request) -> list[dict]:
        content = []
        for part in request:
            if isinstance(part, str):
                text = part
                for tok in self._vision_tokens:  # text can never smuggle in vision slots
                    text = text.replace(tok, "")
                content.append({"type": "text", "text": text})
            else:
                content.append({"type": "image" if is_image(part) else "video"})
        return [{"role": "user", "content": content}]

    def chat_text(self, request: Request) -> str:
        """The request rendered with the chat template, placeholders not yet expanded."""
        return self.processor.apply_chat_template(self._messages(request), tokenize=False,
                                                  add_generation_prompt=True)

    def expanded_text(self, request: Request) -> str:
        """Chat text with every placeholder expanded to the model's tokens (tokens mode)."""
        if self.family is None:
            raise ConfigError(f"{self.model_name!r} ({self.model_type!r}) has no tokens-mode family")
        return self.family.expanded_texts([request], [self.chat_text(request)])[0][0]

    def build_inputs(self, requests: Sequence[Request]) -> dict:
        """Model inputs for a batch of requests (tokens mode, or processor mode)."""
        if self.mode == "processor":
            return self._processor_inputs(requests)
        return self.family.build_inputs(requests, [self.chat_text(r) for r in requests])

    def _processor_inputs(self, requests: Sequence[Request]) -> dict:
        texts = [self.chat_text(r) for r in requests]
        images, videos, parts = [], [], []
        for r in requests:
            for part in r:
                if not is_frames(part):
                    continue
                frames = uint8_frames(part)
                if is_image(part):
                    images.append(frames[0])
                else:
                    videos.append(frames)
                    parts.append(part)
        kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt"}
        if images:
            nest = getattr(self.family, "processor_images", None)  # SmolVLM counts images per text sample
            kwargs["images"] = nest(requests, images) if nest is not None else images
        if videos:
            kwargs["videos"] = videos
            kwargs["do_sample_frames"] = False
            if self.family is not None:  # true clock: metadata (Qwen-VL, GLM-4.1V, SmolVLM2), fps (Omni)
                kwargs.update(self.family.processor_kwargs(parts))
        try:
            enc = self.processor(text=texts, **kwargs)
        except (ValueError, TypeError) as exc:
            raise BackendError(f"{self.model_name!r}: processor failed: {exc}") from exc
        enc = dict(enc)
        enc.pop("video_metadata", None)
        return enc

    # -- generation -------------------------------------------------------------------
    def _generate_batch(self, requests: list[Request], params: GenerationParams) -> list[str]:
        import copy

        import torch

        inputs = self.build_inputs(requests)
        inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        cfg = copy.deepcopy(self.model.generation_config)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else self.tokenizer.eos_token_id
        updates: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": pad_id,
                                   "do_sample": not params.greedy}
        if params.greedy:
            updates.update(temperature=None, top_p=None, top_k=None)
        else:
            updates.update(temperature=params.temperature, top_p=params.top_p, top_k=None)
        if self._suppress:
            updates["suppress_tokens"] = list(self._suppress)
        cfg.update(**updates)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(params.seed)
            try:
                out = self.model.generate(**inputs, generation_config=cfg)
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"{self.model_name!r}: generate failed: {exc}") from exc
        self.generate_invocations += 1
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
