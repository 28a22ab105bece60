"""Constants shared by the e2e fixtures and tests (import as ``tiny_env``)."""

from __future__ import annotations

VERSIONS = ("2.5", "3")

# Small pixel budgets keep CPU runs fast: a 64x48 frame becomes 56x56 (2.5) or a
# whole-clip budget of 16 patches of 32x32 (3).
PIXELS = {"2.5": (28 * 28 * 4, 28 * 28 * 6), "3": (32 * 32 * 4, 32 * 32 * 16)}

# Size of the generated test clips (height, width).
CLIP_H, CLIP_W = 48, 64
