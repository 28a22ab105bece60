"""The openai backend against a local chat-completions server (no network)."""

from __future__ import annotations

import base64
import io
import logging
import random

import pytest
from PIL import Image

from backend_fakes import FakeChatServer, rgb_frames
from msce.models.backends import GenerationParams, get_backend
from msce.models.backends.openai_api import OpenAIBackend, RetriesExhaustedError, _parse_retry_after, encode_jpeg_data_url
from msce.errors import BackendError, ConfigError

KEY = "sk-test-Q7x9SECRETvalue"
ENV = "MSCE_TEST_OPENAI_KEY"
P = GenerationParams(max_new_tokens=8)


@pytest.fixture()
def server():
    with FakeChatServer(expect_key=KEY) as s:
        yield s


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)


@pytest.fixture(autouse=True)
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert KEY not in caplog.text  # never logged, whatever the test did


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock and is recorded, so
    retry tests check delays without waiting and never depend on machine speed."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def backend(server, fake_time: FakeTime | None = None, **kw) -> OpenAIBackend:
    fake_time = fake_time or FakeTime()
    opts = dict(base_url=server.base_url, model="tiny-vlm", api_key_env=ENV, timeout=5.0,
                max_retries=3, backoff_base=0.01, backoff_max=0.05, concurrency=4,
                clock=fake_time.clock, sleep=fake_time.sleep)
    opts.update(kw)
    return get_backend("openai", **opts)


def expected_delays(seed: int, index: int, n: int, base: float, cap: float) -> list[float]:
    """The documented backoff, computed here: min(cap, base * 2**k) scaled by a jitter
    u in [0.5, 1] drawn from random.Random("<seed>:<request index>")."""
    rng = random.Random(f"{seed}:{index}")
    return [min(cap, base * 2 ** k) * (0.5 + 0.5 * rng.random()) for k in range(n)]


def test_request_layout_and_answer(server) -> None:
    be = backend(server)
    video = rgb_frames(3, h=24, w=32, seed=1)
    image = rgb_frames(1, h=16, w=20, seed=2)
    out = be.generate([["ok:first", video, "between", image, "last"]], P)
    assert out == ["echo ok:first images=4"]
    (req,) = server.requests
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    body = req["body"]
    assert body["model"] == "tiny-vlm" and body["max_tokens"] == 8
    assert body["temperature"] == 0.0 and body["seed"] == 0 and "top_p" not in body
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    kinds = [c["type"] for c in msg["content"]]
    assert kinds == ["text", "image_url", "image_url", "image_url", "text", "image_url", "text"]
    assert [c["text"] for c in msg["content"] if c["type"] == "text"] == ["ok:first", "between", "last"]
    url = msg["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and img.size == (32, 24)
    last = Image.open(io.BytesIO(base64.b64decode(msg["content"][5]["image_url"]["url"].split(",", 1)[1])))
    assert last.size == (20, 16)


def test_batch_keeps_order_and_bounds_concurrency(server) -> None:
    be = backend(server, concurrency=3)
    reqs = [[f"hold:{i}"] for i in range(7)]
    out = be.generate(reqs, P)
    assert out == [f"echo hold:{i} images=0" for i in range(7)]
    assert 1 < server.max_inflight <= 3  # ran concurrently, never more than 3 at once
    assert sorted(a.request for a in be.attempt_log) == list(range(7))


def test_429_honours_retry_after(server) -> None:
    t = FakeTime()
    be = backend(server, t)  # Retry-After 0.3 s is far above the 0.05 s backoff cap
    assert be.generate([["429once:a"]], P) == ["echo 429once:a images=0"]
    assert t.sleeps == [0.3]
    assert [(a.number, a.status, a.delay) for a in be.attempt_log] == [(1, 429, 0.3), (2, 200, None)]
    assert server.attempts["429once:a"] == 2


def test_500_retried_with_backoff(server) -> None:
    t = FakeTime()
    be = backend(server, t, backoff_base=0.5, backoff_max=0.75, seed=7)
    assert be.generate([["500twice:a"]], P) == ["echo 500twice:a images=0"]
    assert server.attempts["500twice:a"] == 3
    want = expected_delays(7, 0, 2, 0.5, 0.75)
    assert t.sleeps == pytest.approx(want, abs=1e-12)
    assert [a.status for a in be.attempt_log] == [500, 500, 200]
    # the injected clock stamps the attempts: each starts after the previous sleep
    assert [a.started for a in be.attempt_log] == pytest.approx([1000.0, 1000.0 + want[0], 1000.0 + sum(want)])


def test_timeout_retried(server) -> None:
    # the first attempt is never answered, so it times out whatever the machine's speed;
    # the second is answered at once (2 s leaves a loaded machine plenty of room)
    t = FakeTime()
    be = backend(server, t, timeout=2.0)
    assert be.generate([["hangonce:a"]], P) == ["echo hangonce:a images=0"]
    assert server.attempts["hangonce:a"] == 2
    assert [a.status for a in be.attempt_log] == ["timeout", 200]
    assert t.sleeps == pytest.approx(expected_delays(0, 0, 1, 0.01, 0.05), abs=1e-12)


def test_out_of_retries_on_repeated_429() -> None:
    t = FakeTime()
    with FakeChatServer(retry_after="2") as s:
        url = s.base_url.replace("http://", "http://alice:Pw-9secret@")
        be = backend(s, t, base_url=url, max_retries=2)
        with pytest.raises(RetriesExhaustedError) as info:
            be.generate([["always429:a"]], P)
        assert s.attempts["always429:a"] == 3
        assert s.requests[0]["headers"]["Authorization"].startswith("Basic ")  # the URL's login was sent
    err = info.value
    assert isinstance(err, BackendError)
    assert (err.attempts, err.last_status) == (3, 429)
    assert err.url == f"{s.base_url}/chat/completions"
    text = str(err)
    assert f"{s.base_url}/chat/completions" in text and "after 3 attempts" in text
    assert "last status: HTTP 429" in text and "slow down" in text
    assert "Pw-9secret" not in text and "alice" not in text
    assert t.sleeps == [2.0, 2.0]  # Retry-After wins over the tiny backoff; no sleep after the last
    assert [a.delay for a in be.attempt_log] == [2.0, 2.0, None]


def test_out_of_retries_on_repeated_timeouts(caplog) -> None:
    t = FakeTime()
    with FakeChatServer() as s:
        url = s.base_url.replace("http://", "http://bob:Tok-77secret@") + "/?api_key=QS-secret-1&mode=x"
        be = backend(s, t, base_url=url, max_retries=2, timeout=0.2)
        with pytest.raises(RetriesExhaustedError) as info:
            be.generate([["hang:a"]], P)
        assert s.attempts["hang:a"] == 3
        assert s.requests[0]["path"] == "/v1/chat/completions?api_key=QS-secret-1&mode=x"
    err = info.value
    assert (err.attempts, err.last_status) == (3, "timeout")
    assert err.url == f"{s.base_url}/chat/completions?mode=x"
    assert "after 3 attempts" in str(err) and "last status: timeout" in str(err)
    assert [a.status for a in be.attempt_log] == ["timeout"] * 3
    assert t.sleeps == pytest.approx(expected_delays(0, 0, 2, 0.01, 0.05), abs=1e-12)
    for text in (str(err), repr(err), caplog.text, repr(be), str(be.__dict__)):
        assert "Tok-77secret" not in text and "QS-secret-1" not in text and "bob" not in text


def test_malformed_json_retried_then_error(server) -> None:
    be = backend(server)
    assert be.generate([["malformedonce:a"]], P) == ["echo malformedonce:a images=0"]
    with pytest.raises(BackendError, match="malformed JSON") as info:
        be.generate([["malformed:b"]], P)
    assert server.attempts["malformed:b"] == 4  # 1 + max_retries
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_missing_choices_is_an_error(server) -> None:
    with pytest.raises(BackendError, match="choices"):
        backend(server, max_retries=1).generate([["nochoices:a"]], P)


def test_client_errors_fail_fast(server) -> None:
    be = backend(server)
    with pytest.raises(BackendError, match="HTTP 401"):
        be.generate([["unauthorized:a"]], P)
    assert server.attempts["unauthorized:a"] == 1


def test_connection_refused_is_retried_then_error() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    be = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=ENV,
                       max_retries=2, backoff_base=0.01, timeout=1.0)
    with pytest.raises(BackendError, match="after 3 attempts") as info:
        be.generate([["ok:x"]], P)
    assert be.http_attempts == 3
    assert [a.status for a in be.attempt_log] == ["connection"] * 3
    assert KEY not in str(info.value)


def test_key_never_leaks(server) -> None:
    be = backend(server, max_retries=1)
    with pytest.raises(BackendError) as info:
        be.generate([["echoauth:a"]], P)
    text = str(info.value) + repr(info.value) + str(info.value.__cause__) + str(info.value.__context__)
    assert "***" in str(info.value)  # the server echoed it; msce redacted it
    assert KEY not in text
    for record_text in (repr(be), str(be.config()), str(be.fingerprint())):
        assert KEY not in record_text
    assert be.config()["api_key_env"] == ENV
    assert not any(KEY in str(v) for v in vars(be).values())  # not even stored


def test_no_key_no_header(monkeypatch) -> None:
    monkeypatch.delenv(ENV)
    with FakeChatServer() as s:
        OpenAIBackend(base_url=s.base_url, model="m", api_key_env=ENV).generate([["ok:a"]], P)
        assert "Authorization" not in s.requests[0]["headers"]


def test_sampling_params_and_extra_body(server) -> None:
    be = backend(server, extra_body={"mm_processor_kwargs": {"do_sample_frames": False}},
                 max_tokens_field="max_completion_tokens", system_prompt="be brief")
    be.generate([["ok:s"]], GenerationParams(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=3))
    body = server.requests[-1]["body"]
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 3)
    assert body["mm_processor_kwargs"] == {"do_sample_frames": False}
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_backoff_is_seeded_and_capped() -> None:
    import random

    be = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", backoff_base=1.0, backoff_max=8.0, seed=5)
    a = [be._backoff(k, random.Random("5:0"), None) for k in range(6)]
    b = [be._backoff(k, random.Random("5:0"), None) for k in range(6)]
    assert a == b
    assert all(0.5 * min(8.0, 2 ** k) <= d <= min(8.0, 2 ** k) for k, d in enumerate(a))
    assert be._backoff(0, random.Random(1), 30.0) == 30.0  # Retry-After wins when longer


def test_retry_after_parsing() -> None:
    assert _parse_retry_after("3") == 3.0
    assert _parse_retry_after("0.25") == 0.25
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_bad_options_and_frames() -> None:
    with pytest.raises(ConfigError, match="base_url must start with http"):
        OpenAIBackend(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="base_url has an invalid port") as info:
        OpenAIBackend(base_url="http://u:hunter22@h:99999/v1", model="m")
    assert "hunter22" not in str(info.value)
    with pytest.raises(ConfigError, match="base_url has no host"):
        OpenAIBackend(base_url="http:///v1", model="m")
    with pytest.raises(ConfigError, match="clock and sleep"):
        OpenAIBackend(base_url="http://x/v1", model="m", sleep=1.0)
    with pytest.raises(ConfigError):
        OpenAIBackend(base_url="http://x/v1", model="m", concurrency=0)
    with pytest.raises(ConfigError):
        get_backend("nope")
    import numpy as np

    with pytest.raises(ConfigError, match="uint8"):
        encode_jpeg_data_url(np.zeros((4, 4, 3), dtype=np.float32))


# -- the cache fingerprint names the server and the served model's revision ------------------


def test_fingerprint_names_the_public_base_url() -> None:
    fp = {}
    for url in ("HTTP://Example.COM:80/v1/", "http://example.com/v1", "http://u:pw-123456@example.com/v1//",
                "http://example.com/v1?token=abc123"):
        be = OpenAIBackend(base_url=url, model="m")
        be._listing = {"listed": False, "reason": "not asked", "revision": None}  # no server in this test
        fp[url] = be.fingerprint()
        assert be.base_url == "http://example.com/v1"
    assert len({str(v) for v in fp.values()}) == 1
    assert all("pw-123456" not in str(v) and "abc123" not in str(v) for v in fp.values())
    https = OpenAIBackend(base_url="https://Example.com:443/v1?api-version=2024-06-01", model="m")
    assert https.base_url == "https://example.com/v1?api-version=2024-06-01"  # not a secret: kept
    assert OpenAIBackend(base_url="http://example.com:8000/v1", model="m").base_url == "http://example.com:8000/v1"
    assert OpenAIBackend(base_url="https://example.com:80/v1", model="m").base_url == "https://example.com:80/v1"


def test_fingerprint_carries_the_served_model_revision() -> None:
    with FakeChatServer(model_name="qwen2.5-vl") as s:
        a = OpenAIBackend(base_url=s.base_url, model="qwen2.5-vl")
        b = OpenAIBackend(base_url=s.base_url, model="qwen2.5-vl")
        fa, fb = a.fingerprint(), b.fingerprint()
        # vLLM stamps "created" and the permission ids per listing: they must not split the cache
        assert fa == fb
        assert fa["base_url"] == s.base_url
        assert fa["model_revision"] == {"id": "qwen2.5-vl", "max_model_len": 4096, "owned_by": "vllm",
                                        "parent": None, "root": "/weights/qwen2.5-vl"}
        listing = a.config()["model_listing"]
        assert listing["listed"] and "created" in listing["entry"] and "permission" not in listing["entry"]
        a.fingerprint()
        assert s.listings == 2  # once per backend, not per call
        # the same name served from other weights (a restart with another root) is another model
        s.models = [{"id": "qwen2.5-vl", "object": "model", "created": 1700000000, "owned_by": "vllm",
                     "root": "/weights/other", "max_model_len": 4096}]
        fc = OpenAIBackend(base_url=s.base_url, model="qwen2.5-vl").fingerprint()
        assert fc["model_revision"]["root"] == "/weights/other"
        assert fc["model_revision"]["created"] == 1700000000  # a real creation time is kept
        assert fc != fa


def test_fingerprint_without_a_listing() -> None:
    with FakeChatServer(models_status=404) as s:
        be = OpenAIBackend(base_url=s.base_url, model="m")
        assert be.fingerprint()["model_revision"] is None
        assert be.config()["model_listing"]["reason"].endswith("HTTP 404 Not Found: {\"error\": \"no listing here\"}")
    with FakeChatServer(model_name="other") as s:
        listing = OpenAIBackend(base_url=s.base_url, model="m").model_listing()
        assert listing == {"listed": False, "reason": "model 'm' is not in the listing", "revision": None}
    with FakeChatServer(models=[{"id": "models/gemini-x", "object": "model", "owned_by": "google"}]) as s:
        rev = OpenAIBackend(base_url=s.base_url, model="gemini-x").fingerprint()["model_revision"]
        assert rev == {"id": "models/gemini-x", "owned_by": "google"}
