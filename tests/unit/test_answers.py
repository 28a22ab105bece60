"""Answer parsing: a table of phrasings, each with the label (or invalid reason) it must give."""

from __future__ import annotations

import pytest

from msce.answers import normalize, parse_answer, parse_answer_detail
from msce.labels import DFEW, MAFW

# (answer text, expected label or None, expected reason)
DFEW_TABLE = [
    # exact answers, any case / punctuation / width
    ("happy", "happy", "exact"),
    ("Happy", "happy", "exact"),
    ("HAPPY.", "happy", "exact"),
    ("  Sad \n", "sad", "exact"),
    ("**Angry**", "angry", "exact"),
    ('"Neutral"', "neutral", "exact"),
    ("Surprise!", "surprise", "exact"),
    ("ＨＡＰＰＹ", "happy", "exact"),  # full-width letters (NFKC)
    ("Fear.", "fear", "exact"),
    ("disgust", "disgust", "exact"),
    # synonyms map to the canonical name
    ("Happiness", "happy", "exact"),
    ("joy", "happy", "exact"),
    ("Sadness.", "sad", "exact"),
    ("anger", "angry", "exact"),
    ("Surprised", "surprise", "exact"),
    ("disgusted", "disgust", "exact"),
    ("Afraid", "fear", "exact"),
    ("scared", "fear", "exact"),
    ("calm", "neutral", "exact"),
    # one label inside a sentence
    ("The emotion is happy.", "happy", "unique"),
    ("The person appears to be sad.", "sad", "unique"),
    ("Emotion: Angry", "angry", "unique"),
    ("Answer: surprise", "surprise", "unique"),
    ("I think the person is feeling fear.", "fear", "unique"),
    ("Based on the frames, the emotion is: Disgust", "disgust", "unique"),
    ("The correct choice is (Neutral).", "neutral", "unique"),
    ("happy - the person smiles broadly", "happy", "unique"),
    ("The person looks happy; happiness is evident.", "happy", "unique"),  # one class, two words
    ("1. Happy", "happy", "unique"),
    ("The man is furious", "angry", "unique"),
    ("She is unhappy", "sad", "unique"),  # 'unhappy' is a synonym of sad, and not 'happy'
    ("Emotion Labels choices: Sad", "sad", "unique"),
    # ambiguous: more than one class named
    ("happy or sad", None, "ambiguous"),
    ("The person is surprised and happy.", None, "ambiguous"),
    ("Angry, Sad", None, "ambiguous"),
    ("Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear", None, "ambiguous"),
    ("Either fear or surprise", None, "ambiguous"),
    # negated mentions are invalid (never remapped)
    ("not happy", None, "negated"),
    ("The person is not angry.", None, "negated"),
    ("She isn't sad", None, "negated"),
    ("She isn\u2019t sad", None, "negated"),  # typographic apostrophe
    ("No fear at all", None, "negated"),
    ("never happy", None, "negated"),
    ("The person does not look happy, rather sad", None, "negated"),
    ("neither happy nor sad", None, "negated"),
    # unknown: no class word at all
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("...", None, "empty"),
    ("I cannot determine the emotion.", None, "unknown"),
    ("contempt", None, "unknown"),  # a MAFW class, not a DFEW one
    ("The person is smiling", None, "unknown"),
    ("happyish", None, "unknown"),  # whole words only
    ("sadly", None, "unknown"),
    ("ha", None, "unknown"),  # abbreviations are not answers
    ("\u00bf?", None, "empty"),
    ("<|im_end|>", None, "unknown"),
]

MAFW_TABLE = [
    ("Contempt", "contempt", "exact"),
    ("contemptuous", "contempt", "exact"),
    ("Anxiety", "anxiety", "exact"),
    ("The person seems anxious.", "anxiety", "unique"),
    ("nervous", "anxiety", "exact"),
    ("Helplessness", "helplessness", "exact"),
    ("He feels helpless", "helplessness", "unique"),
    ("Disappointment", "disappointment", "exact"),
    ("She is disappointed.", "disappointment", "unique"),
    ("happy", "happiness", "exact"),
    ("Happiness", "happiness", "exact"),
    ("angry", "anger", "exact"),
    ("sad", "sadness", "exact"),
    ("Sadness, maybe disappointment", None, "ambiguous"),
    ("disappointment or sadness", None, "ambiguous"),
    ("not contempt", None, "negated"),
    ("Surprise", "surprise", "exact"),
    ("Fear and anxiety", None, "ambiguous"),
    ("Neutral", "neutral", "exact"),
    ("The emotion is DISGUST!", "disgust", "unique"),
    ("boredom", None, "unknown"),
]


@pytest.mark.parametrize("text,label,reason", DFEW_TABLE)
def test_dfew_table(text: str, label: str | None, reason: str) -> None:
    got = parse_answer_detail(text, DFEW)
    assert (got.label, got.reason) == (label, reason), text
    assert got.raw == text
    assert parse_answer(text, DFEW) == label


@pytest.mark.parametrize("text,label,reason", MAFW_TABLE)
def test_mafw_table(text: str, label: str | None, reason: str) -> None:
    got = parse_answer_detail(text, MAFW)
    assert (got.label, got.reason) == (label, reason), text


def test_normalize() -> None:
    assert normalize("  Hello,\tWORLD!! ") == "hello world"
    assert normalize("ＡＢＣ") == "abc"
    assert normalize("isn't") == "is not"
    assert normalize("don\u2019t") == "do not"
    assert normalize("Straße") == "strasse"  # casefold, not lower
    assert normalize("a—b/c") == "a b c"


def test_none_and_matches() -> None:
    got = parse_answer_detail(None, DFEW)
    assert got.label is None and got.reason == "empty" and got.raw == ""
    amb = parse_answer_detail("sad then happy", DFEW)
    assert amb.matches == ("sad", "happy")
    assert not amb.valid


def test_every_label_word_parses_to_its_class() -> None:
    for labels in (DFEW, MAFW):
        for name in labels.names:
            for word in labels.words(name):
                assert parse_answer(word, labels) == name
                assert parse_answer(f"The answer is {word.upper()}.", labels) == name


def test_deterministic() -> None:
    texts = [row[0] for row in DFEW_TABLE]
    assert [parse_answer(t, DFEW) for t in texts] == [parse_answer(t, DFEW) for t in texts]
