"""Deterministic parsing of a model's free-text answer into one emotion label.

The paper does not say how free-text answers were mapped to classes; everything below is
msce's own rule. It never guesses: an answer that does not name exactly one class, or
that names one class clearly above the others, goes to the invalid bucket.

1. **Tokens.** Unicode NFKC, casefold; ``can't``/``won't`` and any other ``n't`` (any
   apostrophe) become negations. Letters, digits and marks form words; every CJK
   ideograph is a token of its own (Chinese is not written with spaces); other
   punctuation and symbols (``*``, quotes, ``-``, ``#``) only separate words.
2. **Clauses.** The answer is cut into clauses at ``. ! ? , ; :``, ``。 、``, line breaks,
   brackets, and the words ``but``, ``rather``, ``instead``, ``however``, ``although``,
   ``though``, ``whereas``, ``但``, ``却``, ``而``, ``不过``. ``rather than`` and
   ``instead of`` also cut, and reject what follows (they act as a negation cue).
3. **Label words.** Each label set lists its names and synonyms
   (:meth:`msce.labels.LabelSet.words`, English and Chinese). They are matched as whole
   tokens, longest first (so ``无助`` is one label word, not ``无`` + ``助``). A word made of
   ``un`` + a label word (``unhappy``) is a negated mention of that label.
4. **Negation.** A negation cue (:data:`NEGATIONS`: ``not``, ``no``, ``never``, ``neither``,
   ``nor``, ``without``, ``hardly``, ``cannot``, ``不``, ``没``, ``无``) negates every label
   word after it up to the end of its clause. ``"I am not sure. Fear"`` names fear;
   ``"not happy, rather sad"`` names sadness; ``"The person is not angry."`` names
   nothing. A negated mention is never remapped to another class.
5. **Plain or hedged.** A mention is *hedged* when its clause holds a hedge word
   (:data:`HEDGES`: ``maybe``, ``perhaps``, ``possibly``, ``possible``, ``might``,
   ``could``, ``may``, ``alternatively``, ``可能``, ``也许``, ``或许``) or ends with ``?``,
   and an *aside* when it sits inside brackets. Other mentions are *plain*.
6. **Decision**, with the reason recorded (:data:`REASONS`):

   * ``"empty"``: no word at all (``""``, ``"..."``).
   * ``"exact"``: all the words together are one label word (``"**Happiness**"``).
   * ``"no-label"``: no label word (``"None of the above"``, ``"boredom"``).
   * ``"negated"``: every mention is negated.
   * ``"label-in-text"``: the non-negated mentions all name one class
     (``"Answer: sad. Not happy."`` -> sadness).
   * ``"clear-choice"``: the non-negated mentions name several classes, but the plain
     ones name exactly one: hedged or bracketed alternatives do not compete with a plain
     statement. ``"Emotion: fear (it could look like surprise)"`` -> fear,
     ``"Sadness, maybe disappointment"`` -> sadness.
   * ``"ambiguous"``: several classes and no clear choice (``"happy or sad"``,
     ``"happiness and surprise"``, ``"maybe fear, maybe surprise"``).

Invalid answers parse to ``None``: they are kept and counted in the invalid bucket,
never mapped to a class. The raw text is always stored next to the parse.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from msce.errors import ConfigError
from msce.labels import LabelSet

__all__ = [
    "normalize",
    "parse_answer",
    "parse_answer_detail",
    "ParsedAnswer",
    "NEGATIONS",
    "HEDGES",
    "REASONS",
    "VALID_REASONS",
]

#: Every reason a parse can give, valid ones first. Reports count these strings.
REASONS: tuple[str, ...] = ("exact", "label-in-text", "clear-choice", "negated", "ambiguous", "no-label", "empty")
#: The reasons that come with a label; the others come with ``None``.
VALID_REASONS = frozenset({"exact", "label-in-text", "clear-choice"})

#: Negation cues (single tokens; Chinese ones are single characters).
NEGATIONS = frozenset({"not", "no", "never", "neither", "nor", "without", "hardly", "cannot", "不", "没", "无"})
#: Hedge words and character sequences: a clause holding one states an alternative.
HEDGES = frozenset({
    ("maybe",), ("perhaps",), ("possibly",), ("possible",), ("might",), ("could",), ("may",),
    ("alternatively",), ("可", "能"), ("也", "许"), ("或", "许"),
})
_BOUNDARY_WORDS = frozenset({
    ("but",), ("rather",), ("instead",), ("however",), ("although",), ("though",), ("whereas",),
    ("但",), ("却",), ("而",), ("不", "过"),
})
_REJECTIONS = frozenset({("rather", "than"), ("instead", "of")})

_SENTENCE_ENDS = frozenset(".!。…")
_CLAUSE_MARKS = frozenset(",;:、\n\r\v\f\u0085\u2028\u2029")
_OPEN = frozenset("([{【")
_CLOSE = frozenset(")]}】")
_APOSTROPHE = "['\u2019\u02bc]"
_CONTRACTIONS = (
    (re.compile(rf"\bcan{_APOSTROPHE}t\b"), "can not"),
    (re.compile(rf"\bwon{_APOSTROPHE}t\b"), "will not"),
    (re.compile(rf"n{_APOSTROPHE}t\b"), " not"),
)


def _is_ideograph(c: str) -> bool:
    return unicodedata.name(c, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


@dataclass
class _Clause:
    tokens: list[str]
    aside: bool = False  # inside brackets
    question: bool = False  # ended by "?"
    rejects: bool = False  # opened by "rather than" / "instead of"


def _prepare(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).casefold()
    for pattern, repl in _CONTRACTIONS:
        s = pattern.sub(repl, s)
    return s


def _segments(s: str) -> list[_Clause]:
    """Cut a prepared string at punctuation boundaries into token lists."""
    out: list[_Clause] = []
    cur = _Clause([])
    word: list[str] = []
    depth = 0

    def flush_word() -> None:
        if word:
            cur.tokens.append("".join(word))
            word.clear()

    def close(question: bool = False) -> None:
        nonlocal cur
        flush_word()
        cur.question = question
        if cur.tokens:
            out.append(cur)
        cur = _Clause([], aside=depth > 0)

    for c in s:
        if c == "?":
            close(question=True)
        elif c in _SENTENCE_ENDS or c in _CLAUSE_MARKS:
            close()
        elif c in _OPEN:
            close()
            depth += 1
            cur.aside = True
        elif c in _CLOSE:
            close()
            depth = max(0, depth - 1)
            cur.aside = depth > 0
        elif _is_ideograph(c):
            flush_word()
            cur.tokens.append(c)
        elif unicodedata.category(c)[0] in "LMN":
            word.append(c)
        else:
            flush_word()
    close()
    return out


def _starts(tokens: list[str], i: int, patterns: frozenset[tuple[str, ...]]) -> int:
    """Length of the longest pattern starting at ``tokens[i]``, 0 when none does."""
    best = 0
    for p in patterns:
        if len(p) > best and tuple(tokens[i:i + len(p)]) == p:
            best = len(p)
    return best


def _clauses(text: str) -> list[_Clause]:
    """Punctuation segments further cut at contrast words ("but", "rather than", ...)."""
    out: list[_Clause] = []
    for seg in _segments(_prepare(text)):
        cur = _Clause([], seg.aside, False, False)
        toks = seg.tokens
        i = 0
        while i < len(toks):
            n = _starts(toks, i, _REJECTIONS)
            rejects = n > 0
            n = n or _starts(toks, i, _BOUNDARY_WORDS)
            if n:
                if cur.tokens:
                    out.append(cur)
                cur = _Clause([], seg.aside, False, rejects)
                i += n
                continue
            cur.tokens.append(toks[i])
            i += 1
        if cur.tokens or cur.rejects:
            cur.question = seg.question
            out.append(cur)
    return out


def normalize(text: str) -> str:
    """The answer's words joined by single spaces: NFKC, casefold, ``n't`` -> ``not``,
    punctuation and symbols removed, each CJK ideograph a word of its own."""
    return " ".join(t for seg in _segments(_prepare(text)) for t in seg.tokens)


@dataclass(frozen=True)
class ParsedAnswer:
    """One parsed answer.

    ``label``: canonical name, or None for the invalid bucket; ``reason``: one of
    :data:`REASONS`; ``matches``: every class mentioned (negated or not), in first-seen
    order; ``raw``: the answer text as given.
    """

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
            if not key:
                continue
            if table.get(key, name) != name:
                raise ConfigError(f"label set {labels.key!r}: {word!r} is a word of both "
                                  f"{table[key]!r} and {name!r}")
            table[key] = name
    return table


@dataclass(frozen=True)
class _Mention:
    label: str
    negated: bool
    plain: bool


def _mentions(clause: _Clause, table: dict[tuple[str, ...], str], lengths: list[int]) -> list[_Mention]:
    toks = clause.tokens
    found: list[tuple[str, bool]] = []
    negated = clause.rejects
    hedged = clause.question
    i = 0
    while i < len(toks):
        hit = 0
        for n in lengths:  # longest label word first
            key = tuple(toks[i:i + n])
            if len(key) == n and key in table:
                found.append((table[key], negated))
                hit = n
                break
        if hit:
            i += hit
            continue
        tok = toks[i]
        if tok.startswith("un") and (tok[2:],) in table:
            found.append((table[(tok[2:],)], True))
        elif tok in NEGATIONS:
            negated = True
        else:
            h = _starts(toks, i, HEDGES)
            if h:
                hedged = True
                i += h
                continue
        i += 1
    plain = not (hedged or clause.aside)
    return [_Mention(label, neg, plain) for label, neg in found]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse_answer_detail(text: str | None, labels: LabelSet) -> ParsedAnswer:
    """Parse one answer against a label set; see the module docstring for the rule."""
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"an answer must be a string or None, got {type(text).__name__}")
    if not isinstance(labels, LabelSet):
        raise ConfigError(f"labels must be a msce.labels.LabelSet, got {type(labels).__name__}")
    raw = "" if text is None else text
    words = tuple(normalize(raw).split())
    if not words:
        return ParsedAnswer(None, "empty", (), raw)
    table = _word_table(labels)
    if words in table:
        return ParsedAnswer(table[words], "exact", (table[words],), raw)

    lengths = sorted({len(k) for k in table}, reverse=True)
    mentions = [m for c in _clauses(raw) for m in _mentions(c, table, lengths)]
    matches = _unique(m.label for m in mentions)
    affirmed = _unique(m.label for m in mentions if not m.negated)
    if not mentions:
        return ParsedAnswer(None, "no-label", (), raw)
    if not affirmed:
        return ParsedAnswer(None, "negated", matches, raw)
    if len(affirmed) == 1:
        return ParsedAnswer(affirmed[0], "label-in-text", matches, raw)
    plain = _unique(m.label for m in mentions if not m.negated and m.plain)
    if len(plain) == 1:
        return ParsedAnswer(plain[0], "clear-choice", matches, raw)
    return ParsedAnswer(None, "ambiguous", matches, raw)


def parse_answer(text: str | None, labels: LabelSet) -> str | None:
    """Canonical label name for an answer, or None for the invalid bucket."""
    return parse_answer_detail(text, labels).label
