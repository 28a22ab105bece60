"""Lexical frequency of the class words (Sec. 3.3, Table 1, Fig. 2).

Three sources, each giving one number per class:

* ``"ngram"``: the paper's own source, Google Books Ngrams (Sec. 3.3: "the July 2024
  corpora for each emotion label in English and Chinese"): :func:`ngram_frequency`
  (module :mod:`msce.eval.analysis.ngram`, the client of the Ngram Viewer's JSON
  endpoint, with an on-disk cache so an analysis reruns offline).
* ``"wordfreq"``: :func:`lexical_frequency`, the ``wordfreq`` package's multi-source
  frequencies (offline, inside the wheel): a proxy, not the paper's data.
* a ``label,count`` CSV (:func:`load_frequency_csv`), e.g. counts gathered by hand.

Which word stands for a class is the table :data:`CLASS_WORDS` (language -> class ->
word), overridable per class (``words=``, ``msce freq --words``). See docs/evaluation.md
for the choices the paper leaves open.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from msce.errors import ConfigError, DatasetError
from msce.labels import LabelSet
from msce.eval.analysis._common import label_names as _label_names
from msce.eval.analysis import ngram as _ngram
from msce.eval.analysis.ngram import *  # noqa: F403  (re-exported: the ngram client's public names)
from msce.eval.analysis.ngram import NGRAM_CORPORA, NGRAM_SMOOTHING, NGRAM_YEARS, ngram_frequency

__all__ = [
    "CHINESE_WORDS", "CLASS_WORDS", "class_words", "load_words_csv", "lexical_frequency", "load_frequency_csv",
    "write_frequency_csv", *_ngram.__all__, "FREQUENCY_SOURCES", "ClassFrequencies", "class_frequencies",
]


# --------------------------------------------------------------------------- class words

#: Chinese words for the DFEW/MAFW class names (msce's translations: the paper uses
#: Chinese frequencies but does not list its words).
CHINESE_WORDS: dict[str, str] = {
    "anger": "愤怒",
    "angry": "愤怒",
    "disgust": "厌恶",
    "fear": "恐惧",
    "happiness": "快乐",
    "happy": "快乐",
    "neutral": "中性",
    "sadness": "悲伤",
    "sad": "悲伤",
    "surprise": "惊讶",
    "contempt": "轻蔑",
    "anxiety": "焦虑",
    "helplessness": "无助",
    "disappointment": "失望",
}

#: The word looked up for each class, by language. English is the class label as the
#: dataset spells it (the paper: "each emotion label"), so MAFW's are nouns
#: ("happiness") and DFEW's mostly adjectives ("happy", "angry", "sad"). Chinese is
#: :data:`CHINESE_WORDS`. Override any class with ``words=`` / ``--words``.
CLASS_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "anger": "anger",
        "disgust": "disgust",
        "fear": "fear",
        "happiness": "happiness",
        "neutral": "neutral",
        "sadness": "sadness",
        "surprise": "surprise",
        "contempt": "contempt",
        "anxiety": "anxiety",
        "helplessness": "helplessness",
        "disappointment": "disappointment",
        "happy": "happy",
        "sad": "sad",
        "angry": "angry",
    },
    "zh": CHINESE_WORDS,
}


def class_words(
    labels: LabelSet | Sequence[str], lang: str = "en", words: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The word for each class, in label order: ``words`` first, then :data:`CLASS_WORDS`.

    An English class missing from the table is looked up as its own name; any other
    language needs ``words`` for every class. A class with no word, or an override for
    a class that is not in ``labels``, is a ConfigError.
    """
    names = _label_names(labels)
    words = dict(words or {})
    extra = [k for k in words if k not in names]
    if extra:
        raise ConfigError(f"words: class(es) {extra} are not among {list(names)}")
    table = CLASS_WORDS.get(lang, {})
    out = {}
    for name in names:
        word = words.get(name, table.get(name, name if lang == "en" else None))
        if word is None:
            if lang not in CLASS_WORDS:
                raise ConfigError(f"lang {lang!r} has no word table: pass words for every class (missing {name!r})")
            raise ConfigError(f"no {lang} word known for class {name!r}; pass words={{{name!r}: ...}}")
        if not isinstance(word, str) or not word.strip():
            raise ConfigError(f"words: the word for class {name!r} must be a non-empty string, got {word!r}")
        out[name] = word.strip()
    return out


def _label_rows(path: str | os.PathLike, labels: LabelSet | Sequence[str],
                what: str) -> tuple[Path, tuple, LabelSet | None, list[list[str]]]:
    """(path, class names, the LabelSet or None, the non-blank rows) of a ``label,...`` CSV."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} CSV not found: {path}")
    names = _label_names(labels)
    lset = labels if isinstance(labels, LabelSet) else None
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    return path, names, lset, rows


def load_words_csv(path: str | os.PathLike, labels: LabelSet | Sequence[str]) -> dict[str, str]:
    """Read ``label,word`` rows (header optional) as a ``words`` override.

    Labels go through the label set's names and synonyms (case-insensitive) when a
    LabelSet is given; a class may appear once. Classes left out keep their table word.
    """
    path, names, lset, rows = _label_rows(path, labels, "words")
    out: dict[str, str] = {}
    for lineno, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[1].strip():
            raise DatasetError(f"{path}:{lineno}: expected label,word, got {row}")
        raw, word = row[0].strip(), row[1].strip()
        name = lset.canonical(raw) if lset else (raw.lower() if raw.lower() in names else None)
        if name is None:
            if lineno == 1:
                continue  # header
            raise DatasetError(f"{path}:{lineno}: {raw!r} is not one of the classes {list(names)}")
        if name in out:
            raise DatasetError(f"{path}:{lineno}: class {name!r} appears twice")
        out[name] = word
    return out


# --------------------------------------------------------------------------- wordfreq (proxy)


def lexical_frequency(
    labels: LabelSet | Sequence[str], lang: str = "en", words: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Word frequency of each class word from ``wordfreq`` (a proxy for web-text prevalence).

    ``wordfreq.word_frequency(word, lang)`` is the word's share of tokens in its
    multi-source corpus (e.g. 1e-5). The words are :func:`class_words` (Chinese,
    ``lang="zh"``, is segmented by jieba inside wordfreq, offline); ``words``
    overrides the word of any class.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jieba's old regexes emit SyntaxWarnings when first compiled
            from wordfreq import word_frequency
    except ImportError:
        raise ConfigError("lexical_frequency needs the 'wordfreq' package (pip install 'msce[eval]')") from None
    if lang == "zh":
        try:
            import logging

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import jieba
            jieba.setLogLevel(logging.WARNING)  # silence the dictionary-loading banner on stderr
        except ImportError:
            pass  # wordfreq raises its own error naming the missing extra
    out = {}
    for name, word in class_words(labels, lang, words).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = float(word_frequency(word, lang))
    return out


# --------------------------------------------------------------------------- CSV files


def load_frequency_csv(path: str | os.PathLike, labels: LabelSet | Sequence[str]) -> dict[str, float]:
    """Read ``label,count`` rows (header optional) mapped to class names.

    Labels go through the label set's names and synonyms (case-insensitive) when a
    LabelSet is given. Every class must appear exactly once; extra rows are an error
    too, so a typo cannot silently drop a class. Columns after the second are ignored.
    """
    path, names, lset, rows = _label_rows(path, labels, "frequency")
    out: dict[str, float] = {}
    for lineno, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DatasetError(f"{path}:{lineno}: expected label,count, got {row}")
        raw, cnt = row[0].strip(), row[1].strip()
        try:
            value = float(cnt)
        except ValueError:
            if lineno == 1:
                continue  # header
            raise DatasetError(f"{path}:{lineno}: count {cnt!r} is not a number") from None
        name = lset.canonical(raw) if lset else (raw.lower() if raw.lower() in names else None)
        if name is None:
            raise DatasetError(f"{path}:{lineno}: {raw!r} is not one of the classes {list(names)}")
        if name in out:
            raise DatasetError(f"{path}:{lineno}: class {name!r} appears twice")
        out[name] = value
    missing = [n for n in names if n not in out]
    if missing:
        raise DatasetError(f"{path}: no count for class(es) {missing}")
    return {n: out[n] for n in names}


def write_frequency_csv(path: str | os.PathLike, freq: "ClassFrequencies") -> Path:
    """Write ``label,frequency,word`` rows in label order (what :func:`load_frequency_csv`
    and ``msce report --freq-csv`` read; the word column is for people)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "frequency", "word"])
        for name, value in freq.values.items():
            w.writerow([name, repr(float(value)), freq.words.get(name, "")])
    return path


# --------------------------------------------------------------------------- one call per source

#: Sources :func:`class_frequencies` knows by name (anything else is a CSV path).
FREQUENCY_SOURCES = ("ngram", "wordfreq")
_LANG_NAMES = {"en": "English", "zh": "Chinese"}


@dataclass(frozen=True)
class ClassFrequencies:
    """One frequency per class and where it came from.

    ``source``: ``"ngram"``, ``"wordfreq"`` or ``"csv"``; ``corpus``: the Ngram corpus,
    wordfreq's language, or the CSV file name; ``years`` and ``smoothing`` are set for
    Ngrams only; ``words``: the word looked up per class (empty for a CSV).
    """

    values: Mapping[str, float]
    source: str
    lang: str = ""
    corpus: str = ""
    words: Mapping[str, str] = field(default_factory=dict)
    years: tuple[int, int] | None = None
    smoothing: int | None = None

    @property
    def is_proxy(self) -> bool:
        """True for wordfreq, which is not the paper's data (Google Books Ngrams)."""
        return self.source == "wordfreq"

    @property
    def title(self) -> str:
        """A short name for tables and plot panels."""
        lang = _LANG_NAMES.get(self.lang, self.lang)
        if self.source == "ngram":
            return f"Google Books Ngram {self.corpus} {self.years[0]}-{self.years[1]}"
        if self.source == "wordfreq":
            return f"wordfreq ({lang})"
        return f"counts from {self.corpus}"

    def describe(self) -> str:
        """One sentence naming the source, corpus, years, smoothing and words."""
        words = ", ".join(f"{k}={v}" for k, v in self.words.items())
        if self.source == "ngram":
            return (f"Google Books Ngram corpus {self.corpus!r}, mean yearly frequency over "
                    f"{self.years[0]}-{self.years[1]} (smoothing {self.smoothing}); words: {words}.")
        if self.source == "wordfreq":
            return (f"wordfreq ({_LANG_NAMES.get(self.lang, self.lang)}), a proxy: not the paper's source "
                    f"(Google Books Ngrams, July 2024 corpora); words: {words}.")
        return f"User counts from {self.corpus}."

    def to_dict(self) -> dict:
        return {"source": self.source, "lang": self.lang, "corpus": self.corpus, "proxy": self.is_proxy,
                "years": list(self.years) if self.years else None, "smoothing": self.smoothing,
                "words": dict(self.words), "values": dict(self.values)}


def class_frequencies(
    labels: LabelSet | Sequence[str],
    source: str = "ngram",
    lang: str = "en",
    words: Mapping[str, str] | None = None,
    *,
    corpus: str | None = None,
    year_start: int | None = None,
    year_end: int | None = None,
    smoothing: int | None = None,
    url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ClassFrequencies:
    """Frequencies of every class from ``source`` with their provenance.

    ``source``: ``"ngram"`` (:func:`ngram_frequency`; corpus default
    :data:`NGRAM_CORPORA` [lang], years :data:`NGRAM_YEARS`, smoothing
    :data:`NGRAM_SMOOTHING`), ``"wordfreq"`` (:func:`lexical_frequency`) or the path of
    a ``label,count`` CSV (:func:`load_frequency_csv`). Ngram options given with another
    source are a ConfigError, as is ``words`` with a CSV.
    """
    ngram_opts = {"corpus": corpus, "year_start": year_start, "year_end": year_end, "smoothing": smoothing,
                  "url": url, "cache_dir": cache_dir}
    if source != "ngram":
        given = [k for k, v in ngram_opts.items() if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to source 'ngram', not {source!r}")
    names = _label_names(labels)
    if source == "ngram":
        if corpus is None and lang not in NGRAM_CORPORA:
            raise ConfigError(f"no default Ngram corpus for lang {lang!r} (known: {sorted(NGRAM_CORPORA)}); "
                              "pass corpus=")
        cw = class_words(labels, lang, words)
        c = corpus or NGRAM_CORPORA[lang]
        y0 = NGRAM_YEARS[0] if year_start is None else year_start
        y1 = NGRAM_YEARS[1] if year_end is None else year_end
        s = NGRAM_SMOOTHING if smoothing is None else smoothing
        values = ngram_frequency(cw, c, y0, y1, s, url=url, cache_dir=cache_dir)
        return ClassFrequencies(values, "ngram", lang, c, cw, (y0, y1), s)
    if source == "wordfreq":
        cw = class_words(labels, lang, words)
        return ClassFrequencies(lexical_frequency(labels, lang, cw), "wordfreq", lang, lang, cw)
    if words:
        raise ConfigError("words only apply to sources 'ngram' and 'wordfreq', not to a CSV of counts")
    path = Path(source)
    if path.suffix.lower() != ".csv" and not path.is_file():
        raise ConfigError(f"source must be one of {list(FREQUENCY_SOURCES)} or a label,count CSV file, got {source!r}")
    values = load_frequency_csv(path, labels)
    return ClassFrequencies({n: values[n] for n in names}, "csv", "", path.name)
