"""Helpers shared by the analysis modules."""

from __future__ import annotations

from typing import Sequence

from msce.labels import LabelSet


def label_names(labels: LabelSet | Sequence[str]) -> tuple[str, ...]:
    """Class names of a label set or of a plain sequence of names, in order."""
    return tuple(labels.names) if isinstance(labels, LabelSet) else tuple(labels)
