"""The report's figures, measured with matplotlib's own renderer: the frame-shuffle chart is
not empty when every F1 is 0 and nothing in it is cut off or drawn over, and the frequency
scatter's labels (and tick labels) never overlap, however close the classes lie."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from msce.eval.report.figures import frequency_figure, shuffle_figure  # noqa: E402
from msce.labels import LABEL_SETS  # noqa: E402

MAFW = list(LABEL_SETS["mafw"].names)
LONG = ("dfew-official-fold1-sparse-fps1-Qwen2.5-VL-7B-Instruct vs "
        "dfew-official-fold1-shuffled-fps1-Qwen2.5-VL-7B-Instruct")


def _boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def _inside(fig, box) -> bool:
    page = fig.bbox
    return box.x0 >= page.x0 - 0.5 and box.x1 <= page.x1 + 0.5 and box.y0 >= page.y0 - 0.5 and box.y1 <= page.y1 + 0.5


def _disjoint(boxes) -> bool:
    return not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("labels,title", [(MAFW, LONG), (["happy", "sad", "disappointment", "neutral"], LONG * 2)])
def test_shuffle_chart_with_every_f1_zero_shows_bars_and_fits(labels, title) -> None:
    k = len(labels)
    fig = shuffle_figure(labels, np.zeros(k), np.zeros(k), title)
    fig.canvas.draw()
    (ax,) = fig.axes
    values = [t.get_text() for t in ax.texts if t.get_text() == "0.00"]
    assert len(values) == 2 * k  # a bar of height 0 still says 0.00
    assert any("every per-class F1 is 0" in t.get_text() for t in ax.texts)
    legend = ax.get_legend()
    texts = [ax.title, *ax.get_xticklabels(), *ax.get_yticklabels(), *legend.get_texts(), *ax.texts]
    for box in _boxes(fig, texts):
        assert _inside(fig, box), box
    renderer = fig.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    assert not legend_box.overlaps(ax.title.get_window_extent(renderer))
    assert not any(legend_box.overlaps(b) for b in _boxes(fig, [t for t in ax.texts if t.get_text() == "0.00"]))
    assert _disjoint(_boxes(fig, ax.get_xticklabels()))


def test_shuffle_chart_values_are_the_f1s() -> None:
    fig = shuffle_figure(["a", "b"], np.array([1.0, 0.25]), np.array([0.5, 0.0]), "t")
    fig.canvas.draw()
    (ax,) = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.25", "0.50", "1.00"]
    assert not any("every per-class F1 is 0" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("freq,f1", [
    ({"happy": 1000, "sad": 1010, "neutral": 1020, "angry": 1030, "surprise": 5000, "disgust": 5100, "fear": 200},
     {"happy": 0.5, "sad": 0.5, "neutral": 0.51, "angry": 0.49, "surprise": 1.0, "disgust": 0.98, "fear": 0.0}),
    ({n: 1000 * 1.1 ** i for i, n in enumerate(MAFW)}, {n: 0.0 for n in MAFW}),
])
def test_frequency_scatter_labels_never_overlap(freq, f1) -> None:
    corr = SimpleNamespace(r=float("nan"), p=float("nan"), rho=float("nan"))
    fig = frequency_figure({"wordfreq": (freq, corr), "csv": (freq, corr)}, f1, "per-class F1 vs frequency")
    fig.canvas.draw()
    for ax in fig.axes:
        labels = _boxes(fig, ax.texts)
        assert len(labels) == len(freq)
        assert _disjoint(labels)
        for box in labels:
            assert _inside(fig, box)
        assert _disjoint(_boxes(fig, ax.get_xticklabels() + ax.get_xticklabels(minor=True)))
