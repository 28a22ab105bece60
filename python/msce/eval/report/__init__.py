"""Reports over run directories: :func:`build_report` (Markdown + self-contained HTML,
``msce report``) and :func:`compare_table` (``msce compare``: a table on stdout, with each
run's mean visual tokens per video beside its paired deltas).

A report holds, for the runs given:

* a summary table (macro precision/recall/F1 with bootstrap intervals, UAR, WAR,
  invalid rate), the answer-parse reasons of every run (whatever ``parse_reason``
  strings the records hold) and per-class F1;
* row-normalized confusion matrices (with the invalid column), one per run;
* every run's predicted-label distribution beside the true class shares (table and bars);
* frame-shuffle sensitivity for every normal/FS pair of runs (per-class F1 bars,
  paired McNemar tests, bootstrap interval of the macro-F1 change), and for every
  shuffled run the fraction of clips whose frame order changed and the mean normalized
  Kendall distance of the orders sent;
* F1 against FPS for runs that differ only in sampling rate;
* per-class F1 against lexical frequency (the counts of ``--freq-csv``, then
  ``--freq-source``: wordfreq, a proxy, or Google Books Ngram, in English and Chinese)
  with Pearson r and two-tailed p on raw and log10 frequencies, and Spearman rho;
* per-class F1 against the training split's class counts (the paper's Fig. S3) with
  Pearson r and p, for runs whose training class counts are known;
* for each base run and its fine-tuned run (found from the run configs, or named with
  ``--finetune-pair``): metrics and per-class F1 before/after, both confusion matrices
  side by side (the paper's Fig. 3) and both runs' F1 against the training counts;
* head->tail vs tail->head confusion flows with an exact binomial test, with the head/tail
  split and its source (training class counts, paper Sec. 3.3, or user);
* paired comparisons against the first run.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend switch) and written as PNG files under ``figures/`` for the Markdown and as
base64 data URLs inside the HTML, so ``report.html`` opens anywhere on its own.

Modules: ``document`` (the Markdown/HTML document), ``figures``, ``frequency`` (the
long-tail frequency sources), ``grouping`` (which runs are compared), ``pairs`` (predicted-label distributions, base /
fine-tuned pairs), ``run_stats``
(facts about one run), ``build`` (:func:`build_report`), ``compare``
(:func:`compare_table`). The command line is :mod:`msce.cli.report`.
"""

from msce.eval.report.build import build_report
from msce.eval.report.compare import compare_table
from msce.eval.report.figures import (
    plot_confusion,
    plot_fps,
    plot_frequency,
    plot_shuffle_bars,
    plot_training_counts,
)
from msce.eval.report.frequency import frequency_sources
from msce.eval.report.grouping import fps_groups, pair_shuffled_runs
from msce.eval.report.pairs import (
    find_pairs,
    finetune_pairs,
    plot_confusion_pair,
    plot_predicted_distribution,
    predicted_distribution,
)
from msce.eval.report.run_stats import (
    NOT_RECORDED,
    duplicate_frame_stats,
    parse_reason_counts,
    run_training_counts,
    shuffle_order_stats,
    visual_tokens_mean,
)

__all__ = ["build_report", "compare_table", "pair_shuffled_runs", "fps_groups", "run_training_counts",
           "parse_reason_counts", "duplicate_frame_stats", "shuffle_order_stats", "visual_tokens_mean", "NOT_RECORDED", "frequency_sources",
           "plot_confusion", "plot_fps", "plot_frequency", "plot_shuffle_bars", "plot_training_counts",
           "predicted_distribution", "plot_predicted_distribution", "find_pairs", "finetune_pairs",
           "plot_confusion_pair"]
