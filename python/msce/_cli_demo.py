"""`msce demo`: the decode-to-token path on a clip it generates, end to end.

Generates a 1280x720 H.264 clip, then loads it under the paper's frame plans (1 FPS
sparse, 5 FPS, dense, MSCE keyframes + gap frames, frame-shuffled) into Qwen2.5-VL and
Qwen3-VL tensors, and prints frames, grids, tokens and time for each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the decode-to-token pipeline on a generated clip")
    p.add_argument("--out", type=Path, default=None, help="directory for the generated clip (default: a temp dir)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the generated clip")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    import msce
    from msce._media import make_test_clip

    console = Console()
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise msce.ConfigError(f"--size must look like 1280x720 (got {args.size!r})") from None
    with tempfile.TemporaryDirectory(prefix="msce-demo-") as tmp:
        root = args.out or Path(tmp)
        clip = root / f"demo_{w}x{h}.mp4"
        t0 = time.perf_counter()
        make_test_clip(clip, seconds=args.seconds, size=(w, h))
        console.print(f"generated {clip.name} in {time.perf_counter() - t0:.2f} s")
        reader = msce.VideoReader(clip, threads=args.threads)
        m = reader.metadata
        console.print(f"[bold]{m.codec}[/] {m.width}x{m.height}, {m.num_frames} frames, {m.average_fps:.2f} fps, "
                      f"{m.duration:.2f} s, {m.pixel_format}, colour {m.color_space}/{m.color_range}")
        plans = [
            ("sparse 1 FPS", msce.plan.uniform(1.0)),
            ("5 FPS", msce.plan.uniform(5.0)),
            ("dense", msce.plan.dense()),
            ("MSCE keyframes+gaps", msce.plan.keyframes_with_gaps(1.0, 4)),
            ("frame-shuffled 1 FPS", msce.plan.shuffled(msce.plan.uniform(1.0), seed=0)),
        ]
        table = Table(title="decode -> token-ready tensors")
        for col in ("plan", "target", "frames", "indices", "tensor", "grid_thw", "LLM tokens", "ms"):
            table.add_column(col)
        for name, spec in plans:
            for target in (msce.QwenVL("2.5"), msce.QwenVL("3")):
                t0 = time.perf_counter()
                batch = msce.load(clip, spec, target, threads=args.threads)
                ms = (time.perf_counter() - t0) * 1000
                idx = list(batch.indices)
                shown = ",".join(map(str, idx[:6])) + (",..." if len(idx) > 6 else "")
                table.add_row(name, f"Qwen{target.version}-VL", str(len(batch)), shown, str(tuple(batch.data.shape)),
                              str(batch.grid_thw[0].tolist()), str(batch.num_tokens), f"{ms:.0f}")
        console.print(table)
        segs = msce.load_segments(clip, msce.plan.keyframes_with_gaps(1.0, 4), msce.QwenVL("2.5"))
        roles = " ".join(f"{s.roles[0][0].upper()}{s.plan.groups[0]}({len(s)})" for s in segs)
        console.print(f"MSCE segments from one decode pass: {roles}  (K = keyframe, G = gap frames)")
    return 0
