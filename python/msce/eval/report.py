"""Reports over run directories: ``msce report`` (Markdown + self-contained HTML) and
``msce compare`` (a table on stdout, with each run's mean visual tokens per video beside
its paired deltas).

A report holds, for the runs given:

* a summary table (macro precision/recall/F1 with bootstrap intervals, UAR, WAR,
  invalid rate), the answer-parse reasons of every run (whatever ``parse_reason``
  strings the records hold) and per-class F1;
* row-normalized confusion matrices (with the invalid column), one per run;
* frame-shuffle sensitivity for every normal/FS pair of runs (per-class F1 bars,
  paired McNemar tests, bootstrap interval of the macro-F1 change), and for every
  shuffled run the fraction of clips whose frame order changed and the mean normalized
  Kendall distance of the orders sent;
* F1 against FPS for runs that differ only in sampling rate;
* per-class F1 against lexical frequency (wordfreq English/Chinese, or the counts of
  ``--freq-csv``) with Pearson r, two-tailed p and Spearman rho;
* per-class F1 against the training split's class counts (the paper's Fig. S3) with
  Pearson r and p, for runs whose training class counts are known;
* head->tail vs tail->head confusion flows with an exact binomial test, with the head/tail
  split and its source (training class counts, paper Sec. 3.3, or user);
* paired comparisons against the first run.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend switch) and written as PNG files under ``figures/`` for the Markdown and as
base64 data URLs inside the HTML, so ``report.html`` opens anywhere on its own.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from msce.errors import ConfigError, DatasetError
from msce.eval.runner import Run, load_run
from msce.labels import LABEL_SETS

__all__ = ["build_report", "compare_table", "add_cli", "pair_shuffled_runs", "fps_groups", "run_training_counts",
           "parse_reason_counts", "shuffle_order_stats", "visual_tokens_mean"]


# --------------------------------------------------------------------------- document model


@dataclass
class _Doc:
    """A tiny document that renders to Markdown and HTML."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", ([str(h) for h in header], [[_cell(c) for c in r] for r in rows])))

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.figures.append((name, png))
        self.blocks.append(("img", (name, alt)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, v in self.blocks:
            if kind == "h":
                out += ["#" * (v[0] + 1) + " " + v[1], ""]
            elif kind == "p":
                out += [v, ""]
            elif kind == "table":
                header, rows = v
                out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{v[1]}](figures/{v[0]})", ""]
        return "\n".join(out)

    def html(self) -> str:
        figs = dict(self.figures)
        body = []
        for kind, v in self.blocks:
            if kind == "h":
                lvl = min(v[0] + 1, 6)
                body.append(f"<h{lvl}>{html.escape(v[1])}</h{lvl}>")
            elif kind == "p":
                body.append(f"<p>{html.escape(v)}</p>")
            elif kind == "table":
                header, rows = v
                th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(figs[v[0]]).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(v[1])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(v[1])}</figcaption></figure>")
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}"
            "figcaption{font-size:0.85em;color:#555}"
        )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2e}" if p < 1e-4 else f"{p:.4f}"


def _fmt_ci(ci: Mapping | None) -> str:
    if not ci:
        return "–"
    return f"[{ci['low']:.4f}, {ci['high']:.4f}]"


# --------------------------------------------------------------------------- plotting


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _abbrevs(labels: Sequence[str]) -> list[str]:
    for lset in LABEL_SETS.values():
        if tuple(labels) == tuple(lset.names):
            return list(lset.abbrev)
    return [n[:3].upper() if len(labels) > 8 else n for n in labels]


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Row-normalized confusion matrix with an invalid column, values annotated."""
    from msce.eval.metrics import normalize_confusion

    cm = np.asarray(confusion)
    norm = normalize_confusion(cm, "true")
    k = len(labels)
    ab = _abbrevs(labels)
    fig = _figure(1.0 + 0.55 * (k + 1), 1.0 + 0.5 * k)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(k + 1), ab + ["INV"], rotation=45, ha="right")
    ax.set_yticks(range(k), ab)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(k):
        for j in range(k + 1):
            v = norm[i, j]
            if v >= 0.005:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _png(fig)


def plot_fps(curves: Sequence[tuple[str, Any]]) -> bytes:
    """Macro F1 (or the curve's metric) against fps, one line per group."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    for name, c in curves:
        ax.plot(c.fps, c.value, marker="o", label=name)
        if not np.all(np.isnan(c.low)):
            ax.fill_between(c.fps, c.low, c.high, alpha=0.15)
    ax.set_xlabel("frames per second")
    ax.set_ylabel(curves[0][1].metric.replace("_", " ").replace(" f1", " F1") if curves else "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_frequency(
    sources: Mapping[str, tuple[Mapping[str, float], Any]], f1: Mapping[str, float], title: str
) -> bytes:
    """Per-class F1 against class frequency (log x), one panel per frequency source.

    ``sources`` maps a source name to ``(frequencies, correlation)``; each panel's title
    carries Pearson r, its two-tailed p and Spearman rho.
    """
    n = len(sources)
    fig = _figure(4.2 * n, 3.6)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (src, (freq, corr)) in zip(axes, sources.items()):
        names = list(freq)
        x = np.array([freq[k] for k in names], dtype=float)
        y = np.array([f1[k] for k in names], dtype=float)
        ax.scatter(x, y)
        for k, xi, yi in zip(_abbrevs(names) if len(names) > 8 else names, x, y):
            ax.annotate(k, (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
        if np.all(x > 0):
            ax.set_xscale("log")
        ax.set_xlabel(src, fontsize=8)
        ax.set_ylabel("per-class F1")
        ax.set_title(f"r = {corr.r:.3f} (p = {_fmt_p(corr.p)}), ρ = {corr.rho:.3f}", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def plot_training_counts(
    counts: Mapping[str, float], series: Sequence[tuple[str, Mapping[str, float], Any]], title: str
) -> bytes:
    """Training class counts (bars, classes sorted by count) with per-class F1 overlaid.

    ``series`` holds ``(run name, per-class F1, correlation)``; the legend carries each
    run's Pearson r and two-tailed p against the counts (the paper's Fig. S3 view).
    """
    names = sorted(counts, key=lambda n: -float(counts[n]))  # stable: ties keep label order
    xs = np.arange(len(names))
    fig = _figure(max(5.0, 0.6 * len(names) + 2.5), 3.8)
    ax = fig.add_subplot()
    ax.bar(xs, [float(counts[n]) for n in names], color="#c9d6e8", label="training clips")
    lset = next((ls for ls in LABEL_SETS.values() if set(names) <= set(ls.names)), None)
    ticks = [lset.abbrev[lset.names.index(n)] for n in names] if lset is not None and len(names) > 8 else names
    ax.set_xticks(xs, ticks, rotation=45 if len(names) > 8 else 0)
    ax.set_ylabel("training clips per class")
    ax2 = ax.twinx()
    for run_name, f1, corr in series:
        ax2.plot(xs, [f1[n] for n in names], marker="o",
                 label=f"{run_name}: r = {corr.r:.3f} (p = {_fmt_p(corr.p)})")
    ax2.set_ylabel("per-class F1")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def plot_shuffle_bars(labels: Sequence[str], f1_normal: np.ndarray, f1_fs: np.ndarray, title: str) -> bytes:
    """Grouped per-class F1 bars: normal vs frame-shuffled."""
    k = len(labels)
    xs = np.arange(k)
    fig = _figure(max(5.0, 0.6 * k + 2), 3.5)
    ax = fig.add_subplot()
    ax.bar(xs - 0.2, f1_normal, width=0.4, label="normal")
    ax.bar(xs + 0.2, f1_fs, width=0.4, label="frame-shuffled")
    ax.set_xticks(xs, _abbrevs(labels))
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


# --------------------------------------------------------------------------- grouping runs


def _base_config(cfg: Mapping) -> Mapping | None:
    for key in ("base", "inner", "strategy", "wrapped"):
        v = cfg.get(key)
        if isinstance(v, Mapping):
            return v
    return None


def _reversed_pairs(order: Sequence[float]) -> float:
    """Normalized Kendall distance of a sequence from its sorted order (ties are not reversed)."""
    v = np.asarray(order, dtype=float)
    n = len(v)
    if n < 2:
        return 0.0
    return float(np.triu(v[:, None] > v[None, :], k=1).sum()) / (n * (n - 1) / 2)


def shuffle_order_stats(run: Run) -> dict:
    """How much a shuffled run changed frame order: ``videos``, ``changed`` (videos not sent
    in their original order), ``fraction_changed`` and ``mean_kendall`` (mean normalized
    Kendall distance). Per video from the recorded ``extra["kendall_distance"]`` /
    ``extra["order_changed"]``, else (older runs) from the order of the sent timestamps."""
    dists, changed = [], 0
    for rec in run.records:
        extra = rec.get("extra") if isinstance(rec.get("extra"), Mapping) else {}
        if isinstance(extra.get("kendall_distance"), (int, float)):
            d = float(extra["kendall_distance"])
            moved = bool(extra.get("order_changed", d > 0))
        else:
            ts = rec.get("timestamps") or []
            d = _reversed_pairs(ts)
            moved = d > 0
        dists.append(d)
        changed += int(moved)
    n = len(dists)
    return {"videos": n, "changed": changed, "fraction_changed": changed / n if n else float("nan"),
            "mean_kendall": float(np.mean(dists)) if n else float("nan")}


def visual_tokens_mean(run: Run) -> float | None:
    """Mean ``visual_tokens`` per video of a run (None when no record holds a count)."""
    vals = [float(r["visual_tokens"]) for r in run.records
            if isinstance(r.get("visual_tokens"), (int, float)) and not isinstance(r.get("visual_tokens"), bool)]
    return float(np.mean(vals)) if vals else None


def pair_shuffled_runs(runs: Sequence[Run], explicit: Sequence[tuple[str, str]] = ()) -> list[tuple[Run, Run]]:
    """(normal, shuffled) pairs.

    ``explicit`` pairs of run names win. Otherwise each shuffled run is paired with the
    normal run of the same dataset, labels and model whose strategy config equals the
    shuffled run's wrapped config; failing that, the only such run with the same fps
    (and, when the shuffled config names its ``inner`` strategy, that strategy).
    """
    by_name = {r.name: r for r in runs}
    pairs: list[tuple[Run, Run]] = []
    used = set()
    for a, b in explicit:
        if a not in by_name or b not in by_name:
            raise ConfigError(f"--pair {a}:{b}: run names must be among {sorted(by_name)}")
        pairs.append((by_name[a], by_name[b]))
        used.add(b)
    for fs in runs:
        if not fs.is_shuffled or fs.name in used:
            continue
        cands = [r for r in runs if not r.is_shuffled and r.dataset == fs.dataset and r.labels == fs.labels
                 and r.model_id == fs.model_id]
        base = _base_config(fs.strategy)
        exact = [r for r in cands if base is not None and dict(r.strategy) == dict(base)]
        if len(exact) == 1:
            pairs.append((exact[0], fs))
            continue
        same_fps = [r for r in cands if r.fps == fs.fps]
        inner = fs.strategy.get("inner")
        if isinstance(inner, str) and len(same_fps) > 1:
            same_fps = [r for r in same_fps if r.strategy_name == inner]
        if len(same_fps) == 1:
            pairs.append((same_fps[0], fs))
    return pairs


def fps_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Non-shuffled runs with an fps, grouped by (dataset, model, strategy); groups of 2+ rates."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.is_shuffled or r.fps is None:
            continue
        key = f"{r.dataset} · {r.model_id} · {r.strategy_name}"
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        seen, uniq = set(), []
        for r in rs:
            if r.fps not in seen:
                seen.add(r.fps)
                uniq.append(r)
        if len(uniq) >= 2:
            out[key] = uniq
    return out


# --------------------------------------------------------------------------- training counts, parse reasons


def run_training_counts(run: Run) -> tuple[dict[str, int], str] | None:
    """The training class counts of a run's split and where they came from, or None.

    In order: the run's saved split file (``config["split"]["file"]``, the train ids
    with their classes, as ``msce eval`` writes ``split.json``); else, for a balanced
    split, the dataset's recorded class counts minus ``n_per_class`` test clips per
    class. Runs made without a recorded split have no known training counts.
    """
    from msce.eval.analysis import training_class_counts
    from msce.eval.splits import Split

    split = run.config.get("split") or {}
    fname = split.get("file")
    if isinstance(fname, str) and fname:
        path = run.path / fname
        if path.is_file():
            counts = training_class_counts(Split.load(path), run.labels)
            return counts, f"train part of {run.name}/{fname}"
    ds_counts = (run.config.get("dataset") or {}).get("class_counts")
    n_test = split.get("n_per_class")
    if split.get("kind") == "balanced" and isinstance(n_test, int) and isinstance(ds_counts, Mapping) \
            and all(n in ds_counts for n in run.labels):
        counts = {n: int(ds_counts[n]) - n_test for n in run.labels}
        if all(v >= 0 for v in counts.values()):
            return counts, f"dataset class counts minus {n_test} test clips per class"
    return None


NOT_RECORDED = "not recorded"


def parse_reason_counts(run: Run) -> dict[str, int]:
    """How many answers of a run the parser settled with each reason.

    Counts every ``parse_reason`` string the prediction records hold (no fixed list, so
    new parser reasons show up as they are); records without one count as
    ``"not recorded"``.
    """
    out: dict[str, int] = {}
    for rec in run.records:
        reason = rec.get("parse_reason")
        key = str(reason) if reason not in (None, "") else NOT_RECORDED
        out[key] = out.get(key, 0) + 1
    return out


# --------------------------------------------------------------------------- frequencies


def _frequency_sources(labels: tuple[str, ...], freq_csv: str | None) -> dict[str, dict[str, float]]:
    from msce.eval.analysis import lexical_frequency, load_frequency_csv

    lset = next((ls for ls in LABEL_SETS.values() if tuple(ls.names) == labels), None)
    sources: dict[str, dict[str, float]] = {}
    if freq_csv:
        sources[f"counts from {Path(freq_csv).name}"] = load_frequency_csv(freq_csv, lset or labels)
    for lang, title in (("en", "wordfreq (English)"), ("zh", "wordfreq (Chinese)")):
        try:
            f = lexical_frequency(labels, lang)
        except ConfigError:
            continue
        if all(v > 0 for v in f.values()):
            sources[title] = f
    return sources


# --------------------------------------------------------------------------- the report


def build_report(
    runs: Sequence[Run],
    out_dir: str | os.PathLike,
    *,
    freq_csv: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    n_boot: int = 1000,
    seed: int = 0,
    n_head: int | None = None,
    head: Sequence[str] | None = None,
    train_counts_csv: str | None = None,
    title: str = "msce evaluation report",
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    ``freq_csv``: ``label,count`` file of lexical counts used first for the long-tail
    analysis (wordfreq English/Chinese follow). ``pairs``: explicit (normal, shuffled)
    run names. Head/tail classes for the asymmetry test, per run, first that applies:
    ``head`` (source "user"); the run's training class counts (``train_counts_csv``, a
    ``label,count`` file, else :func:`run_training_counts`), head = the ``n_head`` most
    frequent classes or by default those holding at least half of the training clips;
    the paper's MAFW head set (Sec. 3.3); otherwise the report says that there is no
    default. ``n_boot``/``seed``: bootstrap settings.
    """
    from msce.eval.analysis import (
        asymmetric_confusion,
        compare_runs,
        fps_sweep,
        frequency_correlation,
        load_frequency_csv,
        resolve_head_tail,
        shuffle_sensitivity,
    )
    from msce.eval.metrics import bootstrap_ci

    runs = list(runs)
    if not runs:
        raise ConfigError("msce report needs at least one run directory")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be distinct (directory names): {names}")
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    doc = _Doc(title)

    # --- summary
    doc.h(1, "Runs")
    rows = []
    reports = {}
    for r in runs:
        pred = r.predictions
        rep = pred.report()
        reports[r.name] = rep
        ci = bootstrap_ci(pred.y_true, pred.y_pred, pred.labels, ("macro_f1",), n_boot=n_boot, seed=seed)["macro_f1"] \
            if len(pred) and n_boot > 0 else None
        rows.append([
            r.name, r.dataset, r.model_id, r.strategy_name, "–" if r.fps is None else f"{r.fps:g}", len(pred),
            rep.macro_precision, rep.macro_recall, rep.macro_f1,
            _fmt_ci(ci.to_dict()) if ci else "–", rep.uar, rep.war, rep.invalid_rate,
        ])
    doc.table(["run", "dataset", "model", "strategy", "fps", "videos", "macro P", "macro R", "macro F1",
               "F1 95% CI", "UAR", "WAR", "invalid"], rows)
    doc.p("Macro averages are unweighted means over classes; invalid answers count as wrong for every metric. "
          "Intervals: percentile bootstrap over videos.")

    # --- answer parsing
    doc.h(1, "Answer parsing")
    reason_counts = {r.name: parse_reason_counts(r) for r in runs}
    reasons = sorted({k for c in reason_counts.values() for k in c})
    doc.table(["run"] + reasons + ["videos"],
              [[r.name] + [reason_counts[r.name].get(k, 0) for k in reasons] + [len(r.records)] for r in runs])
    doc.p("How the answer parser settled each answer (the parse_reason of every prediction record); "
          f"'{NOT_RECORDED}' counts records without a reason.")

    # --- per-class F1
    by_labels: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:
        by_labels.setdefault(r.labels, []).append(r)
    doc.h(1, "Per-class F1")
    for labels, rs in by_labels.items():
        ab = _abbrevs(labels)
        doc.table(["run"] + ab + ["macro F1"],
                  [[r.name] + [float(v) for v in reports[r.name].f1] + [reports[r.name].macro_f1] for r in rs])
        if ab != list(labels):
            doc.p("Columns: " + ", ".join(f"{a} = {n}" for a, n in zip(ab, labels)) + ".")

    # --- confusion matrices
    doc.h(1, "Confusion matrices")
    doc.p("Rows are true classes normalized to 1; the last column (INV) holds unparsed answers.")
    for i, r in enumerate(runs):
        rep = reports[r.name]
        doc.image(f"confusion_{i}.png", plot_confusion(rep.confusion, r.labels, r.name), f"Confusion matrix: {r.name}")

    # --- frame shuffle
    shuffle_pairs = pair_shuffled_runs(runs, pairs)
    doc.h(1, "Frame-shuffle sensitivity")
    fs_runs = [r for r in runs if r.is_shuffled]
    if fs_runs:
        fs_stats = [(r.name, shuffle_order_stats(r)) for r in fs_runs]
        doc.table(["shuffled run", "clips", "order changed", "fraction changed", "mean normalized Kendall distance"],
                  [[nm, st["videos"], st["changed"], st["fraction_changed"], st["mean_kendall"]]
                   for nm, st in fs_stats])
        doc.p("Normalized Kendall distance: frame pairs sent in reversed time order / (n choose 2) per clip "
              "(0 = original order, 1 = reversed, about 0.5 for a uniformly random order). A one-frame clip "
              "cannot change order.")
    if not shuffle_pairs:
        doc.p("No normal / frame-shuffled pair of runs among the inputs (use --pair NORMAL:SHUFFLED to name one).")
    for j, (a, b) in enumerate(shuffle_pairs):
        s = shuffle_sensitivity(a.predictions, b.predictions, n_boot=max(n_boot, 1), seed=seed)
        doc.h(2, f"{a.name} vs {b.name}")
        ab = _abbrevs(s.labels)
        doc.table(
            ["class", "F1 normal", "F1 FS", "Δ F1", "b (normal only right)", "c (FS only right)", "McNemar p"],
            [[f"{ab[i]} ({lab})" if ab[i] != lab else lab, float(s.normal.f1[i]), float(s.shuffled.f1[i]),
              float(s.f1_delta[i]), s.tests[lab].b, s.tests[lab].c, _fmt_p(s.tests[lab].p_value)]
             for i, lab in enumerate(s.labels)]
            + [["macro / all videos", s.normal.macro_f1, s.shuffled.macro_f1, s.macro_f1_delta.estimate,
                s.overall.b, s.overall.c, _fmt_p(s.overall.p_value)]],
        )
        d = s.macro_f1_delta
        doc.p(f"{s.n} paired videos. Macro-F1 change (FS − normal) {d.estimate:+.4f}, "
              f"{int(round(100 * d.level))}% CI [{d.low:+.4f}, {d.high:+.4f}]; "
              f"exact McNemar p = {_fmt_p(s.overall.p_value)}.")
        doc.image(f"shuffle_{j}.png", plot_shuffle_bars(s.labels, s.normal.f1, s.shuffled.f1, f"{a.name} vs {b.name}"),
                  f"Per-class F1, normal vs frame-shuffled: {a.name} / {b.name}")

    # --- FPS sweep
    groups = fps_groups(runs)
    doc.h(1, "F1 vs FPS")
    if not groups:
        doc.p("No group of runs that differ only in sampling rate.")
    else:
        curves = []
        for key, rs in groups.items():
            c = fps_sweep([(r.fps, r.predictions) for r in rs], "macro_f1", n_boot=max(n_boot, 0), seed=seed)
            curves.append((key, c))
            doc.h(2, key)
            doc.table(["fps", "run", "videos", "macro F1", "CI low", "CI high"],
                      [[f"{f:g}", nm, int(n), v, lo, hi]
                       for f, nm, n, v, lo, hi in zip(c.fps, c.names, c.n, c.value, c.low, c.high)])
            doc.p(f"Peak at {c.peak_fps:g} fps.")
        doc.image("fps.png", plot_fps(curves), "Macro F1 against sampling rate")

    # --- long tail
    doc.h(1, "Long tail: F1 vs lexical frequency")
    fig_n = 0
    primary: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, rs in by_labels.items():
        sources = _frequency_sources(labels, freq_csv)
        if not sources:
            doc.p(f"No frequencies available for classes {list(labels)} (install wordfreq or pass --freq-csv).")
            continue
        primary[labels] = next(iter(sources.values()))  # orients the class pairs of the asymmetry tables
        doc.table(["class"] + list(sources),
                  [[lab] + [f"{src[lab]:.3g}" for src in sources.values()] for lab in labels])
        rows = []
        panels = []
        for r in rs:
            rep = reports[r.name]
            f1 = dict(zip(rep.labels, rep.f1.tolist()))
            panel = {}
            for src_name, freq in sources.items():
                c = frequency_correlation(f1, freq)
                rows.append([r.name, src_name, c.r, _fmt_p(c.p), c.rho, _fmt_p(c.rho_p), c.n])
                panel[src_name] = (freq, c)
            panels.append((r.name, f1, panel))
        doc.table(["run", "frequency", "Pearson r", "p (two-tailed)", "Spearman ρ", "p", "classes"], rows)
        for name, f1, panel in panels:
            doc.image(f"frequency_{fig_n}.png", plot_frequency(panel, f1, name),
                      f"Per-class F1 against class-word frequency: {name}")
            fig_n += 1

    # --- training class counts (Fig. S3)
    train_counts: dict[str, tuple[dict[str, int], str]] = {}
    count_problems = []
    for r in runs:
        if train_counts_csv:
            lset = next((ls for ls in LABEL_SETS.values() if tuple(ls.names) == r.labels), None)
            train_counts[r.name] = (dict(load_frequency_csv(train_counts_csv, lset or r.labels)),
                                    f"counts from {Path(train_counts_csv).name}")
            continue
        try:
            known = run_training_counts(r)
        except DatasetError as exc:
            count_problems.append(f"{r.name}: {exc}")
            continue
        if known is not None:
            train_counts[r.name] = known
    doc.h(1, "Per-class F1 vs training class count (Fig. S3)")
    if not train_counts:
        doc.p("The training class counts are not known for any run (no recorded split with training labels; "
              "pass --train-counts CSV to give them).")
    for problem in count_problems:
        doc.p(f"Training class counts unreadable for {problem}")
    groups_s3: dict[tuple, list[Run]] = {}
    for r in runs:
        if r.name in train_counts:
            counts, note = train_counts[r.name]
            groups_s3.setdefault((r.labels, tuple(counts.items()), note), []).append(r)
    rows = []
    for g, ((labels, items, note), rs) in enumerate(groups_s3.items()):
        counts = dict(items)
        series = []
        for r in rs:
            rep = reports[r.name]
            f1 = dict(zip(rep.labels, rep.f1.tolist()))
            c = frequency_correlation(f1, counts)
            rows.append([r.name, note, sum(counts.values()), c.r, _fmt_p(c.p), c.rho, _fmt_p(c.rho_p), c.n])
            series.append((r.name, f1, c))
        doc.table(["training clips"] + _abbrevs(labels), [[note] + [counts[n] for n in labels]])
        doc.image(f"train_counts_{g}.png", plot_training_counts(counts, series, f"training clips ({note})"),
                  f"Per-class F1 against training class count: {', '.join(r.name for r in rs)}")
    if rows:
        doc.table(["run", "training counts", "training clips", "Pearson r", "p (two-tailed)", "Spearman ρ", "p",
                   "classes"], rows)
        doc.p("Pearson r and two-tailed p of per-class F1 against the number of training clips of each class "
              "(the view of the paper's Fig. S3).")

    # --- asymmetric confusion
    doc.h(1, "Asymmetric confusion")
    for r in runs:
        known = train_counts.get(r.name)
        use_head = list(head) if head and all(h in r.labels for h in head) else None
        doc.h(2, r.name)
        try:
            split = resolve_head_tail(r.labels, head=use_head, counts=None if known is None else known[0],
                                      n_head=None if use_head else n_head,
                                      counts_note="" if known is None else known[1])
        except ConfigError as exc:
            doc.p(f"No head/tail split: {exc} (--head a,b,... or --train-counts CSV).")
            continue
        asym = asymmetric_confusion(reports[r.name].confusion, r.labels, head=split,
                                    frequencies=primary.get(r.labels) or None)
        doc.p(split.describe())
        doc.p(f"Tail→head {asym.tail_to_head} videos ({asym.tail_to_head_rate:.3f} of tail videos), "
              f"head→tail {asym.head_to_tail} ({asym.head_to_tail_rate:.3f} of head videos); "
              f"exact binomial p = {_fmt_p(asym.p_two_sided)} (two-sided), {_fmt_p(asym.p_greater)} "
              f"(tail→head more likely).")
        top = [f for f in asym.pairs if f.a_to_b + f.b_to_a > 0][:10]
        if top:
            first = ("a (more training clips)" if split.counts is not None
                     else "a (more frequent word)" if primary.get(r.labels) else "a (head first)")
            doc.table([first, "b", "a→b", "b→a", "binomial p"],
                      [[f.a, f.b, f.a_to_b, f.b_to_a, _fmt_p(f.p_value)] for f in top])

    # --- comparison
    doc.h(1, "Comparison with the first run")
    comparable = [r for r in runs if r.labels == runs[0].labels]
    if len(comparable) < 2:
        doc.p("Only one run with this label set.")
    else:
        cmp = compare_runs([r.predictions for r in comparable], n_boot=max(n_boot, 1), seed=seed)
        doc.table(["run", "common videos", "Δ macro F1", "CI", "b (baseline only right)", "c (run only right)",
                   "McNemar p"],
                  [[d.name, d.n_common, d.macro_f1_delta.estimate,
                    f"[{d.macro_f1_delta.low:+.4f}, {d.macro_f1_delta.high:+.4f}]",
                    d.mcnemar.b, d.mcnemar.c, _fmt_p(d.mcnemar.p_value)] for d in cmp.deltas])
        doc.p(f"Baseline: {cmp.baseline}. Δ = run − baseline on the videos both runs scored.")

    md_path, html_path = out / "report.md", out / "report.html"
    for name, png in doc.figures:
        (out / "figures" / name).write_bytes(png)
    md_path.write_text(doc.markdown(), encoding="utf-8")
    html_path.write_text(doc.html(), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "figures": out / "figures"}


# --------------------------------------------------------------------------- compare


def compare_table(runs: Sequence[Run], baseline: int = 0, n_boot: int = 1000, seed: int = 0) -> tuple[str, dict]:
    """A plain-text table of metrics and paired deltas vs ``runs[baseline]``, and its JSON."""
    from msce.eval.analysis import compare_runs
    from msce.eval.metrics import bootstrap_ci

    runs = list(runs)
    if len(runs) < 2:
        raise ConfigError("msce compare needs at least two run directories")
    labels = runs[0].labels
    bad = [r.name for r in runs if r.labels != labels]
    if bad:
        raise ConfigError(f"runs {bad} use a different label list than {runs[0].name}")
    cmp = compare_runs([r.predictions for r in runs], baseline=baseline, n_boot=n_boot, seed=seed)
    deltas = {d.name: d for d in cmp.deltas}
    header = ["run", "videos", "macro F1", "95% CI", "UAR", "WAR", "invalid", "Δ F1 (paired)", "Δ CI", "McNemar p",
              "visual tokens/video", "tokens vs baseline"]
    tokens = {r.name: visual_tokens_mean(r) for r in runs}
    base_tokens = tokens[runs[baseline].name]
    rows = []
    for r, rep in zip(runs, cmp.reports):
        pred = r.predictions
        ci = bootstrap_ci(pred.y_true, pred.y_pred, pred.labels, ("macro_f1",), n_boot=n_boot, seed=seed)["macro_f1"]
        d = deltas.get(r.name)
        rows.append([
            r.name, str(rep.n), f"{rep.macro_f1:.4f}", f"[{ci.low:.4f}, {ci.high:.4f}]", f"{rep.uar:.4f}",
            f"{rep.war:.4f}", f"{rep.invalid_rate:.3f}",
            "baseline" if d is None else f"{d.macro_f1_delta.estimate:+.4f}",
            "" if d is None else f"[{d.macro_f1_delta.low:+.4f}, {d.macro_f1_delta.high:+.4f}]",
            "" if d is None else _fmt_p(d.mcnemar.p_value),
            "–" if tokens[r.name] is None else f"{tokens[r.name]:.1f}",
            "–" if tokens[r.name] is None or not base_tokens else f"×{tokens[r.name] / base_tokens:.2f}",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    data = cmp.to_dict()
    data["visual_tokens_mean"] = tokens
    return "\n".join(lines), data


# --------------------------------------------------------------------------- CLI


def _load_runs(paths: Sequence[str]) -> list[Run]:
    runs = [load_run(p) for p in paths]
    seen: dict[str, int] = {}
    for r in runs:  # two directories with the same name (a/run, b/run) get numbered
        if r.name in seen:
            seen[r.name] += 1
            r.name = f"{r.name}#{seen[r.name]}"
        else:
            seen[r.name] = 1
    return runs


def _parse_pairs(items: Sequence[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in items or ():
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise ConfigError(f"--pair expects NORMAL:SHUFFLED run names, got {item!r}")
        out.append((a, b))
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    out = args.out or (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("msce-report"))
    head = [h.strip().lower() for h in args.head.split(",") if h.strip()] if args.head else None
    paths = build_report(runs, out, freq_csv=args.freq_csv, pairs=_parse_pairs(args.pair), n_boot=args.n_boot,
                         seed=args.seed, n_head=args.n_head, head=head, train_counts_csv=args.train_counts,
                         title=args.title)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    names = [r.name for r in runs]
    base = 0
    if args.baseline is not None:
        if args.baseline in names:
            base = names.index(args.baseline)
        elif args.baseline.isdigit() and int(args.baseline) < len(runs):
            base = int(args.baseline)
        else:
            raise ConfigError(f"--baseline {args.baseline!r} is neither a run name {names} nor an index")
    text, data = compare_table(runs, baseline=base, n_boot=args.n_boot, seed=args.seed)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce report`` and ``msce compare``."""
    p = subparsers.add_parser("report", help="write a Markdown + HTML report for run directories",
                              description="Tables and plots (confusion, FS sensitivity, F1 vs FPS, long tail).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by msce eval")
    p.add_argument("--out", help="output folder (default RUN/report for one run, else ./msce-report)")
    p.add_argument("--freq-csv", help="label,count CSV (e.g. Google Books Ngram counts) for the long-tail analysis")
    p.add_argument("--pair", action="append", metavar="NORMAL:SHUFFLED", help="pair two runs for the FS analysis")
    p.add_argument("--n-head", type=int,
                   help="head = this many classes with the most training clips (default: the most frequent "
                        "classes holding at least half of the training clips)")
    p.add_argument("--head", help="comma-separated head classes for the asymmetry test (overrides the default: "
                                  "training class counts, else the paper's MAFW head set)")
    p.add_argument("--train-counts", metavar="CSV",
                   help="label,count training class counts (default: read from each run's split)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="msce evaluation report")
    p.set_defaults(func=_cmd_report)

    c = subparsers.add_parser("compare", help="compare run directories (paired deltas, McNemar tests)")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--baseline", help="run name or index (default: the first)")
    c.add_argument("--n-boot", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=_cmd_compare)
