"""Command-line helpers shared by ``msce eval`` and ``msce finetune``: ``KEY=VALUE``
options, run-directory names, the response cache, the strategy named on the command line,
the dataset and split chosen by the data options, and the training settings both
``msce finetune`` backends read."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from msce.errors import ConfigError

__all__ = ["UsageError", "default_cache_path", "make_strategy", "accepted_options", "construct"]


class UsageError(ConfigError):
    """A mistake on the command line: ``msce`` prints its one-line message (which names the
    flag) and exits with status 2, as argparse does for the mistakes it catches."""


#: Backend parameters that have their own ``msce eval`` flag (every other one is ``--backend-opt``).
BACKEND_FLAGS = {"model": "--model", "base_url": "--base-url", "adapter": "--adapter", "device": "--device",
                 "dtype": "--dtype", "min_pixels": "--min-pixels", "max_pixels": "--max-pixels",
                 "timeout": "--timeout", "max_retries": "--max-retries", "api_key_env": "--api-key-env"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth showing (not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def accepted_options(cls: Any) -> tuple[list[str], list[str]]:
    """(every keyword ``cls(...)`` accepts, the required ones) from its signature.

    A ``**kwargs`` that a strategy forwards to an inner strategy (:class:`Shuffled`) adds
    the inner strategies' keywords."""
    params = inspect.signature(cls).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        from msce.models.strategies import Dense, Shuffled, Sparse

        if isinstance(cls, type) and issubclass(cls, Shuffled):
            for inner in (Sparse, Dense):
                names += [n for n in accepted_options(inner)[0] if n not in names]
    return names, required


def construct(cls: Any, what: str, options: Mapping[str, Any], origin: Mapping[str, str]) -> Any:
    """``cls(**options)`` after checking the keywords against its signature.

    ``what`` names the thing on the command line (``"--strategy sparse"``), ``origin``
    maps each keyword to the flag it came from. Unknown keywords, missing required ones
    and values the constructor rejects become :class:`UsageError` naming the flag."""
    accepted, required = accepted_options(cls)
    unknown = [k for k in options if k not in accepted]
    if unknown:
        flag = origin.get(unknown[0], "option")
        raise UsageError(f"{flag}: {what} has no option {unknown[0]!r}; it accepts: {', '.join(accepted)}")
    missing = [k for k in required if k not in options]
    if missing:
        flags = [origin.get(k) or BACKEND_FLAGS.get(k) or f"--backend-opt {k}=..." for k in missing]
        raise UsageError(f"{what} needs {' and '.join(flags)}")
    try:
        return cls(**options)
    except (ConfigError, TypeError, ValueError) as exc:
        if isinstance(exc, UsageError):
            raise
        keys = [k for k in options if re.search(rf"\b{re.escape(k)}\b", str(exc))] or list(options)
        flags = "/".join(dict.fromkeys(origin.get(k, "option") for k in keys))
        values = ", ".join(f"{k}={json.dumps(options[k], default=str)}" for k in keys)
        raise UsageError(f"{flags} {values}: {what} rejects it: {exc}") from None


def _kv(items: Sequence[str] | None, flag: str) -> dict:
    """Parse ``KEY=VALUE`` options; values are JSON when they parse (numbers, true, lists)."""
    out: dict = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def _eval_summary(ev: Any, on_error: str) -> int:
    """Print a fine-tuned model's test evaluation (one summary line, then the confusion
    matrix); the command's exit status: 0 when complete or ``on_error`` is "skip", else 1."""
    from msce.train.evaluation import confusion_text

    r = ev.report
    print(f"{ev.out_dir}: {ev.n_done}/{ev.n_requested} test videos | macro-F1 {r.macro_f1:.4f}  UAR {r.uar:.4f}  "
          f"WAR {r.war:.4f}  invalid {r.invalid_rate:.3f}")
    print(confusion_text(r))
    return 0 if ev.complete or on_error == "skip" else 1


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip("/").split("/")[-1] if "/" in text else text)
    return s.strip("-") or "model"


def default_cache_path() -> Path:
    """``$MSCE_CACHE`` or ``$XDG_CACHE_HOME/msce/responses.sqlite`` (``~/.cache`` by default)."""
    env = os.environ.get("MSCE_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "msce" / "responses.sqlite"


@contextlib.contextmanager
def _response_cache(args: argparse.Namespace) -> Iterator[Any]:
    """The response cache a command reads and writes (``--cache``, else :func:`default_cache_path`),
    closed when the block ends; None with ``--no-cache``."""
    if args.no_cache:
        yield None
        return
    from msce.models.cache import ResponseCache

    cache = ResponseCache(args.cache or default_cache_path())
    try:
        yield cache
    finally:
        cache.close()


def _resume(args: argparse.Namespace) -> bool | str:
    """``--resume``: False when absent, True for the latest checkpoint, else the checkpoint named."""
    if args.resume is None:
        return False
    return True if args.resume == "latest" else args.resume


def _training(args: argparse.Namespace, **train: Any) -> tuple[Any, Any]:
    """The optimization and class-balanced sampling settings of ``msce finetune`` (both
    backends); ``train``: the TrainOptions fields only one backend sets."""
    from msce.train.options import SamplingOptions, TrainOptions

    options = TrainOptions(epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay,
                           scheduler=args.scheduler, warmup_ratio=args.warmup_ratio, batch_size=args.batch_size,
                           grad_accum=args.grad_accum, max_grad_norm=args.max_grad_norm,
                           save_every=args.save_every, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
                           precision=args.precision, **train)
    sampling = SamplingOptions(n_per_class=args.balanced, mode=args.sampling, seed=args.seed,
                               resample_each_epoch=args.resample_each_epoch)
    return options, sampling


def strategy_class(name: str) -> Any:
    """The class of a registered strategy or of a ``"package.module:Class"`` path (UsageError naming --strategy)."""
    if ":" in name:
        import importlib

        module_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"--strategy: cannot load {name!r}: {exc}") from None
    from msce.models.strategies import _STRATEGIES, available_strategies

    cls = _STRATEGIES.get(name.lower())
    if cls is None:
        raise UsageError(f"--strategy: unknown strategy {name!r}; known: {', '.join(available_strategies())} "
                         f"or package.module:Class")
    return cls


def make_strategy(name: str, origin: Mapping[str, str] | None = None, **options: Any) -> Any:
    """A registered strategy (``msce.models.strategies.get_strategy``) or a ``"package.module:Class"`` path,
    its options checked against the class's signature (``origin``: option -> the flag it came from)."""
    cls = strategy_class(name)
    if ":" not in name and name.lower() != "shuffled":
        options = {k: v for k, v in options.items() if not (k in ("params", "prompts") and v is None)}
    origin = dict(origin or {})
    for k in options:
        origin.setdefault(k, "--strategy-opt")
    return construct(cls, f"--strategy {name}", options, origin)


def backend_class(name: str) -> Any:
    """The class a backend name (or ``"package.module:Class"``) stands for (UsageError naming --backend)."""
    from msce.models.backends import _REGISTRY, _resolve, available_backends

    path = _REGISTRY.get(name) or (name if ":" in name else None)
    if path is None:
        raise UsageError(f"--backend: unknown backend {name!r}; known: {', '.join(available_backends())} "
                         f"or package.module:Class")
    try:
        return _resolve(path)
    except (ImportError, ConfigError) as exc:
        raise UsageError(f"--backend: cannot load {name!r}: {exc}") from None


def _strategy_options(args: argparse.Namespace) -> tuple[dict, dict]:
    """The strategy's options and, for each, the flag it came from."""
    opts = _kv(args.strategy_opt, "--strategy-opt")
    origin = {k: "--strategy-opt" for k in opts}
    if args.fps is not None:
        key = "keyframe_fps" if args.strategy in ("msce", "msce-notext", "sparse-images") else "fps"
        if key not in opts:
            opts[key] = args.fps
            origin[key] = "--fps"
    if args.strategy == "shuffled" and "seed" not in opts:
        opts["seed"] = args.seed
        origin["seed"] = "--seed"
    vp_opts = _kv(getattr(args, "visual_prompt_opt", None), "--visual-prompt-opt")
    if getattr(args, "visual_prompt", None):
        opts["visual_prompt"] = {"name": args.visual_prompt, **vp_opts}
        origin["visual_prompt"] = "--visual-prompt"
    elif vp_opts:
        raise UsageError("--visual-prompt-opt needs --visual-prompt")
    return opts, origin


def _build_split(args: argparse.Namespace, dataset: Any):
    from msce.eval.splits import DEFAULT_N_PER_CLASS, Split, balanced_split, official_split

    if args.split_file and Path(args.split_file).is_file():
        return Split.load(args.split_file)
    if args.split == "official":
        missing = getattr(dataset, "incomplete_folds", {}).get(args.fold)
        if missing:
            raise UsageError(f"--fold {args.fold}: {missing} is missing; complete folds: {sorted(dataset.folds)}")
        split = official_split(dataset, args.fold)
    elif args.split == "balanced":
        if args.n_per_class is None and dataset.name not in DEFAULT_N_PER_CLASS:
            raise UsageError(f"--split balanced needs --n-per-class N for the {dataset.name} dataset "
                             f"(or --split all to evaluate every clip)")
        split = balanced_split(dataset, args.n_per_class, seed=args.seed)
    elif args.split == "all":
        split = Split(kind="all", dataset=dataset.name, train=(), test=tuple(s.id for s in dataset.samples),
                      labels={s.id: s.label for s in dataset.samples})
    else:  # argparse restricts choices
        raise ConfigError(f"unknown split {args.split!r}")
    if args.split_file:
        split.save(args.split_file)
    return split


def _dataset_from_args(args: argparse.Namespace):
    """The dataset named by the shared data options (msce eval, msce finetune)."""
    from msce.eval.datasets import load_dataset

    opts: dict = {}
    if args.dataset in ("dfew", "mafw"):
        opts = {"media": args.media, "media_dir": args.media_dir}
    elif args.labels:
        opts["labels"] = args.labels if args.labels in ("dfew", "mafw") else [x for x in args.labels.split(",") if x]
    opts["on_missing"] = "skip" if args.skip_missing else "error"
    from msce.errors import DatasetError

    try:
        dataset = load_dataset(args.dataset, args.root, **opts)
    except DatasetError as exc:  # the loaders speak of their Python arguments; say the flags instead
        text = str(exc).replace("pass on_missing='skip'", "pass --skip-missing").replace(
            "(pass media_dir to choose one)", "(pass --media-dir to choose one)")
        if "do not exist" in text and "--skip-missing" not in text:
            text += "; pass --skip-missing to evaluate the rest"
        raise DatasetError(text) from None
    import sys

    for fold, path in sorted(getattr(dataset, "incomplete_folds", {}).items()):
        print(f"note: {dataset.name} fold {fold} is skipped: {path} is missing", file=sys.stderr)
    return dataset
