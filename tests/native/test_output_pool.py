"""msce's CPU output pool (msce.output_cache): freed output memory is reused by the next load,
never leaks stale values into it, and its limits and errors behave as documented; and the
default worker count of a load."""

from __future__ import annotations

import gc

import pytest
import torch

import msce
from msce.io.media import make_test_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_clip(tmp_path_factory.mktemp("pool") / "clip.mp4", seconds=2.0, fps=25, size=(320, 240))


@pytest.fixture(autouse=True)
def fresh_pool():
    # other tests' garbage first, so that nothing but this test's blocks enters the cache; blocks
    # other tests still hold stay in use (the checks below count differences, not totals)
    gc.collect()
    before = msce.output_cache()["limit_bytes"]
    msce.output_cache(clear=True)
    yield
    msce.output_cache(limit_bytes=before, clear=True)


def _load(clip, frames=5):
    # an odd frame count: the Qwen layout pads the last temporal pair by copying a slot
    return msce.load(clip, msce.plan.count(frames), msce.QwenVL("2.5", min_pixels=32 * 28 * 28, max_pixels=64 * 28 * 28), pin_memory=False)


def test_a_freed_output_is_reused_by_the_next_load(clip):
    first = _load(clip)
    nbytes = first.data.numel() * 4
    held = msce.output_cache()
    ptr = first.data.data_ptr()
    del first
    gc.collect()
    stats = msce.output_cache()
    assert stats["cached_blocks"] == 1 and stats["cached_bytes"] >= nbytes
    assert held["in_use_bytes"] - stats["in_use_bytes"] == stats["cached_bytes"]
    second = _load(clip)
    after = msce.output_cache()
    assert after["hits"] == stats["hits"] + 1 and after["misses"] == stats["misses"]
    assert second.data.data_ptr() == ptr  # the same memory, already mapped
    assert second.data.data_ptr() % (2 << 20) == 0  # huge-page aligned


def test_a_reused_block_carries_no_stale_values(clip):
    msce.output_cache(limit_bytes=0)
    reference = _load(clip).data.clone()  # from a fresh mapping (zeroed by the kernel)
    msce.output_cache(limit_bytes=1 << 30)
    dirty = _load(clip)
    dirty.data.fill_(float("nan"))
    del dirty
    gc.collect()
    again = _load(clip)
    assert msce.output_cache()["hits"] >= 1
    assert not torch.isnan(again.data).any()
    assert torch.equal(again.data, reference)


def test_other_dtypes_and_layouts_come_from_the_pool(clip):
    for target in (msce.Frames(size=(96, 128)), msce.QwenVL("2.5", min_pixels=32 * 28 * 28, max_pixels=64 * 28 * 28, dtype="bfloat16")):
        b = msce.load(clip, msce.plan.count(3), target, pin_memory=False)
        assert b.data.is_contiguous() and b.data.data_ptr() % (2 << 20) == 0
        assert b.data.dtype == (torch.uint8 if isinstance(target, msce.Frames) else torch.bfloat16)
        b.data.add_(0)  # writable


def test_a_block_serves_requests_from_half_its_size_up(clip):
    from msce._native import C

    start = msce.output_cache()
    big = C.OutputBuffer(8 << 20)
    del big
    gc.collect()
    small = C.OutputBuffer(1 << 20)  # 2 MiB after rounding: under half of the cached 8 MiB block
    stats = msce.output_cache()
    assert stats["misses"] - start["misses"] == 2 and stats["hits"] == start["hits"]
    assert stats["cached_blocks"] == start["cached_blocks"] + 1
    half = C.OutputBuffer(4 << 20)
    assert msce.output_cache()["hits"] == start["hits"] + 1
    assert msce.output_cache()["cached_blocks"] == start["cached_blocks"]
    del small, half


def test_limit_zero_turns_reuse_off_and_clear_returns_memory(clip):
    msce.output_cache(limit_bytes=0)
    b = _load(clip)
    del b
    gc.collect()
    assert msce.output_cache()["cached_bytes"] == 0
    msce.output_cache(limit_bytes=1 << 30)
    b = _load(clip)
    del b
    gc.collect()
    assert msce.output_cache()["cached_bytes"] > 0
    assert msce.output_cache(clear=True)["cached_bytes"] == 0


def test_a_tensor_outlives_clear_and_a_lower_limit(clip):
    b = _load(clip)
    values = b.data.clone()
    msce.output_cache(limit_bytes=0, clear=True)
    assert torch.equal(b.data, values)  # in-use blocks are never unmapped


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_a_bad_limit_is_refused(bad):
    with pytest.raises(msce.TransformError, match="limit_bytes"):
        msce.output_cache(limit_bytes=bad)


@pytest.mark.needs_cuda
def test_pinned_outputs_do_not_use_the_pool(clip):
    before = msce.output_cache()["misses"]
    msce.load(clip, msce.plan.count(3), msce.QwenVL("2.5", min_pixels=32 * 28 * 28, max_pixels=64 * 28 * 28), pin_memory=True)
    assert msce.output_cache()["misses"] == before


def _independent_cpu_count() -> int:
    import math
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def test_default_workers_follow_the_cpus_this_process_may_use():
    """The default transform worker count is the affinity mask capped by a cgroup CPU quota, not
    the machine's hardware threads (a container limited to 2 CPUs of 64 runs 2 workers)."""
    import os
    import shutil
    import subprocess
    import sys

    from msce._native import C

    assert C.usable_cpus() == _independent_cpu_count()
    taskset = shutil.which("taskset")
    if taskset and hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 1:
        cpu = str(min(os.sched_getaffinity(0)))
        out = subprocess.run([taskset, "-c", cpu, sys.executable, "-c",
                              "from msce._native import C; print(C.usable_cpus())"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.strip() == "1"


def test_forked_children_can_use_the_pool_while_a_thread_keeps_it_busy():
    """fork() while another thread is inside the pool (a DataLoader forking workers during a load):
    each child can still allocate (the pool's lock is held across fork and released in both)."""
    import os
    import signal
    import threading
    import warnings

    from msce._native import C

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")  # pragma: no cover
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            b = C.OutputBuffer(1 << 20)
            del b

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        for _ in range(20):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12: fork with threads
                pid = os.fork()
            if pid == 0:  # child: one allocation, or the alarm kills it
                signal.alarm(10)
                try:
                    C.OutputBuffer(3 << 20)
                    os._exit(0)
                except BaseException:  # noqa: BLE001
                    os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.set()
        t.join()
