"""``msce eval``: one strategy and one model over a dataset split, into a resumable run
directory (:func:`msce.eval.runner.run_eval`)."""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
from pathlib import Path

from msce.cli._options import (BACKEND_FLAGS, HelpFormatter, UsageError, _build_split, _dataset_from_args, _kv,
                               _response_cache, _slug, _strategy_options, backend_class, construct, make_strategy)
from msce.errors import BackendError, ConfigError
from msce.eval.runlog import SPLIT_FILE
from msce.eval.runner import MEDIA_ERRORS, _split_info, run_eval
from msce.models.backends._url import redact_urls

#: Seconds the server check before a run waits for ``GET /models`` at most (or --timeout when shorter).
PREFLIGHT_TIMEOUT = 10.0
LOCAL_RAY = "local"  # --ray without an address: RAY_ADDRESS, or a new Ray on this machine


def _looks_local(model: str) -> bool:
    """A --model that names a folder on this machine rather than a hub repo id (``org/name``)."""
    if model.startswith(("/", "./", "../", "~", ".\\")) or os.sep != "/" and os.sep in model:
        return True
    return model.count("/") > 1 or Path(model).exists() or ("/" in model and Path(model).parent.is_dir())


def _backend_options(args: argparse.Namespace, name: str, cls: type) -> tuple[dict, dict]:
    opts = {"model": args.model}
    origin = {"model": "--model"}
    for key, value in _kv(args.backend_opt, "--backend-opt").items():
        opts[key] = value
        origin[key] = "--backend-opt"
    accepted = inspect.signature(cls).parameters
    for key, flag in BACKEND_FLAGS.items():
        value = getattr(args, key, None)
        if key == "model" or value is None:
            continue
        if key not in accepted:
            raise UsageError(f"{flag} does not apply to the {name} backend (it accepts: {', '.join(accepted)})")
        opts[key] = value
        origin[key] = flag
    return opts, origin


def _make_backend(args: argparse.Namespace, name: str):
    cls = backend_class(name)
    opts, origin = _backend_options(args, name, cls)
    if name in ("transformers", "classifier") and _looks_local(args.model) \
            and not Path(args.model).expanduser().is_dir():
        raise UsageError(f"--model: no such model directory: {args.model}")
    backend = construct(cls, f"--backend {name}", opts, origin)
    if hasattr(backend, "preflight"):  # a server: it must answer and serve the model before anything is written
        timeout = min(PREFLIGHT_TIMEOUT, float(getattr(backend, "timeout", PREFLIGHT_TIMEOUT)))
        try:
            backend.preflight(timeout=timeout)
        except BackendError as exc:
            raise BackendError(f"server check failed: {exc} (check --base-url, --model and --timeout)") from None
    return backend, opts


def _ray_options(args: argparse.Namespace):
    """The RayOptions of ``--ray`` (None without it); ConfigError when Ray is not installed."""
    ray_flags = {"--ray-workers": args.ray_workers, "--ray-gpus": args.ray_gpus, "--ray-decode": args.ray_decode,
                 "--ray-task-videos": args.ray_task_videos}
    if args.ray is None:
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise UsageError(f"{given[0]} needs --ray")
        return None
    from msce.eval.ray_run import RayOptions, require_ray

    require_ray()
    opts = {"address": None if args.ray == LOCAL_RAY else args.ray}
    for key in ("workers", "gpus", "decode", "task_videos"):
        value = getattr(args, f"ray_{key}")
        if value is not None:
            opts[key] = value
    try:
        return RayOptions(**opts)
    except ConfigError as exc:
        raise UsageError(f"--ray: {exc}") from None


def _ray_backend(args: argparse.Namespace, name: str):
    """The BackendSpec a Ray run builds on its workers (the model never loads here; a server is
    checked from here as for a local run)."""
    from msce.eval.ray_run import BackendSpec

    cls = backend_class(name)
    opts, _ = _backend_options(args, name, cls)
    if hasattr(cls, "preflight"):
        _make_backend(args, name)
    elif name in ("transformers", "classifier") and _looks_local(args.model) \
            and not Path(args.model).expanduser().is_dir():
        raise UsageError(f"--model: no such model directory: {args.model}")
    return BackendSpec(name, opts), opts


def _rate_tag(strategy, fps_flag: float | None) -> str:
    """The sampling-rate part of the default run folder, read from the strategy's resolved
    options so that one configuration gets one name however it was spelled: sparse at 1 FPS
    is ``-fps1`` whether 1 came from the default, ``--fps 1`` or ``--strategy-opt fps=1.0``
    (``msce sweep`` names its runs the same way); every frame (``fps=None``) is ``-fpsall``."""
    cfg = strategy.config() if hasattr(strategy, "config") else {}
    for key in ("fps", "keyframe_fps"):
        if key in cfg:
            return "-fpsall" if cfg[key] is None else f"-fps{float(cfg[key]):g}"
    return f"-fps{fps_flag:g}" if fps_flag is not None else ""


def _tiny_model(model: str) -> bool:
    from msce.testing.tiny import tiny_model_name

    return tiny_model_name(model) is not None


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {args.limit}); leave it out to evaluate the whole split")
    dataset = _dataset_from_args(args)
    split = _build_split(args, dataset)
    samples = split.test_samples(dataset)
    notes: list[str] = []
    skipped = list(getattr(dataset, "skipped", ()) or ())
    if skipped:
        print(f"--skip-missing: dropped {len(skipped)} annotated clip(s) without media "
              f"(first: {', '.join(map(str, skipped[:5]))})", file=sys.stderr)

    ray_options = _ray_options(args)  # before anything loads: a missing Ray says how to install it
    backend_name = args.backend or ("openai" if args.base_url else "transformers")
    if args.adapter and backend_name != "transformers":
        raise UsageError("--adapter needs the transformers backend (a server applies its own adapters)")
    strategy_opts, origin = _strategy_options(args)
    strategy = make_strategy(args.strategy, origin, **strategy_opts)
    if type(strategy).__name__ == "Dense" and getattr(strategy, "fps", None) == 1.0:
        notes.append("dense at 1 FPS samples exactly the frames of sparse at 1 FPS (the same plan): "
                     "this run equals a --strategy sparse --fps 1 run")
    tiny = _tiny_model(args.model)
    if tiny:
        notes.append(f"{args.model} is a tiny random-weight model (msce tiny-model): its answers are meaningless")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    out = args.out
    if out is None:
        tag = args.strategy + _rate_tag(strategy, args.fps)
        if getattr(args, "visual_prompt", None):
            tag += f"-{args.visual_prompt}"
        model_tag = _slug(args.model)
        if args.adapter:  # the adapter's folder and its parent (msce finetune writes <run>/adapter)
            ad = Path(args.adapter).resolve()
            model_tag += f"+{_slug(ad.parent.name)}-{_slug(ad.name)}"
        out = Path("runs") / f"{dataset.name}-{split.name}-{tag}-{model_tag}"
    split_info = _split_info(split)
    # the model loads (and a server is checked) before the run directory exists: a failure leaves nothing behind
    if ray_options is None:
        backend, backend_opts = _make_backend(args, backend_name)
    else:
        backend, backend_opts = _ray_backend(args, backend_name)
    Path(out).mkdir(parents=True, exist_ok=True)
    split.save(Path(out) / SPLIT_FILE)

    extra = {"backend_name": backend_name,
             "backend_options": {k: redact_urls(v) if isinstance(v, str) else v
                                 for k, v in backend_opts.items() if "key" not in k.lower() or k == "api_key_env"},
             "notes": notes, "tiny_model": tiny}
    if skipped:
        extra["skipped_missing"] = {"count": len(skipped), "ids": [str(i) for i in skipped]}
    run = run_eval
    if ray_options is not None:
        from msce.eval.ray_run import run_ray

        run = functools.partial(run_ray, ray=ray_options)
    with _response_cache(args) as cache:
        try:
            res = run(
                dataset,
                samples,
                strategy,
                backend,
                out,
                cache,
                split=split_info,
                seed=args.seed,
                extra_config=extra,
                limit=args.limit,
                on_error=args.on_error,
                progress=not args.no_progress,
                n_boot=args.n_boot,
                command=["msce"] + sys.argv[1:],
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                prefetch=args.prefetch,
            )
        except MEDIA_ERRORS as exc:
            print(f"msce eval: error: {exc}; pass --on-error skip to record clips that fail like this in "
                  f"{Path(out) / 'errors.jsonl'} and go on (finished videos are kept: rerun to resume)", file=sys.stderr)
            return 1
    r = res.report
    print(
        f"{res.out_dir}: {res.n_done}/{res.n_requested} videos "
        f"({res.n_new} new, {res.n_resumed} resumed, {res.n_failed} failed) | "
        f"macro-F1 {r.macro_f1:.4f}  UAR {r.uar:.4f}  WAR {r.war:.4f}  invalid {r.invalid_rate:.3f}"
    )
    if tiny:
        print("note: tiny random-weight model: these scores are meaningless", file=sys.stderr)
    return 0 if res.complete or args.on_error == "skip" else 1


def _server_default(name: str):
    from msce.models.backends.openai_api import OpenAIBackend

    return inspect.signature(OpenAIBackend).parameters[name].default


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce eval``."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a strategy and a model on DFEW, MAFW or your own videos",
        description="Run a strategy over a dataset split, writing a resumable run directory. Every option of "
                    "every backend and strategy is listed in docs/cli.md.",
        formatter_class=HelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", required=True, choices=["dfew", "mafw", "generic"])
    d.add_argument("--root", required=True, help="dataset root (generic: a CSV path,label or a folder per label)")
    d.add_argument("--labels", help="generic only: 'dfew', 'mafw' or comma-separated class names")
    d.add_argument("--media", default="auto", choices=["auto", "video", "frames"], help="videos or frame folders")
    d.add_argument("--media-dir", help="folder of clips or frame folders (relative to --root or absolute)")
    d.add_argument("--skip-missing", action="store_true",
                   help="drop annotated clips whose media are missing (the count is printed and stored in "
                        "config.json under extra.skipped_missing)")
    d.add_argument("--split", default="balanced", choices=["balanced", "official", "all"])
    d.add_argument("--fold", type=int, default=1, help="official fold (1..5)")
    d.add_argument("--n-per-class", type=int,
                   help="balanced split size per class (default MAFW 45, DFEW 100; required for generic data)")
    d.add_argument("--split-file", help="load this split file if it exists, else save the split there")
    d.add_argument("--limit", type=int, help="evaluate only N >= 1 test videos, taken round-robin over classes")
    m = p.add_argument_group("model and strategy")
    m.add_argument("--model", required=True,
                   help="local model directory / hub id (transformers), or the served model name (--base-url)")
    m.add_argument("--adapter", help="PEFT adapter directory applied to --model (e.g. from msce finetune)")
    m.add_argument("--backend",
                   help="transformers | openai | classifier | package.module:Class (default: openai with "
                        "--base-url, else transformers)")
    m.add_argument("--backend-opt", action="append", metavar="KEY=VALUE",
                   help="any other backend option (repeatable; docs/cli.md lists them)")
    m.add_argument("--strategy", required=True,
                   help="sparse | dense | shuffled | msce | sparse-images | msce-notext (msce's controls) | "
                        "package.module:Class")
    m.add_argument("--fps", type=float, help="sampling rate (msce and its controls: keyframe rate)")
    m.add_argument("--strategy-opt", action="append", metavar="KEY=VALUE",
                   help="any other strategy option (repeatable; docs/cli.md lists them)")
    m.add_argument("--visual-prompt", metavar="NAME",
                   help="paper Appendix S1 visual prompt applied to the frames: red_circle | motion_heatmap | "
                        "focused_heatmap | montage | flow_arrows | point_tracks (msce.models.visual_prompts)")
    m.add_argument("--visual-prompt-opt", action="append", metavar="KEY=VALUE",
                   help="visual prompt parameter, e.g. thickness=0.05 (repeatable)")
    m.add_argument("--seed", type=int, default=0, help="seed of the balanced split, shuffles and bootstrap")
    lo = p.add_argument_group("local model (transformers, classifier)")
    lo.add_argument("--device", help="torch device, e.g. cuda, cuda:1, cpu (default: cuda when available)")
    lo.add_argument("--dtype", help="weights dtype: auto | bfloat16 | float16 | float32 (default: auto, the "
                                    "checkpoint's)")
    lo.add_argument("--min-pixels", type=int, help="smallest frame area in pixels (Qwen-VL resize; default: "
                                                   "the model's processor)")
    lo.add_argument("--max-pixels", type=int, help="largest frame area in pixels (Qwen-VL resize; default: "
                                                   "the model's processor)")
    sv = p.add_argument_group("server (openai)")
    sv.add_argument("--base-url", help="OpenAI-compatible server URL, e.g. http://localhost:8000/v1; before the "
                                       "run msce checks that it answers GET /models and serves --model")
    sv.add_argument("--timeout", type=float, metavar="SECONDS",
                    help=f"connect/read timeout of every request (default: {_server_default('timeout'):g}); the "
                         f"server check before the run waits min(--timeout, {PREFLIGHT_TIMEOUT:g}) s, once")
    sv.add_argument("--max-retries", type=int,
                    help=f"retries of a request after a timeout, connection error, 429 or 5xx "
                         f"(default: {_server_default('max_retries')})")
    sv.add_argument("--api-key-env", metavar="VAR",
                    help="environment variable holding the API key (default: OPENAI_API_KEY; GEMINI_API_KEY with "
                         "--backend-opt server=gemini; an unset variable sends no Authorization header)")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="run directory (default runs/<dataset>-<split>-<strategy>-fps<rate>-<model>)")
    o.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    o.add_argument("--cache", help="response cache path (default $MSCE_CACHE or ~/.cache/msce/responses.sqlite)")
    o.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="on undecodable media: stop, or record the clip in errors.jsonl and go on")
    o.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for confidence intervals")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("-v", "--verbose", action="store_true",
                   help="show library logs, weight-loading progress bars and warnings")
    t = p.add_argument_group("throughput (results as in a sequential run; docs/evaluation.md, \"Throughput\")")
    t.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="answer the model steps of N videos in one generate call (transformers: one left-padded "
                        "batch; MSCE: stage 1 of N videos, then their stage 2)")
    t.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="generate calls in flight at once, across videos (a server answers N videos together)")
    t.add_argument("--prefetch", type=int, metavar="N",
                   help="videos in flight at most, decoded ahead while the model works (default: "
                        "2 x max(batch size, concurrency, 2) when --batch-size or --concurrency is above 1)")
    add_ray_flags(p)
    p.set_defaults(func=_cmd_eval)


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and its options (``msce eval`` and ``msce sweep``; docs/scale.md)."""
    r = p.add_argument_group("Ray cluster (docs/scale.md; needs pip install 'msce[ray]')")
    r.add_argument("--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
                   help="run the videos on Ray workers: no ADDRESS = $RAY_ADDRESS or a new local Ray; 'auto' = the "
                        "cluster this machine joined (ray start); or host:6379 / ray://host:10001. The run "
                        "directory is written here, as for a local run")
    r.add_argument("--ray-workers", type=int, metavar="N",
                   help="Ray workers, each with its own model (default 2); --batch-size, --concurrency and "
                        "--prefetch apply inside each")
    r.add_argument("--ray-gpus", type=float, metavar="G",
                   help="GPUs per model worker (default: 1 for transformers/classifier when the cluster has GPUs, "
                        "else 0)")
    r.add_argument("--ray-decode", choices=["model", "workers"],
                   help="where videos are decoded: on the model's worker (default of msce eval), or on CPU workers "
                        "that ship preprocessed tensors to a separate pool of model workers, kept from run to run "
                        "(default of msce sweep)")
    r.add_argument("--ray-task-videos", type=int, metavar="N",
                   help="videos per Ray task (default 8): a worker that dies reruns its task's videos")
