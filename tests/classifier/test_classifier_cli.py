"""`msce finetune --backend classifier` and `msce eval --backend classifier` from the command
line: the fine-tuned model lands in OUT/model, its evaluation in OUT/eval, and the eval
command reads the same model directory back with the same predictions."""

from __future__ import annotations

import json

from msce import cli


def _preds(path, labels=None):
    """id -> (parsed label, probabilities of the three dataset classes)."""
    from msce.models.backends.classifier import read_probabilities

    out = {}
    for r in map(json.loads, path.read_text().splitlines()):
        p = read_probabilities(r["raw_answer"], labels)
        out[r["id"]] = (r["parsed"], [p[k] for k in ("angry", "happy", "sad")])
    return out


def test_cli_finetune_then_eval(clf_data, tiny_videomae, tmp_path, capsys) -> None:
    out = tmp_path / "ft"
    argv = ["finetune", "--backend", "classifier", "--model", str(tiny_videomae), "--mode", "head", "--dataset", "generic",
            "--root", str(clf_data["csv"]), "--n-per-class", "1", "--strategy", "dense", "--max-steps", "2",
            "--batch-size", "3", "--grad-accum", "1", "--balanced", "3", "--device", "cpu", "--no-progress",
            "--no-cache", "--n-boot", "0", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and (out / "model" / "config.json").is_file()
    cfg = json.loads((out / "msce_finetune.json").read_text())
    assert cfg["trainable"]["mode"] == "head" and cfg["head"]["head"] == "remapped"
    run = tmp_path / "ev"
    argv = ["eval", "--backend", "classifier", "--model", str(out / "model"), "--dataset", "generic",
            "--root", str(clf_data["csv"]), "--n-per-class", "1", "--strategy", "dense", "--no-progress",
            "--no-cache", "--n-boot", "0", "--out", str(run), "--backend-opt", "device=cpu"]
    assert cli.main(argv) == 0, capsys.readouterr()
    # `msce eval` maps the model's classes into DFEW (the smallest set holding them all);
    # the fine-tuning's own pass uses the dataset's classes: same predictions either way
    assert _preds(run / "predictions.jsonl") == _preds(out / "eval" / "predictions.jsonl",
                                                       clf_data["dataset"].label_set)
