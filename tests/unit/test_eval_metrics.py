"""msce.eval.metrics against scikit-learn, with invalid (unparsed) predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _deps import require_module

sk = require_module("sklearn.metrics", "pip install 'msce[eval]'")

from msce.eval import metrics  # noqa: E402
from msce.errors import ConfigError  # noqa: E402
from msce.labels import MAFW  # noqa: E402

INVALID_TOKEN = "<unparsed>"  # what sklearn sees in place of None: a label outside the class list


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    n = int(rng.integers(1, 300))
    names = [f"c{i}" for i in range(k)]
    # skewed true distribution so some classes may be missing entirely
    probs = rng.dirichlet(np.full(k, 0.7))
    t = rng.choice(k, size=n, p=probs)
    p_inv = rng.uniform(0, 0.4)
    p_right = rng.uniform(0, 0.8)
    pred = []
    for ti in t:
        u = rng.random()
        if u < p_inv:
            pred.append(None)
        elif u < p_inv + p_right:
            pred.append(names[ti])
        else:
            pred.append(names[int(rng.integers(k))])
    return names, [names[i] for i in t], pred


def sk_pred(pred):
    return [INVALID_TOKEN if p is None else p for p in pred]


@pytest.mark.parametrize("seed", range(60))
def test_matches_sklearn(seed):
    names, y_true, y_pred = random_case(seed)
    rep = metrics.classification_report(y_true, y_pred, names)
    yp = sk_pred(y_pred)
    p, r, f, s = sk.precision_recall_fscore_support(y_true, yp, labels=names, zero_division=0)
    np.testing.assert_allclose(rep.precision, p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rep.recall, r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rep.f1, f, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rep.support, s)
    for avg in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, yp, labels=names, zero_division=0, average=avg)
        assert getattr(rep, f"{avg}_precision") == pytest.approx(p, abs=1e-12)
        assert getattr(rep, f"{avg}_recall") == pytest.approx(r, abs=1e-12)
        assert getattr(rep, f"{avg}_f1") == pytest.approx(f, abs=1e-12)
    assert rep.uar == pytest.approx(sk.recall_score(y_true, yp, labels=names, average="macro", zero_division=0), abs=1e-12)
    assert rep.war == pytest.approx(sk.accuracy_score(y_true, yp), abs=1e-12)
    assert rep.macro_f1 == pytest.approx(sk.f1_score(y_true, yp, labels=names, average="macro", zero_division=0), abs=1e-12)
    cm = sk.confusion_matrix(y_true, yp, labels=names)
    np.testing.assert_array_equal(rep.confusion[:, :-1], cm)
    n_inv = sum(p is None for p in y_pred)
    assert rep.n_invalid == n_inv == rep.confusion[:, -1].sum()
    assert rep.invalid_rate == pytest.approx(n_inv / len(y_true))
    assert rep.n == len(y_true) == rep.confusion.sum()


@pytest.mark.parametrize("seed", range(10))
def test_uar_equals_balanced_accuracy_when_every_class_occurs(seed):
    rng = np.random.default_rng(100 + seed)
    names = list(MAFW.names)
    t = np.tile(np.arange(len(names)), 5)
    pred = [None if rng.random() < 0.2 else names[int(rng.integers(len(names)))] for _ in t]
    y_true = [names[i] for i in t]
    rep = metrics.classification_report(y_true, pred, MAFW)
    # balanced test split: UAR == WAR (equal supports)
    assert rep.uar == pytest.approx(rep.war)
    with warnings.catch_warnings():  # sklearn notes that the invalid token is not a true class: expected here
        warnings.simplefilter("ignore", UserWarning)
        bacc = sk.balanced_accuracy_score(y_true, sk_pred(pred))
    assert rep.uar == pytest.approx(bacc, abs=1e-12)


def test_unknown_predictions_are_invalid_and_unknown_truth_is_an_error():
    rep = metrics.classification_report(["a", "b"], ["a", "zzz"], ["a", "b"])
    assert rep.n_invalid == 1 and rep.war == 0.5
    with pytest.raises(ConfigError, match="'q'"):
        metrics.classification_report(["q"], ["a"], ["a", "b"])
    with pytest.raises(ConfigError, match="lengths|items"):
        metrics.classification_report(["a"], [], ["a", "b"])


def test_degenerate_cases():
    rep = metrics.classification_report(["a", "a"], [None, None], ["a", "b"])
    assert rep.macro_f1 == 0 and rep.invalid_rate == 1.0 and rep.war == 0
    empty = metrics.classification_report([], [], ["a", "b"])
    assert empty.n == 0 and empty.macro_f1 == 0 and empty.invalid_rate == 0
    perfect = metrics.classification_report(list("abab"), list("abab"), ["a", "b"])
    assert perfect.macro_f1 == perfect.uar == perfect.war == 1.0


def test_report_roundtrip_and_normalization():
    names, y_true, y_pred = random_case(3)
    rep = metrics.classification_report(y_true, y_pred, names)
    back = metrics.ClassificationReport.from_dict(rep.to_dict())
    assert back.macro_f1 == rep.macro_f1 and np.array_equal(back.confusion, rep.confusion)
    norm = metrics.normalize_confusion(rep.confusion)
    rows = rep.confusion.sum(axis=1) > 0
    np.testing.assert_allclose(norm[rows].sum(axis=1), 1.0)


def test_bootstrap_matches_a_naive_loop():
    names, y_true, y_pred = random_case(11)
    n_boot, seed = 100, 42
    ci = metrics.bootstrap_ci(y_true, y_pred, names, ("macro_f1", "war", "weighted_f1"), n_boot=n_boot, seed=seed, chunk=32)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    ref = {"macro_f1": [], "war": [], "weighted_f1": []}
    for row in idx:
        t = [y_true[i] for i in row]
        p = sk_pred([y_pred[i] for i in row])
        ref["macro_f1"].append(sk.f1_score(t, p, labels=names, average="macro", zero_division=0))
        ref["weighted_f1"].append(sk.f1_score(t, p, labels=names, average="weighted", zero_division=0))
        ref["war"].append(sk.accuracy_score(t, p))
    for m, vals in ref.items():
        assert ci[m].low == pytest.approx(np.quantile(vals, 0.025), abs=1e-12)
        assert ci[m].high == pytest.approx(np.quantile(vals, 0.975), abs=1e-12)
    again = metrics.bootstrap_ci(y_true, y_pred, names, ("macro_f1",), n_boot=n_boot, seed=seed)
    assert again["macro_f1"] == ci["macro_f1"]
    assert ci["macro_f1"].low <= ci["macro_f1"].estimate <= ci["macro_f1"].high
    with pytest.raises(ConfigError):
        metrics.bootstrap_ci(y_true, y_pred, names, ("auc",))


def test_predictions_container():
    p = metrics.Predictions.from_records(
        [{"id": "1", "label": "a", "parsed": "a"}, {"id": "2", "label": "b", "parsed": None}], ["a", "b"], name="r"
    )
    assert p.correct().tolist() == [True, False]
    q = metrics.Predictions(("2", "3"), ("b", "a"), ("b", "a"), ("a", "b"), name="q")
    a, b = p.align(q)
    assert a.ids == b.ids == ("2",)
    with pytest.raises(ConfigError, match="duplicate"):
        metrics.Predictions(("1", "1"), ("a", "a"), ("a", "a"), ("a", "b"))
