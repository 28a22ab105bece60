"""Day one with a real (tiny) model and sampling that says what it did, run as a user runs
``msce`` (a child process): README's offline recipe (``msce tiny-model DIR`` then ``msce
eval``) works as written and is quiet by default (no weight-loading bars, no library
warnings, one progress bar; ``-v`` shows the library's messages); a tiny model is marked in
its config and its reports carry a banner that a normal run's do not; ``--fps`` above a
clip's frame rate is noted once and its duplicate frames are counted per video, in
metrics.json and in the report."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _deps import require_module
from backend_fakes import FakeChatServer
from test_cli_day_one import _clip, eval_args, msce, two_class_clips
from msce.cli import _QUIET_ENV

README = Path(__file__).resolve().parents[2] / "README.md"
BAR = re.compile(r"^\S+ +━+ +\d+/\d+ acc \d\.\d{3} inv \d+", re.M)
LIBRARY_NOISE = re.compile(r"Loading (weights|checkpoint)|FutureWarning|DeprecationWarning|UserWarning|"
                           r"warnings\.warn|Traceback")


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("msce")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "msce.cli"]
    # the quiet-mode variables come from msce itself, never from the environment pytest runs in
    base = {k: v for k, v in os.environ.items() if k not in _QUIET_ENV}
    return subprocess.run(cmd + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def readme_commands() -> tuple[list[str], list[str], str]:
    """README's offline recipe: the ``msce tiny-model`` command, the ``msce eval`` command that
    follows it, and the paragraph they are in."""
    text = README.read_text(encoding="utf-8")
    start = text.index("`msce tiny-model ")
    para = text[start:text.index("\n\n", start)]
    cmds = [" ".join(c.split()) for c in re.findall(r"`(msce [^`]+)`", para)]
    tiny = next(c for c in cmds if c.startswith("msce tiny-model "))
    ev = next(c for c in cmds if c.startswith("msce eval "))
    return shlex.split(tiny)[1:], shlex.split(ev)[1:], " ".join(para.split())


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    """A working folder with CLIPS/<label>/<clip>.mp4 (two 2-second 5-FPS clips) and the tiny
    model README's recipe writes, built by the command line."""
    require_module("transformers", "pip install 'msce[hf]'")
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    root = tmp_path_factory.mktemp("day_models")
    two_class_clips(root / "CLIPS")
    tiny_args, _, _ = readme_commands()
    res = run_cli(tiny_args, cwd=root)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "meaningless" in res.stdout
    return root


def test_readme_recipe_is_accurate_and_says_answers_are_meaningless(day) -> None:
    _, eval_cmd, para = readme_commands()
    assert "meaningless" in para and "msce.testing" in para
    model = day / eval_cmd[eval_cmd.index("--model") + 1]
    from transformers import AutoModelForImageTextToText, AutoProcessor

    loaded = AutoModelForImageTextToText.from_pretrained(model, local_files_only=True)
    AutoProcessor.from_pretrained(model, local_files_only=True)
    assert type(loaded).__name__ == "Qwen2_5_VLForConditionalGeneration"
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["msce_tiny"] is True and cfg["msce_tiny_name"] == "msce-tiny-qwen2.5-vl"


@pytest.fixture(scope="module")
def quiet_run(day) -> tuple[subprocess.CompletedProcess, Path]:
    """README's ``msce eval`` command exactly as written (its default progress bar and response
    cache; the cache kept in the test folder)."""
    _, eval_cmd, _ = readme_commands()
    res = run_cli(eval_cmd, cwd=day, env={"MSCE_CACHE": str(day / "cache.sqlite")})
    assert res.returncode == 0, res.stdout + res.stderr
    (out,) = (day / "runs").iterdir()
    return res, out


def test_eval_on_the_tiny_model_is_quiet_by_default(quiet_run) -> None:
    res, out = quiet_run
    text = res.stdout + res.stderr
    assert not LIBRARY_NOISE.search(text), text
    assert len(BAR.findall(res.stderr)) == 1, res.stderr
    assert "2/2 videos" in res.stdout
    assert "tiny random-weight model" in res.stderr and "meaningless" in res.stderr
    assert json.loads((out / "config.json").read_text())["backend"]["tiny_model"] == "msce-tiny-qwen2.5-vl"


def test_verbose_shows_the_librarys_messages(day, tmp_path) -> None:
    _, eval_cmd, _ = readme_commands()
    res = run_cli(eval_cmd + ["--backend", "transformers", "--no-cache", "--out", str(tmp_path / "run"), "-v"],
                  cwd=day)
    assert res.returncode == 0, res.stderr
    assert "Loading weights" in res.stderr
    assert len(BAR.findall(res.stderr)) == 1


def test_report_of_a_tiny_run_has_a_banner_and_a_normal_run_none(quiet_run, day, tmp_path) -> None:
    _, tiny_run = quiet_run
    res = run_cli(["report", str(tiny_run), "--out", str(tmp_path / "tiny_rep"), "--n-boot", "10"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    head = (tmp_path / "tiny_rep" / "report.md").read_text().split("# Runs")[0]
    assert "tiny random-weight model" in head and "msce-tiny-qwen2.5-vl" in head
    assert "tiny random-weight model" in res.stderr

    # the checkpoint copied elsewhere (without msce_tiny.json) still says what it is
    copy = tmp_path / "renamed"
    shutil.copytree(day / "tiny", copy)
    (copy / "msce_tiny.json").unlink()
    from msce.testing.tiny import tiny_model_name

    assert tiny_model_name(copy) == "msce-tiny-qwen2.5-vl"

    with FakeChatServer(model_name="qwen2.5-vl", answer="happy") as server:
        res = msce(*eval_args(day / "CLIPS", "--model", "qwen2.5-vl", "--base-url", server.base_url,
                              "--strategy", "sparse", "--out", str(tmp_path / "normal")), cwd=tmp_path)
    assert res.returncode == 0 and "tiny" not in res.stderr, res.stderr
    res = run_cli(["report", str(tmp_path / "normal"), "--out", str(tmp_path / "rep"), "--n-boot", "10"],
                  cwd=tmp_path)
    assert res.returncode == 0 and "tiny" not in res.stderr, res.stderr
    assert "tiny random-weight" not in (tmp_path / "rep" / "report.md").read_text()


def test_tiny_model_names() -> None:
    from msce.testing.tiny import tiny_model_name

    assert tiny_model_name("hf-internal-testing/tiny-random-Qwen2VLForConditionalGeneration") == \
        "tiny-random-Qwen2VLForConditionalGeneration"
    for name in ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl", "", None, "x" * 5000):
        assert tiny_model_name(name) is None


def test_fps_above_the_clip_rate_is_noted_once_and_counted(day, tmp_path) -> None:
    """12 FPS asked of 2-second 5-FPS clips: 24 planned frames, each of the 10 source frames
    is the nearest to at least one of them (1/12 s < 1/5 s), so 24 - 10 = 14 repeat."""
    with FakeChatServer(model_name="qwen2.5-vl", answer="sad") as server:
        common = ["--model", "qwen2.5-vl", "--base-url", server.base_url]
        dup = msce(*eval_args(day / "CLIPS", *common, "--strategy", "dense", "--fps", "12",
                              "--out", str(tmp_path / "dense12")), cwd=tmp_path)
        ok = msce(*eval_args(day / "CLIPS", *common, "--strategy", "sparse", "--out", str(tmp_path / "sparse")),
                  cwd=tmp_path)
    assert dup.returncode == 0 and ok.returncode == 0, dup.stderr + ok.stderr
    notes = [line for line in dup.stderr.splitlines() if "planned frames repeat" in line]
    assert len(notes) == 1, dup.stderr  # once per run, not once per video
    assert "12 FPS requested but the clip has 5 FPS" in notes[0] and "14 of its 24 planned frames" in notes[0]
    assert "repeat" not in ok.stderr
    records = [json.loads(line) for line in (tmp_path / "dense12" / "predictions.jsonl").read_text().splitlines()]
    assert [(len(r["frame_indices"]), r["duplicate_frames"]) for r in records] == [(24, 14), (24, 14)]
    metrics = json.loads((tmp_path / "dense12" / "metrics.json").read_text())
    assert metrics["frames"] == {"duplicate_frames": 28, "videos_with_duplicates": 2, "videos_counted": 2}
    sparse = [json.loads(line) for line in (tmp_path / "sparse" / "predictions.jsonl").read_text().splitlines()]
    assert [r["duplicate_frames"] for r in sparse] == [0, 0]

    res = msce("report", str(tmp_path / "dense12"), str(tmp_path / "sparse"), "--out", str(tmp_path / "rep"),
               "--n-boot", "10", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "dense12: 28 duplicate frame(s) in 2 of 2 videos" in text
    assert "sparse: " not in text.split("**Duplicate frames**")[1].split("\n")[0]


def test_main_in_process_leaves_the_environment_and_warning_filters_as_it_found_them(tmp_path, monkeypatch) -> None:
    """``msce.cli.main`` called from Python (a notebook, a test) quiets the libraries only while
    its command runs: later commands and the child processes they start see the caller's
    environment (the -v test above failed after an in-process call had set these variables)."""
    import warnings

    from msce.cli import main

    for key in _QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # a value the user set survives
    clip = tmp_path / "c.mp4"
    _clip(clip, 1.0, 5, "testsrc")
    filters = list(warnings.filters)
    assert main(["info", str(clip)]) == 0
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    assert "TRANSFORMERS_NO_ADVISORY_WARNINGS" not in os.environ
    assert warnings.filters == filters
