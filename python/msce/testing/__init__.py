"""Offline test assets: tiny random-weight VLMs built from a config.

Nothing here downloads anything. :func:`make_tiny_model` writes a directory that
``transformers.AutoModelForImageTextToText`` and ``AutoProcessor`` reload, small enough
(< 1 MB) to build inside a test; :func:`make_tiny_family` does the same for the other
families msce has targets for (LLaVA-NeXT-Video, Video-LLaVA, LLaVA-OneVision, InternVL,
GLM-4.1V, the Qwen2.5-Omni thinker, SmolVLM2).
"""

from __future__ import annotations

from msce.testing.tiny import TINY_VERSIONS, make_tiny_model
from msce.testing.tiny_families import TINY_FAMILIES, make_tiny_family

__all__ = ["make_tiny_model", "TINY_VERSIONS", "make_tiny_family", "TINY_FAMILIES"]
