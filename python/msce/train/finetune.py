"""Class-balanced LoRA fine-tuning on msce's inputs (the paper's decoupled training, Sec. 4.1).

The paper fine-tunes Qwen2.5-VL with LoRA on about 1,500 MAFW videos drawn so that every
class has the same number of clips, which spreads the predictions across classes and
lifts the tail classes. :func:`finetune` (``msce finetune``) does this on any
transformers Qwen-VL model with exactly the frames, prompts and metrics of ``msce eval``:

Data
    Training clips are the split's train part (the balanced or official test clips are
    never trained on: the sampler refuses them). A :class:`msce.train.sampling.ClassBalancedSampler`
    draws ``n_per_class`` clips of every class (undersampling, or oversampling small
    classes), seeded; its class histogram is printed and recorded.

Inputs
    Each example is what the strategy sends at inference, as one chat turn: frames
    loaded by the core (``msce.load`` / ``msce.load_segments`` with the strategy's plan
    and the backend's ``msce.QwenVL`` target) and the strategy's prompt, rendered and
    placeholder-expanded by the transformers backend (:meth:`TransformersBackend.build_inputs`).
    The assistant's answer is the class's display name (the word listed in the prompt's
    choices, e.g. ``"Happiness"``) followed by the chat template's end-of-turn token;
    the loss covers only those answer tokens.

    * ``sparse`` / ``dense``: the frames as one video, the question and the choices.
    * ``msce``: the stage-2 prompt (keyframes interleaved with gap descriptions). The
      gap descriptions come from the BASE model: before training, the MSCE strategy runs
      on every training clip the sampler will use (stage 1 as at inference; stage 2
      limited to one token), through the response cache, and the descriptions are kept
      in ``descriptions.jsonl``. The training prompt is rebuilt from them and checked to
      be identical to the stage-2 prompt the strategy rendered. At evaluation, MSCE runs
      both stages with the adapted model (``msce eval --adapter``), as it would be used.

Training
    LoRA (peft) on the language model's linear layers (vision tower frozen unless
    ``train_vision``: then its blocks get LoRA too; the vision-language projector stays
    frozen); AdamW with warmup and a cosine, linear or constant schedule; gradient
    accumulation with the loss averaged over all answer tokens of an optimizer step;
    bf16 autocast on CUDA (fp16 + loss scaling where bf16 is unsupported), fp32 on CPU.
    Inputs for the next step are built on a background thread while the model trains.

Output directory
    ``msce_finetune.json`` (data, split, sampler histogram, strategy, model, LoRA and
    optimizer settings, sessions), ``split.json``, ``train_log.jsonl`` (one line per
    optimizer step: loss, lr, answer tokens, time), ``descriptions.jsonl`` (msce only),
    ``checkpoints/step-NNNNNNN/`` (adapter, ``trainer_state.pt`` with optimizer,
    scheduler, loss-scaler and RNG states, step and sampler position), ``adapter/`` (the
    final adapter: ``adapter_config.json``, ``adapter_model.safetensors`` and a copy of
    ``msce_finetune.json``) and ``eval/`` (an ``msce eval`` run directory of the test
    split with the adapter). A run resumes from its latest checkpoint (``resume=True``)
    and continues the step count; settings that would change the result are checked.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import queue
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from msce.errors import ConfigError, DatasetError, DecodeError, MsceError, PlanError
from msce.train.sampling import MODES, ClassBalancedSampler
from msce.io import load
from msce.io import load_segments
from msce.targets import QwenVL

__all__ = [
    "LoraOptions",
    "TrainOptions",
    "SamplingOptions",
    "Example",
    "ExampleEncoder",
    "FinetuneResult",
    "finetune",
    "evaluate_adapter",
    "describe_videos",
    "lora_target_modules",
    "collate",
    "answer_loss",
    "confusion_text",
    "CONFIG_FILE",
    "add_cli",
]

CONFIG_FILE = "msce_finetune.json"
LOG_FILE = "train_log.jsonl"
DESCRIPTIONS_FILE = "descriptions.jsonl"
ERRORS_FILE = "errors.jsonl"
STATE_FILE = "trainer_state.pt"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_VISION_PARTS = ("visual", "vision_tower", "vision_model", "vision_encoder", "image_encoder")
_PROJECTOR_WORDS = ("merger", "projector")
_MEDIA_ERRORS = (DecodeError, PlanError, DatasetError)
_TRAINABLE_STRATEGIES = ("sparse", "dense", "msce")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class LoraOptions:
    """LoRA settings. ``alpha`` None = ``2 * r``. ``target_modules`` names the language
    model's linear layers by their last name component (``"all-linear"`` = every linear
    layer of the language model); ``train_vision`` adds LoRA to every linear layer of
    the vision tower's blocks."""

    r: int = 16
    alpha: float | None = None
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    train_vision: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"lora r must be a positive integer, got {self.r!r}")
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ConfigError(f"lora alpha must be > 0, got {self.alpha!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"lora dropout must be in [0, 1), got {self.dropout!r}")
        if not self.target_modules:
            raise ConfigError("target_modules is empty")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @property
    def scale_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r

    def to_dict(self) -> dict:
        d = asdict(self)
        d["alpha"] = self.scale_alpha
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass(frozen=True)
class TrainOptions:
    """Optimization settings. ``max_steps`` (optimizer steps) overrides ``epochs``; an
    optimizer step consumes ``batch_size * grad_accum`` examples. ``save_every`` = 0
    saves a checkpoint only at the end; ``keep_checkpoints`` = 0 keeps them all.
    ``precision``: ``"auto"`` (bf16 autocast on CUDA where supported, else fp16 with loss
    scaling; fp32 on CPU), ``"bf16"`` (also on CPU, where autocast supports it), ``"fp16"``
    (CUDA only) or ``"fp32"``. With bf16/fp16 the frozen base weights are loaded in that
    dtype and the LoRA weights stay fp32."""

    epochs: float = 3.0
    max_steps: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    batch_size: int = 1
    grad_accum: int = 8
    max_grad_norm: float = 1.0
    save_every: int = 100
    keep_checkpoints: int = 3
    seed: int = 0
    precision: str = "auto"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("save_every", "keep_checkpoints", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {v!r}")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise ConfigError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if self.max_steps is None and not float(self.epochs) > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}")
        if not float(self.lr) > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if float(self.weight_decay) < 0 or not 0 <= float(self.warmup_ratio) < 1:
            raise ConfigError("weight_decay must be >= 0 and warmup_ratio in [0, 1)")
        if self.scheduler not in ("cosine", "linear", "constant"):
            raise ConfigError(f"scheduler must be cosine, linear or constant; got {self.scheduler!r}")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16, fp16 or fp32; got {self.precision!r}")
        if not float(self.max_grad_norm) >= 0:
            raise ConfigError(f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm!r}")

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def total_steps(self, epoch_size: int) -> int:
        if self.max_steps is not None:
            return int(self.max_steps)
        return max(1, math.ceil(float(self.epochs) * epoch_size / self.examples_per_step))

    def warmup_steps(self, total: int) -> int:
        return int(math.ceil(float(self.warmup_ratio) * total))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplingOptions:
    """The class-balanced sampler (:class:`msce.train.sampling.ClassBalancedSampler`)."""

    n_per_class: int | None = None
    mode: str = "undersample"
    seed: int = 0
    resample_each_epoch: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"sampling mode must be one of {MODES}, got {self.mode!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- examples


@dataclass
class Example:
    """One encoded training example (batch dimension removed).

    ``input_ids`` = prompt + answer; the last ``n_answer`` ids are the loss targets.
    ``per_token`` holds the other (L,) tensors (``attention_mask``,
    ``mm_token_type_ids``); ``visual`` the tensors concatenated across a batch
    (``pixel_values_videos``, ``video_grid_thw``, ``pixel_values``, ...).
    """

    id: str
    label: str
    input_ids: Any
    n_answer: int
    per_token: dict
    visual: dict
    prompt: str
    answer: str
    frame_indices: list[int] = field(default_factory=list)


def _strategy_kind(strategy: Any) -> str:
    from msce.models.strategies import MSCE, Sparse

    if isinstance(strategy, MSCE):
        return "msce"
    if isinstance(strategy, Sparse):  # Sparse and Dense
        return "frames"
    raise ConfigError(f"fine-tuning supports the sparse, dense and msce strategies; got {type(strategy).__name__}")


class ExampleEncoder:
    """Builds training examples exactly as the strategy builds inference requests.

    Args:
        backend: a :class:`msce.models.backends.hf.TransformersBackend` (its chat template,
            placeholder expansion and tensor layout are used as they are at inference).
        strategy: a Sparse / Dense / MSCE strategy.
        labels: the dataset's :class:`msce.labels.LabelSet`.
        descriptions: for MSCE, ``{sample id: record}`` from :func:`describe_videos`.
    """

    def __init__(self, backend: Any, strategy: Any, labels: Any, descriptions: Mapping[str, Mapping] | None = None):
        self.backend = backend
        self.strategy = strategy
        self.labels = labels
        self.kind = _strategy_kind(strategy)
        self.descriptions = descriptions or {}
        if getattr(backend, "mode", None) not in ("tokens", "processor"):
            raise ConfigError("fine-tuning needs the transformers backend (msce.models.backends.hf.TransformersBackend)")
        tok = backend.tokenizer
        eos = backend.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tok.eos_token_id is not None:
            eos.append(int(tok.eos_token_id))
        self.eos_ids = {int(e) for e in eos}
        if not self.eos_ids:
            raise ConfigError(f"{backend.model_id}: no end-of-sequence token to end the answers with")
        self._completion_memo: dict[tuple[str, str], list[int]] = {}

    def answer(self, label: str) -> str:
        """The answer word for a class: its display name, as listed in the prompt's choices."""
        return self.labels.display[self.labels.index(label)]

    def request(self, sample: Any) -> tuple[list, str, list[int]]:
        """(backend request, the prompt as text, frame indices sent) for one clip."""
        from msce.models.prompts import as_text
        from msce.models.strategies import _materialize

        target = self.backend.target()
        if self.kind == "frames":
            batch = load(sample.path, self.strategy.spec(), target)
            kind = "image" if len(batch.indices) == 1 else "video"
            rendered = self.strategy.prompts.classify(self.labels, kind)
            return _materialize(rendered, [batch]), as_text(rendered), [int(i) for i in batch.indices]
        rec = self.descriptions.get(str(sample.id))
        if rec is None:
            raise MsceError(f"no stage-1 descriptions for clip {sample.id!r}; run describe_videos first")
        segments = load_segments(sample.path, self.strategy.spec(), target)
        keyframes = [s for s in segments if s.roles[0] == "keyframe"]
        kf = [int(k.indices[0]) for k in keyframes]
        if kf != list(rec["keyframe_indices"]):
            raise MsceError(f"clip {sample.id!r}: keyframes {kf} differ from those described "
                            f"({rec['keyframe_indices']}); the clip or the plan changed")
        rendered = self.strategy.prompts.stage2(list(rec["motions"]), self.labels)
        text = as_text(rendered)
        if text != rec["stage2_prompt"]:
            raise MsceError(f"clip {sample.id!r}: the rebuilt stage-2 prompt differs from the one the MSCE "
                            f"strategy rendered; training and inference prompts must be identical")
        return _materialize(rendered, keyframes), text, kf

    def completion_ids(self, request: list, answer: str) -> list[int]:
        """Token ids of the assistant turn (answer + end-of-turn) as the chat template
        writes it after the generation prompt, cut after the first end-of-sequence token."""
        backend = self.backend
        messages = backend._messages(request)
        prompt = backend.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        memo_key = (prompt[-200:], answer)
        hit = self._completion_memo.get(memo_key)
        if hit is not None:
            return list(hit)
        full = backend.processor.apply_chat_template(
            messages + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False)
        if full.startswith(prompt) and answer in full[len(prompt):]:
            text = full[len(prompt):]
        else:  # a template that rewrites earlier turns: answer + end of sequence
            text = answer + (backend.tokenizer.eos_token or "")
        ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
        for i, t in enumerate(ids):
            if t in self.eos_ids:
                ids = ids[:i + 1]
                break
        else:
            ids = ids + [min(self.eos_ids)]
        self._completion_memo[memo_key] = list(ids)
        return ids

    def encode(self, sample: Any) -> Example:
        import torch

        request, prompt, frames = self.request(sample)
        answer = self.answer(sample.label)
        inputs = self.backend.build_inputs([request])
        ids = inputs["input_ids"]
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise MsceError(f"expected input_ids of shape (1, L), got {tuple(ids.shape)}")
        n = ids.shape[1]
        completion = torch.tensor(self.completion_ids(request, answer), dtype=ids.dtype)
        per_token: dict = {}
        visual: dict = {}
        for key, value in inputs.items():
            if key == "input_ids":
                continue
            if not isinstance(value, torch.Tensor):
                raise MsceError(f"cannot batch the non-tensor model input {key!r}")
            if value.dim() == 2 and tuple(value.shape) == (1, n) and not _is_visual_key(key):
                fill = 1 if key == "attention_mask" else 0
                per_token[key] = torch.cat([value[0], torch.full((len(completion),), fill, dtype=value.dtype)])
            else:
                visual[key] = value
        if "attention_mask" not in per_token:
            per_token["attention_mask"] = torch.ones(n + len(completion), dtype=torch.long)
        return Example(id=str(sample.id), label=sample.label, input_ids=torch.cat([ids[0], completion]),
                       n_answer=len(completion), per_token=per_token, visual=visual, prompt=prompt,
                       answer=answer, frame_indices=frames)


def _is_visual_key(key: str) -> bool:
    return key.startswith("pixel_values") or key.endswith("grid_thw") or key.endswith("per_grid_ts")


def collate(examples: Sequence[Example], pad_id: int) -> tuple[dict, Any, int]:
    """Left-padded model inputs, the answer targets ``(B, A)`` (-100 = ignored) and ``A``,
    the longest answer. Left padding puts every answer at the end of its row, so only
    the last ``A + 1`` positions need logits."""
    import torch

    if not examples:
        raise ConfigError("cannot collate an empty batch")
    b = len(examples)
    length = max(len(e.input_ids) for e in examples)
    a = max(e.n_answer for e in examples)
    input_ids = torch.full((b, length), int(pad_id), dtype=examples[0].input_ids.dtype)
    targets = torch.full((b, a), -100, dtype=torch.long)
    keys = sorted(set().union(*(e.per_token.keys() for e in examples)))
    per_token = {k: torch.zeros((b, length), dtype=next(e.per_token[k].dtype for e in examples
                                                         if k in e.per_token)) for k in keys}
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[i, length - n:] = e.input_ids
        for k in keys:
            if k not in e.per_token:
                raise MsceError(f"example {e.id!r} lacks the model input {k!r} that others in its batch have")
            per_token[k][i, length - n:] = e.per_token[k]
        targets[i, a - e.n_answer:] = e.input_ids[n - e.n_answer:]
    inputs = {"input_ids": input_ids, **per_token}
    vkeys = sorted(set().union(*(e.visual.keys() for e in examples)))
    for k in vkeys:
        inputs[k] = torch.cat([e.visual[k] for e in examples if k in e.visual], 0)
    return inputs, targets, a


def answer_loss(model: Any, inputs: Mapping, targets: Any, n_answer: int, keep_logits: bool = True):
    """Summed cross-entropy of the answer tokens and their count.

    With ``keep_logits`` the model computes logits for the last ``n_answer + 1``
    positions only (``logits_to_keep``); position ``L - n_answer - 1 + j`` predicts
    answer token ``j``.
    """
    import torch
    import torch.nn.functional as F

    kwargs = dict(inputs)
    kwargs["use_cache"] = False
    if keep_logits:
        kwargs["logits_to_keep"] = n_answer + 1
    logits = model(**kwargs).logits
    logits = logits[:, -(n_answer + 1):-1, :].float()
    targets = targets.to(logits.device)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                           reduction="sum")
    return loss, int((targets != -100).sum())


# --------------------------------------------------------------------------- MSCE stage 1


def describe_videos(samples: Sequence[Any], strategy: Any, labels: Any, backend: Any, path: str | os.PathLike,
                    cache: Any = None, *, on_error: str = "raise", progress: bool = False,
                    log: Log = _stderr) -> tuple[dict[str, dict], list[dict]]:
    """Stage-1 gap descriptions of ``samples`` by ``backend`` (the base model), through
    the MSCE strategy itself, appended durably to ``path`` (JSON lines) and reused from it.

    The strategy runs with its own stage-1 settings (so cached descriptions are shared
    with ``msce eval`` runs of the base model) and a one-token stage 2. Returns
    ``({id: record}, failures)`` (with ``on_error="skip"``, one dict per clip whose media
    failed: ``id``, ``path``, ``error``, ``message``); a record holds ``motions`` (None for a gap without
    frames), ``keyframe_indices``, ``gap_indices`` and ``stage2_prompt``.
    """
    from msce.models.backends.base import GenerationParams
    from msce.eval.runner import PredictionLog
    from msce.models.strategies import MSCE

    if not isinstance(strategy, MSCE):
        raise ConfigError("describe_videos needs an MSCE strategy")
    describer = MSCE(strategy.keyframe_fps, strategy.gap_frames,
                     params=GenerationParams(max_new_tokens=1, seed=strategy.params.seed),
                     stage1_params=strategy.stage1_params, prompts=strategy.prompts)
    out: dict[str, dict] = {}
    failed: list[dict] = []
    with PredictionLog(path) as book:
        for rec in book.records:
            out[str(rec["id"])] = rec
        todo = [s for s in samples if str(s.id) not in out]
        if todo:
            log(f"describing the gaps of {len(todo)} training clip(s) with the base model (MSCE stage 1)")
        bar = _Bar(len(todo), progress, "stage 1")
        try:
            for s in todo:
                try:
                    res = describer.run(s.path, labels, backend, cache)
                except _MEDIA_ERRORS as exc:
                    if on_error != "skip":
                        raise
                    failed.append({"id": str(s.id), "path": os.fspath(s.path), "error": type(exc).__name__,
                                   "message": str(exc), "stage": "describe"})
                    log(f"skipping {s.id}: {type(exc).__name__}: {exc}")
                    bar.advance()
                    continue
                gaps = res.extra["gap_indices"]
                rec = {
                    "id": str(s.id),
                    "label": s.label,
                    "motions": [None if not g else m for m, g in zip(res.stage1, gaps)],
                    "keyframe_indices": res.extra["keyframe_indices"],
                    "gap_indices": gaps,
                    "stage1_prompts": res.prompts[:-1],
                    "stage2_prompt": res.prompts[-1],
                    "model_calls": res.extra["stage1_model_calls"],
                    "cache_hits": res.cache_hits,
                }
                book.append(rec)
                out[rec["id"]] = rec
                bar.advance()
        finally:
            bar.close()
    return out, failed


# --------------------------------------------------------------------------- LoRA


def lora_target_modules(model: Any, lora: LoraOptions) -> list[str]:
    """Full names of the linear layers that get LoRA (see :class:`LoraOptions`)."""
    import torch.nn as nn

    wanted = set(lora.target_modules)
    all_linear = "all-linear" in wanted
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or mod is head:
            continue
        parts = name.split(".")
        if any(p in _VISION_PARTS for p in parts):
            if lora.train_vision and not any(w in p for p in parts for w in _PROJECTOR_WORDS):
                names.append(name)
        elif all_linear or parts[-1] in wanted:
            names.append(name)
    if not any(not any(p in _VISION_PARTS for p in n.split(".")) for n in names):
        raise ConfigError(f"no linear layer of the language model matches target_modules {sorted(wanted)}")
    return names


def _apply_lora(model: Any, lora: LoraOptions, gradient_checkpointing: bool, log: Log):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ConfigError(f"fine-tuning needs peft (pip install 'msce[finetune]'): {exc}") from None
    targets = lora_target_modules(model, lora)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.scale_alpha, lora_dropout=float(lora.dropout),
                     target_modules=targets, bias="none")
    peft_model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    n_vision = sum(1 for n in targets if any(p in _VISION_PARTS for p in n.split(".")))
    log(f"LoRA r={lora.r} alpha={lora.scale_alpha:g} on {len(targets) - n_vision} language-model and "
        f"{n_vision} vision linear layers: {trainable:,} trainable of {total:,} parameters "
        f"({100.0 * trainable / max(total, 1):.3f} %)")
    return peft_model, targets, trainable


# --------------------------------------------------------------------------- helpers


def _json_default(o: Any) -> Any:
    from msce.eval.runner import _json_default as base

    return base(o)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _digest_lines(items: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in items:
        h.update(str(i).encode("utf-8") + b"\n")
    return h.hexdigest()


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


class _Bar:
    """A rich progress bar on stderr (no-op when disabled)."""

    def __init__(self, total: int, enabled: bool, title: str, done: int = 0, stats: bool = False):
        self._p = None
        if not enabled or total <= done:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        if stats:
            cols.append(TextColumn("{task.fields[stats]}"))
        cols += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        self._p = Progress(*cols, console=Console(stderr=True))
        self._p.start()
        self._task = self._p.add_task(title, total=total, completed=done, stats="")

    def advance(self, stats: str = "") -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, stats=stats)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


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


# --------------------------------------------------------------------------- checkpoints


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


# --------------------------------------------------------------------------- training


def _split_info(split: Any) -> dict:
    from msce.eval.runner import SPLIT_FILE

    return {
        "name": split.name,
        "kind": split.kind,
        "seed": split.seed,
        "fold": split.fold,
        "n_per_class": split.n_per_class,
        "num_test": len(split.test),
        "num_train": len(split.train),
        "test_sha256": _digest_lines(split.test),
        "file": SPLIT_FILE,
    }


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

    device_obj = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                              ("cpu" if device == "auto" else device))
    precision = _resolve_precision(train.precision, device_obj)

    # ---- the run directory and its config
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / CONFIG_FILE
    checkpoints = _checkpoints(out)
    if resume is False and (cfg_path.exists() or checkpoints):
        raise ConfigError(f"{out} already holds a fine-tuning run; pass resume (--resume) or choose another --out")

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
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {cfg_path}: {exc}") from None
        a, b = _fingerprint(old), _fingerprint(config)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if diff:
            raise ConfigError(f"{out} holds a fine-tuning run with a different {', '.join(diff)}; "
                              f"resume only with the same settings, or choose another --out")
        config["created"] = old.get("created", now)
        config["sessions"] = list(old.get("sessions", []))
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
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(train.lr), weight_decay=float(train.weight_decay))
    warmup = train.warmup_steps(total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(train.scheduler, warmup, total_steps))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    start_step = 0
    if resume is not False:
        ckpt = None
        if resume is not True:
            ckpt = Path(resume)
            if not (ckpt / STATE_FILE).is_file():
                raise ConfigError(f"not a fine-tuning checkpoint (no {STATE_FILE}): {ckpt}")
        elif checkpoints:
            ckpt = checkpoints[-1][1]
        if ckpt is not None:
            state = _load_checkpoint(ckpt, net)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            sampler.load_state_dict(state["sampler"])
            _set_rng_state(state["rng"], device_obj)
            start_step = int(state["step"])
            log(f"resuming from {ckpt} at step {start_step}")
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
    keep_logits = "logits_to_keep" in _forward_params(net)
    losses: list[tuple[int, float]] = []
    bar = _Bar(total_steps, progress, "finetune", done=start_step, stats=True)
    feeder = _Prefetcher(steps(), size=2)
    log_f = open(out / LOG_FILE, "a", encoding="utf-8")
    t_start = time.perf_counter()
    ran = 0
    step = start_step
    try:
        while True:
            try:
                step, micro = feeder.get()
            except StopIteration:
                break
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
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if float(train.max_grad_norm) > 0:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float(train.max_grad_norm)))
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            ran += 1
            rec = {"step": step, "loss": loss_sum if batches else None, "lr": lr, "answer_tokens": n_tokens,
                   "examples": n_examples, "grad_norm": grad_norm, "seconds": round(time.perf_counter() - t0, 6),
                   "epoch": (step * per_step - 1) // len(sampler)}
            log_f.write(json.dumps(rec) + "\n")
            log_f.flush()
            history.append(rec)
            if batches:
                losses.append((step, loss_sum))
            bar.advance(f"loss {loss_sum:.4f} lr {lr:.2e}")
            if (train.save_every and step % train.save_every == 0) or step == total_steps:
                sampler.set_epoch((step * per_step) // len(sampler))
                _save_checkpoint(out, step, net, optimizer, scheduler, scaler, sampler, device_obj, config,
                                 train.keep_checkpoints)
    finally:
        feeder.close()
        bar.close()
        log_f.close()
    seconds = time.perf_counter() - t_start

    adapter_dir = out / ADAPTER_DIR
    final_cfg = dict(config)
    final_cfg["final_step"] = step
    final_cfg["skipped_clips"] = sorted(skip_ids)
    _save_adapter(net, adapter_dir, final_cfg)
    _write_json(cfg_path, config)
    net.eval()
    done = [r["loss"] for r in history if r.get("loss") is not None]
    if done:
        k = min(5, len(done))
        log(f"step {step}/{total_steps}: loss {sum(done[:k]) / k:.4f} (first {k}) -> "
            f"{sum(done[-k:]) / k:.4f} (last {k}); {ran / seconds if seconds else 0:.2f} steps/s; "
            f"adapter in {adapter_dir}")
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


# --------------------------------------------------------------------------- evaluation


def evaluate_adapter(dataset: Any, split: Any, strategy: Any, model: str, adapter: str | os.PathLike,
                     out_dir: str | os.PathLike, *, backend_options: Mapping | None = None, cache: Any = None,
                     limit: int | None = None, seed: int = 0, on_error: str = "raise", progress: bool = True,
                     n_boot: int = 1000, command: Sequence[str] | None = None):
    """``msce eval`` of the test split with the base model plus ``adapter``
    (:func:`msce.eval.runner.run_eval`, same metrics, confusion matrix and run directory)."""
    from msce.models.backends import get_backend
    from msce.eval.runner import SPLIT_FILE, run_eval

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split.save(out / SPLIT_FILE)
    opts = {k: v for k, v in (backend_options or {}).items() if k not in ("model", "adapter")}
    backend = get_backend("transformers", model=str(model), adapter=str(adapter), **opts)
    return run_eval(dataset, split.test_samples(dataset), strategy, backend, out, cache, split=_split_info(split),
                    seed=seed, extra_config={"backend_name": "transformers",
                                             "backend_options": {**opts, "model": str(model), "adapter": str(adapter)},
                                             "finetune_run": str(Path(adapter).resolve().parent)},
                    limit=limit, on_error=on_error, progress=progress, n_boot=n_boot,
                    command=command if command is not None else ["msce"] + sys.argv[1:])


def confusion_text(report: Any) -> str:
    """The confusion matrix (rows: true class; last column: invalid answers) as text."""
    labels = list(report.labels)
    cm = report.confusion
    width = max(len("predicted"), *(len(x) for x in labels))
    head = " " * (width + 2) + " ".join(f"{x[:6]:>6}" for x in labels) + f" {'inv':>6}"
    rows = [head]
    for i, name in enumerate(labels):
        rows.append(f"{name:<{width}}  " + " ".join(f"{int(v):>6}" for v in cm[i]))
    pred = cm[:, :-1].sum(axis=0)
    rows.append(f"{'predicted':<{width}}  " + " ".join(f"{int(v):>6}" for v in pred) + f" {int(cm[:, -1].sum()):>6}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- CLI


def _cmd_finetune(args: argparse.Namespace) -> int:
    from msce.eval.runner import (_build_split, _dataset_from_args, _kv, _strategy_options, default_cache_path,
                               make_strategy)

    if args.strategy not in _TRAINABLE_STRATEGIES:
        raise ConfigError(f"--strategy must be one of {_TRAINABLE_STRATEGIES}, got {args.strategy!r}")
    dataset = _dataset_from_args(args)
    split = _build_split(args, dataset)
    strategy = make_strategy(args.strategy, **_strategy_options(args))

    backend_opts = _kv(args.backend_opt, "--backend-opt")
    for key in ("min_pixels", "max_pixels"):
        if getattr(args, key) is not None:
            backend_opts[key] = getattr(args, key)
    targets = tuple(x.strip() for x in args.target_modules.split(",") if x.strip())
    lora = LoraOptions(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=targets,
                       train_vision=args.train_vision)
    train = TrainOptions(epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay,
                         scheduler=args.scheduler, warmup_ratio=args.warmup_ratio, batch_size=args.batch_size,
                         grad_accum=args.grad_accum, max_grad_norm=args.max_grad_norm, save_every=args.save_every,
                         keep_checkpoints=args.keep_checkpoints, seed=args.seed, precision=args.precision,
                         gradient_checkpointing=args.gradient_checkpointing)
    sampling = SamplingOptions(n_per_class=args.balanced, mode=args.sampling, seed=args.seed,
                               resample_each_epoch=args.resample_each_epoch)
    out = Path(args.out) if args.out else (
        Path("runs") / f"finetune-{dataset.name}-{split.name}-{args.strategy}-r{args.lora_r}-{_slug(args.model)}")
    cache = None
    if not args.no_cache:
        from msce.models.cache import ResponseCache

        cache = ResponseCache(args.cache or default_cache_path())
    resume: bool | str = False
    if args.resume is not None:
        resume = True if args.resume == "latest" else args.resume
    command = ["msce"] + sys.argv[1:]
    try:
        res = finetune(dataset, split, strategy, args.model, out, lora=lora, train=train, sampling=sampling,
                       backend_options=backend_opts, device=args.device, cache=cache, resume=resume,
                       on_error=args.on_error, progress=not args.no_progress, command=command)
        print(f"{res.out_dir}: trained steps {res.start_step}->{res.steps} "
              f"({res.steps_per_second:.3f} steps/s, {res.examples_per_second:.2f} examples/s); "
              f"adapter {res.adapter_dir}")
        if args.no_eval:
            return 0
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        eval_opts = dict(backend_opts)
        eval_opts.setdefault("dtype", res.config["model"]["backend_options"].get("dtype", "auto"))
        eval_opts["device"] = res.config["device"]
        ev = evaluate_adapter(dataset, split, strategy, args.model, res.adapter_dir, out / EVAL_DIR,
                              backend_options=eval_opts, cache=cache, limit=args.eval_limit, seed=args.seed,
                              on_error=args.on_error, progress=not args.no_progress, n_boot=args.n_boot,
                              command=command)
    finally:
        if cache is not None:
            cache.close()
    r = ev.report
    print(f"{ev.out_dir}: {ev.n_done}/{ev.n_requested} test videos | macro-F1 {r.macro_f1:.4f}  UAR {r.uar:.4f}  "
          f"WAR {r.war:.4f}  invalid {r.invalid_rate:.3f}")
    print(confusion_text(r))
    return 0 if ev.complete or args.on_error == "skip" else 1


def _slug(text: str) -> str:
    from msce.eval.runner import _slug as slug

    return slug(text)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce finetune``."""
    p = subparsers.add_parser(
        "finetune",
        help="class-balanced LoRA fine-tuning of a Qwen-VL model on msce's inputs",
        description="Fine-tune a transformers VLM with LoRA on class-balanced training clips (paper Sec. 4.1), "
                    "with the frames and prompts of a strategy, then evaluate the adapter like `msce eval`.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", required=True, choices=["dfew", "mafw", "generic"])
    d.add_argument("--root", required=True, help="dataset root (generic: a CSV path,label or a folder per label)")
    d.add_argument("--labels", help="generic only: 'dfew', 'mafw' or comma-separated class names")
    d.add_argument("--media", default="auto", choices=["auto", "video", "frames"])
    d.add_argument("--media-dir", help="folder of clips (relative to --root or absolute)")
    d.add_argument("--skip-missing", action="store_true", help="drop annotated clips whose media are missing")
    d.add_argument("--split", default="balanced", choices=["balanced", "official"],
                   help="train on the clips outside the test part of this split")
    d.add_argument("--fold", type=int, default=1, help="official fold (1..5)")
    d.add_argument("--n-per-class", type=int, help="balanced TEST split size per class (MAFW 45, DFEW 100)")
    d.add_argument("--split-file", help="load this split file if it exists, else save the split there")
    s = p.add_argument_group("class-balanced sampling")
    s.add_argument("--balanced", type=int, metavar="N_PER_CLASS",
                   help="training clips drawn per class (default: the smallest class, or the largest with "
                        "--sampling oversample); e.g. MAFW 136 x 11 classes = about 1,500 clips as in the paper")
    s.add_argument("--sampling", default="undersample", choices=list(MODES))
    s.add_argument("--resample-each-epoch", action="store_true", help="draw a new balanced subset every epoch")
    m = p.add_argument_group("model and strategy")
    m.add_argument("--model", required=True, help="base model: local checkpoint directory or hub id")
    m.add_argument("--strategy", required=True, choices=list(_TRAINABLE_STRATEGIES))
    m.add_argument("--fps", type=float, help="sampling rate (msce: keyframe rate)")
    m.add_argument("--strategy-opt", action="append", metavar="KEY=VALUE", help="extra strategy option (repeatable)")
    m.add_argument("--backend-opt", action="append", metavar="KEY=VALUE",
                   help="extra transformers backend option (repeatable), e.g. attn_implementation=sdpa")
    m.add_argument("--min-pixels", type=int, help="msce.QwenVL min_pixels (default: HF video defaults)")
    m.add_argument("--max-pixels", type=int, help="msce.QwenVL max_pixels (default: HF video defaults)")
    m.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    lo = p.add_argument_group("LoRA")
    lo.add_argument("--lora-r", type=int, default=16)
    lo.add_argument("--lora-alpha", type=float, help="default 2 x r")
    lo.add_argument("--lora-dropout", type=float, default=0.05)
    lo.add_argument("--target-modules", default=",".join(DEFAULT_TARGET_MODULES),
                    help="language-model linear layers (last name component), or all-linear")
    lo.add_argument("--train-vision", action="store_true", help="LoRA on the vision tower's blocks too")
    t = p.add_argument_group("optimization")
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--scheduler", default="cosine", choices=["cosine", "linear", "constant"])
    t.add_argument("--warmup-ratio", type=float, default=0.03)
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--grad-accum", type=int, default=8)
    t.add_argument("--max-grad-norm", type=float, default=1.0, help="0 = no clipping")
    t.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    t.add_argument("--gradient-checkpointing", action="store_true")
    t.add_argument("--seed", type=int, default=0, help="seed of the splits, the sampler and the LoRA init")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="run directory (default runs/finetune-<dataset>-<split>-<strategy>-r<r>-<model>)")
    o.add_argument("--save-every", type=int, default=100, help="checkpoint every N optimizer steps (0 = at the end)")
    o.add_argument("--keep-checkpoints", type=int, default=3, help="0 = keep all")
    o.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="continue from the latest checkpoint in --out (or from CHECKPOINT)")
    o.add_argument("--no-eval", action="store_true", help="skip the evaluation of the test split")
    o.add_argument("--eval-limit", type=int, help="evaluate only N test videos, round-robin over classes")
    o.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for confidence intervals")
    o.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    o.add_argument("--cache", help="response cache path (default $MSCE_CACHE or ~/.cache/msce/responses.sqlite)")
    o.add_argument("--on-error", default="raise", choices=["raise", "skip"], help="on undecodable media")
    o.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_finetune)
