"""The evaluation runner: one strategy, one backend, many videos, one run directory.

Run directory layout
--------------------
``config.json``
    Everything needed to reproduce the run: dataset (name, root, labels, class
    counts), split (kind, seed, fold, digest of the test ids), ``strategy.config()``,
    the backend's model id and fingerprint (and, for a server backend, its base URL
    without credentials), the cache path, seeds, versions (msce,
    python, numpy, torch, transformers, platform) and one entry per session (start
    time, command line, how many videos were already done).
``predictions.jsonl``
    One JSON object per finished video, appended with ``write`` + ``flush`` +
    ``fsync`` before the next video starts: ``id``, ``label``, ``path``, ``parsed``
    (canonical label or null = invalid), ``correct``, and the strategy result
    (``raw_answer``, ``frame_indices``, ``timestamps``, ``prompts``, ``stage1``,
    ``visual_tokens``, ``model_calls``, ``cache_hits``, ``latency_s``, ``extra``: e.g. a
    shuffled run's ``permutation`` and ``kendall_distance``), plus ``wall_s``. A strategy
    whose ``run`` takes ``sample_id=`` gets the sample's id.
``errors.jsonl``
    Videos skipped with ``on_error="skip"`` (media that cannot be decoded); retried on
    the next run.
``metrics.json``
    Written at the end: :class:`msce.eval.metrics.ClassificationReport` with bootstrap
    intervals, counts, and usage totals.
``split.json``
    The split the CLI evaluated (see :mod:`msce.eval.splits`).

Crash safety
------------
A rerun with the same directory resumes: it reads ``predictions.jsonl``, skips every
id already there and appends the rest. A process killed mid-write (SIGKILL, power
loss) can leave at most one partial last line (no trailing newline); the resume
truncates the file back to the last complete line, so nothing that was fully written
is lost and nothing is written twice. A corrupt line *before* the last one is never
repaired silently: it raises :class:`msce.errors.MsceError` naming the line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from msce.models.backends._url import redact_urls
from msce.errors import ConfigError, DatasetError, DecodeError, MsceError, PlanError
from msce.eval.metrics import ClassificationReport, Predictions, bootstrap_ci

__all__ = [
    "CONFIG_FILE",
    "PREDICTIONS_FILE",
    "METRICS_FILE",
    "ERRORS_FILE",
    "SPLIT_FILE",
    "PredictionLog",
    "read_predictions",
    "EvalResult",
    "run_eval",
    "interleave_by_label",
    "make_strategy",
    "Run",
    "load_run",
    "compute_run_metrics",
    "add_cli",
]

CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
ERRORS_FILE = "errors.jsonl"
SPLIT_FILE = "split.json"

#: Exceptions that concern one video's media; ``on_error="skip"`` records and skips them.
MEDIA_ERRORS: tuple[type[BaseException], ...] = (DecodeError, PlanError, DatasetError)


# --------------------------------------------------------------------------- JSON helpers


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return os.fspath(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "tolist"):  # torch tensors
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=_json_default, ensure_ascii=False, allow_nan=True, **kw)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_dumps(obj, indent=2))
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the log


def read_predictions(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """Records of a ``predictions.jsonl``, in file order.

    A torn tail (bytes after the last newline, or a last line that is not valid JSON)
    is ignored, and with ``repair=True`` cut off the file. Duplicate ids keep the first
    record. A corrupt line elsewhere raises MsceError naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # bytes after this are a torn, unterminated line
    lines = data[:end].split(b"\n")[:-1]
    records: list[dict] = []
    good_end = 0
    offset = 0
    for lineno, raw in enumerate(lines, start=1):
        offset += len(raw) + 1
        if not raw.strip():
            good_end = offset
            continue
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or "id" not in rec:
                raise ValueError("not a prediction record")
        except ValueError as exc:
            if lineno == len(lines):  # a damaged final line: treat like a torn write
                break
            raise MsceError(f"{path}:{lineno}: corrupt prediction record ({exc}); fix or remove that line") from None
        records.append(rec)
        good_end = offset
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    seen: set[str] = set()
    unique = []
    for rec in records:
        sid = str(rec["id"])
        if sid not in seen:
            seen.add(sid)
            unique.append(rec)
    return unique


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (POSIX); silently skipped where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class PredictionLog:
    """Append-only JSON-lines file with one durable write per record.

    Opening repairs a torn tail (see :func:`read_predictions`) and loads the finished
    ids. :meth:`append` writes the whole line with ``os.write`` on an ``O_APPEND``
    descriptor, then ``fsync``, so a record is either completely on disk or (after a
    kill mid-write) a torn tail that the next open removes.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_predictions(self.path, repair=True)
        self.done = {str(r["id"]) for r in self.records}
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            _fsync_dir(self.path.parent)

    def append(self, record: Mapping) -> None:
        sid = str(record["id"])
        if sid in self.done:
            raise MsceError(f"{self.path}: video {sid!r} already has a prediction")
        data = (_dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.done.add(sid)
        self.records.append(dict(record))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RunLock:
    """An exclusive ``flock`` on ``<run>/.lock`` so two processes never append to one run.

    The kernel drops the lock when the holder dies (even by SIGKILL), so a crashed run
    never blocks its resume. Where ``fcntl`` is unavailable (Windows) this is a no-op.
    """

    def __init__(self, out: Path):
        self._f = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        f = open(out / ".lock", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise ConfigError(f"another process is writing the run directory {out}") from None
        self._f = f

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing the descriptor releases the flock
            self._f = None


# --------------------------------------------------------------------------- config


def _pkg_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _msce_version() -> str:
    pkg = sys.modules.get("msce")
    v = getattr(pkg, "__version__", None)
    return str(v) if v else (_pkg_version("msce") or "unknown")


def environment_info() -> dict:
    """Versions and platform recorded in every run's config."""
    return {
        "msce": _msce_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _pkg_version("torch"),
        "transformers": _pkg_version("transformers"),
        "platform": platform.platform(),
    }


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
    return {
        "report": report.to_dict(),
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
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
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
    back_cfg = _backend_config(backend)
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
        try:
            for s in todo:
                t0 = time.perf_counter()
                try:
                    if pass_id:
                        result = strategy.run(s.path, labels, backend, cache, sample_id=str(s.id))
                    else:
                        result = strategy.run(s.path, labels, backend, cache)
                except MEDIA_ERRORS as exc:
                    if on_error != "skip":
                        raise
                    failed.append(str(s.id))
                    with open(out / ERRORS_FILE, "a", encoding="utf-8") as f:
                        f.write(_dumps({"id": str(s.id), "path": os.fspath(s.path), "error": type(exc).__name__,
                                        "message": str(exc), "time": now}) + "\n")
                    bar.advance(n_correct, len(scored), n_invalid)
                    continue
                wall = time.perf_counter() - t0
                res = _result_dict(result)
                parsed = res.get("parsed")
                rec = {
                    "id": str(s.id),
                    "label": s.label,
                    "path": os.fspath(s.path),
                    "parsed": parsed,
                    "correct": parsed == s.label,
                    "valid": parsed in names,
                }
                for k, v in res.items():
                    if k not in rec:
                        rec[k] = v
                rec["wall_s"] = round(wall, 6)
                log.append(rec)
                n_new += 1
                scored.append(rec)
                n_correct += int(rec["correct"])
                n_invalid += int(parsed is None or parsed not in names)
                bar.advance(n_correct, len(scored), n_invalid)
        finally:
            bar.close()

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


# --------------------------------------------------------------------------- reading runs


@dataclass
class Run:
    """A run directory read back: config, prediction records and their metrics."""

    path: Path
    name: str
    config: dict
    records: list[dict]
    labels: tuple[str, ...]
    metrics: dict | None = None

    @property
    def predictions(self) -> Predictions:
        return Predictions.from_records(self.records, self.labels, name=self.name)

    @property
    def report(self) -> ClassificationReport:
        return self.predictions.report()

    @property
    def dataset(self) -> str | None:
        return (self.config.get("dataset") or {}).get("name")

    @property
    def strategy(self) -> dict:
        return self.config.get("strategy") or {}

    @property
    def strategy_name(self) -> str:
        return str(self.strategy.get("name", "?"))

    @property
    def model_id(self) -> str | None:
        return (self.config.get("backend") or {}).get("model_id")

    @property
    def fps(self) -> float | None:
        """The sampling rate of the strategy's frames, when its config names one."""
        return _find_fps(self.strategy)

    @property
    def is_shuffled(self) -> bool:
        s = self.strategy
        return self.strategy_name in ("shuffled", "shuffle", "fs") or bool(s.get("shuffled") or s.get("shuffle"))


def _find_fps(cfg: Mapping, depth: int = 0) -> float | None:
    for key in ("fps", "keyframe_fps"):
        v = cfg.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    if depth < 3:
        for v in cfg.values():
            if isinstance(v, Mapping):
                f = _find_fps(v, depth + 1)
                if f is not None:
                    return f
    return None


def load_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read a run directory (config.json + predictions.jsonl; metrics.json if present)."""
    p = Path(path)
    cfg_path = p / CONFIG_FILE
    if not cfg_path.is_file():
        raise DatasetError(f"not an msce run directory (no {CONFIG_FILE}): {p}")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {cfg_path}: {exc}") from None
    labels = tuple((config.get("dataset") or {}).get("labels") or ())
    if not labels:
        raise DatasetError(f"{cfg_path} does not list the dataset's labels")
    records = read_predictions(p / PREDICTIONS_FILE)
    metrics = None
    mp = p / METRICS_FILE
    if mp.is_file():
        try:
            metrics = json.loads(mp.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            metrics = None
    return Run(path=p, name=name or p.resolve().name, config=config, records=records, labels=labels, metrics=metrics)


# --------------------------------------------------------------------------- CLI


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
