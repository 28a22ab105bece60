"""Checkpoints of a fine-tuning run: crash-safe save, load for resume, and the training
log trimmed to a resumed step."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from msce.errors import ConfigError
from msce.train._common import _write_json
from msce.train.options import CHECKPOINTS_DIR, CONFIG_FILE, STATE_FILE
from msce.train.sampling import ClassBalancedSampler


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    root = out / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step-") and d.name[5:].isdigit() and (d / STATE_FILE).is_file():
            found.append((int(d.name[5:]), d))
    return sorted(found)


def _rng_state(device: Any) -> dict:
    import torch

    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping, device: Any) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_adapter(model: Any, directory: Path, config: Mapping) -> None:
    model.save_pretrained(str(directory))
    _write_json(directory / CONFIG_FILE, config)


# Test hook: MSCE_TEST_CHECKPOINT_PAUSE="STEP:PATH" makes the writer of checkpoint STEP stop
# at the critical point (adapter written, trainer state not yet, nothing published), create
# PATH to say so, and wait there to be killed. Tests use it to SIGKILL a run at that exact
# point; it is unset in normal use.
_PAUSE_ENV = "MSCE_TEST_CHECKPOINT_PAUSE"


def _test_pause(step: int) -> None:
    spec = os.environ.get(_PAUSE_ENV, "")
    at, sep, marker = spec.partition(":")
    if not sep or not at.strip().isdigit() or int(at) != step:
        return
    tmp = Path(marker + ".tmp")
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(tmp, marker)
    while True:
        time.sleep(1.0)


def _fsync_tree(directory: Path) -> None:
    """Flush every file under ``directory``, then the directories themselves."""
    for d, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(d))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save_checkpoint(out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, scaler: Any,
                     sampler: ClassBalancedSampler, device: Any, config: Mapping, keep: int) -> Path:
    """Write checkpoint ``step`` crash-safely: everything goes into a hidden temporary
    directory, is fsynced, and only then renamed to ``step-NNNNNNN`` (resume only looks at
    those names). A run killed at any point leaves the previous checkpoints intact."""
    import torch

    root = out / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in list(root.glob(".step-*.tmp")) + list(root.glob(".step-*.old")):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    tmp.mkdir()
    _save_adapter(model, tmp, config)
    _test_pause(step)
    state = {
        "format": "msce-finetune-state",
        "version": 1,
        "step": step,
        "samples_seen": step * int(config["train"]["batch_size"]) * int(config["train"]["grad_accum"]),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _rng_state(device),
        "sampler": sampler.state_dict(),
    }
    torch.save(state, tmp / STATE_FILE)
    _fsync_tree(tmp)
    if final.exists():  # the same step written again (a resume from an earlier checkpoint)
        old = root / f".step-{step:07d}.old"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    if keep:
        for _, d in _checkpoints(out)[:-keep]:
            gone = root / f".{d.name}.old"
            os.replace(d, gone)  # unpublish first: a kill mid-delete leaves no half checkpoint
            shutil.rmtree(gone, ignore_errors=True)
    return final


def _load_checkpoint(path: Path, model: Any) -> dict:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"checkpoint {path} has no adapter_model.safetensors")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ConfigError(f"checkpoint {path} does not fit the model (unexpected keys {unexpected[:3]})")
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


def _read_log(path: Path, upto: int) -> list[dict]:
    """Records of ``train_log.jsonl`` with step <= upto, rewriting the file to them."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and int(rec.get("step", 0)) <= upto:
            kept.append(rec)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, path)
    return kept
