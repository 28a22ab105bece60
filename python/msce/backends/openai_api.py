"""OpenAI-compatible chat-completions backend (vLLM, SGLang, Gemini's OpenAI endpoint).

Each request becomes one ``POST {base_url}/chat/completions`` with a single user
message whose content interleaves text parts and frames in request order; every
frame is a JPEG ``data:`` URL (a video part is its frames in order, one image each:
OpenAI-compatible servers take pre-sampled frames as images). Frames must be uint8
RGB: :meth:`OpenAIBackend.target` asks for ``msce.Frames(layout="NHWC", dtype="uint8")``.

Requests of one :meth:`~OpenAIBackend.generate` call run concurrently (at most
``concurrency`` at a time). A failed request is retried up to ``max_retries`` times on
HTTP 408/409/429/5xx, connection errors, timeouts and malformed responses, waiting
``backoff_base * 2**attempt`` seconds (capped at ``backoff_max``) scaled by a seeded
jitter in [0.5, 1.0], and never less than the server's ``Retry-After``. Other HTTP
errors (400, 401, 404, ...) fail at once. Failures raise :class:`msce.errors.BackendError`.

The API key is read from the environment variable named by ``api_key_env`` at request
time. It is never stored in the run config, logged, or included in exception text
(server error bodies are shown with the key redacted). When the variable is unset or
empty, no ``Authorization`` header is sent (local vLLM servers need none).

Only the standard library is used (``urllib``, ``concurrent.futures``) plus Pillow.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Sequence

from msce.backends.base import GenerationParams, Request, check_request, is_frames
from msce.errors import BackendError, ConfigError

__all__ = ["OpenAIBackend", "encode_jpeg_data_url"]

log = logging.getLogger("msce.backends.openai")

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_BODY_SNIPPET = 300


def encode_jpeg_data_url(frame: Any, quality: int = 90) -> str:
    """``data:image/jpeg;base64,...`` for one (H, W, 3) uint8 RGB frame."""
    import numpy as np
    from PIL import Image

    if hasattr(frame, "detach"):
        frame = frame.detach().to("cpu").numpy()
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigError(
            f"the openai backend needs uint8 RGB frames (H, W, 3); got dtype {arr.dtype} shape {arr.shape}. "
            "Load frames with msce.Frames(layout='NHWC', dtype='uint8')."
        )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(buf, format="JPEG", quality=int(quality))
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


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
        model: the served model name (sent as ``model``; also the cache ``model_id``).
        api_key_env: environment variable holding the API key.
        concurrency: requests in flight at once.
        timeout: socket timeout in seconds (connect and each read).
        max_retries: retries after the first attempt.
        backoff_base, backoff_max: exponential backoff in seconds.
        seed: seeds the backoff jitter.
        jpeg_quality: JPEG quality of the frames (part of the cache fingerprint).
        max_tokens_field: request field carrying ``max_new_tokens`` (``"max_tokens"``, or
            ``"max_completion_tokens"`` for servers that want it).
        system_prompt: optional system message.
        frame_size: ``(height, width)`` the frames are resized to by msce before JPEG
            encoding (None keeps the source size).
        extra_body: extra JSON fields merged into every request (e.g. vLLM's
            ``mm_processor_kwargs``); recorded in the fingerprint.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
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
    ):
        if not base_url or not isinstance(base_url, str):
            raise ConfigError("openai backend: base_url is required (e.g. http://localhost:8000/v1)")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"openai backend: base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ConfigError("openai backend: model is required")
        if int(concurrency) < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
        if float(timeout) <= 0:
            raise ConfigError(f"timeout must be > 0, got {timeout!r}")
        if int(max_retries) < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ConfigError(f"jpeg_quality must be in 1..100, got {jpeg_quality!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = model
        self.api_key_env = api_key_env
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
        self.frame_size = frame_size
        self.extra_body = dict(extra_body or {})
        self.http_attempts = 0  # every HTTP attempt made (tests and diagnostics)
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    # -- the Backend protocol -------------------------------------------------------
    def target(self):
        import msce

        return msce.Frames(size=self.frame_size, layout="NHWC", dtype="uint8")

    def fingerprint(self) -> dict:
        return {
            "backend": "openai",
            "jpeg_quality": self.jpeg_quality,
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "system_prompt": self.system_prompt,
            "extra_body": self.extra_body,
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
            **self.fingerprint(),
        }

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[str]:
        for r in requests:
            check_request(r)
        bodies = [self._body(r, params) for r in requests]
        if len(bodies) == 1 or self.concurrency == 1:
            return [self._post_with_retries(b, i) for i, b in enumerate(bodies)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies)),
                                thread_name_prefix="msce-openai") as pool:
            futures = [pool.submit(self._post_with_retries, b, i) for i, b in enumerate(bodies)]
            return [f.result() for f in futures]

    # -- internals ------------------------------------------------------------------
    def _body(self, request: Request, params: GenerationParams) -> bytes:
        content: list[dict] = []
        for part in request:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            elif is_frames(part):
                for frame in part.data:
                    content.append({"type": "image_url",
                                    "image_url": {"url": encode_jpeg_data_url(frame, self.jpeg_quality)}})
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.max_tokens_field: params.max_new_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
        }
        if not params.greedy:
            body["top_p"] = params.top_p
        body.update(self.extra_body)
        return json.dumps(body).encode("utf-8")

    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return key or None

    def _redact(self, text: str, key: str | None) -> str:
        if key:
            text = text.replace(key, "***")
        return text

    def _backoff(self, attempt: int, rng: random.Random, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt)) * (0.5 + 0.5 * rng.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _post_with_retries(self, body: bytes, index: int) -> str:
        rng = random.Random(f"{self.seed}:{index}")
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            key = self._api_key()
            try:
                return self._post_once(body, key)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                delay = self._backoff(attempt, rng, exc.retry_after)
                log.warning("request %d attempt %d failed (%s); retrying in %.2fs", index, attempt + 1, last, delay)
                time.sleep(delay)
        raise BackendError(f"{self.base_url}/chat/completions: request failed after "
                           f"{self.max_retries + 1} attempts: {last}")

    def _post_once(self, body: bytes, key: str | None) -> str:
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with self._count_lock:
            self.http_attempts += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                snippet = exc.read(_BODY_SNIPPET).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - the body is diagnostics only
                snippet = ""
            finally:
                exc.close()
            message = self._redact(f"HTTP {exc.code} {exc.reason}: {snippet.strip()}", key)
            if exc.code in _RETRY_STATUS:
                raise _Retryable(message, _parse_retry_after(exc.headers.get("Retry-After"))) from None
            raise BackendError(f"{url}: {message}") from None
        except (TimeoutError, socket.timeout) as exc:
            raise _Retryable(f"timed out after {self.timeout:g}s ({type(exc).__name__})") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"timed out after {self.timeout:g}s") from None
            raise _Retryable(self._redact(f"connection error: {reason}", key)) from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise _Retryable(self._redact(f"connection error: {type(exc).__name__}: {exc}", key)) from None
        return self._parse(payload, key)

    def _parse(self, payload: bytes, key: str | None) -> str:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            snippet = self._redact(payload[:_BODY_SNIPPET].decode("utf-8", "replace"), key)
            raise _Retryable(f"malformed JSON response ({exc.msg if hasattr(exc, 'msg') else exc}): {snippet!r}") from None
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            snippet = self._redact(json.dumps(data)[:_BODY_SNIPPET], key)
            raise _Retryable(f"response has no choices[0].message: {snippet}") from None
        text = _content_text(message.get("content") if isinstance(message, dict) else None)
        if text is None:
            raise _Retryable("response message has no text content")
        return text
