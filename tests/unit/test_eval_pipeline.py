"""The pipelined runner (msce.eval.pipeline): the same predictions as the sequential runner,
in the same order, crash-safe and exactly resumable; batches that depend on the videos
left to run, not on timing; requests of many videos in flight against a slow server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
from msce.errors import BackendError, ConfigError, DecodeError
from msce.eval import runner as evaluate
from msce.eval.datasets import load_generic
from msce.eval.pipeline import Execution, answer_steps
from msce.models.cache import ResponseCache, generate_cached
from msce.models.strategies import ModelStep
from pipeline_fakes import P1, EchoBackend, SteppedFake

HERE = Path(__file__).resolve().parent
TIMING = ("latency_s", "wall_s")


@pytest.fixture()
def ds(tmp_path):
    make_generic_tree(tmp_path / "data", {"happy": 6, "sad": 6, "angry": 5})
    return load_generic(tmp_path / "data", labels=["happy", "sad", "angry"])


def records(out: Path) -> list[dict]:
    recs = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def run(ds, out, strategy=None, backend=None, cache=None, **kw):
    return evaluate.run_eval(ds, ds.samples, strategy or SteppedFake(), backend or EchoBackend(), out, cache,
                             progress=False, n_boot=0, **kw)


# -- answer_steps: what generate_cached gives each step, in one call ----------------------------------


def test_answer_steps_is_generate_cached_per_step_in_one_call(tmp_path):
    steps = [ModelStep([["describe a"], ["describe b"]], P1), ModelStep([["describe b"], ["describe c"]], P1),
             ModelStep([["describe c"]], P1)]
    with ResponseCache(tmp_path / "ref.sqlite") as ref_cache:
        ref_backend = EchoBackend()
        ref = [generate_cached(ref_backend, s.requests, s.params, ref_cache) for s in steps]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("unrelated", "x")
        backend = EchoBackend()
        got = answer_steps(backend, steps, cache)
        again = answer_steps(backend, steps, cache)
    assert [(g.texts, g.from_cache, g.model_calls) for g in got] == \
        [(r.texts, r.from_cache, r.model_calls) for r in ref]
    assert got[1].from_cache == [True, False] and got[2].model_calls == 0
    assert backend.calls == [["describe a", "describe b", "describe c"]]  # one call, each request once
    assert all(g.model_calls == 0 and all(g.from_cache) for g in again)
    nocache = answer_steps(EchoBackend(), steps, None)
    assert [g.texts for g in nocache] == [r.texts for r in ref] and [g.model_calls for g in nocache] == [1, 1, 1]
    with pytest.raises(ConfigError, match="same generation parameters"):
        answer_steps(backend, [steps[0], ModelStep([["x"]], P1.__class__(max_new_tokens=3))], None)


def test_execution_options_are_checked_and_recorded():
    assert Execution().sequential and Execution().to_dict() == {"mode": "sequential"}
    d = Execution(batch_size=4).to_dict()
    assert d["mode"] == "pipelined" and d["batch_size"] == 4 and d["prefetch"] == 8 and d["decode_workers"] >= 1
    for bad in ({"batch_size": 0}, {"concurrency": -1}, {"prefetch": 0}, {"batch_size": 4, "prefetch": 3},
                {"concurrency": True}):
        with pytest.raises(ConfigError):
            Execution(**bad)


# -- the same records as the sequential runner ----------------------------------------------------------


@pytest.mark.parametrize("with_cache", [False, True])
@pytest.mark.parametrize("opts", [{"concurrency": 4}, {"batch_size": 3}, {"batch_size": 4, "concurrency": 2},
                                  {"prefetch": 1}, {"batch_size": 2, "prefetch": 2, "decode_workers": 1}])
def test_pipelined_records_equal_sequential(tmp_path, ds, opts, with_cache):
    def cache(name):
        return ResponseCache(tmp_path / f"{name}.sqlite") if with_cache else None

    c = cache("seq")
    run(ds, tmp_path / "seq", cache=c)
    c2 = cache("pipe")
    res = run(ds, tmp_path / "pipe", SteppedFake(decode_s=0.02), EchoBackend(call_s=0.01), cache=c2, **opts)
    assert res.complete and res.n_new == len(ds.samples)
    assert records(tmp_path / "pipe") == records(tmp_path / "seq")
    assert [r["id"] for r in records(tmp_path / "pipe")] == [s.id for s in ds.samples]
    session = json.loads((tmp_path / "pipe" / "config.json").read_text())["sessions"][-1]
    assert session["execution"]["mode"] == "pipelined"
    assert session["execution"]["batch_size"] == opts.get("batch_size", 1)
    if with_cache:  # a rerun into a new directory is answered by the cache alone
        res = run(ds, tmp_path / "again", cache=c2, **opts)
        assert all(r["model_calls"] == 0 and r["cache_hits"] >= 1 for r in records(tmp_path / "again"))
        c.close()
        c2.close()


def test_batches_are_chunks_of_the_videos_left_stage_by_stage(tmp_path, ds):
    from pipeline_fakes import unit

    backend = EchoBackend()
    run(ds, tmp_path / "b", backend=backend, batch_size=4, concurrency=3)
    names = [Path(s.path).name for s in ds.samples]
    expected = []
    for c in range(0, len(names), 4):
        chunk = names[c:c + 4]
        stage1 = [f"describe {n} gap {j}" for n in chunk for j in range(int(unit("g" + n) * 3))]
        expected += [stage1] if stage1 else []
        expected.append(chunk)

    def key(call):
        return names.index(call[0].split()[1]) // 4, call[0].startswith("classify")

    got = [[x if x.startswith("describe") else x.split()[1] for x in call] for call in sorted(backend.calls, key=key)]
    assert got == expected


def test_plain_strategies_run_whole_and_concurrently(tmp_path, ds):
    truth = {Path(s.path).name: s.label for s in ds.samples}
    evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), tmp_path / "seq", progress=False, n_boot=0)
    t0 = time.perf_counter()
    evaluate.run_eval(ds, ds.samples, FakeStrategy(truth, sleep=0.2), FakeBackend(), tmp_path / "pipe",
                      progress=False, n_boot=0, concurrency=8)
    assert time.perf_counter() - t0 < 0.2 * len(ds.samples) / 2
    assert records(tmp_path / "pipe") == records(tmp_path / "seq")


def test_media_errors_skip_or_stop_like_the_sequential_runner(tmp_path, ds):
    bad = Path(ds.samples[5].path).name
    for name, opts in (("seq", {}), ("pipe", {"batch_size": 3, "concurrency": 2})):
        with pytest.raises(DecodeError):
            run(ds, tmp_path / f"{name}-raise", SteppedFake(fail_on=(bad,)), **opts)
        assert len(records(tmp_path / f"{name}-raise")) == 5  # the videos before the bad one
        res = run(ds, tmp_path / f"{name}-skip", SteppedFake(fail_on=(bad,)), on_error="skip", **opts)
        assert res.failed == (ds.samples[5].id,) and res.n_done == len(ds.samples) - 1
    assert records(tmp_path / "pipe-skip") == records(tmp_path / "seq-skip")
    assert records(tmp_path / "pipe-raise") == records(tmp_path / "seq-raise")
    with pytest.raises(RuntimeError, match="strategy bug"):  # not a media error: stops even with skip
        run(ds, tmp_path / "boom", SteppedFake(boom_on=(Path(ds.samples[3].path).name,)), on_error="skip",
            concurrency=4)
    assert len(records(tmp_path / "boom")) == 3


def test_a_model_error_fails_its_group(tmp_path, ds):
    class Broken(EchoBackend):
        def generate(self, requests, params):
            if any("classify" in r[0] for r in requests):
                raise BackendError("server gone")
            return super().generate(requests, params)

    with pytest.raises(BackendError, match="server gone"):
        run(ds, tmp_path / "x", backend=Broken(), batch_size=4)
    assert not (tmp_path / "x" / "predictions.jsonl").exists() or records(tmp_path / "x") == []


# -- kill -9 in the middle of a pipelined run, then resume ------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from msce.eval.datasets import load_generic
    from msce.eval.runner import run_eval
    from pipeline_fakes import EchoBackend, SteppedFake

    data, out, hold_name, lines, ready = sys.argv[1:6]
    ds = load_generic(data, labels=["happy", "sad", "angry"])
    strat = SteppedFake(decode_s=0.05, hold=(hold_name, out + "/predictions.jsonl", int(lines), ready))
    run_eval(ds, ds.samples, strat, EchoBackend(call_s=0.01), out, progress=False, n_boot=0, batch_size=2,
             concurrency=2, prefetch=8)
    """
)


def test_sigkill_during_a_pipelined_run_then_resume_exactly(tmp_path, ds):
    run(ds, tmp_path / "seq")
    reference = records(tmp_path / "seq")
    out, ready = tmp_path / "run", tmp_path / "ready"
    hold_at = 7  # the 7th video waits (after videos 1-6 are written) until it is killed
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE)] + [p for p in sys.path if p]))
    with open(tmp_path / "child.log", "wb") as log:
        child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "data"), str(out),
                                  Path(ds.samples[hold_at - 1].path).name, str(hold_at - 1), str(ready)],
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "the child never reached the held video"
            time.sleep(0.01)
        time.sleep(0.3)  # later videos finish meanwhile: they must not be written before the held one
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    written = (out / "predictions.jsonl").read_bytes()
    assert written.count(b"\n") == hold_at - 1 and written.endswith(b"\n")
    res = run(ds, out, SteppedFake(decode_s=0.01), concurrency=3, batch_size=2)
    assert res.complete and res.n_resumed == hold_at - 1 and res.n_new == len(ds.samples) - hold_at + 1
    assert (out / "predictions.jsonl").read_bytes().startswith(written)
    assert records(out) == reference  # nothing lost, nothing twice, the same order and answers


# -- 32 videos against a server that takes 1 s per answer -----------------------------------------------


def _color_clip(path: Path, k: int) -> None:
    color = f"0x{(k * 53) % 256:02x}{(k * 97) % 256:02x}{(k * 151) % 256:02x}"
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={color}:size=64x48:rate=10", "-t", "2",
           "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10", "-fflags", "+bitexact", "-flags:v", "+bitexact",
           str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def clips32(tmp_path_factory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    from msce._native import C

    if not getattr(C, "has_ffmpeg", False):
        pytest.skip("an msce build with FFmpeg is needed to decode clips")
    root = tmp_path_factory.mktemp("clips32")
    jobs = []
    for k in range(32):
        label = ("happy", "sad", "angry", "neutral")[k % 4]
        (root / label).mkdir(exist_ok=True)
        jobs.append((root / label / f"clip{k:02d}.mp4", k))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda j: _color_clip(*j), jobs))
    return root


def test_32_videos_against_a_1s_server_with_concurrency_8(tmp_path, clips32):
    from backend_fakes import FakeChatServer
    from msce.models.backends.openai_api import OpenAIBackend
    from msce.models.strategies import Sparse

    ds = load_generic(clips32, labels="dfew")
    assert len(ds.samples) == 32
    answers = ["happy", "sad", "angry", "neutral", "The person looks surprised.", "unclear"]

    def backend(server):
        return OpenAIBackend(base_url=server.base_url, model="tiny-vlm", api_key_env="MSCE_UNSET_KEY_VAR")

    with FakeChatServer(answers=answers) as fast:
        evaluate.run_eval(ds, ds.samples, Sparse(1.0), backend(fast), tmp_path / "seq", progress=False, n_boot=0)
    with FakeChatServer(answers=answers, delay=1.0) as slow:
        be = backend(slow)
        be.model_listing()  # the listing is not a chat request; fetch it before timing
        t0 = time.perf_counter()
        res = evaluate.run_eval(ds, ds.samples, Sparse(1.0), be, tmp_path / "pipe", progress=False, n_boot=0,
                                concurrency=8)
        elapsed = time.perf_counter() - t0
        assert slow.max_inflight == 8
    assert res.complete and elapsed < 8.0, f"{elapsed:.1f} s"
    seq, pipe = records(tmp_path / "seq"), records(tmp_path / "pipe")
    assert pipe == seq and len({r["raw_answer"] for r in seq}) > 2


def test_cli_throughput_flags(tmp_path, capsys):
    from msce.cli import main

    make_generic_tree(tmp_path / "data", {"happy": 4, "sad": 4, "angry": 4})
    common = ["eval", "--dataset", "generic", "--root", str(tmp_path / "data"), "--labels", "happy,sad,angry",
              "--split", "all", "--model", "fake/model", "--backend", "eval_fakes:FakeBackend", "--no-cache",
              "--no-progress", "--n-boot", "0", "--strategy", "eval_fakes:FakeStrategy"]
    assert main(common + ["--out", str(tmp_path / "seq")]) == 0, capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "pipe"), "--concurrency", "4", "--batch-size", "2",
                          "--prefetch", "6"]) == 0, capsys.readouterr().err
    assert records(tmp_path / "pipe") == records(tmp_path / "seq")
    session = json.loads((tmp_path / "pipe" / "config.json").read_text())["sessions"][-1]
    assert session["execution"] == {"mode": "pipelined", "batch_size": 2, "concurrency": 4, "prefetch": 6,
                                    "decode_workers": session["execution"]["decode_workers"]}
    assert main(common + ["--out", str(tmp_path / "bad"), "--batch-size", "4", "--prefetch", "2"]) != 0
    assert "prefetch" in capsys.readouterr().err
