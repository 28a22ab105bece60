"""The pipelined runner with the tiny Qwen models: batch size 1 sends exactly the sequential
runner's generate calls (identical records); larger batches left-pad the prompts of several
videos into one model batch, which on float32 CPU leaves every greedy answer unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from msce.eval.datasets import load_generic
from msce.eval.runner import run_eval
from msce.models.backends.base import GenerationParams
from msce.models.strategies import MSCE, Sparse

from tiny_env import CLIP_H, CLIP_W, VERSIONS

ANS = GenerationParams(max_new_tokens=4)
S1 = GenerationParams(max_new_tokens=8)
TIMING = ("latency_s", "wall_s")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, clips) -> Path:
    """Six clips of different lengths (1 to 4 keyframes: prompts of different lengths)."""
    root = tmp_path_factory.mktemp("tree")
    for k, seconds in enumerate((3.2, 1.4, 2.3, 0.6, 3.0, 1.9)):
        label = ("happy", "sad", "angry")[k % 3]
        (root / label).mkdir(exist_ok=True)
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
               f"testsrc2=size={CLIP_W}x{CLIP_H}:rate=10", "-ss", f"{0.3 * k:.1f}", "-t", str(seconds),
               "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10", "-fflags", "+bitexact", "-flags:v",
               "+bitexact", str(root / label / f"c{k}.mp4")]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return root


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING}
            for x in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", [lambda: Sparse(1.0, params=ANS), lambda: MSCE(1, 2, params=ANS, stage1_params=S1)],
                         ids=["sparse", "msce"])
def test_pipelined_tiny_model_matches_sequential(tmp_path, tree, tiny_backends, version, make):
    ds = load_generic(tree, labels=["happy", "sad", "angry"])
    backend = tiny_backends[version]
    kw = {"progress": False, "n_boot": 0}
    run_eval(ds, ds.samples, make(), backend, tmp_path / "seq", **kw)
    run_eval(ds, ds.samples, make(), backend, tmp_path / "b1", concurrency=1, prefetch=3, **kw)
    assert records(tmp_path / "b1") == records(tmp_path / "seq")  # the same generate calls
    run_eval(ds, ds.samples, make(), backend, tmp_path / "b4", batch_size=4, prefetch=8, **kw)
    seq, b4 = records(tmp_path / "seq"), records(tmp_path / "b4")
    assert [r["id"] for r in b4] == [r["id"] for r in seq]
    for a, b in zip(seq, b4):  # everything but the model's text is identical by construction
        for k in ("id", "frame_indices", "timestamps", "visual_tokens", "model_calls", "cache_hits", "prompts"):
            assert a[k] == b[k]
    # ...and on float32 CPU the left-padded batches give the same greedy text (with bf16/fp16
    # kernels they may not: docs/evaluation.md, "Throughput")
    assert [(r["raw_answer"], r["stage1"]) for r in b4] == [(r["raw_answer"], r["stage1"]) for r in seq]
