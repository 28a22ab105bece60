"""Where the predictions go: the predicted-label distribution of a run against the true
class shares, and a base run beside its fine-tuned run (confusion matrices side by side).

A fine-tuned run is paired with its base run by the run configs: the fine-tuned run's
``extra.finetune_run`` names the fine-tuning directory, whose ``msce_finetune.json`` names
the base model (``model.base``); ``extra.base_model`` says it directly for classifier
runs. The base run is the run over the same dataset, test split and strategy whose
backend model is that base model (``extra.backend_options.model``, else
``backend.model_id``). Pairs can also be given explicitly (``--pair BASE:TUNED`` in the CLI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from msce.eval.report.figures import _figure, _png, abbrevs
from msce.errors import ConfigError

__all__ = ["predicted_distribution", "plot_predicted_distribution", "base_model_of", "run_model",
           "find_pairs", "plot_confusion_pair"]


def predicted_distribution(run: Any) -> dict:
    """Per class: how often it is predicted and its true share, as counts and fractions
    of the run's videos (``invalid``: answers that name no class)."""
    cm = np.asarray(run.report.confusion)
    n = int(cm.sum())
    if n == 0:
        raise ConfigError(f"run {run.name!r} has no predictions")
    predicted = cm[:, :-1].sum(axis=0)
    true = cm.sum(axis=1)
    return {"labels": list(run.labels), "n": n, "predicted": predicted.astype(int).tolist(),
            "true": true.astype(int).tolist(), "predicted_share": (predicted / n).tolist(),
            "true_share": (true / n).tolist(), "invalid": int(cm[:, -1].sum())}


def plot_predicted_distribution(run: Any, title: str | None = None) -> bytes:
    """Bars: share of the videos predicted as each class beside that class's true share."""
    d = predicted_distribution(run)
    k = len(d["labels"])
    x = np.arange(k)
    fig = _figure(1.5 + 0.55 * k, 3.0)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, d["true_share"], width=0.4, label="true share", color="#bbbbbb")
    ax.bar(x + 0.2, d["predicted_share"], width=0.4, label="predicted", color="#3b75af")
    ax.set_xticks(x, abbrevs(d["labels"]), rotation=45, ha="right")
    ax.set_ylabel("fraction of videos")
    ax.set_title(title or f"{run.name}: predicted labels (invalid {d['invalid']}/{d['n']})", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def run_model(run: Any) -> str | None:
    """The model a run evaluated: its backend's ``--model``, else the backend's model id."""
    opts = (run.config.get("extra") or {}).get("backend_options") or {}
    return opts.get("model") or (run.config.get("backend") or {}).get("model_id")


def base_model_of(run: Any) -> str | None:
    """The base model of a fine-tuned run (None for a run that is not fine-tuned)."""
    extra = run.config.get("extra") or {}
    if extra.get("base_model"):
        return str(extra["base_model"])
    ft = extra.get("finetune_run")
    if not ft:
        return None
    try:
        cfg = json.loads((Path(ft) / "msce_finetune.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return (cfg.get("model") or {}).get("base")


def _same_test(a: Any, b: Any) -> bool:
    sa, sb = a.config.get("split") or {}, b.config.get("split") or {}
    return (a.dataset == b.dataset and a.labels == b.labels and sa.get("test_sha256") == sb.get("test_sha256")
            and (a.strategy.get("plan") == b.strategy.get("plan")))


def find_pairs(runs: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(base run, fine-tuned run) for every fine-tuned run whose base run is among ``runs``."""
    pairs = []
    for tuned in runs:
        base_model = base_model_of(tuned)
        if base_model is None:
            continue
        want = str(Path(base_model).expanduser().resolve()) if Path(base_model).expanduser().exists() else base_model
        for base in runs:
            m = run_model(base)
            if base is tuned or m is None or base_model_of(base) is not None:
                continue
            have = str(Path(m).expanduser().resolve()) if Path(m).expanduser().exists() else m
            if have == want and _same_test(base, tuned):
                pairs.append((base, tuned))
                break
    return pairs


def plot_confusion_pair(base: Any, tuned: Any) -> bytes:
    """Row-normalized confusion matrices (with the invalid column) of a base run and its
    fine-tuned run, side by side on one colour scale."""
    from msce.eval.metrics import normalize_confusion

    if tuple(base.labels) != tuple(tuned.labels):
        raise ConfigError(f"runs {base.name!r} and {tuned.name!r} have different classes")
    k = len(base.labels)
    ab = abbrevs(base.labels)
    fig = _figure(2.0 + 1.1 * (k + 1), 1.2 + 0.5 * k)
    axes = fig.subplots(1, 2)
    im = None
    for ax, run, tag in zip(axes, (base, tuned), ("before", "after")):
        rep = run.report
        norm = normalize_confusion(np.asarray(rep.confusion), "true")
        im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(k + 1), ab + ["INV"], rotation=45, ha="right")
        ax.set_yticks(range(k), ab)
        ax.set_xlabel("predicted")
        ax.set_title(f"{tag}: {run.name}\nUAR {rep.uar:.3f}  WAR {rep.war:.3f}  F1 {rep.macro_f1:.3f}", fontsize=8)
        for i in range(k):
            for j in range(k + 1):
                v = norm[i, j]
                if v >= 0.005:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if v > 0.5 else "black")
    axes[0].set_ylabel("true")
    fig.colorbar(im, ax=list(axes), fraction=0.03)
    return _png(fig)
