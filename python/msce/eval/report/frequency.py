"""Lexical frequency sources for the report's long-tail section (per-class F1 against how
common each class word is).

:func:`frequency_sources` lists, per label set, every source that covers all classes, in
the order the report shows them: a user ``label,count`` CSV first, then wordfreq English
and Chinese (:func:`msce.eval.analysis.lexical_frequency`). The first source also orients
the class pairs of the asymmetric-confusion tables. A new source belongs here.
"""

from __future__ import annotations

from pathlib import Path

from msce.errors import ConfigError
from msce.labels import LABEL_SETS

__all__ = ["frequency_sources"]


def frequency_sources(labels: tuple[str, ...], freq_csv: str | None) -> dict[str, dict[str, float]]:
    """Per-class frequencies of ``labels`` by source name, in report order (see the module
    docstring); a wordfreq language that misses a class is left out, and no source at all
    gives an empty dict."""
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
