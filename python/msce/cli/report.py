"""``msce report`` (Markdown + self-contained HTML over run directories) and ``msce compare``
(metrics and paired deltas on stdout); the reports themselves are :mod:`msce.eval.report`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from msce.cli._options import UsageError
from msce.eval.report import build_report, compare_table
from msce.eval.report.compare import default_baseline, tiny_models
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


def _run_index(runs: Sequence[Run], text: str, flag: str) -> int:
    """The run ``text`` names: a run name, a run directory path, or an index (UsageError naming ``flag``)."""
    names = [r.name for r in runs]
    if text in names:
        return names.index(text)
    path = Path(text).expanduser()
    if path.exists():
        for i, r in enumerate(runs):
            if Path(r.path).resolve() == path.resolve():
                return i
    if text.isdigit() and int(text) < len(runs):
        return int(text)
    raise UsageError(f"{flag} {text!r} is neither a run name ({', '.join(names)}), a run directory given on the "
                     f"command line, nor an index 0..{len(runs) - 1}")


def _parse_pairs(items: Sequence[str] | None, runs: Sequence[Run] = ()) -> list[tuple[str, str]]:
    """``NORMAL:SHUFFLED`` pairs of run names or run directory paths, as run names."""
    out = []
    for item in items or ():
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise UsageError(f"--pair expects NORMAL:SHUFFLED run names or paths, got {item!r}")
        if runs:
            a, b = (runs[_run_index(runs, x, "--pair")].name for x in (a, b))
        out.append((a, b))
    return out


def _warn_tiny(runs: Sequence[Run]) -> None:
    tiny = tiny_models(runs)
    if tiny:
        used = "; ".join(f"{run} ({model})" for run, model in tiny.items())
        print(f"note: {used}: tiny random-weight model, its scores are meaningless", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    out = args.out or (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("msce-report"))
    head = [h.strip().lower() for h in args.head.split(",") if h.strip()] if args.head else None
    pairs = _parse_pairs(args.pair, runs)
    finetune = [tuple(runs[_run_index(runs, x, "--finetune-pair")].name for x in pair)
                for pair in args.finetune_pair or ()]
    baseline = None if args.baseline is None else _run_index(runs, args.baseline, "--baseline")
    paths = build_report(runs, out, freq_csv=args.freq_csv, freq_source=args.freq_source, pairs=pairs,
                         n_boot=args.n_boot, seed=args.seed, n_head=args.n_head, head=head,
                         train_counts_csv=args.train_counts, title=args.title, baseline=baseline,
                         finetune=finetune)
    _warn_tiny(runs)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    runs = _load_runs(args.runs)
    base = default_baseline(runs) if args.baseline is None else _run_index(runs, args.baseline, "--baseline")
    text, data = compare_table(runs, baseline=base, n_boot=args.n_boot, seed=args.seed)
    _warn_tiny(runs)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce report`` and ``msce compare``."""
    p = subparsers.add_parser("report", help="write a Markdown + HTML report for run directories",
                              description="Tables and plots (confusion, predicted-label distributions, FS "
                                          "sensitivity, F1 vs FPS, long tail, training counts, base vs "
                                          "fine-tuned).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by msce eval")
    p.add_argument("--out", help="output folder (default RUN/report for one run, else ./msce-report)")
    p.add_argument("--freq-csv", help="label,count CSV (e.g. Google Books Ngram counts) for the long-tail analysis")
    p.add_argument("--freq-source", choices=["wordfreq", "ngram"], default="wordfreq",
                   help="lexical frequencies in English and Chinese: wordfreq (offline proxy, default) or ngram "
                        "(Google Books Ngram, the paper's source; cached answers in $MSCE_NGRAM_CACHE or "
                        "~/.cache/msce/ngrams, endpoint $MSCE_NGRAM_URL)")
    p.add_argument("--pair", action="append", metavar="NORMAL:SHUFFLED",
                   help="pair a normal run with its frame-shuffled run (names or directories) for the FS analysis")
    p.add_argument("--finetune-pair", action="append", nargs=2, metavar=("BASE", "FINETUNED"),
                   help="pair a base model's run with its fine-tuned model's run (names, directories or indices) "
                        "for the before/after view: confusion matrices side by side, F1 vs training count "
                        "(pairs are also found from the run configs)")
    p.add_argument("--baseline", metavar="RUN",
                   help="run (name, directory or index) the comparison measures against (default: the sparse run, "
                        "else the first given)")
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
    c.add_argument("--baseline", metavar="RUN",
                   help="run name, directory or index (default: the sparse run, else the first given)")
    c.add_argument("--n-boot", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=_cmd_compare)
