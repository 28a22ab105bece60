"""Fixtures for the video-classifier tests: a tiny random-weight VideoMAE checkpoint and a
generic-CSV dataset of generated 64x48 clips (three DFEW classes, each drawn from its own
ffmpeg test source, so a classifier has something to learn)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _clips import lavfi_clip
from _deps import missing, require_module, require_tool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clf_env import CLASSES, CLIPS_PER_CLASS, TEST_PER_CLASS  # noqa: E402


def _clip(path: Path, source: str, seconds: float, rate: int = 10) -> Path:
    return lavfi_clip(path, source, seconds, "64x48", rate)


@pytest.fixture(scope="session")
def clf_data(tmp_path_factory) -> dict:
    """``csv``; ``dataset`` (classes angry, happy, sad); ``split`` (TEST_PER_CLASS test clips per class)."""
    require_tool("ffmpeg")
    require_module("transformers")
    root = tmp_path_factory.mktemp("clfdata")
    (root / "clips").mkdir()
    rows = ["path,label"]
    for label, source in CLASSES.items():
        for k in range(CLIPS_PER_CLASS):
            rel = f"clips/{label}_{k}.mp4"
            _clip(root / rel, source, 0.6 + 0.4 * (k % 3))
            rows.append(f"{rel},{label}")
    csv = root / "data.csv"
    csv.write_text("\n".join(rows) + "\n")
    import msce
    from msce._native import C
    from msce.eval.datasets import load_generic
    from msce.eval.splits import balanced_split

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    msce.VideoReader(root / "clips/happy_0.mp4")
    dataset = load_generic(csv)
    return {"root": root, "csv": csv, "dataset": dataset,
            "split": balanced_split(dataset, TEST_PER_CLASS, seed=0)}


@pytest.fixture(scope="session")
def tiny_videomae(tmp_path_factory) -> Path:
    require_module("transformers")
    from msce.testing.tiny_classifier import make_tiny_videomae

    return make_tiny_videomae(tmp_path_factory.mktemp("tinyvmae") / "videomae", seed=0)
