"""``build_report``: the Markdown + HTML report over run directories, section by section
(runs, answer parsing, per-class F1, confusion matrices, predicted-label distributions,
frame-shuffle sensitivity, F1 vs FPS, long tail, training class counts, base / fine-tuned
pairs, asymmetric confusion, comparison with the first run)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from msce.errors import ConfigError, DatasetError
from msce.eval.report.compare import default_baseline, tiny_models
from msce.eval.report.document import Document, fmt_ci, fmt_p
from msce.eval.report.figures import (
    abbrevs,
    plot_confusion,
    plot_fps,
    plot_frequency,
    plot_shuffle_bars,
    plot_training_counts,
)
from msce.eval.report.frequency import frequency_sources
from msce.eval.report.grouping import fold_groups, fps_groups, pair_shuffled_runs
from msce.eval.report.pairs import distribution_section, finetune_pairs, finetune_section
from msce.eval.report.run_stats import (NOT_RECORDED, duplicate_frame_stats, parse_reason_counts, run_training_counts,
                                        shuffle_order_stats)
from msce.eval.runs import Run
from msce.labels import LABEL_SETS

NAN_NOTE = ("r = nan: the correlation is undefined because one side is constant: every class has the same F1 "
            "(often all 0, e.g. a model that always answers one class or never answers validly) or every class "
            "has the same frequency / training count.")

__all__ = ["build_report"]


def build_report(
    runs: Sequence[Run],
    out_dir: str | os.PathLike,
    *,
    freq_csv: str | None = None,
    freq_source: str = "wordfreq",
    pairs: Sequence[tuple[str, str]] = (),
    n_boot: int = 1000,
    seed: int = 0,
    n_head: int | None = None,
    head: Sequence[str] | None = None,
    train_counts_csv: str | None = None,
    title: str = "msce evaluation report",
    baseline: int | None = None,
    finetune: Sequence[tuple[str, str]] = (),
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    ``freq_csv``: ``label,count`` file of lexical counts used first for the long-tail
    analysis; ``freq_source`` (``"wordfreq"``, an offline proxy, or ``"ngram"``, Google
    Books Ngrams as in the paper) follows in English and Chinese. The section names each
    source, corpus, years and words and gives Pearson r on raw and on log10 frequencies.
    ``pairs``: explicit (normal, shuffled)
    run names. ``finetune``: explicit (base, fine-tuned) run names; more base / fine-tuned
    pairs are found from the run configs (:func:`msce.eval.report.pairs.find_pairs`): each
    pair gets its metrics and per-class F1 before/after, both confusion matrices side by
    side (Fig. 3) and both runs' F1 against the training class counts (Fig. S3); every run
    gets its predicted-label distribution. Head/tail classes for the asymmetry test, per run, first that applies:
    ``head`` (source "user"); the run's training class counts (``train_counts_csv``, a
    ``label,count`` file, else :func:`run_training_counts`), head = the ``n_head`` most
    frequent classes or by default those holding at least half of the training clips;
    the paper's MAFW head set (Sec. 3.3); otherwise the report says that there is no
    default. ``n_boot``/``seed``: bootstrap settings. ``baseline``: index of the run the
    comparison measures against (default :func:`default_baseline`: the sparse run).
    """
    from msce.eval.analysis import (
        asymmetric_confusion,
        compare_runs,
        fps_sweep,
        frequency_correlation,
        frequency_correlations,
        load_frequency_csv,
        resolve_head_tail,
        shuffle_sensitivity,
    )
    from msce.eval.metrics import bootstrap_ci

    runs = list(runs)
    if not runs:
        raise ConfigError("msce report needs at least one run directory")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be distinct (directory names): {names}")
    ft_pairs = finetune_pairs(runs, finetune)  # checks explicit pairs before anything is written
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    doc = Document(title)
    tiny = tiny_models(runs)
    if tiny:
        used = "; ".join(f"{run} used {model}" for run, model in tiny.items())
        doc.p(f"**Warning: tiny random-weight model ({used}): its answers and every number derived from them are "
              f"meaningless.** Such runs check the pipeline (msce tiny-model), not emotion recognition.")

    # --- summary
    doc.h(1, "Runs")
    rows = []
    reports = {}
    for r in runs:
        pred = r.predictions
        rep = pred.report()
        reports[r.name] = rep
        ci = bootstrap_ci(pred.y_true, pred.y_pred, pred.labels, ("macro_f1",), n_boot=n_boot, seed=seed)["macro_f1"] \
            if len(pred) and n_boot > 0 else None
        rows.append([
            r.name, r.dataset, r.model_id, r.strategy_name, "–" if r.fps is None else f"{r.fps:g}", len(pred),
            rep.macro_precision, rep.macro_recall, rep.macro_f1,
            fmt_ci(ci.to_dict()) if ci else "–", rep.uar, rep.war, rep.invalid_rate,
        ])
    doc.table(["run", "dataset", "model", "strategy", "fps", "videos", "macro P", "macro R", "macro F1",
               "F1 95% CI", "UAR", "WAR", "invalid"], rows)
    doc.p("Macro averages are unweighted means over classes; invalid answers count as wrong for every metric. "
          "Intervals: percentile bootstrap over videos.")
    dup_lines = []
    for r in runs:
        d = duplicate_frame_stats(r)
        if d["duplicate_frames"]:
            dup_lines.append(f"{r.name}: {d['duplicate_frames']} duplicate frame(s) in {d['videos']} of "
                             f"{d['counted']} videos")
    if dup_lines:
        doc.p("**Duplicate frames** (a sampling rate above the clips' frame rate picks the same source frame "
              "more than once, so the model sees it repeatedly; per video: duplicate_frames in "
              "predictions.jsonl): " + "; ".join(dup_lines) + ".")

    # --- folds: one row per setting, mean and spread over its official folds
    folds = fold_groups(runs)
    if folds:
        import numpy as np

        doc.h(1, "Folds")
        metrics = ("macro_precision", "macro_recall", "macro_f1", "uar", "war", "invalid_rate")
        frows = []
        for key, rs in folds.items():
            vals = np.array([[getattr(reports[r.name], m) for m in metrics] for r in rs], dtype=float)
            sd = vals.std(axis=0, ddof=1)
            frows.append([key, ", ".join(str(r.config["split"]["fold"]) for r in rs)]
                         + [f"{m:.4f} ± {d:.4f}" for m, d in zip(vals.mean(axis=0), sd)])
        doc.table(["setting", "folds", "macro P", "macro R", "macro F1", "UAR", "WAR", "invalid"], frows)
        doc.p("Mean ± sample standard deviation over the official folds of each setting (runs that differ "
              "only in the fold); the per-fold runs are listed above.")

    # --- answer parsing
    doc.h(1, "Answer parsing")
    reason_counts = {r.name: parse_reason_counts(r) for r in runs}
    reasons = sorted({k for c in reason_counts.values() for k in c})
    doc.table(["run"] + reasons + ["videos"],
              [[r.name] + [reason_counts[r.name].get(k, 0) for k in reasons] + [len(r.records)] for r in runs])
    doc.p("How the answer parser settled each answer (the parse_reason of every prediction record); "
          f"'{NOT_RECORDED}' counts records without a reason.")

    # --- per-class F1
    by_labels: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:
        by_labels.setdefault(r.labels, []).append(r)
    doc.h(1, "Per-class F1")
    for labels, rs in by_labels.items():
        ab = abbrevs(labels)
        doc.table(["run"] + ab + ["macro F1"],
                  [[r.name] + [float(v) for v in reports[r.name].f1] + [reports[r.name].macro_f1] for r in rs])
        if ab != list(labels):
            doc.p("Columns: " + ", ".join(f"{a} = {n}" for a, n in zip(ab, labels)) + ".")

    # --- confusion matrices
    doc.h(1, "Confusion matrices")
    doc.p("Rows are true classes normalized to 1; the last column (INV) holds unparsed answers.")
    for i, r in enumerate(runs):
        rep = reports[r.name]
        doc.image(f"confusion_{i}.png", plot_confusion(rep.confusion, r.labels, r.name), f"Confusion matrix: {r.name}")

    # --- predicted-label distributions
    distribution_section(doc, runs, reports)

    # --- frame shuffle
    shuffle_pairs = pair_shuffled_runs(runs, pairs)
    doc.h(1, "Frame-shuffle sensitivity")
    fs_runs = [r for r in runs if r.is_shuffled]
    if fs_runs:
        fs_stats = [(r.name, shuffle_order_stats(r)) for r in fs_runs]
        doc.table(["shuffled run", "clips", "order changed", "fraction changed", "mean normalized Kendall distance"],
                  [[nm, st["videos"], st["changed"], st["fraction_changed"], st["mean_kendall"]]
                   for nm, st in fs_stats])
        doc.p("Normalized Kendall distance: frame pairs sent in reversed time order / (n choose 2) per clip "
              "(0 = original order, 1 = reversed, about 0.5 for a uniformly random order). A one-frame clip "
              "cannot change order.")
    if not shuffle_pairs:
        doc.p("No normal / frame-shuffled pair of runs among the inputs (use --pair NORMAL:SHUFFLED to name one).")
    for j, (a, b) in enumerate(shuffle_pairs):
        s = shuffle_sensitivity(a.predictions, b.predictions, n_boot=max(n_boot, 1), seed=seed)
        doc.h(2, f"{a.name} vs {b.name}")
        ab = abbrevs(s.labels)
        doc.table(
            ["class", "F1 normal", "F1 FS", "Δ F1", "b (normal only right)", "c (FS only right)", "McNemar p"],
            [[f"{ab[i]} ({lab})" if ab[i] != lab else lab, float(s.normal.f1[i]), float(s.shuffled.f1[i]),
              float(s.f1_delta[i]), s.tests[lab].b, s.tests[lab].c, fmt_p(s.tests[lab].p_value)]
             for i, lab in enumerate(s.labels)]
            + [["macro / all videos", s.normal.macro_f1, s.shuffled.macro_f1, s.macro_f1_delta.estimate,
                s.overall.b, s.overall.c, fmt_p(s.overall.p_value)]],
        )
        d = s.macro_f1_delta
        doc.p(f"{s.n} paired videos. Macro-F1 change (FS − normal) {d.estimate:+.4f}, "
              f"{int(round(100 * d.level))}% CI [{d.low:+.4f}, {d.high:+.4f}]; "
              f"exact McNemar p = {fmt_p(s.overall.p_value)}.")
        doc.image(f"shuffle_{j}.png", plot_shuffle_bars(s.labels, s.normal.f1, s.shuffled.f1, f"{a.name} vs {b.name}"),
                  f"Per-class F1, normal vs frame-shuffled: {a.name} / {b.name}")

    # --- FPS sweep
    groups = fps_groups(runs)
    doc.h(1, "F1 vs FPS")
    if not groups:
        doc.p("No group of runs that differ only in sampling rate.")
    else:
        curves = []
        for key, rs in groups.items():
            c = fps_sweep([(r.fps, r.predictions) for r in rs], "macro_f1", n_boot=max(n_boot, 0), seed=seed)
            curves.append((key, c))
            doc.h(2, key)
            doc.table(["fps", "run", "videos", "macro F1", "CI low", "CI high"],
                      [[f"{f:g}", nm, int(n), v, lo, hi]
                       for f, nm, n, v, lo, hi in zip(c.fps, c.names, c.n, c.value, c.low, c.high)])
            doc.p(f"Peak at {c.peak_fps:g} fps.")
        doc.image("fps.png", plot_fps(curves), "Macro F1 against sampling rate")

    # --- long tail
    doc.h(1, "Long tail: F1 vs lexical frequency")
    fig_n = 0
    primary: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, rs in by_labels.items():
        found = frequency_sources(labels, freq_csv, freq_source)
        if not found:
            doc.p(f"No frequencies available for classes {list(labels)} (install wordfreq, pass --freq-csv "
                  f"or --freq-source ngram).")
            continue
        sources = {title: dict(f.values) for title, f in found.items()}
        primary[labels] = next(iter(sources.values()))  # orients the class pairs of the asymmetry tables
        for f in found.values():
            doc.p(f"Frequency source: {f.describe()}")
        if any(f.is_proxy for f in found.values()):
            doc.p("wordfreq is a proxy, not the paper's source: the paper correlates F1 with Google Books Ngram "
                  "frequencies (July 2024 corpora, Sec. 3.3); `--freq-source ngram` or `msce freq` uses those.")
        doc.table(["class"] + list(sources),
                  [[lab] + [f"{src[lab]:.3g}" for src in sources.values()] for lab in labels])
        rows = []
        panels = []
        for r in rs:
            rep = reports[r.name]
            f1 = dict(zip(rep.labels, rep.f1.tolist()))
            panel = {}
            for src_name, freq in sources.items():
                cs = frequency_correlations(f1, freq)
                for scale, c in cs.items():
                    rows.append([r.name, src_name, scale, c.r, fmt_p(c.p), c.rho, fmt_p(c.rho_p), c.n])
                panel[src_name] = (freq, cs["raw"])
            panels.append((r.name, f1, panel))
        doc.table(["run", "frequency", "scale", "Pearson r", "p (two-tailed)", "Spearman ρ", "p", "classes"], rows)
        if any(isinstance(row[3], float) and math.isnan(row[3]) for row in rows):
            doc.p(NAN_NOTE)
        doc.p("Pearson r on raw frequencies is Eq. 1 of the paper; on log10 frequencies one head class spanning "
              "orders of magnitude does not decide r. Spearman ρ is the same on both scales.")
        for name, f1, panel in panels:
            doc.image(f"frequency_{fig_n}.png", plot_frequency(panel, f1, name),
                      f"Per-class F1 against class-word frequency: {name}")
            fig_n += 1

    # --- training class counts (Fig. S3)
    train_counts: dict[str, tuple[dict[str, int], str]] = {}
    count_problems = []
    for r in runs:
        if train_counts_csv:
            lset = next((ls for ls in LABEL_SETS.values() if tuple(ls.names) == r.labels), None)
            train_counts[r.name] = (dict(load_frequency_csv(train_counts_csv, lset or r.labels)),
                                    f"counts from {Path(train_counts_csv).name}")
            continue
        try:
            known = run_training_counts(r)
        except DatasetError as exc:
            count_problems.append(f"{r.name}: {exc}")
            continue
        if known is not None:
            train_counts[r.name] = known
    doc.h(1, "Per-class F1 vs training class count (Fig. S3)")
    if not train_counts:
        doc.p("The training class counts are not known for any run (no recorded split with training labels; "
              "pass --train-counts CSV to give them).")
    for problem in count_problems:
        doc.p(f"Training class counts unreadable for {problem}")
    groups_s3: dict[tuple, list[Run]] = {}
    for r in runs:
        if r.name in train_counts:
            counts, note = train_counts[r.name]
            groups_s3.setdefault((r.labels, tuple(counts.items()), note), []).append(r)
    rows = []
    for g, ((labels, items, note), rs) in enumerate(groups_s3.items()):
        counts = dict(items)
        series = []
        for r in rs:
            rep = reports[r.name]
            f1 = dict(zip(rep.labels, rep.f1.tolist()))
            c = frequency_correlation(f1, counts)
            rows.append([r.name, note, sum(counts.values()), c.r, fmt_p(c.p), c.rho, fmt_p(c.rho_p), c.n])
            series.append((r.name, f1, c))
        doc.table(["training clips"] + abbrevs(labels), [[note] + [counts[n] for n in labels]])
        doc.image(f"train_counts_{g}.png", plot_training_counts(counts, series, f"training clips ({note})"),
                  f"Per-class F1 against training class count: {', '.join(r.name for r in rs)}")
    if rows:
        doc.table(["run", "training counts", "training clips", "Pearson r", "p (two-tailed)", "Spearman ρ", "p",
                   "classes"], rows)
        if any(isinstance(row[3], float) and math.isnan(row[3]) for row in rows):
            doc.p(NAN_NOTE)
        doc.p("Pearson r and two-tailed p of per-class F1 against the number of training clips of each class "
              "(the view of the paper's Fig. S3).")

    # --- base / fine-tuned pairs (Fig. 3, with the Fig. S3 view of both)
    finetune_section(doc, ft_pairs, reports, train_counts)

    # --- asymmetric confusion
    doc.h(1, "Asymmetric confusion")
    for r in runs:
        known = train_counts.get(r.name)
        use_head = list(head) if head and all(h in r.labels for h in head) else None
        doc.h(2, r.name)
        try:
            split = resolve_head_tail(r.labels, head=use_head, counts=None if known is None else known[0],
                                      n_head=None if use_head else n_head,
                                      counts_note="" if known is None else known[1])
        except ConfigError as exc:
            doc.p(f"No head/tail split: {exc} (--head a,b,... or --train-counts CSV).")
            continue
        asym = asymmetric_confusion(reports[r.name].confusion, r.labels, head=split,
                                    frequencies=primary.get(r.labels) or None)
        doc.p(split.describe())
        doc.p(f"Tail→head {asym.tail_to_head} videos ({asym.tail_to_head_rate:.3f} of tail videos), "
              f"head→tail {asym.head_to_tail} ({asym.head_to_tail_rate:.3f} of head videos); "
              f"exact binomial p = {fmt_p(asym.p_two_sided)} (two-sided), {fmt_p(asym.p_greater)} "
              f"(tail→head more likely).")
        top = [f for f in asym.pairs if f.a_to_b + f.b_to_a > 0][:10]
        if top:
            first = ("a (more training clips)" if split.counts is not None
                     else "a (more frequent word)" if primary.get(r.labels) else "a (head first)")
            doc.table([first, "b", "a→b", "b→a", "binomial p"],
                      [[f.a, f.b, f.a_to_b, f.b_to_a, fmt_p(f.p_value)] for f in top])

    # --- comparison
    base = default_baseline(runs) if baseline is None else baseline
    if not 0 <= base < len(runs):
        raise ConfigError(f"baseline index {base} is out of range for {len(runs)} runs")
    doc.h(1, f"Comparison with {runs[base].name}")
    comparable = [r for r in runs if r.labels == runs[base].labels]
    if len(comparable) < 2:
        doc.p("Only one run with this label set.")
    else:
        cmp = compare_runs([r.predictions for r in comparable], baseline=comparable.index(runs[base]),
                           n_boot=max(n_boot, 1), seed=seed)
        doc.table(["run", "common videos", "Δ macro F1", "CI", "b (baseline only right)", "c (run only right)",
                   "McNemar p"],
                  [[d.name, d.n_common, d.macro_f1_delta.estimate,
                    f"[{d.macro_f1_delta.low:+.4f}, {d.macro_f1_delta.high:+.4f}]",
                    d.mcnemar.b, d.mcnemar.c, fmt_p(d.mcnemar.p_value)] for d in cmp.deltas])
        how = "chosen with --baseline" if baseline is not None else (
            "the sparse run" if runs[base].strategy_name == "sparse" else "the first run given; no sparse run")
        doc.p(f"Baseline: {cmp.baseline} ({how}). Δ = run − baseline on the videos both runs scored.")

    md_path, html_path = out / "report.md", out / "report.html"
    for name, png in doc.figures:
        (out / "figures" / name).write_bytes(png)
    md_path.write_text(doc.markdown(), encoding="utf-8")
    html_path.write_text(doc.html(), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "figures": out / "figures"}
