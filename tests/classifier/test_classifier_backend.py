"""The video-classifier backend: label mapping by name, the plan-to-clip rule, and outputs
equal to calling the checkpoint's HF video processor and model directly, alone and end to
end through run_eval with dense and shuffled plans."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from msce.errors import ConfigError
from msce.labels import DFEW, MAFW
from msce.models.backends.base import GenerationParams
from msce.models.backends.classifier import (
    ClassifierBackend,
    clip_positions,
    format_answer,
    map_labels,
    read_probabilities,
)
from msce.models.answers import parse_answer_detail

# DFER-CLIP's MAFW id order (happiness first) differs from MAE-DFER's: mapping is by name.
DFER_CLIP_MAFW = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear", "contempt",
                  "anxiety", "helplessness", "disappointment")


@pytest.fixture(scope="module")
def backend(tiny_videomae):
    return ClassifierBackend(str(tiny_videomae), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def reference(tiny_videomae):
    from transformers import AutoModelForVideoClassification, AutoVideoProcessor

    proc = AutoVideoProcessor.from_pretrained(str(tiny_videomae))
    model = AutoModelForVideoClassification.from_pretrained(str(tiny_videomae)).eval()

    def logits(*clips: np.ndarray) -> torch.Tensor:
        """Logits of one clip, or (batch, classes) for several clips in one forward pass."""
        with torch.no_grad():
            out = model(**proc(videos=list(clips), return_tensors="pt")).logits
        return out[0] if len(clips) == 1 else out

    return logits


def ref_positions(n: int, t: int) -> list[int]:
    return [int(v) for v in np.floor((np.arange(t) + 0.5) * n / t)]


# -- label mapping ------------------------------------------------------------------------
def test_map_labels_by_name_dfew() -> None:
    m = map_labels({i: n for i, n in enumerate(("Happiness", "Sadness", "Neutral", "Anger", "Surprise",
                                                "Disgust", "Fear"))})
    assert m.label_set is DFEW  # 7 classes map into both sets: the one with 7 classes wins
    assert m.names == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert m.set_index() == list(range(7))


def test_map_labels_mafw_other_id_order() -> None:
    m = map_labels(dict(enumerate(DFER_CLIP_MAFW)))
    assert m.label_set is MAFW
    assert [MAFW.names[i] for i in m.set_index()] == list(DFER_CLIP_MAFW)
    assert m.set_index()[:4] == [MAFW.index("happiness"), MAFW.index("sadness"), MAFW.index("neutral"),
                                 MAFW.index("anger")]


def test_map_labels_errors_list_unmapped() -> None:
    with pytest.raises(ConfigError, match=r"LABEL_0.*LABEL_1"):
        map_labels({0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ConfigError) as err:
        map_labels(dict(enumerate(DFER_CLIP_MAFW)), labels="dfew")
    for name in ("contempt", "anxiety", "helplessness", "disappointment"):
        assert name in str(err.value)
    assert "happiness" not in str(err.value).split("unmapped")[1]
    with pytest.raises(ConfigError, match="several classes for one name"):
        map_labels({0: "happy", 1: "happiness", 2: "sad"})
    with pytest.raises(ConfigError, match="unknown label set"):
        map_labels({0: "happy"}, labels="fer2013")


# -- clip rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 16, 31, 64, 301])
@pytest.mark.parametrize("t", [1, 2, 4, 8, 16])
def test_clip_positions(n: int, t: int) -> None:
    pos = clip_positions(n, t)
    assert pos == ref_positions(n, t)
    assert len(pos) == t and all(0 <= p < n for p in pos) and pos == sorted(pos)
    if n >= t:
        assert len(set(pos)) == t
    else:
        assert set(pos) == set(range(n))  # every frame used, each about t/n times
    assert clip_positions(n, None) == list(range(n))


def test_clip_positions_rejects() -> None:
    with pytest.raises(ConfigError):
        clip_positions(0, 4)
    with pytest.raises(ConfigError):
        clip_positions(4, 0)


# -- answers ----------------------------------------------------------------------------------
def test_answer_parses_and_round_trips() -> None:
    probs = [0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]
    raw = format_answer("angry", DFEW, probs)
    assert parse_answer_detail(raw, DFEW).label == "angry"
    assert parse_answer_detail(raw, MAFW).label == "anger"
    assert read_probabilities(raw) == dict(zip(DFEW.names, probs))
    assert read_probabilities("The person looks happy.") is None
    contempt = format_answer("contempt", MAFW, [1 / 11] * 11)
    assert parse_answer_detail(contempt, DFEW).reason == "no-label"  # a MAFW-only class is invalid on DFEW


# -- backend vs HF ------------------------------------------------------------------------------
def test_backend_equals_hf(backend, reference, clf_data) -> None:
    from msce import plan
    from msce.io import load

    path = clf_data["dataset"].samples[0].path
    batch = load(path, plan.dense(), backend.target())
    frames = batch.data.numpy()
    assert backend.num_frames == 4 and len(frames) > 4
    (out,) = backend.classify([["ignored prompt", batch]])
    pos = ref_positions(len(frames), 4)
    assert out.positions == pos
    want = reference(frames[pos])
    assert torch.equal(torch.tensor(out.logits), want)
    p = torch.softmax(want, -1)
    assert out.probabilities == pytest.approx(p.tolist(), abs=1e-7)
    assert out.label == DFEW.names[int(p.argmax())]
    # one batched forward pass for several requests, as HF computes the same batch
    short = load(path, plan.at_indices([0, 1]), backend.target())
    calls = backend.forward_invocations
    outs = backend.classify([[batch], [short], [batch]])
    assert backend.forward_invocations == calls + 1
    want = reference(frames[pos], short.data.numpy()[[0, 0, 1, 1]], frames[pos])
    assert torch.equal(torch.tensor([o.logits for o in outs]), want)
    assert outs[1].positions == [0, 0, 1, 1]


def test_backend_rejects(backend, clf_data) -> None:
    from msce import plan
    from msce.io import load

    batch = load(clf_data["dataset"].samples[0].path, plan.count(2), backend.target())
    with pytest.raises(ConfigError, match="temperature 0"):
        backend.generate([[batch]], GenerationParams(temperature=0.7))
    with pytest.raises(ConfigError, match="one clip per request"):
        backend.generate([[batch, "text", batch]], GenerationParams())
    with pytest.raises(ConfigError, match="one clip per request"):
        backend.generate([["only text"]], GenerationParams())


def test_fingerprint_and_config(backend) -> None:
    fp = backend.fingerprint()
    assert fp["backend"] == "classifier" and fp["num_frames"] == 4 and fp["clip_rule"] == "segment-centres"
    assert fp["labels"]["label_set"] == "dfew"
    cfg = backend.config()
    assert cfg["architecture"] == "VideoMAEForVideoClassification"
    json.dumps(cfg)
    assert ClassifierBackend(backend.model_name, device="cpu", num_frames=8).fingerprint() != fp


# -- end to end -----------------------------------------------------------------------------------
def _check_run(out_dir, dataset, reference, backend, shuffled: bool) -> list[dict]:
    from msce import plan
    from msce.io import load

    recs = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    by_id = {s.id: s for s in dataset.samples}
    for rec in recs:
        dense = load(by_id[rec["id"]].path, plan.dense(), backend.target()).data.numpy()
        order = rec["frame_indices"]
        if shuffled:
            assert order == rec["extra"]["permutation"] and order != sorted(order)
        else:
            assert order == list(range(len(dense)))
        clip = dense[order][ref_positions(len(order), 4)]
        p = torch.softmax(reference(clip), -1)
        got = read_probabilities(rec["raw_answer"])
        assert list(got.values()) == pytest.approx(p.tolist(), abs=5.1e-5)
        best = DFEW.names[int(p.argmax())]
        # the dataset has three of DFEW's classes: another prediction is invalid, never remapped
        assert rec["parsed"] == (best if best in dataset.label_set.names else None)
        assert rec["visual_tokens"] == 0
    return recs


@pytest.mark.parametrize("shuffled", [False, True], ids=["dense", "shuffled"])
def test_run_eval_end_to_end(backend, reference, clf_data, tmp_path, shuffled) -> None:
    from msce.eval.runner import run_eval
    from msce.models.cache import ResponseCache
    from msce.models.strategies import Dense, Shuffled

    ds, split = clf_data["dataset"], clf_data["split"]
    strategy = Shuffled(Dense(None), seed=0) if shuffled else Dense(None)
    samples = split.test_samples(ds)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    res = run_eval(ds, samples, strategy, backend, tmp_path / "run", cache, progress=False, n_boot=0)
    recs = _check_run(tmp_path / "run", ds, reference, backend, shuffled)
    assert len(recs) == len(samples) and res.report.n == len(samples)
    assert sum(r["model_calls"] for r in recs) == len(samples)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["backend"]["fingerprint"]["labels"]["label_set"] == "dfew"
    assert cfg["backend"]["class"].endswith("ClassifierBackend")
    # a rerun into a new directory is answered from the cache: no forward pass
    before = backend.forward_invocations
    run_eval(ds, samples, strategy, backend, tmp_path / "run2", cache, progress=False, n_boot=0)
    assert backend.forward_invocations == before
    cache.close()


# -- msce's native tensors vs the checkpoint's HF video processor ------------------------------
def test_inputs_are_msces_exact_videomae_tensors(backend, tiny_videomae, clf_data) -> None:
    import msce
    from msce import plan
    from msce.io import load
    from transformers import AutoVideoProcessor

    proc = AutoVideoProcessor.from_pretrained(str(tiny_videomae))
    assert type(proc).__name__ == "VideoMAEVideoProcessor"
    assert backend.msce_target == msce.target_for(proc) and isinstance(backend.msce_target, msce.targets.VideoMAE)
    assert backend.config()["tensors"] == "msce"
    rng = np.random.default_rng(7)
    decoded = load(clf_data["dataset"].samples[0].path, plan.count(4), backend.target()).data.numpy()
    groups = [[rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)],  # 8 random frames
              [rng.integers(0, 256, (4, 90, 70, 3), dtype=np.uint8) for _ in range(3)],  # a batch of three
              [decoded]]
    for clips in groups:
        got = backend.inputs(clips)
        want = proc(videos=list(clips), return_tensors="pt", do_sample_frames=False)
        assert set(got) == set(want.keys()) == {"pixel_values"}
        assert got["pixel_values"].shape == want["pixel_values"].shape
        assert got["pixel_values"].dtype == want["pixel_values"].dtype
        assert (got["pixel_values"] - want["pixel_values"]).abs().max().item() == 0.0
        assert torch.equal(got["pixel_values"], backend.hf_inputs(clips)["pixel_values"])


def test_inputs_fall_back_to_the_hf_processor(backend, monkeypatch) -> None:
    import msce.models.backends.classifier as clf

    clip = np.random.default_rng(8).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    want = backend.hf_inputs([clip])["pixel_values"]
    monkeypatch.setattr(backend, "msce_target", None)  # a processor target_for does not reproduce
    assert torch.equal(backend.inputs([clip])["pixel_values"], want)
    assert backend.config()["tensors"] == "hf-processor"
    monkeypatch.undo()

    def refuse(clips):
        raise clf.UnsupportedError("not reproduced")

    monkeypatch.setattr(backend, "_msce_inputs", refuse)  # a geometry msce refuses: HF's path
    assert torch.equal(backend.inputs([clip])["pixel_values"], want)
