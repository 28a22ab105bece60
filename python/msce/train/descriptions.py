"""MSCE stage 1 for training: the base model's gap descriptions of the training clips."""

from __future__ import annotations

import os
from typing import Any, Sequence

from msce.errors import ConfigError
from msce.train._common import _Bar
from msce.train.options import _MEDIA_ERRORS, Log, _stderr


def describe_videos(samples: Sequence[Any], strategy: Any, labels: Any, backend: Any, path: str | os.PathLike,
                    cache: Any = None, *, on_error: str = "raise", progress: bool = False,
                    log: Log = _stderr) -> tuple[dict[str, dict], list[dict]]:
    """Stage-1 gap descriptions of ``samples`` by ``backend`` (the base model), through
    the MSCE strategy itself, appended durably to ``path`` (JSON lines) and reused from it.

    The strategy runs with its own stage-1 settings (so cached descriptions are shared
    with ``msce eval`` runs of the base model) and a one-token stage 2. Returns
    ``({id: record}, failures)`` (with ``on_error="skip"``, one dict per clip whose media
    failed: ``id``, ``path``, ``error``, ``message``); a record holds ``motions`` (None for a gap without
    frames), ``keyframe_indices``, ``gap_indices`` and ``stage2_prompt``.
    """
    from msce.models.backends.base import GenerationParams
    from msce.eval.runner import PredictionLog
    from msce.models.strategies import MSCE

    if not isinstance(strategy, MSCE):
        raise ConfigError("describe_videos needs an MSCE strategy")
    describer = MSCE(strategy.keyframe_fps, strategy.gap_frames,
                     params=GenerationParams(max_new_tokens=1, seed=strategy.params.seed),
                     stage1_params=strategy.stage1_params, prompts=strategy.prompts)
    out: dict[str, dict] = {}
    failed: list[dict] = []
    with PredictionLog(path) as book:
        for rec in book.records:
            out[str(rec["id"])] = rec
        todo = [s for s in samples if str(s.id) not in out]
        if todo:
            log(f"describing the gaps of {len(todo)} training clip(s) with the base model (MSCE stage 1)")
        bar = _Bar(len(todo), progress, "stage 1")
        try:
            for s in todo:
                try:
                    res = describer.run(s.path, labels, backend, cache)
                except _MEDIA_ERRORS as exc:
                    if on_error != "skip":
                        raise
                    failed.append({"id": str(s.id), "path": os.fspath(s.path), "error": type(exc).__name__,
                                   "message": str(exc), "stage": "describe"})
                    log(f"skipping {s.id}: {type(exc).__name__}: {exc}")
                    bar.advance()
                    continue
                gaps = res.extra["gap_indices"]
                rec = {
                    "id": str(s.id),
                    "label": s.label,
                    "motions": [None if not g else m for m, g in zip(res.stage1, gaps)],
                    "keyframe_indices": res.extra["keyframe_indices"],
                    "gap_indices": gaps,
                    "stage1_prompts": res.prompts[:-1],
                    "stage2_prompt": res.prompts[-1],
                    "model_calls": res.extra["stage1_model_calls"],
                    "cache_hits": res.cache_hits,
                }
                book.append(rec)
                out[rec["id"]] = rec
                bar.advance()
        finally:
            bar.close()
    return out, failed
