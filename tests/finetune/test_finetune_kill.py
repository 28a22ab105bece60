"""`msce finetune` SIGKILLed while it writes a checkpoint, then resumed.

The run is a separate process (the command line). MSCE_TEST_CHECKPOINT_PAUSE makes the
writer of checkpoint 4 stop at the critical point (adapter written, trainer state not, not
yet published) and say so; the test kills it there with SIGKILL. The half-written
checkpoint must be invisible: resume continues from the last complete one (step 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from msce import cli

from ft_env import PIXELS


def argv(ft_data, tiny_model, out) -> list[str]:
    return ["finetune", "--dataset", "generic", "--root", str(ft_data["csv"]), "--split", "balanced",
            "--n-per-class", "1", "--balanced", "2", "--model", str(tiny_model), "--strategy", "sparse",
            "--lora-r", "4", "--max-steps", "4", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3",
            "--scheduler", "constant", "--warmup-ratio", "0", "--save-every", "2", "--keep-checkpoints", "0",
            "--device", "cpu", "--min-pixels", str(PIXELS["min_pixels"]), "--max-pixels", str(PIXELS["max_pixels"]),
            "--no-cache", "--no-progress", "--no-eval", "--out", str(out)]


def test_sigkill_while_writing_a_checkpoint_then_resume(ft_data, tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    marker = tmp_path / "paused"
    env = dict(os.environ, MSCE_TEST_CHECKPOINT_PAUSE=f"4:{marker}", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    log = tmp_path / "child.log"
    with open(log, "wb") as fh:
        child = subprocess.Popen([sys.executable, "-m", "msce.cli", *argv(ft_data, tiny_model, out)], env=env,
                                 stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert child.poll() is None, f"the run ended before checkpoint 4: {log.read_text()}"
            assert time.monotonic() < deadline, "the run never reached checkpoint 4"
            time.sleep(0.05)
        assert int(marker.read_text()) == child.pid
        ckpts = out / "checkpoints"
        # at the pause: step 2 is published, step 4 is a hidden, half-written directory
        assert sorted(p.name for p in ckpts.iterdir()) == [".step-0000004.tmp", "step-0000002"]
        half = ckpts / ".step-0000004.tmp"
        assert (half / "adapter_model.safetensors").is_file() and not (half / "trainer_state.pt").exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, log.read_text()
    complete = ckpts / "step-0000002"
    assert {p.name for p in complete.iterdir()} >= {"adapter_model.safetensors", "trainer_state.pt"}
    assert not (out / "adapter").exists()  # the run never finished

    capsys.readouterr()
    assert cli.main(argv(ft_data, tiny_model, out) + ["--resume"]) == 0
    cap = capsys.readouterr()
    assert "resuming from" in cap.err and "step-0000002" in cap.err, cap.err
    assert "trained steps 2->4" in cap.out
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-0000002", "step-0000004"]  # no leftovers
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    sessions = json.loads((out / "msce_finetune.json").read_text())["sessions"]
    assert [s["start_step"] for s in sessions] == [0, 2]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("value", ["", "4", "x:y", "3:somewhere"])
def test_pause_hook_is_inert_unless_it_names_the_step(value, monkeypatch) -> None:
    from msce.train import checkpoints

    monkeypatch.setenv("MSCE_TEST_CHECKPOINT_PAUSE", value)
    checkpoints._test_pause(4)  # returns at once: no marker, no wait
