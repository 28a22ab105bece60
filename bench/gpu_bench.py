#!/usr/bin/env python
"""GPU decode-to-token benchmark (issue 8): frames/s from an H.264 file to Qwen2.5-VL
``pixel_values_videos`` on a CUDA device, at 720p and 1080p, dense and 1 FPS.

    python bench/gpu_bench.py                       # every pipeline available here
    python bench/gpu_bench.py --clips 720p_5s --plans dense --pipelines msce_nvdec,msce_cpu
    python bench/gpu_bench.py --check               # also compare every output with msce's CPU path

Needs a CUDA machine (msce built with CUDA, a driver, torch with CUDA); elsewhere it prints why
and exits with status 2. DALI pipelines run when ``nvidia-dali-cuda130`` is installed
(``pip install 'msce[dali]'``).

Pipelines (all on the same clip and the same frame indices, msce's plan; every timed call ends
with ``torch.cuda.synchronize()`` so the GPU work is inside the timed region):
  msce_nvdec      msce.load(device="cuda"), NVDEC decode (MSCE_CUDA_DECODE=nvdec): frames stay on the
                  GPU. H2D: only the compressed packets (inside NVDEC); no frame copies.
  msce_cpudec     msce.load(device="cuda") with CPU decode + GPU transform (MSCE_CUDA_DECODE=cpu):
                  H2D copies of every decoded frame (pinned staging, async) ARE included.
  msce_cpu        msce.load() on the CPU into pinned memory (the CPU-only path). No H2D.
  msce_cpu_h2d    msce_cpu followed by .to("cuda"): the CPU path's tensor delivered to the GPU; the H2D
                  copy of the output IS included.
  dali_torch      DALI fn.decoders.video (mixed, frames=[...]) -> torch: float, bicubic antialias
                  interpolate, rescale/normalize, Qwen patchify with view/permute. No frame H2D.
  dali_msce       msce.io.dali.load: DALI decode + msce's CUDA kernels. No frame H2D.
  transform_only  msce.preprocess(device="cuda") on frames already decoded into GPU memory: the
                  kernels alone (for "transform <= 10 % of decode").

Results: bench/results/gpu-<machine>-<date>.json and a Markdown table on stdout, with the GPU,
driver, CUDA runtime and NVDEC status in the metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Clip, make_clip, probe_clip, run_metadata, time_fn, write_json  # noqa: E402

CLIPS = {
    "720p_5s": Clip("720p_5s", 1280, 720, 5),
    "1080p_10s": Clip("1080p_10s", 1920, 1080, 10),
}
PLANS = ("dense", "fps1")
PIPELINES = ("msce_nvdec", "msce_cpudec", "msce_cpu", "msce_cpu_h2d", "dali_torch", "dali_msce", "transform_only")
H2D = {
    "msce_nvdec": "no (frames decoded on the GPU)",
    "msce_cpudec": "yes: every decoded frame, pinned + async",
    "msce_cpu": "no (output stays on the CPU)",
    "msce_cpu_h2d": "yes: the output tensor",
    "dali_torch": "no (frames decoded on the GPU)",
    "dali_msce": "no (frames decoded on the GPU)",
    "transform_only": "no (input frames already on the GPU)",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plan_spec(name: str):
    import msce

    return msce.plan.dense() if name == "dense" else msce.plan.uniform(float(name[3:]))


def gpu_metadata() -> dict:
    import torch

    import msce
    from msce._native import C

    ok, why = msce.cuda_available()
    meta: dict[str, Any] = {"cuda_available": ok, "cuda_reason": why, "cuda_status": dict(C.cuda_status()),
                            "nvdec": list(C.nvdec_status()), "torch_cuda": torch.version.cuda}
    if ok:
        props = torch.cuda.get_device_properties(0)
        meta.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                     "sm": f"{props.major}.{props.minor}", "sm_count": props.multi_processor_count})
    try:
        import nvidia.dali as dali

        meta["dali"] = dali.__version__
    except ImportError:
        meta["dali"] = None
    return meta


# ---- pipelines -------------------------------------------------------------------------------
def torch_qwen25(frames_u8, out_hw: tuple[int, int]):
    """Frames (F, H, W, 3) uint8 on the GPU -> Qwen2.5-VL patches, with torch ops only: the
    float32 bicubic antialiased resize a GPU user would write (not HF's uint8 kernel)."""
    import torch
    import torch.nn.functional as F

    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=frames_u8.device).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=frames_u8.device).view(1, 3, 1, 1)
    x = frames_u8.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=out_hw, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 255)
    x = (x / 255.0 - mean) / std
    t = x.shape[0]
    if t % 2:
        x = torch.cat([x, x[-1:]], dim=0)
        t += 1
    p, m, c = 14, 2, 3
    gh, gw = out_hw[0] // p, out_hw[1] // p
    x = x.view(t // 2, 2, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape((t // 2) * gh * gw, c * 2 * p * p).contiguous()


def make_pipeline(name: str, path: str, plan: str, target, indices: list[int]) -> Callable[[], Any]:
    import torch

    import msce

    spec = plan_spec(plan)
    sync = torch.cuda.synchronize

    if name in ("msce_nvdec", "msce_cpudec"):
        mode = "nvdec" if name == "msce_nvdec" else "cpu"

        def run():
            os.environ["MSCE_CUDA_DECODE"] = mode
            b = msce.load(path, spec, target, device="cuda")
            sync()
            return b.data

        return run
    if name == "msce_cpu":
        return lambda: msce.load(path, spec, target).data
    if name == "msce_cpu_h2d":

        def run():
            x = msce.load(path, spec, target, pin_memory=True).data.to("cuda", non_blocking=True)
            sync()
            return x

        return run
    if name == "dali_torch":
        from msce.io.dali import DaliDecoder

        dec = DaliDecoder("cuda")
        meta = msce.VideoReader(path).metadata
        out_hw = target.output_size(len(indices), meta.height, meta.width)

        def run():
            frames = dec.decode(path, indices)
            x = torch_qwen25(frames, out_hw)
            sync()
            return x

        return run
    if name == "dali_msce":
        from msce.io import dali

        dec = dali.DaliDecoder("cuda")
        return lambda: dali.load(path, spec, target, device="cuda", decoder=dec).data
    if name == "transform_only":
        reader = msce.VideoReader(path)
        frames = torch.from_numpy(reader.get_frames(indices)).cuda()
        fps = reader.metadata.average_fps

        def run():
            b = msce.preprocess(frames, target, fps=fps, device="cuda")
            sync()
            return b.data

        return run
    raise ValueError(f"unknown pipeline {name!r}")


def available(name: str) -> str | None:
    """None when ``name`` can run here, else why not."""
    from msce._native import C

    if name == "msce_nvdec":
        ok, why = C.nvdec_status()
        return None if ok else why
    if name.startswith("dali"):
        from msce.io import dali

        ok, why = dali.available()
        return None if ok else why
    return None


def check(name: str, out, ref) -> dict:
    import torch

    got = out.detach().float().cpu()
    want = ref.float()
    if got.shape != want.shape:
        return {"shape": list(got.shape), "ref_shape": list(want.shape)}
    d = (got - want).abs()
    return {"max_abs_vs_msce_cpu": float(d.max()), "mean_abs_vs_msce_cpu": float(d.mean()),
            "bit_identical": bool(torch.equal(out.detach().cpu(), ref))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--plans", default=",".join(PLANS))
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--budget", type=float, default=5.0, help="seconds of timed repeats per cell")
    ap.add_argument("--check", action="store_true", help="compare outputs with msce's CPU path")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    import msce

    ok, why = msce.cuda_available()
    if not ok:
        log(f"gpu_bench: CUDA is not usable here: {why}")
        return 2
    clips = [CLIPS[c] for c in args.clips.split(",") if c]
    plans = [p for p in args.plans.split(",") if p]
    pipelines = [p for p in args.pipelines.split(",") if p]
    target = msce.QwenVL("2.5")
    meta = run_metadata()
    meta["gpu"] = gpu_metadata()
    results: dict[str, Any] = {"metadata": meta, "target": target.to_dict(), "h2d_included": H2D, "cells": []}
    log(f"gpu_bench on {meta['gpu'].get('gpu')} (NVDEC: {meta['gpu']['nvdec']})")
    for clip in clips:
        path = str(make_clip(clip))
        results.setdefault("clips", {})[clip.name] = probe_clip(Path(path))
        for plan in plans:
            indices = list(msce.plan.resolve(plan_spec(plan), msce.VideoReader(path).metadata).indices)
            ref = msce.load(path, plan_spec(plan), target).data if args.check else None
            for name in pipelines:
                cell: dict[str, Any] = {"clip": clip.name, "plan": plan, "pipeline": name, "frames": len(indices),
                                        "h2d_included": H2D.get(name)}
                why_not = available(name)
                if why_not:
                    cell["skipped"] = why_not
                    results["cells"].append(cell)
                    log(f"  {clip.name} {plan} {name}: skipped ({why_not})")
                    continue
                try:
                    fn = make_pipeline(name, path, plan, target, indices)
                    stats = time_fn(fn, warmup=1, min_repeats=3, max_repeats=20, budget_s=args.budget)
                    cell.update(stats)
                    cell["frames_per_s"] = len(indices) / (stats["median_ms"] / 1e3)
                    if args.check and ref is not None:
                        cell.update(check(name, fn(), ref))
                    log(f"  {clip.name} {plan} {name}: {cell['frames_per_s']:.0f} frames/s "
                        f"(median {stats['median_ms']:.1f} ms)")
                except Exception as exc:  # noqa: BLE001 - one failing pipeline must not hide the others
                    cell["error"] = f"{type(exc).__name__}: {exc}"
                    log(f"  {clip.name} {plan} {name}: ERROR {cell['error']}")
                finally:
                    os.environ.pop("MSCE_CUDA_DECODE", None)
                    torch.cuda.empty_cache()
                results["cells"].append(cell)

    out = args.out or RESULTS_DIR / f"gpu-{meta['machine']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(out, results)
    print(table(results))
    log(f"results: {out}")
    return 0


def table(results: dict) -> str:
    cells = results["cells"]
    names = []
    for c in cells:
        if c["pipeline"] not in names:
            names.append(c["pipeline"])
    rows = ["| clip | plan | frames | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names)]
    keys = []
    for c in cells:
        if (c["clip"], c["plan"]) not in keys:
            keys.append((c["clip"], c["plan"]))
    for clip, plan in keys:
        row = [c for c in cells if c["clip"] == clip and c["plan"] == plan]
        vals = []
        for n in names:
            c = next((c for c in row if c["pipeline"] == n), None)
            if c is None:
                vals.append("")
            elif "frames_per_s" in c:
                vals.append(f"{c['frames_per_s']:.0f}")
            else:
                vals.append("skipped" if "skipped" in c else "error")
        rows.append(f"| {clip} | {plan} | {row[0]['frames']} | " + " | ".join(vals) + " |")
    rows.append("")
    rows.append("frames/s (median); H2D copies included: " +
                "; ".join(f"{k}: {v}" for k, v in results["h2d_included"].items() if k in names))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
