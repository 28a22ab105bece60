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
# Each submodule's public names (its __all__) are the package's.
from msce.eval.analysis.asymmetry import *  # noqa: F403
from msce.eval.analysis.correlation import *  # noqa: F403
from msce.eval.analysis.fps import *  # noqa: F403
from msce.eval.analysis.frequency import *  # noqa: F403
from msce.eval.analysis.ngram import *  # noqa: F403
from msce.eval.analysis.paired import *  # noqa: F403
from msce.eval.analysis import asymmetry as _asymmetry, correlation as _correlation, fps as _fps
from msce.eval.analysis import frequency as _frequency, paired as _paired

#: Every submodule's public names except the ngram environment-variable names.
__all__ = [n for n in dict.fromkeys([*_paired.__all__, *_fps.__all__, *_frequency.__all__, *_correlation.__all__,
                                      *_asymmetry.__all__]) if not n.endswith("_ENV")]
