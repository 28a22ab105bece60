"""The single-call strategies: :class:`Sparse` (the paper's baseline), :class:`Dense` (the
FPS sweep) and :class:`Shuffled` (the frame-shuffle probe), all frames + question in one
request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import os
import time
from typing import TYPE_CHECKING, Any

from msce import plan
from msce.errors import ConfigError
from msce.io import load
from msce.labels import LabelSet
from msce.models.answers import parse_answer_detail
from msce.models.backends.base import GenerationParams
from msce.models.prompts import PromptSet
from msce.models.strategies.base import (DEFAULT_ANSWER_TOKENS, ModelStep, Steps, StrategyResult, _materialize,
                                         _one_call_result, _params, _prompts, _tokens, _visual_prompt,
                                         _visual_record, drive_steps)
from msce.models.visual_prompts import load_prompted, sent_indices, sent_timestamps

if TYPE_CHECKING:  # pragma: no cover
    from msce.models.backends.base import Backend
    from msce.models.cache import ResponseCache


class _FramesStrategy(ABC):
    """Shared run logic of the single-call strategies (frames + question)."""

    name = "frames"

    def __init__(self, params: GenerationParams | dict | None = None, prompts: PromptSet | str | None = None,
                 visual_prompt: Any = None):
        self.params = _params(params, DEFAULT_ANSWER_TOKENS)
        self.prompts = _prompts(prompts)
        self.visual_prompt = _visual_prompt(visual_prompt)

    @abstractmethod
    def spec(self):
        """The plan spec whose frames this strategy sends."""

    def _options(self) -> dict:
        return {}

    def config(self) -> dict:
        cfg = {"name": self.name, **self._options(), "plan": self.spec().to_dict(),
               "params": self.params.to_dict(), "prompts": self.prompts.config()}
        if self.visual_prompt is not None:
            cfg["visual_prompt"] = self.visual_prompt.config()
        return cfg

    def __repr__(self) -> str:
        opts = self._options()
        if self.visual_prompt is not None:
            opts["visual_prompt"] = self.visual_prompt
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in opts.items())})"

    def _run_spec(self, sample_id: str | None):
        """The plan for one video (Shuffled seeds it per video)."""
        return self.spec()

    def run(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend",
            cache: "ResponseCache | None" = None, *, sample_id: str | None = None) -> StrategyResult:
        """``sample_id``: the dataset's id of ``video`` when the caller knows it (the runner
        passes it); only :class:`Shuffled` uses it, to seed its order per video."""

        return drive_steps(self.steps(video, labels, backend, sample_id=sample_id), backend, cache)

    def steps(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend", *,
              sample_id: str | None = None) -> Steps:
        """:meth:`run` as steps (docs/strategy-contract.md): decode, one ModelStep, result."""

        start = time.perf_counter()
        spec = self._run_spec(sample_id)
        if self.visual_prompt is None:
            batch = load(video, spec, backend.target())
        else:
            (batch,) = load_prompted(video, spec, backend.target(), self.visual_prompt)
        kind = "image" if len(batch.indices) == 1 else "video"
        rendered = self.prompts.classify(labels, kind)
        gen = yield ModelStep([_materialize(rendered, [batch])], self.params)
        raw = gen.texts[0]
        parse = parse_answer_detail(raw, labels)
        extra = self._extra(batch)
        if self.visual_prompt is not None:
            extra.update(_visual_record(batch))
        return _one_call_result(self.name, raw, parse, sent_indices(batch), sent_timestamps(batch), rendered,
                                _tokens(batch), gen, start, extra)

    def _extra(self, batch: Any) -> dict:
        return {"plan": batch.plan.to_dict()}


class Sparse(_FramesStrategy):
    """The sparse-sampling baseline: frames at ``fps`` (default 1) as one video."""

    name = "sparse"

    def __init__(self, fps: float = 1.0, params: GenerationParams | dict | None = None,
                 prompts: PromptSet | str | None = None, visual_prompt: Any = None):
        super().__init__(params, prompts, visual_prompt)
        if not float(fps) > 0:
            raise ConfigError(f"fps must be > 0, got {fps!r}")
        self.fps = float(fps)

    def spec(self):
        return plan.uniform(self.fps)

    def _options(self) -> dict:
        return {"fps": self.fps}


class Dense(Sparse):
    """Denser sampling for the FPS sweep (1, 5, 10, 15, 20, 25); ``fps=None`` = every frame."""

    name = "dense"

    def __init__(self, fps: float | None = 5.0, params: GenerationParams | dict | None = None,
                 prompts: PromptSet | str | None = None, visual_prompt: Any = None):
        _FramesStrategy.__init__(self, params, prompts, visual_prompt)
        if fps is not None and not float(fps) > 0:
            raise ConfigError(f"fps must be > 0 or None, got {fps!r}")
        self.fps = None if fps is None else float(fps)

    def spec(self):
        return plan.dense() if self.fps is None else plan.uniform(self.fps)


class Shuffled(_FramesStrategy):
    """The frame-shuffle probe: ``inner``'s frames (Sparse or Dense) in a seeded order.

    The order is drawn per video (``msce.plan.shuffled``): the video seed is
    ``shuffle_seed(seed, identity)`` where identity is ``"id:<sample id>"`` when ``run``
    gets a ``sample_id`` and ``identity="sample"`` (the default), else the content digest
    ``"sha256:<hex>"`` of the media (``identity="content"``, or no sample id). With two or
    more frames the original order is never sent. ``extra`` records ``permutation``
    (position k shows chronological frame ``permutation[k]``), ``kendall_distance``
    (discordant pairs / (n choose 2)), ``order_changed``, ``shuffle_identity`` and
    ``video_seed``.
    """

    name = "shuffled"

    def __init__(self, inner: "Sparse | Dense | str" = "sparse", seed: int = 0,
                 params: GenerationParams | dict | None = None, prompts: PromptSet | str | None = None,
                 visual_prompt: Any = None, identity: str = "sample", **inner_options: Any):
        if isinstance(inner, str):
            if inner not in ("sparse", "dense"):
                raise ConfigError(f"Shuffled needs a sparse or dense inner strategy, got {inner!r}")
            inner = (Sparse if inner == "sparse" else Dense)(params=params, prompts=prompts, **inner_options)
        elif inner_options:
            raise ConfigError("inner options are only accepted with an inner strategy given by name")
        if not isinstance(inner, Sparse):
            raise ConfigError(f"Shuffled wraps Sparse or Dense, got {type(inner).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or seed >= 2**64:
            raise ConfigError(f"seed must be an int in [0, 2**64), got {seed!r}")
        if identity not in ("sample", "content"):
            raise ConfigError(f"identity must be 'sample' (sample id, else content digest) or 'content', "
                              f"got {identity!r}")
        super().__init__(params if params is not None else inner.params,
                         prompts if prompts is not None else inner.prompts,
                         visual_prompt if visual_prompt is not None else inner.visual_prompt)
        self.inner = inner
        self.seed = seed
        self.identity = identity

    def spec(self):
        """The plan without a sample id: seeded by the media's content digest."""

        return plan.shuffled(self.inner.spec(), self.seed)

    def _run_spec(self, sample_id: str | None):
        if self.identity == "sample" and sample_id is not None and str(sample_id):
            return plan.shuffled(self.inner.spec(), self.seed, identity=str(sample_id))
        return self.spec()

    def _options(self) -> dict:
        return {"inner": self.inner.name, **self.inner._options(), "seed": self.seed, "identity": self.identity}

    def _extra(self, batch: Any) -> dict:
        spec = batch.plan.spec
        perm = [int(k) for k in spec["permutation"]]
        return {"plan": batch.plan.to_dict(), "chronological_indices": sorted(sent_indices(batch)),
                "permutation": perm, "kendall_distance": float(spec["kendall_distance"]),
                "order_changed": perm != sorted(perm), "shuffle_identity": spec["identity"],
                "video_seed": int(spec["video_seed"])}
