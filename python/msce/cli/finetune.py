"""``msce finetune``: class-balanced LoRA fine-tuning, then the evaluation of the adapter
(:mod:`msce.train.finetune`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msce.cli._options import (_build_split, _dataset_from_args, _eval_summary, _kv, _response_cache, _resume,
                               _slug, _strategy_options, _training, make_strategy)
from msce.errors import ConfigError
from msce.train.evaluation import evaluate_adapter
from msce.train.loop import finetune
from msce.train.options import _TRAINABLE_STRATEGIES, DEFAULT_TARGET_MODULES, EVAL_DIR, LoraOptions
from msce.train.sampling import MODES


def _cmd_finetune(args: argparse.Namespace) -> int:
    if args.backend == "classifier":
        from msce.cli.finetune_classifier import cmd_finetune_classifier

        return cmd_finetune_classifier(args)
    if args.strategy not in _TRAINABLE_STRATEGIES:
        raise ConfigError(f"--strategy must be one of {_TRAINABLE_STRATEGIES}, got {args.strategy!r}")
    dataset = _dataset_from_args(args)
    split = _build_split(args, dataset)
    strategy_opts, origin = _strategy_options(args)
    strategy = make_strategy(args.strategy, origin, **strategy_opts)

    backend_opts = _kv(args.backend_opt, "--backend-opt")
    for key in ("min_pixels", "max_pixels"):
        if getattr(args, key) is not None:
            backend_opts[key] = getattr(args, key)
    targets = tuple(x.strip() for x in args.target_modules.split(",") if x.strip())
    lora = LoraOptions(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=targets,
                       train_vision=args.train_vision)
    train, sampling = _training(args, gradient_checkpointing=args.gradient_checkpointing)
    out = Path(args.out) if args.out else (
        Path("runs") / f"finetune-{dataset.name}-{split.name}-{args.strategy}-r{args.lora_r}-{_slug(args.model)}")
    command = ["msce"] + sys.argv[1:]
    with _response_cache(args) as cache:
        res = finetune(dataset, split, strategy, args.model, out, lora=lora, train=train, sampling=sampling,
                       backend_options=backend_opts, device=args.device, cache=cache, resume=_resume(args),
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
    return _eval_summary(ev, args.on_error)


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
    m.add_argument("--backend", default="transformers", choices=["transformers", "classifier"],
                   help="transformers: LoRA on a Qwen-VL model; classifier: a video-classification model "
                        "(VideoMAE, TimeSformer, ViViT, V-JEPA 2), see --mode")
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
    from msce.cli.finetune_classifier import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_finetune)
