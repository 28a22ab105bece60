"""Evaluation throughput (videos/s): the sequential runner vs the pipelined one
(msce.eval.pipeline) vs a local Ray with 2 workers (msce.eval.ray_run), against a local
OpenAI-compatible fake server that answers after ``--delay`` seconds, and with a tiny
random-weight Qwen2.5-VL on CPU.

    python bench/eval_throughput.py [--videos 32] [--delay 1.0] [--no-ray] [--out bench/results/eval_throughput.json]

Each cell runs ``run_eval`` (``run_ray`` for the Ray cells: see ``ray_cell``) once into a fresh run directory
without a cache and checks that its predictions equal the sequential cell's (timing fields
aside). The Ray cells start ``ray.init(num_cpus=2)`` once, before the first of them. Results and run
metadata (machine, versions, commit) go to a JSON file; bench/README.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "unit"))  # FakeChatServer

from _common import RESULTS_DIR, run_metadata, write_json  # noqa: E402

TIMING = ("latency_s", "wall_s")


def make_clips(root: Path, n: int, seconds: float) -> None:
    def one(k: int) -> None:
        label = ("happy", "sad", "angry", "neutral")[k % 4]
        (root / label).mkdir(parents=True, exist_ok=True)
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-ss",
               f"{0.1 * k:.1f}", "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10",
               str(root / label / f"clip{k:03d}.mp4")]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING}
            for x in (out / "predictions.jsonl").read_text().splitlines()]


def cell(name: str, ds, make_strategy, backend, out: Path, reference: Path | None, **execution) -> dict:
    from msce.eval.runner import run_eval

    t0 = time.perf_counter()
    res = run_eval(ds, ds.samples, make_strategy(), backend, out / name, progress=False, n_boot=0, **execution)
    wall = time.perf_counter() - t0
    same = None if reference is None else records(out / name) == records(reference)
    row = {"cell": name, "videos": res.n_done, "wall_s": round(wall, 3), "videos_per_s": round(res.n_done / wall, 3),
           "execution": execution, "identical_to_sequential": same}
    print(json.dumps(row), flush=True)
    if same is False:
        raise SystemExit(f"{name}: predictions differ from the sequential run")
    return row


def ray_cell(name: str, ds, make_strategy, spec, options, out: Path, reference: Path, warm: bool = False,
             **execution) -> list[dict]:
    """One Ray run with a fresh executor (the wall time includes starting the workers and loading
    their models); with ``warm``, a second run on the same executor after it (decode="workers"
    keeps its model actors and its decoding processes stay warm; decode="model" starts its actor
    pool again for every run)."""
    from msce.eval.ray_run import RayExecutor, run_ray

    rows = []
    executor = RayExecutor(spec, options)
    try:
        for tag in (("cold", "warm") if warm else ("cold",)):
            cell_name = f"{name}-{tag}"
            t0 = time.perf_counter()
            res = run_ray(ds, ds.samples, make_strategy(), spec, out / cell_name, ray=executor, progress=False,
                          n_boot=0, **execution)
            wall = time.perf_counter() - t0
            same = records(out / cell_name) == records(reference)
            row = {"cell": cell_name, "videos": res.n_done, "wall_s": round(wall, 3),
                   "videos_per_s": round(res.n_done / wall, 3),
                   "execution": {**execution, "ray": {"workers": options.workers, "decode": options.decode,
                                                      "cpus": options.cpus, "task_videos": options.task_videos}},
                   "identical_to_sequential": same}
            print(json.dumps(row), flush=True)
            if not same:
                raise SystemExit(f"{cell_name}: predictions differ from the sequential run")
            rows.append(row)
    finally:
        executor.close()
    return rows


def start_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--delay", type=float, default=1.0, help="seconds the fake server takes per answer")
    ap.add_argument("--tiny-videos", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "eval_throughput.json")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray cells")
    args = ap.parse_args()

    from backend_fakes import FakeChatServer
    from msce.eval.datasets import load_generic
    from msce.models.backends import get_backend
    from msce.models.backends.base import GenerationParams
    from msce.models.backends.openai_api import OpenAIBackend
    from msce.models.strategies import MSCE, Sparse
    from msce.testing import make_tiny_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="msce-bench-") as tmp:
        tmp = Path(tmp)
        make_clips(tmp / "clips", args.videos, 3.2)
        ds = load_generic(tmp / "clips", labels="dfew")
        answers = ["happy", "sad", "angry", "neutral", "unclear"]
        with FakeChatServer(answers=answers, delay=args.delay) as server:
            backend = OpenAIBackend(base_url=server.base_url, model="tiny-vlm", api_key_env="MSCE_UNSET_KEY_VAR")
            backend.model_listing()
            runs = tmp / "server"
            rows.append(cell("server/sparse/sequential", ds, lambda: Sparse(1.0), backend, runs, None))
            ref = runs / "server/sparse/sequential"
            for c in (4, 8, 16):
                rows.append(cell(f"server/sparse/concurrency{c}", ds, lambda: Sparse(1.0), backend, runs, ref,
                                 concurrency=c))
            if not args.no_ray:
                from msce.eval.ray_run import BackendSpec, RayOptions

                start_ray()
                spec = BackendSpec("openai", {"base_url": server.base_url, "model": "tiny-vlm",
                                              "api_key_env": "MSCE_UNSET_KEY_VAR"})
                for decode in ("model", "workers"):  # 2 workers x 4 calls in flight = 8, as concurrency8
                    rows += ray_cell(f"server/sparse/ray2-{decode}-concurrency4", ds, lambda: Sparse(1.0), spec,
                                     RayOptions(workers=2, decode=decode, cpus=0.5), runs, ref,
                                     warm=decode == "workers", concurrency=4)

        tiny_ds_root = tmp / "tiny-clips"
        make_clips(tiny_ds_root, args.tiny_videos, 3.2)
        tds = load_generic(tiny_ds_root, labels="dfew")
        model = make_tiny_model(tmp / "qwen2.5", version="2.5", seed=0)
        tiny = get_backend("transformers", model=str(model), dtype="float32", device="cpu",
                           min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 6)
        ans, s1 = GenerationParams(max_new_tokens=8), GenerationParams(max_new_tokens=16)

        def make_msce():
            return MSCE(1, 4, params=ans, stage1_params=s1)

        runs = tmp / "tiny"
        cell("tiny/warmup", tds, make_msce, tiny, runs, None)
        rows.append(cell("tiny/msce/sequential", tds, make_msce, tiny, runs, None))
        ref = runs / "tiny/msce/sequential"
        rows.append(cell("tiny/msce/prefetch4", tds, make_msce, tiny, runs, ref, prefetch=4))
        for b in (4, 8):
            rows.append(cell(f"tiny/msce/batch{b}", tds, make_msce, tiny, runs, ref, batch_size=b))
        if not args.no_ray:
            from msce.eval.ray_run import BackendSpec, RayOptions

            start_ray()
            spec = BackendSpec("transformers", {"model": str(model), "dtype": "float32", "device": "cpu",
                                                "min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 6})
            for decode in ("model", "workers"):
                for b in (1, 4):
                    rows += ray_cell(f"tiny/msce/ray2-{decode}-batch{b}", tds, make_msce, spec,
                                     RayOptions(workers=2, decode=decode, cpus=0.5), runs, ref,
                                     warm=decode == "workers", batch_size=b)
    write_json(args.out, {"benchmark": "eval_throughput", "videos": args.videos, "delay_s": args.delay,
                          "tiny_videos": args.tiny_videos, "rows": rows, "metadata": run_metadata()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
