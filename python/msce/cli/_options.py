"""Command-line helpers shared by ``msce eval`` and ``msce finetune``: ``KEY=VALUE``
options, run-directory names, the default response cache, the strategy named on the
command line, and the dataset and split chosen by the data options."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from msce.errors import ConfigError

__all__ = ["default_cache_path", "make_strategy"]


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


def make_strategy(name: str, **options: Any) -> Any:
    """A registered strategy (``msce.models.strategies.get_strategy``) or a ``"package.module:Class"`` path."""
    if ":" in name:
        import importlib

        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load strategy {name!r}: {exc}") from None
        return cls(**options)
    from msce.models.strategies import get_strategy

    return get_strategy(name, **options)


def _strategy_options(args: argparse.Namespace) -> dict:
    opts = _kv(args.strategy_opt, "--strategy-opt")
    if args.fps is not None:
        opts.setdefault("keyframe_fps" if args.strategy in ("msce", "msce-notext", "sparse-images") else "fps",
                        args.fps)
    if args.strategy == "shuffled":
        opts.setdefault("seed", args.seed)
    vp_opts = _kv(getattr(args, "visual_prompt_opt", None), "--visual-prompt-opt")
    if getattr(args, "visual_prompt", None):
        opts["visual_prompt"] = {"name": args.visual_prompt, **vp_opts}
    elif vp_opts:
        raise ConfigError("--visual-prompt-opt needs --visual-prompt")
    return opts


def _build_split(args: argparse.Namespace, dataset: Any):
    from msce.eval.splits import Split, balanced_split, official_split

    if args.split_file and Path(args.split_file).is_file():
        return Split.load(args.split_file)
    if args.split == "official":
        split = official_split(dataset, args.fold)
    elif args.split == "balanced":
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
    return load_dataset(args.dataset, args.root, **opts)
