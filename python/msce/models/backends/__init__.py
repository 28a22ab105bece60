"""Model backends, registered lazily by dotted path.

``get_backend("transformers", model=PATH)`` imports ``msce.models.backends.hf`` only when
asked, so ``import msce.models.backends`` never pulls in torch or transformers.

Registered names:

* ``"transformers"``: :class:`msce.models.backends.hf.TransformersBackend` (local weights,
  token-ready tensors fed straight to ``generate``);
* ``"openai"``: :class:`msce.models.backends.openai_api.OpenAIBackend` (any OpenAI-compatible
  chat-completions server: vLLM, SGLang, Gemini's OpenAI endpoint);
* ``"classifier"``: :class:`msce.models.backends.classifier.ClassifierBackend` (vision-only
  ``AutoModelForVideoClassification`` checkpoints: VideoMAE, TimeSformer, ViViT, V-JEPA 2).

Other backends register with :func:`register_backend` or are named directly by a
``"package.module:Class"`` path.
"""

from __future__ import annotations

import importlib
from typing import Any

from msce.models.backends.base import Backend, GenerationParams, Part, Request
from msce.errors import ConfigError

__all__ = [
    "Backend",
    "GenerationParams",
    "Part",
    "Request",
    "get_backend",
    "register_backend",
    "available_backends",
]

_REGISTRY: dict[str, str] = {
    "transformers": "msce.models.backends.hf:TransformersBackend",
    "openai": "msce.models.backends.openai_api:OpenAIBackend",
    "classifier": "msce.models.backends.classifier:ClassifierBackend",
}


def register_backend(name: str, path: str) -> None:
    """Register ``name`` for a backend class given as ``"package.module:Class"``."""
    if ":" not in path:
        raise ConfigError(f"backend path must look like 'package.module:Class', got {path!r}")
    _REGISTRY[name] = path


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(path: str) -> type:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"backend path {path!r}: module has no attribute {attr!r}") from None


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate a backend by registered name or ``"package.module:Class"`` path."""
    path = _REGISTRY.get(name)
    if path is None:
        if ":" in name:
            path = name
        else:
            raise ConfigError(f"unknown backend {name!r}; known: {available_backends()}")
    cls = _resolve(path)
    return cls(**options)
