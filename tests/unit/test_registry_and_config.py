"""Backend registry, generation parameters and strategy configs (no model, no video)."""

from __future__ import annotations

import json
import sys

import pytest

from msce.models.backends import GenerationParams, available_backends, get_backend, register_backend
from msce.errors import ConfigError
from msce.models.strategies import MSCE, Dense, Shuffled, Sparse, StrategyResult, available_strategies, get_strategy


def test_registry_is_lazy() -> None:
    import subprocess

    code = ("import sys, msce.models.backends, msce.models.strategies, msce.models.cache, msce.models.answers, msce.models.prompts; "
            "print(sorted(m for m in ('transformers', 'msce.models.backends.hf', 'msce.models.backends.openai_api') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert available_backends() == ["classifier", "openai", "transformers"]


class EchoBackend:
    def __init__(self, model_id: str = "echo"):
        self.model_id = model_id

    def generate(self, requests, params):
        return ["x"] * len(requests)


def test_register_and_dotted_path() -> None:
    register_backend("echo-test", f"{__name__}:EchoBackend")
    assert get_backend("echo-test", model_id="e").model_id == "e"
    assert isinstance(get_backend(f"{__name__}:EchoBackend"), EchoBackend)
    with pytest.raises(ConfigError):
        get_backend(f"{__name__}:Missing")
    with pytest.raises(ConfigError):
        register_backend("bad", "no_colon")
    with pytest.raises(ConfigError):
        get_backend("unknown")


def test_generation_params() -> None:
    p = GenerationParams()
    assert p.greedy and p.to_dict() == {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    assert not GenerationParams(temperature=0.5).greedy
    for bad in ({"max_new_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}, {"max_new_tokens": 2.5}):
        with pytest.raises(ConfigError):
            GenerationParams(**bad)


def test_strategy_configs_are_json() -> None:
    for s in (Sparse(), Dense(fps=10), Dense(fps=None), Shuffled(Sparse(fps=2), seed=4), MSCE(2.0, 3)):
        cfg = s.config()
        json.loads(json.dumps(cfg))
        assert cfg["name"] == s.name
        assert cfg["prompts"]["version"] == "v1"
    assert Dense(fps=None).config()["plan"] == {"kind": "dense"}
    sh = Shuffled(Sparse(fps=2), seed=4).config()
    assert sh["seed"] == 4 and sh["plan"]["kind"] == "shuffled" and sh["plan"]["inner"]["fps"] == 2.0
    m = MSCE(2.0, 3).config()
    assert m["plan"] == {"kind": "keyframes_with_gaps", "keyframe_fps": 2.0, "gap_frames": 3}
    assert m["stage1_params"]["max_new_tokens"] == 96 and m["params"]["max_new_tokens"] == 32


def test_get_strategy() -> None:
    assert available_strategies() == ["dense", "msce", "msce-notext", "shuffled", "sparse", "sparse-images"]
    assert get_strategy("sparse", fps=2).fps == 2.0
    assert get_strategy("MSCE", gap_frames=2).gap_frames == 2
    s = get_strategy("shuffled", inner="dense", fps=10, seed=7, params={"max_new_tokens": 3})
    assert isinstance(s.inner, Dense) and s.inner.fps == 10.0 and s.seed == 7
    assert s.params.max_new_tokens == 3 and s.inner.params.max_new_tokens == 3
    with pytest.raises(ConfigError):
        get_strategy("bogus")
    with pytest.raises(ConfigError):
        Shuffled(MSCE())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Shuffled("msce")
    with pytest.raises(ConfigError):
        Shuffled(Sparse(), seed=-1)
    with pytest.raises(ConfigError):
        MSCE(gap_frames=0)
    with pytest.raises(ConfigError):
        Sparse(fps=0)


def test_result_to_dict() -> None:
    r = StrategyResult("Happy", "happy", [0, 10], [0.0, 1.0], ["<video>Q"], [], 8, 1, 0, 0.5)
    d = r.to_dict()
    assert d["raw_answer"] == "Happy" and d["parsed"] == "happy" and d["extra"] == {}
    json.dumps(d)
