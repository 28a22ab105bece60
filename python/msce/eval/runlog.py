"""The run directory on disk: its file names, the crash-safe prediction log, the run lock,
atomic JSON writing and the environment recorded in every config.

:func:`msce.eval.runner.run_eval` writes a run directory; :mod:`msce.eval.runs` reads it back.

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
    shuffled run's ``permutation`` and ``kendall_distance``), plus ``wall_s``,
    ``damaged_frames`` (frames the decoder flagged; null where not known) and
    ``duplicate_frames`` (sent frames that repeat a source frame already sent, as when
    the requested FPS exceeds the clip's frame rate; the run notes the first such video
    once). A strategy whose ``run`` takes ``sample_id=`` gets the sample's id.
``errors.jsonl``
    Videos skipped with ``on_error="skip"`` (media that cannot be decoded); retried on
    the next run.
``metrics.json``
    Written at the end: :class:`msce.eval.metrics.ClassificationReport` with bootstrap
    intervals, counts, usage totals and ``frames`` (``duplicate_frames``: the total,
    ``videos_with_duplicates``).
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

import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from msce.errors import ConfigError, MsceError

__all__ = [
    "CONFIG_FILE",
    "PREDICTIONS_FILE",
    "METRICS_FILE",
    "ERRORS_FILE",
    "SPLIT_FILE",
    "PredictionLog",
    "read_predictions",
    "environment_info",
]

CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
ERRORS_FILE = "errors.jsonl"
SPLIT_FILE = "split.json"


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


# --------------------------------------------------------------------------- environment


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
