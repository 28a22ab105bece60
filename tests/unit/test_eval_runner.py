"""The evaluation runner with a fake strategy/backend: run directory, resume, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
from msce.eval import runner as evaluate
from msce.eval.datasets import load_generic
from msce.errors import ConfigError, DecodeError, MsceError
from msce.eval.metrics import classification_report

HERE = Path(__file__).resolve().parent
CLASSES = {"happy": 5, "sad": 5, "angry": 5}


@pytest.fixture()
def data(tmp_path):
    truth = make_generic_tree(tmp_path / "data", CLASSES)
    ds = load_generic(tmp_path / "data", labels="dfew")
    return ds, truth


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_run_directory_contents_and_metrics(tmp_path, data):
    ds, truth = data
    out = tmp_path / "run"
    strat = FakeStrategy(truth, invalid=0.3)
    res = evaluate.run_eval(ds, ds.samples, strat, FakeBackend(), out, seed=3, progress=False, n_boot=50,
                            split={"name": "all", "test_sha256": "x"})
    assert res.complete and res.n_new == 15 and res.n_resumed == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"]["labels"] == list(ds.label_set.names)
    assert cfg["strategy"]["name"] == "fake" and cfg["strategy"]["fps"] == 1.0 and cfg["strategy"]["invalid"] == 0.3
    assert cfg["backend"]["model_id"] == "fake/tiny-model" and cfg["backend"]["fingerprint"] == {"dtype": "none"}
    assert cfg["seed"] == 3 and cfg["split"]["name"] == "all"
    env = cfg["environment"]
    assert {"msce", "python", "numpy", "torch", "platform"} <= set(env)
    assert len(cfg["sessions"]) == 1 and cfg["sessions"][0]["already_done"] == 0

    recs = [json.loads(x) for x in lines(out / "predictions.jsonl")]
    assert len(recs) == 15 and len({r["id"] for r in recs}) == 15
    for r in recs:
        assert {"id", "label", "path", "raw_answer", "parsed", "correct", "frame_indices", "timestamps",
                "prompts", "visual_tokens", "model_calls", "cache_hits", "latency_s", "wall_s"} <= set(r)
        assert r["correct"] == (r["parsed"] == r["label"])
    assert any(r["parsed"] is None for r in recs)  # invalid answers are kept

    metrics = json.loads((out / "metrics.json").read_text())
    ref = classification_report([r["label"] for r in recs], [r["parsed"] for r in recs], ds.label_set)
    assert metrics["report"]["macro_f1"] == pytest.approx(ref.macro_f1)
    assert metrics["report"]["invalid_rate"] == pytest.approx(ref.invalid_rate)
    assert set(metrics["report"]["ci"]) >= {"macro_f1", "uar", "war"}
    assert metrics["complete"] and metrics["usage"]["model_calls"] == 15

    # a rerun does nothing but record the session
    before = (out / "predictions.jsonl").read_bytes()
    res2 = evaluate.run_eval(ds, ds.samples, FakeStrategy(truth, invalid=0.3), FakeBackend(), out, seed=3,
                             progress=False, n_boot=50, split={"name": "all", "test_sha256": "x"})
    assert res2.n_new == 0 and res2.n_resumed == 15
    assert (out / "predictions.jsonl").read_bytes() == before
    assert len(json.loads((out / "config.json").read_text())["sessions"]) == 2

    run = evaluate.load_run(out)
    assert run.name == "run" and run.fps == 1.0 and run.model_id == "fake/tiny-model"
    assert run.report.macro_f1 == pytest.approx(ref.macro_f1)


def test_resume_refuses_other_settings(tmp_path, data):
    ds, truth = data
    out = tmp_path / "run"
    evaluate.run_eval(ds, ds.samples[:3], FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0)
    with pytest.raises(ConfigError, match="strategy"):
        evaluate.run_eval(ds, ds.samples, FakeStrategy(truth, accuracy=0.9), FakeBackend(), out, progress=False)
    with pytest.raises(ConfigError, match="model_id"):
        evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend("other"), out, progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_second_writer_is_refused(tmp_path, data):
    import fcntl

    ds, truth = data
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # stands in for a live msce eval on the same directory
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another process"):
            evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0)
    assert evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0).complete


def test_limit_then_extend(tmp_path, data):
    ds, truth = data
    out = tmp_path / "run"
    r1 = evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), out, limit=4, progress=False, n_boot=0)
    assert (r1.n_requested, r1.n_new) == (4, 4)
    first = [json.loads(x) for x in lines(out / "predictions.jsonl")]
    assert [r["label"] for r in first] == ["angry", "happy", "sad", "angry"]  # every class early
    r2 = evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0)
    assert (r2.n_new, r2.n_resumed, r2.n_done) == (11, 4, 15)


def test_torn_tail_is_cut_and_corrupt_middle_is_an_error(tmp_path, data):
    ds, truth = data
    out = tmp_path / "run"
    evaluate.run_eval(ds, ds.samples[:5], FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0)
    pred = out / "predictions.jsonl"
    good = pred.read_bytes()
    pred.write_bytes(good + b'{"id": "angry/angry_004", "label": "an')  # killed mid-write
    assert len(evaluate.read_predictions(pred)) == 5
    res = evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), out, progress=False, n_boot=0)
    assert res.n_new == 10
    data_after = pred.read_bytes()
    assert data_after.startswith(good)
    recs = [json.loads(x) for x in data_after.decode().splitlines()]
    assert sorted(r["id"] for r in recs) == sorted(s.id for s in ds.samples)

    parts = data_after.split(b"\n")
    parts[2] = b'{"id": broken'
    pred.write_bytes(b"\n".join(parts))
    with pytest.raises(MsceError, match="predictions.jsonl:3"):
        evaluate.read_predictions(pred)


def test_media_errors_skip_or_raise(tmp_path, data):
    ds, truth = data
    bad = ds.samples[2]
    strat = FakeStrategy(truth, fail_on=(Path(bad.path).name,))
    with pytest.raises(DecodeError):
        evaluate.run_eval(ds, ds.samples, strat, FakeBackend(), tmp_path / "a", progress=False, n_boot=0)
    assert len(lines(tmp_path / "a" / "predictions.jsonl")) == 2  # finished videos kept

    res = evaluate.run_eval(ds, ds.samples, strat, FakeBackend(), tmp_path / "b", on_error="skip", progress=False,
                            n_boot=0)
    assert res.failed == (bad.id,) and res.n_done == 14 and not res.complete
    err = json.loads(lines(tmp_path / "b" / "errors.jsonl")[0])
    assert err["id"] == bad.id and err["error"] == "DecodeError"
    # the failed video is retried next time
    res = evaluate.run_eval(ds, ds.samples, FakeStrategy(truth), FakeBackend(), tmp_path / "b", progress=False,
                            n_boot=0)
    assert res.n_new == 1 and res.complete


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from eval_fakes import FakeBackend, FakeStrategy
    from msce.eval.datasets import load_generic
    from msce.eval.runner import run_eval

    data, out, kill_at, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    labels, hold_at, ready = sys.argv[5], int(sys.argv[6]), sys.argv[7]


    class Held(FakeStrategy):
        # at video number hold_at: tell the parent (an atomically created file), then wait
        # inside the video until the parent kills this process; it never finishes first
        def run(self, video, labels, backend, cache=None):
            if self.calls + 1 == hold_at:
                Path(ready + ".tmp").write_text(str(os.getpid()))
                os.replace(ready + ".tmp", ready)
                while True:
                    time.sleep(1.0)
            return super().run(video, labels, backend, cache)


    ds = load_generic(data, labels=labels.split(",") if "," in labels else labels)
    strat = Held(None, kill_at=kill_at or None, sleep=sleep)
    run_eval(ds, ds.samples, strat, FakeBackend(), out, progress=False, n_boot=0)
    """
)


def spawn(tmp_path: Path, data_dir: Path, out: Path, kill_at: int = 0, sleep: float = 0.0, labels: str = "dfew",
          hold_at: int = 0) -> subprocess.Popen:
    """A fresh interpreter (not a fork: the parent has torch's threads) running the eval."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in sys.path if p])
    log = open(tmp_path / "child.log", "wb")
    try:
        return subprocess.Popen([sys.executable, str(script), str(data_dir), str(out), str(kill_at), str(sleep),
                                 labels, str(hold_at), str(tmp_path / "ready")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def check_resumed(ds, out: Path, prefix: bytes) -> None:
    res = evaluate.run_eval(ds, ds.samples, FakeStrategy(None), FakeBackend(), out, progress=False, n_boot=0)
    assert res.complete
    final = (out / "predictions.jsonl").read_bytes()
    assert final.startswith(prefix)  # nothing written before the kill was lost or rewritten
    ids = [json.loads(x)["id"] for x in final.decode().splitlines()]
    assert len(ids) == len(set(ids)) == len(ds.samples)  # no duplicates, no gaps
    assert set(ids) == {s.id for s in ds.samples}


def test_sigkill_inside_a_video_then_resume(tmp_path, data):
    ds, _ = data
    out = tmp_path / "run"
    child = spawn(tmp_path, tmp_path / "data", out, kill_at=6)
    child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    written = (out / "predictions.jsonl").read_bytes()
    assert written.count(b"\n") == 5 and written.endswith(b"\n")
    check_resumed(ds, out, written)


def test_sigkill_from_outside_then_resume(tmp_path):
    # A spawned child writes predictions; at its 5th video it says so (a file) and waits
    # there, so the parent's SIGKILL lands at that point however loaded the machine is.
    make_generic_tree(tmp_path / "data", {"happy": 10, "sad": 10, "fear": 10})
    ds = load_generic(tmp_path / "data", labels=["happy", "sad", "fear"])
    out = tmp_path / "run"
    ready = tmp_path / "ready"
    child = spawn(tmp_path, tmp_path / "data", out, labels="happy,sad,fear", hold_at=5)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert child.poll() is None, f"child exited early: {(tmp_path / 'child.log').read_text()}"
            assert time.monotonic() < deadline, "child never reached video 5"
            time.sleep(0.01)
        assert int(ready.read_text()) == child.pid
    finally:
        child.kill()  # SIGKILL
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    written = (out / "predictions.jsonl").read_bytes()
    assert written.count(b"\n") == 4 and written.endswith(b"\n")  # videos 1-4, nothing of the 5th
    check_resumed(ds, out, written)


def test_cli_eval_then_report_and_compare(tmp_path, capsys):
    from msce.cli import main

    make_generic_tree(tmp_path / "data", {"happy": 4, "sad": 4, "angry": 4})
    common = ["eval", "--dataset", "generic", "--root", str(tmp_path / "data"), "--labels", "happy,sad,angry",
              "--split", "balanced", "--n-per-class", "3", "--model", "fake/model",
              "--backend", "eval_fakes:FakeBackend", "--no-cache", "--no-progress", "--n-boot", "20"]
    rc = main(common + ["--strategy", "eval_fakes:FakeStrategy", "--fps", "1", "--out", str(tmp_path / "r1")])
    assert rc == 0, capsys.readouterr().err
    rc = main(common + ["--strategy", "eval_fakes:FakeStrategy", "--fps", "2", "--out", str(tmp_path / "r2")])
    assert rc == 0
    cfg = json.loads((tmp_path / "r1" / "config.json").read_text())
    assert cfg["split"]["kind"] == "balanced" and cfg["split"]["num_test"] == 9
    assert cfg["backend"]["model_id"] == "fake/model" and cfg["strategy"]["fps"] == 1.0
    assert (tmp_path / "r1" / "split.json").is_file()
    assert len(lines(tmp_path / "r1" / "predictions.jsonl")) == 9
    out = capsys.readouterr().out
    assert "macro-F1" in out

    assert main(["compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "--n-boot", "20"]) == 0
    table = capsys.readouterr().out
    assert "r1" in table and "r2" in table and "baseline" in table
    assert main(["report", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "rep"),
                 "--n-boot", "20"]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()

    # a bad option is a clean usage error (exit 2) naming the flag, not a traceback
    assert main(common + ["--strategy", "eval_fakes:Nope", "--out", str(tmp_path / "r3")]) == 2
    assert "--strategy: cannot load 'eval_fakes:Nope'" in capsys.readouterr().err
