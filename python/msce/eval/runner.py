"""The evaluation runner: one strategy, one backend, many videos, one run directory.

:func:`run_eval` writes and resumes a run directory (its files and crash safety are
described in :mod:`msce.eval.runlog`; :func:`msce.eval.runs.load_run` reads one back),
:func:`compute_run_metrics` makes its ``metrics.json``, :func:`interleave_by_label`
orders a ``--limit``-ed run so that every class comes early. The ``msce eval`` command
line is :mod:`msce.cli.eval`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from msce.errors import ConfigError, DatasetError, DecodeError, PlanError
from msce.eval.metrics import ClassificationReport, Predictions, bootstrap_ci
from msce.eval.pipeline import Execution, Outcome, run_pipelined
# The run log's names, and Run/load_run, are re-exported: ``msce.eval.runner`` stays the one
# import for writing and reading runs (msce.train imports SPLIT_FILE, PredictionLog,
# environment_info and _json_default from here).
from msce.eval.runlog import (
    CONFIG_FILE,
    ERRORS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    SPLIT_FILE,
    PredictionLog,
    _dumps,
    _json_default,  # noqa: F401  (msce.train imports it from here)
    _RunLock,
    _write_json_atomic,
    environment_info,
    read_predictions,  # noqa: F401  (re-exported: __all__ holds the run log's names)
)
from msce.eval import runlog as _runlog
from msce.eval.runs import Run, load_run
from msce.io.damage import unwatch_damage, watch_damage
from msce.models.backends._url import redact_urls

__all__ = [
    *_runlog.__all__,
    "EvalResult",
    "run_eval",
    "interleave_by_label",
    "Run",
    "load_run",
    "compute_run_metrics",
    "duplicate_frames",
]

#: Exceptions that concern one video's media; ``on_error="skip"`` records and skips them.
MEDIA_ERRORS: tuple[type[BaseException], ...] = (DecodeError, PlanError, DatasetError)


# --------------------------------------------------------------------------- config


def _strategy_config(strategy: Any) -> dict:
    cfg = strategy.config() if hasattr(strategy, "config") else {}
    cfg = dict(cfg)
    cfg.setdefault("name", getattr(strategy, "name", type(strategy).__name__))
    return json.loads(_dumps(cfg))  # normalized, fails early if not serializable


def _backend_config(backend: Any) -> dict:
    cls = type(backend)
    out = {"model_id": getattr(backend, "model_id", None), "class": f"{cls.__module__}.{cls.__qualname__}"}
    base_url = getattr(backend, "base_url", None)
    if isinstance(base_url, str):  # a server backend: which server answered (never its credentials)
        out["base_url"] = redact_urls(base_url)
    from msce.testing.tiny import tiny_model_name

    tiny = tiny_model_name(out["model_id"]) if isinstance(out["model_id"], str) else None
    if tiny:  # random weights: reports put a banner over such runs
        out["tiny_model"] = tiny
    fp = getattr(backend, "fingerprint", None)
    if callable(fp):
        try:
            out["fingerprint"] = json.loads(_dumps(fp()))
        except Exception as exc:  # a fingerprint is informative only
            out["fingerprint_error"] = repr(exc)
    return out


def _digest_ids(ids: Iterable[str]) -> str:
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode("utf-8") + b"\n")
    return h.hexdigest()


def _split_info(split: Any) -> dict:
    """The run config's ``split`` record: the split's settings and sizes, and a digest of its test ids."""
    return {
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


def _cache_path(cache: Any) -> str | None:
    if cache is None:
        return None
    path = getattr(cache, "path", None)
    return os.fspath(path) if path is not None else type(cache).__name__


def _labels_of(dataset: Any) -> Any:
    lset = getattr(dataset, "label_set", None)
    if lset is None:
        raise ConfigError("dataset must have a label_set (an msce.eval.datasets.Dataset or similar)")
    return lset


def _accepts_sample_id(strategy: Any) -> bool:
    """Whether ``strategy.run`` takes ``sample_id=`` (the frame-shuffle probe seeds its order
    per video with it); strategies written to the plain contract are called without it."""
    import inspect

    try:
        params = inspect.signature(strategy.run).parameters
    except (TypeError, ValueError):
        return False
    return "sample_id" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _result_dict(result: Any) -> dict:
    if hasattr(result, "to_dict"):
        d = result.to_dict()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        d = dataclasses.asdict(result)
    elif isinstance(result, Mapping):
        d = dict(result)
    else:
        raise ConfigError(f"strategy returned {type(result).__name__}; expected a StrategyResult")
    missing = [k for k in ("raw_answer", "parsed") if k not in d]
    if missing:
        raise ConfigError(f"strategy result lacks {missing}; see docs/strategy-contract.md")
    return d


def _record(sample: Any, result: Any, names: Sequence[str], wall: float, damaged: int | None = None) -> dict:
    """The predictions.jsonl record of one finished video. ``damaged_frames``: how many of the
    frames its loads decoded the decoder flagged as damaged (None: not known, NVDEC)."""
    res = _result_dict(result)
    parsed = res.get("parsed")
    rec = {
        "id": str(sample.id),
        "label": sample.label,
        "path": os.fspath(sample.path),
        "parsed": parsed,
        "correct": parsed == sample.label,
        "valid": parsed in names,
    }
    for k, v in res.items():
        if k not in rec:
            rec[k] = v
    rec["wall_s"] = round(wall, 6)
    rec["damaged_frames"] = damaged
    rec["duplicate_frames"] = duplicate_frames(res.get("frame_indices"))
    return rec


def duplicate_frames(frame_indices: Any) -> int | None:
    """How many of the frames a video's strategy sent repeat a source frame already sent
    (by frame index): 0 for distinct frames, ``n - distinct`` otherwise (a plan asking
    for more frames per second than the clip has picks the nearest frame for several
    times). None when the result lists no frame indices."""
    if not isinstance(frame_indices, (list, tuple)):
        return None
    try:
        return len(frame_indices) - len({int(i) for i in frame_indices})
    except (TypeError, ValueError):
        return None


def _rates(rec: Mapping, strat_cfg: Mapping) -> tuple[Any, Any]:
    """(the clip's frame rate, the requested sampling rate) for a duplicate-frame note: the
    recorded plan's ``source_fps`` / ``fps`` (``extra["plan"]``), else the strategy's."""
    extra = rec.get("extra") if isinstance(rec.get("extra"), Mapping) else {}
    plan = extra.get("plan") if isinstance(extra.get("plan"), Mapping) else {}
    requested = plan.get("fps") or strat_cfg.get("fps") or strat_cfg.get("keyframe_fps")
    return plan.get("source_fps"), requested


def _duplicate_note(rec: Mapping, strat_cfg: Mapping) -> str:
    """The once-per-run note of the first video whose planned frames repeat."""
    clip_fps, requested = _rates(rec, strat_cfg)
    clip = f"{float(clip_fps):g} FPS" if isinstance(clip_fps, (int, float)) else "a lower frame rate"
    asked = f"{float(requested):g} FPS" if isinstance(requested, (int, float)) else "a higher rate"
    return (f"note: {rec['path']}: {asked} requested but the clip has {clip}: {rec['duplicate_frames']} of its "
            f"{len(rec.get('frame_indices') or [])} planned frames repeat another frame (the model sees them "
            f"more than once). Each video's count is recorded (duplicate_frames in {PREDICTIONS_FILE}, totals in "
            f"{METRICS_FILE} and msce report); this note is shown once per run.")


def _sequential(todo: Sequence[Any], strategy: Any, labels: Any, backend: Any, cache: Any, pass_id: bool,
                on_error: str) -> Iterator[Outcome]:
    """One video after the other in this thread (the reference the pipelined executor
    matches). A media error is handed on as an Outcome with ``on_error="skip"``; every
    other exception propagates at once."""
    for pos, s in enumerate(todo):
        t0 = time.perf_counter()
        watch_damage(s.path)
        try:
            if pass_id:
                result = strategy.run(s.path, labels, backend, cache, sample_id=str(s.id))
            else:
                result = strategy.run(s.path, labels, backend, cache)
        except MEDIA_ERRORS as exc:
            unwatch_damage(s.path)
            if on_error != "skip":
                raise
            yield Outcome(pos, error=exc, wall_s=time.perf_counter() - t0)
            continue
        except BaseException:
            unwatch_damage(s.path)
            raise
        yield Outcome(pos, result=result, wall_s=time.perf_counter() - t0, damaged_frames=unwatch_damage(s.path))


# --------------------------------------------------------------------------- progress


class _Progress:
    """rich progress bar (stderr) with ETA and running accuracy; a no-op when disabled."""

    def __init__(self, total: int, done: int, enabled: bool, title: str):
        self._p = None
        self._task = None
        if not enabled or total == 0:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # pragma: no cover - rich is a dependency
            return
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._p.start()
        self._task = self._p.add_task(title, total=total, completed=done, stats="")

    def advance(self, correct: int, scored: int, invalid: int) -> None:
        if self._p is not None:
            acc = correct / scored if scored else 0.0
            self._p.update(self._task, advance=1, stats=f"acc {acc:.3f} inv {invalid}")

    def note(self, text: str) -> None:
        """One line on stderr, above the bar while it runs."""
        if self._p is not None:
            self._p.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# --------------------------------------------------------------------------- runner


def interleave_by_label(samples: Sequence[Any]) -> list[Any]:
    """Round-robin over labels (in order of first appearance), keeping each label's order.

    ``--limit N`` takes the first N of this order, so a short run still covers every
    class (a balanced split lists its test videos class by class).
    """
    queues: dict[str, list[Any]] = {}
    for s in samples:
        queues.setdefault(s.label, []).append(s)
    out: list[Any] = []
    depth = max((len(q) for q in queues.values()), default=0)
    for i in range(depth):
        for q in queues.values():
            if i < len(q):
                out.append(q[i])
    return out


@dataclass(frozen=True)
class EvalResult:
    """What :func:`run_eval` did. ``report`` covers every requested video with a prediction."""

    out_dir: Path
    report: ClassificationReport
    n_requested: int
    n_done: int
    n_new: int
    n_resumed: int
    n_failed: int
    failed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_requested


def compute_run_metrics(
    records: Sequence[Mapping], labels: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> dict:
    """The ``metrics.json`` document for a list of prediction records."""
    preds = Predictions.from_records(records, labels)
    report = preds.report()
    if n_boot > 0 and len(preds):
        wanted = ("macro_f1", "uar", "war", "weighted_f1")
        report = report.with_ci(bootstrap_ci(preds.y_true, preds.y_pred, labels, wanted, n_boot=n_boot, seed=seed))

    def total(key: str) -> float:
        return float(sum(float(r.get(key) or 0) for r in records))

    n = len(records)
    dups = [int(r["duplicate_frames"]) for r in records if isinstance(r.get("duplicate_frames"), int)]
    return {
        "report": report.to_dict(),
        "frames": {"duplicate_frames": sum(dups), "videos_with_duplicates": sum(1 for d in dups if d > 0),
                   "videos_counted": len(dups)},
        "usage": {
            "videos": n,
            "model_calls": total("model_calls"),
            "cache_hits": total("cache_hits"),
            "visual_tokens_mean": total("visual_tokens") / n if n else 0.0,
            "latency_s_mean": total("latency_s") / n if n else 0.0,
            "wall_s_total": total("wall_s"),
        },
    }


def run_eval(
    dataset: Any,
    samples: Sequence[Any],
    strategy: Any,
    backend: Any,
    out_dir: str | os.PathLike,
    cache: Any = None,
    *,
    split: Mapping | None = None,
    seed: int | None = None,
    extra_config: Mapping | None = None,
    limit: int | None = None,
    on_error: str = "raise",
    progress: bool = True,
    n_boot: int = 1000,
    command: Sequence[str] | None = None,
    batch_size: int = 1,
    concurrency: int = 1,
    prefetch: int | None = None,
    decode_workers: int | None = None,
    executor: Any = None,
) -> EvalResult:
    """Run ``strategy`` with ``backend`` over ``samples``, writing and resuming ``out_dir``.

    ``dataset`` provides ``label_set`` (and ``describe()`` when it is an
    :class:`msce.eval.datasets.Dataset`); ``samples`` are objects with ``id``, ``path`` and
    ``label``; ``limit`` keeps the first N of :func:`interleave_by_label` (every class
    early); ``strategy``/``backend``/``cache`` follow docs/strategy-contract.md
    (anything with ``strategy.run(path, labels, backend, cache)`` works). ``split``
    is recorded in the config. ``on_error="skip"`` records media errors (DecodeError,
    PlanError, DatasetError) in ``errors.jsonl`` and continues; any other exception
    stops the run (finished videos stay on disk; a rerun resumes).

    Resuming into a directory whose config names another dataset, label list, split,
    strategy config or model raises ConfigError (use a new ``out_dir``).

    ``batch_size``, ``concurrency``, ``prefetch`` and ``decode_workers`` choose the
    pipelined executor (:mod:`msce.eval.pipeline`): videos decoded ahead while the model
    works, the model steps of ``batch_size`` videos in one generate call, ``concurrency``
    calls in flight. Predictions are written in the same order and are the same as the
    sequential runner's (all defaults); batched calls left-pad their prompts
    (docs/evaluation.md, "Throughput"). Each session records its execution in the config.

    ``executor`` runs the videos elsewhere (:func:`msce.eval.ray_run.run_ray` passes a
    RayExecutor): it gives the backend's config record (``backend_config()``), the session's
    execution record (``to_dict(execution)``) and the outcomes in order (``outcomes(...)``), and
    optionally ``session_summary()``, a dict merged into that record when the session ends;
    this function still writes the run directory alone.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    execution = Execution(batch_size=batch_size, concurrency=concurrency, prefetch=prefetch,
                          decode_workers=decode_workers)
    labels = _labels_of(dataset)
    names = list(labels.names)
    samples = list(samples)
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        samples = interleave_by_label(samples)[:limit]
    ids = [str(s.id) for s in samples]
    if len(set(ids)) != len(ids):
        raise ConfigError("samples contain duplicate ids")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    strat_cfg = _strategy_config(strategy)
    back_cfg = executor.backend_config() if executor is not None else _backend_config(backend)
    if hasattr(dataset, "describe"):
        ds_info = dict(dataset.describe())
    else:
        ds_info = {"name": getattr(dataset, "name", None)}
    ds_info["labels"] = names
    ds_info.setdefault("label_set", getattr(labels, "key", None))
    fingerprint = {
        "dataset": ds_info.get("name"),
        "labels": names,
        "split": (split or {}).get("name"),
        "split_test_sha256": (split or {}).get("test_sha256"),
        "strategy": strat_cfg,
        "model_id": back_cfg.get("model_id"),
    }
    cfg_path = out / CONFIG_FILE
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lock = _RunLock(out)
    log = PredictionLog(out / PREDICTIONS_FILE)
    try:
        if cfg_path.exists():
            try:
                old = json.loads(cfg_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read {cfg_path}: {exc}") from None
            old_fp = old.get("fingerprint", {})
            diff = sorted(k for k in set(old_fp) | set(fingerprint) if old_fp.get(k) != fingerprint.get(k))
            if diff:
                raise ConfigError(
                    f"{out} holds a run with a different {', '.join(diff)}; resume only with the same "
                    f"settings, or choose another --out directory"
                )
            config = old
        else:
            if log.records:
                raise ConfigError(f"{out / PREDICTIONS_FILE} exists without {CONFIG_FILE}; refusing to mix runs")
            config = {
                "format": "msce-run",
                "version": 1,
                "created": now,
                "fingerprint": fingerprint,
                "dataset": ds_info,
                "split": dict(split) if split else None,
                "strategy": strat_cfg,
                "backend": back_cfg,
                "cache": _cache_path(cache),
                "seed": seed,
                "environment": environment_info(),
                "sessions": [],
            }
            if extra_config:
                config["extra"] = json.loads(_dumps(dict(extra_config)))
        config.setdefault("sessions", []).append(
            {
                "started": now,
                "command": [redact_urls(str(a)) for a in (command if command is not None else sys.argv)],
                "requested": len(samples),
                "already_done": sum(1 for i in ids if i in log.done),
                "environment": environment_info(),
                "execution": executor.to_dict(execution) if executor is not None else execution.to_dict(),
            }
        )
        _write_json_atomic(cfg_path, config)

        todo = [s for s in samples if str(s.id) not in log.done]
        n_resumed = len(samples) - len(todo)
        failed: list[str] = []
        wanted = set(ids)
        scored = [r for r in log.records if str(r["id"]) in wanted]
        n_correct = sum(1 for r in scored if r.get("correct"))
        n_invalid = sum(1 for r in scored if r.get("parsed") not in names)
        bar = _Progress(len(samples), n_resumed, progress, f"{strat_cfg.get('name')}")
        pass_id = _accepts_sample_id(strategy)
        n_new = 0
        warned_duplicates = False
        try:
            if executor is not None:
                outcomes = executor.outcomes(todo, strategy, labels, cache, execution, pass_id=pass_id,
                                             fatal=lambda exc: on_error != "skip" or not isinstance(exc, MEDIA_ERRORS))
            elif execution.sequential:
                outcomes = _sequential(todo, strategy, labels, backend, cache, pass_id, on_error)
            else:
                outcomes = run_pipelined(todo, strategy, labels, backend, cache, execution, pass_id=pass_id,
                                         fatal=lambda exc: on_error != "skip" or not isinstance(exc, MEDIA_ERRORS))
            try:
                for o in outcomes:
                    s = todo[o.position]
                    if o.error is not None:
                        if on_error != "skip" or not isinstance(o.error, MEDIA_ERRORS):
                            raise o.error
                        failed.append(str(s.id))
                        with open(out / ERRORS_FILE, "a", encoding="utf-8") as f:
                            f.write(_dumps({"id": str(s.id), "path": os.fspath(s.path),
                                            "error": type(o.error).__name__, "message": str(o.error),
                                            "time": now}) + "\n")
                        bar.advance(n_correct, len(scored), n_invalid)
                        continue
                    rec = _record(s, o.result, names, o.wall_s, o.damaged_frames)
                    log.append(rec)
                    if rec["duplicate_frames"] and not warned_duplicates:
                        warned_duplicates = True
                        bar.note(_duplicate_note(rec, strat_cfg))
                    n_new += 1
                    scored.append(rec)
                    n_correct += int(rec["correct"])
                    n_invalid += int(rec["parsed"] is None or rec["parsed"] not in names)
                    bar.advance(n_correct, len(scored), n_invalid)
            finally:
                outcomes.close()
        finally:
            bar.close()
            # what the executor can tell only at the end (a Ray run: rows dropped as duplicates),
            # added to this session's execution record, also when the run stopped on an error
            summary = getattr(executor, "session_summary", None)
            if summary is not None:
                config["sessions"][-1]["execution"].update(summary())
                _write_json_atomic(cfg_path, config)

        records = [r for r in log.records if str(r["id"]) in wanted]
    finally:
        log.close()
        lock.release()

    metrics = compute_run_metrics(records, names, n_boot=n_boot, seed=seed or 0)
    metrics.update(
        {
            "complete": len(records) == len(samples),
            "n_requested": len(samples),
            "n_done": len(records),
            "n_failed": len(failed),
            "failed": failed,
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    _write_json_atomic(out / METRICS_FILE, metrics)
    return EvalResult(
        out_dir=out,
        report=ClassificationReport.from_dict(metrics["report"]),
        n_requested=len(samples),
        n_done=len(records),
        n_new=n_new,
        n_resumed=n_resumed,
        n_failed=len(failed),
        failed=tuple(failed),
    )
