"""The report's figures, drawn with matplotlib's object API on an Agg canvas (no pyplot,
no global backend switch) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np

from msce.eval.report.document import fmt_p
from msce.labels import LABEL_SETS

__all__ = ["abbrevs", "plot_confusion", "plot_fps", "plot_frequency", "plot_training_counts", "plot_shuffle_bars",
           "frequency_figure", "shuffle_figure", "place_labels"]


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


def _wrapped(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (an average
    glyph is taken as 0.6 em wide), so a long title (two run names) is never cut off."""
    import textwrap

    chars = max(20, int(width_in * 72 / (0.6 * fontsize)))
    return textwrap.fill(text, chars, break_long_words=True, break_on_hyphens=False)


# Label offsets (points) tried in turn for a scatter label: right, left, above, below, then further out.
_LABEL_OFFSETS = [(4, 3, "left"), (4, -9, "left"), (-4, 3, "right"), (-4, -9, "right"), (0, 8, "center"),
                  (0, -15, "center"), (4, 14, "left"), (4, -20, "left"), (-4, 14, "right"), (-4, -20, "right"),
                  (0, 22, "center"), (0, -28, "center")]


def place_labels(ax, names: Sequence[str], x: np.ndarray, y: np.ndarray, fontsize: float = 7) -> list:
    """Annotate scatter points with ``names`` so that no two labels overlap: each label takes
    the first offset of ``_LABEL_OFFSETS`` whose box (measured by the renderer) meets no
    label placed before it and stays inside the axes; a label that fits nowhere takes its
    least-overlapping offset. Returns the annotations."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    limit = ax.get_window_extent(renderer)
    placed: list = []
    boxes: list = []
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    for i in order:
        best = None
        for dx, dy, ha in _LABEL_OFFSETS:
            ann = ax.annotate(names[i], (x[i], y[i]), textcoords="offset points", xytext=(dx, dy), ha=ha,
                              fontsize=fontsize, annotation_clip=False)
            box = ann.get_window_extent(renderer)
            overlap = sum(max(0.0, min(box.x1, b.x1) - max(box.x0, b.x0)) *
                          max(0.0, min(box.y1, b.y1) - max(box.y0, b.y0)) for b in boxes)
            inside = box.x0 >= limit.x0 and box.x1 <= limit.x1 and box.y0 >= limit.y0 and box.y1 <= limit.y1
            cost = overlap + (0.0 if inside else 1e9)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0.0:
                break
        placed.append(best[1])
        boxes.append(best[2])
    return placed


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
    return _png(frequency_figure(sources, f1, title))


def frequency_figure(sources: Mapping[str, tuple[Mapping[str, float], Any]], f1: Mapping[str, float],
                     title: str):
    """The figure of :func:`plot_frequency`: F1 on a fixed 0..1 axis, x padded so that the
    outermost labels fit, labels placed by :func:`place_labels` (no two overlap)."""
    n = len(sources)
    fig = _figure(4.2 * n, 3.6)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (src, (freq, corr)) in zip(axes, sources.items()):
        names = list(freq)
        x = np.array([freq[k] for k in names], dtype=float)
        y = np.array([f1[k] for k in names], dtype=float)
        ax.scatter(x, y)
        if np.all(x > 0):
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks crowd a narrow range
        ax.margins(x=0.12)
        ax.set_ylim(-0.08, 1.08)
        ax.set_xlabel(src, fontsize=8)
        ax.set_ylabel("per-class F1")
        ax.set_title(f"r = {corr.r:.3f} (p = {fmt_p(corr.p)}), ρ = {corr.rho:.3f}", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(_wrapped(title, 4.2 * n, 9), fontsize=9)
    fig.canvas.draw()  # final axes positions before the labels are measured
    for ax, (src, (freq, _)) in zip(axes, sources.items()):
        names = list(freq)
        x = np.array([freq[k] for k in names], dtype=float)
        y = np.array([f1[k] for k in names], dtype=float)
        place_labels(ax, abbrevs(names) if len(names) > 8 else names, x, y)
    fig.set_layout_engine("none")  # keep the measured positions
    return fig


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
    return _png(shuffle_figure(labels, f1_normal, f1_fs, title))


def shuffle_figure(labels: Sequence[str], f1_normal: np.ndarray, f1_fs: np.ndarray, title: str):
    """The figure of :func:`plot_shuffle_bars`. Every bar carries its value (a class at F1 0
    still shows "0.00", and when every F1 is 0 the chart says so), the legend sits in a band
    above F1 = 1, long class names are turned, and a long title is wrapped: nothing is
    cut off."""
    k = len(labels)
    xs = np.arange(k)
    width = max(5.0, 0.6 * k + 2)
    fig = _figure(width, 3.8)
    ax = fig.add_subplot()
    normal = np.nan_to_num(np.asarray(f1_normal, dtype=float))
    shuffled = np.nan_to_num(np.asarray(f1_fs, dtype=float))
    bars = [ax.bar(xs - 0.2, normal, width=0.4, label="normal"),
            ax.bar(xs + 0.2, shuffled, width=0.4, label="frame-shuffled")]
    for b in bars:
        ax.bar_label(b, fmt="%.2f", fontsize=6, padding=1, rotation=90 if k > 8 else 0)
    ticks = abbrevs(labels)
    ax.set_xticks(xs, ticks, rotation=45 if max((len(t) for t in ticks), default=0) > 4 else 0,
                  ha="right" if max((len(t) for t in ticks), default=0) > 4 else "center")
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    if not np.any(normal) and not np.any(shuffled):
        ax.text(0.5, 0.5, "every per-class F1 is 0 in both runs", transform=ax.transAxes, ha="center",
                va="center", fontsize=9, color="0.35")
    ax.set_title(_wrapped(title, width, 9), fontsize=9)
    ax.legend(fontsize=8, ncol=2, loc="upper center", frameon=False)  # in the band above F1 = 1
    ax.grid(axis="y", alpha=0.3)
    return fig
