"""The report's figures, drawn with matplotlib's object API on an Agg canvas (no pyplot,
no global backend switch) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np

from msce.eval.report.document import fmt_p
from msce.labels import LABEL_SETS

__all__ = ["abbrevs", "plot_confusion", "plot_fps", "plot_frequency", "plot_training_counts", "plot_shuffle_bars"]


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


def abbrevs(labels: Sequence[str]) -> list[str]:
    """Short class names for axes and table columns: a known label set's abbreviations, else
    the names (their first three letters, upper-cased, beyond eight classes)."""
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
    ab = abbrevs(labels)
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
        for k, xi, yi in zip(abbrevs(names) if len(names) > 8 else names, x, y):
            ax.annotate(k, (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
        if np.all(x > 0):
            ax.set_xscale("log")
        ax.set_xlabel(src, fontsize=8)
        ax.set_ylabel("per-class F1")
        ax.set_title(f"r = {corr.r:.3f} (p = {fmt_p(corr.p)}), ρ = {corr.rho:.3f}", fontsize=8)
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
                 label=f"{run_name}: r = {corr.r:.3f} (p = {fmt_p(corr.p)})")
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
    ax.set_xticks(xs, abbrevs(labels))
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
