"""Evaluation of a trained adapter: ``msce eval`` of the test split with the base model
plus the adapter, and the confusion matrix as text."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from msce.train._common import _split_info


def evaluate_adapter(dataset: Any, split: Any, strategy: Any, model: str, adapter: str | os.PathLike,
                     out_dir: str | os.PathLike, *, backend_options: Mapping | None = None, cache: Any = None,
                     limit: int | None = None, seed: int = 0, on_error: str = "raise", progress: bool = True,
                     n_boot: int = 1000, command: Sequence[str] | None = None):
    """``msce eval`` of the test split with the base model plus ``adapter``
    (:func:`msce.eval.runner.run_eval`, same metrics, confusion matrix and run directory)."""
    from msce.models.backends import get_backend
    from msce.eval.runner import SPLIT_FILE, run_eval

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split.save(out / SPLIT_FILE)
    opts = {k: v for k, v in (backend_options or {}).items() if k not in ("model", "adapter")}
    backend = get_backend("transformers", model=str(model), adapter=str(adapter), **opts)
    return run_eval(dataset, split.test_samples(dataset), strategy, backend, out, cache, split=_split_info(split),
                    seed=seed, extra_config={"backend_name": "transformers",
                                             "backend_options": {**opts, "model": str(model), "adapter": str(adapter)},
                                             "finetune_run": str(Path(adapter).resolve().parent)},
                    limit=limit, on_error=on_error, progress=progress, n_boot=n_boot,
                    command=command if command is not None else ["msce"] + sys.argv[1:])


def confusion_text(report: Any) -> str:
    """The confusion matrix (rows: true class; last column: invalid answers) as text."""
    labels = list(report.labels)
    cm = report.confusion
    width = max(len("predicted"), *(len(x) for x in labels))
    head = " " * (width + 2) + " ".join(f"{x[:6]:>6}" for x in labels) + f" {'inv':>6}"
    rows = [head]
    for i, name in enumerate(labels):
        rows.append(f"{name:<{width}}  " + " ".join(f"{int(v):>6}" for v in cm[i]))
    pred = cm[:, :-1].sum(axis=0)
    rows.append(f"{'predicted':<{width}}  " + " ".join(f"{int(v):>6}" for v in pred) + f" {int(cm[:, -1].sum()):>6}")
    return "\n".join(rows)
