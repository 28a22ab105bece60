"""msce report / compare over run directories made with the fake strategy."""

from __future__ import annotations

import base64
import json
import re

import pytest

from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
from msce import evaluate, report
from msce.datasets import load_generic

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["anger", "happiness", "sadness", "contempt", "helplessness"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs over five MAFW classes: sparse at 1 and 5 fps, shuffled at 1 fps."""
    root = tmp_path_factory.mktemp("rep")
    make_generic_tree(root / "data", {name: 6 for name in CLASSES})
    ds = load_generic(root / "data", labels=CLASSES)
    made = {}
    for name, strat in {
        "sparse-1fps": FakeStrategy(name="sparse", fps=1.0, accuracy=0.5),
        "sparse-5fps": FakeStrategy(name="sparse", fps=5.0, accuracy=0.7, salt="5"),
        "shuffled-1fps": FakeStrategy(name="shuffled", fps=1.0, accuracy=0.45, salt="fs"),
    }.items():
        evaluate.run_eval(ds, ds.samples, strat, FakeBackend(), root / name, progress=False, n_boot=0)
        made[name] = root / name
    return root, made


def test_pairing_and_fps_groups(runs):
    _, made = runs
    loaded = [evaluate.load_run(p) for p in made.values()]
    pairs = report.pair_shuffled_runs(loaded)
    assert [(a.name, b.name) for a, b in pairs] == [("sparse-1fps", "shuffled-1fps")]
    groups = report.fps_groups(loaded)
    assert len(groups) == 1
    assert sorted(r.fps for r in next(iter(groups.values()))) == [1.0, 5.0]


def test_report_files_sections_and_images(runs, tmp_path):
    _, made = runs
    loaded = [evaluate.load_run(p) for p in made.values()]
    freq_csv = tmp_path / "ngram.csv"
    freq_csv.write_text("label,count\n" + "".join(f"{n},{1000 * (i + 1)}\n" for i, n in enumerate(CLASSES)))
    paths = report.build_report(loaded, tmp_path / "out", freq_csv=str(freq_csv), n_boot=50)
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    for section in ("Runs", "Per-class F1", "Confusion matrices", "Frame-shuffle sensitivity", "F1 vs FPS",
                    "Long tail: F1 vs lexical frequency", "Asymmetric confusion", "Comparison with the first run"):
        assert f"## {section}" in md
        assert f"<h2>{section}</h2>" in page
    assert "sparse-1fps vs shuffled-1fps" in md and "McNemar" in md
    assert "Pearson r" in md and "counts from ngram.csv" in md and "wordfreq (English)" in md
    assert "Peak at 5 fps" in md

    figs = sorted((tmp_path / "out" / "figures").glob("*.png"))
    # 3 confusion + 1 shuffle + 1 fps + 3 frequency figures (one panel per source)
    assert len(figs) == 3 + 1 + 1 + 3
    for f in figs:
        assert f.read_bytes().startswith(PNG_MAGIC)
        assert f"figures/{f.name}" in md
    # the HTML is self-contained: every image is an embedded PNG, no file references
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(srcs) == len(figs)
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "figures/" not in page


def test_report_single_run_notes_missing_analyses(runs, tmp_path):
    _, made = runs
    run = evaluate.load_run(made["sparse-1fps"])
    paths = report.build_report([run], tmp_path / "one", n_boot=0, head=["anger", "happiness"])
    md = paths["markdown"].read_text()
    assert "No normal / frame-shuffled pair" in md and "No group of runs" in md and "Only one run" in md
    assert "Head: anger, happiness. Tail: sadness, contempt, helplessness." in md


def test_compare_table_and_json(runs):
    _, made = runs
    loaded = [evaluate.load_run(made["sparse-1fps"]), evaluate.load_run(made["sparse-5fps"])]
    text, data = report.compare_table(loaded, n_boot=50)
    first, second = text.splitlines()[2:4]
    assert first.startswith("sparse-1fps") and "baseline" in first
    assert second.startswith("sparse-5fps") and re.search(r"[+-]\d\.\d{4}", second)
    assert data["baseline"] == "sparse-1fps" and data["deltas"][0]["n_common"] == 30
    json.dumps(data)
