"""Reports that explain themselves, from the command line: the comparison baseline is the
user's (--baseline, a name, path or index) or the sparse run, --pair takes run directories,
a tiny random-weight model gets a banner, and an undefined correlation (r = nan) is explained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend_fakes import FakeChatServer
from test_cli_day_one import _clip, eval_args, msce


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three runs over two clips with a server whose model never names a class (every F1 is 0):
    dense 1 FPS (given first), sparse 1 FPS and shuffled, made with a model 'folder' that
    carries msce tiny-model's marker."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    root = tmp_path_factory.mktemp("report_runs")
    data = root / "data"
    for label, pattern in (("happy", "testsrc2"), ("sad", "smptebars")):
        (data / label).mkdir(parents=True)
        _clip(data / label / f"{label}_0.mp4", 2.0, 5, pattern)
    model = root / "tiny"
    model.mkdir()
    (model / "msce_tiny.json").write_text('{"version": "2.5", "seed": 0}\n')
    out = {}
    with FakeChatServer(model_name=str(model), answer="no idea") as server:
        for name, strategy in (("a_dense", ["--strategy", "dense", "--fps", "1"]),
                               ("m_sparse", ["--strategy", "sparse", "--fps", "1"]),
                               ("z_shuffled", ["--strategy", "shuffled", "--fps", "1"])):
            res = msce(*eval_args(data, "--model", str(model), "--base-url", server.base_url, *strategy,
                                  "--out", str(root / name)), cwd=root)
            assert res.returncode == 0, res.stderr
            out[name] = root / name
    first = json.loads((out["a_dense"] / "config.json").read_text())
    assert first["extra"]["tiny_model"] is True
    return out


def test_compare_measures_against_the_sparse_run_or_the_users(runs, tmp_path) -> None:
    order = [str(runs[n]) for n in ("a_dense", "z_shuffled", "m_sparse")]
    res = msce("compare", *order, "--json", "--n-boot", "10", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["baseline"] == "m_sparse"
    assert "tiny random-weight model" in res.stderr
    res = msce("compare", *order, "--json", "--n-boot", "10", "--baseline", str(runs["z_shuffled"]), cwd=tmp_path)
    assert res.returncode == 0 and json.loads(res.stdout)["baseline"] == "z_shuffled"
    res = msce("compare", *order, "--baseline", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "--baseline 'nope'" in res.stderr and "Traceback" not in res.stderr


def test_report_banner_baseline_pairs_by_path_and_nan_note(runs, tmp_path) -> None:
    freq = tmp_path / "freq.csv"
    freq.write_text("label,count\nhappy,100\nsad,10\n")
    order = [str(runs[n]) for n in ("a_dense", "z_shuffled", "m_sparse")]
    res = msce("report", *order, "--out", str(tmp_path / "rep"), "--n-boot", "10", "--freq-csv", str(freq),
               "--pair", f"{runs['m_sparse']}:{runs['z_shuffled']}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "tiny random-weight model" in text.split("# Answer parsing")[0]
    assert "# Comparison with m_sparse" in text and "Baseline: m_sparse (the sparse run)" in text
    assert "r = nan: the correlation is undefined" in text
    res = msce("report", *order, "--out", str(tmp_path / "rep2"), "--n-boot", "10", "--baseline", "a_dense",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Baseline: a_dense (chosen with --baseline)" in (tmp_path / "rep2" / "report.md").read_text()
