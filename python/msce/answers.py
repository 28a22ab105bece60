"""Deterministic parsing of a model's free-text answer into one emotion label.

The rule, in order:

1. **Normalize**: Unicode NFKC, casefold, contractions ending in n't (any apostrophe)
   become ``" not"``, every punctuation or symbol character becomes a space,
   whitespace runs collapse. ``"Happiness!"`` -> ``"happiness"``.
2. **Exact**: the whole normalized answer is a label word (a name or a synonym from
   :meth:`msce.labels.LabelSet.words`) -> that label.
3. **Negation**: if any occurrence of a label word has a negation cue (``not``,
   ``no``, ``never``, ``neither``, ``nor``, ``without``, ``hardly``) among the three
   words before it, the answer is invalid (reason ``"negated"``). msce does not try
   to infer what a negated answer means: ``"not happy"`` is not remapped to anything.
4. **Unique whole-word match**: collect the labels whose words occur as whole words;
   exactly one label -> that label (it may occur several times, or through several
   synonyms); more than one -> invalid (``"ambiguous"``); none -> invalid
   (``"unknown"``).

Invalid answers parse to ``None``: they are kept and counted in an invalid bucket,
never mapped to a class. The raw text is always stored next to the parse.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from msce.labels import LabelSet

__all__ = ["normalize", "parse_answer", "parse_answer_detail", "ParsedAnswer", "NEGATIONS"]

NEGATIONS = frozenset({"not", "no", "never", "neither", "nor", "without", "hardly"})
_NEGATION_WINDOW = 3
_CONTRACTION = re.compile(r"n['\u2019\u02bc]t\b")


def normalize(text: str) -> str:
    """NFKC, casefold, n't -> " not", punctuation/symbols -> spaces, collapsed spaces."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = _CONTRACTION.sub(" not", s)
    chars = [" " if unicodedata.category(c)[0] in "PSZC" else c for c in s]
    return " ".join("".join(chars).split())


@dataclass(frozen=True)
class ParsedAnswer:
    """``label``: canonical name or None; ``reason``: exact | unique | ambiguous |
    unknown | negated | empty; ``matches``: canonical labels seen, in first-seen order."""

    label: str | None
    reason: str
    matches: tuple[str, ...] = ()
    raw: str = ""

    @property
    def valid(self) -> bool:
        return self.label is not None


def _word_table(labels: LabelSet) -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    for name in labels.names:
        for word in labels.words(name):
            key = tuple(normalize(word).split())
            if key:
                table[key] = name
    return table


def parse_answer_detail(text: str | None, labels: LabelSet) -> ParsedAnswer:
    raw = "" if text is None else str(text)
    norm = normalize(raw)
    if not norm:
        return ParsedAnswer(None, "empty", (), raw)
    table = _word_table(labels)
    tokens = norm.split()
    whole = tuple(tokens)
    if whole in table:
        return ParsedAnswer(table[whole], "exact", (table[whole],), raw)

    found: list[str] = []
    negated = False
    lengths = sorted({len(k) for k in table}, reverse=True)
    i = 0
    while i < len(tokens):
        hit = None
        for n in lengths:  # longest word first, so multi-word labels win
            key = tuple(tokens[i:i + n])
            if len(key) == n and key in table:
                hit = (table[key], n)
                break
        if hit is None:
            i += 1
            continue
        name, n = hit
        if any(t in NEGATIONS for t in tokens[max(0, i - _NEGATION_WINDOW):i]):
            negated = True
        if name not in found:
            found.append(name)
        i += n

    matches = tuple(found)
    if negated:
        return ParsedAnswer(None, "negated", matches, raw)
    if len(found) == 1:
        return ParsedAnswer(found[0], "unique", matches, raw)
    if len(found) > 1:
        return ParsedAnswer(None, "ambiguous", matches, raw)
    return ParsedAnswer(None, "unknown", (), raw)


def parse_answer(text: str | None, labels: LabelSet) -> str | None:
    """Canonical label name for an answer, or None for the invalid bucket."""
    return parse_answer_detail(text, labels).label
