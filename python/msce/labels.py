"""Emotion label sets (DFEW-7, MAFW-11) with names, abbreviations and synonyms.

Labels are always identified by canonical NAME (lower case), never by a dataset's
integer id: DFEW numbers its classes 1..7, and the two MAFW conventions in the wild
(MAE-DFER/HiCMAE vs DFER-CLIP) disagree on ids. ``LabelSet.index`` gives the position
inside one label set, which is what confusion matrices and metrics use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LabelSet", "DFEW", "MAFW", "LABEL_SETS", "get_label_set"]


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of emotion classes.

    ``names`` is the canonical order (the order of metric rows and confusion
    matrices); ``synonyms`` maps each name to extra words that mean the same class in
    a model's answer (the name itself is always accepted); ``abbrev`` gives the paper's
    two-letter column codes. A synonym is a word for the same emotion, never a guess:
    ``"none"`` is not neutral and ``"unhappy"`` is not sadness (the answer parser reads
    ``un`` + a label word as a negated mention).
    """

    key: str
    names: tuple[str, ...]
    display: tuple[str, ...]
    abbrev: tuple[str, ...]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    official_ids: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n or len(self.display) != n or len(self.abbrev) != n:
            raise ValueError(f"label set {self.key!r}: names, display and abbrev must align")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of a canonical name (case-insensitive); KeyError when unknown."""
        key = name.strip().lower()
        try:
            return self.names.index(key)
        except ValueError:
            raise KeyError(f"{name!r} is not a {self.key} label; expected one of {list(self.names)}") from None

    def canonical(self, word: str) -> str | None:
        """Canonical name for a label or synonym (case-insensitive), else None."""
        w = word.strip().lower()
        if w in self.names:
            return w
        for name, syns in self.synonyms.items():
            if w in syns:
                return name
        return None

    def words(self, name: str) -> tuple[str, ...]:
        """All accepted words for one class: its name first, then synonyms."""
        return (name,) + tuple(self.synonyms.get(name, ()))


# Chinese words for each class, for models that answer in Chinese (keyed by the MAFW name).
_ZH: dict[str, tuple[str, ...]] = {
    "anger": ("愤怒", "生气"),
    "disgust": ("厌恶",),
    "fear": ("恐惧", "害怕"),
    "happiness": ("快乐", "高兴", "开心"),
    "neutral": ("中性", "平静"),
    "sadness": ("悲伤", "伤心", "难过"),
    "surprise": ("惊讶", "吃惊"),
    "contempt": ("蔑视", "轻蔑"),
    "anxiety": ("焦虑",),
    "helplessness": ("无助",),
    "disappointment": ("失望",),
}

DFEW = LabelSet(
    key="dfew",
    names=("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
    display=("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"),
    abbrev=("HA", "SD", "NU", "AG", "SU", "DG", "FE"),
    synonyms={
        "happy": ("happiness", "joy", "joyful", "glad", *_ZH["happiness"]),
        "sad": ("sadness", "sorrow", "sorrowful", *_ZH["sadness"]),
        "neutral": ("neutrality", "calm", *_ZH["neutral"]),
        "angry": ("anger", "mad", "furious", *_ZH["anger"]),
        "surprise": ("surprised", "astonished", "astonishment", *_ZH["surprise"]),
        "disgust": ("disgusted", "revulsion", *_ZH["disgust"]),
        "fear": ("fearful", "afraid", "scared", "frightened", "fright", *_ZH["fear"]),
    },
    official_ids={1: "happy", 2: "sad", 3: "neutral", 4: "angry", 5: "surprise", 6: "disgust", 7: "fear"},
)

# Order used by MAE-DFER / HiCMAE (ids 0..10). Map any other convention by name.
MAFW = LabelSet(
    key="mafw",
    names=(
        "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
        "contempt", "anxiety", "helplessness", "disappointment",
    ),
    display=(
        "Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise",
        "Contempt", "Anxiety", "Helplessness", "Disappointment",
    ),
    abbrev=("AG", "DG", "FE", "HA", "NU", "SD", "SU", "CO", "AX", "HP", "DA"),
    synonyms={
        "anger": ("angry", "mad", "furious", *_ZH["anger"]),
        "disgust": ("disgusted", "revulsion", *_ZH["disgust"]),
        "fear": ("fearful", "afraid", "scared", "frightened", "fright", *_ZH["fear"]),
        "happiness": ("happy", "joy", "joyful", "glad", *_ZH["happiness"]),
        "neutral": ("neutrality", "calm", *_ZH["neutral"]),
        "sadness": ("sad", "sorrow", "sorrowful", *_ZH["sadness"]),
        "surprise": ("surprised", "astonished", "astonishment", *_ZH["surprise"]),
        "contempt": ("contemptuous", "scorn", "disdain", *_ZH["contempt"]),
        "anxiety": ("anxious", "nervous", "nervousness", "worried", "worry", *_ZH["anxiety"]),
        "helplessness": ("helpless", "powerless", "powerlessness", *_ZH["helplessness"]),
        "disappointment": ("disappointed", *_ZH["disappointment"]),
    },
    official_ids={i: n for i, n in enumerate((
        "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
        "contempt", "anxiety", "helplessness", "disappointment"))},
)

LABEL_SETS: dict[str, LabelSet] = {"dfew": DFEW, "mafw": MAFW}


def get_label_set(key: str) -> LabelSet:
    try:
        return LABEL_SETS[key.lower()]
    except KeyError:
        raise KeyError(f"unknown label set {key!r}; known: {sorted(LABEL_SETS)}") from None
