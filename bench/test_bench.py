"""pytest-benchmark versions of bench/run_bench.py's comparisons.

    pytest bench/test_bench.py --benchmark-only
    MSCE_BENCH_CLIPS=720p_5s MSCE_BENCH_ROUNDS=5 pytest bench/test_bench.py --benchmark-only -k dense

Not part of the test suite (pyproject's testpaths = ["tests"]); peak RSS is not measured here
(one process runs every benchmark, so peaks would mix: run_bench.py measures it per cell in a
fresh process). Each group ("<clip> <plan>") times msce, PyAV + HF Qwen2VLVideoProcessor,
torchcodec + HF, qwen-vl-utils (torchcodec) + HF, PyAV decode-only and PyAV decode + rgb24 on the
same clip; all but qwen-vl-utils on msce's frame indices. msce's and torchcodec + HF's outputs are
checked against PyAV + HF (same grid, small max abs difference) before they are timed.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pytest_benchmark")
msce = pytest.importorskip("msce")
pytest.importorskip("av")
pytest.importorskip("transformers")

from _common import BUDGET_448, FPS, PLANS, make_clip, standard_clips  # noqa: E402

import peers  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

_CLIPS = {c.name: c for c in standard_clips()}
_WANT = [c for c in os.environ.get("MSCE_BENCH_CLIPS", ",".join(_CLIPS)).split(",") if c]
ROUNDS = int(os.environ.get("MSCE_BENCH_ROUNDS", "3"))
# Bounds of the pre-timing check, normalized units: one grey level is ~0.015 here; msce converts
# YUV->RGB in 16-bit fixed point, swscale (PyAV) rounds differently, and resizing averages it out.
MAX_ABS = float(os.environ.get("MSCE_BENCH_MAX_ABS", "0.1"))
MEAN_ABS = float(os.environ.get("MSCE_BENCH_MEAN_ABS", "5e-3"))


@pytest.fixture(scope="session")
def clip_paths() -> dict[str, str]:
    from msce._native import C

    if not getattr(C, "has_ffmpeg", False):
        pytest.skip("msce was built without FFmpeg")
    return {name: str(make_clip(_CLIPS[name])) for name in _WANT if name in _CLIPS}


_plans: dict[tuple[str, str], list[int]] = {}
_checked: dict[tuple[str, str, int | None], dict] = {}


def _indices(path: str, clip: str, plan: str) -> list[int]:
    key = (clip, plan)
    if key not in _plans:
        meta = msce.VideoReader(path).metadata
        _plans[key] = [int(i) for i in peers.plan_spec(plan).resolve(meta).indices]
    return _plans[key]


def _check(path: str, clip: str, plan: str, idx: list[int], max_pixels: int | None = None,
           peer: str = "msce") -> dict:
    key = (clip, plan, max_pixels, peer)
    if key not in _checked:
        a = peers.make(peer, path, plan, idx, max_pixels=max_pixels)()
        b = peers.make_pyav_hf(path, plan, idx, max_pixels=max_pixels)()
        assert a.grid_thw == b.grid_thw, f"grid: {peer} {a.grid_thw} vs HF {b.grid_thw}"
        d = (a.pixel_values - b.pixel_values).abs()
        res = {"grid": a.grid_thw, "max_abs": float(d.max()), "mean_abs": float(d.mean())}
        assert res["max_abs"] <= MAX_ABS and res["mean_abs"] <= MEAN_ABS, res
        _checked[key] = res
    return _checked[key]


def _run(benchmark, fn, group: str, info: dict) -> None:
    benchmark.group = group
    out = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    benchmark.extra_info.update({k: v for k, v in out.describe().items() if k in ("frames", "grid_thw", "tokens")})
    if info.get("record_indices"):
        benchmark.extra_info["indices"] = out.indices


@pytest.mark.parametrize("peer", peers.PEERS)
@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("clip", list(_CLIPS))
def test_decode_to_token(benchmark, clip_paths, clip, plan, peer):
    if clip not in clip_paths:
        pytest.skip(f"{clip} not selected (MSCE_BENCH_CLIPS)")
    path = clip_paths[clip]
    idx = _indices(path, clip, plan)
    info: dict = {"clip": clip, "plan": plan, "peer": peer}
    if peer in ("msce", "pyav_hf"):
        info["check_vs_pyav_hf"] = _check(path, clip, plan, idx)
    if peer == "torchcodec_hf":
        info["check_vs_pyav_hf"] = _check(path, clip, plan, idx, peer="torchcodec_hf")
    if peer == "qwen_vl_utils_hf":
        info["record_indices"] = True  # it samples its own frames; its output is not comparable
    fn = peers.make(peer, path, plan, idx, source_fps=float(FPS))
    _run(benchmark, fn, f"{clip} {plan}", info)


@pytest.mark.parametrize("peer", ["msce", "pyav_decode"])
def test_dense_720p_448_budget(benchmark, clip_paths, peer):
    """The issue's first target: dense 720p -> Qwen2.5-VL 448x448 budget vs PyAV decode-only."""
    clip = "720p_5s"
    if clip not in clip_paths:
        pytest.skip(f"{clip} not selected (MSCE_BENCH_CLIPS)")
    path = clip_paths[clip]
    idx = _indices(path, clip, "dense")
    info: dict = {"clip": clip, "plan": "dense", "peer": peer, "max_pixels": BUDGET_448}
    if peer == "msce":
        info["check_vs_pyav_hf"] = _check(path, clip, "dense", idx, BUDGET_448)
    fn = peers.make(peer, path, "dense", idx, max_pixels=BUDGET_448)
    _run(benchmark, fn, "720p_5s dense, 448x448 budget", info)
