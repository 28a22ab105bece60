"""A FrameBatch stand-in for pure-Python tests (no native core, no video files).

Backends and the cache only use ``data``, ``indices``, ``timestamps``, ``grid_thw``
and ``num_tokens`` of a batch; this carries exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class FakeFrames:
    data: torch.Tensor
    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    grid_thw: torch.Tensor | None = None
    num_tokens: int = 0
    roles: tuple[str, ...] = field(default=())


def rgb_frames(n: int, h: int = 24, w: int = 32, seed: int = 0, fps: float = 10.0,
               start: int = 0) -> FakeFrames:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    idx = tuple(range(start, start + n))
    return FakeFrames(torch.from_numpy(arr), idx, tuple(i / fps for i in idx))


# ---------------------------------------------------------------------------------
# A local chat-completions server for the openai backend tests.
# ---------------------------------------------------------------------------------
import hashlib  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


class _ClosingServer(ThreadingHTTPServer):
    """Closes each accepted connection when its thread ends, whatever happened in it: a
    request socket left to the garbage collector raises ResourceWarning in whichever test
    happens to be running then (warnings are errors in this suite)."""

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            request.close()


class FakeChatServer:
    """``/v1/chat/completions`` and ``/v1/models`` on 127.0.0.1 in a thread.

    The behaviour of each request is chosen by its first text part, ``"<scenario>:..."``:

    * ``ok``: answer ``"echo <first text> images=<n>"``;
    * ``429once``: 429 with ``Retry-After: <retry_after>`` on the first attempt, then ok;
    * ``500twice``: 500 on the first two attempts, then ok;
    * ``slowonce``: sleep ``slow_s`` before answering the first attempt, then ok;
    * ``malformed``: always a body that is not JSON;
    * ``malformedonce``: not JSON on the first attempt, then ok;
    * ``nochoices``: always valid JSON without ``choices``;
    * ``unauthorized``: 401 (not retryable);
    * ``echoauth``: always 500 whose body repeats the request's Authorization header;
    * ``hold``: sleep ``hold_s`` then ok (to observe concurrency);
    * ``always429``: always 429 with ``Retry-After: <retry_after>``;
    * ``hang``: never answers (until the server shuts down): every attempt times out;
    * ``hangonce``: never answers the first attempt, then ok.

    Any other first text is ``ok``; with ``answer`` set, ``ok`` answers that text instead
    of the echo (a stand-in for a model that always says one thing); with ``answers`` set,
    ``ok`` answers ``answers[k]`` where k is chosen by a digest of the request's images (a
    stand-in for a model whose answer depends on what it sees). The first
    ``fail_first`` chat requests, whatever their text, get a 500. ``delay`` seconds are
    slept before answering every chat request (a model that takes its time; requests are
    served concurrently, one thread each).

    ``GET /v1/models`` lists ``models`` (default: one vLLM-like entry for
    ``model_name`` whose ``created`` is the time of the listing and whose
    ``permission`` carries a per-listing id, as vLLM serves them); ``models_status``
    other than 200 answers that status instead.

    Every request is recorded (headers, path and JSON body; None for GET) in
    ``requests``; attempts per first-text key in ``attempts``; the most requests in
    flight at once in ``max_inflight``; model listings served in ``listings``.
    """

    def __init__(self, retry_after: str = "0.3", slow_s: float = 1.0, hold_s: float = 0.2,
                 expect_key: str | None = None, answer: str | None = None, model_name: str = "tiny-vlm",
                 models: list[dict] | None = None, models_status: int = 200, fail_first: int = 0,
                 delay: float = 0.0, answers: list[str] | None = None):
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.hold_s = hold_s
        self.expect_key = expect_key
        self.answer = answer
        self.model_name = model_name
        self.models = models
        self.models_status = models_status
        self.fail_first = fail_first
        self.delay = float(delay)
        self.answers = answers
        self.chats = 0
        self.listings = 0
        self._release = threading.Event()
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802
                server._list_models(self)

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(n))
                with server._lock:
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    server._handle(self, payload)
                finally:
                    with server._lock:
                        server.inflight -= 1

        self.httpd = _ClosingServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # client went away (timeouts)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def _list_models(self, h) -> None:
        auth = h.headers.get("Authorization")
        with self._lock:
            self.requests.append({"headers": dict(h.headers), "body": None, "path": h.path})
            self.listings += 1
            n = self.listings
        if h.path.split("?", 1)[0] != "/v1/models":
            return h._send(404, b'{"error": "not found"}')
        if self.expect_key is not None and auth != f"Bearer {self.expect_key}":
            return h._send(401, b'{"error": "bad key"}')
        if self.models_status != 200:
            return h._send(self.models_status, b'{"error": "no listing here"}')
        models = self.models
        if models is None:
            models = [{"id": self.model_name, "object": "model", "created": int(time.time()),
                       "owned_by": "vllm", "root": f"/weights/{self.model_name}", "parent": None,
                       "max_model_len": 4096,
                       "permission": [{"id": f"modelperm-{n}", "object": "model_permission",
                                       "created": int(time.time())}]}]
        return h._send(200, json.dumps({"object": "list", "data": models}).encode())

    def _handle(self, h, payload: dict) -> None:
        auth = h.headers.get("Authorization")
        content = payload["messages"][-1]["content"]
        texts = [c["text"] for c in content if c.get("type") == "text"]
        images = [c for c in content if c.get("type") == "image_url"]
        first = texts[0] if texts else ""
        with self._lock:
            self.requests.append({"headers": dict(h.headers), "body": payload, "path": h.path})
            attempt = self.attempts.get(first, 0)
            self.attempts[first] = attempt + 1
            self.chats += 1
            failing = self.chats <= self.fail_first
        scenario = first.split(":", 1)[0]
        if self.delay:
            time.sleep(self.delay)
        if h.path.split("?", 1)[0] != "/v1/chat/completions":
            return h._send(404, b'{"error": "not found"}')
        if self.expect_key is not None and auth != f"Bearer {self.expect_key}":
            return h._send(401, b'{"error": "bad key"}')
        if failing:
            return h._send(500, b'{"error": "warming up"}')
        if scenario == "unauthorized":
            return h._send(401, b'{"error": "unauthorized"}')
        if scenario == "always429" or (scenario == "429once" and attempt == 0):
            return h._send(429, b'{"error": "slow down"}', {"Retry-After": self.retry_after})
        if scenario == "500twice" and attempt < 2:
            return h._send(500, b'{"error": "internal"}')
        if scenario == "slowonce" and attempt == 0:
            time.sleep(self.slow_s)
        if scenario == "malformed" or (scenario == "malformedonce" and attempt == 0):
            return h._send(200, b'{"choices": [ this is not json')
        if scenario == "nochoices":
            return h._send(200, b'{"object": "chat.completion"}')
        if scenario == "echoauth":
            return h._send(500, json.dumps({"error": f"bad header {auth}"}).encode())
        if scenario == "hold":
            time.sleep(self.hold_s)
        if scenario == "hang" or (scenario == "hangonce" and attempt == 0):
            self._release.wait(60.0)  # the client times out long before
            return None
        answer = self.answer if self.answer is not None else f"echo {first} images={len(images)}"
        if self.answers:
            seen = hashlib.sha256("".join(c["image_url"]["url"] for c in images).encode()).digest()
            answer = self.answers[int.from_bytes(seen[:4], "big") % len(self.answers)]
        body = {"id": "x", "object": "chat.completion", "model": payload.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop"}]}
        return h._send(200, json.dumps(body).encode())
