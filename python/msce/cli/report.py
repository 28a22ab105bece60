"""``msce report`` (Markdown + self-contained HTML over run directories) and ``msce compare``
(metrics and paired deltas on stdout); the reports themselves are :mod:`msce.eval.report`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from msce.errors import ConfigError
from msce.eval.report import build_report, compare_table
from msce.eval.runs import Run, load_run


def _load_runs(paths: Sequence[str]) -> list[Run]:
    runs = [load_run(p) for p in paths]
    seen: dict[str, int] = {}
    for r in runs:  # two directories with the same name (a/run, b/run) get numbered
        if r.name in seen:
            seen[r.name] += 1
            r.name = f"{r.name}#{seen[r.name]}"
        else:
            seen[r.name] = 1
    return runs


def _parse_pairs(items: Sequence[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in items or ():
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise ConfigError(f"--pair expects NORMAL:SHUFFLED run names, got {item!r}")
        out.append((a, b))
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    out = args.out or (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("msce-report"))
    head = [h.strip().lower() for h in args.head.split(",") if h.strip()] if args.head else None
    paths = build_report(runs, out, freq_csv=args.freq_csv, freq_source=args.freq_source,
                         pairs=_parse_pairs(args.pair), n_boot=args.n_boot, seed=args.seed, n_head=args.n_head,
                         head=head, train_counts_csv=args.train_counts,
                         title=args.title)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    names = [r.name for r in runs]
    base = 0
    if args.baseline is not None:
        if args.baseline in names:
            base = names.index(args.baseline)
        elif args.baseline.isdigit() and int(args.baseline) < len(runs):
            base = int(args.baseline)
        else:
            raise ConfigError(f"--baseline {args.baseline!r} is neither a run name {names} nor an index")
    text, data = compare_table(runs, baseline=base, n_boot=args.n_boot, seed=args.seed)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce report`` and ``msce compare``."""
    p = subparsers.add_parser("report", help="write a Markdown + HTML report for run directories",
                              description="Tables and plots (confusion, FS sensitivity, F1 vs FPS, long tail).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by msce eval")
    p.add_argument("--out", help="output folder (default RUN/report for one run, else ./msce-report)")
    p.add_argument("--freq-csv", help="label,count CSV (e.g. Google Books Ngram counts) for the long-tail analysis")
    p.add_argument("--freq-source", choices=["wordfreq", "ngram"], default="wordfreq",
                   help="lexical frequencies in English and Chinese: wordfreq (offline proxy, default) or ngram "
                        "(Google Books Ngram, the paper's source; cached answers in $MSCE_NGRAM_CACHE or "
                        "~/.cache/msce/ngrams, endpoint $MSCE_NGRAM_URL)")
    p.add_argument("--pair", action="append", metavar="NORMAL:SHUFFLED", help="pair two runs for the FS analysis")
    p.add_argument("--n-head", type=int,
                   help="head = this many classes with the most training clips (default: the most frequent "
                        "classes holding at least half of the training clips)")
    p.add_argument("--head", help="comma-separated head classes for the asymmetry test (overrides the default: "
                                  "training class counts, else the paper's MAFW head set)")
    p.add_argument("--train-counts", metavar="CSV",
                   help="label,count training class counts (default: read from each run's split)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="msce evaluation report")
    p.set_defaults(func=_cmd_report)

    c = subparsers.add_parser("compare", help="compare run directories (paired deltas, McNemar tests)")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--baseline", help="run name or index (default: the first)")
    c.add_argument("--n-boot", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=_cmd_compare)
