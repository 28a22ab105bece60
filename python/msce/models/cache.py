"""A persistent response cache (SQLite in WAL mode).

A response is keyed by the SHA-256 of a canonical JSON document holding:

* the backend's ``model_id`` and ``fingerprint()`` (weights digest and dtype for local
  models; for servers the public base URL and the served model's revision; image
  encoding, ...), so two servers that give their models the same name never share
  answers,
* the request's parts in order: text verbatim, frames as a digest of the tensor bytes
  (plus dtype, shape, grid, frame indices and timestamps, which change what a model
  sees even for identical pixels),
* the generation parameters.

So MSCE's stage-1 gap descriptions are reused by any later run that sends the same
gap frames with the same prompt to the same model, and a rerun of any strategy makes
zero model calls. The cache is safe to share between threads of one process (one
connection behind a lock) and between processes (SQLite locking, WAL journal).

``cache=None`` everywhere means no caching (the ``--no-cache`` path).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from msce.models.backends.base import Backend, GenerationParams, Request

__all__ = ["ResponseCache", "request_key", "request_key_document", "frames_digest", "generate_cached",
           "CachedGeneration"]

_SCHEMA_VERSION = 1


def _as_array(data: Any):
    """(contiguous numpy array, dtype name) of a tensor or array, without copying when
    it is already a contiguous CPU buffer."""
    import numpy as np
    import torch

    if isinstance(data, torch.Tensor):
        t = data.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw 16-bit words
            return t.view(torch.int16).numpy(), "bfloat16"
        arr = t.numpy()
        return arr, str(arr.dtype)
    arr = np.ascontiguousarray(np.asarray(data))
    return arr, str(arr.dtype)


def frames_digest(batch: Any) -> str:
    """SHA-256 over a FrameBatch's tensor bytes and the metadata a model sees."""
    import numpy as np

    arr, dtype = _as_array(batch.data)
    grid = getattr(batch, "grid_thw", None)
    meta = {
        "dtype": dtype,
        "shape": list(arr.shape),
        "grid_thw": None if grid is None else [int(v) for v in np.asarray(grid).reshape(-1).tolist()],
        "indices": [int(i) for i in batch.indices],
        "timestamps": [round(float(t), 6) for t in batch.timestamps],
    }
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    h.update(memoryview(arr).cast("B") if arr.size else b"")
    return h.hexdigest()


def request_key(model_id: str, fingerprint: dict, request: "Request", params: "GenerationParams",
                digests: dict[int, str] | None = None) -> str:
    """The cache key of one request: the hex SHA-256 of :func:`request_key_document`.

    ``digests`` memoizes frame digests by ``id(batch)`` within one call, so a batch
    shared by several requests is hashed once.
    """
    return hashlib.sha256(request_key_document(model_id, fingerprint, request, params, digests).encode()).hexdigest()


def request_key_document(model_id: str, fingerprint: dict, request: "Request", params: "GenerationParams",
                         digests: dict[int, str] | None = None) -> str:
    """The canonical JSON text a cache key hashes (sorted keys, no spaces)."""
    from msce.models.backends.base import is_frames

    parts = []
    for part in request:
        if isinstance(part, str):
            parts.append({"text": part})
        elif is_frames(part):
            if digests is not None and id(part) in digests:
                d = digests[id(part)]
            else:
                d = frames_digest(part)
                if digests is not None:
                    digests[id(part)] = d
            parts.append({"frames": d, "n": len(part.indices)})
        else:
            raise TypeError(f"cannot key a request part of type {type(part).__name__}")
    doc = {
        "schema": _SCHEMA_VERSION,
        "model": model_id,
        "fingerprint": fingerprint,
        "parts": parts,
        "params": params.to_dict(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class ResponseCache:
    """SQLite-backed ``key -> response text`` store.

    ``hits`` / ``misses`` count lookups made through this object.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY,"
            " model_id TEXT NOT NULL,"
            " response TEXT NOT NULL,"
            " created REAL NOT NULL,"
            " meta TEXT)"
        )
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"{self!r} is closed")
        return self._conn

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db().execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return row[0]

    def put(self, key: str, response: str, model_id: str = "", meta: dict | None = None) -> None:
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO responses (key, model_id, response, created, meta) VALUES (?, ?, ?, ?, ?)",
                (key, model_id, response, time.time(), None if meta is None else json.dumps(meta, sort_keys=True)),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db().execute("PRAGMA journal_mode").fetchone()[0])


class CachedGeneration:
    """Result of :func:`generate_cached`: texts in request order, whether each came
    from the cache, and how many backend invocations were made (0 or 1)."""

    __slots__ = ("texts", "from_cache", "model_calls")

    def __init__(self, texts: list[str], from_cache: list[bool], model_calls: int):
        self.texts = texts
        self.from_cache = from_cache
        self.model_calls = model_calls

    @property
    def cache_hits(self) -> int:
        return sum(self.from_cache)

    @property
    def model_requests(self) -> int:
        return len(self.from_cache) - self.cache_hits


def generate_cached(backend: "Backend", requests: Sequence["Request"], params: "GenerationParams",
                    cache: ResponseCache | None) -> CachedGeneration:
    """Answer ``requests``: cached ones from ``cache``, all misses in ONE ``generate`` call."""
    if not requests:
        return CachedGeneration([], [], 0)
    if cache is None:
        texts = list(backend.generate(list(requests), params))
        return CachedGeneration(texts, [False] * len(texts), 1)
    fp = backend.fingerprint()
    digests: dict[int, str] = {}
    keys = [request_key(backend.model_id, fp, r, params, digests) for r in requests]
    texts: list[str | None] = [cache.get(k) for k in keys]
    from_cache = [t is not None for t in texts]
    missing = [i for i, t in enumerate(texts) if t is None]
    calls = 0
    if missing:
        answers = backend.generate([requests[i] for i in missing], params)
        calls = 1
        if len(answers) != len(missing):
            from msce.errors import BackendError

            raise BackendError(f"backend returned {len(answers)} answers for {len(missing)} requests")
        for i, answer in zip(missing, answers):
            texts[i] = answer
            cache.put(keys[i], answer, backend.model_id)
    return CachedGeneration([t for t in texts], from_cache, calls)  # type: ignore[misc]
