"""The paper's analyses on top of per-video predictions, one module per probe.

* :mod:`~msce.eval.analysis.paired`: frame-shuffle sensitivity (Sec. 3.4, Tables 2,
  S2, S3) and run comparison: exact McNemar and paired bootstrap tests over videos.
* :mod:`~msce.eval.analysis.fps`: FPS sweep (Fig. 4).
* :mod:`~msce.eval.analysis.frequency`: lexical frequency of the class words (Sec. 3.3):
  the word table, Google Books Ngrams (client in :mod:`~msce.eval.analysis.ngram`),
  wordfreq (a proxy) and CSV files.
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
    frequency_correlations,
    pearson_p_from_r,
)
from msce.eval.analysis.fps import FpsCurve, fps_sweep
from msce.eval.analysis.frequency import (
    CHINESE_WORDS,
    CLASS_WORDS,
    FREQUENCY_SOURCES,
    ClassFrequencies,
    class_frequencies,
    class_words,
    lexical_frequency,
    load_frequency_csv,
    load_words_csv,
    write_frequency_csv,
)
from msce.eval.analysis.ngram import (
    NGRAM_CORPORA,
    NGRAM_SMOOTHING,
    NGRAM_URL,
    NGRAM_YEARS,
    NgramError,
    NgramUnreachableError,
    NgramWordMissingError,
    default_ngram_cache,
    ngram_frequency,
)
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
    "CLASS_WORDS",
    "class_words",
    "load_words_csv",
    "write_frequency_csv",
    "FREQUENCY_SOURCES",
    "ClassFrequencies",
    "class_frequencies",
    "NGRAM_URL",
    "NGRAM_CORPORA",
    "NGRAM_YEARS",
    "NGRAM_SMOOTHING",
    "NgramError",
    "NgramUnreachableError",
    "NgramWordMissingError",
    "default_ngram_cache",
    "ngram_frequency",
    "Correlation",
    "correlate",
    "pearson_p_from_r",
    "frequency_correlation",
    "frequency_correlations",
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
