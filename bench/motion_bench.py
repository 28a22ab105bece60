"""Micro-expressions: how much of a 0.25-0.5 s event each frame plan keeps, how well the
motion pass spots events, and what the motion pass costs next to decoding.

    python bench/motion_bench.py                   # 100 clips + a harder set, JSON in bench/results/
    python bench/motion_bench.py --n 40 --no-hard  # quicker

Sets (msce.synth, made once under bench/.media/motion_*/): 320x320, 3 s, 25 fps H.264 clips
of real face photos (astronaut + four LFW faces) with one micro-expression each (five
actions in turn, 0.25-0.5 s, amplitude 0.7-1.0, half of the clips on a mild baseline
expression), head drift, lighting change and noise. The "hard" set doubles the drift,
rotation, lighting change and noise.

Coverage at equal frame budget (msce.synth.evaluate): sparse 1 FPS; MSCE keyframes + m
uniform gap frames; motion-aware gaps (the same m frames per gap at the motion peaks), for
m = 1, 2, 4. Spotting: precision / recall / F1 at temporal IoU >= 0.5. Cost per clip
(median of repeats; wall and process CPU time), on the synthetic clips and on a 720p 5-s face
clip: the motion pass = dense decode of the face crop at 96x96 (msce.load) + native motion
energy (+ spotting and planning); against the full-resolution dense decode and the MSCE
plan's decode into Qwen2.5-VL tensors. And the whole motion-aware load (analysis + load of
its plan into Qwen2.5-VL tensors, analysis cache cleared each call) with the clip decoded
once (held for both) and twice (``buffer_mb=0``), outputs checked equal before timing; on
the 720p face clip also ``msce demo``'s cell (analysis and crop on the detected face).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MEDIA_DIR, RESULTS_DIR, run_metadata, time_fn, write_json  # noqa: E402

HARD = dict(drift=0.04, rotation=2.0, lighting=0.12, noise=4.0)


def make_set(name: str, n: int, seed: int, force: bool, **spec_kw) -> tuple[Path, list, float | None]:
    from msce.synth import generate_set, read_events

    d = MEDIA_DIR / f"motion_{name}"
    csv = d / "events.csv"
    if csv.exists() and not force:
        recs = read_events(csv)
        if len(recs) == n:
            return d, recs, None
    t0 = time.perf_counter()
    recs = generate_set(d, n=n, seed=seed, **spec_kw)
    return d, recs, (time.perf_counter() - t0) / n


def _motion_aware_load(path: Path, crop, size: int, buffer_mb: float):
    """msce.load_segments of a motion-aware MSCE plan into Qwen2.5-VL tensors, analysis
    included (its cache cleared first); ``crop`` for both the analysis and the load."""
    import msce
    from msce import motion

    def run():
        motion._CACHE.clear()
        spec = motion.motion_aware_gaps(1.0, 4, crop=crop, size=size, buffer_mb=buffer_mb)
        return msce.load_segments(path, spec, msce.QwenVL("2.5"), crop=crop, pin_memory=False)

    return run


def cost_clip(path: Path, crop: tuple[int, int, int, int], size: int, face: bool = False) -> dict:
    """Median wall / CPU ms of each step of the motion pass on one clip, and of the decodes
    it is compared with."""
    import torch

    import msce
    from msce import motion

    small_target = msce.Frames(size=(size, size), layout="NHWC")
    small = msce.load(path, msce.plan.dense(), small_target, crop=crop, pin_memory=False).data.numpy()
    curve = motion.analyze(path, crop=crop, size=size)
    meta = msce.VideoReader(path).metadata
    cells = {
        "motion_decode": lambda: msce.load(path, msce.plan.dense(), small_target, crop=crop, pin_memory=False),
        "motion_energy": lambda: motion.motion_energy(small),
        "motion_energy_1thread": lambda: motion.motion_energy(small, threads=1),
        "spot_and_plan": lambda: (motion.spot(curve),
                                  msce.motion.motion_aware_gaps(1.0, 4).resolve(meta, motion=curve)),
        "decode_full_dense": lambda: msce.load(path, msce.plan.dense(), msce.Frames(layout="NHWC"), pin_memory=False),
        "msce_qwen25": lambda: msce.load_segments(path, msce.plan.keyframes_with_gaps(1.0, 4), msce.QwenVL("2.5"),
                                                  pin_memory=False),
    }
    for name, c in [("box", crop)] + ([("face", "face")] if face else []):
        once, twice = _motion_aware_load(path, c, size, 512.0), _motion_aware_load(path, c, size, 0.0)
        a, b = once(), twice()
        if not (a[0].stats.get("shared_decode") and [x.plan.indices for x in a] == [x.plan.indices for x in b]
                and all(torch.equal(x.data, y.data) for x, y in zip(a, b))):
            raise SystemExit(f"{path}: the one-pass motion-aware load differs from the two-pass one ({name})")
        cells[f"motion_aware_qwen25_{name}_one_pass"] = once
        cells[f"motion_aware_qwen25_{name}_two_passes"] = twice
    out = {k: time_fn(fn, budget_s=2.0) for k, fn in cells.items()}
    return {"frames": int(meta.num_frames), "size": f"{meta.width}x{meta.height}",
            **{k: {"median_ms": v["median_ms"], "cpu_median_ms": v.get("cpu_median_ms")} for k, v in out.items()}}


def cost(directory: Path, records: list, clips: int, size: int) -> dict:
    """The synthetic clips (medians over the first ``clips``) and a 720p 5-s face clip
    (bench/faces_bench.py's, made once) with a fixed box around the head."""
    per = [cost_clip(directory / r.video, r.crop(), size) for r in records[:clips]]
    keys = [k for k in per[0] if isinstance(per[0][k], dict)]
    out = {"synthetic_320p_3s": {"frames": per[0]["frames"], "size": per[0]["size"],
                                 **{k: {m: float(np.median([p[k][m] for p in per])) for m in ("median_ms",
                                                                                          "cpu_median_ms")}
                                    for k in keys}}}
    try:
        from faces_bench import make_face_clip

        import importlib.util

        has_face = importlib.util.find_spec("mediapipe") is not None
        out["face_720p_5s"] = cost_clip(make_face_clip("720p_5s"), (448, 120, 512, 480), size, face=has_face)
    except ImportError as exc:  # PyAV or PIL missing: the synthetic numbers stand alone
        print(f"skipping the 720p clip: {exc}")
    return out


def length_bins(results: dict, records: list) -> list[dict]:
    """Coverage by event length: sparse sampling should cover about length x rate."""
    by = {r.video: r for r in records}
    edges = [0.25, 1 / 3, 5 / 12, 0.5 + 1e-9]
    rows = []
    names = [row["plan"] for row in results["coverage"]]
    for lo, hi in zip(edges, edges[1:]):
        clips = [c for c in results["clips"] if lo <= by[c["video"]].duration < hi]
        if not clips:
            continue
        row = {"length_s": f"{lo:.2f}-{min(hi, 0.5):.2f}", "events": len(clips),
               "mean_length_s": float(np.mean([by[c["video"]].duration for c in clips]))}
        for nm in names:
            cov = []
            for c in clips:
                r = by[c["video"]]
                ts = np.asarray(c["plans"][nm]) / r.fps
                cov.append(bool(np.any((ts >= r.onset) & (ts <= r.offset))))
            row[nm] = float(np.mean(cov))
        rows.append(row)
    return rows


def markdown(name: str, res: dict) -> str:
    lines = [f"**{name}** ({res['spotting']['events']} clips)", "",
             "| plan | frames/clip | event coverage | apex coverage (>= 50 %) | mean peak seen |",
             "|---|---:|---:|---:|---:|"]
    for r in res["coverage"]:
        lines.append(f"| {r['plan']} | {r['mean_frames']:.1f} | {r['coverage']:.1%} | {r['apex_coverage']:.1%} | "
                     f"{r['mean_peak']:.2f} |")
    s = res["spotting"]
    lines += ["", f"Spotting (IoU >= 0.5): P {s['precision']:.3f}, R {s['recall']:.3f}, F1 {s['f1']:.3f} "
              f"({s['spots']} spots, {s['events']} events); mean |error| onset {1000 * s['onset_error_s']:.0f} ms, "
              f"apex {1000 * s['apex_error_s']:.0f} ms, offset {1000 * s['offset_error_s']:.0f} ms.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="clips per set")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--gap-frames", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--size", type=int, default=96, help="motion analysis size")
    ap.add_argument("--cost-clips", type=int, default=5)
    ap.add_argument("--no-hard", action="store_true")
    ap.add_argument("--cost-only", action="store_true", help="skip coverage and spotting (sets must exist)")
    ap.add_argument("--force", action="store_true", help="regenerate the sets")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "motion.json")
    args = ap.parse_args()

    from msce.synth import evaluate_set

    out: dict = {"meta": run_metadata(), "config": vars(args) | {"out": str(args.out)}, "sets": {}}
    sets = [] if args.cost_only else [("standard", {})] + ([] if args.no_hard else [("hard", HARD)])
    for name, kw in sets:
        d, recs, gen_s = make_set(name, args.n, args.seed + (0 if name == "standard" else 1), args.force, **kw)
        res = evaluate_set(d, recs, gap_frames=args.gap_frames, size=args.size, time_decode=False)
        res.pop("example")
        res["generate_s_per_clip"] = gen_s
        res["by_length"] = length_bins(res, recs)
        res["mean_event_s"] = float(np.mean([r.duration for r in recs]))
        out["sets"][name] = res
        print(markdown(name, res))
        made = "reused" if gen_s is None else f"generated at {gen_s:.2f} s/clip"
        print(f"mean event length {res['mean_event_s']:.3f} s (sparse 1 FPS geometry: about that share covered); "
              f"set {made}")
        for row in res["by_length"]:
            print("  ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    d, recs, _ = make_set("standard", args.n, args.seed, False)
    out["cost"] = cost(d, recs, args.cost_clips, args.size)
    for clip, cells in out["cost"].items():
        print(f"cost on {clip} ({cells['frames']} frames, {cells['size']}), median ms wall / CPU:")
        for k, v in cells.items():
            if isinstance(v, dict):
                print(f"  {k:38s} {v['median_ms']:8.1f} / {v['cpu_median_ms']:8.1f}")
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
