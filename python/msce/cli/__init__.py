"""The ``msce`` command line.

Each subcommand lives in its own module, which exposes ``add_cli(subparsers)``
registering a parser whose ``func`` default takes the parsed namespace and returns an
exit code. Modules are imported only when the command line is built, so ``import msce``
stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in help order.
_COMMAND_MODULES = (
    "msce.cli.demo",
    "msce.cli.info",
    "msce.cli.eval",
    "msce.cli.report",
    "msce.cli.freq",
    "msce.cli.finetune",
)


def build_parser() -> argparse.ArgumentParser:
    from msce._version import __version__

    parser = argparse.ArgumentParser(
        prog="msce",
        description="Video-to-token pipeline and evaluation toolkit for emotion recognition with VLMs.",
    )
    parser.add_argument("--version", action="version", version=f"msce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand module not present in this build
                continue
            raise
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from msce.errors import MsceError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MsceError as exc:
        print(f"msce: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("msce: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
