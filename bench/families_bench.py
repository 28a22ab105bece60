"""Decode-to-token per model family: msce vs PyAV decode + that family's HF video processor.

    .venv/bin/python bench/families_bench.py                    # every family, 1 FPS and dense, 720p 5 s
    .venv/bin/python bench/families_bench.py --families internvl,glm4v --plans dense --repeats 5

For each family the HF video processor is default-constructed (the hub checkpoints' video
settings); msce runs ``msce.load(path, plan, msce.target_for(processor))``, the peer decodes
msce's frame indices with PyAV (rgb24, frame threading) and calls the processor on them
(``do_sample_frames=False``). Before timing, the two outputs must have the same keys, shapes
and dtypes and a max abs difference of 0. Timing: one warm-up, then at least ``--repeats``
calls (more while under 2 s); median wall and CPU time (user + system, all threads).
One process runs everything (peak RSS is run_bench.py's business). Results go to
``bench/results/families-<machine>-<date>.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine_name, make_clip, run_metadata, standard_clips, time_fn, write_json  # noqa: E402

FAMILIES = {
    # family -> (transformers video processor class, kwargs for the call)
    "qwen2_5_vl": ("Qwen2VLVideoProcessor", {"do_sample_frames": False}),
    "qwen3_vl": ("Qwen3VLVideoProcessor", {"do_sample_frames": False}),
    "llava_next_video": ("LlavaNextVideoVideoProcessor", {}),
    "video_llava": ("VideoLlavaVideoProcessor", {}),
    "llava_onevision": ("LlavaOnevisionVideoProcessor", {}),
    "internvl": ("InternVLVideoProcessor", {}),
    "glm4v": ("Glm4vVideoProcessor", {"do_sample_frames": False}),
    "videomae": ("VideoMAEVideoProcessor", {}),
    "smolvlm": ("SmolVLMVideoProcessor", {}),  # SmolVLM2: two Lanczos resizes (longest edge 1456, then 364)
}
PLANS = ("fps1", "dense")


def _processor(family: str):
    import transformers

    cls_name, _ = FAMILIES[family]
    cls = getattr(transformers, cls_name)
    return cls(cap_pixels_per_frame=False) if family == "qwen2_5_vl" else cls()


def _hf_run(path: str, indices: list[int], proc, call_kwargs: dict):
    import numpy as np
    import torch

    from peers import pyav_decode

    def run() -> dict:
        frames = pyav_decode(path, indices, "rgb24")
        video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
        del frames
        out = proc(videos=[video], return_tensors="pt", **call_kwargs)
        return {k: v for k, v in out.items() if hasattr(v, "shape")}

    return run


def _msce_run(path: str, spec, target):
    import msce

    def run() -> dict:
        return dict(msce.load(path, spec, target).to_hf())

    return run


def _check(got: dict, ref: dict) -> float:
    if set(got) != set(ref):
        raise AssertionError(f"keys differ: msce {sorted(got)} vs HF {sorted(ref)}")
    worst = 0.0
    for k in ref:
        if got[k].shape != ref[k].shape or got[k].dtype != ref[k].dtype:
            raise AssertionError(f"{k}: msce {tuple(got[k].shape)} {got[k].dtype} vs HF {tuple(ref[k].shape)} "
                                 f"{ref[k].dtype}")
        worst = max(worst, float((got[k].double() - ref[k].double()).abs().max()))
    return worst


def bench_family(family: str, path: str, plan: str, repeats: int) -> dict:
    import msce

    from peers import plan_spec

    proc = _processor(family)
    _, call_kwargs = FAMILIES[family]
    target = msce.target_for(proc)
    spec = plan_spec(plan)
    first = msce.load(path, spec, target)
    indices = [int(i) for i in first.indices]
    msce_run = _msce_run(path, spec, target)
    hf_run = _hf_run(path, indices, proc, call_kwargs)
    got, ref = msce_run(), hf_run()
    max_abs = _check(got, ref)
    if max_abs != 0.0:
        raise AssertionError(f"{family} {plan}: msce and PyAV + HF differ (max abs {max_abs})")
    shapes = {k: list(v.shape) for k, v in ref.items()}
    del got, ref
    row = {"family": family, "plan": plan, "processor": type(proc).__name__, "frames": len(indices),
           "target": target.to_dict(), "shapes": shapes, "max_abs": max_abs}
    row["msce"] = time_fn(msce_run, warmup=1, min_repeats=repeats, budget_s=2.0)
    row["pyav_hf"] = time_fn(hf_run, warmup=1, min_repeats=repeats, budget_s=2.0)
    row["speedup_wall"] = row["pyav_hf"]["median_ms"] / row["msce"]["median_ms"]
    row["speedup_cpu"] = row["pyav_hf"]["cpu_median_ms"] / row["msce"]["cpu_median_ms"]
    return row


def _load_average() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def markdown(rows: list[dict]) -> str:
    lines = ["| family | plan | frames | output | msce ms (IQR) | PyAV + HF ms (IQR) | wall x | msce CPU ms | "
             "PyAV + HF CPU ms | CPU x | max abs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, h = r["msce"], r["pyav_hf"]
        out = ", ".join(f"{k} {v}" for k, v in r["shapes"].items() if k != "video_grid_thw")
        lines.append(f"| {r['family']} | {'1 FPS' if r['plan'] == 'fps1' else 'dense'} | {r['frames']} | {out} | "
                     f"{m['median_ms']:,.0f} ({m['iqr_ms']:,.0f}) | {h['median_ms']:,.0f} ({h['iqr_ms']:,.0f}) | "
                     f"{r['speedup_wall']:.2f}x | {m['cpu_median_ms']:,.0f} | {h['cpu_median_ms']:,.0f} | "
                     f"{r['speedup_cpu']:.2f}x | {r['max_abs']:g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--plans", default=",".join(PLANS))
    ap.add_argument("--clip", default="720p_5s")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        ap.error(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    clip = {c.name: c for c in standard_clips()}[args.clip]
    path = str(make_clip(clip))
    meta = run_metadata()
    meta["load_average_start"] = _load_average()
    rows = []
    for family in families:
        for plan in [p for p in args.plans.split(",") if p]:
            t0 = time.perf_counter()
            row = bench_family(family, path, plan, args.repeats)
            row["load_average"] = _load_average()
            rows.append(row)
            print(f"{family:17s} {plan:5s} msce {row['msce']['median_ms']:8.0f} ms  PyAV+HF "
                  f"{row['pyav_hf']['median_ms']:8.0f} ms  {row['speedup_wall']:.2f}x wall "
                  f"{row['speedup_cpu']:.2f}x CPU  (load {row['load_average'][:1]}, {time.perf_counter() - t0:.0f} s)",
                  flush=True)
    meta["load_average_end"] = _load_average()
    out = args.out or RESULTS_DIR / f"families-{machine_name()}-{time.strftime('%Y%m%d-%H%M')}.json"
    write_json(out, {"meta": meta, "clip": args.clip, "rows": rows})
    print(markdown(rows))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
