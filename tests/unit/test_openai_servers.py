"""The openai backend's server presets (vLLM, SGLang, Gemini, generic) against local fake
servers that read requests the way each server does (no network).

Each fake decodes what it receives as its server does (vLLM: ``image_url`` data URLs and
``data:video/jpeg`` frame sequences, each piece opened with PIL; SGLang: images only;
Gemini: images only, unknown request fields refused with HTTP 400) and applies the Qwen-VL
``smart_resize`` its processor would, written here from the Hugging Face formula: so the
tests see the request JSON, the decoded pixels and the size the model would get.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import torch
from PIL import Image

from _deps import require_module
from backend_fakes import FakeFrames, _ClosingServer, rgb_frames
from msce.cli._options import UsageError, construct
from msce.errors import BackendError, ConfigError
from msce.models.backends import GenerationParams
from msce.models.backends._servers import GEMINI_BASE_URL
from msce.models.backends.openai_api import OpenAIBackend, RetriesExhaustedError

P = GenerationParams(max_new_tokens=8)
GEMINI_KEY = "AIza-test-Gm7SECRETkey"
# Qwen2.5-VL-7B-Instruct's processor limits (preprocessor_config.json and the video
# processor's defaults): what a server applies when msce sends no limits.
IMAGE_LIMITS = (56 * 56, 12845056)
VIDEO_LIMITS = (128 * 28 * 28, 768 * 28 * 28)
SGLANG_LIMITS = (4 * 28 * 28, 16384 * 28 * 28)
# Gemini's OpenAI endpoint: the request fields it knows (anything else is a 400).
GEMINI_FIELDS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
                 "stream", "reasoning_effort", "response_format", "tools", "tool_choice", "extra_body"}
GEMINI_MIME = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}


def qwen_smart_resize(h: int, w: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The Qwen-VL processors' resize rule (transformers 5's smart_resize), for the fakes."""
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def open_image(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64, validate=True))).convert("RGB"))


def split_data_url(url: str) -> tuple[str, str]:
    head, _, payload = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head
    return head[5:-7], payload


class FakeServer:
    """``kind`` = "vllm", "sglang" or "gemini": one fake OpenAI-compatible server.

    ``received`` holds each chat request's body; ``decoded`` per request a list of
    ``(modality, [frames])``; ``processed`` per request the (h, w) each frame would reach
    the model at. ``max_images`` refuses requests with more images (vLLM's
    ``--limit-mm-per-prompt``); ``status`` answers every chat request with that status."""

    def __init__(self, kind: str, max_images: int | None = None, status: int = 200):
        self.kind, self.max_images, self.status = kind, max_images, status
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.decoded: list[list] = []
        self.processed: list[list] = []
        self.lock = threading.Lock()
        prefix = "/v1beta/openai" if kind == "gemini" else "/v1"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, code: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                model = "models/gemini-2.5-flash" if server.kind == "gemini" else "qwen2.5-vl"
                self.reply(200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "x"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.received.append(body)
                    server.headers.append(dict(self.headers))
                if self.path != prefix + "/chat/completions":
                    return self.reply(404, {"error": "not found"})
                code, payload = server.answer(body, self.headers.get("Authorization"))
                self.reply(code, payload)

        self.httpd = _ClosingServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}{prefix}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def answer(self, body: dict, auth: str | None) -> tuple[int, object]:
        if self.status != 200:
            return self.status, {"error": {"message": "engine overloaded", "code": self.status}}
        if self.kind == "gemini":
            if auth != f"Bearer {GEMINI_KEY}":
                return 400, [{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}]
            unknown = sorted(set(body) - GEMINI_FIELDS)
            if unknown:
                text = "\n".join(f'Invalid JSON payload received. Unknown name "{k}": Cannot find field.'
                                 for k in unknown)
                return 400, [{"error": {"code": 400, "message": text, "status": "INVALID_ARGUMENT"}}]
        parts, sizes = [], []
        kwargs = body.get("mm_processor_kwargs") or {}
        for item in body["messages"][-1]["content"]:
            if item["type"] == "image_url":
                mime, payload = split_data_url(item["image_url"]["url"])
                if self.kind == "gemini" and mime not in GEMINI_MIME:
                    return 400, {"error": {"message": f"Unsupported MIME type: {mime}"}}
                parts.append(("image", [open_image(payload)]))
            elif item["type"] == "video_url":
                if self.kind != "vllm":
                    return 400, {"error": {"message": f"unsupported content type {item['type']}"}}
                mime, payload = split_data_url(item["video_url"]["url"])
                assert mime == "video/jpeg"  # vLLM's frame-sequence form; anything else is a video file
                parts.append(("video", [open_image(piece) for piece in payload.split(",")]))
        images = sum(1 for kind, _ in parts if kind == "image")
        if self.max_images is not None and images > self.max_images:
            return 400, {"object": "error", "message": f"At most {self.max_images} image(s) may be provided in "
                                                       f"one prompt.", "type": "BadRequestError", "code": 400}
        for kind, frames in parts:
            if self.kind == "sglang":
                limits = SGLANG_LIMITS
            else:
                limits = VIDEO_LIMITS if kind == "video" else IMAGE_LIMITS
            lo, hi = kwargs.get("min_pixels", limits[0]), kwargs.get("max_pixels", limits[1])
            sizes.append([qwen_smart_resize(f.shape[0], f.shape[1], 28, lo, hi) for f in frames])
        with self.lock:
            self.decoded.append(parts)
            self.processed.append(sizes)
        return 200, {"id": "x", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "neutral"},
                                  "finish_reason": "stop"}]}


def frames_np(batch) -> list[np.ndarray]:
    return [f.numpy() for f in batch.data]


def backend(fake: FakeServer, **kw) -> OpenAIBackend:
    opts = dict(base_url=fake.base_url, model="qwen2.5-vl", timeout=5.0, max_retries=1, backoff_base=0.001,
                backoff_max=0.002)
    opts.update(kw)
    return OpenAIBackend(**opts)


def at_times(batch: FakeFrames, times: tuple[float, ...]) -> FakeFrames:
    return FakeFrames(batch.data, batch.indices, times)


# -- vLLM -----------------------------------------------------------------------------------


def test_vllm_images_are_png_and_reach_the_model_unresized() -> None:
    video = rgb_frames(3, h=56, w=84, seed=1)
    image = rgb_frames(1, h=28, w=56, seed=2)
    with FakeServer("vllm") as s:
        assert backend(s, server="vllm").generate([["Frames:", video, "Keyframe:", image]], P) == ["neutral"]
    (body,) = s.received
    content = body["messages"][0]["content"]
    assert [c["type"] for c in content] == ["text", "image_url", "image_url", "image_url", "text", "image_url"]
    assert all(c["image_url"]["url"].startswith("data:image/png;base64,") for c in content if c["type"] != "text")
    # the server's processor gets the smallest and largest frame area as its limits
    assert body["mm_processor_kwargs"] == {"min_pixels": 28 * 56, "max_pixels": 56 * 84}
    assert body["seed"] == 0 and "media_io_kwargs" not in body and "reasoning_effort" not in body
    (parts,) = s.decoded
    sent = frames_np(video) + frames_np(image)
    got = [frames[0] for _, frames in parts]
    assert len(got) == 4 and all(np.array_equal(a, b) for a, b in zip(got, sent))  # PNG: exact pixels
    assert s.processed == [[[(56, 84)], [(56, 84)], [(56, 84)], [(28, 56)]]]  # smart_resize is the identity


def test_vllm_server_resize_applies_the_servers_limits() -> None:
    image = rgb_frames(1, h=28, w=56, seed=2)  # 1,568 pixels: under Qwen2.5-VL's 3,136 minimum
    with FakeServer("vllm") as s:
        backend(s, server="vllm", server_resize="server").generate([["x", image]], P)
    assert "mm_processor_kwargs" not in s.received[0]
    assert s.processed == [[[qwen_smart_resize(28, 56, 28, *IMAGE_LIMITS)]]] == [[[(56, 84)]]]  # upscaled


def test_vllm_video_url_carries_every_frame_and_its_rate() -> None:
    video = at_times(rgb_frames(4, h=56, w=84, seed=3), (0.0, 1.0, 2.0, 3.0))  # 1 FPS keyframes
    image = rgb_frames(1, h=56, w=84, seed=4)
    with FakeServer("vllm") as s:
        backend(s, server="vllm", frames="video").generate([["Video:", video, "Image:", image]], P)
    (body,) = s.received
    content = body["messages"][0]["content"]
    assert [c["type"] for c in content] == ["text", "video_url", "text", "image_url"]  # one frame stays an image
    url = content[1]["video_url"]["url"]
    assert url.startswith("data:video/jpeg;base64,") and len(url.split(",")) == 1 + 4
    assert body["mm_processor_kwargs"] == {"min_pixels": 56 * 84, "max_pixels": 56 * 84,
                                           "do_sample_frames": False, "fps": 1.0}
    assert body["media_io_kwargs"] == {"video": {"num_frames": -1, "fps": 1.0}}
    (parts,) = s.decoded
    assert [kind for kind, _ in parts] == ["video", "image"]
    assert all(np.array_equal(a, b) for a, b in zip(parts[0][1], frames_np(video)))  # PNG pieces: exact
    assert np.array_equal(parts[1][1][0], frames_np(image)[0])
    # without msce's limits Qwen2.5-VL's video processor would upscale these frames (128*28*28 minimum)
    assert s.processed == [[[(56, 84)] * 4, [(56, 84)]]]
    assert qwen_smart_resize(56, 84, 28, *VIDEO_LIMITS) == (280, 392)


def test_vllm_video_rate_of_a_shuffled_batch_and_of_mixed_rates() -> None:
    shuffled = at_times(rgb_frames(3, h=28, w=28, seed=5), (0.4, 0.0, 0.2))  # 5 FPS, order destroyed
    other = at_times(rgb_frames(3, h=28, w=28, seed=6), (0.0, 0.5, 1.0))  # 2 FPS
    with FakeServer("vllm") as s:
        be = backend(s, server="vllm", frames="video")
        be.generate([["a", shuffled]], P)
        be.generate([["b", shuffled, other]], P)
    assert s.received[0]["mm_processor_kwargs"]["fps"] == pytest.approx(5.0)
    assert s.received[1]["mm_processor_kwargs"]["fps"] == pytest.approx([5.0, 2.0])
    assert s.received[1]["media_io_kwargs"] == {"video": {"num_frames": -1}}  # no single rate to state


def test_vllm_jpeg_is_within_the_stated_bound() -> None:
    """JPEG re-encoding makes pixels inexact: on a face photo (scikit-image's astronaut at
    448x448, quality 90) the decoded frame is off by 2.2 grey levels on average, 14 at the
    99th percentile and 62 at most (measured with Pillow 13; docs/api-models.md)."""
    data = require_module("skimage.data")
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((448, 448), Image.BICUBIC))
    batch = FakeFrames(torch.from_numpy(photo[None].copy()), (0,), (0.0,))
    with FakeServer("vllm") as s:
        backend(s, server="vllm", image_format="jpeg", jpeg_quality=90).generate([["x", batch]], P)
    url = s.received[0]["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    err = np.abs(s.decoded[0][0][1][0].astype(int) - photo.astype(int))
    assert 0 < err.mean() <= 2.5 and np.percentile(err, 99) <= 16 and err.max() <= 70
    assert s.processed == [[[(448, 448)]]]  # the size survives; the values do not


def test_user_extra_body_merges_into_msces_fields() -> None:
    image = rgb_frames(1, h=56, w=56, seed=7)
    with FakeServer("vllm") as s:
        backend(s, server="vllm", extra_body={"mm_processor_kwargs": {"max_pixels": 10**6}, "top_k": 1}).generate(
            [["x", image]], P)
    body = s.received[0]
    assert body["mm_processor_kwargs"] == {"min_pixels": 56 * 56, "max_pixels": 10**6} and body["top_k"] == 1


def test_frame_sides_must_be_multiples_of_the_resize_factor() -> None:
    odd = rgb_frames(2, h=24, w=32, seed=8)
    with FakeServer("vllm") as s:
        with pytest.raises(ConfigError, match=r"24x32 .*resize_factor=28.*frame_size .*\[28, 28\]"):
            backend(s, server="vllm").generate([["x", odd]], P)
        assert s.received == []  # refused before sending
        backend(s, server="vllm", resize_factor=0).generate([["x", odd]], P)  # accepted: the server resizes
        assert s.processed[-1] == [[qwen_smart_resize(24, 32, 28, 24 * 32, 24 * 32)]] * 2 == [[(28, 28)]] * 2
        with pytest.raises(ConfigError, match=r"frame_size \[250, 448\].*resize_factor=28"):
            backend(s, server="vllm", frame_size=(250, 448))
        assert backend(s, server="vllm", resize_factor=32, frame_size=(256, 448)).target().size == (256, 448)


def test_vllm_limit_on_images_is_a_clear_error() -> None:
    video = rgb_frames(3, h=28, w=28, seed=9)
    with FakeServer("vllm", max_images=2) as s:
        with pytest.raises(BackendError, match=r"/v1/chat/completions: HTTP 400 .*At most 2 image\(s\)"):
            backend(s, server="vllm").generate([["x", video]], P)
        assert len(s.received) == 1  # a 400 is not retried
        backend(s, server="vllm", frames="video").generate([["x", video]], P)  # one video part instead


def test_server_overload_is_retried_then_reported() -> None:
    with FakeServer("vllm", status=503) as s:
        with pytest.raises(RetriesExhaustedError, match=r"after 2 attempts.*HTTP 503.*engine overloaded"):
            backend(s, server="vllm").generate([["x"]], P)
        assert len(s.received) == 2


# -- SGLang ---------------------------------------------------------------------------------


def test_sglang_images_are_png_and_unresized() -> None:
    video = rgb_frames(2, h=56, w=84, seed=10)
    with FakeServer("sglang") as s:
        backend(s, server="sglang").generate([["x", video]], P)
    body = s.received[0]
    assert [c["type"] for c in body["messages"][0]["content"]] == ["text", "image_url", "image_url"]
    assert "mm_processor_kwargs" not in body and "media_io_kwargs" not in body
    assert all(np.array_equal(a[0], b) for (_, a), b in zip(s.decoded[0], frames_np(video)))
    assert s.processed == [[[(56, 84)], [(56, 84)]]]


def test_sglang_has_no_video_part_and_no_processor_options() -> None:
    with FakeServer("sglang") as s:
        with pytest.raises(ConfigError, match="frames must be one of 'images' with server='sglang'"):
            backend(s, server="sglang", frames="video")
        with pytest.raises(ConfigError, match="server_resize must be one of 'server' with server='sglang'"):
            backend(s, server="sglang", server_resize="off")


# -- Gemini ---------------------------------------------------------------------------------


@pytest.fixture()
def gemini_key(monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    caplog.set_level(logging.DEBUG)
    yield
    assert GEMINI_KEY not in caplog.text


def test_gemini_request_shape_and_key(gemini_key) -> None:
    video = rgb_frames(5, h=48, w=64, seed=11)
    with FakeServer("gemini") as s:
        be = OpenAIBackend(base_url=s.base_url + "/", model="gemini-2.5-flash", server="gemini", timeout=5.0)
        assert be.preflight()["listed"]  # Gemini lists "models/gemini-2.5-flash"
        assert be.generate([["Which emotion?", video]], P) == ["neutral"]
    (body,) = s.received
    assert s.headers[0]["Authorization"] == f"Bearer {GEMINI_KEY}"
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "reasoning_effort"}  # no seed
    assert body["reasoning_effort"] == "none" and body["model"] == "gemini-2.5-flash"
    content = body["messages"][0]["content"]
    assert [c["type"] for c in content] == ["text"] + ["image_url"] * 5
    assert all(c["image_url"]["url"].startswith("data:image/jpeg;base64,") for c in content[1:])
    decoded = [a[0] for _, a in s.decoded[0]]
    assert [d.shape for d in decoded] == [(48, 64, 3)] * 5
    config = be.config()
    assert config["api_key_env"] == "GEMINI_API_KEY" and config["server"] == "gemini"
    for text in (repr(be), str(config), str(vars(be))):
        assert GEMINI_KEY not in text
    assert GEMINI_BASE_URL == "https://generativelanguage.googleapis.com/v1beta/openai"


def test_gemini_refusals_are_clear_backend_errors(gemini_key, monkeypatch) -> None:
    with FakeServer("gemini") as s:
        be = OpenAIBackend(base_url=s.base_url, model="gemini-2.5-flash", server="gemini", max_retries=2,
                           extra_body={"seed": 7})
        with pytest.raises(BackendError, match=r'v1beta/openai/chat/completions: HTTP 400 .*Unknown name \\?"seed'):
            be.generate([["x"]], P)
        assert len(s.received) == 1
        monkeypatch.setenv("GEMINI_API_KEY", "wrong-key-Zz9")
        with pytest.raises(BackendError, match="API key not valid") as info:
            OpenAIBackend(base_url=s.base_url, model="gemini-2.5-flash", server="gemini").generate([["x"]], P)
        assert "wrong-key-Zz9" not in str(info.value)


# -- options, the command line and the cache fingerprint --------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("server", "tgi", "server must be one of 'generic', 'vllm', 'sglang', 'gemini'"),
    ("frames", "gif", "frames must be one of 'images'"),
    ("image_format", "bmp", "image_format must be one of 'jpeg', 'png'"),
    ("jpeg_quality", 0, "jpeg_quality must be an int in 1..100"),
    ("jpeg_quality", "90", "jpeg_quality must be an int in 1..100"),
    ("server_resize", "maybe", "server_resize must be one of 'server'"),
    ("resize_factor", -1, "resize_factor must be an int >= 0"),
    ("resize_factor", True, "resize_factor must be an int >= 0"),
    ("reasoning_effort", "max", "reasoning_effort must be one of 'none'"),
    ("extra_body", "x", "extra_body must be a JSON object"),
])
def test_bad_options_name_the_option(key, value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", **{key: value})
    with pytest.raises(UsageError, match=rf"--backend-opt {key}=.*rejects it: .*{key}"):
        construct(OpenAIBackend, "--backend openai", {"base_url": "http://127.0.0.1:9/v1", "model": "m", key: value},
                  {"base_url": "--base-url", "model": "--model", key: "--backend-opt"})


def test_fingerprint_names_what_the_server_sees() -> None:
    def fp(**kw):
        be = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", **kw)
        be._listing = {"listed": False, "reason": "no server in this test", "revision": None}
        return be.fingerprint()

    generic = fp()
    assert set(generic) == {"backend", "base_url", "model_revision", "jpeg_quality", "frame_size", "system_prompt",
                            "extra_body"}  # as before the presets: existing caches still hit
    assert fp(server="vllm") == {**generic, "server": "vllm", "image_format": "png", "server_resize": "off",
                                 "resize_factor": 28}
    assert fp(server="vllm", frames="video") == {**fp(server="vllm"), "frames": "video"}
    assert fp(server="gemini") == {**generic, "server": "gemini", "reasoning_effort": "none"}
    assert fp(image_format="png") != generic and fp(jpeg_quality=80) != generic
