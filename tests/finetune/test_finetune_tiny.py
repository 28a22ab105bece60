"""LoRA fine-tuning end to end on CPU: a tiny random-weight Qwen2.5-VL trained for a few
steps on generated clips. The loss goes down, the adapter saves and reloads with
identical outputs, `msce eval --adapter` writes a run directory, a resumed run continues
the step count (and reproduces the uninterrupted run), and the MSCE strategy trains on
its stage-2 prompt with the base model's cached stage-1 descriptions."""

from __future__ import annotations

import json
import math

import pytest
import torch

from msce import cli
from msce.models.backends import GenerationParams, get_backend
from msce.errors import ConfigError
from msce.train.finetune import (
    CONFIG_FILE,
    ExampleEncoder,
    LoraOptions,
    SamplingOptions,
    TrainOptions,
    answer_loss,
    collate,
    finetune,
)
from msce.models.strategies import MSCE, Sparse

from ft_env import PIXELS

STEPS = 16
LR = 5e-3
ANS = GenerationParams(max_new_tokens=4)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model is far faster single-threaded on small shared CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sparse() -> Sparse:
    return Sparse(1.0, params=ANS)


def train_opts(max_steps: int, save_every: int, **kw) -> TrainOptions:
    return TrainOptions(max_steps=max_steps, lr=kw.pop("lr", LR), scheduler="constant", warmup_ratio=0.0,
                        batch_size=2, grad_accum=1, save_every=save_every, keep_checkpoints=0, seed=0, **kw)


def run(ft_data, model, out, max_steps, save_every, **kw):
    logs: list[str] = []
    res = finetune(ft_data["dataset"], ft_data["split"], sparse(), str(model), out, lora=LoraOptions(r=8),
                   train=train_opts(max_steps, save_every, **{k: kw.pop(k) for k in ("lr",) if k in kw}),
                   sampling=SamplingOptions(n_per_class=3), backend_options=PIXELS, device="cpu",
                   progress=False, log=logs.append, **kw)
    return res, logs


@pytest.fixture(scope="module")
def trained(ft_data, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "sparse"
    res, logs = run(ft_data, tiny_model, out, STEPS, 8, keep_model=True)
    return res, logs


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_loss_goes_down(trained) -> None:
    res, logs = trained
    losses = [loss for _, loss in res.losses]
    assert [s for s, _ in res.losses] == list(range(1, STEPS + 1))
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.3, losses
    log = read_jsonl(res.out_dir / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    assert all(r["examples"] == 2 and r["answer_tokens"] > 0 for r in log)
    assert res.sampler["histogram"] == {"angry": 3, "happy": 3, "sad": 3}
    assert any("3 per class x 3 classes" in line for line in logs)  # the histogram is reported
    assert res.steps_per_second > 0


def test_examples_are_inference_prompts_with_answer_targets(ft_data, tiny_model) -> None:
    be = get_backend("transformers", model=str(tiny_model), dtype="float32", device="cpu", **PIXELS)
    ds = ft_data["dataset"]
    enc = ExampleEncoder(be, sparse(), ds.label_set)
    samples = ft_data["split"].train_samples(ds)
    a, b = enc.encode(samples[0]), enc.encode(samples[-1])
    request, prompt, _ = enc.request(samples[0])
    # the prompt part is token for token what the backend sends at inference
    expected = be.build_inputs([request])["input_ids"][0]
    assert torch.equal(a.input_ids[:-a.n_answer], expected)
    assert be.tokenizer.decode(a.input_ids[-a.n_answer:]) == ds.label_set.display[
        ds.label_set.index(samples[0].label)] + "<|im_end|>"
    assert "Emotion Labels choices: Angry, Happy, Sad" in prompt
    inputs, targets, n = collate([a, b], be.tokenizer.pad_token_id)
    assert n == max(a.n_answer, b.n_answer)
    assert (targets != -100).sum() == a.n_answer + b.n_answer  # loss only on the answers
    assert inputs["pixel_values_videos"].shape[0] == a.visual["pixel_values_videos"].shape[0] * 2
    loss, count = answer_loss(be.model, inputs, targets, n)
    full = be.model(**inputs, use_cache=False).logits  # same loss from all positions' logits
    ref = torch.nn.functional.cross_entropy(full[:, -n - 1:-1].reshape(-1, full.shape[-1]), targets.reshape(-1),
                                            ignore_index=-100, reduction="sum")
    assert count == a.n_answer + b.n_answer and torch.allclose(loss, ref, atol=1e-4)


def test_adapter_saves_and_reloads_identically(trained, ft_data, tiny_model) -> None:
    res, _ = trained
    ad = res.adapter_dir
    for name in ("adapter_config.json", "adapter_model.safetensors", CONFIG_FILE):
        assert (ad / name).is_file(), name
    meta = json.loads((ad / CONFIG_FILE).read_text())
    assert meta["sampler"]["histogram"] == {"angry": 3, "happy": 3, "sad": 3}
    assert meta["strategy"]["name"] == "sparse" and meta["lora"]["r"] == 8 and meta["final_step"] == STEPS
    assert meta["split"]["num_test"] == 3

    loaded = get_backend("transformers", model=str(tiny_model), adapter=str(ad), dtype="float32", device="cpu",
                         **PIXELS)
    base = get_backend("transformers", model=str(tiny_model), dtype="float32", device="cpu", **PIXELS)
    assert "+adapter:" in loaded.model_id and "adapter" in loaded.fingerprint()
    assert loaded.fingerprint() != base.fingerprint()
    sample = ft_data["split"].test_samples(ft_data["dataset"])[0]
    request, _, _ = ExampleEncoder(loaded, sparse(), ft_data["dataset"].label_set).request(sample)
    inputs = loaded.build_inputs([request])
    trained_model = res.model.eval()
    with torch.no_grad():
        want = trained_model(**inputs).logits
        got = loaded.model(**inputs).logits
        untuned = base.model(**inputs).logits
    assert torch.equal(got, want)
    assert not torch.allclose(got, untuned)  # the adapter does change the model
    base.model = trained_model  # the in-memory trained model, behind the same backend code
    assert loaded.generate([request], ANS) == base.generate([request], ANS)


def test_eval_cli_with_adapter_writes_a_run(trained, ft_data, tiny_model, tmp_path, capsys) -> None:
    res, _ = trained
    out = tmp_path / "eval"
    argv = ["eval", "--dataset", "generic", "--root", str(ft_data["csv"]), "--split", "balanced",
            "--n-per-class", "1", "--model", str(tiny_model), "--adapter", str(res.adapter_dir),
            "--strategy", "sparse", "--strategy-opt", 'params={"max_new_tokens": 4}',
            "--backend-opt", "dtype=float32", "--backend-opt", "device=cpu",
            "--backend-opt", f"min_pixels={PIXELS['min_pixels']}", "--backend-opt", f"max_pixels={PIXELS['max_pixels']}",
            "--no-cache", "--no-progress", "--n-boot", "20", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "macro-F1" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert "+adapter:" in config["backend"]["model_id"]
    assert config["extra"]["backend_options"]["adapter"] == str(res.adapter_dir)
    assert len(read_jsonl(out / "predictions.jsonl")) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["report"]["confusion"]) == 3 and metrics["n_done"] == 3
    with pytest.raises(ConfigError):  # an adapter cannot be applied to a served model
        cli_args = argv + ["--base-url", "http://127.0.0.1:9"]
        cli.build_parser().parse_args(cli_args).func(cli.build_parser().parse_args(cli_args))


def test_resume_continues_the_step_count(trained, ft_data, tiny_model, tmp_path) -> None:
    full, _ = trained
    out = tmp_path / "resumed"
    first, _ = run(ft_data, tiny_model, out, 4, 4)
    assert (first.start_step, first.steps) == (0, 4)
    with pytest.raises(ConfigError, match="resume"):
        run(ft_data, tiny_model, out, 8, 4)
    with pytest.raises(ConfigError, match="train"):  # another learning rate is another run
        run(ft_data, tiny_model, out, 8, 4, lr=1e-3, resume=True)
    second, logs = run(ft_data, tiny_model, out, 8, 4, resume=True)
    assert (second.start_step, second.steps) == (4, 8)
    assert [s for s, _ in second.losses] == [5, 6, 7, 8]
    assert any("resuming from" in line and "step-0000004" in line for line in logs)
    # optimizer, sampler position and RNG state restored: the same losses as without the break
    assert [v for _, v in second.losses] == pytest.approx([v for _, v in full.losses[4:8]], abs=1e-5)
    assert [r["step"] for r in read_jsonl(out / "train_log.jsonl")] == list(range(1, 9))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004", "step-0000008"]
    sessions = json.loads((out / CONFIG_FILE).read_text())["sessions"]
    assert [s["start_step"] for s in sessions] == [0, 4]


def test_msce_finetune_cli_with_cached_base_descriptions(ft_data, tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "msce"
    cache_path = tmp_path / "cache.sqlite"
    argv = ["finetune", "--dataset", "generic", "--root", str(ft_data["csv"]), "--split", "balanced",
            "--n-per-class", "1", "--balanced", "2", "--model", str(tiny_model), "--strategy", "msce",
            "--strategy-opt", 'params={"max_new_tokens": 4}', "--strategy-opt", 'stage1_params={"max_new_tokens": 6}',
            "--lora-r", "4", "--max-steps", "2", "--batch-size", "2", "--grad-accum", "2", "--lr", "1e-3",
            "--save-every", "1", "--keep-checkpoints", "1", "--device", "cpu",
            "--min-pixels", str(PIXELS["min_pixels"]), "--max-pixels", str(PIXELS["max_pixels"]),
            "--cache", str(cache_path), "--no-progress", "--n-boot", "20", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "predicted" in printed  # metrics and confusion matrix
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["n_done"] == 3
    eval_cfg = json.loads((out / "eval" / "config.json").read_text())
    assert eval_cfg["strategy"]["name"] == "msce" and "+adapter:" in eval_cfg["backend"]["model_id"]

    records = read_jsonl(out / "descriptions.jsonl")
    assert len(records) == 6  # 2 clips x 3 classes: only the clips the sampler uses
    assert all(r["stage2_prompt"].count("Motion:") == len(r["keyframe_indices"]) - 1 for r in records)
    # the descriptions are the base model's: plain MSCE with the base model answers
    # stage 1 from the cache the fine-tuning run filled
    from msce.models.cache import ResponseCache

    ds = ft_data["dataset"]
    base = get_backend("transformers", model=str(tiny_model), dtype="float32", device="cpu", **PIXELS)
    strategy = MSCE(1.0, 4, params=ANS, stage1_params=GenerationParams(max_new_tokens=6))
    rec = next(r for r in records if any(r["motions"]))
    with ResponseCache(cache_path) as cache:
        result = strategy.run(ds.get(rec["id"]).path, ds.label_set, base, cache)
    assert all(result.extra["stage1_from_cache"]) and result.extra["stage1_model_calls"] == 0
    assert [m or "" for m in rec["motions"]] == result.stage1
    assert result.prompts[-1] == rec["stage2_prompt"]


def test_lora_targets_language_model_by_default(tiny_model) -> None:
    from transformers import AutoModelForImageTextToText

    from msce.train.finetune import lora_target_modules

    model = AutoModelForImageTextToText.from_pretrained(tiny_model, local_files_only=True)
    lm = lora_target_modules(model, LoraOptions())
    assert len(lm) == 2 * 7 and all(".language_model.layers." in n for n in lm)
    both = lora_target_modules(model, LoraOptions(train_vision=True))
    vision = sorted(set(both) - set(lm))
    assert len(vision) == 2 * 5 and all(n.startswith("model.visual.blocks.") for n in vision)  # merger stays frozen
    assert lora_target_modules(model, LoraOptions(target_modules=("all-linear",))) == lm  # lm_head excluded
    assert lora_target_modules(model, LoraOptions(target_modules=("q_proj", "v_proj"))) == [
        n for n in lm if n.endswith(("q_proj", "v_proj"))]
    with pytest.raises(ConfigError):
        lora_target_modules(model, LoraOptions(target_modules=("qkv",)))  # a vision-only name


def test_bf16_autocast_keeps_lora_weights_fp32(ft_data, tiny_model, tmp_path) -> None:
    res = finetune(ft_data["dataset"], ft_data["split"], sparse(), str(tiny_model), tmp_path / "bf16",
                   lora=LoraOptions(r=8), train=TrainOptions(max_steps=2, batch_size=2, grad_accum=2, precision="bf16",
                                                             save_every=0),
                   sampling=SamplingOptions(n_per_class=3), backend_options=PIXELS, device="cpu", progress=False,
                   keep_model=True, log=lambda _: None)
    assert len(res.losses) == 2 and all(math.isfinite(v) for _, v in res.losses)
    assert res.config["precision"] == "bf16"
    assert {p.dtype for p in res.model.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in res.model.parameters() if not p.requires_grad} == {torch.bfloat16}
    with pytest.raises(ConfigError, match="fp16"):
        finetune(ft_data["dataset"], ft_data["split"], sparse(), str(tiny_model), tmp_path / "fp16",
                 train=TrainOptions(max_steps=1, precision="fp16"), device="cpu", progress=False)


def test_undecodable_training_clip_is_skipped_or_raised(ft_data, tiny_model, tmp_path) -> None:
    from msce.eval.datasets import load_generic
    from msce.errors import DecodeError
    from msce.eval.splits import Split

    src = ft_data["dataset"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video\x00" * 64)
    rows = ["path,label"] + [f"{s.path},{s.label}" for s in src.samples] + [f"{broken},happy"]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    ds = load_generic(tmp_path / "data.csv")
    bad_id = next(s.id for s in ds.samples if s.path == broken)
    test = tuple(ft_data["split"].test)
    test = tuple(next(s.id for s in ds.samples if s.path == src.get(t).path) for t in test)
    split = Split(kind="file", dataset="generic", train=tuple(s.id for s in ds.samples if s.id not in test),
                  test=test)
    # one epoch (3 steps x 4 clips = 4 per class) surely draws the broken clip
    kw = dict(lora=LoraOptions(r=4), sampling=SamplingOptions(n_per_class=4, mode="oversample"),
              train=TrainOptions(max_steps=3, batch_size=4, grad_accum=1, save_every=0),
              backend_options=PIXELS, device="cpu", progress=False, log=lambda _: None)
    res = finetune(ds, split, sparse(), str(tiny_model), tmp_path / "skip", on_error="skip", **kw)
    errors = read_jsonl(tmp_path / "skip" / "errors.jsonl")
    assert [e["id"] for e in errors] == [bad_id] and errors[0]["error"] == "DecodeError"
    assert res.config["skipped_clips"] == [bad_id] and len(res.losses) == 3
    assert sum(r["examples"] for r in read_jsonl(tmp_path / "skip" / "train_log.jsonl")) == 11
    with pytest.raises(DecodeError):
        finetune(ds, split, sparse(), str(tiny_model), tmp_path / "raise", **kw)
