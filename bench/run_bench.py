#!/usr/bin/env python
"""msce decode-to-token benchmark against its peers (issue 2, item 10).

    python bench/run_bench.py                 # the full run (~10 min on 2 idle cores), what `make bench` runs
    python bench/run_bench.py --quick         # 360p + 720p, fewer repeats
    python bench/run_bench.py --long          # also the 60-s 1080p dense peak-RSS run (msce only)
    python bench/run_bench.py --clips 720p_5s --plans dense --peers msce,pyav_decode

Phases:
  1. clips: libx264 yuv420p 25 fps (testsrc2, GOP 250; --short-gop adds GOP-25 copies) in bench/.media;
  2. verify (one subprocess): msce's plan gives the frame indices; msce vs PyAV rgb24 + HF
     Qwen2VLVideoProcessor on those indices: same grid, max/mean abs difference; msce's decoded RGB
     vs PyAV rgb24 on the 1-FPS frames;
  3. time: every (peer, clip, plan) in its own fresh subprocess: setup, one warm-up, then repeats
     (median + IQR), and the process's peak RSS (getrusage ru_maxrss, and /proc VmHWM);
  4. msce_bench (the C++ executable, when built) on the same clips and plans;
  5. --long: 60-s 1080p dense, msce only: peak RSS vs the output tensor size.
Results: bench/results/<machine>-<date>.json and a Markdown table on stdout.

This launcher imports neither torch nor msce: a child's ru_maxrss starts from its parent's
high-water mark on Linux, so the parent stays small.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BUDGET_448,
    FPS,
    MEDIA_DIR,
    PLAN_LABEL,
    PLANS,
    RESULTS_DIR,
    ROOT,
    long_clip,
    make_clip,
    probe_clip,
    run_metadata,
    standard_clips,
    write_json,
)

PEERS = ("msce", "pyav_hf", "torchcodec_hf", "qwen_vl_utils_hf", "pyav_decode", "pyav_decode_rgb")
HERE = Path(__file__).resolve()
CPP_BENCH_CANDIDATES = [ROOT / "build" / "bench" / "msce_bench"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ============================================================================================
# child processes
# ============================================================================================
def _vmhwm_mib() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def worker_main(spec: dict) -> dict:
    """Times one (peer, clip, plan) cell in this fresh process."""
    import gc

    from _common import peak_rss_mib, time_fn

    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    import peers

    fn = peers.make(spec["peer"], spec["path"], spec["plan"], spec["indices"], max_pixels=spec.get("max_pixels"),
                    source_fps=spec.get("source_fps", FPS))
    setup_s = time.perf_counter() - t0
    base_ru, base_hwm = peak_rss_mib(), _vmhwm_mib()

    timing_kw = spec.get("timing", {})
    warmup = int(timing_kw.get("warmup", 1))
    info: dict = {}
    first_ms = None
    if warmup:
        t1 = time.perf_counter()
        out = fn()
        first_ms = (time.perf_counter() - t1) * 1e3
        info = out.describe()
        del out
        gc.collect()
    min_rep = int(timing_kw.get("min_repeats", 3))
    if first_ms is not None and first_ms > 1e3 * float(timing_kw.get("slow_s", 8.0)):
        min_rep = min(min_rep, int(timing_kw.get("slow_repeats", 2)))
    timed = fn
    if not info:  # no warm-up: describe the first timed output (a few list copies)
        def timed():
            o = fn()
            if not info:
                info.update(o.describe())
            return o
    timing = time_fn(timed, warmup=0, min_repeats=min_rep, max_repeats=int(timing_kw.get("max_repeats", 10)),
                     budget_s=float(timing_kw.get("budget_s", 2.0)))
    peak_ru, peak_hwm = peak_rss_mib(), _vmhwm_mib()
    if len(info.get("indices", [])) > 300:
        idx = info["indices"]
        info["indices"] = {"count": len(idx), "first": idx[:5], "last": idx[-5:]}
    return {
        "peer": spec["peer"], "variant": spec.get("variant", spec["peer"]), "clip": spec["clip"],
        "plan": spec["plan"], "max_pixels": spec.get("max_pixels"), "setup_s": round(setup_s, 3),
        "first_call_ms": first_ms, "timing": timing, "info": info,
        "loadavg": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "rss": {"baseline_mib": base_ru, "peak_mib": peak_ru, "delta_mib": peak_ru - base_ru,
                "vmhwm_baseline_mib": base_hwm, "vmhwm_peak_mib": peak_hwm},
    }


def verify_main(spec: dict) -> dict:
    """Plans (indices) from msce, then msce vs PyAV + HF on those indices, per clip and plan."""
    import numpy as np
    import torch

    import msce
    import peers

    out: dict = {}
    for clip in spec["clips"]:
        path, name = clip["path"], clip["name"]
        reader = msce.VideoReader(path)
        meta = reader.metadata
        entry: dict = {"metadata": {k: v for k, v in meta.to_dict().items()}, "plans": {}}
        for plan in spec["plans"]:
            p = peers.plan_spec(plan).resolve(meta)
            idx = [int(i) for i in p.indices]
            rec: dict = {"indices": idx, "timestamps": [round(t, 4) for t in p.timestamps]}
            for mp in spec.get("max_pixels_list", [None]):
                key = "default" if mp is None else str(mp)
                if spec.get("skip_hf") or (mp is not None and (plan != "dense" or not name.startswith("720p"))):
                    continue
                a = peers.make_msce(path, plan, idx, max_pixels=mp)()
                b = peers.make_pyav_hf(path, plan, idx, max_pixels=mp)()
                res = {"msce_grid": a.grid_thw, "hf_grid": b.grid_thw, "grid_equal": a.grid_thw == b.grid_thw,
                       "tokens": a.tokens, "indices_equal": a.indices == b.indices}
                if a.pixel_values.shape == b.pixel_values.shape:
                    d = (a.pixel_values - b.pixel_values).abs()
                    res.update({"max_abs": float(d.max()), "mean_abs": float(d.mean()),
                                "frac_nonzero": float((d > 0).float().mean()),
                                "p99_abs": float(torch.quantile(d.flatten()[:: max(1, d.numel() // 2_000_000)],
                                                                0.99))})
                else:
                    res["shape_mismatch"] = [list(a.pixel_values.shape), list(b.pixel_values.shape)]
                rec[f"vs_pyav_hf[{key}]"] = res
                if "torchcodec_hf" in spec.get("peers", PEERS):
                    c = peers.make_torchcodec_hf(path, plan, idx, max_pixels=mp)()
                    tc = {"grid_equal": c.grid_thw == b.grid_thw}
                    if c.pixel_values.shape == b.pixel_values.shape:
                        tc["max_abs_vs_pyav_hf"] = float((c.pixel_values - b.pixel_values).abs().max())
                        tc["max_abs_vs_msce"] = float((c.pixel_values - a.pixel_values).abs().max())
                    rec[f"torchcodec_hf[{key}]"] = tc
                    del c
                del a, b
            entry["plans"][plan] = rec
        # decoded RGB, msce vs PyAV/swscale, on the 1-FPS frames
        k_idx = entry["plans"].get("fps1", {}).get("indices") or [0]
        ours = reader.get_frames(k_idx).astype(np.int16)
        theirs = np.stack(peers.pyav_decode(path, k_idx, "rgb24")).astype(np.int16)
        d = np.abs(ours - theirs)
        entry["rgb_vs_pyav"] = {"indices": k_idx, "max_levels": int(d.max()), "mean_levels": float(d.mean()),
                                "frac_gt1": float((d > 1).mean()), "frac_gt2": float((d > 2).mean())}
        out[name] = entry
    return out


def _child(mode: str, spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env.setdefault("FORCE_QWENVL_VIDEO_READER", "torchcodec")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    import importlib.util

    if importlib.util.find_spec("msce") is None and (ROOT / "python" / "msce").is_dir():
        # not installed (e.g. mid-rebuild of the editable install): use the in-tree package
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python")] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(HERE), mode], input=json.dumps(spec), capture_output=True, text=True,
                          env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-8:]
        return {"error": f"{mode} exited {proc.returncode}", "stderr_tail": tail}
    return json.loads(lines[-1])


# ============================================================================================
# C++ executable
# ============================================================================================
def find_cpp_bench() -> Path | None:
    env = os.environ.get("MSCE_BENCH_EXE")
    for p in ([Path(env)] if env else []) + CPP_BENCH_CANDIDATES:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def build_cpp_bench() -> Path | None:
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}")
    build = ROOT / "build" / "bench"
    try:
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DMSCE_CUDA=OFF",
                        "-DMSCE_BUILD_BENCH=ON"], check=True, env=env, capture_output=True, text=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "msce_bench"], check=True, env=env,
                       capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"  msce_bench build failed: {getattr(exc, 'stderr', '') or exc}"[-2000:])
        return None
    return find_cpp_bench()


def run_cpp(exe: Path, path: Path, plan: str, target: str = "qwen2.5", max_pixels: int | None = None,
            repeats: int = 5, warmup: int = 1, threads: int = 0, timeout: float = 600) -> dict:
    cplan = "dense" if plan == "dense" else f"fps:{plan[3:]}"
    cmd = [str(exe), str(path), cplan, target, str(threads), str(repeats), "--warmup", str(warmup)]
    if max_pixels:
        cmd += ["--max-pixels", str(max_pixels)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:], "cmd": cmd}
    res = json.loads(proc.stdout)
    res["cmd"] = " ".join(cmd[1:]).replace(str(MEDIA_DIR) + "/", "")
    return res


# ============================================================================================
# report
# ============================================================================================
def _ms(cell: dict | None) -> float | None:
    if not cell or "timing" not in cell:
        return None
    return cell["timing"]["median_ms"]


def _fmt_ms(cell: dict | None) -> str:
    if not cell:
        return "—"
    if "error" in cell:
        return "error"
    t = cell["timing"]
    return f"{t['median_ms']:,.0f} ({t['iqr_ms']:,.0f})" if t["median_ms"] >= 100 else \
        f"{t['median_ms']:,.1f} ({t['iqr_ms']:,.1f})"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "—"
    return f"{b / a:.2f}x"


def markdown(results: dict) -> str:
    cells = {(c["variant"], c["clip"], c["plan"]): c for c in results.get("cells", []) if "variant" in c}
    clips = [c["name"] for c in results["clips"]]
    plans = results["config"]["plans"]
    out = []
    m = results["metadata"]
    out.append(f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {m.get('mem_total_gib')} GiB, "
               f"{m['os']}; Python {m['python']}; load average before/after "
               f"{m.get('loadavg_start')} / {m.get('loadavg_end')}")
    out.append("")
    out.append("### Wall time, median ms (IQR), decode-to-token (file path in, tensors out)")
    out.append("")
    cols = ["msce", "pyav_hf", "torchcodec_hf", "qwen_vl_utils_hf", "pyav_decode", "pyav_decode_rgb"]
    names = ["msce", "PyAV + HF", "torchcodec + HF", "qwen-vl-utils + HF", "PyAV decode-only", "PyAV decode + rgb24"]
    out.append("| clip | plan | frames (msce / qvu) | tokens | " + " | ".join(names) + " |")
    out.append("|---|---|---|---|" + "---|" * len(cols))
    for clip in clips:
        for plan in plans:
            row = [cells.get((p, clip, plan)) for p in cols]
            if not any(row):
                continue
            ms, q = row[0], row[3]
            fr = f"{ms['info'].get('frames', '?') if ms and 'info' in ms else '?'} / " \
                 f"{q['info'].get('frames', '?') if q and 'info' in q else '?'}"
            tok = ms["info"].get("tokens") if ms and "info" in ms else None
            out.append(f"| {clip} | {PLAN_LABEL.get(plan, plan)} | {fr} | {tok if tok is not None else '—'} | "
                       + " | ".join(_fmt_ms(c) for c in row) + " |")
    out.append("")
    out.append("### CPU time, median ms per call (user + system, all threads of the process)")
    out.append("")
    out.append("| clip | plan | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(cols))
    for clip in clips:
        for plan in plans:
            row = [cells.get((p, clip, plan)) for p in cols]
            if not any(row):
                continue
            out.append(f"| {clip} | {PLAN_LABEL.get(plan, plan)} | " + " | ".join(
                f"{c['timing']['cpu_median_ms']:,.0f}" if c and "cpu_median_ms" in c.get("timing", {}) else "—"
                for c in row) + " |")
    out.append("")
    out.append("### Ratios (peer time / msce time; > 1 means msce is faster) and msce frames/s")
    out.append("")
    out.append("| clip | plan | msce frames/s | vs PyAV + HF | vs torchcodec + HF | vs qwen-vl-utils + HF "
               "| msce / PyAV decode-only | msce / PyAV decode+rgb24 |")
    out.append("|---|---|---|---|---|---|---|---|")
    for clip in clips:
        for plan in plans:
            ms = cells.get(("msce", clip, plan))
            if not ms or "timing" not in ms:
                continue
            t = _ms(ms)
            fps = ms["info"]["frames"] / (t / 1e3)
            dec, decr = _ms(cells.get(("pyav_decode", clip, plan))), _ms(cells.get(("pyav_decode_rgb", clip, plan)))
            dec_s = f"{t / dec:.2f}x" if dec else "—"
            decr_s = f"{t / decr:.2f}x" if decr else "—"
            out.append(f"| {clip} | {PLAN_LABEL.get(plan, plan)} | {fps:,.0f} | "
                       f"{_ratio(t, _ms(cells.get(('pyav_hf', clip, plan))))} | "
                       f"{_ratio(t, _ms(cells.get(('torchcodec_hf', clip, plan))))} | "
                       f"{_ratio(t, _ms(cells.get(('qwen_vl_utils_hf', clip, plan))))} | {dec_s} | {decr_s} |")
    out.append("")
    out.append("### Peak RSS, MiB (fresh process per cell: ru_maxrss; in brackets: growth above the "
               "process after imports and setup)")
    out.append("")
    out.append("| clip | plan | msce output MiB | " + " | ".join(names) + " |")
    out.append("|---|---|---|" + "---|" * len(cols))
    for clip in clips:
        for plan in plans:
            row = [cells.get((p, clip, plan)) for p in cols]
            if not any(row):
                continue
            ms = row[0]
            omib = ms["info"].get("output_mib") if ms and "info" in ms else None

            def rss(c: dict | None) -> str:
                if not c or "rss" not in c:
                    return "—"
                return f"{c['rss']['peak_mib']:,.0f} (+{c['rss']['delta_mib']:,.0f})"

            out.append(f"| {clip} | {PLAN_LABEL.get(plan, plan)} | {omib:,.1f} | " if omib is not None else
                       f"| {clip} | {PLAN_LABEL.get(plan, plan)} | — | ")
            out[-1] += " | ".join(rss(c) for c in row) + " |"
    ver = results.get("verify") or {}
    if ver and "error" not in ver:
        out.append("")
        out.append("### Output check before timing: msce vs PyAV rgb24 + HF Qwen2VLVideoProcessor (same indices)")
        out.append("")
        out.append("| clip | plan | budget | grid msce / HF | equal | max abs | mean abs | values differing | "
                   "decoded RGB vs PyAV (max / mean levels) | torchcodec + HF vs msce (max abs) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for clip in clips:
            e = ver.get(clip)
            if not e:
                continue
            rgb = e.get("rgb_vs_pyav", {})
            for plan in plans:
                rec = e["plans"].get(plan, {})
                for key, r in rec.items():
                    if not key.startswith("vs_pyav_hf"):
                        continue
                    budget = key[len("vs_pyav_hf["):-1]
                    budget = "HF default" if budget == "default" else f"{budget} px"
                    diff = (f"{r['max_abs']:.4f} | {r['mean_abs']:.2e} | {100 * r['frac_nonzero']:.2f} %"
                            if "max_abs" in r else f"shape {r.get('shape_mismatch')} | | ")
                    tc = rec.get("torchcodec_hf" + key[len("vs_pyav_hf"):], {})
                    tc_s = (f"{tc['max_abs_vs_msce']:.4f}" if "max_abs_vs_msce" in tc else
                            ("grid differs" if tc else "—"))
                    out.append(f"| {clip} | {PLAN_LABEL.get(plan, plan)} | {budget} | {r['msce_grid']} / "
                               f"{r['hf_grid']} | {'yes' if r['grid_equal'] else 'NO'} | {diff} | "
                               f"{rgb.get('max_levels')} / {rgb.get('mean_levels', 0):.3f} | {tc_s} |")
    qv = [c for c in results.get("cells", []) if c.get("variant") == "qwen_vl_utils_hf" and "info" in c]
    if qv:
        out.append("")
        out.append("### qwen-vl-utils (torchcodec) + HF: frames it picked (its outputs are not comparable to msce: "
                   "other frames, float32 resize)")
        out.append("")
        out.append("| clip | plan | msce indices | qwen-vl-utils indices | grid msce / qvu |")
        out.append("|---|---|---|---|---|")
        for c in qv:
            ms = cells.get(("msce", c["clip"], c["plan"]))

            def short(ix: object) -> str:
                if isinstance(ix, dict):
                    return f"{ix['count']} frames {ix['first'][:3]}…{ix['last'][-2:]}"
                ix = list(ix or [])
                return str(ix) if len(ix) <= 8 else f"{len(ix)} frames [{ix[0]}, {ix[1]}, …, {ix[-1]}]"

            out.append(f"| {c['clip']} | {PLAN_LABEL.get(c['plan'], c['plan'])} | "
                       f"{short(ms['info'].get('indices')) if ms and 'info' in ms else '—'} | "
                       f"{short(c['info'].get('indices'))} | "
                       f"{ms['info'].get('grid_thw') if ms and 'info' in ms else '—'} / {c['info'].get('grid_thw')} |")
    cpp = results.get("cpp") or []
    if cpp:
        out.append("")
        out.append("### msce_bench (C++, no Python), median wall ms [p25–p75], frames/s, peak RSS MiB")
        out.append("")
        out.append("| clip | plan | target | budget | frames | median ms [p25–p75] | CPU ms | frames/s | tokens "
                   "| output MiB | peak RSS MiB |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in cpp:
            if "error" in r:
                out.append(f"| {r.get('clip')} | {r.get('plan')} | error: {r['error'][:80]} | | | | | | | |")
                continue
            w = r["wall_ms"]
            budget = "—" if r["target"] == "decode" else ("448x448" if r["max_pixels"] == BUDGET_448 else "HF default")
            cpu = r.get("cpu_ms", {}).get("median")
            cpu_s = f"{cpu:,.0f}" if cpu is not None else "—"
            out.append(f"| {r['clip']} | {PLAN_LABEL.get(r['plan_key'], r['plan_key'])} | {r['target']} | {budget} | "
                       f"{r['frames']} | {w['median']:,.1f} [{w['p25']:,.1f}–{w['p75']:,.1f}] | {cpu_s} | "
                       f"{r['frames_per_s']:,.0f} | {r['tokens'] if r['target'] != 'decode' else '—'} | "
                       f"{r['output_mib']:,.1f} | {r['peak_rss_mib']:,.0f} |")
    tg = results.get("targets") or []
    if tg:
        out.append("")
        out.append("### Issue 2 targets")
        out.append("")
        out.append("| target | measured | met |")
        out.append("|---|---|---|")
        for t in tg:
            out.append(f"| {t['target']} | {t['measured']} | {t['met']} |")
    return "\n".join(out)


def evaluate_targets(results: dict) -> list[dict]:
    cells = {(c["variant"], c["clip"], c["plan"]): c for c in results.get("cells", []) if "variant" in c}
    tg: list[dict] = []

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    # 1. dense 720p, 448x448 budget, <= 1.15x PyAV decode-only
    m448 = _ms(cells.get(("msce_448", "720p_5s", "dense")))
    mdef = _ms(cells.get(("msce", "720p_5s", "dense")))
    dec = _ms(cells.get(("pyav_decode", "720p_5s", "dense")))
    if dec and (m448 or mdef):
        parts, ok = [], None
        if m448:
            parts.append(f"448x448 budget: msce {m448:,.0f} ms / decode-only {dec:,.0f} ms = {m448 / dec:.2f}x")
            ok = m448 / dec <= 1.15
        if mdef:
            parts.append(f"HF default budget: {mdef / dec:.2f}x")
        c448 = cells.get(("msce_448", "720p_5s", "dense"), {}).get("timing", {}).get("cpu_median_ms")
        cdec = cells.get(("pyav_decode", "720p_5s", "dense"), {}).get("timing", {}).get("cpu_median_ms")
        if c448 and cdec:
            parts.append(f"CPU time: {c448:,.0f} / {cdec:,.0f} ms = {c448 / cdec:.2f}x")
        cpp_dec = next((r for r in results.get("cpp", []) if r.get("clip") == "720p_5s" and r.get("target") == "decode"
                        and r.get("plan_key") == "dense" and "wall_ms" in r), None)
        cpp448 = next((r for r in results.get("cpp", []) if r.get("clip") == "720p_5s" and r.get("target") == "qwen2.5"
                       and r.get("plan_key") == "dense" and r.get("max_pixels") == BUDGET_448 and "wall_ms" in r), None)
        if cpp_dec and cpp448:
            parts.append(f"C++: msce 448 {cpp448['wall_ms']['median']:,.0f} ms / msce reader decode-only "
                         f"{cpp_dec['wall_ms']['median']:,.0f} ms = "
                         f"{cpp448['wall_ms']['median'] / cpp_dec['wall_ms']['median']:.2f}x")
        tg.append({"target": "dense 1280x720 -> Qwen2.5-VL 448x448 budget <= 1.15x PyAV decode-only",
                   "measured": "; ".join(parts), "met": met(ok)})
    # 2. >= 5x vs qwen-vl-utils + HF on dense, >= 1.5x on 1 FPS
    for plan, need in (("dense", 5.0), ("fps1", 1.5)):
        parts, oks = [], []
        for clip in [c["name"] for c in results["clips"]]:
            a, b = _ms(cells.get(("msce", clip, plan))), _ms(cells.get(("qwen_vl_utils_hf", clip, plan)))
            if a and b:
                parts.append(f"{clip} {b / a:.1f}x")
                oks.append(b / a >= need)
        if parts:
            tg.append({"target": f">= {need:g}x faster than qwen-vl-utils + HF on {PLAN_LABEL[plan]}",
                       "measured": ", ".join(parts), "met": met(all(oks))})
    # 3. 60-s 1080p dense peak RSS
    lg = results.get("long") or {}
    if lg:
        parts, oks = [], []
        py = lg.get("python")
        if py and "rss" in py:
            out_mib = py["info"]["output_mib"]
            parts.append(f"Python: output {out_mib:,.0f} MiB, peak {py['rss']['peak_mib']:,.0f} MiB, "
                         f"{py['rss']['delta_mib']:,.0f} MiB above the process after `import msce` "
                         f"({py['rss']['baseline_mib']:,.0f} MiB): overhead "
                         f"{py['rss']['delta_mib'] - out_mib:,.0f} MiB")
            oks.append(py["rss"]["delta_mib"] <= out_mib + 150)
        cc = lg.get("cpp")
        if cc and "peak_rss_mib" in cc:
            parts.append(f"C++: output {cc['output_mib']:,.0f} MiB, whole-process peak {cc['peak_rss_mib']:,.0f} MiB "
                         f"(overhead {cc['peak_rss_mib'] - cc['output_mib']:,.0f} MiB)")
            oks.append(cc["peak_rss_mib"] <= cc["output_mib"] + 150)
        if parts:
            tg.append({"target": "60-s 1080p dense: peak RSS <= output tensor + 150 MiB",
                       "measured": "; ".join(parts), "met": met(all(oks) if oks else None)})
    return tg


# ============================================================================================
# main
# ============================================================================================
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="all", help="comma list of clip names (360p_3s,720p_5s,1080p_10s) or all")
    ap.add_argument("--plans", default=",".join(PLANS), help="comma list of fps1,fps5,dense")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma list of {','.join(PEERS)}")
    ap.add_argument("--short-gop", action="store_true", help="also GOP-25 copies of the clips")
    ap.add_argument("--source", default="testsrc2", choices=["testsrc2", "mandelbrot"])
    ap.add_argument("--long", action="store_true", help="the 60-s 1080p dense peak-RSS run (msce only)")
    ap.add_argument("--long-max-pixels", type=int, default=BUDGET_448,
                    help="per-frame budget of the 60-s run (default 448*448; the HF default 768*28*28 "
                         "makes an 11 GiB output)")
    ap.add_argument("--quick", action="store_true", help="360p and 720p only, 2 repeats")
    ap.add_argument("--min-repeats", type=int, default=3)
    ap.add_argument("--max-repeats", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=2.0, help="keep repeating a cell while under this time")
    ap.add_argument("--slow-s", type=float, default=8.0, help="a cell whose warm-up exceeds this gets 2 repeats")
    ap.add_argument("--no-cpp", action="store_true", help="skip the C++ msce_bench runs")
    ap.add_argument("--cpp-only", action="store_true", help="only the C++ msce_bench runs (and --long)")
    ap.add_argument("--build-cpp", action="store_true", help="configure and build msce_bench first")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/<machine>-<date>.json)")
    ap.add_argument("--timeout", type=float, default=900, help="per-cell timeout, seconds")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--worker", "--verify"):
        spec = json.loads(sys.stdin.read())
        res = worker_main(spec) if sys.argv[1] == "--worker" else verify_main(spec)
        print(json.dumps(res, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        return 0
    args = parse_args(argv)
    t_start = time.time()
    meta = run_metadata()
    meta["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    if meta["loadavg_start"][0] > 1.0:
        log(f"warning: load average {meta['loadavg_start']} on {os.cpu_count()} cores: timings will be noisy")
    timing = {"warmup": 1, "min_repeats": args.min_repeats, "max_repeats": args.max_repeats,
              "budget_s": args.budget_s, "slow_s": args.slow_s, "slow_repeats": 2}
    all_clips = standard_clips(250, args.source) + (standard_clips(25, args.source) if args.short_gop else [])
    if args.quick:
        all_clips = [c for c in all_clips if not c.name.startswith("1080p")]
        timing.update(min_repeats=2, max_repeats=5, budget_s=1.0)
    if args.clips != "all":
        want = set(args.clips.split(","))
        all_clips = [c for c in all_clips if c.name in want]
    plans = [p for p in args.plans.split(",") if p]
    peer_list = [p for p in args.peers.split(",") if p]
    for p in plans:
        if p not in PLANS:
            raise SystemExit(f"unknown plan {p}")
    for p in peer_list:
        if p not in PEERS:
            raise SystemExit(f"unknown peer {p}")

    log("== clips")
    clip_info = []
    for c in all_clips:
        path = make_clip(c)
        clip_info.append({"name": c.name, "path": str(path), "width": c.width, "height": c.height,
                          "seconds": c.seconds, "gop": c.gop, "source": c.source, **probe_clip(path)})
        log(f"  {c.name}: {clip_info[-1].get('bit_rate_kbps')} kb/s, {clip_info[-1].get('nb_frames')} frames")

    results: dict = {"metadata": meta, "config": {"plans": plans, "peers": peer_list, "timing": timing,
                                                  "argv": sys.argv[1:]},
                     "clips": clip_info, "cells": [], "cpp": []}

    if args.cpp_only:
        peer_list = []
        results["config"]["peers"] = []
    log("== plans and output check (msce vs PyAV + HF)")
    vspec = {"clips": [{"name": c["name"], "path": c["path"]} for c in clip_info], "plans": plans,
             "skip_hf": args.no_verify or args.cpp_only, "max_pixels_list": [None, BUDGET_448],
             "peers": list(peer_list)}
    ver = _child("--verify", vspec, timeout=args.timeout * 2)
    results["verify"] = ver
    if "error" in ver:
        log(f"  verify failed: {ver}")
        return 1
    for name, e in ver.items():
        for plan, rec in e["plans"].items():
            for key, r in rec.items():
                if key.startswith("vs_pyav_hf"):
                    log(f"  {name} {plan} {key}: grid {r['msce_grid']} equal={r['grid_equal']} "
                        f"max_abs={r.get('max_abs')} mean_abs={r.get('mean_abs')}")
                elif key.startswith("torchcodec_hf"):
                    log(f"  {name} {plan} {key}: {r}")
        log(f"  {name} decoded RGB vs PyAV: {e['rgb_vs_pyav']}")

    log("== timing (one fresh process per cell)")
    cells_todo = []
    for c in clip_info:
        for plan in plans:
            idx = ver[c["name"]]["plans"][plan]["indices"]
            for peer in peer_list:
                cells_todo.append({"peer": peer, "variant": peer, "clip": c["name"], "path": c["path"], "plan": plan,
                                   "indices": idx, "max_pixels": None, "source_fps": float(FPS), "timing": timing})
            if plan == "dense" and c["name"].startswith("720p") and "msce" in peer_list:
                cells_todo.append({"peer": "msce", "variant": "msce_448", "clip": c["name"], "path": c["path"],
                                   "plan": plan, "indices": idx, "max_pixels": BUDGET_448, "source_fps": float(FPS),
                                   "timing": timing})
    for k, spec in enumerate(cells_todo, 1):
        t0 = time.time()
        try:
            res = _child("--worker", spec, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            res = {"error": f"timeout after {args.timeout} s"}
        res.setdefault("variant", spec["variant"])
        res.setdefault("clip", spec["clip"])
        res.setdefault("plan", spec["plan"])
        results["cells"].append(res)
        msg = (f"{res['timing']['median_ms']:,.1f} ms (n={res['timing']['n']}), peak RSS "
               f"{res['rss']['peak_mib']:,.0f} MiB" if "timing" in res else f"ERROR {res}")
        log(f"  [{k}/{len(cells_todo)}] {spec['variant']:<17} {spec['clip']:<10} {spec['plan']:<6} {msg} "
            f"({time.time() - t0:.0f} s)")

    exe = None
    if not args.no_cpp:
        exe = build_cpp_bench() if args.build_cpp else find_cpp_bench()
        if exe is None:
            log("== msce_bench not found (build it: cmake -S . -B build/bench -G Ninja -DMSCE_CUDA=OFF "
                "-DMSCE_BUILD_BENCH=ON && cmake --build build/bench --target msce_bench); skipping the C++ runs")
    if exe is not None:
        log(f"== C++ msce_bench ({exe})")
        runs = []
        for c in clip_info:
            for plan in plans:
                runs.append((c, plan, "qwen2.5", None))
            if "dense" in plans:
                runs.append((c, "dense", "decode", None))
                if c["name"].startswith("720p"):
                    runs.append((c, "dense", "qwen2.5", BUDGET_448))
        for c, plan, target, mp in runs:
            r = run_cpp(exe, Path(c["path"]), plan, target, mp, repeats=5 if not args.quick else 3)
            r.update({"clip": c["name"], "plan_key": plan})
            results["cpp"].append(r)
            log(f"  {c['name']:<10} {plan:<6} {target:<8} {mp or '':<7} "
                + (f"{r['wall_ms']['median']:,.1f} ms, {r['frames_per_s']:,.0f} f/s, peak {r['peak_rss_mib']:,.0f} MiB"
                   if "wall_ms" in r else f"ERROR {r.get('error')}"))

    if args.long:
        log("== 60-s 1080p dense, msce only (peak RSS vs output)")
        lc = long_clip(args.source)
        t0 = time.time()
        path = make_clip(lc, preset="veryfast")
        log(f"  clip ready ({time.time() - t0:.0f} s)")
        lres: dict = {"clip": {"name": lc.name, **probe_clip(path)}, "max_pixels": args.long_max_pixels}
        spec = {"peer": "msce", "variant": "msce_long", "clip": lc.name, "path": str(path), "plan": "dense",
                "indices": [], "max_pixels": args.long_max_pixels, "source_fps": float(FPS),
                "timing": {"warmup": 0, "min_repeats": 1, "max_repeats": 1, "budget_s": 0}}
        lres["python"] = _child("--worker", spec, timeout=args.timeout)
        if exe is not None:
            lres["cpp"] = run_cpp(exe, path, "dense", "qwen2.5", args.long_max_pixels, repeats=1, warmup=0)
        results["long"] = lres
        py = lres["python"]
        if "rss" in py:
            log(f"  python: {py['timing']['median_ms']:,.0f} ms, output {py['info']['output_mib']:,.0f} MiB, "
                f"peak {py['rss']['peak_mib']:,.0f} MiB (+{py['rss']['delta_mib']:,.0f} above imports)")
        else:
            log(f"  python: ERROR {py}")
        if lres.get("cpp") and "peak_rss_mib" in lres["cpp"]:
            log(f"  C++: output {lres['cpp']['output_mib']:,.0f} MiB, peak {lres['cpp']['peak_rss_mib']:,.0f} MiB")

    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    results["targets"] = evaluate_targets(results)
    out = args.out or RESULTS_DIR / f"{meta['machine']}-{time.strftime('%Y%m%d-%H%M')}.json"
    write_json(out, results)
    print(markdown(results))
    log(f"\nresults: {out} ({meta['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
