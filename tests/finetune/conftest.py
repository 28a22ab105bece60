"""Fixtures for the fine-tuning tests: a tiny random-weight Qwen2.5-VL checkpoint and a
generic-CSV dataset of generated 64x64 clips (three classes, each drawn from its own
ffmpeg test source, so there is something to learn)."""

from __future__ import annotations

from pathlib import Path

import sys

import pytest

from _clips import lavfi_clip
from _deps import missing, require_tool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ft_env import CLASSES, CLIPS_PER_CLASS, TEST_PER_CLASS  # noqa: E402


def _clip(path: Path, source: str, seconds: float, rate: int = 10) -> Path:
    return lavfi_clip(path, source, seconds, "64x64", rate)


@pytest.fixture(scope="session")
def ft_data(tmp_path_factory) -> dict:
    """``csv``: dataset CSV (path,label); ``dataset``; ``split`` (1 test clip per class)."""
    require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("ftdata")
    rows = ["path,label"]
    for label, source in CLASSES.items():
        for k in range(CLIPS_PER_CLASS):
            rel = f"clips/{label}_{k}.mp4"
            (root / "clips").mkdir(exist_ok=True)
            _clip(root / rel, source, 1.2 + 0.5 * (k % 2))
            rows.append(f"{rel},{label}")
    csv = root / "data.csv"
    csv.write_text("\n".join(rows) + "\n")
    import msce
    from msce.eval.datasets import load_generic
    from msce._native import C
    from msce.eval.splits import balanced_split

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    msce.VideoReader(root / "clips/happy_0.mp4")
    dataset = load_generic(csv)
    return {"csv": csv, "dataset": dataset, "split": balanced_split(dataset, TEST_PER_CLASS, seed=0)}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from msce.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tinyft") / "qwen2.5", version="2.5", seed=0)
