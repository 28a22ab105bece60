"""Every strategy end to end on generated clips with tiny Qwen2.5-VL / Qwen3-VL models
(and once through the openai backend against a local server)."""

from __future__ import annotations

import json
import math
import re

import pytest

import msce
from msce.models.backends.base import GenerationParams, is_frames
from msce.models.cache import ResponseCache
from msce.labels import DFEW
from msce.models.prompts import PromptSet, one_line
from msce.models.strategies import MSCE, Dense, MSCENoText, Shuffled, Sparse, SparseImages, get_strategy

from tiny_env import CLIP_H as H, CLIP_W as W, PIXELS, VERSIONS

# Short answers keep CPU runs fast: the tiny random models never stop on their own.
ANS = GenerationParams(max_new_tokens=4)
S1 = GenerationParams(max_new_tokens=8)


def sparse(fps=1.0):
    return Sparse(fps=fps, params=ANS)


def dense(fps=5.0):
    return Dense(fps=fps, params=ANS)


def msce_(**kw):
    return MSCE(1, 4, params=ANS, stage1_params=S1, **kw)


class Spy:
    """Records every generate call of a backend and the model inputs it built."""

    def __init__(self, backend, monkeypatch):
        self.calls: list[dict] = []
        generate, build = backend.generate, getattr(backend, "build_inputs", None)

        def spy_generate(requests, params):
            self.calls.append({"requests": list(requests), "params": params, "inputs": []})
            return generate(requests, params)

        monkeypatch.setattr(backend, "generate", spy_generate)
        if build is not None:
            def spy_build(requests):
                inputs = build(requests)
                self.calls[-1]["inputs"].append(inputs)
                return inputs

            monkeypatch.setattr(backend, "build_inputs", spy_build)

    def vision_tokens(self, call: dict) -> int:
        return int(sum(int((i["mm_token_type_ids"] > 0).sum()) for i in call["inputs"]))


# the tiny checkpoints' image processors' pixel bounds (Qwen2VLImageProcessor's defaults for 2.5)
IMAGE_PIXELS = {"2.5": (56 * 56, 28 * 28 * 1280), "3": (65536, 16777216)}


def expected_tokens(v: str, n: int) -> int:
    """LLM tokens of an n-frame batch of the test clip, from transformers' own resize math: one
    frame is an image (the image processor's bounds), more a video (the backend's bounds)."""
    if n == 1:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        patch = 14 if v == "2.5" else 16
        h, w = smart_resize(H, W, factor=2 * patch, min_pixels=IMAGE_PIXELS[v][0], max_pixels=IMAGE_PIXELS[v][1])
        return (h // patch) * (w // patch) // 4
    lo, hi = PIXELS[v]
    if v == "2.5":
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        h, w = smart_resize(H, W, factor=28, min_pixels=lo, max_pixels=hi)
        patch = 14
    else:
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize

        h, w = smart_resize(max(n, 2), H, W, temporal_factor=2, factor=32, min_pixels=lo, max_pixels=hi)
        patch = 16
    return math.ceil(n / 2) * (h // patch) * (w // patch) // 4


def kinds(request) -> str:
    return "".join("K" if is_frames(p) else "T" for p in request)


@pytest.mark.parametrize("v", VERSIONS)
def test_sparse_and_dense_tokens_match_plan(v, tiny_backends, clips, monkeypatch) -> None:
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    meta = msce.VideoReader(clips["main"]).metadata
    for strategy, fps in ((sparse(1), 1), (dense(5), 5)):
        r = strategy.run(clips["main"], DFEW, be)
        plan = msce.plan.uniform(fps).resolve(meta)
        assert r.frame_indices == list(plan.indices)
        assert r.timestamps == pytest.approx(list(plan.timestamps))
        assert r.visual_tokens == expected_tokens(v, len(plan)) == spy.vision_tokens(spy.calls[-1])
        assert (r.model_calls, r.cache_hits, r.model_requests) == (1, 0, 1)
        assert kinds(spy.calls[-1]["requests"][0]) == "KT"
        assert r.stage1 == [] and len(r.prompts) == 1 and r.prompts[0].startswith("<video>Question:")
        assert r.parsed is None or r.parsed in DFEW.names
        assert r.strategy == strategy.name and r.parse_reason
        json.dumps(r.to_dict())
        json.dumps(strategy.config())
    assert len(sparse(1).run(clips["main"], DFEW, be).frame_indices) == 4
    assert len(dense(5).run(clips["main"], DFEW, be).frame_indices) == 16


@pytest.mark.parametrize("v", VERSIONS)
def test_shuffled_really_permutes(v, tiny_backends, clips, monkeypatch) -> None:
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    meta = msce.VideoReader(clips["main"]).metadata
    base = list(msce.plan.uniform(5).resolve(meta).indices)
    r = Shuffled(sparse(5), seed=1).run(clips["main"], DFEW, be)
    assert sorted(r.frame_indices) == base and r.frame_indices != base
    assert r.extra["chronological_indices"] == base
    assert [base[k] for k in r.extra["permutation"]] == r.frame_indices and r.extra["order_changed"]
    assert 0 < r.extra["kendall_distance"] <= 1
    sent = [p for p in spy.calls[-1]["requests"][0] if is_frames(p)][0]
    assert list(sent.indices) == r.frame_indices  # the model got the permuted frames
    assert r.visual_tokens == expected_tokens(v, len(base))
    assert Shuffled(sparse(5), seed=1).run(clips["main"], DFEW, be).frame_indices == r.frame_indices
    assert Shuffled(sparse(5), seed=2).run(clips["main"], DFEW, be).frame_indices != r.frame_indices
    if v == "3":  # content is permuted, the clock is not
        times = [float(t) for t in re.findall(r"<([0-9.]+) seconds>", be.expanded_text(spy.calls[0]["requests"][0]))]
        assert times == sorted(times) and len(times) == math.ceil(len(base) / 2)
    s = get_strategy("shuffled", inner="dense", fps=5, seed=1)
    assert s.config()["plan"]["kind"] == "shuffled"


@pytest.mark.parametrize("v", VERSIONS)
def test_msce_two_stages(v, tiny_backends, clips, monkeypatch) -> None:
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    invocations = be.generate_invocations
    plan = msce.plan.keyframes_with_gaps(1.0, 4).resolve(msce.VideoReader(clips["main"]).metadata)
    keyframes = list(plan.keyframes().indices)
    assert len(keyframes) == 4 and plan.num_gaps == 3

    r = msce_().run(clips["main"], DFEW, be)
    # exactly n-1 stage-1 descriptions, two model invocations in all
    assert len(r.stage1) == 3
    assert r.model_calls == 2 and len(spy.calls) == 2 and be.generate_invocations == invocations + 2
    stage1, stage2 = spy.calls
    assert len(stage1["requests"]) == 3  # all gaps in ONE generate call
    for j, req in enumerate(stage1["requests"]):
        assert kinds(req) == "KT"
        assert list(req[0].indices) == list(plan.gap(j).indices) and len(req[0].indices) == 4
    assert stage1["params"] == S1 and stage2["params"] == ANS
    assert MSCE().stage1_params.max_new_tokens == 96 and MSCE().params.max_new_tokens == 32

    # stage 2: k1, t1, k2, t2, k3, t3, k4 in chronological order, then question + choices
    (req,) = stage2["requests"]
    assert kinds(req) == "TKTKTKTKT"
    assert [int(p.indices[0]) for p in req if is_frames(p)] == keyframes
    texts = [p for p in req if isinstance(p, str)]
    assert texts[0].startswith("Analyze the following sequence of sparse keyframes")
    for j in range(3):
        assert texts[j + 1] == f", Motion: {one_line(r.stage1[j])},\nFrameID {j + 2}:"
    assert texts[-1].startswith(".\nQuestion:") and texts[-1].endswith(", ".join(DFEW.display))

    gap_tokens = 3 * expected_tokens(v, 4)
    kf_tokens = 4 * expected_tokens(v, 1)
    assert r.visual_tokens == gap_tokens + kf_tokens
    assert spy.vision_tokens(stage1) == gap_tokens and spy.vision_tokens(stage2) == kf_tokens
    gap_indices = [i for j in range(3) for i in plan.gap(j).indices]
    assert r.frame_indices == gap_indices + keyframes
    assert r.extra["keyframe_indices"] == keyframes
    assert len(r.prompts) == 4 and r.prompts[-1].count("<image>") == 4
    json.dumps(r.to_dict())


@pytest.mark.parametrize("v", VERSIONS)
def test_msce_controls(v, tiny_backends, clips, monkeypatch) -> None:
    """msce's controls: MSCE's keyframes as images, without (sparse-images) or with neutral
    (msce-notext) gap text; one call each, no stage 1."""
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    keyframes = list(msce.plan.keyframes_with_gaps(1.0, 4).resolve(msce.VideoReader(clips["main"]).metadata)
                     .keyframes().indices)
    full = msce_().run(clips["main"], DFEW, be)
    msce_texts = [p for p in spy.calls[-1]["requests"][0] if isinstance(p, str)]
    for cls in (SparseImages, MSCENoText):
        calls = len(spy.calls)
        r = cls(1.0, 4, params=ANS).run(clips["main"], DFEW, be)
        assert r.model_calls == 1 and len(spy.calls) == calls + 1 and r.stage1 == []
        (req,) = spy.calls[-1]["requests"]
        assert kinds(req) == "TKTKTKTKT"
        assert [int(p.indices[0]) for p in req if is_frames(p)] == keyframes == r.frame_indices
        assert r.visual_tokens == 4 * expected_tokens(v, 1) == spy.vision_tokens(spy.calls[-1])
        assert r.visual_tokens == full.extra["visual_tokens_stage2"]
        assert r.parsed is None or r.parsed in DFEW.names
        texts = [p for p in req if isinstance(p, str)]
        assert texts[-1] == msce_texts[-1]  # the same question and choices
        if cls is SparseImages:
            assert "Motion" not in r.prompts[0] and texts[1] == ",\nFrameID 2:"
        else:
            assert texts[0] == msce_texts[0]
            assert texts[1] == ", Motion: No motion description is available for this gap.,\nFrameID 2:"
        json.dumps(r.to_dict())
    assert full.extra["visual_tokens_stage1"] == 3 * expected_tokens(v, 4)


@pytest.mark.parametrize("v", VERSIONS)
def test_cached_rerun_makes_zero_model_calls(v, tiny_backends, clips, tmp_path, monkeypatch) -> None:
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        for strategy in (sparse(1), dense(5), Shuffled(sparse(5), seed=3), msce_(), SparseImages(params=ANS),
                         MSCENoText(params=ANS)):
            first = strategy.run(clips["main"], DFEW, be, cache)
            calls = len(spy.calls)
            assert first.model_calls >= 1
            again = strategy.run(clips["main"], DFEW, be, cache)
            assert len(spy.calls) == calls  # nothing reached the model
            assert again.model_calls == 0 and again.model_requests == 0
            assert again.cache_hits == first.model_requests + first.cache_hits
            assert (again.raw_answer, again.stage1, again.prompts) == (first.raw_answer, first.stage1, first.prompts)
        # stage-1 descriptions are shared: another question re-runs stage 2 only
        other = msce_(prompts=PromptSet(question="Which emotion is shown?")).run(clips["main"], DFEW, be, cache)
        assert other.model_calls == 1 and other.extra["stage1_from_cache"] == [True, True, True]
        assert other.cache_hits == 3


@pytest.mark.parametrize("v", VERSIONS)
def test_single_keyframe_skips_stage1(v, tiny_backends, clips, monkeypatch) -> None:
    be = tiny_backends[v]
    spy = Spy(be, monkeypatch)
    r = msce_().run(clips["short"], DFEW, be)
    assert r.stage1 == [] and r.model_calls == 1 and len(spy.calls) == 1
    assert kinds(spy.calls[0]["requests"][0]) == "TKT"
    assert r.frame_indices == [0] and r.visual_tokens == expected_tokens(v, 1)
    one = sparse(1).run(clips["short"], DFEW, be)  # one frame goes as an image
    assert one.frame_indices == [0] and one.prompts[0].startswith("<image>")


def test_msce_through_openai_backend(clips, monkeypatch) -> None:
    from backend_fakes import FakeChatServer

    from msce.models.backends import get_backend

    with FakeChatServer() as server:
        be = get_backend("openai", base_url=server.base_url, model="tiny", api_key_env="MSCE_UNSET_KEY_VAR",
                         backoff_base=0.01)
        spy = Spy(be, monkeypatch)
        r = msce_().run(clips["main"], DFEW, be)
        assert r.model_calls == 2 and len(spy.calls) == 2 and len(spy.calls[0]["requests"]) == 3
        assert len(server.requests) == 4
        counts = [sum(c["type"] == "image_url" for c in q["body"]["messages"][0]["content"])
                  for q in server.requests]
        assert sorted(counts) == [4, 4, 4, 4]  # three gaps of 4 frames, then 4 keyframes
        content = server.requests[-1]["body"]["messages"][0]["content"]
        assert "".join("K" if c["type"] == "image_url" else "T" for c in content) == "TKTKTKTKT"
        assert r.stage1 == [f"echo {one_line(PromptSet()._t('stage1').format(count=4))} images=4"] * 3
        assert r.visual_tokens == 0  # plain frames carry no token count
        s = sparse(1).run(clips["main"], DFEW, be)
        assert s.model_calls == 1 and s.raw_answer.endswith("images=4")
