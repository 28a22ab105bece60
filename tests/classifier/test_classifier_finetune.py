"""Class-balanced fine-tuning of a tiny random VideoMAE on generated clips: the label head
is remapped by name (rows kept, reordered, or new), the loss goes down, a resumed run
reproduces the uninterrupted one, the test clips are never trained on, and the trained
model evaluates through the classifier backend."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from msce.errors import DatasetError
from msce.models.strategies import Dense, Sparse
from msce.train.classifier import MODEL_DIR, finetune_classifier, remap_head
from msce.train.options import LoraOptions, SamplingOptions, TrainOptions


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def opts(max_steps: int, save_every: int, lr: float = 3e-3) -> TrainOptions:
    return TrainOptions(max_steps=max_steps, lr=lr, scheduler="constant", warmup_ratio=0.0, batch_size=3,
                        grad_accum=1, save_every=save_every, keep_checkpoints=0, seed=0)


def run(clf_data, model, out, mode, max_steps, save_every, **kw):
    logs: list[str] = []
    res = finetune_classifier(clf_data["dataset"], clf_data["split"], Dense(None), str(model), out, mode=mode,
                              lora=LoraOptions(r=4), train=opts(max_steps, save_every, kw.pop("lr", 3e-3)),
                              sampling=SamplingOptions(n_per_class=3), device="cpu", progress=False,
                              log=logs.append, **kw)
    return res, logs


def _load(path):
    from transformers import AutoModelForVideoClassification

    return AutoModelForVideoClassification.from_pretrained(str(path)).eval()


# -- the label head --------------------------------------------------------------------------
def test_head_remap_keeps_rows_by_name(tiny_videomae, clf_data) -> None:
    labels = clf_data["dataset"].label_set
    assert labels.names == ("angry", "happy", "sad")
    model = _load(tiny_videomae)
    old_w, old_b = model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()
    rec = remap_head(model, labels, seed=0)
    assert rec["head"] == "remapped"
    assert rec["sources"] == {"angry": "Anger", "happy": "Happiness", "sad": "Sadness"}
    src = [3, 0, 1]  # Anger, Happiness, Sadness in the checkpoint's id order
    assert torch.equal(model.classifier.weight, old_w[src]) and torch.equal(model.classifier.bias, old_b[src])
    assert model.config.id2label == {0: "angry", 1: "happy", 2: "sad"} and model.config.num_labels == 3


def test_head_remap_kept_partial_new(tmp_path) -> None:
    from msce.labels import DFEW, MAFW
    from msce.testing.tiny_classifier import make_tiny_videomae
    from msce.eval.datasets import make_label_set

    same = _load(make_tiny_videomae(tmp_path / "same", labels=DFEW.names))
    w = same.classifier.weight.detach().clone()
    assert remap_head(same, DFEW)["head"] == "kept" and torch.equal(same.classifier.weight, w)

    mafw = _load(make_tiny_videomae(tmp_path / "m", labels=DFEW.names))  # 7 classes, MAFW has 11
    w = mafw.classifier.weight.detach().clone()
    rec = remap_head(mafw, MAFW, seed=3)
    assert rec["head"] == "partial"
    assert [rec["sources"][n] for n in ("anger", "happiness", "contempt")] == ["angry", "happy", None]
    assert torch.equal(mafw.classifier.weight[MAFW.index("happiness")], w[0])
    fresh = mafw.classifier.weight[MAFW.index("contempt")]
    want = torch.randn((11, w.shape[1]), generator=torch.Generator().manual_seed(3)) * 0.02
    assert torch.equal(fresh, want[MAFW.index("contempt")])
    assert float(mafw.classifier.bias.detach()[MAFW.index("contempt")]) == 0.0

    anon = _load(make_tiny_videomae(tmp_path / "anon", labels=[f"LABEL_{i}" for i in range(5)]))
    rec = remap_head(anon, make_label_set(["angry", "happy", "sad"]))
    assert rec["head"] == "new" and set(rec["sources"].values()) == {None}


# -- training ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(clf_data, tiny_videomae, tmp_path_factory):
    out = tmp_path_factory.mktemp("clfft") / "full"
    return run(clf_data, tiny_videomae, out, "full", 15, 5, lr=5e-3)


def test_loss_goes_down(trained) -> None:
    res, logs = trained
    losses = [v for _, v in res.losses]
    assert [s for s, _ in res.losses] == list(range(1, 16))
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses
    assert any(line.startswith("class-balanced sampler") for line in logs)
    cfg = json.loads((res.out_dir / "msce_finetune.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["head"]["head"] == "remapped"
    assert cfg["sampler"]["histogram"] == {"angry": 3, "happy": 3, "sad": 3}
    assert cfg["trainable"]["mode"] == "full"
    log = [json.loads(x) for x in (res.out_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 16))


def test_trained_model_evaluates(trained, clf_data, tmp_path) -> None:
    from msce.models.backends.classifier import read_probabilities
    from msce.train.classifier import evaluate_classifier

    res, _ = trained
    ev = evaluate_classifier(clf_data["dataset"], clf_data["split"], Dense(None), res.adapter_dir, tmp_path / "ev",
                             backend_options={"device": "cpu"}, progress=False, n_boot=0, base_model="base")
    recs = [json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(r["parsed"] in ("angry", "happy", "sad") for r in recs)
    labels = clf_data["dataset"].label_set
    assert all(abs(sum(read_probabilities(r["raw_answer"], labels).values()) - 1) < 1e-3 for r in recs)
    cfg = json.loads((tmp_path / "ev" / "config.json").read_text())
    assert cfg["extra"]["finetune_run"] == str(res.out_dir.resolve()) and cfg["extra"]["base_model"] == "base"
    assert ev.report.n == 3


def test_resume_reproduces_losses(clf_data, tiny_videomae, tmp_path) -> None:
    full, _ = run(clf_data, tiny_videomae, tmp_path / "a", "lora", 6, 3)
    part, _ = run(clf_data, tiny_videomae, tmp_path / "b", "lora", 3, 3)
    rest, logs = run(clf_data, tiny_videomae, tmp_path / "b", "lora", 6, 3, resume=True)
    assert rest.start_step == 3 and any("resuming" in line for line in logs)
    assert part.losses + rest.losses == full.losses
    a, b = _load(tmp_path / "a" / MODEL_DIR), _load(tmp_path / "b" / MODEL_DIR)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


def test_head_mode_trains_only_the_head(clf_data, tiny_videomae, tmp_path) -> None:
    res, _ = run(clf_data, tiny_videomae, tmp_path / "h", "head", 2, 0)
    before, after = _load(tiny_videomae), _load(res.adapter_dir)
    for (n, p), (_, q) in zip(before.state_dict().items(), after.state_dict().items()):
        if not n.startswith("classifier."):
            assert torch.equal(p, q), n
    assert after.classifier.weight.shape[0] == 3


def test_refuses_test_clips_and_msce(clf_data, tiny_videomae, tmp_path) -> None:
    from types import SimpleNamespace

    from msce.errors import ConfigError

    split, ds = clf_data["split"], clf_data["dataset"]
    # a split whose train part hands out a test clip: the sampler's leakage guard refuses it
    leaky = SimpleNamespace(name="leaky", train=split.train, test=split.test,
                            train_samples=lambda d: split.train_samples(d) + split.test_samples(d)[:1])
    with pytest.raises(DatasetError, match="leak"):
        finetune_classifier(ds, leaky, Dense(None), str(tiny_videomae), tmp_path / "x",
                            train=opts(1, 0), device="cpu", progress=False, log=lambda _: None)
    with pytest.raises(ConfigError, match="sparse or dense"):
        from msce.models.strategies import MSCE

        finetune_classifier(clf_data["dataset"], split, MSCE(), str(tiny_videomae), tmp_path / "y",
                            train=opts(1, 0), device="cpu", progress=False, log=lambda _: None)
    shutil.rmtree(tmp_path / "x", ignore_errors=True)
    assert Sparse  # the sparse plan is accepted too (same code path as dense)
