"""Where the predictions go: the predicted-label distribution of a run against the true
class shares, and a base run beside its fine-tuned run (confusion matrices side by side).

A fine-tuned run is paired with its base run by the run configs: the fine-tuned run's
``extra.finetune_run`` names the fine-tuning directory, whose ``msce_finetune.json`` names
the base model (``model.base``); ``extra.base_model`` says it directly for classifier
runs. The base run is the run over the same dataset, test split and strategy whose
backend model is that base model (``extra.backend_options.model``, else
``backend.model_id``). Pairs can also be given explicitly (``--finetune-pair BASE TUNED`` in
the CLI; ``--pair`` names normal/frame-shuffled pairs, another analysis).

:func:`distribution_section` and :func:`finetune_section` write these views into a report
(:func:`msce.eval.report.build_report`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from msce.eval.report.document import Document, fmt_p
from msce.eval.report.figures import _figure, _png, abbrevs, plot_training_counts
from msce.errors import ConfigError

__all__ = ["predicted_distribution", "plot_predicted_distribution", "base_model_of", "run_model",
           "find_pairs", "finetune_pairs", "plot_confusion_pair", "finetune_config", "distribution_section",
           "finetune_section"]


def predicted_distribution(run: Any, report: Any = None) -> dict:
    """Per class: how often it is predicted and its true share, as counts and fractions
    of the run's videos (``invalid``: answers that name no class). ``report``: the run's
    :class:`ClassificationReport` when already computed."""
    cm = np.asarray((report if report is not None else run.report).confusion)
    n = int(cm.sum())
    if n == 0:
        raise ConfigError(f"run {run.name!r} has no predictions")
    predicted = cm[:, :-1].sum(axis=0)
    true = cm.sum(axis=1)
    return {"labels": list(run.labels), "n": n, "predicted": predicted.astype(int).tolist(),
            "true": true.astype(int).tolist(), "predicted_share": (predicted / n).tolist(),
            "true_share": (true / n).tolist(), "invalid": int(cm[:, -1].sum())}


def plot_predicted_distribution(run: Any, title: str | None = None, report: Any = None) -> bytes:
    """Bars: share of the videos predicted as each class beside that class's true share."""
    d = predicted_distribution(run, report)
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


def finetune_config(run: Any) -> dict | None:
    """``msce_finetune.json`` of the fine-tuning run a run's config names, or None."""
    ft = (run.config.get("extra") or {}).get("finetune_run")
    if not ft:
        return None
    try:
        cfg = json.loads((Path(ft) / "msce_finetune.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def base_model_of(run: Any) -> str | None:
    """The base model of a fine-tuned run (None for a run that is not fine-tuned)."""
    extra = run.config.get("extra") or {}
    if extra.get("base_model"):
        return str(extra["base_model"])
    cfg = finetune_config(run)
    return None if cfg is None else (cfg.get("model") or {}).get("base")


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


def finetune_pairs(runs: Sequence[Any], explicit: Sequence[tuple[str, str]] = ()) -> list[tuple[Any, Any]]:
    """(base run, fine-tuned run) pairs: the ``explicit`` (base name, fine-tuned name) pairs
    first, then those :func:`find_pairs` detects from the run configs (each fine-tuned run
    once)."""
    by_name = {r.name: r for r in runs}
    pairs: list[tuple[Any, Any]] = []
    for a, b in explicit:
        if a not in by_name or b not in by_name:
            raise ConfigError(f"--finetune-pair {a} {b}: run names must be among {sorted(by_name)}")
        if a == b:
            raise ConfigError(f"--finetune-pair {a} {b}: a run cannot be its own base run")
        if tuple(by_name[a].labels) != tuple(by_name[b].labels):
            raise ConfigError(f"--finetune-pair {a} {b}: the runs have different classes "
                              f"({list(by_name[a].labels)} vs {list(by_name[b].labels)})")
        pairs.append((by_name[a], by_name[b]))
    tuned_named = {b.name for _, b in pairs}
    pairs += [(a, b) for a, b in find_pairs(runs) if b.name not in tuned_named]
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


def distribution_section(doc: Document, runs: Sequence[Any], reports: dict, first_figure: int = 0) -> None:
    """Report section: every run's predicted-label distribution (table and bar chart)."""
    doc.h(1, "Predicted-label distribution")
    doc.p("How often each class is predicted, beside how often it is the true class (counts and fractions "
          "of the run's videos; 'invalid': answers that name no class). A model biased towards head classes "
          "predicts them more often than they occur (paper Fig. 3).")
    for i, r in enumerate(runs):
        rep = reports[r.name]
        d = predicted_distribution(r, rep)
        doc.h(2, r.name)
        doc.table(["class", "true", "true share", "predicted", "predicted share"],
                  [[lab, t, ts, p, ps] for lab, t, ts, p, ps in
                   zip(d["labels"], d["true"], d["true_share"], d["predicted"], d["predicted_share"])]
                  + [["invalid", "–", "–", d["invalid"], d["invalid"] / d["n"]], ["all", d["n"], 1.0, d["n"], 1.0]])
        doc.image(f"predicted_{first_figure + i}.png", plot_predicted_distribution(r, report=rep),
                  f"Predicted-label distribution: {r.name}")


def finetune_section(doc: Document, pairs: Sequence[tuple[Any, Any]], reports: dict,
                     train_counts: dict[str, tuple[dict[str, int], str]]) -> None:
    """Report section: for each (base, fine-tuned) pair the metrics and per-class F1 before and
    after, both confusion matrices side by side (paper Fig. 3) and per-class F1 of both
    against the training class counts (the Fig. S3 view)."""
    from msce.eval.analysis import frequency_correlation

    doc.h(1, "Class-balanced fine-tuning: before / after (Fig. 3)")
    if not pairs:
        doc.p("No base / fine-tuned pair of runs among the inputs (a fine-tuned run's config names its base "
              "model; use --finetune-pair BASE FINETUNED to name one).")
        return
    for j, (base, tuned) in enumerate(pairs):
        rb, rt = reports[base.name], reports[tuned.name]
        doc.h(2, f"{base.name} → {tuned.name}")
        doc.table(["run", "role", "videos", "macro P", "macro R", "macro F1", "UAR", "WAR", "invalid"],
                  [[r.name, role, rep.n, rep.macro_precision, rep.macro_recall, rep.macro_f1, rep.uar, rep.war,
                    rep.invalid_rate] for r, role, rep in ((base, "before", rb), (tuned, "after", rt))])
        db, dt = predicted_distribution(base, rb), predicted_distribution(tuned, rt)
        doc.table(["class", "F1 before", "F1 after", "Δ F1", "predicted before", "predicted after", "true"],
                  [[lab, float(rb.f1[i]), float(rt.f1[i]), float(rt.f1[i] - rb.f1[i]), db["predicted"][i],
                    dt["predicted"][i], dt["true"][i]] for i, lab in enumerate(base.labels)])
        doc.image(f"finetune_pair_{j}.png", plot_confusion_pair(base, tuned),
                  f"Confusion matrices before / after fine-tuning: {base.name} / {tuned.name}")
        cfg = finetune_config(tuned) or {}
        hist = (cfg.get("sampler") or {}).get("histogram")
        if isinstance(hist, dict) and hist:
            doc.p("Fine-tuning clips per class per epoch (class-balanced sampler): "
                  + ", ".join(f"{lab} {hist.get(lab, 0)}" for lab in tuned.labels) + ".")
        known = train_counts.get(tuned.name) or train_counts.get(base.name)
        if known is None:
            doc.p("Training class counts unknown for this pair: no F1 vs training count view.")
            continue
        counts, note = known
        series, rows = [], []
        for r, rep in ((base, rb), (tuned, rt)):
            f1 = dict(zip(rep.labels, rep.f1.tolist()))
            c = frequency_correlation(f1, counts)
            series.append((r.name, f1, c))
            rows.append([r.name, c.r, fmt_p(c.p), c.rho, fmt_p(c.rho_p), c.n])
        doc.table(["run", "Pearson r (F1 vs training count)", "p (two-tailed)", "Spearman ρ", "p", "classes"], rows)
        doc.image(f"finetune_counts_{j}.png",
                  plot_training_counts(counts, series, f"before / after fine-tuning; training clips ({note})"),
                  f"Per-class F1 against training class count, before / after fine-tuning: "
                  f"{base.name} / {tuned.name}")
