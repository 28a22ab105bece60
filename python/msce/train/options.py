"""Fine-tuning settings (LoRA, optimization, class-balanced sampling) and the names of
the files a run directory holds (see :mod:`msce.train.finetune`)."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Callable

from msce.errors import ConfigError, DatasetError, DecodeError, PlanError
from msce.train.sampling import MODES

CONFIG_FILE = "msce_finetune.json"
LOG_FILE = "train_log.jsonl"
DESCRIPTIONS_FILE = "descriptions.jsonl"
ERRORS_FILE = "errors.jsonl"
STATE_FILE = "trainer_state.pt"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MEDIA_ERRORS = (DecodeError, PlanError, DatasetError)
_TRAINABLE_STRATEGIES = ("sparse", "dense", "msce")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
