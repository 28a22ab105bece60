"""The fine-tuning run: :func:`finetune` sets up the run directory, the LoRA model, the
optimizer and the input pipeline, resumes from a checkpoint, and runs the training loop
(see :mod:`msce.train.finetune`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from msce.errors import ConfigError, DatasetError
from msce.train._common import _Bar, _digest_lines, _json_default, _split_info, _write_json
from msce.train.checkpoints import (_checkpoints, _load_checkpoint, _read_log, _save_adapter, _save_checkpoint,
                                    _set_rng_state)
from msce.train.descriptions import describe_videos
from msce.train.encoding import Example, ExampleEncoder, _strategy_kind, answer_loss, collate
from msce.train.lora import _apply_lora
from msce.train.options import (_MEDIA_ERRORS, ADAPTER_DIR, CONFIG_FILE, DESCRIPTIONS_FILE, ERRORS_FILE, LOG_FILE,
                                STATE_FILE, Log, LoraOptions, SamplingOptions, TrainOptions, _stderr)
from msce.train.sampling import ClassBalancedSampler


def _resolve_precision(precision: str, device: Any) -> str:
    import torch

    if device.type != "cuda":
        if precision == "fp16":
            raise ConfigError(f"fp16 mixed precision needs a CUDA device, not {device.type} (use bf16 or fp32)")
        return "bf16" if precision == "bf16" else "fp32"  # auto = fp32 off CUDA
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def _autocast(precision: str, device: Any):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _lr_lambda(scheduler: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if scheduler == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


class _Prefetcher:
    """Runs an iterator on a background thread, ``size`` items ahead (frame decoding and
    tokenization overlap the model's forward and backward passes)."""

    def __init__(self, it: Iterator, size: int = 2):
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="msce-finetune-inputs")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put(("item", item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", exc))
            return
        self._put(("end", None))

    def get(self) -> Any:
        kind, value = self._q.get()
        if kind == "error":
            raise value
        if kind == "end":
            raise StopIteration
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class FinetuneResult:
    """What :func:`finetune` did. ``losses`` lists ``(step, loss)`` of every step this
    call ran (steps are 1-based and continue across resumes)."""

    out_dir: Path
    adapter_dir: Path
    start_step: int
    steps: int
    losses: list[tuple[int, float]]
    sampler: dict
    train_seconds: float
    steps_per_second: float
    examples_per_second: float
    config: dict
    model: Any = None


def _fingerprint(config: Mapping) -> dict:
    """The settings a resumed run must share with the run it continues."""
    train = dict(config["train"])
    for k in ("epochs", "max_steps", "save_every", "keep_checkpoints"):
        train.pop(k, None)
    return {
        "dataset": config["dataset"]["name"],
        "labels": config["dataset"]["labels"],
        "split_test_sha256": config["split"]["test_sha256"],
        "train_ids_sha256": config["data"]["train_ids_sha256"],
        "sampler": config["sampler"],
        "strategy": config["strategy"],
        "model": config["model"]["weights"],
        "lora": config["lora"],
        "train": train,
        "precision": config["precision"],
    }


def _device(device: str) -> Any:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as a torch.device."""
    import torch

    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        ("cpu" if device == "auto" else device))


def _run_dir(out: Path, resume: Any) -> tuple[Path, list]:
    """Make the run directory; (its config path, its checkpoints). A fresh run (``resume``
    False) refuses a directory that already holds one."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / CONFIG_FILE
    checkpoints = _checkpoints(out)
    if resume is False and (cfg_path.exists() or checkpoints):
        raise ConfigError(f"{out} already holds a fine-tuning run; pass resume (--resume) or choose another --out")
    return cfg_path, checkpoints


def _continue_config(cfg_path: Path, config: dict, out: Path, now: str,
                     fingerprint: Callable[[Mapping], dict] = _fingerprint) -> None:
    """When ``cfg_path`` holds an earlier session's config: refuse different settings
    (``fingerprint``), keep its creation time and sessions."""
    if not cfg_path.exists():
        return
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {cfg_path}: {exc}") from None
    a, b = fingerprint(old), fingerprint(config)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise ConfigError(f"{out} holds a fine-tuning run with a different {', '.join(diff)}; "
                          f"resume only with the same settings, or choose another --out")
    config["created"] = old.get("created", now)
    config["sessions"] = list(old.get("sessions", []))


def _optimization(net: Any, train: TrainOptions, total_steps: int, precision: str) -> tuple[list, Any, Any, Any]:
    """(trainable parameters, AdamW, the LR schedule, the fp16 GradScaler or None)."""
    import torch

    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(train.lr), weight_decay=float(train.weight_decay))
    warmup = train.warmup_steps(total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(train.scheduler, warmup, total_steps))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return params, optimizer, scheduler, scaler


def _resume_state(resume: Any, checkpoints: list, load: Callable[[Path], dict], optimizer: Any, scheduler: Any,
                  scaler: Any, sampler: ClassBalancedSampler, device_obj: Any, log: Log) -> int:
    """Restore the checkpoint ``resume`` names (True: the latest, if any) with ``load``
    (its weights; returns the state dict); the step to start from."""
    if resume is False:
        return 0
    ckpt = None
    if resume is not True:
        ckpt = Path(resume)
        if not (ckpt / STATE_FILE).is_file():
            raise ConfigError(f"not a fine-tuning checkpoint (no {STATE_FILE}): {ckpt}")
    elif checkpoints:
        ckpt = checkpoints[-1][1]
    if ckpt is None:
        return 0
    state = load(ckpt)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    _set_rng_state(state["rng"], device_obj)
    start_step = int(state["step"])
    log(f"resuming from {ckpt} at step {start_step}")
    return start_step


def _optimizer_step(params: list, optimizer: Any, scaler: Any, max_grad_norm: float) -> float | None:
    """Unscale (fp16), clip, step; the gradient norm before clipping (None without clipping)."""
    import torch

    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = None
    if float(max_grad_norm) > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm)))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


@contextlib.contextmanager
def _loop_io(steps: Iterator, out: Path, total_steps: int, progress: bool, start_step: int):
    """The training loop's progress bar, ``steps`` as a prefetching iterator and the open
    training log (appended to); all closed when the loop ends."""
    bar = _Bar(total_steps, progress, "finetune", done=start_step, stats=True)
    feeder = _Prefetcher(steps, size=2)
    log_f = open(out / LOG_FILE, "a", encoding="utf-8")

    def fed() -> Iterator:
        while True:
            try:
                yield feeder.get()
            except StopIteration:
                return

    try:
        yield bar, fed(), log_f
    finally:
        feeder.close()
        bar.close()
        log_f.close()


def _log_step(log_f: Any, history: list, rec: dict) -> None:
    log_f.write(json.dumps(rec) + "\n")
    log_f.flush()
    history.append(rec)


def _checkpoint_if_due(out: Path, step: int, total_steps: int, train: TrainOptions, sampler: ClassBalancedSampler,
                       net: Any, optimizer: Any, scheduler: Any, scaler: Any, device_obj: Any, config: dict) -> None:
    """Save a checkpoint every ``train.save_every`` steps and at the last step."""
    if (train.save_every and step % train.save_every == 0) or step == total_steps:
        sampler.set_epoch((step * train.examples_per_step) // len(sampler))
        _save_checkpoint(out, step, net, optimizer, scheduler, scaler, sampler, device_obj, config,
                         train.keep_checkpoints)


def _loss_summary(history: list, step: int, total_steps: int) -> str | None:
    """``step S/T: loss A (first k) -> B (last k)`` over the logged losses, or None."""
    done = [r["loss"] for r in history if r.get("loss") is not None]
    if not done:
        return None
    k = min(5, len(done))
    return f"step {step}/{total_steps}: loss {sum(done[:k]) / k:.4f} (first {k}) -> {sum(done[-k:]) / k:.4f} (last {k})"


def finetune(
    dataset: Any,
    split: Any,
    strategy: Any,
    model: str,
    out_dir: str | os.PathLike,
    *,
    lora: LoraOptions = LoraOptions(),
    train: TrainOptions = TrainOptions(),
    sampling: SamplingOptions = SamplingOptions(),
    backend_options: Mapping | None = None,
    device: str = "auto",
    cache: Any = None,
    resume: bool | str | os.PathLike = False,
    on_error: str = "raise",
    progress: bool = True,
    keep_model: bool = False,
    log: Log = _stderr,
    command: Sequence[str] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` with LoRA on the class-balanced train clips of ``split``.

    Args:
        dataset: an :class:`msce.eval.datasets.Dataset` (its ``label_set`` gives the answers).
        split: an :class:`msce.eval.splits.Split`; training uses ``split.train`` only.
        strategy: Sparse / Dense / MSCE (its plan and prompts define the inputs).
        model: base checkpoint (directory or hub id) loadable by the transformers backend.
        out_dir: the run directory (see the module docstring).
        backend_options: extra :class:`~msce.models.backends.hf.TransformersBackend` options
            (``min_pixels``, ``max_pixels``, ``attn_implementation``, ...).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        cache: a :class:`msce.models.cache.ResponseCache` for the MSCE stage-1 descriptions.
        resume: True = continue from the latest checkpoint in ``out_dir`` (a fresh start
            when there is none); a path = that checkpoint; False = a fresh run (an
            existing run in ``out_dir`` is refused).
        on_error: ``"skip"`` drops clips whose media cannot be decoded (logged in
            ``errors.jsonl``); ``"raise"`` stops.
        keep_model: return the trained PeftModel in ``FinetuneResult.model``.
    """
    import torch

    from msce.models.backends import get_backend
    from msce.eval.runner import SPLIT_FILE, environment_info

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    labels = dataset.label_set
    out = Path(out_dir)
    train_samples = split.train_samples(dataset)
    if not train_samples:
        raise DatasetError(f"split {split.name} has no training clips")
    present = {s.label for s in train_samples}
    sampler = ClassBalancedSampler.from_samples(
        train_samples, sampling.n_per_class, mode=sampling.mode, seed=sampling.seed, classes=labels,
        split=split, resample_each_epoch=sampling.resample_each_epoch)
    missing_classes = [c for c in labels.names if c not in present]
    if missing_classes:
        log(f"warning: no training clips of {missing_classes}; the sampler balances the other classes")
    kind = _strategy_kind(strategy)
    total_steps = train.total_steps(len(sampler))
    per_step = train.examples_per_step

    device_obj = _device(device)
    precision = _resolve_precision(train.precision, device_obj)

    # ---- the run directory and its config
    cfg_path, checkpoints = _run_dir(out, resume)

    opts = dict(backend_options or {})
    weights_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
    opts.setdefault("dtype", weights_dtype)
    opts["device"] = str(device_obj)
    for bad in ("adapter", "model"):
        if bad in opts:
            raise ConfigError(f"backend option {bad!r} is set by finetune itself")
    torch.manual_seed(train.seed)
    backend = get_backend("transformers", model=str(model), **opts)
    backend_cfg = backend.config() if hasattr(backend, "config") else {"model": str(model)}

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    config: dict = {
        "format": "msce-finetune",
        "version": 1,
        "created": now,
        "dataset": {**dataset.describe(), "labels": list(labels.names)},
        "split": _split_info(split),
        "data": {
            "train_clips": len(train_samples),
            "train_ids_sha256": _digest_lines([s.id for s in train_samples]),
        },
        "sampler": sampler.describe(),
        "strategy": json.loads(json.dumps(strategy.config(), default=_json_default)),
        "training_input": ("msce stage-2 prompt with base-model stage-1 descriptions" if kind == "msce"
                           else f"{strategy.name} frames as one video + question and choices"),
        "answers": {name: labels.display[i] for i, name in enumerate(labels.names)},
        "model": {"base": str(model), "weights": backend_cfg.get("weights"), "backend": backend_cfg,
                  "backend_options": {k: v for k, v in opts.items() if k != "device"}},
        "lora": lora.to_dict(),
        "train": train.to_dict(),
        "precision": precision,
        "device": str(device_obj),
        "total_steps": total_steps,
        "examples_per_step": per_step,
        "environment": environment_info(),
        "sessions": [],
    }
    _continue_config(cfg_path, config, out, now)
    split.save(out / SPLIT_FILE)
    log(_histogram_text(sampler, labels))

    # ---- MSCE: stage-1 descriptions by the base model, before any LoRA layer exists
    descriptions = None
    skipped: list[dict] = []
    epochs_needed = max(1, math.ceil(total_steps * per_step / len(sampler)))
    if kind == "msce":
        used = [train_samples[p] for p in sampler.used_positions(epochs_needed)]
        descriptions, skipped = describe_videos(used, strategy, labels, backend, out / DESCRIPTIONS_FILE, cache,
                                                on_error=on_error, progress=progress, log=log)

    # ---- LoRA, optimizer, scheduler
    torch.manual_seed(train.seed)
    net, targets, n_trainable = _apply_lora(backend.model, lora, train.gradient_checkpointing, log)
    backend.model = net
    net.to(device_obj)
    net.train()
    config["lora_resolved"] = {"target_layers": len(targets), "trainable_parameters": n_trainable}
    params, optimizer, scheduler, scaler = _optimization(net, train, total_steps, precision)
    start_step = _resume_state(resume, checkpoints, lambda ckpt: _load_checkpoint(ckpt, net), optimizer, scheduler,
                               scaler, sampler, device_obj, log)
    config["sessions"].append({"started": now, "command": list(command) if command is not None else list(sys.argv),
                               "start_step": start_step, "total_steps": total_steps,
                               "environment": environment_info()})
    _write_json(cfg_path, config)
    history = _read_log(out / LOG_FILE, start_step)

    # ---- the input pipeline
    encoder = ExampleEncoder(backend, strategy, labels, descriptions)
    skip_ids = {f["id"] for f in skipped}
    pad_id = backend.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = min(encoder.eos_ids)
    errors_path = out / ERRORS_FILE
    if skipped:
        with open(errors_path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(rec) + "\n" for rec in skipped)

    def encode(sample: Any):
        if str(sample.id) in skip_ids:
            return None
        try:
            return encoder.encode(sample)
        except _MEDIA_ERRORS as exc:
            if on_error != "skip":
                raise
            skip_ids.add(str(sample.id))
            with open(errors_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"id": str(sample.id), "path": os.fspath(sample.path), "error": type(exc).__name__,
                                    "message": str(exc), "stage": "train"}) + "\n")
            return None

    def steps() -> Iterator[tuple[int, list[list[Example]]]]:
        stream = sampler.stream(start_step * per_step)
        for step in range(start_step, total_steps):
            micro = []
            for _ in range(train.grad_accum):
                batch = [encode(train_samples[next(stream)[1]]) for _ in range(train.batch_size)]
                micro.append([e for e in batch if e is not None])
            yield step, micro

    # ---- the loop
    losses: list[tuple[int, float]] = []
    keep_logits = "logits_to_keep" in _forward_params(net)
    with _loop_io(steps(), out, total_steps, progress, start_step) as (bar, fed, log_f):
        t_start = time.perf_counter()
        ran, step = 0, start_step
        for step, micro in fed:
            t0 = time.perf_counter()
            n_tokens = 0
            batches = []
            for examples in micro:
                if examples:
                    inputs, targets, n_answer = collate(examples, pad_id)
                    batches.append((inputs, targets, n_answer, len(examples)))
                    n_tokens += int((targets != -100).sum())
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            n_examples = sum(b[3] for b in batches)
            for inputs, targets, n_answer, _ in batches:
                inputs = {k: v.to(device_obj) for k, v in inputs.items()}
                with _autocast(precision, device_obj):
                    loss, _ = answer_loss(net, inputs, targets, n_answer, keep_logits)
                loss = loss / n_tokens
                (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_sum += float(loss.detach())
            grad_norm = None
            if batches:
                grad_norm = _optimizer_step(params, optimizer, scaler, train.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            ran += 1
            rec = {"step": step, "loss": loss_sum if batches else None, "lr": lr, "answer_tokens": n_tokens,
                   "examples": n_examples, "grad_norm": grad_norm, "seconds": round(time.perf_counter() - t0, 6),
                   "epoch": (step * per_step - 1) // len(sampler)}
            _log_step(log_f, history, rec)
            if batches:
                losses.append((step, loss_sum))
            bar.advance(f"loss {loss_sum:.4f} lr {lr:.2e}")
            _checkpoint_if_due(out, step, total_steps, train, sampler, net, optimizer, scheduler, scaler, device_obj,
                               config)
    seconds = time.perf_counter() - t_start

    adapter_dir = out / ADAPTER_DIR
    final_cfg = dict(config)
    final_cfg["final_step"] = step
    final_cfg["skipped_clips"] = sorted(skip_ids)
    _save_adapter(net, adapter_dir, final_cfg)
    _write_json(cfg_path, config)
    net.eval()
    summary = _loss_summary(history, step, total_steps)
    if summary is not None:
        log(f"{summary}; {ran / seconds if seconds else 0:.2f} steps/s; adapter in {adapter_dir}")
    result = FinetuneResult(
        out_dir=out, adapter_dir=adapter_dir, start_step=start_step, steps=step, losses=losses,
        sampler=sampler.describe(), train_seconds=seconds,
        steps_per_second=ran / seconds if seconds else 0.0,
        examples_per_second=ran * per_step / seconds if seconds else 0.0,
        config=final_cfg, model=net if keep_model else None,
    )
    if not keep_model:
        backend.model = None
        del net
        if device_obj.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _forward_params(model: Any) -> set[str]:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return set(inspect.signature(base.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _histogram_text(sampler: ClassBalancedSampler, labels: Any) -> str:
    d = sampler.describe()
    lines = [f"class-balanced sampler: {d['mode']}, {d['n_per_class']} per class x {len(d['classes'])} classes "
             f"= {d['epoch_size']} examples per epoch (seed {d['seed']})",
             f"  {'class':<16} {'available':>9} {'drawn':>6} {'distinct':>8}"]
    for c in d["classes"]:
        lines.append(f"  {c:<16} {d['available'][c]:>9} {d['histogram'][c]:>6} {d['distinct_per_epoch'][c]:>8}")
    return "\n".join(lines)
