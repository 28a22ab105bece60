"""Google Books Ngram frequencies, the paper's lexical-frequency source (Sec. 3.3).

:func:`ngram_frequency` asks the JSON endpoint behind the Ngram Viewer for the yearly
series of each word and averages it over the chosen years. Every answer is cached on
disk, one JSON file per (corpus, word, years, smoothing, case), so an analysis reruns
offline; the endpoint is configurable (``url=`` or ``$MSCE_NGRAM_URL``).

The Ngram endpoint
------------------
``GET {NGRAM_URL}?content=WORD&year_start=Y0&year_end=Y1&corpus=C&smoothing=S
&case_insensitive=true`` answers a JSON list of series, one object per ngram with
``"ngram"`` (the text), ``"type"`` (``"NGRAM"``; with ``case_insensitive`` a
``"CASE_INSENSITIVE"`` sum named ``"WORD (All)"`` plus its ``"EXPANSION"`` rows whose
``"parent"`` is that sum) and ``"timeseries"`` (one value per year Y0..Y1: the word's
share of all 1-grams of that year, after a centred moving average of ``smoothing``
years on each side). A word the corpus lacks gives an empty list. Corpus names: the
July 2024 releases are ``"en"`` and ``"zh"`` (books up to 2022); the 2019 releases
``"en-2019"`` and ``"zh-Hans-2019"`` (up to 2019). The service has no published API
contract: this is the interface the Viewer's own pages use (books.google.com/ngrams/info
describes the corpora and query syntax).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

from msce.errors import ConfigError, DatasetError

__all__ = [
    "NGRAM_URL",
    "NGRAM_URL_ENV",
    "NGRAM_CACHE_ENV",
    "NGRAM_CORPORA",
    "NGRAM_YEARS",
    "NGRAM_SMOOTHING",
    "NgramError",
    "NgramUnreachableError",
    "NgramWordMissingError",
    "default_ngram_cache",
    "ngram_frequency",
]

#: The JSON endpoint the Ngram Viewer's pages query (see the module docstring).
NGRAM_URL = "https://books.google.com/ngrams/json"
#: Environment variable that replaces :data:`NGRAM_URL` (e.g. a local mirror or a test server).
NGRAM_URL_ENV = "MSCE_NGRAM_URL"
#: Environment variable that replaces the cache folder (default ~/.cache/msce/ngrams).
NGRAM_CACHE_ENV = "MSCE_NGRAM_CACHE"
#: Corpus per language: the July 2024 releases the paper names (Sec. 3.3).
NGRAM_CORPORA: dict[str, str] = {"en": "en", "zh": "zh"}
#: Years averaged by default: the whole span of the 2024 corpora as the Viewer offers it
#: (msce's choice; the paper names no years).
NGRAM_YEARS: tuple[int, int] = (1800, 2022)
#: Smoothing by default: 0, the raw yearly values (msce's choice; the Viewer's default is 3).
NGRAM_SMOOTHING = 0

_QUERY_SYNTAX = set(",*+/()[]:=")  # characters the Viewer reads as query operators


class NgramError(DatasetError):
    """The Google Books Ngram service gave no usable answer."""


class NgramUnreachableError(NgramError):
    """The Ngram service could not be reached (or failed) and no cached answer exists."""


class NgramWordMissingError(NgramError):
    """A word has no series in the chosen corpus and years."""


def default_ngram_cache() -> Path:
    """``$MSCE_NGRAM_CACHE`` if set, else ``~/.cache/msce/ngrams``."""
    env = os.environ.get(NGRAM_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "msce" / "ngrams"


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _cache_file(cache_dir: Path, corpus: str, word: str, years: tuple[int, int], smoothing: int,
                case_insensitive: bool) -> Path:
    span = f"{years[0]}-{years[1]}_s{smoothing}" + ("_ci" if case_insensitive else "")
    return cache_dir / _quote(corpus) / span / f"{_quote(word)}.json"


def _get_json(url: str, params: Mapping[str, object], timeout: float, retries: int) -> object:
    """GET ``url?params`` and decode JSON; retries 429/5xx answers with a growing pause."""
    from msce._version import __version__

    full = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    req = urllib.request.Request(full, headers={"User-Agent": f"msce/{__version__}", "Accept": "application/json"})
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
            break
        except urllib.error.HTTPError as exc:
            exc.close()  # only the status is used; release the connection now
            if attempt < retries and (exc.code == 429 or exc.code >= 500):
                wait = exc.headers.get("Retry-After", "") if exc.headers else ""
                time.sleep(min(float(wait) if wait.isdigit() else 2.0 ** attempt, 30.0))
                continue
            raise
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NgramError(f"the Ngram service at {url} answered something that is not JSON ({exc})") from None


def _series(response: object, word: str, corpus: str, years: tuple[int, int], url: str) -> list[float] | None:
    """The yearly series of ``word`` in an endpoint answer (None when the word is absent)."""
    if not isinstance(response, list):
        raise NgramError(f"the Ngram service at {url} answered {type(response).__name__}, expected a list of series")
    by_ngram = {}
    for item in response:
        if not isinstance(item, dict) or "ngram" not in item or "timeseries" not in item:
            raise NgramError(f"the Ngram service at {url} answered a series without 'ngram'/'timeseries': "
                             f"{item!r:.200}")
        by_ngram.setdefault(item["ngram"], item["timeseries"])
    ts = by_ngram.get(f"{word} (All)", by_ngram.get(word))  # the case-insensitive sum first
    if ts is None:
        if response:
            raise NgramError(f"the Ngram service at {url} answered series {sorted(by_ngram)} for {word!r} "
                             f"in corpus {corpus!r}, none of them the word itself")
        return None
    n = years[1] - years[0] + 1
    try:
        vals = [float(v) for v in ts]
    except (TypeError, ValueError):
        raise NgramError(f"the Ngram series of {word!r} holds non-numbers: {ts!r:.200}") from None
    if len(vals) != n:
        raise NgramError(f"asked corpus {corpus!r} for {word!r} in {years[0]}-{years[1]} ({n} years) and got "
                         f"{len(vals)} values: choose years inside the corpus's span")
    if not all(math.isfinite(v) and v >= 0 for v in vals):
        raise NgramError(f"the Ngram series of {word!r} holds negative or non-finite values")
    return vals


def ngram_frequency(
    words: Sequence[str] | Mapping[str, str],
    corpus: str = NGRAM_CORPORA["en"],
    year_start: int = NGRAM_YEARS[0],
    year_end: int = NGRAM_YEARS[1],
    smoothing: int = NGRAM_SMOOTHING,
    *,
    case_insensitive: bool = True,
    url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 30.0,
    retries: int = 2,
) -> dict[str, float]:
    """Mean yearly Google Books Ngram frequency of each word over ``year_start..year_end``.

    ``words``: the words (result keyed by word) or a mapping key -> word (e.g. class ->
    word; result keyed by key). A word's frequency is the plain mean of its yearly
    series (each value: the word's share of all 1-grams of that year in ``corpus``).
    ``case_insensitive`` (msce's default: True) sums every capitalisation (the
    ``"WORD (All)"`` series). ``url``: the endpoint, default ``$MSCE_NGRAM_URL`` or
    :data:`NGRAM_URL`. Each answer is cached as JSON under ``cache_dir`` (default
    :func:`default_ngram_cache`) and read from there on later calls without a request.

    Raises :class:`NgramUnreachableError` (naming the URL) when a word is not cached
    and the service cannot be reached, and :class:`NgramWordMissingError` (naming the
    word and corpus) when the corpus has no occurrence of a word in those years.
    """
    items = list(words.items()) if isinstance(words, Mapping) else [(w, w) for w in words]
    if not items:
        raise ConfigError("ngram_frequency: words is empty")
    for _, w in items:
        if not isinstance(w, str) or not w.strip() or w != w.strip():
            raise ConfigError(f"ngram_frequency: words must be non-empty strings without outer spaces, got {w!r}")
        bad = sorted(set(w) & _QUERY_SYNTAX)
        if bad:
            raise ConfigError(f"ngram_frequency: word {w!r} holds {''.join(bad)!r}, which the Ngram Viewer reads "
                              "as query syntax")
    if not isinstance(corpus, str) or not corpus:
        raise ConfigError(f"ngram_frequency: corpus must be a corpus name such as 'en' or 'zh', got {corpus!r}")
    for pname, v in (("year_start", year_start), ("year_end", year_end), ("smoothing", smoothing)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"ngram_frequency: {pname} must be an integer, got {v!r}")
    if year_start > year_end:
        raise ConfigError(f"ngram_frequency: year_start {year_start} is after year_end {year_end}")
    if smoothing < 0:
        raise ConfigError(f"ngram_frequency: smoothing must be >= 0, got {smoothing}")
    if timeout <= 0 or retries < 0:
        raise ConfigError(f"ngram_frequency: need timeout > 0 and retries >= 0, got {timeout}, {retries}")
    url = url or os.environ.get(NGRAM_URL_ENV) or NGRAM_URL
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_ngram_cache()
    years = (year_start, year_end)
    out: dict[str, float] = {}
    for key, word in items:
        path = _cache_file(cache, corpus, word, years, smoothing, case_insensitive)
        if path.is_file():
            try:
                response = json.loads(path.read_text(encoding="utf-8"))["response"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise NgramError(f"cached Ngram answer {path} is unreadable ({exc}); "
                                 "delete it to query again") from None
        else:
            params = {"content": word, "year_start": year_start, "year_end": year_end, "corpus": corpus,
                      "smoothing": smoothing}
            if case_insensitive:
                params["case_insensitive"] = "true"
            try:
                response = _get_json(url, params, timeout, retries)
            except (urllib.error.URLError, OSError) as exc:  # HTTPError, refused, DNS, timeout
                reason = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else str(
                    getattr(exc, "reason", exc))
                raise NgramUnreachableError(
                    f"the Google Books Ngram service at {url} could not answer for {word!r} in corpus {corpus!r} "
                    f"({reason}), and no cached answer exists under {cache}") from None
            _series(response, word, corpus, years, url)  # check the shape before caching
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            record = {"url": url, "params": params, "response": response}
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        vals = _series(response, word, corpus, years, url)
        if vals is None or not any(vals):
            raise NgramWordMissingError(
                f"{word!r} does not occur in Google Books Ngram corpus {corpus!r} in {year_start}-{year_end}; "
                "pick another word for its class (words=... or msce freq --words)")
        out[key] = sum(vals) / len(vals)
    return out
