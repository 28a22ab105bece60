"""Finished run directories read back (:func:`load_run`): config, prediction records,
metrics, and what reports ask of a run (dataset, model, strategy, sampling rate, whether
its frames were shuffled). The files are described in :mod:`msce.eval.runlog`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from msce.errors import DatasetError
from msce.eval.metrics import ClassificationReport, Predictions
from msce.eval.runlog import CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE, read_predictions

__all__ = ["Run", "load_run"]


@dataclass
class Run:
    """A run directory read back: config, prediction records and their metrics."""

    path: Path
    name: str
    config: dict
    records: list[dict]
    labels: tuple[str, ...]
    metrics: dict | None = None

    @property
    def predictions(self) -> Predictions:
        return Predictions.from_records(self.records, self.labels, name=self.name)

    @property
    def report(self) -> ClassificationReport:
        return self.predictions.report()

    @property
    def dataset(self) -> str | None:
        return (self.config.get("dataset") or {}).get("name")

    @property
    def strategy(self) -> dict:
        return self.config.get("strategy") or {}

    @property
    def strategy_name(self) -> str:
        return str(self.strategy.get("name", "?"))

    @property
    def model_id(self) -> str | None:
        return (self.config.get("backend") or {}).get("model_id")

    @property
    def fps(self) -> float | None:
        """The sampling rate of the strategy's frames, when its config names one."""
        return _find_fps(self.strategy)

    @property
    def is_shuffled(self) -> bool:
        s = self.strategy
        return self.strategy_name in ("shuffled", "shuffle", "fs") or bool(s.get("shuffled") or s.get("shuffle"))


def _find_fps(cfg: Mapping, depth: int = 0) -> float | None:
    for key in ("fps", "keyframe_fps"):
        v = cfg.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    if depth < 3:
        for v in cfg.values():
            if isinstance(v, Mapping):
                f = _find_fps(v, depth + 1)
                if f is not None:
                    return f
    return None


def load_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read a run directory (config.json + predictions.jsonl; metrics.json if present)."""
    p = Path(path)
    cfg_path = p / CONFIG_FILE
    if not cfg_path.is_file():
        raise DatasetError(f"not an msce run directory (no {CONFIG_FILE}): {p}")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {cfg_path}: {exc}") from None
    labels = tuple((config.get("dataset") or {}).get("labels") or ())
    if not labels:
        raise DatasetError(f"{cfg_path} does not list the dataset's labels")
    records = read_predictions(p / PREDICTIONS_FILE)
    metrics = None
    mp = p / METRICS_FILE
    if mp.is_file():
        try:
            metrics = json.loads(mp.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            metrics = None
    return Run(path=p, name=name or p.resolve().name, config=config, records=records, labels=labels, metrics=metrics)
