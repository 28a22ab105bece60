"""Report pieces for fine-tuning: the predicted-label distribution of a run (checked against
a count of the prediction records) and the base/fine-tuned pair found from the run configs,
drawn as two confusion matrices side by side."""

from __future__ import annotations

from collections import Counter

import pytest

from msce.models.strategies import Dense
from msce.train._common import _split_info
from msce.train.classifier import evaluate_classifier, finetune_classifier
from msce.train.options import SamplingOptions, TrainOptions


@pytest.fixture(scope="module")
def runs(clf_data, tiny_videomae, tmp_path_factory):
    from msce.eval.runner import run_eval
    from msce.eval.runs import load_run
    from msce.models.backends import get_backend

    root = tmp_path_factory.mktemp("pairs")
    ds, split = clf_data["dataset"], clf_data["split"]
    backend = get_backend("classifier", model=str(tiny_videomae), device="cpu")
    run_eval(ds, split.test_samples(ds), Dense(None), backend, root / "base", progress=False, n_boot=0,
             split=_split_info(split), extra_config={"backend_options": {"model": str(tiny_videomae)}})
    res = finetune_classifier(ds, split, Dense(None), str(tiny_videomae), root / "ft", mode="head",
                              train=TrainOptions(max_steps=2, batch_size=3, grad_accum=1, save_every=0, lr=1e-2),
                              sampling=SamplingOptions(n_per_class=3), device="cpu", progress=False,
                              log=lambda _: None)
    evaluate_classifier(ds, split, Dense(None), res.adapter_dir, root / "tuned", backend_options={"device": "cpu"},
                        progress=False, n_boot=0, base_model=str(tiny_videomae))
    return load_run(root / "base", "base"), load_run(root / "tuned", "tuned")


def test_predicted_distribution(runs) -> None:
    from msce.eval.report.pairs import plot_predicted_distribution, predicted_distribution

    for run in runs:
        d = predicted_distribution(run)
        got = Counter(r["parsed"] for r in run.records)
        truth = Counter(r["label"] for r in run.records)
        assert d["predicted"] == [got.get(n, 0) for n in run.labels]
        assert d["true"] == [truth.get(n, 0) for n in run.labels]
        assert d["invalid"] == got.get(None, 0) and d["n"] == len(run.records) == 3
        assert sum(d["predicted"]) + d["invalid"] == d["n"]
        assert plot_predicted_distribution(run).startswith(b"\x89PNG")


def test_pair_from_configs(runs) -> None:
    from msce.eval.report.pairs import base_model_of, find_pairs, plot_confusion_pair

    base, tuned = runs
    assert base_model_of(base) is None and base_model_of(tuned) is not None
    pairs = find_pairs([tuned, base])
    assert [(a.name, b.name) for a, b in pairs] == [("base", "tuned")]
    assert plot_confusion_pair(base, tuned).startswith(b"\x89PNG")
