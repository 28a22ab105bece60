"""Day one with the ``msce`` command, run as a user runs it (a child process): a user's
mistake ends in one line naming the flag and exit status 2, never a traceback; a bad server
fails before anything is written, fast."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend_fakes import FakeChatServer

MODEL = "qwen2.5-vl"


def msce(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("msce")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-c", "import sys; from msce.cli import main; "
                                                                        "sys.exit(main())"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _clip(path: Path, seconds: float, rate: int, pattern: str) -> None:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=64x48:rate={rate}",
           "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", str(rate), str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def two_class_clips(root: Path) -> Path:
    """``root/happy/happy_0.mp4`` and ``root/sad/sad_0.mp4``: 2-second 5-FPS clips."""
    for label, pattern in (("happy", "testsrc2"), ("sad", "smptebars")):
        (root / label).mkdir(parents=True)
        _clip(root / label / f"{label}_0.mp4", 2.0, 5, pattern)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """``<root>/<label>/<clip>.mp4``: one 2-second 5-FPS clip per class."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    return two_class_clips(tmp_path_factory.mktemp("day_one"))


def eval_args(dataset: Path, *extra: str) -> list[str]:
    return ["eval", "--dataset", "generic", "--root", str(dataset), "--labels", "happy,sad", "--split", "all",
            "--no-progress", "--n-boot", "10", "--no-cache", *extra]


def assert_usage_error(res: subprocess.CompletedProcess, *words: str) -> str:
    text = res.stdout + res.stderr
    assert res.returncode == 2, text
    assert "Traceback" not in text
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


USAGE_CASES = {
    "strategy-opt": (["--model", MODEL, "--base-url", "http://127.0.0.1:9/v1", "--strategy", "sparse",
                      "--strategy-opt", "bogus=1"], ["--strategy-opt", "bogus", "fps"]),
    "backend-opt": (["--model", "some/model", "--strategy", "sparse", "--backend-opt", "bogus=1"],
                    ["--backend-opt", "bogus", "dtype"]),
    "fps-null": (["--model", MODEL, "--base-url", "http://127.0.0.1:9/v1", "--strategy", "sparse",
                  "--strategy-opt", "fps=null"], ["--strategy-opt", "fps"]),
    "openai-no-url": (["--model", MODEL, "--backend", "openai", "--strategy", "sparse"], ["--base-url"]),
    "limit-0": (["--model", MODEL, "--strategy", "sparse", "--limit", "0"], ["--limit"]),
    "balanced-no-n": (["--model", MODEL, "--strategy", "sparse", "--split", "balanced"],
                      ["--n-per-class", "--split all"]),
    "device-on-server": (["--model", MODEL, "--base-url", "http://127.0.0.1:9/v1", "--strategy", "sparse",
                          "--device", "cpu"], ["--device", "openai"]),
    "missing-model-dir": (["--model", "./no/such/model", "--strategy", "sparse"], ["--model",
                                                                                    "no such model directory"]),
    "unknown-strategy": (["--model", MODEL, "--strategy", "sparce"], ["--strategy", "sparse"]),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_user_mistakes_end_in_one_line_naming_the_flag(dataset, tmp_path, case) -> None:
    args, words = USAGE_CASES[case]
    if case == "balanced-no-n":  # the last --split wins in argparse
        base = [a for a in eval_args(dataset) if a not in ("--split", "all")]
        res = msce(*base, "--out", str(tmp_path / "run"), *args, cwd=tmp_path)
    else:
        res = msce(*eval_args(dataset, "--out", str(tmp_path / "run"), *args), cwd=tmp_path)
    assert_usage_error(res, *words)
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_skip_missing_is_named_by_its_flag_and_counted(dataset, tmp_path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text(f"path,label\n{dataset / 'happy' / 'happy_0.mp4'},happy\n{tmp_path / 'gone.mp4'},sad\n")
    args = ["eval", "--dataset", "generic", "--root", str(table), "--labels", "happy,sad", "--split", "all",
            "--model", MODEL, "--strategy", "sparse", "--no-progress", "--n-boot", "10", "--no-cache"]
    res = msce(*args, "--base-url", "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    assert "pass --skip-missing" in res.stderr and "on_missing" not in res.stderr
    with FakeChatServer(model_name=MODEL, answer="happy") as server:
        res = msce(*args, "--base-url", server.base_url, "--skip-missing", "--out", str(tmp_path / "run"),
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "--skip-missing: dropped 1 annotated clip(s)" in res.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["extra"]["skipped_missing"]["count"] == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_main(args: list[str], capsys) -> tuple[int, float, str]:
    """``msce.cli.main(args)`` in this process (imports already paid), its wall time and stderr."""
    from msce.cli import main

    t0 = time.perf_counter()
    rc = main(args)
    wall = time.perf_counter() - t0
    return rc, wall, capsys.readouterr().err


def test_wrong_port_fails_in_under_3_seconds(dataset, tmp_path, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    args = eval_args(dataset, "--model", MODEL, "--base-url", url, "--strategy", "sparse", "--out",
                     str(tmp_path / "run"))
    res = msce(*args, cwd=tmp_path)  # as a user sees it
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert "cannot connect" in res.stderr and "--base-url" in res.stderr
    rc, wall, err = timed_main(args, capsys)  # the same command, timed without the interpreter's start-up
    assert rc == 1 and "cannot connect" in err
    assert wall < 3.0, wall
    assert not (tmp_path / "run").exists()


def test_server_that_never_answers_fails_within_the_timeout(dataset, tmp_path, capsys) -> None:
    with socket.socket() as listener:  # accepts connections (the backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        args = eval_args(dataset, "--model", MODEL, "--base-url", url, "--timeout", "1.5", "--strategy", "sparse",
                         "--out", str(tmp_path / "run"))
        res = msce(*args, cwd=tmp_path)
        rc, wall, err = timed_main(args, capsys)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert "no answer within 1.5s" in res.stderr and "--timeout" in res.stderr
    assert rc == 1 and "no answer within 1.5s" in err
    assert 1.5 <= wall < 1.5 + 1.5, wall
    assert not (tmp_path / "run").exists()


def test_server_without_the_model_names_what_it_serves(dataset, tmp_path) -> None:
    with FakeChatServer(model_name="other-model") as server:
        res = msce(*eval_args(dataset, "--model", MODEL, "--base-url", server.base_url, "--strategy", "sparse",
                              "--out", str(tmp_path / "run")), cwd=tmp_path)
    text = res.stdout + res.stderr
    assert res.returncode == 1 and "Traceback" not in text, text
    assert f"does not serve model {MODEL!r}" in res.stderr and "other-model" in res.stderr
    assert not (tmp_path / "run").exists()


def test_a_good_server_run_records_flags_and_one_listing(dataset, tmp_path) -> None:
    with FakeChatServer(model_name=MODEL, answer="happy") as server:
        res = msce(*eval_args(dataset, "--model", MODEL, "--base-url", server.base_url, "--strategy", "dense",
                              "--fps", "1", "--timeout", "7", "--max-retries", "2", "--api-key-env", "MSCE_NO_KEY",
                              "--out", str(tmp_path / "run")), cwd=tmp_path)
        listings = server.listings
    assert res.returncode == 0, res.stdout + res.stderr
    assert listings == 1  # the server check's listing is the fingerprint's: fetched once
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    opts = cfg["extra"]["backend_options"]
    assert (opts["timeout"], opts["max_retries"], opts["api_key_env"]) == (7.0, 2, "MSCE_NO_KEY")
    assert any("equals a --strategy sparse --fps 1 run" in n for n in cfg["extra"]["notes"])
    assert "equals a --strategy sparse --fps 1 run" in res.stderr


def test_on_error_raise_suggests_skip(dataset, tmp_path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(dataset, root)
    (root / "sad" / "sad_1.mp4").write_bytes(b"this is not a video")
    with FakeChatServer(model_name=MODEL, answer="happy") as server:
        res = msce(*eval_args(root, "--model", MODEL, "--base-url", server.base_url, "--strategy", "sparse",
                              "--out", str(tmp_path / "run")), cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert "sad_1.mp4" in res.stderr and "pass --on-error skip" in res.stderr


def test_load_refuses_a_directory_and_a_sweep_like_info_does(dataset, tmp_path) -> None:
    import msce as api
    from msce.errors import DecodeError, PlanError

    empty = tmp_path / "not_frames"
    (empty / "sub").mkdir(parents=True)
    res = msce("info", str(empty), cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr and str(empty) in res.stderr
    with pytest.raises(DecodeError, match=str(empty)):
        api.load(empty, api.plan.uniform(1.0), api.Frames())
    with pytest.raises(PlanError, match=r"multi_fps\(\[1, 5\]\).*once per rate.*uniform\(fps\)"):
        api.load(dataset / "happy" / "happy_0.mp4", api.plan.multi_fps([1, 5]), api.Frames())


def test_dfew_with_a_fold_file_missing_runs_the_others_and_names_it(tmp_path) -> None:
    root = tmp_path / "DFEW"
    for part in ("train", "test"):
        d = root / "EmoLabel_DataSplit" / f"{part}(single-labeled)"
        d.mkdir(parents=True)
        for k in (1, 2):
            if (part, k) != ("test", 2):
                (d / f"set_{k}.csv").write_text("video_name,label\n1,1\n2,2\n")
    (root / "Clip" / "original").mkdir(parents=True)
    args = ["eval", "--dataset", "dfew", "--root", str(root), "--split", "official", "--model", MODEL,
            "--base-url", "http://127.0.0.1:9/v1", "--strategy", "sparse", "--skip-missing"]
    res = msce(*args, "--fold", "2", cwd=tmp_path)
    missing = str(root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"msce eval: error: --fold 2: {missing} is missing; complete folds: [1]" in res.stderr
    res = msce(*args, "--fold", "1", cwd=tmp_path)
    assert "Traceback" not in res.stderr and f"fold 2 is skipped: {missing} is missing" in res.stderr


def test_ctrl_c_says_a_rerun_resumes(dataset, tmp_path) -> None:
    import signal
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    chat = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # a model that takes its time (until the test is over)
            chat.set()
            done.wait(30)

    done = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = Path(sys.executable).with_name("msce")
        proc = subprocess.Popen([str(script), *eval_args(dataset, "--model", MODEL, "--base-url",
                                                         f"http://127.0.0.1:{server.server_port}/v1",
                                                         "--strategy", "sparse", "--out", str(tmp_path / "run"))],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert chat.wait(60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        server.shutdown()
        done.set()
        server.server_close()  # else the listening socket is collected later, in another test
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command to resume" in err
