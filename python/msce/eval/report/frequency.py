"""Lexical frequency sources for the report's long-tail section (per-class F1 against how
common each class word is).

:func:`frequency_sources` lists, per label set, every source that covers all classes, in
the order the report shows them: a user ``label,count`` CSV first, then the chosen
source (``"wordfreq"``, the offline proxy, by default; ``"ngram"``, Google Books Ngrams,
the paper's source) in English and Chinese (:func:`msce.eval.analysis.class_frequencies`).
The first source also orients the class pairs of the asymmetric-confusion tables. A new
source belongs here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msce.errors import ConfigError
from msce.labels import LABEL_SETS

if TYPE_CHECKING:
    from msce.eval.analysis import ClassFrequencies

__all__ = ["frequency_sources"]


def frequency_sources(
    labels: tuple[str, ...], freq_csv: str | None, source: str = "wordfreq"
) -> dict[str, ClassFrequencies]:
    """Per-class frequencies of ``labels`` (with their provenance) by title, in report
    order (see the module docstring). A language without a word for every class, or
    with a zero wordfreq frequency, is left out, and no source at all gives an empty
    dict; Ngram service errors (unreachable without a cached answer, absent word) are
    raised, since the user asked for that source."""
    from msce.eval.analysis import FREQUENCY_SOURCES, class_frequencies

    if source not in FREQUENCY_SOURCES:
        raise ConfigError(f"freq_source must be one of {list(FREQUENCY_SOURCES)}, got {source!r}")
    lset = next((ls for ls in LABEL_SETS.values() if tuple(ls.names) == labels), None)
    out: list[ClassFrequencies] = []
    if freq_csv:
        out.append(class_frequencies(lset or labels, freq_csv))
    for lang in ("en", "zh"):
        try:
            f = class_frequencies(lset or labels, source, lang)
        except ConfigError:
            continue
        if all(v > 0 for v in f.values.values()):
            out.append(f)
    return {f.title: f for f in out}
