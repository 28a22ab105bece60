"""msce.io.dali: argument checks and the error without DALI (run everywhere: DALI's absence is
simulated, so they do not depend on this machine), and DALI vs msce's CPU path on a GPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import msce
from msce.io import dali
from msce.errors import ConfigError, CudaError, TransformError

TARGET = msce.Frames(layout="NHWC")  # uint8 RGB at the native size: compares the decoders


@pytest.fixture()
def no_dali(monkeypatch):
    """``import nvidia.dali`` fails as it does where the extra is not installed."""
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)


def test_without_dali_the_error_names_the_extra(no_dali, tmp_path):
    ok, why = dali.available()
    assert not ok and "pip install 'msce[dali]'" in why
    for device in ("cuda", "cuda:0", torch.device("cuda", 0)):
        with pytest.raises(ConfigError, match=r"msce\.io\.dali\.load needs NVIDIA DALI.*msce\[dali\]"):
            dali.load(tmp_path / "clip.mp4", msce.plan.count(2), TARGET, device=device)
    with pytest.raises(ConfigError, match=r"msce\[dali\]"):
        dali.DaliDecoder("cuda")


@pytest.mark.parametrize("with_dali", [False, True], ids=["dali-missing", "dali-as-installed-here"])
def test_cheap_arguments_are_checked_first(with_dali, monkeypatch, tmp_path):
    """The same mistake raises the same error type whether or not DALI (or a GPU) is here."""
    if not with_dali:
        monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    clip = tmp_path / "clip.mp4"
    plan = msce.plan.count(2)
    with pytest.raises(TransformError, match="target must be"):
        dali.load(clip, plan, "qwen", device="cuda")
    for bad in ("gpu", "cuda:x", 3.5):
        with pytest.raises(TransformError, match="device must be"):
            dali.load(clip, plan, TARGET, device=bad)
    for cpu in ("cpu", None, torch.device("cpu")):
        with pytest.raises(CudaError, match="decodes on a CUDA device"):
            dali.load(clip, plan, TARGET, device=cpu)
    with pytest.raises(ConfigError, match="decoder must be"):
        dali.load(clip, plan, TARGET, device="cuda", decoder="dali")
    with pytest.raises(CudaError, match="decodes on a CUDA device"):
        dali.DaliDecoder("cpu")
    with pytest.raises(ConfigError, match="num_threads"):
        dali.DaliDecoder("cuda", num_threads=0)


def _require_dali() -> None:
    try:
        import nvidia.dali  # noqa: F401
    except ModuleNotFoundError:
        pytest.skip("missing dependency: Python module 'nvidia.dali' (pip install 'msce[dali]')")


@pytest.mark.needs_cuda
@pytest.mark.parametrize("spec", ["count5", "sparse"])
def test_dali_matches_the_cpu_path(gpu_clips, spec):
    """DALI's frames against msce's CPU decode of the same plan. DALI converts YUV to RGB
    with its own kernels, so the bound is closeness (mean error and few outliers), not bytes."""
    _require_dali()
    path = gpu_clips["gop12"]
    plan = {"count5": msce.plan.count(5), "sparse": msce.plan.at_indices([0, 1, 40, 41, 70])}[spec]
    ref = msce.load(path, plan, TARGET)
    got = dali.load(path, plan, TARGET, device="cuda")
    assert got.data.is_cuda and got.stats["decoder"] == "dali"
    assert got.indices == ref.indices
    assert got.data.shape == ref.data.shape and got.data.dtype == ref.data.dtype
    diff = (got.data.cpu().double() - ref.data.double()).abs().numpy()
    assert diff.mean() <= 3.0, diff.mean()
    assert np.mean(diff > 32) <= 0.02, np.mean(diff > 32)
    # the token path too: normalized Qwen patches within a small mean error
    qwen = msce.QwenVL("2.5", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 12)
    ref_q = msce.load(path, plan, qwen)
    got_q = dali.load(path, plan, qwen, device="cuda")
    assert got_q.data.shape == ref_q.data.shape and got_q.grid_thw.tolist() == ref_q.grid_thw.tolist()
    assert float((got_q.data.cpu().double() - ref_q.data.double()).abs().mean()) <= 0.05


@pytest.mark.needs_cuda
def test_dali_refuses_rotated_clips(gpu_clips):
    _require_dali()
    if "rotated" not in gpu_clips:
        pytest.skip("missing dependency: an ffmpeg that writes the rotated clip")
    with pytest.raises(msce.UnsupportedError, match="rotated"):
        dali.load(gpu_clips["rotated"], msce.plan.count(2), TARGET, device="cuda")
