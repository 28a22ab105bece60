"""`msce info VIDEO...`: what the reader sees in a file."""

from __future__ import annotations

import argparse
import json


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a video's metadata (true frame count, fps, size, colour)")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--stream", type=int, default=None,
                   help="describe this video stream (the container's stream index, as ffprobe numbers "
                        "streams) instead of FFmpeg's best one")
    p.set_defaults(func=_run)


def _stream_line(s: dict, selected: int) -> str:
    """One video stream as `msce info` prints it."""
    fps = f"{s['fps']:.3f} fps" if s["fps"] > 0 else "fps unknown"
    duration = f"{s['duration']:.3f} s" if s["duration"] >= 0 else "duration unknown"
    frames = f"{s['frames']} frames" if s["frames"] >= 0 else "frames unknown"
    flags = [f for f, on in (("default", s["default"]), ("cover picture", s["attached_pic"]),
                             (f"rotated {s['rotation']}", s["rotation"]), ("selected", s["index"] == selected)) if on]
    return (f"{s['index']}: {s['codec']} {s['width']}x{s['height']} {fps}, {duration}, {frames}"
            + (f" ({', '.join(flags)})" if flags else ""))


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from msce.io.video import VideoReader

    out = []
    for v in args.videos:
        out.append(VideoReader(v, stream=args.stream).metadata.to_dict())
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    console = Console()
    for m in out:
        t = Table(title=m["path"], show_header=False)
        for k, val in m.items():
            if k == "video_streams":
                t.add_row(k, "\n".join(_stream_line(s, m["stream"]) for s in val))
            elif k != "path":
                t.add_row(k, str(val))
        console.print(t)
    return 0
