"""``msce tiny-model DIR``: build a tiny random-weight Qwen-VL checkpoint offline
(:func:`msce.testing.tiny.make_tiny_model`), to try ``msce eval`` without downloading a
model. Its answers are meaningless; runs and reports made with it say so."""

from __future__ import annotations

import argparse
from pathlib import Path

from msce.cli._options import HelpFormatter, UsageError


def _run(args: argparse.Namespace) -> int:
    from msce.testing.tiny import TINY_VERSIONS, make_tiny_model

    if args.version not in TINY_VERSIONS:  # argparse restricts choices; the library is the authority
        raise UsageError(f"--version must be one of {', '.join(TINY_VERSIONS)}")
    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"DIR {out} exists and is not a folder")
    path = make_tiny_model(out, version=args.version, seed=args.seed)
    print(f"{path}: tiny random-weight Qwen{args.version}-VL (answers are meaningless; use it to try "
          f"msce eval --model {path} --device cpu offline)")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny random-weight Qwen-VL model offline (to try msce eval)",
                       description="Write a tiny random-weight Qwen-VL checkpoint (real architecture, toy sizes, "
                                   "gibberish answers) to DIR. The same version and seed give identical files.",
                       formatter_class=HelpFormatter)
    p.add_argument("dir", metavar="DIR", help="output folder")
    p.add_argument("--version", default="2.5", choices=["2.5", "3"], help="Qwen-VL generation")
    p.add_argument("--seed", type=int, default=0, help="weight seed")
    p.add_argument("-v", "--verbose", action="store_true", help="show library logs and warnings")
    p.set_defaults(func=_run)
