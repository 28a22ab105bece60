"""The paper's analyses on top of per-video predictions, one module per probe.

* :mod:`~msce.eval.analysis.paired`: frame-shuffle sensitivity (Sec. 3.4, Tables 2,
  S2, S3) and run comparison: exact McNemar and paired bootstrap tests over videos.
* :mod:`~msce.eval.analysis.fps`: FPS sweep (Fig. 4).
* :mod:`~msce.eval.analysis.frequency`: lexical frequency of the class words (Sec. 3.3).
* :mod:`~msce.eval.analysis.correlation`: Pearson/Spearman correlations (Eq. 1, Table 1).
* :mod:`~msce.eval.analysis.asymmetry`: head/tail split and asymmetric confusion
  (Sec. 3.3, Fig. 3) and training class counts (Fig. S3).
"""

from msce.eval.analysis.asymmetry import (
    PAPER_HEAD_CLASSES,
    SOURCE_COUNTS,
    SOURCE_PAPER,
    SOURCE_USER,
    Asymmetry,
    HeadTail,
    PairFlow,
    asymmetric_confusion,
    head_tail_split,
    resolve_head_tail,
    training_class_counts,
)
from msce.eval.analysis.correlation import (
    Correlation,
    correlate,
    correlation_table,
    frequency_correlation,
    pearson_p_from_r,
)
from msce.eval.analysis.fps import FpsCurve, fps_sweep
from msce.eval.analysis.frequency import CHINESE_WORDS, lexical_frequency, load_frequency_csv
from msce.eval.analysis.paired import (
    McNemarResult,
    RunComparison,
    RunDelta,
    ShuffleSensitivity,
    compare_runs,
    macro_f1_from_per_class,
    mcnemar_exact,
    paired_bootstrap_delta,
    shuffle_sensitivity,
)

__all__ = [
    "macro_f1_from_per_class",
    "McNemarResult",
    "mcnemar_exact",
    "paired_bootstrap_delta",
    "ShuffleSensitivity",
    "shuffle_sensitivity",
    "FpsCurve",
    "fps_sweep",
    "CHINESE_WORDS",
    "lexical_frequency",
    "load_frequency_csv",
    "Correlation",
    "correlate",
    "pearson_p_from_r",
    "frequency_correlation",
    "correlation_table",
    "PairFlow",
    "Asymmetry",
    "PAPER_HEAD_CLASSES",
    "SOURCE_COUNTS",
    "SOURCE_PAPER",
    "SOURCE_USER",
    "HeadTail",
    "training_class_counts",
    "head_tail_split",
    "resolve_head_tail",
    "asymmetric_confusion",
    "RunDelta",
    "RunComparison",
    "compare_runs",
]
