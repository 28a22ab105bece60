"""`msce demo` (the README's main job) runs end to end offline."""

from __future__ import annotations

import json

import msce
from msce.cli import main


def test_demo_runs_offline(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--clips", "4", "--vlm-clips", "1"]) == 0
    report = (out / "demo_report.html").read_text()
    assert "tiny random-weight model" in report and "micro-expression" in report
    assert (out / "micro_expressions.png").stat().st_size > 0
    runs = json.loads((out / "demo_runs.json").read_text())
    assert [r["strategy"] for r in runs] == ["sparse 1 FPS", "MSCE (uniform gaps)", "MSCE (motion-aware gaps)"]
    msce_run = runs[1]["result"]
    clip = next((out / "synthetic").glob(runs[1]["clip"]))
    keys = msce.plan.uniform(1.0).resolve(msce.VideoReader(clip).metadata)
    assert msce_run["model_calls"] <= 2 and len(msce_run["stage1"]) == len(keys) - 1  # one text per gap
    # a rerun answers from the response cache: no model calls
    assert main(["demo", "--out", str(out), "--clips", "4", "--vlm-clips", "1"]) == 0
    again = json.loads((out / "demo_runs.json").read_text())
    assert all(r["result"]["model_calls"] == 0 for r in again)
