"""The other model families end to end on CPU: tiny random-weight checkpoints from
``msce.testing.make_tiny_family`` (LLaVA-NeXT-Video, Video-LLaVA, LLaVA-OneVision, InternVL,
GLM-4.1V, Qwen2.5-Omni thinker, SmolVLM2), Sparse, MSCE and the frame-shuffle control through the
transformers backend in processor mode. The reference for the video tensors is the family's
own HF processor: what it made from msce's uint8 frames must equal
``msce.preprocess(frames, msce.target_for(processor))`` exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import msce
from msce.labels import DFEW
from msce.models.backends.base import GenerationParams, is_frames, is_image
from msce.models.strategies import MSCE, Shuffled, Sparse
from msce.testing import TINY_FAMILIES, make_tiny_family

from _deps import require_module

transformers = require_module("transformers", "pip install 'msce[hf]'")

ANS = GenerationParams(max_new_tokens=3)
S1 = GenerationParams(max_new_tokens=4)

def _sha256(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


class _Lazy(dict):
    """Made on first use, so a run selecting one family (-k) builds only that one."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, key):
        self[key] = value = self._make(key)
        return value


def _needs(family: str) -> None:
    if family == "smolvlm2":  # SmolVLMProcessor imports num2words
        require_module("num2words", "pip install 'msce[hf]'")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")

    def make(f: str) -> Path:
        _needs(f)
        return make_tiny_family(root / f, f, seed=0)

    return _Lazy(make)


@pytest.fixture(scope="module")
def family_backends(family_dirs):
    from msce.models.backends import get_backend

    return _Lazy(lambda f: get_backend("transformers", model=str(family_dirs[f]), dtype="float32", device="cpu",
                                       mode="processor"))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_build_is_byte_identical_and_loads_offline(tmp_path, family_dirs, family):
    _needs(family)
    again = make_tiny_family(tmp_path / "again", family, seed=0)
    assert _sha256(again) == _sha256(family_dirs[family])
    other = make_tiny_family(tmp_path / "other", family, seed=1)
    assert _sha256(other)["model.safetensors"] != _sha256(again)["model.safetensors"]
    assert {k: v for k, v in _sha256(other).items() if k not in ("model.safetensors", "msce_tiny.json")} == \
        {k: v for k, v in _sha256(again).items() if k not in ("model.safetensors", "msce_tiny.json")}
    assert sum(p.stat().st_size for p in again.iterdir()) < 1 << 20

    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(again, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(again, local_files_only=True)
    family_cls = getattr(transformers, type(model).__name__)
    assert type(family_cls.from_pretrained(again, local_files_only=True)) is type(model)
    assert processor.video_processor is not None and processor.image_processor is not None
    tok = AutoTokenizer.from_pretrained(again, local_files_only=True)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"},
                                                                        {"type": "text", "text": "Emotion?"}]}],
                                         tokenize=False, add_generation_prompt=True)
    assert processor.video_token in text and tok.convert_tokens_to_ids(processor.video_token) is not None
    assert isinstance(msce.target_for(processor), msce.targets.Target)


def _video_keys(expected: dict, inputs: dict, family: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(expected, sent) pairs: the processor's video tensors of one model batch vs msce's."""
    if family == "internvl":  # InternVLProcessor flattens video frames into pixel_values
        return [(expected["pixel_values_videos"].flatten(0, 1), inputs["pixel_values"])]
    return [(expected[k], inputs[k]) for k in expected]


def _check_sent_videos(spy_calls: list[dict], processor, family: str) -> int:
    """Every model batch that sent only videos: its tensors == msce's, concatenated in order.
    Returns the number of videos checked."""
    target = msce.target_for(processor)
    checked = 0
    for call in spy_calls:
        for requests, inputs in call["batches"]:
            parts = [p for r in requests for p in r if is_frames(p)]
            if not parts or any(is_image(p) for p in parts):
                continue
            per_video = [msce.preprocess(p.data, target).to_hf() for p in parts]
            expected = {k: torch.cat([e[k] for e in per_video], 0) for k in per_video[0]}
            for want, got in _video_keys(expected, inputs, family):
                assert got.shape == want.shape and got.dtype == want.dtype
                assert (got - want).abs().max().item() == 0.0
            checked += len(parts)
    return checked


class Spy:
    """Records each generate call of a backend with the requests and inputs of every model batch."""

    def __init__(self, backend, monkeypatch):
        self.calls: list[dict] = []
        generate, build = backend.generate, backend.build_inputs

        def spy_generate(requests, params):
            self.calls.append({"batches": []})
            return generate(requests, params)

        def spy_build(requests):
            inputs = build(requests)
            self.calls[-1]["batches"].append((list(requests), dict(inputs)))
            return inputs

        monkeypatch.setattr(backend, "generate", spy_generate)
        monkeypatch.setattr(backend, "build_inputs", spy_build)


STRATEGIES = {
    "sparse": lambda: Sparse(fps=1.0, params=ANS),
    "msce": lambda: MSCE(1, 4, params=ANS, stage1_params=S1),
    "shuffled": lambda: Shuffled("sparse", seed=3, params=ANS),
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_strategy_through_family(family_backends, clips, monkeypatch, family, strategy):
    backend = family_backends[family]
    assert backend.mode == "processor" and backend.target().to_dict()["dtype"] == "uint8"
    spy = Spy(backend, monkeypatch)
    result = STRATEGIES[strategy]().run(str(clips["main"]), DFEW, backend)

    assert result.strategy == STRATEGIES[strategy]().name and result.parse_reason
    assert result.parsed is None or result.parsed in DFEW.names
    assert isinstance(result.raw_answer, str)
    assert result.model_calls == len(spy.calls) >= (2 if strategy == "msce" else 1)
    # Qwen2_5OmniProcessor calls its video processor with its own size (class videos_kwargs,
    # not the directory's 112-pixel one): target_for(processor) reads it, so Omni is exact too
    assert _check_sent_videos(spy.calls, backend.processor, family) >= 1
