"""Loads the compiled core (msce._C) with an actionable message when it is missing."""

from __future__ import annotations

try:
    from msce import _C  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "msce's native extension (msce._C) is not built or failed to load: "
        f"{exc}. Build it with `pip install -e .` (see README.md)."
    ) from exc

C = _C
