"""Constants shared by the classifier fixtures and tests (import as ``clf_env``)."""

from __future__ import annotations

# One ffmpeg test source per class, so there is something to learn.
CLASSES = {"happy": "testsrc2", "sad": "smptebars", "angry": "rgbtestsrc"}
CLIPS_PER_CLASS = 4
TEST_PER_CLASS = 1
