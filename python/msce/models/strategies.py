"""The paper's inference strategies (Sec. 3.4, 4.2): a strategy = frame plan + prompts +
how the answers combine.

* :class:`Sparse` (``fps=1``): the baseline; frames at ``fps`` as one video, then the
  question and the label choices.
* :class:`Dense` (``fps``): the same at a higher rate (the FPS sweep 1..25), or every
  frame when ``fps`` is None.
* :class:`Shuffled` (``inner``, ``seed``): the frame-shuffle (FS) probe: exactly the
  frames of ``inner`` in a random order seeded per video from ``seed`` and the video's
  identity (the sample id the runner passes, else the media's content digest), never the
  original order (``msce.plan.shuffled``); the permutation and its normalized Kendall
  distance are recorded in ``StrategyResult.extra``.
* :class:`MSCE` (``keyframe_fps=1``, ``gap_frames=4``): multi-stage context enrichment.
  Stage 1 sends each gap's ``m`` in-between frames with a request to describe facial
  movements and micro-expressions (every gap of the video in ONE batched generate
  call); stage 2 sends one prompt interleaving keyframe k_i and gap text t_i
  chronologically (k_1, t_1, ..., k_{n-1}, t_{n-1}, k_n), then the question and the
  label choices. At most 2 model invocations per video; a clip with one keyframe has
  no gaps, so stage 1 is skipped.

Two controls that are msce's own (not from the paper) separate what MSCE's stage 2 adds:

* :class:`SparseImages` (``"sparse-images"``): MSCE's keyframes (the same plan) sent as
  interleaved images with no motion text, one call (``PromptSet.keyframes``).
* :class:`MSCENoText` (``"msce-notext"``): MSCE's stage-2 prompt with every gap text
  replaced by one fixed neutral sentence (template ``stage2_neutral_motion``), no stage 1.

Every result records ``visual_tokens`` (LLM tokens of every frame sent, 0 when the
backend's target does not count them); MSCE and the controls also record
``extra["visual_tokens_stage1"]`` and ``extra["visual_tokens_stage2"]``.

Frames come from the core (``msce.load`` / ``msce.load_segments``) in the target the
backend asks for (``backend.target()``); the strategy, never the backend, chooses them,
and records indices, timestamps, every rendered prompt, the raw answers and the parse.
Every model call goes through the response cache when one is given, so a rerun makes
zero model calls.

Every strategy takes ``visual_prompt=``: a paper Appendix S1 variant
(``msce.models.visual_prompts``: "red_circle", "motion_heatmap", "focused_heatmap", "montage",
"flow_arrows", "point_tracks"; a name, a transform or its config dict). The frames are
then decoded as uint8 RGB, transformed (faces detected when the variant needs them) and
turned into the backend's tensors by ``msce.preprocess`` (``visual_prompts.load_prompted``);
the variant's config is in ``config()["visual_prompt"]`` and
``StrategyResult.extra["visual_prompt"]``. A montage sends each video (each MSCE gap) as
one grid image; ``frame_indices`` still lists every frame composed into it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from msce.models.answers import parse_answer_detail
from msce.models.backends.base import GenerationParams
from msce.models.cache import generate_cached
from msce.errors import ConfigError
from msce.labels import LabelSet
from msce.plan import Plan, PlanSpec
from msce.models.prompts import PromptSet, Visual, as_text
from msce.models.visual_prompts import get_visual_prompt, load_prompted, sent_indices, sent_timestamps
from msce import plan
from msce.errors import PlanError
from msce.io import load
from msce.io import load_segments
from msce.motion import motion_aware_gaps

if TYPE_CHECKING:  # pragma: no cover
    from msce.models.backends.base import Backend
    from msce.models.cache import ResponseCache

__all__ = [
    "Strategy",
    "StrategyResult",
    "Sparse",
    "Dense",
    "Shuffled",
    "MSCE",
    "SparseImages",
    "MSCENoText",
    "get_strategy",
    "available_strategies",
]

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


class _FramesStrategy:
    """Shared run logic of the single-call strategies (frames + question)."""

    name = "frames"

    def __init__(self, params: GenerationParams | dict | None = None, prompts: PromptSet | str | None = None,
                 visual_prompt: Any = None):
        self.params = _params(params, DEFAULT_ANSWER_TOKENS)
        self.prompts = _prompts(prompts)
        self.visual_prompt = _visual_prompt(visual_prompt)

    def spec(self):  # pragma: no cover - overridden
        raise NotImplementedError

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

        start = time.perf_counter()
        spec = self._run_spec(sample_id)
        if self.visual_prompt is None:
            batch = load(video, spec, backend.target())
        else:
            (batch,) = load_prompted(video, spec, backend.target(), self.visual_prompt)
        kind = "image" if len(batch.indices) == 1 else "video"
        rendered = self.prompts.classify(labels, kind)
        gen = generate_cached(backend, [_materialize(rendered, [batch])], self.params, cache)
        raw = gen.texts[0]
        parse = parse_answer_detail(raw, labels)
        extra = self._extra(batch)
        if self.visual_prompt is not None:
            extra.update(_visual_record(batch))
        return StrategyResult(
            raw_answer=raw,
            parsed=parse.label,
            frame_indices=sent_indices(batch),
            timestamps=sent_timestamps(batch),
            prompts=[as_text(rendered)],
            stage1=[],
            visual_tokens=_tokens(batch),
            model_calls=gen.model_calls,
            cache_hits=gen.cache_hits,
            latency_s=time.perf_counter() - start,
            strategy=self.name,
            parse_reason=parse.reason,
            model_requests=gen.model_requests,
            extra=extra,
        )

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
            inner = get_strategy(inner, params=params, prompts=prompts, **inner_options)
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


class MSCE:
    """Multi-stage context enrichment (paper Sec. 4.2).

    Args:
        keyframe_fps: keyframe rate (the sparse baseline's rate).
        gap_frames: m, frames sampled uniformly inside each gap.
        params: decoding of the final answer (stage 2).
        stage1_params: decoding of the gap descriptions (stage 1).
        prompts: prompt set / version.
        visual_prompt: a msce.models.visual_prompts variant applied to all planned frames in
            chronological order (keyframes and gaps alike; a montage makes each gap one image).
    """

    name = "msce"

    def __init__(self, keyframe_fps: float = 1.0, gap_frames: int = 4,
                 params: GenerationParams | dict | None = None,
                 stage1_params: GenerationParams | dict | None = None,
                 prompts: PromptSet | str | None = None, visual_prompt: Any = None,
                 gaps: str = "uniform", motion_crop: Any = "face"):
        if gaps not in ("uniform", "motion"):
            raise ConfigError(f"gaps must be 'uniform' or 'motion', got {gaps!r}")
        self.gaps = gaps
        self.motion_crop = motion_crop
        if not float(keyframe_fps) > 0:
            raise ConfigError(f"keyframe_fps must be > 0, got {keyframe_fps!r}")
        if isinstance(gap_frames, bool) or not isinstance(gap_frames, int) or gap_frames < 1:
            raise ConfigError(f"gap_frames must be a positive int, got {gap_frames!r}")
        self.keyframe_fps = float(keyframe_fps)
        self.gap_frames = gap_frames
        self.params = _params(params, DEFAULT_ANSWER_TOKENS)
        self.stage1_params = _params(stage1_params, DEFAULT_STAGE1_TOKENS)
        self.prompts = _prompts(prompts)
        self.visual_prompt = _visual_prompt(visual_prompt)

    def __repr__(self) -> str:
        vp = f", visual_prompt={self.visual_prompt!r}" if self.visual_prompt is not None else ""
        gp = ", gaps='motion'" if self.gaps == "motion" else ""
        return f"MSCE(keyframe_fps={self.keyframe_fps!r}, gap_frames={self.gap_frames!r}{gp}{vp})"

    def spec(self):
        """Uniform gap frames (the paper), or ``gaps="motion"``: the same number of gap
        frames placed at facial-motion peaks (msce.motion.motion_aware_gaps)."""

        if self.gaps == "motion":
            return motion_aware_gaps(self.keyframe_fps, self.gap_frames, crop=self.motion_crop)
        return plan.keyframes_with_gaps(self.keyframe_fps, self.gap_frames)

    def config(self) -> dict:
        cfg = {"name": self.name, "keyframe_fps": self.keyframe_fps, "gap_frames": self.gap_frames,
               "plan": self.spec().to_dict(), "params": self.params.to_dict(),
               "stage1_params": self.stage1_params.to_dict(), "prompts": self.prompts.config()}
        if self.visual_prompt is not None:
            cfg["visual_prompt"] = self.visual_prompt.config()
        if self.gaps == "motion":
            cfg["gaps"] = "motion"
        return cfg

    def run(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend",
            cache: "ResponseCache | None" = None) -> StrategyResult:

        start = time.perf_counter()
        if self.visual_prompt is None:
            segments = load_segments(video, self.spec(), backend.target())
        else:
            segments = load_prompted(video, self.spec(), backend.target(), self.visual_prompt, segments=True)
        keyframes, gaps = _split_segments(segments, video)
        n = len(keyframes)

        # Stage 1: one request per gap that has frames, all in one generate call.
        gap_batches = [gaps.get(j) for j in range(n - 1)]
        stage1_rendered = []
        stage1_requests = []
        for g in gap_batches:
            if g is None:
                continue
            rendered = self.prompts.stage1(len(sent_indices(g)), "image" if len(g.indices) == 1 else "video")
            stage1_rendered.append(rendered)
            stage1_requests.append(_materialize(rendered, [g]))
        gen1 = generate_cached(backend, stage1_requests, self.stage1_params, cache)
        answers = iter(gen1.texts)
        motions: list[str | None] = [None if g is None else next(answers) for g in gap_batches]

        # Stage 2: k_1, t_1, ..., k_{n-1}, t_{n-1}, k_n, question, label choices.
        rendered2 = self.prompts.stage2(motions, labels)
        gen2 = generate_cached(backend, [_materialize(rendered2, keyframes)], self.params, cache)
        raw = gen2.texts[0]
        parse = parse_answer_detail(raw, labels)

        sent_gaps = [g for g in gap_batches if g is not None]
        frame_indices = [i for g in sent_gaps for i in sent_indices(g)] + [int(k.indices[0]) for k in keyframes]
        timestamps = [t for g in sent_gaps for t in sent_timestamps(g)] + [float(k.timestamps[0]) for k in keyframes]
        extra_vp = _visual_record(segments[0]) if self.visual_prompt is not None else {}
        tokens1 = sum(_tokens(b) for b in sent_gaps)
        tokens2 = sum(_tokens(k) for k in keyframes)
        return StrategyResult(
            raw_answer=raw,
            parsed=parse.label,
            frame_indices=frame_indices,
            timestamps=timestamps,
            prompts=[as_text(r) for r in stage1_rendered] + [as_text(rendered2)],
            stage1=["" if m is None else m for m in motions],
            visual_tokens=tokens1 + tokens2,
            model_calls=gen1.model_calls + gen2.model_calls,
            cache_hits=gen1.cache_hits + gen2.cache_hits,
            latency_s=time.perf_counter() - start,
            strategy=self.name,
            parse_reason=parse.reason,
            model_requests=gen1.model_requests + gen2.model_requests,
            extra={
                "keyframe_indices": [int(k.indices[0]) for k in keyframes],
                "keyframe_timestamps": [float(k.timestamps[0]) for k in keyframes],
                "gap_indices": [[] if g is None else sent_indices(g) for g in gap_batches],
                "stage1_from_cache": list(gen1.from_cache),
                "stage1_model_calls": gen1.model_calls,
                "stage2_model_calls": gen2.model_calls,
                "visual_tokens_stage1": tokens1,
                "visual_tokens_stage2": tokens2,
                **extra_vp,
            },
        )


def _split_segments(segments: Sequence[Any], video: Any) -> tuple[list[Any], dict[int, Any]]:
    """MSCE segments -> (keyframe batches in order, {gap number: gap batch})."""

    keyframes: list[Any] = []
    gaps: dict[int, Any] = {}
    for seg in segments:
        role = seg.roles[0]
        if role == "keyframe":
            keyframes.append(seg)
        elif role == "gap":
            gaps[int(seg.plan.groups[0])] = seg
    if not keyframes:
        raise PlanError(f"{os.fspath(video)}: the MSCE plan has no keyframes")
    return keyframes, gaps


class _KeyframesOf(PlanSpec):
    """The keyframes of an MSCE plan (``keyframes_with_gaps``) without its gap frames; the
    resolved plan's spec lists the gaps that hold frames in ``gaps_with_frames``."""

    def __init__(self, inner: PlanSpec):
        self.inner = inner

    def resolve(self, meta: Any) -> Plan:
        full = self.inner.resolve(meta)
        kf = full.keyframes()
        with_frames = sorted({int(g) for r, g in zip(full.roles, full.groups) if r == "gap"})
        return dataclasses.replace(kf, spec={**kf.spec, "gaps_with_frames": with_frames})

    def to_dict(self) -> dict:
        return {"kind": "keyframes_of", "inner": self.inner.to_dict()}


class _KeyframeControl:
    """Shared logic of the MSCE controls: MSCE's keyframes in one stage-2-style call."""

    name = "keyframe-control"

    def __init__(self, keyframe_fps: float = 1.0, gap_frames: int = 4,
                 params: GenerationParams | dict | None = None, prompts: PromptSet | str | None = None,
                 visual_prompt: Any = None):
        if not float(keyframe_fps) > 0:
            raise ConfigError(f"keyframe_fps must be > 0, got {keyframe_fps!r}")
        if isinstance(gap_frames, bool) or not isinstance(gap_frames, int) or gap_frames < 1:
            raise ConfigError(f"gap_frames must be a positive int, got {gap_frames!r}")
        self.keyframe_fps = float(keyframe_fps)
        self.gap_frames = gap_frames
        self.params = _params(params, DEFAULT_ANSWER_TOKENS)
        self.prompts = _prompts(prompts)
        self.visual_prompt = _visual_prompt(visual_prompt)

    def __repr__(self) -> str:
        vp = f", visual_prompt={self.visual_prompt!r}" if self.visual_prompt is not None else ""
        return f"{type(self).__name__}(keyframe_fps={self.keyframe_fps!r}, gap_frames={self.gap_frames!r}{vp})"

    def spec(self) -> PlanSpec:
        """MSCE's plan (uniform gaps); only its keyframes are sent."""

        return plan.keyframes_with_gaps(self.keyframe_fps, self.gap_frames)

    def config(self) -> dict:
        cfg = {"name": self.name, "keyframe_fps": self.keyframe_fps, "gap_frames": self.gap_frames,
               "plan": self.spec().to_dict(), "sends": "keyframes", "params": self.params.to_dict(),
               "prompts": self.prompts.config()}
        if self.visual_prompt is not None:
            cfg["visual_prompt"] = self.visual_prompt.config()
        return cfg

    def _render(self, gap_has_frames: list[bool], labels: LabelSet) -> list:  # pragma: no cover - overridden
        raise NotImplementedError

    def _extra(self) -> dict:
        return {}

    def run(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend",
            cache: "ResponseCache | None" = None) -> StrategyResult:

        start = time.perf_counter()
        if self.visual_prompt is None:
            keyframes = load_segments(video, _KeyframesOf(self.spec()), backend.target())
            with_frames = set(keyframes[0].plan.spec["gaps_with_frames"])
        else:  # the transform sees every planned frame, as for MSCE; the gaps are not sent
            segments = load_prompted(video, self.spec(), backend.target(), self.visual_prompt, segments=True)
            keyframes, gaps = _split_segments(segments, video)
            with_frames = set(gaps)
        n = len(keyframes)
        gap_has_frames = [j in with_frames for j in range(n - 1)]
        rendered = self._render(gap_has_frames, labels)
        gen = generate_cached(backend, [_materialize(rendered, keyframes)], self.params, cache)
        raw = gen.texts[0]
        parse = parse_answer_detail(raw, labels)
        kf_indices = [int(k.indices[0]) for k in keyframes]
        kf_times = [float(k.timestamps[0]) for k in keyframes]
        tokens = sum(_tokens(k) for k in keyframes)
        extra = {"keyframe_indices": kf_indices, "keyframe_timestamps": kf_times,
                 "gaps_with_frames": [j for j, has in enumerate(gap_has_frames) if has],
                 "visual_tokens_stage1": 0, "visual_tokens_stage2": tokens, **self._extra()}
        if self.visual_prompt is not None:
            extra.update(_visual_record(keyframes[0]))
        return StrategyResult(
            raw_answer=raw,
            parsed=parse.label,
            frame_indices=kf_indices,
            timestamps=kf_times,
            prompts=[as_text(rendered)],
            stage1=[],
            visual_tokens=tokens,
            model_calls=gen.model_calls,
            cache_hits=gen.cache_hits,
            latency_s=time.perf_counter() - start,
            strategy=self.name,
            parse_reason=parse.reason,
            model_requests=gen.model_requests,
            extra=extra,
        )


class SparseImages(_KeyframeControl):
    """Control (msce's, not the paper's): MSCE's keyframes as interleaved images, no
    motion text, one call; isolates sending frames as images from the gap descriptions.

    Prompt: ``PromptSet.keyframes`` (FrameID i:<image> for every keyframe, then the
    question and the label choices)."""

    name = "sparse-images"

    def _render(self, gap_has_frames: list[bool], labels: LabelSet) -> list:
        return self.prompts.keyframes(len(gap_has_frames) + 1, labels)


class MSCENoText(_KeyframeControl):
    """Control (msce's, not the paper's): MSCE's stage-2 prompt with each gap description
    replaced by one fixed neutral sentence (``PromptSet.neutral_motion``; a gap without
    frames keeps MSCE's no-frames text), no stage-1 call."""

    name = "msce-notext"

    def _render(self, gap_has_frames: list[bool], labels: LabelSet) -> list:
        return self.prompts.stage2_neutral(gap_has_frames, labels)

    def _extra(self) -> dict:
        return {"motion_text": self.prompts.neutral_motion()}


_STRATEGIES = {"sparse": Sparse, "dense": Dense, "shuffled": Shuffled, "msce": MSCE,
               "sparse-images": SparseImages, "msce-notext": MSCENoText}


def available_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def get_strategy(name: str, **options: Any) -> "Strategy":
    """``"sparse"`` | ``"dense"`` | ``"shuffled"`` | ``"msce"`` | ``"sparse-images"`` |
    ``"msce-notext"`` with their options."""
    try:
        cls = _STRATEGIES[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"unknown strategy {name!r}; known: {available_strategies()}") from None
    if cls is not Shuffled:
        options = {k: v for k, v in options.items() if not (k in ("params", "prompts") and v is None)}
    return cls(**options)
