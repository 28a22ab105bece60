"""msce report / compare over run directories made with the fake strategy."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from _deps import require_module
from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
from msce.eval import runner as evaluate
from msce.eval import report
from msce.eval.datasets import load_generic
from msce.labels import DFEW, MAFW

require_module("matplotlib", "pip install 'msce[eval]'")

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
                    "Long tail: F1 vs lexical frequency", "Asymmetric confusion", "Comparison with sparse-1fps"):
        assert f"## {section}" in md
        assert f"<h2>{section}</h2>" in page
    assert "sparse-1fps vs shuffled-1fps" in md and "McNemar" in md
    assert "Pearson r" in md and "counts from ngram.csv" in md and "wordfreq (English)" in md
    assert "Peak at 5 fps" in md

    figs = sorted((tmp_path / "out" / "figures").glob("*.png"))
    # 3 confusion + 3 predicted-label distributions + 1 shuffle + 1 fps + 3 frequency figures
    # (one panel per source)
    assert len(figs) == 3 + 3 + 1 + 1 + 3
    assert len([f for f in figs if f.name.startswith("predicted_")]) == 3
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


# --------------------------------------------------------------------------- parse reasons, head/tail, Fig. S3

MAFW_TRAIN = {  # clips per class in the fixture tree (two of each go to the balanced test split)
    "anger": 12, "disgust": 5, "fear": 6, "happiness": 14, "neutral": 13, "sadness": 11, "surprise": 8,
    "contempt": 3, "anxiety": 4, "helplessness": 3, "disappointment": 4,
}
REASONS = ("exact", "unique", "unique", "ambiguous", "hedged-new-reason", "exact", "negated", "")


class ReasonStrategy:
    """Answers each test video with a fixed cycle of parse reasons (no parser involved)."""

    name = "reasons"

    def __init__(self):
        self.calls = 0

    def config(self) -> dict:
        return {"name": self.name, "fps": 1.0}

    def run(self, video, labels, backend, cache=None) -> dict:
        reason = REASONS[self.calls % len(REASONS)]
        true = Path(video).parent.name
        self.calls += 1
        if reason in ("exact", "unique"):
            parsed = true if self.calls % 3 else labels.names[(labels.names.index(true) + 1) % len(labels)]
        elif reason == "":
            parsed = "sadness" if "sadness" in labels.names else labels.names[0]
        else:
            parsed = None
        rec = {"raw_answer": f"answer {self.calls}", "parsed": parsed, "frame_indices": [0],
               "timestamps": [0.0], "prompts": ["p"]}
        if reason:
            rec["parse_reason"] = reason
        return rec


def _eval_with_split(root, labels, per_class, name, *, record_file=True, n_per_class=2):
    from msce.eval.splits import balanced_split

    make_generic_tree(root / f"data-{name}", per_class)
    ds = load_generic(root / f"data-{name}", labels=labels)
    split = balanced_split(ds, n_per_class=n_per_class, seed=0)
    out = root / name
    info = {"name": split.name, "kind": split.kind, "seed": split.seed, "n_per_class": split.n_per_class}
    if record_file:
        split.save(out / "split.json")
        info["file"] = "split.json"
    strat = ReasonStrategy()
    evaluate.run_eval(ds, split.test_samples(ds), strat, FakeBackend(), out, split=info, progress=False, n_boot=0)
    return out, split, strat


@pytest.fixture(scope="module")
def mafw_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mafw")
    return _eval_with_split(root, "mafw", MAFW_TRAIN, "mafw-split")


def _md_table_row(md: str, first_cell: str, header_start: str) -> list[str]:
    """Cells of the row starting with ``first_cell`` in the first table whose header starts so."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] == first_cell:
            return dict(zip(header, cells))
    raise AssertionError(f"no row {first_cell!r} under {header_start!r}")


def test_report_counts_parse_reasons_as_recorded(mafw_run, tmp_path):
    from collections import Counter

    out, _, _ = mafw_run
    run = evaluate.load_run(out)
    records = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines() if ln.strip()]
    expected = Counter(r.get("parse_reason") or "not recorded" for r in records)
    assert expected["hedged-new-reason"] > 0 and expected["not recorded"] > 0  # reasons the report cannot know
    assert report.parse_reason_counts(run) == dict(expected)
    paths = report.build_report([run], tmp_path / "rep", n_boot=0)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert "## Answer parsing" in md and "<h2>Answer parsing</h2>" in page
    row = _md_table_row(md, run.name, "| run | ambiguous |")
    for reason, n in expected.items():
        assert row[reason] == str(n)
        assert f"<th>{reason}</th>" in page
    assert row["videos"] == str(len(records))


def test_report_training_counts_head_tail_and_fig_s3(mafw_run, tmp_path):
    from collections import Counter

    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score

    out, _, _ = mafw_run
    run = evaluate.load_run(out)
    saved = json.loads((out / "split.json").read_text())
    train = Counter(lab for _, lab in saved["train"])
    names = list(MAFW.names)
    assert report.run_training_counts(run)[0] == {n: train[n] for n in names}
    assert {n: train[n] for n in names} == {n: c - 2 for n, c in MAFW_TRAIN.items()}

    paths = report.build_report([run], tmp_path / "rep", n_boot=0)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    # Fig. S3: Pearson r of per-class F1 (scikit-learn) against training counts (scipy)
    records = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines() if ln.strip()]
    f1 = f1_score([r["label"] for r in records], [r["parsed"] or "<invalid>" for r in records], labels=names,
                  average=None, zero_division=0)
    ref = pearsonr([train[n] for n in names], f1)
    assert "## Per-class F1 vs training class count (Fig. S3)" in md
    row = _md_table_row(md, run.name, "| run | training counts |")
    assert row["Pearson r"] == f"{ref.statistic:.4f}" and row["training clips"] == str(sum(train.values()))
    assert (tmp_path / "rep" / "figures" / "train_counts_0.png").read_bytes().startswith(PNG_MAGIC)
    assert "figures/train_counts_0.png" in md
    assert 'alt="Per-class F1 against training class count' in page
    # head = most frequent classes holding >= half of the training clips (hand computation)
    ranked = sorted(names, key=lambda n: -train[n])  # stable: ties in label order
    cum = np.cumsum([train[n] for n in ranked])
    n_head = int(np.argmax(2 * cum >= cum[-1])) + 1
    head, tail = ranked[:n_head], ranked[n_head:]
    assert head == ["happiness", "neutral", "anger"]  # 12 + 11 + 10 = 33 of 61
    assert f"Head: {', '.join(head)}. Tail: {', '.join(tail)}. Source: training class counts" in md
    assert "Source: training class counts" in page


def test_report_head_sources_paper_user_and_none(mafw_run, tmp_path):
    out, _, _ = mafw_run
    run = evaluate.load_run(out)
    no_split = evaluate.load_run(out)
    no_split.name = "mafw-no-split"
    no_split.config = {**run.config, "split": None}
    md = report.build_report([no_split], tmp_path / "paper", n_boot=0)["markdown"].read_text()
    assert "Head: anger, happiness, neutral, sadness, surprise. Tail: disgust, fear, contempt, anxiety, " \
           "helplessness, disappointment. Source: paper Sec. 3.3" in md
    assert "training class counts are not known" in md
    md = report.build_report([run], tmp_path / "user", n_boot=0, head=["fear", "anxiety"])["markdown"].read_text()
    assert "Head: fear, anxiety." in md and "Source: user" in md

    root = tmp_path / "dfew"
    dfew_out, _, _ = _eval_with_split(root, "dfew", {n: 4 for n in DFEW.names}, "dfew-run")
    dfew = evaluate.load_run(dfew_out)
    dfew.config = {**dfew.config, "split": None}
    md = report.build_report([dfew], tmp_path / "dfew-rep", n_boot=0)["markdown"].read_text()
    assert "No head/tail split" in md and "only for MAFW" in md


def test_training_counts_from_balanced_split_without_file(tmp_path):
    from collections import Counter

    out, split, _ = _eval_with_split(tmp_path, "mafw", MAFW_TRAIN, "nofile", record_file=False, n_per_class=3)
    run = evaluate.load_run(out)
    counts, note = report.run_training_counts(run)
    ref = Counter(split.labels[i] for i in split.train)
    assert counts == {n: ref[n] for n in MAFW.names} and "minus 3 test clips" in note
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("label,count\n" + "".join(f"{n},{i + 1}\n" for i, n in enumerate(MAFW.names)))
    md = report.build_report([run], tmp_path / "rep", n_boot=0, train_counts_csv=str(csv_path))["markdown"].read_text()
    assert "counts from train.csv" in md
    # 66 clips: disappointment 11 + helplessness 10 + anxiety 9 + contempt 8 = 38 >= 33
    assert "Head: disappointment, helplessness, anxiety, contempt." in md
