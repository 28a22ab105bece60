"""Which runs a report puts side by side: normal / frame-shuffled pairs and groups of runs
that differ only in sampling rate."""

from __future__ import annotations

from typing import Mapping, Sequence

from msce.errors import ConfigError
from msce.eval.runs import Run

__all__ = ["pair_shuffled_runs", "fps_groups", "fold_groups"]


def _base_config(cfg: Mapping) -> Mapping | None:
    for key in ("base", "inner", "strategy", "wrapped"):
        v = cfg.get(key)
        if isinstance(v, Mapping):
            return v
    return None


def pair_shuffled_runs(runs: Sequence[Run], explicit: Sequence[tuple[str, str]] = ()) -> list[tuple[Run, Run]]:
    """(normal, shuffled) pairs.

    ``explicit`` pairs of run names win. Otherwise each shuffled run is paired with the
    normal run of the same dataset, labels and model whose strategy config equals the
    shuffled run's wrapped config; failing that, the only such run with the same fps
    (and, when the shuffled config names its ``inner`` strategy, that strategy).
    """
    by_name = {r.name: r for r in runs}
    pairs: list[tuple[Run, Run]] = []
    used = set()
    for a, b in explicit:
        if a not in by_name or b not in by_name:
            raise ConfigError(f"--pair {a}:{b}: run names must be among {sorted(by_name)}")
        pairs.append((by_name[a], by_name[b]))
        used.add(b)
    for fs in runs:
        if not fs.is_shuffled or fs.name in used:
            continue
        cands = [r for r in runs if not r.is_shuffled and r.dataset == fs.dataset and r.labels == fs.labels
                 and r.model_id == fs.model_id]
        base = _base_config(fs.strategy)
        exact = [r for r in cands if base is not None and dict(r.strategy) == dict(base)]
        if len(exact) == 1:
            pairs.append((exact[0], fs))
            continue
        same_fps = [r for r in cands if r.fps == fs.fps]
        inner = fs.strategy.get("inner")
        if isinstance(inner, str) and len(same_fps) > 1:
            same_fps = [r for r in same_fps if r.strategy_name == inner]
        if len(same_fps) == 1:
            pairs.append((same_fps[0], fs))
    return pairs


def _split_name(r: Run) -> str | None:
    split = r.config.get("split")
    return split.get("name") if isinstance(split, Mapping) else None


def fps_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Non-shuffled runs with an fps, grouped by (dataset, model, strategy); groups of 2+ rates.

    ``sparse`` and ``dense`` are one curve (the same uniform frames; the sparse 1-FPS
    baseline is the curve's 1-FPS point). When the runs cover several splits (folds), each
    split has its own curve.
    """
    several = len({_split_name(r) for r in runs}) > 1
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.is_shuffled or r.fps is None:
            continue
        name = "dense" if r.strategy_name == "sparse" else r.strategy_name
        key = f"{r.dataset} · {r.model_id} · {name}" + (f" · {_split_name(r)}" if several else "")
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        seen, uniq = set(), []
        for r in rs:
            if r.fps not in seen:
                seen.add(r.fps)
                uniq.append(r)
        if len(uniq) >= 2:
            out[key] = uniq
    return out


def fold_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs on official folds that differ only in the fold (same dataset, labels, model and
    strategy config), grouped; groups of 2+ distinct folds, each fold once (the first run)."""
    import json

    groups: dict[str, list[Run]] = {}
    keys: dict[str, str] = {}
    for r in runs:
        split = r.config.get("split")
        if not isinstance(split, Mapping) or split.get("kind") != "official" or split.get("fold") is None:
            continue
        ident = json.dumps([r.dataset, list(r.labels), r.model_id, r.strategy], sort_keys=True, default=str)
        fps = "" if r.fps is None else f" @ {r.fps:g} fps"
        keys.setdefault(ident, f"{r.dataset} · {r.model_id} · {r.strategy_name}{fps}")
        groups.setdefault(ident, []).append(r)
    out = {}
    for ident, rs in groups.items():
        seen, uniq = set(), []
        for r in rs:
            fold = r.config["split"]["fold"]
            if fold not in seen:
                seen.add(fold)
                uniq.append(r)
        if len(uniq) >= 2:
            out[keys[ident]] = sorted(uniq, key=lambda r: r.config["split"]["fold"])
    return out
