"""Multi-stage context enrichment (:class:`MSCE`, paper Sec. 4.2) and the two controls that
hold its keyframes fixed: :class:`SparseImages` and :class:`MSCENoText` (msce's own, not
the paper's).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, Sequence

from msce import plan
from msce.errors import ConfigError, PlanError
from msce.io import load_segments
from msce.labels import LabelSet
from msce.models.answers import parse_answer_detail
from msce.models.backends.base import GenerationParams
from msce.models.prompts import PromptSet, as_text
from msce.models.strategies.base import (DEFAULT_ANSWER_TOKENS, DEFAULT_STAGE1_TOKENS, ModelStep, Steps,
                                         StrategyResult, _checked_keyframes, _materialize, _one_call_result,
                                         _params, _prompts, _tokens, _visual_prompt, _visual_record, drive_steps)
from msce.models.visual_prompts import load_prompted, sent_indices, sent_timestamps
from msce.motion import motion_aware_gaps
from msce.plan import Plan, PlanSpec

if TYPE_CHECKING:  # pragma: no cover
    from msce.models.backends.base import Backend
    from msce.models.cache import ResponseCache


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
        self.keyframe_fps, self.gap_frames = _checked_keyframes(keyframe_fps, gap_frames)
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

        return drive_steps(self.steps(video, labels, backend), backend, cache)

    def steps(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend", *,
              sample_id: str | None = None) -> Steps:
        """:meth:`run` as steps: decode, stage 1 (one ModelStep, empty without gaps),
        stage 2 (one ModelStep), result. ``sample_id`` is not used."""

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
        gen1 = yield ModelStep(stage1_requests, self.stage1_params)
        answers = iter(gen1.texts)
        motions: list[str | None] = [None if g is None else next(answers) for g in gap_batches]

        # Stage 2: k_1, t_1, ..., k_{n-1}, t_{n-1}, k_n, question, label choices.
        rendered2 = self.prompts.stage2(motions, labels)
        gen2 = yield ModelStep([_materialize(rendered2, keyframes)], self.params)
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

    def decode_once(self, reader: Any, threads: int) -> bool:
        """The inner plan's one-pass hook (msce.motion.MotionAwareGaps.decode_once), if any."""
        hook = getattr(self.inner, "decode_once", None)
        return bool(hook(reader, threads)) if callable(hook) else False

    def resolve(self, meta: Any) -> Plan:
        full = self.inner.resolve(meta)
        kf = full.keyframes()
        with_frames = sorted({int(g) for r, g in zip(full.roles, full.groups) if r == "gap"})
        return dataclasses.replace(kf, spec={**kf.spec, "gaps_with_frames": with_frames})

    def to_dict(self) -> dict:
        return {"kind": "keyframes_of", "inner": self.inner.to_dict()}


class _KeyframeControl(ABC):
    """Shared logic of the MSCE controls: MSCE's keyframes in one stage-2-style call."""

    name = "keyframe-control"

    def __init__(self, keyframe_fps: float = 1.0, gap_frames: int = 4,
                 params: GenerationParams | dict | None = None, prompts: PromptSet | str | None = None,
                 visual_prompt: Any = None):
        self.keyframe_fps, self.gap_frames = _checked_keyframes(keyframe_fps, gap_frames)
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

    @abstractmethod
    def _render(self, gap_has_frames: list[bool], labels: LabelSet) -> list:
        """The prompt parts around the keyframes (one entry per gap says whether it has frames)."""

    def _extra(self) -> dict:
        return {}

    def run(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend",
            cache: "ResponseCache | None" = None) -> StrategyResult:

        return drive_steps(self.steps(video, labels, backend), backend, cache)

    def steps(self, video: str | os.PathLike, labels: LabelSet, backend: "Backend", *,
              sample_id: str | None = None) -> Steps:
        """:meth:`run` as steps: decode, one ModelStep, result."""

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
        gen = yield ModelStep([_materialize(rendered, keyframes)], self.params)
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
        return _one_call_result(self.name, raw, parse, kf_indices, kf_times, rendered, tokens, gen, start, extra)


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
