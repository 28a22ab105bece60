"""The openai backend against a local chat-completions server (no network)."""

from __future__ import annotations

import base64
import io
import logging
import time

import pytest
from PIL import Image

from backend_fakes import FakeChatServer, rgb_frames
from msce.backends import GenerationParams, get_backend
from msce.backends.openai_api import OpenAIBackend, _parse_retry_after, encode_jpeg_data_url
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


def backend(server, **kw) -> OpenAIBackend:
    opts = dict(base_url=server.base_url, model="tiny-vlm", api_key_env=ENV, timeout=5.0,
                max_retries=3, backoff_base=0.01, backoff_max=0.05, concurrency=4)
    opts.update(kw)
    return get_backend("openai", **opts)


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
    t0 = time.perf_counter()
    out = be.generate(reqs, P)
    elapsed = time.perf_counter() - t0
    assert out == [f"echo hold:{i} images=0" for i in range(7)]
    assert 1 < server.max_inflight <= 3
    assert elapsed < 7 * server.hold_s  # ran concurrently


def test_429_honours_retry_after(server) -> None:
    be = backend(server)
    t0 = time.perf_counter()
    assert be.generate([["429once:a"]], P) == ["echo 429once:a images=0"]
    assert time.perf_counter() - t0 >= 0.3
    assert server.attempts["429once:a"] == 2


def test_500_retried_with_backoff(server) -> None:
    be = backend(server)
    assert be.generate([["500twice:a"]], P) == ["echo 500twice:a images=0"]
    assert server.attempts["500twice:a"] == 3


def test_timeout_retried(server) -> None:
    be = backend(server, timeout=0.3)
    assert be.generate([["slowonce:a"]], P) == ["echo slowonce:a images=0"]
    assert server.attempts["slowonce:a"] == 2


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
    with pytest.raises(ConfigError):
        OpenAIBackend(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError):
        OpenAIBackend(base_url="http://x/v1", model="m", concurrency=0)
    with pytest.raises(ConfigError):
        get_backend("nope")
    import numpy as np

    with pytest.raises(ConfigError, match="uint8"):
        encode_jpeg_data_url(np.zeros((4, 4, 3), dtype=np.float32))
