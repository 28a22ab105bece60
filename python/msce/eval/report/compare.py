"""``compare_table``: metrics and paired deltas of runs against a baseline run, as a
plain-text table and as JSON (``msce compare``), with each run's mean visual tokens per
video beside its deltas."""

from __future__ import annotations

from typing import Sequence

from msce.errors import ConfigError
from msce.eval.report.document import fmt_p
from msce.eval.report.run_stats import visual_tokens_mean
from msce.eval.runs import Run

__all__ = ["compare_table", "default_baseline", "tiny_model_runs", "tiny_models"]

def default_baseline(runs: Sequence[Run]) -> int:
    """The run deltas are measured against when the user names none: the paper's baseline,
    the (unshuffled) sparse run, at 1 FPS when there are several; else the first run given."""
    sparse = [i for i, r in enumerate(runs) if r.strategy_name == "sparse" and not r.is_shuffled]
    if not sparse:
        return 0
    return next((i for i in sparse if runs[i].fps == 1.0), sparse[0])


def tiny_models(runs: Sequence[Run]) -> dict[str, str]:
    """{run name: model name} of the runs made with a tiny random-weight model (``msce
    tiny-model``, msce.testing's builders, Hugging Face ``tiny-random-*`` test checkpoints):
    recorded when the run was made (``backend.tiny_model``, or ``extra.tiny_model`` of
    older runs), else :func:`msce.testing.tiny.tiny_model_name` of the run's model id now."""
    from msce.testing.tiny import tiny_model_name

    out = {}
    for r in runs:
        model = str(r.model_id or "")
        recorded = (r.config.get("backend") or {}).get("tiny_model")
        if isinstance(recorded, str) and recorded:
            out[r.name] = recorded
        elif (r.config.get("extra") or {}).get("tiny_model") is True:
            out[r.name] = tiny_model_name(model) or model
        else:
            name = tiny_model_name(model) if model else None
            if name:
                out[r.name] = name
    return out


def tiny_model_runs(runs: Sequence[Run]) -> list[str]:
    """Names of the runs made with a tiny random-weight model, in order (:func:`tiny_models`)."""
    return list(tiny_models(runs))


def compare_table(runs: Sequence[Run], baseline: int = 0, n_boot: int = 1000, seed: int = 0) -> tuple[str, dict]:
    """A plain-text table of metrics and paired deltas vs ``runs[baseline]``, and its JSON."""
    from msce.eval.analysis import compare_runs
    from msce.eval.metrics import bootstrap_ci

    runs = list(runs)
    if len(runs) < 2:
        raise ConfigError("msce compare needs at least two run directories")
    labels = runs[0].labels
    bad = [r.name for r in runs if r.labels != labels]
    if bad:
        raise ConfigError(f"runs {bad} use a different label list than {runs[0].name}")
    cmp = compare_runs([r.predictions for r in runs], baseline=baseline, n_boot=n_boot, seed=seed)
    deltas = {d.name: d for d in cmp.deltas}
    header = ["run", "videos", "macro F1", "95% CI", "UAR", "WAR", "invalid", "Δ F1 (paired)", "Δ CI", "McNemar p",
              "visual tokens/video", "tokens vs baseline"]
    tokens = {r.name: visual_tokens_mean(r) for r in runs}
    base_tokens = tokens[runs[baseline].name]
    rows = []
    for r, rep in zip(runs, cmp.reports):
        pred = r.predictions
        ci = bootstrap_ci(pred.y_true, pred.y_pred, pred.labels, ("macro_f1",), n_boot=n_boot, seed=seed)["macro_f1"]
        d = deltas.get(r.name)
        rows.append([
            r.name, str(rep.n), f"{rep.macro_f1:.4f}", f"[{ci.low:.4f}, {ci.high:.4f}]", f"{rep.uar:.4f}",
            f"{rep.war:.4f}", f"{rep.invalid_rate:.3f}",
            "baseline" if d is None else f"{d.macro_f1_delta.estimate:+.4f}",
            "" if d is None else f"[{d.macro_f1_delta.low:+.4f}, {d.macro_f1_delta.high:+.4f}]",
            "" if d is None else fmt_p(d.mcnemar.p_value),
            "–" if tokens[r.name] is None else f"{tokens[r.name]:.1f}",
            "–" if tokens[r.name] is None or not base_tokens else f"×{tokens[r.name] / base_tokens:.2f}",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    data = cmp.to_dict()
    data["visual_tokens_mean"] = tokens
    return "\n".join(lines), data
