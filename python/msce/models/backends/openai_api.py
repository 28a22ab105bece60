"""OpenAI-compatible chat-completions backend (vLLM, SGLang, Gemini's OpenAI endpoint).

Each request becomes one ``POST {base_url}/chat/completions`` with a single user
message whose content interleaves text parts and frames in request order. The
``server`` preset (``generic``, ``vllm``, ``sglang``, ``gemini``) chooses how frames are
sent: by default every frame is a ``data:`` URL ``image_url`` part (JPEG for generic and
Gemini, lossless PNG for vLLM and SGLang), a video part being its frames in order; with
vLLM, ``frames="video"`` sends a video part as one ``video_url`` part instead. The
preset also chooses the extra request fields that keep the server's own resize from
changing msce's pixels (:mod:`msce.models.backends._servers`; docs/api-models.md).
Frames must be uint8 RGB: :meth:`OpenAIBackend.target` asks for
``msce.Frames(layout="NHWC", dtype="uint8")``.

Requests of one :meth:`~OpenAIBackend.generate` call run concurrently (at most
``concurrency`` at a time). A failed request is retried up to ``max_retries`` times on
HTTP 408/409/429/5xx, connection errors, timeouts and malformed responses, waiting
``backoff_base * 2**attempt`` seconds (capped at ``backoff_max``) scaled by a seeded
jitter in [0.5, 1.0], and never less than the server's ``Retry-After``. Other HTTP
errors (400, 401, 404, ...) fail at once with :class:`msce.errors.BackendError`; a request
whose retries run out raises :class:`RetriesExhaustedError` (a ``BackendError``) naming
the endpoint, the attempts made and the last status. Every attempt is recorded in
:attr:`OpenAIBackend.attempt_log`; the clock and the sleep of the backoff are
constructor arguments, so tests check attempts and delays without waiting.

The API key is read from the environment variable named by ``api_key_env`` (default:
``GEMINI_API_KEY`` for the gemini preset, else ``OPENAI_API_KEY``) at request time.
It is never stored in the run config, logged, or included in exception text (server
error bodies are shown with the key redacted). When the variable is unset or
empty, no ``Authorization`` header is sent (local vLLM servers need none). Credentials
in the base URL (userinfo, secret query parameters) are treated the same way: sent,
never recorded, redacted from error text.

Only the standard library is used (``urllib``, ``concurrent.futures``) plus Pillow.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence, TypeVar

from msce.models.backends._servers import (check_frame_sizes, content_parts, data_url, request_extras,
                                           server_options)
from msce.models.backends._url import parse_base_url
from msce.models.backends.base import GenerationParams, Request, check_request
from msce.errors import BackendError, ConfigError
from msce.targets import Frames

__all__ = ["OpenAIBackend", "Attempt", "RetriesExhaustedError", "encode_jpeg_data_url"]

_T = TypeVar("_T")

log = logging.getLogger("msce.models.backends.openai")

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_BODY_SNIPPET = 300
_ATTEMPT_LOG = 10_000  # attempts kept in OpenAIBackend.attempt_log (the newest)
# Fields of a /models entry that never identify the model: "permission" holds per-listing
# random ids and times (vLLM, SGLang, lmdeploy); "object" is always "model".
_NOT_IDENTIFYING = frozenset({"object", "permission"})
# A "created" this close to the listing's own time (seconds) is the time of the listing
# (vLLM and SGLang stamp every listing with "now"), not the model's creation.
_LISTING_TIME_SLACK = 120.0


def encode_jpeg_data_url(frame: Any, quality: int = 90) -> str:
    """``data:image/jpeg;base64,...`` for one (H, W, 3) uint8 RGB frame."""
    return data_url(frame, "jpeg", quality)


class _Failure(Exception):
    """One failed HTTP attempt: ``status`` is the HTTP status, or ``"timeout"``,
    ``"connection"`` or ``"malformed"`` when there is none (or the body is unusable)."""

    def __init__(self, message: str, status: int | str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class RetriesExhaustedError(BackendError):
    """Every attempt of one request failed with a retryable error.

    ``url`` is the endpoint without credentials, ``attempts`` how many were made,
    ``last_status`` the last HTTP status (int) or ``"timeout"`` / ``"connection"`` /
    ``"malformed"``, ``last_error`` the last failure's (redacted) text.
    """

    def __init__(self, url: str, attempts: int, last_status: int | str, last_error: str, elapsed: float):
        self.url = url
        self.attempts = attempts
        self.last_status = last_status
        self.last_error = last_error
        status = f"HTTP {last_status}" if isinstance(last_status, int) else last_status
        super().__init__(f"{url}: request failed after {attempts} attempts in {elapsed:.2f}s "
                         f"(last status: {status}; last error: {last_error})")


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as recorded in :attr:`OpenAIBackend.attempt_log`.

    ``request`` is the request's position in its ``generate`` call (-1 for the model
    listing), ``number`` counts from 1, ``started`` is the backend clock's reading when
    it was sent, ``status`` the HTTP status or ``"timeout"`` / ``"connection"`` /
    ``"malformed"``, and ``delay`` the backoff slept before the next attempt (None when
    no retry followed).
    """

    request: int
    number: int
    started: float
    status: int | str
    delay: float | None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _http_date(value)
    if when is None:
        return None
    return max(0.0, when - datetime.now(timezone.utc).timestamp())


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        texts = [c.get("text") for c in content if isinstance(c, dict) and isinstance(c.get("text"), str)]
        if texts:
            return "".join(texts)
    return None


class OpenAIBackend:
    """Backend for any OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: server root including the API prefix, e.g. ``http://localhost:8000/v1``.
            Userinfo (``http://user:pw@host/v1``) is sent as HTTP Basic authentication
            (instead of the API key) and query parameters with secret-looking names are
            sent with every request; neither is ever recorded (see
            :mod:`msce.models.backends._url`): :attr:`base_url` is the public, normalised form.
        model: the served model name (sent as ``model``; also the cache ``model_id``).
        api_key_env: environment variable holding the API key (None: ``GEMINI_API_KEY``
            for ``server="gemini"``, else ``OPENAI_API_KEY``).
        concurrency: requests in flight at once.
        timeout: socket timeout in seconds (connect and each read).
        max_retries: retries after the first attempt.
        backoff_base, backoff_max: exponential backoff in seconds.
        seed: seeds the backoff jitter.
        jpeg_quality: JPEG quality of the frames when ``image_format`` is ``"jpeg"``
            (part of the cache fingerprint).
        max_tokens_field: request field carrying ``max_new_tokens`` (``"max_tokens"``, or
            ``"max_completion_tokens"`` for servers that want it).
        system_prompt: optional system message.
        frame_size: ``(height, width)`` the frames are resized to by msce before JPEG
            encoding (None keeps the source size).
        extra_body: extra JSON fields merged into every request, over msce's own (one
            level deep: a dict value such as ``mm_processor_kwargs`` is merged key by key,
            the user's keys winning); recorded in the fingerprint.
        server: the preset, ``"generic"``, ``"vllm"``, ``"sglang"`` or ``"gemini"``:
            the defaults of the options below and the request fields the server needs
            (Gemini gets no ``seed``, which its endpoint rejects).
        frames: ``"images"`` (every frame an ``image_url`` part) or, with vLLM only,
            ``"video"`` (a batch of several frames as one ``video_url`` part). None: images.
        image_format: ``"jpeg"`` or ``"png"`` (lossless: the server decodes exactly
            msce's pixels). None: png for vllm and sglang, jpeg otherwise.
        server_resize: vLLM only: ``"off"`` (default for vllm) sends
            ``mm_processor_kwargs`` ``min_pixels``/``max_pixels`` equal to the request's
            frame areas, so the server's Qwen-VL ``smart_resize`` keeps the frames;
            ``"server"`` sends none (the server's limits apply).
        resize_factor: with vllm and sglang, frames whose sides are not multiples of it
            raise ConfigError instead of being resized by the server (28: Qwen2/2.5-VL,
            32: Qwen3-VL; 0: no check). None: 28 for vllm and sglang, no check otherwise.
        reasoning_effort: sent as ``reasoning_effort`` (``"none"``, ``"minimal"``,
            ``"low"``, ``"medium"``, ``"high"``; ``"server"``: not sent). None: ``"none"``
            for gemini (thinking off), not sent otherwise.
        clock: monotonic clock (seconds) stamping :attr:`attempt_log` entries and timing
            failures; ``sleep``: how the backoff waits. Tests replace both.

    The cache fingerprint (:meth:`fingerprint`) names the server as well as the model:
    the public base URL and the model's entry in ``GET {base_url}/models`` (every field
    it carries except ``object``, ``permission`` and a ``created`` that is merely the
    listing's own time), fetched once per backend. So two servers that both call their
    model ``qwen2.5-vl``, or one server restarted with other weights under the same name
    (vLLM's ``root`` and ``max_model_len`` change), never share cached answers.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        seed: int = 0,
        jpeg_quality: int = 90,
        max_tokens_field: str = "max_tokens",
        system_prompt: str | None = None,
        frame_size: tuple[int, int] | None = None,
        extra_body: dict | None = None,
        server: str = "generic",
        frames: str | None = None,
        image_format: str | None = None,
        server_resize: str | None = None,
        resize_factor: int | None = None,
        reasoning_effort: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._url = parse_base_url(base_url, "openai backend: base_url")
        if not model:
            raise ConfigError("openai backend: model is required")
        if int(concurrency) < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
        if float(timeout) <= 0:
            raise ConfigError(f"timeout must be > 0, got {timeout!r}")
        if int(max_retries) < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries!r}")
        if not callable(clock) or not callable(sleep):
            raise ConfigError("openai backend: clock and sleep must be callables")
        self.options = server_options(server, frames, image_format, jpeg_quality, server_resize, resize_factor,
                                      reasoning_effort, api_key_env)
        self.base_url = self._url.public
        self.model = model
        self.model_id = model
        self.server = self.options.server
        self.api_key_env = self.options.api_key_env
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.seed = int(seed)
        self.jpeg_quality = int(jpeg_quality)
        self.max_tokens_field = max_tokens_field
        self.system_prompt = system_prompt
        if frame_size is not None:
            if len(frame_size) != 2 or any(int(v) <= 0 for v in frame_size):
                raise ConfigError(f"frame_size must be (height, width) with positive sides, got {frame_size!r}")
            frame_size = (int(frame_size[0]), int(frame_size[1]))
            factor = self.options.resize_factor
            if factor is not None and (frame_size[0] % factor or frame_size[1] % factor):
                raise ConfigError(f"frame_size {list(frame_size)} has a side that is not a multiple of "
                                  f"resize_factor={factor}: the {self.server} server would resize the frames "
                                  f"(choose multiples of {factor}, or resize_factor=0)")
        self.frame_size = frame_size
        if extra_body is not None and not isinstance(extra_body, dict):
            raise ConfigError(f"extra_body must be a JSON object, got {type(extra_body).__name__}")
        self.extra_body = dict(extra_body or {})
        self._clock = clock
        self._sleep = sleep
        self.http_attempts = 0  # every HTTP attempt made (tests and diagnostics)
        self.attempt_log: deque[Attempt] = deque(maxlen=_ATTEMPT_LOG)
        self._count_lock = threading.Lock()
        self._listing_lock = threading.Lock()
        self._listing: dict | None = None

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, server={self.server!r}, "
                f"api_key_env={self.api_key_env!r})")

    # -- the Backend protocol -------------------------------------------------------
    def target(self):
        return Frames(size=self.frame_size, layout="NHWC", dtype="uint8")

    def fingerprint(self) -> dict:
        """Settings that change answers, for cache keys: the server (public base URL and
        the model's identifying ``/models`` fields) and the request encoding."""
        return {
            "backend": "openai",
            "base_url": self.base_url,
            "model_revision": self.model_listing().get("revision"),
            "jpeg_quality": self.jpeg_quality,
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "system_prompt": self.system_prompt,
            "extra_body": self.extra_body,
            **self.options.fingerprint(),
        }

    def config(self) -> dict:
        """Run-record config (no secrets: only the variable's NAME is recorded)."""
        return {
            "backend": "openai",
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "model_listing": self.model_listing(),
            **self.fingerprint(),
        }

    def model_listing(self) -> dict:
        """What ``GET {base_url}/models`` says about :attr:`model`, fetched once.

        ``{"listed": True, "entry": {...}, "revision": {...}}``: ``entry`` is the
        model's entry as served (less ``permission``), ``revision`` its identifying
        fields (what enters the fingerprint). ``{"listed": False, "reason": ...,
        "revision": None}`` when the server has no listing, refuses it (a non-retryable
        HTTP error), answers something unreadable, or does not list the model. Retryable
        failures are retried like chat requests; when they persist,
        :class:`RetriesExhaustedError` is raised (the server is unusable).
        """
        with self._listing_lock:
            if self._listing is None:
                self._listing = self._fetch_listing()
            return dict(self._listing)

    def preflight(self, timeout: float | None = None) -> dict:
        """Check, before a run, that the server answers and serves :attr:`model`.

        One ``GET {base_url}/models`` with ``timeout`` seconds to connect and to read
        (default :attr:`timeout`), no retries: a refused connection fails at once, a server
        that accepts but never answers fails after ``timeout``. Raises
        :class:`msce.errors.BackendError` saying which (connection, timeout, HTTP status)
        or, when the listing does not name the model, which models the server serves. A
        server without a listing (HTTP 404) passes with a warning. The listing is kept for
        :meth:`fingerprint` (no second request); returns :meth:`model_listing`.
        """
        wait = self.timeout if timeout is None else float(timeout)
        if wait <= 0:
            raise ConfigError(f"preflight timeout must be > 0, got {timeout!r}")
        url = self._url.public_endpoint("models")
        key = self._api_key()
        started = self._clock()
        try:
            payload, headers = self._send("GET", "models", None, key, timeout=wait)
        except _Failure as exc:
            self._record(Attempt(-1, 1, started, exc.status, None))
            if exc.status == 404:
                log.warning("%s: no model listing (%s); the cache fingerprint names the server only", url, exc)
                with self._listing_lock:
                    self._listing = {"listed": False, "reason": f"{url}: {exc}", "revision": None}
                return self.model_listing()
            if exc.status == "timeout":
                raise BackendError(f"{url}: no answer within {wait:g}s (the server accepted the connection but "
                                   f"did not reply)") from None
            if exc.status == "connection":
                raise BackendError(f"{url}: cannot connect ({exc}); is the server running on this host and "
                                   f"port?") from None
            raise BackendError(f"{url}: {exc}") from None
        self._record(Attempt(-1, 1, started, 200, None))
        listing = self._listing_from(payload, headers)
        if not listing["listed"]:
            served = listing.get("served")
            if served is not None:
                raise BackendError(f"{url}: the server does not serve model {self.model!r}; it serves: "
                                   f"{', '.join(map(str, served)) or 'nothing'}")
            log.warning("%s: %s; the cache fingerprint names the server only", url, listing["reason"])
        with self._listing_lock:
            self._listing = {k: v for k, v in listing.items() if k != "served"}
        return self.model_listing()

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[str]:
        for r in requests:
            check_request(r)
        bodies = [self._body(r, params) for r in requests]
        if len(bodies) == 1 or self.concurrency == 1:
            return [self._chat(b, i) for i, b in enumerate(bodies)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies)),
                                thread_name_prefix="msce-openai") as pool:
            futures = [pool.submit(self._chat, b, i) for i, b in enumerate(bodies)]
            return [f.result() for f in futures]

    # -- internals ------------------------------------------------------------------
    def _body(self, request: Request, params: GenerationParams) -> bytes:
        check_frame_sizes(request, self.options)
        content = [c for part in request for c in content_parts(part, self.options)]
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.max_tokens_field: params.max_new_tokens,
            "temperature": params.temperature,
        }
        if self.options.send_seed:
            body["seed"] = params.seed
        if not params.greedy:
            body["top_p"] = params.top_p
        body.update(request_extras(request, self.options))
        for key, value in self.extra_body.items():
            mine = body.get(key)
            body[key] = {**mine, **value} if isinstance(mine, dict) and isinstance(value, dict) else value
        return json.dumps(body).encode("utf-8")

    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return key or None

    def _redact(self, text: str, key: str | None) -> str:
        for secret in ([key] if key else []) + self._url.secrets():
            text = text.replace(secret, "***")
        return text

    def _backoff(self, attempt: int, rng: random.Random, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt)) * (0.5 + 0.5 * rng.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _record(self, attempt: Attempt) -> None:
        with self._count_lock:
            self.attempt_log.append(attempt)

    def _with_retries(self, path: str, index: int, send: Callable[[str | None], _T]) -> _T:
        """``send(api_key)`` until it succeeds, a non-retryable failure, or the retries
        run out. The jitter is seeded by (seed, index), so delays are reproducible."""
        rng = random.Random(f"{self.seed}:{index}")
        first = self._clock()
        url = self._url.public_endpoint(path)
        for attempt in range(self.max_retries + 1):
            key = self._api_key()
            started = self._clock()
            try:
                result = send(key)
            except _Failure as exc:
                last = exc
                retry = exc.retryable and attempt < self.max_retries
                delay = self._backoff(attempt, rng, exc.retry_after) if retry else None
                self._record(Attempt(index, attempt + 1, started, exc.status, delay))
                if not exc.retryable:
                    raise BackendError(f"{url}: {exc}") from None
                if delay is None:
                    break
                log.warning("%s: request %d attempt %d failed (%s); retrying in %.2fs", url, index, attempt + 1,
                            exc, delay)
                self._sleep(delay)
            else:
                self._record(Attempt(index, attempt + 1, started, 200, None))
                return result
        raise RetriesExhaustedError(url, self.max_retries + 1, last.status, str(last), self._clock() - first)

    def _chat(self, body: bytes, index: int) -> str:
        def send(key: str | None) -> str:
            payload, _ = self._send("POST", "chat/completions", body, key)
            return self._parse(payload, key)

        return self._with_retries("chat/completions", index, send)

    def _send(self, method: str, path: str, body: bytes | None, key: str | None,
              timeout: float | None = None) -> tuple[bytes, Any]:
        """One HTTP exchange: (payload, response headers), or :class:`_Failure`; ``timeout``
        overrides :attr:`timeout` (connect and each read)."""
        timeout = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        basic = self._url.basic_auth()
        if basic is not None:  # credentials in the URL name this server's login: they win
            headers["Authorization"] = basic
        elif key:
            headers["Authorization"] = "Bearer " + key
        req = urllib.request.Request(self._url.endpoint(path), data=body, headers=headers, method=method)
        with self._count_lock:
            self.http_attempts += 1
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            try:
                snippet = exc.read(_BODY_SNIPPET).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - the body is diagnostics only
                snippet = ""
            finally:
                exc.close()
            message = self._redact(f"HTTP {exc.code} {exc.reason}: {snippet.strip()}", key)
            raise _Failure(message, exc.code, exc.code in _RETRY_STATUS,
                           _parse_retry_after(exc.headers.get("Retry-After"))) from None
        except (TimeoutError, socket.timeout) as exc:
            raise _Failure(f"timed out after {timeout:g}s ({type(exc).__name__})", "timeout", True) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Failure(f"timed out after {timeout:g}s", "timeout", True) from None
            raise _Failure(self._redact(f"connection error: {reason}", key), "connection", True) from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise _Failure(self._redact(f"connection error: {type(exc).__name__}: {exc}", key), "connection",
                           True) from None

    def _parse(self, payload: bytes, key: str | None) -> str:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            snippet = self._redact(payload[:_BODY_SNIPPET].decode("utf-8", "replace"), key)
            raise _Failure(f"malformed JSON response ({exc.msg if hasattr(exc, 'msg') else exc}): {snippet!r}",
                           "malformed", True) from None
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            snippet = self._redact(json.dumps(data)[:_BODY_SNIPPET], key)
            raise _Failure(f"response has no choices[0].message: {snippet}", "malformed", True) from None
        text = _content_text(message.get("content") if isinstance(message, dict) else None)
        if text is None:
            raise _Failure("response message has no text content", "malformed", True)
        return text

    def _fetch_listing(self) -> dict:
        try:
            payload, headers = self._with_retries("models", -1, lambda key: self._send("GET", "models", None, key))
        except RetriesExhaustedError:
            raise
        except BackendError as exc:  # e.g. HTTP 404: a server without a model listing
            log.warning("%s: no model listing (%s); the cache fingerprint names the server only", self.base_url, exc)
            return {"listed": False, "reason": str(exc), "revision": None}
        listing = self._listing_from(payload, headers)
        if "served" in listing:
            log.warning("%s: the model listing does not name %r", self.base_url, self.model)
        return {k: v for k, v in listing.items() if k != "served"}

    def _listing_from(self, payload: bytes, headers: Any) -> dict:
        """:meth:`model_listing`'s answer from a ``/models`` body; when the listing is
        readable but lacks the model, ``served`` holds the ids it lists."""
        try:
            data = json.loads(payload.decode("utf-8"))
            entries = data["data"]
            if not isinstance(entries, list):
                raise TypeError("data is not a list")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            return {"listed": False, "reason": f"unreadable model listing ({type(exc).__name__})", "revision": None}
        wanted = (self.model, f"models/{self.model}")  # Gemini lists "models/<name>"
        entry = next((e for e in entries if isinstance(e, dict) and e.get("id") in wanted), None)
        if entry is None:
            served = [e.get("id") for e in entries if isinstance(e, dict)]
            return {"listed": False, "reason": f"model {self.model!r} is not in the listing", "revision": None,
                    "served": served}
        entry = {k: v for k, v in entry.items() if k != "permission"}
        revision = {k: v for k, v in sorted(entry.items()) if k not in _NOT_IDENTIFYING}
        created = revision.get("created")
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            listed_at = _http_date(headers.get("Date")) if headers is not None else None
            if listed_at is None:
                listed_at = time.time()
            if abs(float(created) - listed_at) <= _LISTING_TIME_SLACK:
                del revision["created"]
        return {"listed": True, "entry": entry, "revision": revision}


def _http_date(value: str | None) -> float | None:
    """POSIX time of an HTTP ``Date`` header, or None."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
