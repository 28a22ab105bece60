"""`msce freq`: per-class lexical frequencies as the ``label,frequency`` CSV that
``msce report --freq-csv`` reads.

Sources: ``ngram`` (Google Books Ngrams, the paper's source; answers cached on disk),
``wordfreq`` (an offline proxy) or an existing ``label,count`` CSV (checked against the
label set and rewritten in label order).
"""

from __future__ import annotations

import argparse


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("freq", help="write per-class lexical frequencies (Google Books Ngram, wordfreq or a CSV)")
    p.add_argument("--labels", required=True, choices=["mafw", "dfew"], help="label set")
    p.add_argument("--source", default="ngram", metavar="ngram|wordfreq|CSV",
                   help="ngram (Google Books Ngram, default), wordfreq (offline proxy) or a label,count CSV file")
    p.add_argument("--lang", default="en", choices=["en", "zh"], help="language of the class words (default en)")
    p.add_argument("--out", required=True, help="output CSV (label,frequency,word)")
    p.add_argument("--words", metavar="WORDS.csv", help="label,word CSV overriding the word of some classes")
    g = p.add_argument_group("Google Books Ngram (--source ngram)")
    g.add_argument("--corpus", help="Ngram corpus (default: en or zh, the July 2024 releases the paper uses)")
    g.add_argument("--year-start", type=int, help="first year averaged (default 1800)")
    g.add_argument("--year-end", type=int, help="last year averaged (default 2022)")
    g.add_argument("--smoothing", type=int, help="Ngram Viewer smoothing in years (default 0: raw yearly values)")
    g.add_argument("--cache-dir", help="answer cache (default $MSCE_NGRAM_CACHE or ~/.cache/msce/ngrams)")
    g.add_argument("--url", help="endpoint (default $MSCE_NGRAM_URL or https://books.google.com/ngrams/json)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from msce.eval.analysis import class_frequencies, load_words_csv, write_frequency_csv
    from msce.labels import get_label_set

    labels = get_label_set(args.labels)
    words = load_words_csv(args.words, labels) if args.words else None
    freq = class_frequencies(labels, args.source, args.lang, words, corpus=args.corpus, year_start=args.year_start,
                             year_end=args.year_end, smoothing=args.smoothing, url=args.url,
                             cache_dir=args.cache_dir)
    path = write_frequency_csv(args.out, freq)
    print(f"{path}: {len(freq.values)} classes; {freq.describe()}")
    return 0
