"""Frame folders (one image per frame, as DFEW/MAFW ship them) through the core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import msce
from _deps import require_module

PIL = require_module("PIL.Image")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames") / "00042"
    d.mkdir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    for i, f in enumerate(frames):  # natural order: 2 before 10, not zero-padded on purpose
        PIL.fromarray(f).save(d / f"img_{i + 1}.png")
    (d / "notes.txt").write_text("ignored")
    return d, frames


def test_folder_metadata_and_plan(folder):
    d, frames = folder
    ff = msce.FrameFolder(d, fps=10)
    assert ff.metadata.num_frames == 30 and (ff.metadata.height, ff.metadata.width) == (48, 64)
    assert ff.metadata.duration == pytest.approx(3.0)
    b = msce.load(ff, msce.plan.uniform(1.0), msce.QwenVL("2.5", min_pixels=28 * 28))
    assert b.indices == (0, 10, 20)
    ref = msce.preprocess(frames[[0, 10, 20]], msce.QwenVL("2.5", min_pixels=28 * 28), fps=10)
    assert torch.equal(b.data, ref.data) and b.timestamps == (0.0, 1.0, 2.0)


def test_folder_path_and_segments(folder):
    d, frames = folder
    segs = msce.load_segments(str(d), msce.plan.keyframes_with_gaps(1.0, 4), msce.Frames(layout="NHWC"))
    assert [s.roles[0] for s in segs] == ["keyframe", "gap", "keyframe"]  # 25 fps default: 1.2 s
    for s in segs:
        assert np.array_equal(s.data.numpy(), frames[list(s.indices)])
    assert segs[1].metadata.path == str(d)


def test_folder_errors(tmp_path, folder):
    with pytest.raises(msce.DecodeError):
        msce.FrameFolder(tmp_path)  # no images
    d, _ = folder
    bad = tmp_path / "mixed"
    bad.mkdir()
    PIL.fromarray(np.zeros((10, 10, 3), np.uint8)).save(bad / "1.png")
    PIL.fromarray(np.zeros((12, 10, 3), np.uint8)).save(bad / "2.png")
    with pytest.raises(msce.DecodeError, match="first"):
        msce.load(bad, msce.plan.dense(), msce.Frames())
    (bad / "3.png").write_bytes(b"not an image")
    with pytest.raises(msce.DecodeError, match="3.png"):
        msce.FrameFolder(bad).get_frames([2])
    with pytest.raises(msce.PlanError):
        msce.FrameFolder(d).get_frames([99])
