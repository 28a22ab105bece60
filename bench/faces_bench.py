"""What ``crop="face"`` costs on top of decode-to-token, and what the detectors cost.

    python bench/faces_bench.py                 # 360p 3 s and 720p 5 s clips, JSON in bench/results/
    python bench/faces_bench.py --clips 720p_5s --repeats 7

Clips: a real face (scikit-image's astronaut, her head) moving and zooming slowly over a
textured background that pans (scikit-image's coffee), 25 FPS H.264 (libx264 medium,
GOP 250), made once under bench/.media/. For each plan (MSCE keyframes at 1 FPS with 4 gap
frames each, through load_segments; 1 FPS; dense) into Qwen2.5-VL tensors (HF video
defaults), three cells:

- ``full``: no crop (the baseline decode-to-token time);
- ``face``: ``crop="face"`` with the defaults (detection, tracking, crop);
- ``boxes``: the same crop boxes given explicitly (the crop without the face finding).

``overhead`` = face / full - 1 (median wall times, and the same with the process's CPU time,
which is steadier on a shared machine; the face path also emits far fewer tokens). Detectors are timed alone on a 640x480 frame pinned to one core (wall and CPU
time per frame).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MEDIA_DIR, RESULTS_DIR, run_metadata, summarize, write_json  # noqa: E402

FPS = 25
CLIPS = {"360p_3s": (360, 640, 3.0), "720p_5s": (720, 1280, 5.0)}


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def make_face_clip(name: str, force: bool = False) -> Path:
    """A talking-head-like clip: the astronaut's head drifting and zooming over a panning
    background; the face spans about a fifth of the frame height."""
    import av
    from skimage import data

    h, w, seconds = CLIPS[name]
    path = MEDIA_DIR / f"faces_{name}.mp4"
    if path.exists() and not force:
        return path
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    n = round(seconds * FPS)
    coffee = _resize(data.coffee(), int(w * 1.3), int(h * 1.3))
    head = data.astronaut()[20:260, 110:340]
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "medium", "crf": "23", "g": "250"}
        for t in range(n):
            a = t / max(n - 1, 1)
            ox, oy = int(0.25 * w * a), int(0.1 * h * a)
            frame = coffee[oy:oy + h, ox:ox + w].copy()
            s = (0.45 + 0.1 * a) * h / 240
            hd = _resize(head, round(230 * s), round(240 * s))
            x = int(w * (0.35 + 0.1 * np.sin(2 * np.pi * a)))
            y = int(h * 0.2)
            frame[y:y + hd.shape[0], x:x + hd.shape[1]] = hd[: h - y, : w - x]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def plans():
    import msce

    return {"kf1+gap4": (msce.plan.keyframes_with_gaps(1.0, 4), True), "fps1": (msce.plan.uniform(1.0), False),
            "dense": (msce.plan.dense(), False)}


def time_cells(cells: dict, repeats: int, warmup: int = 1) -> dict:
    """Wall and CPU (all threads of this process) time of each cell, the cells interleaved
    (a different order each round) so that load from other processes hits them alike."""
    walls: dict[str, list[float]] = {k: [] for k in cells}
    cpus: dict[str, list[float]] = {k: [] for k in cells}
    names = list(cells)
    for r in range(warmup + repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            w0, c0 = time.perf_counter(), time.process_time()
            out = cells[k]()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            del out
            gc.collect()
            if r >= warmup:
                walls[k].append(w)
                cpus[k].append(c)
    return {k: {**summarize(walls[k]), "cpu_median_ms": 1000 * statistics.median(cpus[k])} for k in cells}


def bench_clip(path: Path, repeats: int) -> dict:
    import msce

    target = msce.QwenVL("2.5")
    out = {}
    for name, (plan, segments) in plans().items():
        load = msce.load_segments if segments else msce.load

        def tokens(r):
            return sum(b.num_tokens for b in r) if segments else r.num_tokens

        face_run = load(path, plan, target, crop="face")
        first = face_run[0] if segments else face_run
        faces = first.faces
        boxes = faces.crop_boxes() if not segments else [c for b in face_run for c in b.faces.crop_boxes()]
        cells = {
            "full": lambda: load(path, plan, target),
            "face": lambda: load(path, plan, target, crop="face"),
            "boxes": lambda: load(path, plan, target, crop=boxes),
        }
        res = time_cells(cells, repeats)
        full_tokens = tokens(load(path, plan, target))
        st = first.stats["faces"]
        res["summary"] = {
            "frames": len(faces) if not segments else sum(len(b) for b in face_run),
            "detect_frames": st["detect_frames"], "detect_ms_per_frame": st["detect_ms_per_frame"],
            "mode": st["mode"], "crop_side": faces.crop_side, "tokens_full": full_tokens,
            "tokens_face": tokens(face_run),
            "overhead_face": res["face"]["median_ms"] / res["full"]["median_ms"] - 1,
            "overhead_boxes": res["boxes"]["median_ms"] / res["full"]["median_ms"] - 1,
            "overhead_face_cpu": res["face"]["cpu_median_ms"] / res["full"]["cpu_median_ms"] - 1,
        }
        out[name] = res
    return out


def bench_detectors(repeats: int = 100) -> dict:
    """Per-frame cost on a 640x480 frame, this process pinned to one core."""
    from skimage import data

    from msce.faces import get_detector

    frame = np.full((480, 640, 3), 110, np.uint8)
    frame[:, 64:576] = data.astronaut()[16:496]
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    out = {}
    try:
        for name, n in (("blazeface", repeats), ("retinaface", max(10, repeats // 10))):
            try:
                t_load = time.perf_counter()
                det = get_detector(name)  # first use in this process: loads the model
                load_ms = 1000 * (time.perf_counter() - t_load)
            except Exception as exc:  # noqa: BLE001 - an optional detector may be missing
                out[name] = {"error": str(exc)}
                continue
            for _ in range(5):
                det.detect(frame)
            walls, c0 = [], time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                det.detect(frame)
                walls.append(time.perf_counter() - t0)
            out[name] = {**summarize(walls), "cpu_ms_per_frame": 1000 * (time.process_time() - c0) / n,
                         "load_ms": load_ms}
            out[name].pop("times_ms")
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="*", default=list(CLIPS), choices=list(CLIPS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "faces.json")
    args = ap.parse_args(argv)

    result = {"meta": run_metadata(), "detectors_640x480_one_core": bench_detectors(), "clips": {}}
    for name in args.clips:
        result["clips"][name] = bench_clip(make_face_clip(name), args.repeats)
    write_json(args.out, result)

    print("detector (640x480, one core): " + ", ".join(
        f"{k} {v['median_ms']:.2f} ms wall / {v['cpu_ms_per_frame']:.2f} ms CPU (load {v['load_ms']:.0f} ms)" for k, v in
        result["detectors_640x480_one_core"].items() if "median_ms" in v))
    print(f"{'clip':8} {'plan':9} {'full ms':>8} {'face ms':>8} {'boxes ms':>8} {'overhead':>8} "
          f"{'full cpu':>8} {'face cpu':>8} {'cpu ovh':>8} {'det fr':>6} {'det ms/fr':>9} {'tokens full->face':>18}")
    for clip, plans_ in result["clips"].items():
        for plan, r in plans_.items():
            s = r["summary"]
            print(f"{clip:8} {plan:9} {r['full']['median_ms']:8.1f} {r['face']['median_ms']:8.1f} "
                  f"{r['boxes']['median_ms']:8.1f} {100 * s['overhead_face']:7.1f}% "
                  f"{r['full']['cpu_median_ms']:8.1f} {r['face']['cpu_median_ms']:8.1f} "
                  f"{100 * s['overhead_face_cpu']:7.1f}% {s['detect_frames']:6d} "
                  f"{s['detect_ms_per_frame']:9.2f} {s['tokens_full']:>8} -> {s['tokens_face']:<8}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
