"""Evaluation throughput (videos/s): the sequential runner vs the pipelined one
(msce.eval.pipeline), against a local OpenAI-compatible fake server that answers after
``--delay`` seconds, and with a tiny random-weight Qwen2.5-VL on CPU.

    python bench/eval_throughput.py [--videos 32] [--delay 1.0] [--out bench/results/eval_throughput.json]

Each cell runs ``run_eval`` once into a fresh run directory without a cache and checks that
its predictions equal the sequential cell's (timing fields aside). Results and run
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--delay", type=float, default=1.0, help="seconds the fake server takes per answer")
    ap.add_argument("--tiny-videos", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "eval_throughput.json")
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
    write_json(args.out, {"benchmark": "eval_throughput", "videos": args.videos, "delay_s": args.delay,
                          "tiny_videos": args.tiny_videos, "rows": rows, "metadata": run_metadata()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
