"""``msce sweep CONFIG.toml``: models x strategies x FPS values x folds into run directories
and one report (:mod:`msce.eval.sweep`)."""

from __future__ import annotations

import argparse
import sys

from msce.cli.eval import _ray_options, add_ray_flags


def _cmd_sweep(args: argparse.Namespace) -> int:
    from msce.eval.sweep import load_sweep, points_table, run_sweep

    sweep = load_sweep(args.config)
    if args.dry_run:
        for row in points_table(sweep.points()):
            print("  ".join(row))
        return 0
    from msce.cli._options import make_strategy  # registered names and package.module:Class

    res = run_sweep(sweep, progress=not args.no_progress, strategy_factory=make_strategy,
                    log=lambda s: print(s, file=sys.stderr), ray=_ray_options(args))
    print(f"{len(res['ran'])} run(s) made, {len(res['skipped'])} finished ones skipped; "
          f"report: {res['report']['html']}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``msce sweep``."""
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of models x strategies x FPS x folds and write one report",
        description="Expand a TOML grid into runs (finished ones are skipped, unfinished ones resume), run them, "
                    "and write one report averaging the official folds (docs/evaluation.md, \"Sweeps\").",
    )
    p.add_argument("config", help="the sweep's TOML file")
    p.add_argument("--dry-run", action="store_true", help="list the grid's runs and stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_ray_flags(p)
    p.set_defaults(func=_cmd_sweep)
