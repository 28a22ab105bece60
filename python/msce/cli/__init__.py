"""The ``msce`` command line.

Each subcommand lives in its own module, which exposes ``add_cli(subparsers)``
registering a parser whose ``func`` default takes the parsed namespace and returns an
exit code. Modules are imported only when the command line is built, so ``import msce``
stays light.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

# Modules that contribute subcommands, in help order.
_COMMAND_MODULES = (
    "msce.cli.demo",
    "msce.cli.info",
    "msce.cli.eval",
    "msce.cli.report",
    "msce.cli.freq",
    "msce.cli.finetune",
    "msce.cli.tiny_model",
    "msce.cli.sweep",
)


_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
              "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Normal runs show msce's own output and one progress bar: no weight-loading bars,
    library info logs or FutureWarnings (``-v/--verbose`` keeps them). The variables are
    read when transformers / huggingface_hub are imported, which the commands do later; a
    value the user set is kept. Environment and warning filters are restored when the
    command returns, so calling :func:`main` in a Python process (or a test) leaves no trace
    on later commands or the child processes they start."""
    if not enabled:
        yield
        return
    saved = {k: os.environ.get(k) for k in _QUIET_ENV}
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|torch|torchvision|peft)\b")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    """Run one command. A usage mistake the command finds (:class:`msce.cli._options.UsageError`)
    prints one line naming the flag and returns 2, as argparse's own checks do; other msce
    errors and OS errors (a missing file, a refused permission) print one line and return 1;
    Ctrl-C returns 130 and says how to resume."""
    from msce.cli._options import UsageError
    from msce.errors import MsceError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"msce {args.command}" if getattr(args, "command", None) else "msce"
    try:
        with _quiet(not getattr(args, "verbose", False)):
            return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (MsceError, OSError) as exc:
        text = str(exc) if isinstance(exc, MsceError) else f"{type(exc).__name__}: {exc}"
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = {"eval": " Finished videos are saved: rerun the same command to resume where it stopped.",
                "finetune": " Checkpoints are saved: rerun it with --resume latest to continue."}.get(args.command, "")
        print(f"\n{prog}: interrupted.{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
