"""Bad input on the Python side (docs/api.md, "Bad input"):

* plans never explode: a computed plan that would repeat one frame past msce's cap is a
  PlanError naming the clip, the plan and the counts; an output tensor over the byte cap
  (MSCE_MAX_OUTPUT_BYTES) or the available memory is a TransformError, never torch's error;
* damaged frames are reported (``batch.damaged``, ``on_damage``, ``damaged_frames`` in eval
  records), checked against PyAV's ``frame.is_corrupt``;
* frame folders: a too-long name and a decompression-bomb PNG are DecodeErrors.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import msce
from _deps import require_module, require_tool
from msce.errors import DecodeError, PlanError, TransformError
from msce.io import jobs
from msce.io.damage import DamagedFramesWarning
from msce.io.folder import FrameFolder, is_frame_folder
from msce.io.metadata import VideoMetadata
from msce.plan import MAX_REPEAT_FACTOR, MAX_REPEAT_FLOOR, max_repeats

# ---- plan caps ----------------------------------------------------------------------------------


def _meta(num_frames: int = 10, fps: float = 10.0, duration: float | None = None, h: int = 8, w: int = 8):
    m = VideoMetadata.synthetic(num_frames, fps, h, w, path="clip.mp4")
    return m if duration is None else dataclasses.replace(m, duration=duration)


def test_uniform_above_the_source_rate_is_allowed():
    meta = _meta(10, 10.0)
    plan = msce.plan.uniform(60).resolve(meta)
    counts = np.bincount(plan.indices)
    # ceil(60 / 10) = 6 repeats a frame, a few more next to the clip's end (nearest-frame
    # rounding gives the last frame the half interval before it and the one after it)
    assert len(plan) == 60 and counts.max() == 8
    assert max_repeats(60, meta) == max(MAX_REPEAT_FLOOR, MAX_REPEAT_FACTOR * 6) == 24
    assert max_repeats(1, meta) == MAX_REPEAT_FLOOR


@pytest.mark.parametrize("spec", [msce.plan.uniform(10), msce.plan.uniform(0.5), msce.plan.count(5000),
                                  msce.plan.keyframes_with_gaps(1, 4), msce.plan.token_budget(10**9, msce.QwenVL()),
                                  msce.plan.shuffled(msce.plan.uniform(10), seed=1)])
def test_lying_duration_is_refused_before_building_the_plan(spec):
    meta = _meta(10, 10.0, duration=1000.0)  # ten frames over 0.9 s, header says 1000 s
    with pytest.raises(PlanError) as info:
        msce.plan.resolve(spec, meta)
    text = str(info.value)
    assert "clip.mp4" in text and "10 frames" in text and "1000.0" in text
    assert "repeat cap" in text


def test_moderate_lie_names_the_repeated_frame():
    meta = _meta(10, 10.0, duration=5.0)  # 50 samples: frame 9 would be taken 41 times
    with pytest.raises(PlanError) as info:
        msce.plan.uniform(10).resolve(meta)
    text = str(info.value)
    assert "clip.mp4" in text and "uniform(fps=10.0)" in text
    assert "repeat frame 9 41 times in 50 planned frames" in text and f"cap is {MAX_REPEAT_FLOOR}" in text


def test_count_on_an_honest_clip_and_explicit_plans_are_not_capped():
    meta = _meta(4, 10.0)
    assert np.bincount(msce.plan.count(16).resolve(meta).indices).max() == 6
    assert len(msce.plan.at_indices([3] * 100).resolve(meta)) == 100  # asked for explicitly


def test_infinite_duration_is_refused():
    with pytest.raises(PlanError, match="clip.mp4"):
        msce.plan.uniform(1).resolve(_meta(10, 10.0, duration=float("inf")))


# ---- output size cap ----------------------------------------------------------------------------


def test_output_over_the_default_cap_is_a_transform_error(monkeypatch):
    monkeypatch.delenv(jobs.MAX_OUTPUT_BYTES_ENV, raising=False)
    meta = _meta(1000, 25.0, h=20000, w=20000)
    plan = msce.plan.dense().resolve(meta)
    with pytest.raises(TransformError) as info:
        jobs.allocate(msce.Frames(), plan, None, meta, pin=False)
    text = str(info.value)
    want = 1000 * 20000 * 20000 * 3
    assert "(1000, 3, 20000, 20000)" in text and str(want) in text and "clip.mp4" in text
    assert str(jobs.DEFAULT_MAX_OUTPUT_BYTES) in text


def test_output_cap_is_configurable(monkeypatch):
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    monkeypatch.setenv(jobs.MAX_OUTPUT_BYTES_ENV, str(4 * 16 * 16 * 3 - 1))
    with pytest.raises(TransformError, match=r"\(4, 3, 16, 16\) uint8 = 3072 bytes.*3071 bytes"):
        msce.preprocess(frames, msce.Frames(), pin_memory=False)
    monkeypatch.setenv(jobs.MAX_OUTPUT_BYTES_ENV, str(4 * 16 * 16 * 3))
    assert msce.preprocess(frames, msce.Frames(), pin_memory=False).data.shape == (4, 3, 16, 16)
    monkeypatch.setenv(jobs.MAX_OUTPUT_BYTES_ENV, "0")  # off
    assert jobs.max_output_bytes() is None
    monkeypatch.setenv(jobs.MAX_OUTPUT_BYTES_ENV, "lots")
    with pytest.raises(TransformError, match="MSCE_MAX_OUTPUT_BYTES"):
        msce.preprocess(frames, msce.Frames(), pin_memory=False)


def test_output_over_available_memory_is_a_transform_error(monkeypatch):
    monkeypatch.setenv(jobs.MAX_OUTPUT_BYTES_ENV, "0")
    monkeypatch.setattr(jobs, "_available_bytes", lambda device: 1000)
    with pytest.raises(TransformError, match="more than the 1000 bytes"):
        msce.preprocess(np.zeros((2, 16, 16, 3), np.uint8), msce.Frames(), pin_memory=False)


def test_torch_allocation_failure_is_a_transform_error(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory\nmore")

    monkeypatch.setattr(jobs.torch, "frombuffer", boom)  # CPU outputs: msce's pool, wrapped by torch
    with pytest.raises(TransformError, match=r"cannot allocate the output tensor \(2, 3, 16, 16\).*out of memory"):
        msce.preprocess(np.zeros((2, 16, 16, 3), np.uint8), msce.Frames(), pin_memory=False)


def test_output_pool_mapping_failure_is_a_transform_error(monkeypatch):
    class NoMemory:
        @staticmethod
        def OutputBuffer(nbytes):
            raise TransformError(f"cannot map {nbytes} bytes for the output")

    monkeypatch.setattr(jobs, "C", NoMemory)
    with pytest.raises(TransformError, match=r"cannot allocate the output tensor \(2, 3, 16, 16\).*cannot map 1536"):
        msce.preprocess(np.zeros((2, 16, 16, 3), np.uint8), msce.Frames(), pin_memory=False)


# ---- damaged frames -----------------------------------------------------------------------------


def _ffmpeg_clip(tmp: Path, name: str, *codec: str, seconds: float = 2.0) -> Path:
    exe = require_tool("ffmpeg")
    out = tmp / name
    subprocess.run([exe, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t",
                    str(seconds), *codec, "-fflags", "+bitexact", "-flags:v", "+bitexact", str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """(damaged clip, intact clip, PyAV's is_corrupt per frame) as in test_hardening.py."""
    av = require_module("av")
    tmp = tmp_path_factory.mktemp("damage")
    clip = _ffmpeg_clip(tmp, "m2.ts", "-c:v", "mpeg2video", "-g", "12")
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(3)
    for i in rng.integers(len(data) // 8, len(data) - 1000, 12):
        data[i] ^= 0xFF
    bad = tmp / "damaged.mpg"
    bad.write_bytes(bytes(data))
    with av.open(str(bad)) as container:
        flags = [bool(f.is_corrupt) for f in container.decode(video=0)]
    assert any(flags), "the damage produced no flagged frame"
    return bad, clip, flags


def test_batch_records_flagged_frames_like_pyav(damaged):
    bad, _, flags = damaged
    plan = msce.plan.at_indices(list(range(len(flags))) + [int(np.argmax(flags))])
    batch = msce.load(bad, plan, msce.Frames(), on_damage="keep")
    want = tuple(i for i, f in enumerate(flags) if f)
    assert batch.damaged == want
    assert batch.damaged_positions == want + (len(flags),)  # the repeated flagged frame counts twice
    assert batch.stats["damaged_frames"] == list(want) and batch.stats["damage_checked"] is True


def test_subset_plan_reports_only_its_frames(damaged):
    bad, _, flags = damaged
    first_bad = flags.index(True)
    good = [i for i, f in enumerate(flags) if not f][:3]
    batch = msce.load(bad, msce.plan.at_indices(good + [first_bad]), msce.Frames(), on_damage="keep")
    assert batch.damaged == (first_bad,)
    assert batch.damaged_positions == (3,)


def test_on_damage_raise_names_the_file_and_frames(damaged):
    bad, _, flags = damaged
    with pytest.raises(DecodeError) as info:
        msce.load(bad, msce.plan.dense(), msce.Frames(), on_damage="raise")
    text = str(info.value)
    assert str(bad) in text and str(flags.index(True)) in text and "damaged" in text


def test_on_damage_warn_is_the_default_and_warns_once(damaged):
    bad, _, flags = damaged
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        batch = msce.load(bad, msce.plan.dense(), msce.Frames())
    mine = [w for w in got if issubclass(w.category, DamagedFramesWarning)]
    assert len(mine) == 1 and str(bad) in str(mine[0].message) and mine[0].filename == __file__
    assert len(batch) == len(flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msce.load(bad, msce.plan.dense(), msce.Frames(), on_damage="keep")


def test_load_segments_reports_per_segment_and_warns_once(damaged):
    bad, _, flags = damaged
    want = {i for i, f in enumerate(flags) if f}
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        segs = msce.load_segments(bad, msce.plan.keyframes_with_gaps(5, 2), msce.Frames())
    assert sum(issubclass(w.category, DamagedFramesWarning) for w in got) == 1
    for s in segs:
        assert s.damaged == tuple(sorted(want.intersection(s.indices)))
    with pytest.raises(DecodeError, match="damaged"):
        msce.load_segments(bad, msce.plan.keyframes_with_gaps(5, 2), msce.Frames(), on_damage="raise")


def test_intact_clip_and_bad_policy(damaged):
    _, clip, _ = damaged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = msce.load(clip, msce.plan.dense(), msce.Frames(), on_damage="raise")
    assert batch.damaged == () and batch.damaged_positions == ()
    with pytest.raises(TransformError, match="on_damage"):
        msce.load(clip, msce.plan.dense(), msce.Frames(), on_damage="ignore")
    assert msce.preprocess(np.zeros((2, 8, 8, 3), np.uint8), msce.Frames()).damaged == ()


class _LoadingStrategy:
    """Loads every frame of the video (damage kept) and answers its first label."""

    name = "load-all"

    def config(self) -> dict:
        return {"name": self.name}

    def run(self, video, labels, backend, cache=None) -> dict:
        batch = msce.load(video, msce.plan.dense(), msce.Frames(), on_damage="keep")
        return {"raw_answer": "happy", "parsed": "happy", "frame_indices": list(batch.indices)}


@pytest.mark.parametrize("concurrency", [1, 2])
def test_eval_records_count_damaged_frames(tmp_path, damaged, concurrency):
    from msce.eval import runner
    from msce.eval.datasets import load_generic

    bad, clip, flags = damaged
    root = tmp_path / "data"
    for label, src in (("happy", bad), ("sad", clip)):
        (root / label).mkdir(parents=True)
        (root / label / f"{label}_000.mpg").write_bytes(src.read_bytes())
    ds = load_generic(root, labels="dfew")

    class Backend:
        model_id = "fake/none"

        def fingerprint(self):
            return {}

        def target(self):
            return None

    out = tmp_path / "run"
    runner.run_eval(ds, ds.samples, _LoadingStrategy(), Backend(), out, progress=False, n_boot=10,
                    concurrency=concurrency)
    recs = {r["label"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert recs["happy"]["damaged_frames"] == sum(flags)
    assert recs["sad"]["damaged_frames"] == 0


# ---- frame folders ------------------------------------------------------------------------------


def test_too_long_name_is_a_decode_error(tmp_path):
    path = tmp_path / ("a" * 300)
    with pytest.raises(DecodeError) as info:
        is_frame_folder(path)
    assert "a" * 300 in str(info.value)
    with pytest.raises(DecodeError):
        msce.load(path, msce.plan.dense(), msce.Frames())


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 8))
            + chunk(b"IEND", b""))


def test_decompression_bomb_png_is_a_decode_error(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0001.png").write_bytes(_png(100000, 100000))
    with pytest.raises(DecodeError) as info:
        FrameFolder(folder)
    assert "0001.png" in str(info.value)
    with pytest.raises(DecodeError, match="0001.png"):
        msce.load(folder, msce.plan.dense(), msce.Frames())


def test_png_over_the_pil_limit_but_under_twice_it_is_a_decode_error(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0001.png").write_bytes(_png(12, 12))  # 144 pixels: PIL would only warn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(DecodeError, match="12x12 = 144 pixels, over the 100-pixel limit"):
            FrameFolder(folder)
