"""Lexical frequency of the class words (Sec. 3.3, Table 1, Fig. 2).

Frequencies come from ``wordfreq`` (built-in proxy, English or Chinese) or a user CSV
``label,count`` (e.g. Google Books Ngram counts).
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from msce.errors import ConfigError, DatasetError
from msce.labels import LabelSet
from msce.eval.analysis._common import label_names as _label_names

__all__ = ["CHINESE_WORDS", "lexical_frequency", "load_frequency_csv"]


#: Chinese words for the DFEW/MAFW class names (used with wordfreq's "zh" data).
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

def lexical_frequency(
    labels: LabelSet | Sequence[str], lang: str = "en", words: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Word frequency of each class word from ``wordfreq`` (a proxy for web-text prevalence).

    ``wordfreq.word_frequency(word, lang)`` is the word's share of tokens in its
    multi-source corpus (e.g. 1e-5). English uses the class name itself; Chinese
    (``lang="zh"``, segmented by jieba inside wordfreq, offline) uses
    :data:`CHINESE_WORDS`. ``words`` overrides the word of any class.
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
    names = _label_names(labels)
    words = dict(words or {})
    out = {}
    for name in names:
        word = words.get(name)
        if word is None:
            if lang == "en":
                word = name
            elif lang == "zh":
                word = CHINESE_WORDS.get(name)
                if word is None:
                    raise ConfigError(f"no Chinese word known for class {name!r}; pass words={{{name!r}: ...}}")
            else:
                raise ConfigError(f"lang {lang!r} needs an explicit words mapping for every class")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = float(word_frequency(word, lang))
    return out


def load_frequency_csv(path: str | os.PathLike, labels: LabelSet | Sequence[str]) -> dict[str, float]:
    """Read ``label,count`` rows (header optional) mapped to class names.

    Labels go through the label set's names and synonyms (case-insensitive) when a
    LabelSet is given. Every class must appear exactly once; extra rows are an error
    too, so a typo cannot silently drop a class.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"frequency CSV not found: {path}")
    names = _label_names(labels)
    lset = labels if isinstance(labels, LabelSet) else None
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
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
