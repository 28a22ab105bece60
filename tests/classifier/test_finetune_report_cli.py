"""End to end from the command line (paper Sec. 4.1, Fig. 3, Fig. S3): a tiny VideoMAE is
fine-tuned class-balanced on a balanced toy dataset (`msce finetune --backend classifier`,
which also evaluates the fine-tuned model), the base model is evaluated with `msce eval`,
and `msce report` on both runs shows both predicted-label distributions, the two confusion
matrices side by side and F1 vs training count, in Markdown and in the HTML."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from msce import cli

COMMON = ["--dataset", "generic", "--n-per-class", "1", "--strategy", "dense", "--no-progress", "--no-cache",
          "--n-boot", "0"]


@pytest.fixture(scope="module")
def run_dirs(clf_data, tiny_videomae, tmp_path_factory):
    root = tmp_path_factory.mktemp("ftreport")
    ft = root / "ft"
    argv = ["finetune", "--backend", "classifier", "--model", str(tiny_videomae), "--mode", "head",
            "--root", str(clf_data["csv"]), *COMMON, "--max-steps", "2", "--batch-size", "3", "--grad-accum", "1",
            "--balanced", "3", "--device", "cpu", "--out", str(ft)]
    assert cli.main(argv) == 0
    base = root / "base"
    argv = ["eval", "--backend", "classifier", "--model", str(tiny_videomae), "--root", str(clf_data["csv"]),
            *COMMON, "--out", str(base), "--backend-opt", "device=cpu"]
    assert cli.main(argv) == 0
    return {"root": root, "base": base, "tuned": ft / "eval", "ft": ft}


def _section(md: str, title: str) -> str:
    """The text of the level-1 section ``## title`` (the report's own h1 is ``#``)."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert m, f"no section {title!r} in the report"
    return m.group(1)


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| class"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _report(argv, capsys):
    assert cli.main(argv) == 0, capsys.readouterr()
    capsys.readouterr()


def test_report_base_and_finetuned(run_dirs, capsys) -> None:
    base, tuned = run_dirs["base"], run_dirs["tuned"]
    out = run_dirs["root"] / "report"
    _report(["report", str(base), str(tuned), "--out", str(out), "--n-boot", "0"], capsys)
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()

    # both predicted-label distributions: tables and bar charts
    dist = _section(md, "Predicted-label distribution")
    for name, path in (("base", base), ("eval", tuned)):
        sub = re.search(rf"^### {name}\n(.*?)(?=^### |\Z)", dist, re.S | re.M)
        assert sub, name
        assert f"![Predicted-label distribution: {name}](figures/predicted_" in sub.group(1)
        recs = [json.loads(line) for line in (path / "predictions.jsonl").read_text().splitlines()]
        got, truth = Counter(r["parsed"] for r in recs), Counter(r["label"] for r in recs)
        rows = _table_rows(sub.group(1))
        for label in ("angry", "happy", "sad"):
            assert rows[label][0] == str(truth[label])
            assert rows[label][2] == str(got.get(label, 0)), (name, label, rows)
            assert float(rows[label][3]) == pytest.approx(got.get(label, 0) / len(recs), abs=1e-4)
        assert rows["invalid"][2] == str(got.get(None, 0))
        assert rows["all"][0] == str(len(recs)) == "3"

    # the pair is found from the run configs: both confusion matrices side by side, F1 vs count
    ft = _section(md, "Class-balanced fine-tuning: before / after (Fig. 3)")
    assert "### base → eval" in ft
    assert "![Confusion matrices before / after fine-tuning: base / eval](figures/finetune_pair_0.png)" in ft
    assert "(figures/finetune_counts_0.png)" in ft
    assert "class-balanced sampler): angry 3, happy 3, sad 3." in ft
    assert "| base | before |" in ft and "| eval | after |" in ft
    s3 = _section(md, "Per-class F1 vs training class count (Fig. S3)")
    assert "figures/train_counts_0.png" in s3 and "| base |" in s3 and "| eval |" in s3

    for fig in ("predicted_0.png", "predicted_1.png", "finetune_pair_0.png", "finetune_counts_0.png",
                "train_counts_0.png"):
        assert (out / "figures" / fig).read_bytes().startswith(b"\x89PNG")
    # the HTML embeds the PNGs (data URLs), each with its caption
    imgs = dict(re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html))
    for alt in ("Predicted-label distribution: base", "Predicted-label distribution: eval",
                "Confusion matrices before / after fine-tuning: base / eval",
                "Per-class F1 against training class count, before / after fine-tuning: base / eval"):
        assert len(imgs[alt]) > 1000, alt
    assert "<h2>Predicted-label distribution</h2>" in html
    assert "<h2>Class-balanced fine-tuning: before / after (Fig. 3)</h2>" in html

    # --finetune-pair names the same pair explicitly (once, not twice); --pair stays the FS pairing
    out2 = run_dirs["root"] / "report2"
    _report(["report", str(tuned), str(base), "--out", str(out2), "--n-boot", "0",
             "--finetune-pair", "base", str(tuned)], capsys)
    ft2 = _section((out2 / "report.md").read_text(), "Class-balanced fine-tuning: before / after (Fig. 3)")
    assert ft2.count("### ") == 1 and "### base → eval" in ft2


def test_report_finetune_pair_errors(run_dirs, capsys) -> None:
    base = run_dirs["base"]
    for pair, msg in ((["base", "base"], "cannot be its own base run"), (["base", "nosuchrun"], "'nosuchrun'")):
        rc = cli.main(["report", str(base), "--out", str(run_dirs["root"] / "bad"), "--n-boot", "0",
                       "--finetune-pair", *pair])
        assert rc != 0 and msg in capsys.readouterr().err
    assert not (run_dirs["root"] / "bad" / "report.md").exists()
