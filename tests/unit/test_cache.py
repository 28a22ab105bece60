"""Response cache: key sensitivity, persistence, WAL, threads, and the one-call rule."""

from __future__ import annotations

import json
import select
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from msce.models.backends.base import GenerationParams
from msce.models.cache import ResponseCache, frames_digest, generate_cached, request_key

from backend_fakes import rgb_frames


class CountingBackend:
    """Echoes each request's text; counts generate invocations and requests."""

    model_id = "fake-model"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fingerprint(self) -> dict:
        return {"backend": "fake"}

    def target(self):  # pragma: no cover - not used here
        return None

    def generate(self, requests, params):
        self.calls.append(len(requests))
        return ["|".join(p for p in r if isinstance(p, str)) + f"#{params.max_new_tokens}" for r in requests]


P = GenerationParams()


def key(request, model="m", fp=None, params=P):
    return request_key(model, fp or {}, request, params)


def test_key_depends_on_every_input() -> None:
    a = rgb_frames(3, seed=1)
    base = key(["hello", a])
    assert base == key(["hello", rgb_frames(3, seed=1)])  # same content, new object
    assert base != key(["hello!", a])
    assert base != key([a, "hello"])  # order matters
    assert base != key(["hello", rgb_frames(3, seed=2)])  # pixel content
    assert base != key(["hello", a], model="other")
    assert base != key(["hello", a], fp={"dtype": "bfloat16"})
    assert base != key(["hello", a], params=GenerationParams(max_new_tokens=7))
    assert base != key(["hello", a], params=GenerationParams(seed=1))
    shifted = rgb_frames(3, seed=1, start=5)  # same pixels at other frame indices/times
    assert base != key(["hello", shifted])


def test_one_pixel_changes_the_digest() -> None:
    a = rgb_frames(2, seed=3)
    d = frames_digest(a)
    a.data[1, 5, 7, 2] ^= 1
    assert frames_digest(a) != d


def test_get_put_persist_and_wal(tmp_path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    with ResponseCache(path) as c:
        assert c.journal_mode() == "wal"
        assert c.get("k") is None
        c.put("k", "answer", "m")
        assert c.get("k") == "answer"
        assert (c.hits, c.misses) == (1, 1)
        assert len(c) == 1
    with ResponseCache(path) as c2:
        assert c2.get("k") == "answer"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_closed_cache_raises(tmp_path) -> None:
    c = ResponseCache(tmp_path / "c.sqlite")
    c.close()
    with pytest.raises(ValueError):
        c.get("x")


def test_thread_safety(tmp_path) -> None:
    c = ResponseCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                c.put(f"{t}-{i}", f"v{t}-{i}")
                assert c.get(f"{t}-{i}") == f"v{t}-{i}"
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(c) == 400
    c.close()


def test_generate_cached_sends_misses_in_one_call(tmp_path) -> None:
    be = CountingBackend()
    c = ResponseCache(tmp_path / "c.sqlite")
    f1, f2 = rgb_frames(2, seed=1), rgb_frames(2, seed=2)
    reqs = [[f1, "a"], [f2, "b"], [f1, "c"]]
    g = generate_cached(be, reqs, P, c)
    assert g.texts == ["a#32", "b#32", "c#32"]
    assert (g.model_calls, g.cache_hits, g.model_requests) == (1, 0, 3)
    assert be.calls == [3]
    # a partly cached batch: only the new request reaches the model, once
    g2 = generate_cached(be, reqs + [[f2, "d"]], P, c)
    assert g2.texts == ["a#32", "b#32", "c#32", "d#32"]
    assert g2.from_cache == [True, True, True, False]
    assert be.calls == [3, 1]
    # fully cached: zero model calls
    g3 = generate_cached(be, reqs, P, c)
    assert g3.model_calls == 0 and g3.cache_hits == 3 and be.calls == [3, 1]
    # other params: a different key
    g4 = generate_cached(be, reqs[:1], GenerationParams(max_new_tokens=5), c)
    assert g4.texts == ["a#5"] and g4.model_calls == 1
    c.close()


def test_no_cache_always_calls() -> None:
    be = CountingBackend()
    for _ in range(2):
        g = generate_cached(be, [["x"]], P, None)
        assert g.model_calls == 1 and g.cache_hits == 0
    assert be.calls == [1, 1]
    assert generate_cached(be, [], P, None).model_calls == 0


# A child that fills a cache through ResponseCache.put, one committed entry per call; it
# prints the count after SIGNAL_AT commits and keeps writing until it is killed (or has
# written SIGNAL_AT + 20000 entries, so an orphan stops by itself).
_WRITER = """
import hashlib, sys
from msce.models.cache import ResponseCache

path, signal_at = sys.argv[1], int(sys.argv[2])
cache = ResponseCache(path)
for i in range(signal_at + 20000):
    value = hashlib.sha256(str(i).encode()).hexdigest() * 32
    cache.put(f"k{i:06d}", value, "m", {"i": i})
    if i + 1 == signal_at:
        sys.stdout.write(f"{i + 1}\\n")
        sys.stdout.flush()
"""


def expected_value(i: int) -> str:
    import hashlib

    return hashlib.sha256(str(i).encode()).hexdigest() * 32


def test_sigkill_while_writing_leaves_a_consistent_cache(tmp_path) -> None:
    path = tmp_path / "killed.sqlite"
    signal_at = 300
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(signal_at)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120.0)
        assert ready, "the writer did not report its commits in time"
        line = child.stdout.readline()
        assert line == f"{signal_at}\n".encode(), child.stderr.read().decode(errors="replace")
        child.send_signal(signal.SIGKILL)  # while it goes on writing
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    # read back with plain sqlite3: the recovered database is intact and holds a prefix
    # of the writes, every committed entry whole, none partial
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT key, model_id, response, meta FROM responses ORDER BY key").fetchall()
    con.close()
    assert len(rows) >= signal_at
    assert [r[0] for r in rows] == [f"k{i:06d}" for i in range(len(rows))]
    for i, (_, model_id, response, meta) in enumerate(rows):
        assert model_id == "m" and response == expected_value(i) and json.loads(meta) == {"i": i}
    # and msce reopens it and keeps using it
    with ResponseCache(path) as c:
        assert c.journal_mode() == "wal"
        assert all(c.get(f"k{i:06d}") == expected_value(i) for i in range(0, signal_at, 7))
        c.put("after", "restart")
        assert c.get("after") == "restart" and len(c) == len(rows) + 1
