"""Constants shared by the fine-tuning fixtures and tests (import as ``ft_env``)."""

from __future__ import annotations

# Small pixel budget: a 64x64 frame becomes 56x56 (4 LLM tokens per temporal patch).
PIXELS = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 6}
# One ffmpeg test source per class, so there is something to learn.
CLASSES = {"happy": "testsrc2", "sad": "smptebars", "angry": "rgbtestsrc"}
CLIPS_PER_CLASS = 4
TEST_PER_CLASS = 1
