"""The same seed gives byte-identical clips in separate processes, whatever the thread
settings and whatever the heap held before the encoder ran."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("skimage")

# Runs in a fresh interpreter: set torch's thread count, write a small set, print the
# SHA-256 of every file in it. At 160x160 both writers gave different bytes per process
# while x264 used B-frames (at 128x96 they happened not to), so keep a size like this.
_CHILD = """
import hashlib, json, sys
from pathlib import Path
import torch
threads, out, writer = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
from msce.synth import generate_set
generate_set(out, n=2, seed=3, width=160, height=160, seconds=1.2, faces=("astronaut", "lfw:1"), writer=writer)
print(json.dumps({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}))
"""

# (torch/OpenMP/MKL threads, glibc MALLOC_PERTURB_ byte or None). The perturb byte fills
# freed and fresh heap memory with a pattern, so an encoder that reads memory it has not
# written gives different bytes here every time rather than by chance.
_SETTINGS = [(1, None), (2, "85"), (3, "170")]


def _writer_available(writer: str) -> None:
    if writer == "av":
        pytest.importorskip("av")
    elif shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg command")


def _run_child(tmp_path, threads: int, perturb: str | None, writer: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if perturb is not None:
        env["MALLOC_PERTURB_"] = perturb
    out = tmp_path / f"{writer}-{threads}"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(threads), str(out), writer], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads(proc.stdout.strip().splitlines()[-1])
    # The digests the child printed are those of the files it left.
    assert digests == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
    return digests


@pytest.mark.parametrize("writer", ["av", "ffmpeg"])
def test_same_seed_same_bytes_across_processes_and_thread_counts(tmp_path, writer):
    _writer_available(writer)
    runs = [_run_child(tmp_path, threads, perturb, writer) for threads, perturb in _SETTINGS]
    assert sorted(runs[0]) == ["clip_0000.mp4", "clip_0001.mp4", "events.csv"]
    for settings, digests in zip(_SETTINGS[1:], runs[1:]):
        assert digests == runs[0], settings
