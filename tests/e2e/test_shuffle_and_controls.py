"""The frame-shuffle probe and msce's MSCE controls through a capturing fake backend:
what really reaches the model, what the run directory records, what the reports say.

References: PyAV decodes the frames the model should have got, scipy's kendalltau gives
the Kendall distance, hashlib the content digests, transformers' smart_resize the tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

import msce
from msce.models.backends.base import GenerationParams, is_frames
from msce.eval.runner import load_run, run_eval
from msce.labels import DFEW
from msce.models.strategies import MSCE, MSCENoText, Shuffled, Sparse, SparseImages, get_strategy

from tiny_env import PIXELS

av = pytest.importorskip("av")
scipy_stats = pytest.importorskip("scipy.stats")

FPS = 25
SECONDS = [2.0] * 4 + [3.0] * 4 + [4.0] * 4  # 1 FPS: 2, 3 or 4 frames
ANS = GenerationParams(max_new_tokens=4)


class CaptureBackend:
    """Answers "Neutral" to everything and keeps every request it was sent."""

    model_id = "fake/capture"

    def __init__(self, target):
        self._target = target
        self.calls: list[list] = []

    def fingerprint(self) -> dict:
        return {"fake": True}

    def target(self):
        return self._target

    def generate(self, requests, params):
        self.calls.append([list(r) for r in requests])
        return ["Neutral" for _ in requests]


def sent_batches(request) -> list:
    return [p for p in request if is_frames(p)]


@pytest.fixture(scope="module")
def twelve(tmp_path_factory):
    """Twelve 25-fps clips of 2-4 s; each has its own width, so no two have the same bytes."""
    from msce.io.media import make_test_clip

    from _deps import require_tool

    require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("shuffle")
    return [make_test_clip(root / f"clip{i:02d}.mp4", seconds=s, fps=FPS, size=(64 + 16 * i, 48))
            for i, s in enumerate(SECONDS)]


def pyav_frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        frames = sorted(c.decode(video=0), key=lambda f: f.pts)
        return np.stack([f.to_ndarray(format="rgb24") for f in frames])


def reference_kendall(perm) -> float:
    tau = scipy_stats.kendalltau(np.arange(len(perm)), perm).statistic
    return (1.0 - tau) / 2.0


def check_sent_order(backend: CaptureBackend, clips, results) -> dict[int, list[tuple[int, ...]]]:
    """Every clip went out in a non-chronological order; returns {n frames: [permutation, ...]}."""
    by_length: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    assert len(backend.calls) == len(clips)
    for call, clip, res, secs in zip(backend.calls, clips, results, SECONDS):
        ((req,),) = [call]
        (batch,) = sent_batches(req)
        sent = [int(i) for i in batch.indices]
        chrono = [FPS * k for k in range(int(secs))]  # 1 FPS at 25 fps: frames 0, 25, 50, ...
        assert sorted(sent) == chrono and sent != chrono
        assert res["frame_indices"] == sent
        # the pixels follow the order: each sent frame is PyAV's frame at that index
        ref = pyav_frames(clip)[chrono].astype(np.int16)
        data = batch.data.numpy().astype(np.int16)
        for k, idx in enumerate(sent):
            err = np.abs(ref - data[k]).mean(axis=(1, 2, 3))
            assert chrono[int(np.argmin(err))] == idx and err.min() < 3.0
        extra = res["extra"]
        perm = extra["permutation"]
        assert [chrono[p] for p in perm] == sent
        assert extra["order_changed"] is True
        assert extra["kendall_distance"] == pytest.approx(reference_kendall(perm), abs=1e-12)
        by_length[len(sent)].append(tuple(perm))
    return by_length


def test_shuffled_1fps_never_sends_the_original_order(twelve, tmp_path) -> None:
    """Done-when of the probe: through the runner (sample ids), no clip keeps its order,
    and clips of the same length do not share one permutation."""
    backend = CaptureBackend(msce.Frames(layout="NHWC"))
    samples = [SimpleNamespace(id=f"{i:05d}", path=p, label="neutral") for i, p in enumerate(twelve)]
    dataset = SimpleNamespace(name="twelve", label_set=DFEW)
    strategy = Shuffled(Sparse(1.0, params=ANS), seed=0)
    run_eval(dataset, samples, strategy, backend, tmp_path / "run", progress=False, n_boot=0)
    run = load_run(tmp_path / "run")
    results = sorted(run.records, key=lambda r: r["id"])
    by_length = check_sent_order(backend, twelve, results)
    for r, s in zip(results, samples):
        seed = int.from_bytes(hashlib.sha256(f"0:id:{s.id}".encode()).digest()[:8], "big")
        assert r["extra"]["shuffle_identity"] == f"id:{s.id}" and r["extra"]["video_seed"] == seed
    assert by_length[2] == [(1, 0)] * 4  # the only order of two frames that is not the original
    assert len(set(by_length[3])) > 1 and len(set(by_length[4])) > 1

    from msce.eval.report import shuffle_order_stats

    stats = shuffle_order_stats(run)
    assert stats["videos"] == 12 and stats["changed"] == 12 and stats["fraction_changed"] == 1.0
    want = np.mean([reference_kendall(r["extra"]["permutation"]) for r in results])
    assert stats["mean_kendall"] == pytest.approx(want)
    # the same run again gives the same orders (the seed is all the randomness)
    again = CaptureBackend(msce.Frames(layout="NHWC"))
    run_eval(dataset, samples, strategy, again, tmp_path / "run2", progress=False, n_boot=0)
    assert [list(sent_batches(c[0])[0].indices) for c in again.calls] == \
        [list(sent_batches(c[0])[0].indices) for c in backend.calls]


def test_shuffled_without_sample_id_seeds_by_content(twelve) -> None:
    backend = CaptureBackend(msce.Frames(layout="NHWC"))
    strategy = Shuffled("sparse", seed=0, fps=1.0, params=ANS)
    results = [strategy.run(p, DFEW, backend).to_dict() for p in twelve]
    by_length = check_sent_order(backend, twelve, results)
    assert len(set(by_length[3])) > 1 and len(set(by_length[4])) > 1
    for r, p in zip(results, twelve):
        assert r["extra"]["shuffle_identity"] == "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
    # identity="content" ignores the sample id; the default uses it
    c = Shuffled("sparse", seed=0, fps=1.0, params=ANS, identity="content").run(twelve[5], DFEW, backend,
                                                                               sample_id="x")
    assert c.extra["permutation"] == results[5]["extra"]["permutation"]
    s = strategy.run(twelve[5], DFEW, backend, sample_id="x")
    assert s.extra["shuffle_identity"] == "id:x"
    with pytest.raises(msce.ConfigError):
        Shuffled("sparse", identity="path")


# ---------------------------------------------------------------------------------- controls


def qwen_target():
    lo, hi = PIXELS["2.5"]
    return msce.QwenVL("2.5", min_pixels=lo, max_pixels=hi)


def image_tokens(h: int, w: int) -> int:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    lo, hi = PIXELS["2.5"]
    rh, rw = smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
    return (rh // 14) * (rw // 14) // 4


def video_tokens(n: int, h: int, w: int) -> int:
    return -(-n // 2) * image_tokens(h, w)


def test_controls_send_msce_keyframes(twelve) -> None:
    clip = twelve[11]  # 4 s: keyframes at 0, 1, 2, 3 s, three gaps
    w = 64 + 16 * 11
    kf = [0, 25, 50, 75]
    backend = CaptureBackend(qwen_target())

    m = MSCE(1.0, 4, params=ANS, stage1_params=ANS).run(clip, DFEW, backend)
    assert m.extra["keyframe_indices"] == kf
    assert m.extra["visual_tokens_stage1"] == 3 * video_tokens(4, 48, w)
    assert m.extra["visual_tokens_stage2"] == 4 * image_tokens(48, w)
    assert m.visual_tokens == m.extra["visual_tokens_stage1"] + m.extra["visual_tokens_stage2"]
    msce_stage2 = backend.calls[-1][0]

    backend.calls.clear()
    si = SparseImages(params=ANS).run(clip, DFEW, backend)
    ((req,),) = backend.calls
    assert [int(b.indices[0]) for b in sent_batches(req)] == kf and all(len(b.indices) == 1 for b in sent_batches(req))
    text = "".join(p if isinstance(p, str) else "<image>" for p in req)
    assert "Motion" not in text and text.count("<image>") == 4 and text.endswith(", ".join(DFEW.display))
    assert si.frame_indices == kf and si.stage1 == [] and si.model_calls == 1
    assert si.visual_tokens == 4 * image_tokens(48, w) == m.extra["visual_tokens_stage2"]
    assert si.extra["visual_tokens_stage1"] == 0 and si.strategy == "sparse-images"

    backend.calls.clear()
    nt = MSCENoText(params=ANS).run(clip, DFEW, backend)
    ((req,),) = backend.calls
    sentence = "No motion description is available for this gap."
    texts = [p for p in req if isinstance(p, str)]
    for j in range(3):
        assert texts[j + 1] == f", Motion: {sentence},\nFrameID {j + 2}:"
    # everything but the gap texts is MSCE's stage 2, frames included
    ref_texts = [p for p in msce_stage2 if isinstance(p, str)]
    assert texts[0] == ref_texts[0] and texts[-1] == ref_texts[-1]
    assert [int(b.indices[0]) for b in sent_batches(req)] == kf
    for a, b in zip(sent_batches(req), sent_batches(msce_stage2)):
        assert np.array_equal(a.data.numpy(), b.data.numpy())
    assert nt.model_calls == 1 and nt.stage1 == [] and nt.extra["motion_text"] == sentence
    assert nt.visual_tokens == si.visual_tokens and nt.extra["gaps_with_frames"] == [0, 1, 2]

    # a sparse video of the same keyframes costs half the tokens of four images (Qwen2.5-VL)
    sp = Sparse(1.0, params=ANS).run(clip, DFEW, backend)
    assert sp.visual_tokens == video_tokens(4, 48, w) == si.visual_tokens // 2


def test_controls_registry_and_cli(tmp_path) -> None:
    import argparse

    from msce.cli._options import _strategy_options, make_strategy
    from msce.cli.eval import add_cli

    assert isinstance(get_strategy("sparse-images", keyframe_fps=2.0), SparseImages)
    assert get_strategy("MSCE-NOTEXT").config()["name"] == "msce-notext"
    cfg = SparseImages(2.0, 3).config()
    assert cfg["plan"] == {"kind": "keyframes_with_gaps", "keyframe_fps": 2.0, "gap_frames": 3}
    json.dumps(MSCENoText().config())
    for bad in ({"keyframe_fps": 0}, {"gap_frames": 0}):
        with pytest.raises(msce.ConfigError):
            SparseImages(**bad)
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    for name, cls in (("sparse-images", SparseImages), ("msce-notext", MSCENoText)):
        args = parser.parse_args(["eval", "--dataset", "generic", "--root", str(tmp_path), "--model", "m",
                                  "--strategy", name, "--fps", "2"])
        opts, origin = _strategy_options(args)
        s = make_strategy(args.strategy, origin, **opts)
        assert isinstance(s, cls) and s.keyframe_fps == 2.0


def test_compare_and_report_show_tokens_and_order_stats(twelve, tmp_path) -> None:
    from msce.eval.report import build_report, compare_table

    samples = [SimpleNamespace(id=f"{i:05d}", path=p, label="neutral") for i, p in enumerate(twelve[8:])]
    dataset = SimpleNamespace(name="four", label_set=DFEW)
    runs = {}
    for name, strategy in (("sparse", Sparse(1.0, params=ANS)), ("images", SparseImages(params=ANS)),
                           ("fs", Shuffled(Sparse(1.0, params=ANS), seed=0))):
        run_eval(dataset, samples, strategy, CaptureBackend(qwen_target()), tmp_path / name, progress=False,
                 n_boot=0)
        runs[name] = load_run(tmp_path / name)
    widths = [64 + 16 * i for i in range(8, 12)]
    sparse_mean = np.mean([video_tokens(4, 48, w) for w in widths])
    text, data = compare_table([runs["sparse"], runs["images"]], n_boot=10)
    assert "visual tokens/video" in text and f"{sparse_mean:.1f}" in text
    assert f"{2 * sparse_mean:.1f}" in text and "×2.00" in text
    assert data["visual_tokens_mean"] == {"sparse": sparse_mean, "images": 2 * sparse_mean}

    paths = build_report([runs["sparse"], runs["fs"]], tmp_path / "report", n_boot=10)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| shuffled run | clips | order changed | fraction changed | mean normalized Kendall distance |" in md
    kendall = np.mean([reference_kendall(r["extra"]["permutation"]) for r in runs["fs"].records])
    assert f"| fs | 4 | 4 | 1.0000 | {kendall:.4f} |" in md
