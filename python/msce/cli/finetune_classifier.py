"""``msce finetune --backend classifier``: class-balanced fine-tuning of a transformers
video classifier (:mod:`msce.train.classifier`), then the evaluation of the test split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msce.cli._options import (_build_split, _dataset_from_args, _eval_summary, _kv, _slug, _strategy_options,
                               make_strategy)
from msce.errors import ConfigError
from msce.train.classifier import MODES, evaluate_classifier, finetune_classifier
from msce.train.options import DEFAULT_TARGET_MODULES, EVAL_DIR, LoraOptions, SamplingOptions, TrainOptions


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
    train = TrainOptions(epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay,
                         scheduler=args.scheduler, warmup_ratio=args.warmup_ratio, batch_size=args.batch_size,
                         grad_accum=args.grad_accum, max_grad_norm=args.max_grad_norm, save_every=args.save_every,
                         keep_checkpoints=args.keep_checkpoints, seed=args.seed, precision=args.precision)
    sampling = SamplingOptions(n_per_class=args.balanced, mode=args.sampling, seed=args.seed,
                               resample_each_epoch=args.resample_each_epoch)
    out = Path(args.out) if args.out else (
        Path("runs") / f"finetune-{dataset.name}-{split.name}-{args.strategy}-{args.mode}-{_slug(args.model)}")
    resume: bool | str = False
    if args.resume is not None:
        resume = True if args.resume == "latest" else args.resume
    command = ["msce"] + sys.argv[1:]
    res = finetune_classifier(dataset, split, strategy, args.model, out, mode=args.mode, lora=lora, train=train,
                              sampling=sampling, num_frames=args.num_frames, device=args.device, resume=resume,
                              progress=not args.no_progress, command=command)
    print(f"{res.out_dir}: trained steps {res.start_step}->{res.steps} ({res.steps_per_second:.3f} steps/s); "
          f"model {res.adapter_dir}")
    if args.no_eval:
        return 0
    cache = None
    if not args.no_cache:
        from msce.cli._options import default_cache_path
        from msce.models.cache import ResponseCache

        cache = ResponseCache(args.cache or default_cache_path())
    opts = {**_kv(args.backend_opt, "--backend-opt"), "device": res.config["device"]}
    if args.num_frames is not None:
        opts["num_frames"] = args.num_frames
    try:
        ev = evaluate_classifier(dataset, split, strategy, res.adapter_dir, out / EVAL_DIR, backend_options=opts,
                                 cache=cache, limit=args.eval_limit, seed=args.seed, on_error=args.on_error,
                                 progress=not args.no_progress, n_boot=args.n_boot, base_model=args.model,
                                 command=command)
    finally:
        if cache is not None:
            cache.close()
    return _eval_summary(ev, args.on_error)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options only ``--backend classifier`` uses."""
    c = p.add_argument_group("vision-only classifiers (--backend classifier)")
    c.add_argument("--mode", default="lora", choices=list(MODES),
                   help="what trains: the new label head, LoRA on the encoder + the head, or everything")
    c.add_argument("--num-frames", type=int, help="clip length fed to the model (default: its config's)")
