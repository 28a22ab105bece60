"""Versioned prompt templates and their rendering.

Templates are plain text files shipped as package data under ``msce/prompts/<version>/``
(``v1`` is the first and current version). A file holds one ``str.format`` template;
its final newline is not part of the template. Changing a prompt means adding a new
version directory, never editing an old one, so recorded runs stay reproducible; the
version is recorded in every strategy's config.

Rendering returns a list of parts in the :data:`msce.models.backends.Request` layout, with
:class:`Visual` placeholders where the strategy puts frames. :func:`as_text` turns a
rendered prompt into one string (``<image>`` / ``<video>`` markers) for run records and
snapshot tests.

The MSCE stage-2 layout follows the template cited in the paper (Sec. 4.2)::

    Analyze the following sequence of sparse keyframes and the detailed motion
    descriptions for the gaps between them.
    FrameID 1:<image>, Motion: t1,
    FrameID 2:<image>, Motion: t2,
    ...
    FrameID n:<image>.
    Question: {question}
    Emotion Labels choices: {labels}

msce's two MSCE controls (not from the paper) reuse this layout: ``msce-notext`` puts one
fixed neutral sentence (``stage2_neutral_motion``) in every gap with frames, and
``sparse-images`` sends the keyframes alone (``keyframes_intro``, then ``FrameID i:<image>``
separated by ``keyframes_separator``, then the question). Adding templates to a version
leaves every prompt it already rendered unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Sequence, Union

from msce.errors import ConfigError
from msce.labels import LabelSet

__all__ = [
    "DEFAULT_VERSION",
    "Visual",
    "PromptSet",
    "get_prompts",
    "as_text",
    "one_line",
    "available_versions",
]

DEFAULT_VERSION = "v1"

_TEMPLATE_NAMES = (
    "question",
    "answer",
    "stage1",
    "stage2_intro",
    "stage2_keyframe",
    "stage2_motion",
    "stage2_no_motion",
    "stage2_end",
    "stage2_neutral_motion",
    "keyframes_intro",
    "keyframes_separator",
)


@dataclass(frozen=True)
class Visual:
    """Where frames go in a rendered prompt: ``kind`` is ``"image"`` or ``"video"``;
    ``ref`` numbers the visual inputs of one prompt in order (0, 1, ...)."""

    kind: str
    ref: int = 0


RenderedPart = Union[str, Visual]


def available_versions() -> list[str]:
    root = resources.files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "question.txt").is_file())


@functools.lru_cache(maxsize=None)
def _load(version: str) -> dict[str, str]:
    folder = resources.files(__name__) / version
    if not (folder / "question.txt").is_file():
        raise ConfigError(f"unknown prompt version {version!r}; available: {available_versions()}")
    out = {}
    for name in _TEMPLATE_NAMES:
        text = (folder / f"{name}.txt").read_text(encoding="utf-8")
        out[name] = text[:-1] if text.endswith("\n") else text
    return out


def _merge_text(parts: list[RenderedPart]) -> list[RenderedPart]:
    """Join adjacent text pieces so a rendered prompt alternates text and visuals."""
    merged: list[RenderedPart] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        elif part != "":
            merged.append(part)
    return merged


def one_line(text: str) -> str:
    """Collapse all whitespace runs (newlines included) to single spaces."""
    return " ".join(text.split())


@dataclass(frozen=True)
class PromptSet:
    """The templates of one prompt version, and the renderers the strategies use."""

    version: str = DEFAULT_VERSION
    question: str | None = None  # overrides the version's question text

    def __post_init__(self) -> None:
        _load(self.version)  # fail early on an unknown version

    @property
    def templates(self) -> dict[str, str]:
        return dict(_load(self.version))

    def _t(self, name: str) -> str:
        return _load(self.version)[name]

    def question_text(self) -> str:
        return self.question if self.question is not None else self._t("question")

    def labels_text(self, labels: LabelSet) -> str:
        return ", ".join(labels.display)

    def answer_block(self, labels: LabelSet) -> str:
        return self._t("answer").format(question=self.question_text(), labels=self.labels_text(labels))

    def classify(self, labels: LabelSet, kind: str = "video") -> list[RenderedPart]:
        """Sparse / dense / shuffled: the frames, then the question and the choices."""
        if kind not in ("video", "image"):
            raise ConfigError(f"kind must be 'video' or 'image', got {kind!r}")
        return [Visual(kind, 0), self.answer_block(labels)]

    def stage1(self, count: int, kind: str = "video") -> list[RenderedPart]:
        """MSCE stage 1: one gap's ``count`` frames, then the motion-description request."""
        if count < 1:
            raise ConfigError(f"a gap needs at least one frame, got {count}")
        return [Visual(kind, 0), self._t("stage1").format(count=count)]

    def stage2(self, motions: Sequence[str | None], labels: LabelSet) -> list[RenderedPart]:
        """MSCE stage 2: keyframes k_1..k_n interleaved with gap texts t_1..t_{n-1}.

        ``motions`` has one entry per gap (n-1 for n keyframes); ``None`` marks a gap
        without frames. Motion texts are collapsed to one line.
        """
        n = len(motions) + 1
        parts: list[RenderedPart] = [self._t("stage2_intro"), "\n"]
        for i in range(n):
            parts += [self._t("stage2_keyframe").format(index=i + 1), Visual("image", i)]
            if i < n - 1:
                motion = motions[i]
                text = self._t("stage2_no_motion") if motion is None else one_line(motion)
                parts += [self._t("stage2_motion").format(motion=text), "\n"]
        parts += [self._t("stage2_end"), "\n", self.answer_block(labels)]
        return _merge_text(parts)

    def neutral_motion(self) -> str:
        """The fixed gap text of the ``msce-notext`` control."""
        return self._t("stage2_neutral_motion")

    def stage2_neutral(self, gap_has_frames: Sequence[bool], labels: LabelSet) -> list[RenderedPart]:
        """The ``msce-notext`` control: :meth:`stage2` with :meth:`neutral_motion` for every
        gap that has frames (a gap without frames keeps the no-frames text)."""
        neutral = self.neutral_motion()
        return self.stage2([neutral if has else None for has in gap_has_frames], labels)

    def keyframes(self, count: int, labels: LabelSet) -> list[RenderedPart]:
        """The ``sparse-images`` control: ``count`` keyframes as interleaved images with no
        motion text, then the question and the choices."""
        if count < 1:
            raise ConfigError(f"keyframes() needs at least one keyframe, got {count}")
        parts: list[RenderedPart] = [self._t("keyframes_intro"), "\n"]
        for i in range(count):
            parts += [self._t("stage2_keyframe").format(index=i + 1), Visual("image", i)]
            if i < count - 1:
                parts += [self._t("keyframes_separator"), "\n"]
        parts += [self._t("stage2_end"), "\n", self.answer_block(labels)]
        return _merge_text(parts)

    def config(self) -> dict:
        return {"version": self.version, "question": self.question}


def get_prompts(version: str = DEFAULT_VERSION, question: str | None = None) -> PromptSet:
    return PromptSet(version=version, question=question)


def as_text(parts: Sequence[RenderedPart]) -> str:
    """One string for a rendered prompt: visuals become ``<image>`` / ``<video>``."""
    out = []
    for part in parts:
        out.append(part if isinstance(part, str) else f"<{part.kind}>")
    return "".join(out)
