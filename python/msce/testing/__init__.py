"""Offline test assets: tiny random-weight Qwen-VL models built from a config.

Nothing here downloads anything. :func:`make_tiny_model` writes a directory that
``transformers.AutoModelForImageTextToText`` and ``AutoProcessor`` reload, small enough
(< 1 MB) to build inside a test.
"""

from __future__ import annotations

from msce.testing.tiny import TINY_VERSIONS, make_tiny_model

__all__ = ["make_tiny_model", "TINY_VERSIONS"]
