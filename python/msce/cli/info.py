"""`msce info VIDEO...`: what the reader sees in a file."""

from __future__ import annotations

import argparse
import json


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a video's metadata (true frame count, fps, size, colour)")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from msce.io.video import VideoReader

    out = []
    for v in args.videos:
        out.append(VideoReader(v).metadata.to_dict())
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    console = Console()
    for m in out:
        t = Table(title=m["path"], show_header=False)
        for k, val in m.items():
            if k != "path":
                t.add_row(k, str(val))
        console.print(t)
    return 0
