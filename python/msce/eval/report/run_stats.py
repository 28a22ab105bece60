"""Facts about one run that its records or config hold: how much a shuffled run changed
frame order, mean visual tokens per video, the training class counts of its split and how
the answer parser settled its answers."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from msce.eval.runs import Run

__all__ = ["shuffle_order_stats", "visual_tokens_mean", "run_training_counts", "parse_reason_counts",
           "duplicate_frame_stats", "NOT_RECORDED"]


def _reversed_pairs(order: Sequence[float]) -> float:
    """Normalized Kendall distance of a sequence from its sorted order (ties are not reversed)."""
    v = np.asarray(order, dtype=float)
    n = len(v)
    if n < 2:
        return 0.0
    return float(np.triu(v[:, None] > v[None, :], k=1).sum()) / (n * (n - 1) / 2)


def shuffle_order_stats(run: Run) -> dict:
    """How much a shuffled run changed frame order: ``videos``, ``changed`` (videos not sent
    in their original order), ``fraction_changed`` and ``mean_kendall`` (mean normalized
    Kendall distance). Per video from the recorded ``extra["kendall_distance"]`` /
    ``extra["order_changed"]``, else (older runs) from the order of the sent timestamps."""
    dists, changed = [], 0
    for rec in run.records:
        extra = rec.get("extra") if isinstance(rec.get("extra"), Mapping) else {}
        if isinstance(extra.get("kendall_distance"), (int, float)):
            d = float(extra["kendall_distance"])
            moved = bool(extra.get("order_changed", d > 0))
        else:
            ts = rec.get("timestamps") or []
            d = _reversed_pairs(ts)
            moved = d > 0
        dists.append(d)
        changed += int(moved)
    n = len(dists)
    return {"videos": n, "changed": changed, "fraction_changed": changed / n if n else float("nan"),
            "mean_kendall": float(np.mean(dists)) if n else float("nan")}


def visual_tokens_mean(run: Run) -> float | None:
    """Mean ``visual_tokens`` per video of a run (None when no record holds a count)."""
    vals = [float(r["visual_tokens"]) for r in run.records
            if isinstance(r.get("visual_tokens"), (int, float)) and not isinstance(r.get("visual_tokens"), bool)]
    return float(np.mean(vals)) if vals else None


def duplicate_frame_stats(run: Run) -> dict:
    """Sent frames that repeat a source frame already sent (``--fps`` above a clip's frame
    rate): ``duplicate_frames`` (the total), ``videos`` (videos with at least one) and
    ``counted`` (records that hold a count; runs made before msce recorded it hold none).
    Per video from the recorded ``duplicate_frames``, else from its ``frame_indices``."""
    total = videos = counted = 0
    for rec in run.records:
        n = rec.get("duplicate_frames")
        if not isinstance(n, int) or isinstance(n, bool):
            idx = rec.get("frame_indices")
            if not isinstance(idx, list):
                continue
            n = len(idx) - len(set(idx))
        counted += 1
        total += n
        videos += int(n > 0)
    return {"duplicate_frames": total, "videos": videos, "counted": counted}


def run_training_counts(run: Run) -> tuple[dict[str, int], str] | None:
    """The training class counts of a run's split and where they came from, or None.

    In order: the run's saved split file (``config["split"]["file"]``, the train ids
    with their classes, as ``msce eval`` writes ``split.json``); else, for a balanced
    split, the dataset's recorded class counts minus ``n_per_class`` test clips per
    class. Runs made without a recorded split have no known training counts.
    """
    from msce.eval.analysis import training_class_counts
    from msce.eval.splits import Split

    split = run.config.get("split") or {}
    fname = split.get("file")
    if isinstance(fname, str) and fname:
        path = run.path / fname
        if path.is_file():
            counts = training_class_counts(Split.load(path), run.labels)
            return counts, f"train part of {run.name}/{fname}"
    ds_counts = (run.config.get("dataset") or {}).get("class_counts")
    n_test = split.get("n_per_class")
    if split.get("kind") == "balanced" and isinstance(n_test, int) and isinstance(ds_counts, Mapping) \
            and all(n in ds_counts for n in run.labels):
        counts = {n: int(ds_counts[n]) - n_test for n in run.labels}
        if all(v >= 0 for v in counts.values()):
            return counts, f"dataset class counts minus {n_test} test clips per class"
    return None


NOT_RECORDED = "not recorded"


def parse_reason_counts(run: Run) -> dict[str, int]:
    """How many answers of a run the parser settled with each reason.

    Counts every ``parse_reason`` string the prediction records hold (no fixed list, so
    new parser reasons show up as they are); records without one count as
    ``"not recorded"``.
    """
    out: dict[str, int] = {}
    for rec in run.records:
        reason = rec.get("parse_reason")
        key = str(reason) if reason not in (None, "") else NOT_RECORDED
        out[key] = out.get(key, 0) + 1
    return out
