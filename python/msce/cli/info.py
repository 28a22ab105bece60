"""`msce info VIDEO...`: what the reader sees in a file."""

from __future__ import annotations

import argparse
import json


def ffprobe_rotation(clockwise: int) -> int:
    """A clockwise display rotation (``VideoMetadata.rotation``, what msce applies to decoded
    frames) in ffprobe's convention: the display matrix's counter-clockwise angle in
    [-180, 180), the ``rotation`` ffprobe prints (a phone held upright: -90; upside down: -180)."""
    ccw = (-int(clockwise)) % 360
    return ccw - 360 if ccw >= 180 else ccw


def _info(meta) -> dict:
    """``meta.to_dict()`` with ``rotation`` as ffprobe prints it and msce's clockwise value
    beside it as ``rotation_clockwise``."""
    out = {}
    for k, v in meta.to_dict().items():
        if k == "rotation":
            out["rotation"] = ffprobe_rotation(v)
            out["rotation_clockwise"] = int(v)
        else:
            out[k] = v
    return out


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a video's metadata (true frame count, fps, size, colour)",
                       description="Print what msce's reader finds in each video. rotation is given as ffprobe "
                                   "prints it (counter-clockwise degrees of the display matrix, -90 for a phone "
                                   "held upright); rotation_clockwise is the clockwise turn msce applies to the "
                                   "decoded frames (VideoMetadata.rotation). Unreadable files get an error line "
                                   "each, the others are still printed, and the exit status is 1.")
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
                             (f"rotation {ffprobe_rotation(s['rotation'])}", s["rotation"]), ("selected", s["index"] == selected)) if on]
    return (f"{s['index']}: {s['codec']} {s['width']}x{s['height']} {fps}, {duration}, {frames}"
            + (f" ({', '.join(flags)})" if flags else ""))


def _run(args: argparse.Namespace) -> int:
    """Every readable video is printed; each one that cannot be read gets its own error line
    on stderr (the others are still printed) and the exit status is then 1."""
    import sys

    from rich.console import Console
    from rich.table import Table

    from msce.errors import MsceError
    from msce.io.video import VideoReader

    out = []
    failed = 0
    for v in args.videos:
        try:
            out.append(_info(VideoReader(v, stream=args.stream).metadata))
        except (MsceError, OSError) as exc:
            failed += 1
            text = str(exc) if isinstance(exc, MsceError) else f"{type(exc).__name__}: {exc}"
            print(f"msce info: error: {text}", file=sys.stderr)
    status = 1 if failed else 0
    if not out:
        return status
    if args.json:
        print(json.dumps(out, indent=2))
        return status
    console = Console()
    for m in out:
        t = Table(title=m["path"], show_header=False)
        for k, val in m.items():
            if k == "video_streams":
                t.add_row(k, "\n".join(_stream_line(s, m["stream"]) for s in val))
            elif k != "path":
                t.add_row(k, str(val))
        console.print(t)
    return status
