"""Runs on a local Ray (msce.eval.ray_run) against the single-process runner, with the tiny
Qwen2.5-VL: the same rows in the same order, a worker killed mid-run loses and duplicates
nothing, an interrupted Ray run resumes exactly, and ``--ray`` without Ray says how to
install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _deps import require_module
from tiny_env import CLIP_H, CLIP_W, PIXELS

ray = require_module("ray")
require_module("ray.data")

from msce.errors import ConfigError  # noqa: E402
from msce.eval.datasets import load_generic  # noqa: E402
from msce.eval.ray_run import INSTALL_HINT, BackendSpec, RayExecutor, RayOptions, require_ray, run_ray  # noqa: E402
from msce.eval.runner import run_eval  # noqa: E402
from msce.models.backends.base import GenerationParams  # noqa: E402
from msce.models.strategies import MSCE, Sparse  # noqa: E402

ANS = GenerationParams(max_new_tokens=4)
S1 = GenerationParams(max_new_tokens=6)
TIMING = ("latency_s", "wall_s")
STRATEGIES = {"sparse": lambda: Sparse(1.0, params=ANS), "msce": lambda: MSCE(1, 2, params=ANS, stage1_params=S1)}
KW = {"progress": False, "n_boot": 0}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    # the test strategies below travel to the workers by value (this module is not importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Five short clips of different lengths, three labels."""
    from _deps import require_tool

    require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("ray-tree")
    for k, seconds in enumerate((2.3, 1.4, 2.1, 0.6, 1.9)):
        label = ("happy", "sad", "angry")[k % 3]
        (root / label).mkdir(exist_ok=True)
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={CLIP_W}x{CLIP_H}:rate=10",
               "-ss", f"{0.3 * k:.1f}", "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10",
               str(root / label / f"c{k}.mp4")]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return root


@pytest.fixture(scope="module")
def setup(tiny_dirs, tiny_backends, tree, local_ray):
    """The dataset, the local backend, and one RayExecutor (2 workers, 2 videos per task) reused
    by every Ray run here: its backend is described on the cluster once."""
    lo, hi = PIXELS["2.5"]
    spec = BackendSpec("transformers", {"model": str(tiny_dirs["2.5"]), "dtype": "float32", "device": "cpu",
                                        "min_pixels": lo, "max_pixels": hi})
    executor = RayExecutor(spec, RayOptions(workers=2, task_videos=2, cpus=0.5))
    ds = load_generic(tree, labels=["happy", "sad", "angry"])
    yield ds, tiny_backends["2.5"], executor
    executor.close()


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory) -> dict[str, Path]:
    """The single-process runs (sequential runner) of each strategy."""
    ds, backend, _ = setup
    root = tmp_path_factory.mktemp("ray-ref")
    for name, make in STRATEGIES.items():
        run_eval(ds, ds.samples, make(), backend, root / name, **KW)
    return {name: root / name for name in STRATEGIES}


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING}
            for x in (out / "predictions.jsonl").read_text().splitlines()]


class _Wrapped:
    """A strategy that behaves like ``inner`` (same config: a resume accepts it) except on the
    video ``victim``, where ``trap`` fires first."""

    def __init__(self, inner, victim: str):
        self.inner, self.victim = inner, victim
        self.name = inner.name

    def config(self) -> dict:
        return self.inner.config()

    def run(self, video, labels, backend, cache=None, *, sample_id=None):
        raise AssertionError("the Ray workers drive steps()")

    def steps(self, video, labels, backend, *, sample_id=None):
        if sample_id == self.victim:
            self.trap()
        return (yield from self.inner.steps(video, labels, backend, sample_id=sample_id))


class _ExitOnce(_Wrapped):
    """Kills its worker process (no cleanup, like SIGKILL) the first time it meets the victim."""

    def __init__(self, inner, victim: str, marker: Path):
        super().__init__(inner, victim)
        self.marker = str(marker)

    def trap(self) -> None:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # the retry runs normally
        os.close(fd)
        os._exit(1)


class _Interrupt(_Wrapped):
    """Stops the run at the victim (an error that is not a media error ends a run)."""

    def trap(self) -> None:
        raise RuntimeError(f"interrupted at {self.victim}")


# Ray runs start their worker processes afresh (each imports torch and loads the model): the
# tests share them out so that sparse and MSCE each have one plain run and one with a fault.


def test_ray_run_equals_single_process(tmp_path, setup, reference, tiny_dirs, tree):
    """``msce eval --ray``: the command line's Ray run gives the rows of the single-process run."""
    from msce.cli import main

    ds = setup[0]
    lo, hi = PIXELS["2.5"]
    out = tmp_path / "ray"
    code = main(["eval", "--dataset", "generic", "--root", str(tree), "--labels", "happy,sad,angry", "--split", "all",
                 "--model", str(tiny_dirs["2.5"]), "--dtype", "float32", "--device", "cpu", "--min-pixels", str(lo),
                 "--max-pixels", str(hi), "--strategy", "sparse", "--fps", "1", "--strategy-opt",
                 'params={"max_new_tokens": 4}', "--no-cache", "--n-boot", "0", "--no-progress", "--out", str(out),
                 "--ray", "--ray-workers", "2", "--ray-task-videos", "2"])
    assert code == 0
    assert records(out) == records(reference["sparse"])  # same rows, same order, same answers
    assert len(records(out)) == len(ds.samples)
    cfg = json.loads((out / "config.json").read_text())
    ref_cfg = json.loads((reference["sparse"] / "config.json").read_text())
    assert cfg["backend"] == ref_cfg["backend"] and cfg["strategy"] == ref_cfg["strategy"]
    execution = cfg["sessions"][-1]["execution"]
    assert (execution["mode"], execution["decode"], execution["workers"], execution["task_videos"]) == \
        ("ray", "model", 2, 2)
    assert execution["duplicates_dropped"] == 0  # written when the session ends


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, setup, reference):
    ds, _, executor = setup
    victim = str(ds.samples[2].id)  # the first video of the second task
    marker = tmp_path / "fired"
    strategy = _ExitOnce(STRATEGIES["msce"](), victim, marker)  # dies before its stage 1
    res = run_ray(ds, ds.samples, strategy, executor.spec, tmp_path / "ray", ray=executor, **KW)
    assert marker.exists()  # the worker did die once
    assert res.complete and res.n_new == len(ds.samples)
    got = records(tmp_path / "ray")
    assert len({r["id"] for r in got}) == len(got) == len(ds.samples)
    assert got == records(reference["msce"])
    execution = json.loads((tmp_path / "ray" / "config.json").read_text())["sessions"][-1]["execution"]
    assert execution["duplicates_dropped"] == executor.duplicates_dropped >= 0


def test_interrupted_ray_run_resumes_exactly(tmp_path, setup, reference):
    ds, _, executor = setup
    stop = 3
    victim = str(ds.samples[stop].id)
    with pytest.raises(RuntimeError, match="interrupted at"):
        run_ray(ds, ds.samples, _Interrupt(STRATEGIES["sparse"](), victim), executor.spec, tmp_path / "ray",
                ray=executor, **KW)
    ref = records(reference["sparse"])
    assert records(tmp_path / "ray") == ref[:stop]  # everything before the failing video, in order
    res = run_ray(ds, ds.samples, STRATEGIES["sparse"](), executor.spec, tmp_path / "ray", ray=executor, **KW)
    assert (res.n_resumed, res.n_new) == (stop, len(ds.samples) - stop)
    assert records(tmp_path / "ray") == ref
    sessions = json.loads((tmp_path / "ray" / "config.json").read_text())["sessions"]
    assert [s["already_done"] for s in sessions] == [0, stop]
    # the interrupted session's record was completed too
    assert all("duplicates_dropped" in s["execution"] for s in sessions)


def test_ray_flag_without_ray_says_how_to_install(tmp_path, tree, monkeypatch, capsys):
    from msce.cli import main

    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # import ray fails as if it were not installed
    with pytest.raises(ConfigError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        require_ray()
    code = main(["eval", "--dataset", "generic", "--root", str(tree), "--labels", "happy,sad,angry", "--split",
                 "all", "--model", "unused", "--strategy", "sparse", "--ray", "--out", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and INSTALL_HINT in err, err
    assert not (tmp_path / "run").exists()  # nothing was written
    code = main(["eval", "--dataset", "generic", "--root", str(tree), "--labels", "happy,sad,angry", "--split",
                 "all", "--model", "unused", "--strategy", "sparse", "--ray-workers", "3"])
    assert code == 2 and "--ray-workers needs --ray" in capsys.readouterr().err


def test_sweep_on_ray_equals_single_process(tmp_path, setup, reference, tiny_dirs, tree, capsys):
    from msce.cli import main

    lo, hi = PIXELS["2.5"]
    grid = tmp_path / "grid.toml"
    grid.write_text(f"""
out = "runs"
n_boot = 0
[data]
dataset = "generic"
root = "{tree}"
labels = ["happy", "sad", "angry"]
split = "all"
[grid]
models = ["{tiny_dirs['2.5']}"]
strategies = ["msce"]
fps = [1]
[backend]
name = "transformers"
dtype = "float32"
device = "cpu"
min_pixels = {lo}
max_pixels = {hi}
[strategy_options.msce]
gap_frames = 2
params = {{max_new_tokens = 4}}
stage1_params = {{max_new_tokens = 6}}
""", encoding="utf-8")
    assert main(["sweep", str(grid), "--ray", "--ray-workers", "2", "--ray-task-videos", "2", "--no-progress"]) == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "report"]
    assert records(run) == records(reference["msce"])
    execution = json.loads((run / "config.json").read_text())["sessions"][-1]["execution"]
    assert (execution["mode"], execution["decode"]) == ("ray", "workers")  # a sweep keeps its model actors
    assert "1 run(s) made" in capsys.readouterr().out


def test_killed_decoding_task_with_model_actors(tmp_path, setup, reference):
    """``decode="workers"`` (the sweep's mode): a decoding task that dies is retried by Ray Data,
    the model actors it was calling stay up, and the rows are those of the single-process run."""
    ds, _, executor = setup
    marker = tmp_path / "fired"
    strategy = _ExitOnce(STRATEGIES["sparse"](), str(ds.samples[1].id), marker)
    workers = RayExecutor(executor.spec, RayOptions(workers=2, task_videos=2, cpus=0.5, decode="workers"))
    try:
        res = run_ray(ds, ds.samples, strategy, workers.spec, tmp_path / "ray", ray=workers, **KW)
    finally:
        workers.close()
    assert marker.exists() and res.complete
    assert records(tmp_path / "ray") == records(reference["sparse"])
