"""`msce demo` (the README's main job) runs end to end offline."""

from __future__ import annotations

import hashlib
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
    assert all(r["result"]["model_calls"] >= 1 and r["result"]["model_requests"] >= 1 for r in runs)
    clips = _digests(out / "synthetic")
    # A rerun into the same folder regenerates byte-identical clips (in this same process,
    # after everything the first run allocated) and answers every request from the
    # response cache: no model calls.
    assert main(["demo", "--out", str(out), "--clips", "4", "--vlm-clips", "1"]) == 0
    assert _digests(out / "synthetic") == clips
    again = json.loads((out / "demo_runs.json").read_text())
    assert [(r["clip"], r["strategy"]) for r in again] == [(r["clip"], r["strategy"]) for r in runs]
    for first, second in zip(runs, again):
        a, b = first["result"], second["result"]
        assert (b["model_calls"], b["model_requests"]) == (0, 0), second["strategy"]
        assert b["cache_hits"] == a["cache_hits"] + a["model_requests"], second["strategy"]
        assert (b["raw_answer"], b["stage1"], b["frame_indices"]) == (a["raw_answer"], a["stage1"], a["frame_indices"])


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
