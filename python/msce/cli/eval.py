"""``msce eval``: one strategy and one model over a dataset split, into a resumable run
directory (:func:`msce.eval.runner.run_eval`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msce.cli._options import (_build_split, _dataset_from_args, _kv, _slug, _strategy_options, default_cache_path,
                               make_strategy)
from msce.errors import ConfigError
from msce.eval.runlog import SPLIT_FILE
from msce.eval.runner import _digest_ids, run_eval
from msce.models.backends._url import redact_urls


def _cmd_eval(args: argparse.Namespace) -> int:
    dataset = _dataset_from_args(args)
    split = _build_split(args, dataset)
    samples = split.test_samples(dataset)

    from msce.models.backends import get_backend

    backend_name = args.backend or ("openai" if args.base_url else "transformers")
    backend_opts = {"model": args.model, **_kv(args.backend_opt, "--backend-opt")}
    if args.base_url:
        backend_opts["base_url"] = args.base_url
    if args.adapter:
        if backend_name != "transformers":
            raise ConfigError("--adapter needs the transformers backend (a server applies its own adapters)")
        backend_opts["adapter"] = args.adapter
    strategy = make_strategy(args.strategy, **_strategy_options(args))

    out = args.out
    if out is None:
        tag = args.strategy + (f"-fps{args.fps:g}" if args.fps is not None else "")
        if getattr(args, "visual_prompt", None):
            tag += f"-{args.visual_prompt}"
        model_tag = _slug(args.model)
        if args.adapter:  # the adapter's folder and its parent (msce finetune writes <run>/adapter)
            ad = Path(args.adapter).resolve()
            model_tag += f"+{_slug(ad.parent.name)}-{_slug(ad.name)}"
        out = Path("runs") / f"{dataset.name}-{split.name}-{tag}-{model_tag}"
    split_info = {
        "name": split.name,
        "kind": split.kind,
        "seed": split.seed,
        "fold": split.fold,
        "n_per_class": split.n_per_class,
        "num_test": len(split.test),
        "num_train": len(split.train),
        "test_sha256": _digest_ids(split.test),
        "file": SPLIT_FILE,
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    split.save(Path(out) / SPLIT_FILE)

    cache = None
    if not args.no_cache:
        from msce.models.cache import ResponseCache

        cache = ResponseCache(args.cache or default_cache_path())
    backend = get_backend(backend_name, **backend_opts)
    try:
        res = run_eval(
            dataset,
            samples,
            strategy,
            backend,
            out,
            cache,
            split=split_info,
            seed=args.seed,
            extra_config={"backend_name": backend_name,
                          "backend_options": {k: redact_urls(v) if isinstance(v, str) else v
                                              for k, v in backend_opts.items() if "key" not in k.lower()}},
            limit=args.limit,
            on_error=args.on_error,
            progress=not args.no_progress,
            n_boot=args.n_boot,
            command=["msce"] + sys.argv[1:],
        )
    finally:
        if cache is not None:
            cache.close()
    r = res.report
    print(
        f"{res.out_dir}: {res.n_done}/{res.n_requested} videos "
        f"({res.n_new} new, {res.n_resumed} resumed, {res.n_failed} failed) | "
        f"macro-F1 {r.macro_f1:.4f}  UAR {r.uar:.4f}  WAR {r.war:.4f}  invalid {r.invalid_rate:.3f}"
    )
    return 0 if res.complete or args.on_error == "skip" else 1


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce eval``."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a strategy and a model on DFEW, MAFW or your own videos",
        description="Run a strategy over a dataset split, writing a resumable run directory.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", required=True, choices=["dfew", "mafw", "generic"])
    d.add_argument("--root", required=True, help="dataset root (generic: a CSV path,label or a folder per label)")
    d.add_argument("--labels", help="generic only: 'dfew', 'mafw' or comma-separated class names")
    d.add_argument("--media", default="auto", choices=["auto", "video", "frames"], help="videos or frame folders")
    d.add_argument("--media-dir", help="folder of clips or frame folders (relative to --root or absolute)")
    d.add_argument("--skip-missing", action="store_true", help="drop annotated clips whose media are missing")
    d.add_argument("--split", default="balanced", choices=["balanced", "official", "all"])
    d.add_argument("--fold", type=int, default=1, help="official fold (1..5)")
    d.add_argument("--n-per-class", type=int, help="balanced split size per class (MAFW 45, DFEW 100)")
    d.add_argument("--split-file", help="load this split file if it exists, else save the split there")
    d.add_argument("--limit", type=int, help="evaluate only N test videos, taken round-robin over classes")
    m = p.add_argument_group("model and strategy")
    m.add_argument("--model", required=True, help="model path / hub id, or the served model name")
    m.add_argument("--adapter", help="PEFT adapter directory applied to --model (e.g. from msce finetune)")
    m.add_argument("--backend", help="transformers | openai | package.module:Class (default: openai with --base-url)")
    m.add_argument("--base-url", help="OpenAI-compatible server URL (API key from the environment)")
    m.add_argument("--backend-opt", action="append", metavar="KEY=VALUE", help="extra backend option (repeatable)")
    m.add_argument("--strategy", required=True,
                   help="sparse | dense | shuffled | msce | sparse-images | msce-notext (msce's controls) | "
                        "package.module:Class")
    m.add_argument("--fps", type=float, help="sampling rate (msce and its controls: keyframe rate)")
    m.add_argument("--strategy-opt", action="append", metavar="KEY=VALUE", help="extra strategy option (repeatable)")
    m.add_argument("--visual-prompt", metavar="NAME",
                   help="paper Appendix S1 visual prompt applied to the frames: red_circle | motion_heatmap | "
                        "focused_heatmap | montage | flow_arrows | point_tracks (msce.models.visual_prompts)")
    m.add_argument("--visual-prompt-opt", action="append", metavar="KEY=VALUE",
                   help="visual prompt parameter, e.g. thickness=0.05 (repeatable)")
    m.add_argument("--seed", type=int, default=0, help="seed of the balanced split, shuffles and bootstrap")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="run directory (default runs/<dataset>-<split>-<strategy>-<model>)")
    o.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    o.add_argument("--cache", help="response cache path (default $MSCE_CACHE or ~/.cache/msce/responses.sqlite)")
    o.add_argument("--on-error", default="raise", choices=["raise", "skip"], help="on undecodable media")
    o.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for confidence intervals")
    o.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)
