"""Server identity in cache keys and run records: two local OpenAI-compatible servers
that serve the same model name with different answers, and ``msce eval --base-url`` run
as a command against them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend_fakes import FakeChatServer
from msce.models.backends import GenerationParams
from msce.models.backends.openai_api import OpenAIBackend
from msce.models.cache import ResponseCache, generate_cached, request_key_document

P = GenerationParams(max_new_tokens=8)
MODEL = "qwen2.5-vl"
USER, PASSWORD, QUERY_SECRET = "evaluser", "Pa55-w0rd-xyz", "qs-Tok-31337"


def with_credentials(base_url: str) -> str:
    """``base_url`` with a login and a secret query parameter added."""
    return base_url.replace("http://", f"http://{USER}:{PASSWORD}@") + f"?api_key={QUERY_SECRET}"


def assert_no_secret(text: str) -> None:
    for secret in (PASSWORD, QUERY_SECRET, f"{USER}:"):
        assert secret not in text


def test_same_model_name_on_two_servers_never_shares_answers(tmp_path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    request = [["Which emotion does the person show?"]]
    with FakeChatServer(model_name=MODEL, answer="happy") as a, FakeChatServer(model_name=MODEL, answer="sad") as b:
        be_a = OpenAIBackend(base_url=a.base_url, model=MODEL, api_key_env="MSCE_UNSET_KEY_VAR")
        be_b = OpenAIBackend(base_url=with_credentials(b.base_url), model=MODEL, api_key_env="MSCE_UNSET_KEY_VAR")
        with ResponseCache(cache_path) as cache:
            first = generate_cached(be_a, request, P, cache)
            second = generate_cached(be_b, request, P, cache)
            again = generate_cached(be_b, request, P, cache)
        assert (first.texts, first.model_calls) == (["happy"], 1)
        assert (second.texts, second.model_calls) == (["sad"], 1)  # not server A's cached answer
        assert (again.texts, again.model_calls, again.cache_hits) == (["sad"], 0, 1)
        chat = [r for r in b.requests if r["body"] is not None]
        assert len(chat) == 1
        assert chat[0]["path"] == f"/v1/chat/completions?api_key={QUERY_SECRET}"  # secrets are sent...
        login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert chat[0]["headers"]["Authorization"] == f"Basic {login}"
        doc = request_key_document(be_b.model_id, be_b.fingerprint(), request[0], P)
    # ...but never recorded: not in the key text, the fingerprint or anything in the cache file
    assert f'"base_url":"{b.base_url}"' in doc
    assert_no_secret(doc)
    assert_no_secret(json.dumps(be_b.config()))
    assert_no_secret(repr(be_b))
    assert PASSWORD.encode() not in cache_path.read_bytes() and QUERY_SECRET.encode() not in cache_path.read_bytes()


# -- msce eval --base-url, end to end in a child process ------------------------------------------


def _clip(path: Path, seconds: float, rate: int, pattern: str) -> None:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=64x48:rate={rate}",
           "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", str(rate),
           "-fflags", "+bitexact", "-flags:v", "+bitexact", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """``<root>/<label>/<clip>.mp4``: two 2-second clips per class."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    root = tmp_path_factory.mktemp("folder_dataset")
    for label, pattern in (("happy", "testsrc2"), ("sad", "smptebars")):
        (root / label).mkdir()
        for i in range(2):
            _clip(root / label / f"{label}_{i}.mp4", 2.0, 5 + i, pattern)
    return root


def msce_command() -> list[str]:
    script = Path(sys.executable).with_name("msce")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from msce.cli import main; sys.exit(main())"]


def run_eval_cli(dataset: Path, base_url: str, out: Path, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    cmd = msce_command() + [
        "eval", "--dataset", "generic", "--root", str(dataset), "--labels", "happy,sad", "--split", "all",
        "--model", MODEL, "--base-url", base_url, "--strategy", "sparse", "--fps", "1",
        "--backend-opt", "api_key_env=MSCE_UNSET_KEY_VAR", "--backend-opt", "backoff_base=0.01",
        "--backend-opt", "timeout=30", "--cache", str(cache), "--out", str(out), "--no-progress", "--n-boot", "10",
    ]
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_cli_eval_base_url_end_to_end(dataset, tmp_path) -> None:
    cache = tmp_path / "responses.sqlite"
    with FakeChatServer(model_name=MODEL, answer="happy") as a, \
            FakeChatServer(model_name=MODEL, answer="The person looks sad.", fail_first=1) as b:
        ra = run_eval_cli(dataset, a.base_url, tmp_path / "run_a", cache, tmp_path)
        assert ra.returncode == 0, ra.stdout + ra.stderr
        url_b = with_credentials(b.base_url)
        rb = run_eval_cli(dataset, url_b, tmp_path / "run_b", cache, tmp_path)
        assert rb.returncode == 0, rb.stdout + rb.stderr
        rb2 = run_eval_cli(dataset, url_b, tmp_path / "run_b2", cache, tmp_path)
        assert rb2.returncode == 0, rb2.stdout + rb2.stderr
        chats_b = sum(1 for r in b.requests if r["body"] is not None)
    pa, pb, pb2 = (predictions(tmp_path / n) for n in ("run_a", "run_b", "run_b2"))
    assert sorted(r["id"] for r in pa) == sorted(r["id"] for r in pb) and len(pa) == 4
    assert {r["raw_answer"] for r in pa} == {"happy"} and {r["parsed"] for r in pa} == {"happy"}
    # the second server's answers, although it serves the same model name from the same cache
    assert {r["raw_answer"] for r in pb} == {"The person looks sad."} and {r["parsed"] for r in pb} == {"sad"}
    assert all(r["cache_hits"] == 0 for r in pb)
    assert chats_b == 4 + 1  # four videos, one of them retried after the 500
    assert all(r["cache_hits"] == 1 and r["model_calls"] == 0 for r in pb2)  # a rerun is all cache
    assert "macro-F1" in rb.stdout

    config = (tmp_path / "run_b" / "config.json").read_text()
    cfg = json.loads(config)
    assert cfg["backend"]["base_url"] == b.base_url
    assert cfg["backend"]["fingerprint"]["base_url"] == b.base_url
    assert cfg["backend"]["fingerprint"]["model_revision"]["root"] == f"/weights/{MODEL}"
    assert cfg["extra"]["backend_options"]["base_url"] == b.base_url
    assert b.base_url in " ".join(cfg["sessions"][0]["command"])
    assert "retrying" in rb.stderr and b.base_url in rb.stderr  # the retry was logged, by public URL
    for text in (config, rb.stdout, rb.stderr, rb2.stdout, rb2.stderr):
        assert_no_secret(text)
    assert PASSWORD.encode() not in cache.read_bytes() and QUERY_SECRET.encode() not in cache.read_bytes()
    assert json.loads((tmp_path / "run_a" / "config.json").read_text())["backend"]["base_url"] == a.base_url
