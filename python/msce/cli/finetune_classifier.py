"""``msce finetune --backend classifier``: class-balanced fine-tuning of a transformers
video classifier (:mod:`msce.train.classifier`), then the evaluation of the test split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msce.cli._options import (_build_split, _dataset_from_args, _eval_summary, _kv, _response_cache, _resume,
                               _slug, _strategy_options, _training, make_strategy)
from msce.errors import ConfigError
from msce.train.classifier import MODES, evaluate_classifier, finetune_classifier
from msce.train.options import DEFAULT_TARGET_MODULES, EVAL_DIR, LoraOptions


def cmd_finetune_classifier(args: argparse.Namespace) -> int:
    if args.strategy not in ("sparse", "dense"):
        raise ConfigError(f"--backend classifier trains on the frames of --strategy sparse or dense, "
                          f"got {args.strategy!r}")
    for flag, value in (("--min-pixels", args.min_pixels), ("--max-pixels", args.max_pixels)):
        if value is not None:
            raise ConfigError(f"{flag} applies to Qwen-VL models, not to --backend classifier")
    dataset = _dataset_from_args(args)
    split = _build_split(args, dataset)
    strategy_opts, origin = _strategy_options(args)
    strategy = make_strategy(args.strategy, origin, **strategy_opts)
    targets = tuple(x.strip() for x in args.target_modules.split(",") if x.strip())
    lora = LoraOptions(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                       target_modules=targets or DEFAULT_TARGET_MODULES)
    train, sampling = _training(args)
    out = Path(args.out) if args.out else (
        Path("runs") / f"finetune-{dataset.name}-{split.name}-{args.strategy}-{args.mode}-{_slug(args.model)}")
    command = ["msce"] + sys.argv[1:]
    res = finetune_classifier(dataset, split, strategy, args.model, out, mode=args.mode, lora=lora, train=train,
                              sampling=sampling, num_frames=args.num_frames, device=args.device,
                              resume=_resume(args), progress=not args.no_progress, command=command)
    print(f"{res.out_dir}: trained steps {res.start_step}->{res.steps} ({res.steps_per_second:.3f} steps/s); "
          f"model {res.adapter_dir}")
    if args.no_eval:
        return 0
    opts = {**_kv(args.backend_opt, "--backend-opt"), "device": res.config["device"]}
    if args.num_frames is not None:
        opts["num_frames"] = args.num_frames
    with _response_cache(args) as cache:
        ev = evaluate_classifier(dataset, split, strategy, res.adapter_dir, out / EVAL_DIR, backend_options=opts,
                                 cache=cache, limit=args.eval_limit, seed=args.seed, on_error=args.on_error,
                                 progress=not args.no_progress, n_boot=args.n_boot, base_model=args.model,
                                 command=command)
    return _eval_summary(ev, args.on_error)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options only ``--backend classifier`` uses."""
    c = p.add_argument_group("vision-only classifiers (--backend classifier)")
    c.add_argument("--mode", default="lora", choices=list(MODES),
                   help="what trains: the new label head, LoRA on the encoder + the head, or everything")
    c.add_argument("--num-frames", type=int, help="clip length fed to the model (default: its config's)")
