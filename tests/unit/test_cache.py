"""Response cache: key sensitivity, persistence, WAL, threads, and the one-call rule."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from msce.backends.base import GenerationParams
from msce.cache import ResponseCache, frames_digest, generate_cached, request_key

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
