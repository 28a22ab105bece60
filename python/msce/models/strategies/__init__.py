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

Every built-in strategy also offers ``steps(...)``: its run as a generator that yields
one :class:`ModelStep` per model stage (decoding happens before the first), so a runner can
decode several videos ahead and answer the steps of several videos in one batch
(msce.eval.pipeline); ``run`` drives the same generator with the cache
(:func:`drive_steps`), so both paths send identical requests.

Modules: ``base`` (:class:`StrategyResult`, :class:`ModelStep`, the :class:`Strategy`
protocol, shared helpers), ``frames`` (Sparse, Dense, Shuffled) and ``msce`` (MSCE and its two controls);
this package holds the registry (:func:`get_strategy`, :func:`available_strategies`) and
re-exports every public name.
"""

from __future__ import annotations

from typing import Any

from msce.errors import ConfigError
from msce.models.strategies.base import (  # noqa: F401  (re-exports)
                                         DEFAULT_ANSWER_TOKENS, DEFAULT_STAGE1_TOKENS, ModelStep, Strategy,
                                         StrategyResult, drive_steps,
                                         _materialize)  # _materialize: msce.train.encoding builds requests with it
from msce.models.strategies.frames import Dense, Shuffled, Sparse
from msce.models.strategies.msce import MSCE, MSCENoText, SparseImages

__all__ = [
    "Strategy",
    "StrategyResult",
    "ModelStep",
    "drive_steps",
    "Sparse",
    "Dense",
    "Shuffled",
    "MSCE",
    "SparseImages",
    "MSCENoText",
    "get_strategy",
    "available_strategies",
]


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
