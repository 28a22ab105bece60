"""What every strategy shares: :class:`StrategyResult`, the :class:`Strategy` protocol
(docs/strategy-contract.md), the default token budgets, and the helpers that turn options
into generation parameters and prompt sets and a rendered prompt into a backend request.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generator, Protocol, Sequence

from msce.errors import ConfigError
from msce.labels import LabelSet
from msce.models.backends.base import GenerationParams
from msce.models.prompts import PromptSet, Visual, as_text
from msce.models.visual_prompts import get_visual_prompt

if TYPE_CHECKING:  # pragma: no cover
    from msce.models.backends.base import Backend
    from msce.models.cache import CachedGeneration, ResponseCache


DEFAULT_ANSWER_TOKENS = 32
DEFAULT_STAGE1_TOKENS = 96


@dataclass
class StrategyResult:
    """Everything one strategy run produced for one video.

    ``model_calls`` counts backend invocations that reached the model (each is one
    batched generate over that stage's cache misses); ``cache_hits`` counts requests
    answered from the cache; ``model_requests`` counts requests the model answered.
    ``frame_indices`` / ``timestamps`` list every frame sent, in the order sent (for
    MSCE: the gap frames of stage 1, gap by gap, then the keyframes of stage 2).
    """

    raw_answer: str
    parsed: str | None
    frame_indices: list[int]
    timestamps: list[float]
    prompts: list[str]
    stage1: list[str]
    visual_tokens: int
    model_calls: int
    cache_hits: int
    latency_s: float
    strategy: str = ""
    parse_reason: str = ""
    model_requests: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Strategy(Protocol):
    name: str

    def config(self) -> dict:
        ...

    def run(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend",
            cache: "ResponseCache | None" = None) -> StrategyResult:
        ...


@dataclass(frozen=True)
class ModelStep:
    """What a stepped strategy needs answered before it can go on: ``requests`` decoded
    with ``params``, all in one generate call (docs/strategy-contract.md, "Steps").

    A strategy's optional ``steps(video, labels, backend, *, sample_id=None)`` is a
    generator that does its decoding and preprocessing, yields one ModelStep per model
    stage, receives that stage's :class:`msce.models.cache.CachedGeneration` (texts in
    request order, which came from the cache, how many model calls were made) and
    returns the :class:`StrategyResult`. A step may hold no requests (it is answered
    with an empty generation and no model call).
    """

    requests: list
    params: GenerationParams


#: The generator type of ``Strategy.steps``.
Steps = Generator[ModelStep, "CachedGeneration", Any]


def drive_steps(steps: Steps, backend: "Backend", cache: "ResponseCache | None") -> Any:
    """Run a ``steps`` generator to its result, answering each step with
    :func:`msce.models.cache.generate_cached` (what every stepped strategy's ``run`` does)."""
    from msce.models.cache import generate_cached

    answer = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as stop:
            return stop.value
        if not isinstance(step, ModelStep):
            steps.close()
            raise ConfigError(f"a strategy's steps() yielded {type(step).__name__}; expected a ModelStep")
        answer = generate_cached(backend, step.requests, step.params, cache)


def _materialize(rendered: Sequence[Any], visuals: Sequence[Any]) -> list:
    """A backend request from a rendered prompt: Visual(ref=i) -> visuals[i]."""
    return [visuals[p.ref] if isinstance(p, Visual) else p for p in rendered]


def _params(params: GenerationParams | dict | None, default_tokens: int) -> GenerationParams:
    if params is None:
        return GenerationParams(max_new_tokens=default_tokens)
    if isinstance(params, dict):
        return GenerationParams(**params)
    if not isinstance(params, GenerationParams):
        raise ConfigError(f"params must be GenerationParams or a dict, got {type(params).__name__}")
    return params


def _prompts(prompts: PromptSet | str | None) -> PromptSet:
    if prompts is None:
        return PromptSet()
    if isinstance(prompts, str):
        return PromptSet(version=prompts)
    return prompts


def _tokens(batch: Any) -> int:
    return int(getattr(batch, "num_tokens", 0) or 0)


def _visual_prompt(spec: Any) -> Any:
    """None, or the msce.models.visual_prompts transform for a transform / name / config dict."""
    return None if spec is None else get_visual_prompt(spec)


def _visual_record(batch: Any) -> dict:
    """What StrategyResult.extra records about a visual prompt: its config and the faces used."""
    rec = (getattr(batch, "stats", None) or {}).get("visual_prompt") or {}
    return {"visual_prompt": rec.get("config"), "visual_prompt_faces": rec.get("faces")}


def _checked_keyframes(keyframe_fps: float, gap_frames: int) -> tuple[float, int]:
    """(keyframe_fps as float, gap_frames) after the checks of MSCE's keyframe options."""
    if not float(keyframe_fps) > 0:
        raise ConfigError(f"keyframe_fps must be > 0, got {keyframe_fps!r}")
    if isinstance(gap_frames, bool) or not isinstance(gap_frames, int) or gap_frames < 1:
        raise ConfigError(f"gap_frames must be a positive int, got {gap_frames!r}")
    return float(keyframe_fps), gap_frames


def _one_call_result(strategy: str, raw: str, parse: Any, frame_indices: list[int], timestamps: list[float],
                     rendered: Any, visual_tokens: int, gen: Any, start: float, extra: dict) -> StrategyResult:
    """The StrategyResult of a strategy answered by one model call (no stage 1): ``parse`` is
    the answer's parse, ``gen`` the call's generation, ``start`` its perf_counter start."""
    return StrategyResult(
        raw_answer=raw,
        parsed=parse.label,
        frame_indices=frame_indices,
        timestamps=timestamps,
        prompts=[as_text(rendered)],
        stage1=[],
        visual_tokens=visual_tokens,
        model_calls=gen.model_calls,
        cache_hits=gen.cache_hits,
        latency_s=time.perf_counter() - start,
        strategy=strategy,
        parse_reason=parse.reason,
        model_requests=gen.model_requests,
        extra=extra,
    )
