"""What a backend that runs a local Hugging Face checkpoint (``transformers``,
``classifier``) reports about its weights in ``config()``: the same entries under the same
names for both, so the runs of either can be told apart and compared by the weights they
used."""

from __future__ import annotations

from typing import Any

__all__ = ["weights_config"]


def weights_config(backend: Any) -> dict:
    """``model`` (as named), ``revision``, ``device``, ``dtype``, ``model_dir`` (the folder the
    weights were read from; None when they were not found on disk) and ``weights`` (their
    digest, see ``msce.models.backends.hf._weights_identity``), from the attributes both
    local backends set: ``model_name``, ``revision``, ``device``, ``dtype_name``,
    ``model_dir`` and ``_digest``."""
    return {
        "model": backend.model_name,
        "revision": backend.revision,
        "device": str(backend.device),
        "dtype": backend.dtype_name,
        "model_dir": None if backend.model_dir is None else str(backend.model_dir),
        "weights": backend._digest,
    }
