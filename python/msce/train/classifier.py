"""Decoupled, class-balanced fine-tuning of vision-only video classifiers.

:func:`finetune_classifier` (``msce finetune --backend classifier``) trains any
transformers ``AutoModelForVideoClassification`` checkpoint (VideoMAE, MAE-DFER /
HiCMAE-style VideoMAE, TimeSformer, ViViT, V-JEPA 2) on the same class-balanced data as
the VLM path (:mod:`msce.train.loop`): the split's train part only, drawn by
:class:`msce.train.sampling.ClassBalancedSampler` (which refuses test clips), with the same
options, checkpoints, resume, training log and evaluation pass.

Inputs
    Exactly what :class:`msce.models.backends.classifier.ClassifierBackend` feeds the
    model at evaluation: the strategy's plan (``sparse`` or ``dense``) decoded by msce as
    uint8 frames, made a clip of the model's ``num_frames`` with
    :func:`~msce.models.backends.classifier.clip_positions`, then the checkpoint's HF
    video processor. No augmentation (msce's choice: train and test inputs are identical).

Label head
    The head is remapped to the dataset's classes in the dataset's label order. A
    dataset class whose name (or a DFEW/MAFW synonym of it) matches a checkpoint class
    keeps that class's weight row and bias; any other class gets a new row (normal with
    the config's ``initializer_range``, seeded by ``seed``; bias 0). The run record's
    ``head`` says which: ``"kept"`` (same classes, same order), ``"remapped"`` (every class
    matched), ``"partial"`` or ``"new"`` (nothing matched, e.g. ``LABEL_0`` names or a
    Kinetics head), with the source class of every row.

What trains (``mode``)
    ``"head"``: the new head only; ``"lora"``: LoRA (peft) on every linear layer of the
    encoder (or those named by ``LoraOptions.target_modules`` when not the VLM
    defaults) plus the full head; ``"full"``: every parameter. Cross-entropy over the
    batch, AdamW with the VLM path's schedules, gradient clipping, bf16 autocast on CUDA
    (fp16 with loss scaling where bf16 is unsupported), fp32 on CPU.

Output directory
    As the VLM path's (``msce_finetune.json``, ``split.json``, ``train_log.jsonl``,
    ``checkpoints/step-NNNNNNN/`` written crash-safely, ``eval/``), except that the result
    is a whole model: ``model/`` holds the fine-tuned classifier (LoRA merged in), its
    video processor and a copy of ``msce_finetune.json``; ``msce eval --backend
    classifier --model OUT/model`` evaluates it. Checkpoints hold the trainable weights
    (``model.safetensors`` or the LoRA adapter) and the optimizer, scheduler, scaler, RNG
    and sampler states, so a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from msce.errors import ConfigError, DatasetError
from msce.labels import LABEL_SETS, LabelSet
from msce.train._common import _digest_lines, _json_default, _split_info, _write_json
from msce.train.checkpoints import _read_log
from msce.train.loop import (FinetuneResult, _autocast, _checkpoint_if_due, _continue_config, _device, _fingerprint,
                             _histogram_text, _log_step, _loop_io, _loss_summary, _optimization, _optimizer_step,
                             _resolve_precision, _resume_state, _run_dir)
from msce.train.options import (CONFIG_FILE, DEFAULT_TARGET_MODULES, LOG_FILE, STATE_FILE, Log,
                                LoraOptions, SamplingOptions, TrainOptions, _stderr)
from msce.train.sampling import ClassBalancedSampler

__all__ = ["MODES", "MODEL_DIR", "finetune_classifier", "remap_head", "head_module", "evaluate_classifier"]

#: What trains: the new head only, LoRA on the encoder + the head, or everything.
MODES = ("head", "lora", "full")
MODEL_DIR = "model"
_TRAINABLE = ("sparse", "dense")


def _same_class(model_label: str, name: str, labels: LabelSet) -> bool:
    """True when a checkpoint class names the dataset class ``name`` (directly, or through
    DFEW/MAFW synonyms for both words)."""
    word = model_label.replace("_", " ")
    if labels.canonical(word) == name:
        return True
    for known in LABEL_SETS.values():
        a, b = known.canonical(word), known.canonical(name)
        if a is not None and a == b:
            return True
    return False


def head_module(model: Any) -> tuple[str, Any]:
    """(attribute name, module) of a video classifier's label head: its ``classifier``
    Linear (every transformers video-classification model names it so)."""
    import torch.nn as nn

    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"{type(model).__name__} has no Linear 'classifier' head to remap "
                          f"(found {type(head).__name__})")
    return "classifier", head


def remap_head(model: Any, labels: LabelSet, seed: int = 0) -> dict:
    """Give ``model`` a head over ``labels.names`` (see the module docstring); returns the
    record ``{"head": kind, "sources": {class: checkpoint class or None}, ...}``."""
    import torch
    import torch.nn as nn

    name, old = head_module(model)
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    model_labels = [id2label[i] for i in range(len(id2label))]
    sources: dict[str, str | None] = {}
    rows: list[int | None] = []
    for cls in labels.names:
        match = [i for i, m in enumerate(model_labels) if _same_class(m, cls, labels)]
        rows.append(match[0] if match else None)
        sources[cls] = model_labels[match[0]] if match else None
    new = nn.Linear(old.in_features, len(labels), bias=True, dtype=old.weight.dtype, device=old.weight.device)
    gen = torch.Generator().manual_seed(int(seed))
    std = float(getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=gen) * std)
        new.bias.zero_()
        for r, src in enumerate(rows):
            if src is not None:
                new.weight[r] = old.weight[src]
                if old.bias is not None:
                    new.bias[r] = old.bias[src]
    if rows == list(range(len(model_labels))):
        kind = "kept"
    elif all(r is not None for r in rows):
        kind = "remapped"
    elif any(r is not None for r in rows):
        kind = "partial"
    else:
        kind = "new"
    setattr(model, name, new)
    model.config.num_labels = len(labels)
    model.config.id2label = {i: n for i, n in enumerate(labels.names)}
    model.config.label2id = {n: i for i, n in enumerate(labels.names)}
    return {"head": kind, "module": name, "sources": sources, "checkpoint_labels": model_labels,
            "init_seed": int(seed), "init_std": std}


def _lora_targets(model: Any, head: str, lora: LoraOptions) -> list[str]:
    import torch.nn as nn

    every = tuple(lora.target_modules) == DEFAULT_TARGET_MODULES or "all-linear" in lora.target_modules
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != head
             and (every or n.split(".")[-1] in lora.target_modules)]
    if not names:
        raise ConfigError(f"no linear layer of the encoder matches target_modules {list(lora.target_modules)}")
    return names


def _prepare(model: Any, mode: str, lora: LoraOptions, head: str, log: Log) -> tuple[Any, dict]:
    if mode == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise ConfigError(f"LoRA needs peft (pip install 'msce[finetune]'): {exc}") from None
        targets = _lora_targets(model, head, lora)
        cfg = LoraConfig(r=lora.r, lora_alpha=lora.scale_alpha, lora_dropout=float(lora.dropout),
                         target_modules=targets, modules_to_save=[head], bias="none")
        model = get_peft_model(model, cfg)
        info = {"lora": lora.to_dict(), "target_layers": len(targets)}
    else:
        for pname, p in model.named_parameters():
            p.requires_grad_(mode == "full" or pname.split(".")[0] == head)
        info = {}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"{mode} fine-tuning: {trainable:,} trainable of {total:,} parameters ({100.0 * trainable / total:.3f} %)")
    return model, {"mode": mode, "trainable_parameters": trainable, "total_parameters": total, **info}


def _load_state(path: Path, model: Any, mode: str) -> dict:
    import torch
    from safetensors.torch import load_file

    if mode == "lora":
        from peft import set_peft_model_state_dict

        weights = path / "adapter_model.safetensors"
        if not weights.is_file():
            raise ConfigError(f"checkpoint {path} has no adapter_model.safetensors")
        res = set_peft_model_state_dict(model, load_file(str(weights)))
        if list(getattr(res, "unexpected_keys", []) or []):
            raise ConfigError(f"checkpoint {path} does not fit the model ({res.unexpected_keys[:3]})")
    else:
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise ConfigError(f"checkpoint {path} has no model.safetensors")
        state = load_file(str(weights))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if k in dict(model.named_parameters())]:
            raise ConfigError(f"checkpoint {path} does not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


class _ClipEncoder:
    """Sample -> the model's input tensors, exactly as the classifier backend builds them."""

    def __init__(self, strategy: Any, processor: Any, num_frames: int | None):
        self.spec = strategy.spec()
        self.processor = processor
        self.num_frames = num_frames

    def __call__(self, sample: Any) -> dict:
        from msce.io import load
        from msce.models.backends.classifier import _uint8_clip, clip_positions
        from msce.targets import Frames

        frames = _uint8_clip(load(sample.path, self.spec, Frames(layout="NHWC", dtype="uint8")))
        clip = frames[clip_positions(int(frames.shape[0]), self.num_frames)]
        return dict(self.processor(videos=[clip], return_tensors="pt", do_sample_frames=False))


def finetune_classifier(
    dataset: Any,
    split: Any,
    strategy: Any,
    model: str,
    out_dir: str | os.PathLike,
    *,
    mode: str = "lora",
    lora: LoraOptions = LoraOptions(),
    train: TrainOptions = TrainOptions(),
    sampling: SamplingOptions = SamplingOptions(),
    num_frames: int | None = None,
    device: str = "auto",
    resume: bool | str | os.PathLike = False,
    progress: bool = True,
    keep_model: bool = False,
    log: Log = _stderr,
    command: Sequence[str] | None = None,
) -> FinetuneResult:
    """Fine-tune the video classifier ``model`` on the class-balanced train clips of ``split``.

    Arguments as :func:`msce.train.loop.finetune`, plus ``mode`` (:data:`MODES`) and
    ``num_frames`` (clip length; None = the config's). ``FinetuneResult.adapter_dir`` is
    the ``model/`` directory (a complete classifier); ``model`` is the trained module when
    ``keep_model``.
    """
    import torch
    from transformers import AutoModelForVideoClassification, AutoVideoProcessor

    from msce.eval.runner import SPLIT_FILE, environment_info
    from msce.models.backends.classifier import model_num_frames
    from msce.models.backends.hf import _weights_digest

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if getattr(strategy, "name", None) not in _TRAINABLE:
        raise ConfigError(f"a classifier trains on the frames of a sparse or dense strategy, "
                          f"got {getattr(strategy, 'name', strategy)!r}")
    labels = dataset.label_set
    out = Path(out_dir)
    train_samples = split.train_samples(dataset)
    if not train_samples:
        raise DatasetError(f"split {split.name} has no training clips")
    sampler = ClassBalancedSampler.from_samples(
        train_samples, sampling.n_per_class, mode=sampling.mode, seed=sampling.seed, classes=labels,
        split=split, resample_each_epoch=sampling.resample_each_epoch)
    total_steps = train.total_steps(len(sampler))
    per_step = train.examples_per_step
    device_obj = _device(device)
    precision = _resolve_precision(train.precision, device_obj)

    cfg_path, checkpoints = _run_dir(out, resume)
    local = Path(str(model)).is_dir()
    try:
        processor = AutoVideoProcessor.from_pretrained(str(model), local_files_only=local)
        net = AutoModelForVideoClassification.from_pretrained(str(model), local_files_only=local,
                                                              dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot load video classifier {str(model)!r}: {exc}") from exc
    clip_frames = int(num_frames) if num_frames is not None else model_num_frames(net.config)
    head_record = remap_head(net, labels, seed=train.seed)
    log(f"label head: {head_record['head']} ("
        + ", ".join(f"{c} <- {s or 'new'}" for c, s in head_record["sources"].items()) + ")")
    torch.manual_seed(train.seed)
    net, trainable = _prepare(net, mode, lora, head_record["module"], log)
    net.to(device_obj)
    net.train()

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    config: dict = {
        "format": "msce-finetune", "version": 1, "kind": "classifier", "created": now,
        "dataset": {**dataset.describe(), "labels": list(labels.names)},
        "split": _split_info(split),
        "data": {"train_clips": len(train_samples), "train_ids_sha256": _digest_lines([s.id for s in train_samples])},
        "sampler": sampler.describe(),
        "strategy": json.loads(json.dumps(strategy.config(), default=_json_default)),
        "training_input": f"{strategy.name} frames -> {clip_frames} -frame clip (segment centres) -> "
                          f"{type(processor).__name__}",
        "model": {"base": str(model), "weights": _weights_digest(Path(model)) if local else None,
                  "architecture": type(net.get_base_model() if mode == "lora" else net).__name__,
                  "num_frames": clip_frames},
        "head": head_record,
        "lora": lora.to_dict() if mode == "lora" else None,
        "trainable": trainable,
        "train": train.to_dict(), "precision": precision, "device": str(device_obj),
        "total_steps": total_steps, "examples_per_step": per_step,
        "environment": environment_info(), "sessions": [],
    }
    # the mode is a setting too (config["trainable"]["mode"] is ``mode``)
    _continue_config(cfg_path, config, out, now,
                     lambda cfg: {**_fingerprint(cfg), "mode": cfg.get("trainable", {}).get("mode")})
    split.save(out / SPLIT_FILE)
    log(_histogram_text(sampler, labels))

    params, optimizer, scheduler, scaler = _optimization(net, train, total_steps, precision)
    start_step = _resume_state(resume, checkpoints, lambda ckpt: _load_state(ckpt, net, mode), optimizer, scheduler,
                               scaler, sampler, device_obj, log)
    config["sessions"].append({"started": now, "command": list(command) if command is not None else list(sys.argv),
                               "start_step": start_step, "total_steps": total_steps})
    _write_json(cfg_path, config)
    history = _read_log(out / LOG_FILE, start_step)
    encode = _ClipEncoder(strategy, processor, clip_frames)
    index = {n: i for i, n in enumerate(labels.names)}

    def steps() -> Iterator[tuple[int, list]]:
        stream = sampler.stream(start_step * per_step)
        for step in range(start_step, total_steps):
            micro = []
            for _ in range(train.grad_accum):
                samples = [train_samples[next(stream)[1]] for _ in range(train.batch_size)]
                enc = [encode(s) for s in samples]
                inputs = {k: torch.cat([e[k] for e in enc]) for k in enc[0]}
                micro.append((inputs, torch.tensor([index[s.label] for s in samples])))
            yield step, micro

    losses: list[tuple[int, float]] = []
    with _loop_io(steps(), out, total_steps, progress, start_step) as (bar, fed, log_f):
        t_start = time.perf_counter()
        ran, step = 0, start_step
        for step, micro in fed:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_sum, correct = 0.0, 0
            for inputs, target in micro:
                inputs = {k: v.to(device_obj) for k, v in inputs.items()}
                target = target.to(device_obj)
                with _autocast(precision, device_obj):
                    logits = net(**inputs).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum") / per_step
                (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_sum += float(loss.detach())
                correct += int((logits.argmax(-1) == target).sum())
            grad_norm = _optimizer_step(params, optimizer, scaler, train.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            ran += 1
            rec = {"step": step, "loss": loss_sum, "train_accuracy": correct / per_step, "lr": lr,
                   "examples": per_step, "grad_norm": grad_norm, "seconds": round(time.perf_counter() - t0, 6),
                   "epoch": (step * per_step - 1) // len(sampler)}
            _log_step(log_f, history, rec)
            losses.append((step, loss_sum))
            bar.advance(f"loss {loss_sum:.4f} lr {lr:.2e}")
            _checkpoint_if_due(out, step, total_steps, train, sampler, net, optimizer, scheduler, scaler, device_obj,
                               config)
    seconds = time.perf_counter() - t_start

    net.eval()
    final = net.merge_and_unload() if mode == "lora" else net
    model_dir = out / MODEL_DIR
    final_cfg = dict(config, final_step=step)
    final.save_pretrained(str(model_dir))
    processor.save_pretrained(str(model_dir))
    _write_json(model_dir / CONFIG_FILE, final_cfg)
    _write_json(cfg_path, config)
    summary = _loss_summary(history, step, total_steps)
    if summary is not None:
        log(f"{summary}; model in {model_dir}")
    return FinetuneResult(
        out_dir=out, adapter_dir=model_dir, start_step=start_step, steps=step, losses=losses,
        sampler=sampler.describe(), train_seconds=seconds, steps_per_second=ran / seconds if seconds else 0.0,
        examples_per_second=ran * per_step / seconds if seconds else 0.0, config=final_cfg,
        model=final if keep_model else None)


def evaluate_classifier(dataset: Any, split: Any, strategy: Any, model_dir: str | os.PathLike,
                        out_dir: str | os.PathLike, *, backend_options: Mapping | None = None, cache: Any = None,
                        limit: int | None = None, seed: int = 0, on_error: str = "raise", progress: bool = True,
                        n_boot: int = 1000, base_model: str | None = None, command: Sequence[str] | None = None):
    """``msce eval`` of the test split with a fine-tuned classifier (``OUT/model``). The run
    config's ``extra`` names the fine-tuning run and its base model, which the reports use
    to pair it with the base model's run."""
    from msce.eval.runner import SPLIT_FILE, run_eval
    from msce.models.backends import get_backend

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split.save(out / SPLIT_FILE)
    opts = {k: v for k, v in (backend_options or {}).items() if k not in ("model", "labels")}
    backend = get_backend("classifier", model=str(model_dir), labels=dataset.label_set, **opts)
    extra = {"backend_name": "classifier", "backend_options": {**opts, "model": str(model_dir)},
             "finetune_run": str(Path(model_dir).resolve().parent), "base_model": base_model}
    return run_eval(dataset, split.test_samples(dataset), strategy, backend, out, cache, split=_split_info(split),
                    seed=seed, extra_config=extra, limit=limit, on_error=on_error, progress=progress, n_boot=n_boot,
                    command=command if command is not None else ["msce"] + sys.argv[1:])
