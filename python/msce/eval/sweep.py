"""The paper's grid in one go: models x strategies x sampling rates x folds -> run
directories (:func:`msce.eval.runner.run_eval`) and one report.

A sweep is a TOML document (``msce sweep CONFIG.toml``; docs/evaluation.md, "Sweeps")::

    out = "runs/dfew-grid"              # one run directory per grid point, and report/
    n_boot = 1000
    seed = 0

    [data]
    dataset = "dfew"                    # dfew | mafw | generic
    root = "/data/DFEW"
    split = "official"                  # official | balanced | all
    folds = [1, 2, 3, 4, 5]             # official only (default [1])
    # labels = "dfew"                   # generic only; n_per_class = 100  # balanced only

    [grid]
    models = ["Qwen/Qwen2.5-VL-7B-Instruct"]
    strategies = ["sparse", "dense", "msce"]
    fps = [1, 5, 10, 15, 20, 25]

    [backend]                           # name = "transformers" | "openai"; base_url = "..."; other keys
    name = "transformers"               #   are backend options

    [strategy_options.msce]             # options of one strategy (e.g. gap_frames = 4)

    [run]                               # batch_size, concurrency, prefetch, on_error, cache (a path)

Expansion: ``sparse`` is the paper's 1-FPS baseline and runs once at 1 FPS; ``dense`` runs
at every rate except 1 FPS when ``sparse`` is in the grid (the same frames: the report's
F1-vs-FPS curve takes the sparse run as its 1-FPS point); every other strategy runs at every
rate (``msce`` and its controls: keyframe rate). A grid point whose ``metrics.json`` says it
is complete for the same number of videos is skipped; an unfinished one resumes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from msce.errors import ConfigError

__all__ = ["SweepPoint", "Sweep", "load_sweep", "run_sweep", "points_table"]

_KEYFRAME_STRATEGIES = ("msce", "msce-notext", "sparse-images")
_RUN_KEYS = {"batch_size", "concurrency", "prefetch", "decode_workers", "on_error", "limit", "cache"}
_TOP = {"out", "n_boot", "seed", "data", "grid", "backend", "strategy_options", "run", "title"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).strip("/")).strip("_")[-60:] or "model"


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: one run directory."""

    model: str
    strategy: str
    fps: float
    fold: int | None
    name: str

    def strategy_options(self, options: Mapping[str, Any]) -> dict:
        key = "keyframe_fps" if self.strategy in _KEYFRAME_STRATEGIES else "fps"
        return {**dict(options.get(self.strategy, {})), key: self.fps}


@dataclass
class Sweep:
    out: Path
    data: dict
    models: list[str]
    strategies: list[str]
    fps: list[float]
    folds: list[int | None]
    backend: dict = field(default_factory=dict)
    strategy_options: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    n_boot: int = 1000
    seed: int = 0
    title: str = "msce sweep"

    def points(self) -> list[SweepPoint]:
        """The grid, model by model (one backend each), then fold, strategy, rate."""
        out = []
        for model in self.models:
            for fold in self.folds:
                for strategy in self.strategies:
                    rates = self.fps
                    if strategy == "sparse":
                        rates = [1.0]
                    elif strategy == "dense" and "sparse" in self.strategies:
                        rates = [f for f in self.fps if f != 1.0]
                    for f in rates:
                        split = self.split_name(fold)
                        name = f"{self.data['dataset']}-{split}-{_slug(strategy)}-fps{f:g}-{_slug(model)}"
                        out.append(SweepPoint(model, strategy, float(f), fold, name))
        return out

    def split_name(self, fold: int | None) -> str:
        kind = self.data.get("split", "balanced")
        return f"official-fold{fold}" if kind == "official" else str(kind)


def _list(value: Any, what: str) -> list:
    if isinstance(value, (str, int, float)):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"sweep: {what} must be a non-empty list")
    return value


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep TOML file (relative ``out`` and ``root`` are taken from the
    file's folder)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(_TOP)}")
    base = path.resolve().parent
    data = dict(doc.get("data") or {})
    for key in ("dataset", "root"):
        if key not in data:
            raise ConfigError(f"{path}: [data] needs {key}")
    data["root"] = str((base / data["root"]).resolve())
    grid = dict(doc.get("grid") or {})
    for key in ("models", "strategies"):
        if key not in grid:
            raise ConfigError(f"{path}: [grid] needs {key}")
    fps = [float(f) for f in _list(grid.get("fps", [1.0]), "[grid] fps")]
    if any(not f > 0 for f in fps):
        raise ConfigError(f"{path}: [grid] fps values must be > 0, got {fps}")
    split = data.get("split", "balanced")
    if split not in ("official", "balanced", "all"):
        raise ConfigError(f"{path}: [data] split must be official, balanced or all, got {split!r}")
    folds: list[int | None] = [int(f) for f in _list(data.pop("folds", [1]), "[data] folds")] \
        if split == "official" else [None]
    run = dict(doc.get("run") or {})
    bad = sorted(set(run) - _RUN_KEYS)
    if bad:
        raise ConfigError(f"{path}: unknown [run] keys {bad}; known: {sorted(_RUN_KEYS)}")
    if run.get("cache"):
        run["cache"] = str((base / run["cache"]).resolve())
    return Sweep(out=(base / doc.get("out", "runs/sweep")).resolve(), data=data,
                 models=[str(m) for m in _list(grid["models"], "[grid] models")],
                 strategies=[str(s) for s in _list(grid["strategies"], "[grid] strategies")], fps=fps, folds=folds,
                 backend=dict(doc.get("backend") or {}), strategy_options=dict(doc.get("strategy_options") or {}),
                 run=run, n_boot=int(doc.get("n_boot", 1000)), seed=int(doc.get("seed", 0)),
                 title=str(doc.get("title", "msce sweep")))


def _finished(out_dir: Path, n_videos: int) -> bool:
    import json

    try:
        m = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(m.get("complete")) and m.get("n_requested") == n_videos


def run_sweep(sweep: Sweep, *, progress: bool = False, log: Callable[[str], None] = lambda s: None,
              strategy_factory: Callable[..., Any] | None = None,
              backend_factory: Callable[..., Any] | None = None, ray: Any = None) -> dict:
    """Run every grid point of ``sweep`` (skipping finished ones) and write one report.

    Returns ``{"runs": [run directories], "ran": [...], "skipped": [...], "report": {...}}``.
    ``strategy_factory(name, **options)`` / ``backend_factory(name, **options)`` default to
    :func:`msce.models.strategies.get_strategy` / :func:`msce.models.backends.get_backend`.
    ``ray``: a :class:`msce.eval.ray_run.RayOptions` runs every grid point on Ray (the backend
    is built on the workers from ``[backend]``; ``backend_factory`` is not used), one pool of
    model workers per model at a time, kept for all of that model's runs: its ``decode``
    defaults to ``"workers"`` here (docs/scale.md).
    """
    from msce.eval.datasets import load_dataset
    from msce.eval.report import build_report
    from msce.eval.runner import _digest_ids, run_eval
    from msce.eval.runs import load_run
    from msce.eval.splits import balanced_split, official_split

    if strategy_factory is None:
        from msce.models.strategies import get_strategy as strategy_factory
    if backend_factory is None:
        from msce.models.backends import get_backend as backend_factory
    data = dict(sweep.data)
    name, root = data.pop("dataset"), data.pop("root")
    kind = data.pop("split", "balanced")
    n_per_class = data.pop("n_per_class", None)
    dataset = load_dataset(name, root, **data)
    back = dict(sweep.backend)
    back_name = back.pop("name", "openai" if back.get("base_url") else "transformers")
    run_opts = dict(sweep.run)
    cache_path = run_opts.pop("cache", None)
    cache = None
    if cache_path:
        from msce.models.cache import ResponseCache

        cache = ResponseCache(cache_path)
    sweep.out.mkdir(parents=True, exist_ok=True)
    ran, skipped, dirs = [], [], []
    backends: dict[str, Any] = {}
    executors: dict[str, Any] = {}  # with ray: one RayExecutor (its model actors) per model, one at a time
    try:
        for p in sweep.points():
            if kind == "official":
                split = official_split(dataset, p.fold)
            elif kind == "balanced":
                split = balanced_split(dataset, n_per_class, seed=sweep.seed)
            else:
                split = None
            samples = split.test_samples(dataset) if split is not None else list(dataset.samples)
            out_dir = sweep.out / p.name
            dirs.append(out_dir)
            if _finished(out_dir, len(samples)):
                skipped.append(p.name)
                log(f"{p.name}: finished, skipped")
                continue
            if ray is not None and p.model not in executors:
                from msce.eval.ray_run import BackendSpec, RayExecutor

                _close_all(executors)
                options = ray if ray.decode else dataclasses.replace(ray, decode="workers")
                executors[p.model] = RayExecutor(BackendSpec(back_name, {"model": p.model, **back}), options)
            elif ray is None and p.model not in backends:
                backends.clear()  # one model in memory at a time
                backends[p.model] = backend_factory(back_name, model=p.model, **back)
            strategy = strategy_factory(p.strategy, **p.strategy_options(sweep.strategy_options))
            split_info = {"name": sweep.split_name(p.fold), "kind": kind, "fold": p.fold,
                          "test_sha256": _digest_ids([s.id for s in samples])}
            if split is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                split.save(out_dir / "split.json")
            log(f"{p.name}: running {len(samples)} videos")
            extra = {"sweep": {"model": p.model, "strategy": p.strategy, "fps": p.fps, "fold": p.fold}}
            if ray is not None:
                from msce.eval.ray_run import run_ray

                executor = executors[p.model]
                run_ray(dataset, samples, strategy, executor.spec, out_dir, cache, ray=executor, split=split_info,
                        seed=sweep.seed, extra_config=extra, progress=progress, n_boot=sweep.n_boot, **run_opts)
            else:
                run_eval(dataset, samples, strategy, backends[p.model], out_dir, cache, split=split_info,
                         seed=sweep.seed, extra_config=extra, progress=progress, n_boot=sweep.n_boot, **run_opts)
            ran.append(p.name)
    finally:
        _close_all(executors)
        if cache is not None:
            cache.close()
    runs = [load_run(d) for d in dirs]
    report = build_report(runs, sweep.out / "report", n_boot=sweep.n_boot, seed=sweep.seed, title=sweep.title)
    return {"runs": [str(d) for d in dirs], "ran": ran, "skipped": skipped, "report": report}


def _close_all(executors: dict[str, Any]) -> None:
    for executor in executors.values():
        executor.close()
    executors.clear()


def points_table(points: Sequence[SweepPoint]) -> list[list[str]]:
    """Rows (name, model, strategy, fps, fold) for printing a grid."""
    return [[p.name, p.model, p.strategy, f"{p.fps:g}", "–" if p.fold is None else str(p.fold)] for p in points]
