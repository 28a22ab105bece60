"""Answer parsing: a table of phrasings, each with the label (or invalid reason) it must give.

Every expectation is written by hand from what the answer says (the table) or follows
from how the answer was built (the templates); none is computed with msce.
"""

from __future__ import annotations

import pytest

from msce.models.answers import REASONS, VALID_REASONS, normalize, parse_answer, parse_answer_detail
from msce.errors import ConfigError, MsceError
from msce.labels import DFEW, MAFW, LabelSet

SETS = {"dfew": DFEW, "mafw": MAFW}

# (answer text, label set, expected label or None, expected reason)
TABLE = [
    # --- exact: the whole answer is one label word, any case / punctuation / width / markup
    ("happy", "dfew", "happy", "exact"),
    ("Happy", "dfew", "happy", "exact"),
    ("HAPPY.", "dfew", "happy", "exact"),
    ("  Sad \n", "dfew", "sad", "exact"),
    ("**Angry**", "dfew", "angry", "exact"),
    ('"Neutral"', "dfew", "neutral", "exact"),
    ("Surprise!", "dfew", "surprise", "exact"),
    ("ＨＡＰＰＹ", "dfew", "happy", "exact"),  # full-width letters (NFKC)
    ("Fear.", "dfew", "fear", "exact"),
    ("disgust", "dfew", "disgust", "exact"),
    ("**Happiness**", "dfew", "happy", "exact"),
    ("'Fear'", "dfew", "fear", "exact"),
    ("\u201cSad\u201d", "dfew", "sad", "exact"),  # typographic quotes
    ("*angry*", "dfew", "angry", "exact"),
    ("# Surprise", "dfew", "surprise", "exact"),
    ("- Disgust", "dfew", "disgust", "exact"),
    ("(Neutral)", "dfew", "neutral", "exact"),
    ("Happy?", "dfew", "happy", "exact"),
    # synonyms and adjective/noun forms map to the canonical name of the set
    ("Happiness", "dfew", "happy", "exact"),
    ("joy", "dfew", "happy", "exact"),
    ("Sadness.", "dfew", "sad", "exact"),
    ("anger", "dfew", "angry", "exact"),
    ("Surprised", "dfew", "surprise", "exact"),
    ("disgusted", "dfew", "disgust", "exact"),
    ("Afraid", "dfew", "fear", "exact"),
    ("scared", "dfew", "fear", "exact"),
    ("Frightened.", "dfew", "fear", "exact"),
    ("calm", "dfew", "neutral", "exact"),
    ("happy", "mafw", "happiness", "exact"),
    ("Happiness", "mafw", "happiness", "exact"),
    ("angry", "mafw", "anger", "exact"),
    ("sad", "mafw", "sadness", "exact"),
    ("Surprise", "mafw", "surprise", "exact"),
    ("Neutral", "mafw", "neutral", "exact"),
    ("Contempt", "mafw", "contempt", "exact"),
    ("contemptuous", "mafw", "contempt", "exact"),
    ("Contemptuous.", "mafw", "contempt", "exact"),
    ("Anxiety", "mafw", "anxiety", "exact"),
    ("nervous", "mafw", "anxiety", "exact"),
    ("Helplessness", "mafw", "helplessness", "exact"),
    ("Disappointment", "mafw", "disappointment", "exact"),
    # Chinese label words (CJK characters are tokens of their own)
    ("快乐", "dfew", "happy", "exact"),
    ("高兴。", "dfew", "happy", "exact"),
    ("伤心", "dfew", "sad", "exact"),
    ("生气", "dfew", "angry", "exact"),
    ("惊讶", "dfew", "surprise", "exact"),
    ("害怕", "dfew", "fear", "exact"),
    ("厌恶", "dfew", "disgust", "exact"),
    ("平静", "dfew", "neutral", "exact"),
    ("中性", "mafw", "neutral", "exact"),
    ("高兴", "mafw", "happiness", "exact"),
    ("悲伤", "mafw", "sadness", "exact"),
    ("愤怒", "mafw", "anger", "exact"),
    ("恐惧", "mafw", "fear", "exact"),
    ("蔑视", "mafw", "contempt", "exact"),
    ("轻蔑", "mafw", "contempt", "exact"),
    ("焦虑", "mafw", "anxiety", "exact"),
    ("无助", "mafw", "helplessness", "exact"),  # one word, not the cue 无 + 助
    ("失望", "mafw", "disappointment", "exact"),
    # --- label-in-text: one class inside a longer answer
    ("The emotion is happy.", "dfew", "happy", "label-in-text"),
    ("The person appears to be sad.", "dfew", "sad", "label-in-text"),
    ("Emotion: Angry", "dfew", "angry", "label-in-text"),
    ("Answer: surprise", "dfew", "surprise", "label-in-text"),
    ("I think the person is feeling fear.", "dfew", "fear", "label-in-text"),
    ("Based on the frames, the emotion is: Disgust", "dfew", "disgust", "label-in-text"),
    ("The correct choice is (Neutral).", "dfew", "neutral", "label-in-text"),
    ("happy - the person smiles broadly", "dfew", "happy", "label-in-text"),
    ("The person looks happy; happiness is evident.", "dfew", "happy", "label-in-text"),  # one class, two words
    ("1. Happy", "dfew", "happy", "label-in-text"),
    ("The man is furious", "dfew", "angry", "label-in-text"),
    ("Emotion Labels choices: Sad", "dfew", "sad", "label-in-text"),
    ("**Emotion:** Happiness", "dfew", "happy", "label-in-text"),
    ("Emotion: Fear", "dfew", "fear", "label-in-text"),
    ("The person appears surprised.", "dfew", "surprise", "label-in-text"),
    ("The person appears to be disgusted by something.", "dfew", "disgust", "label-in-text"),
    ("It seems that the person might be feeling sad.", "dfew", "sad", "label-in-text"),  # hedged, but alone
    ("Based on the furrowed brows and clenched jaw, the person appears angry.", "dfew", "angry", "label-in-text"),
    ("Angry. The eyebrows are lowered and the lips are pressed together.", "dfew", "angry", "label-in-text"),
    ('The answer is "surprise".', "dfew", "surprise", "label-in-text"),
    ("Final answer: 'Neutral'", "dfew", "neutral", "label-in-text"),
    ("- Emotion: Sad\n- Confidence: high", "dfew", "sad", "label-in-text"),
    ("1. Emotion: happy\n2. Reason: the person is smiling", "dfew", "happy", "label-in-text"),
    ("Emotion: calm", "dfew", "neutral", "label-in-text"),
    # negation is scoped to its clause: a negated mention is dropped, the other one stays
    ("I am not sure. Fear", "dfew", "fear", "label-in-text"),
    ("I can't be certain, but the person looks scared.", "dfew", "fear", "label-in-text"),
    ("The person is not angry; they look sad.", "dfew", "sad", "label-in-text"),
    ("not happy, rather sad", "dfew", "sad", "label-in-text"),
    ("The person does not look happy, rather sad", "dfew", "sad", "label-in-text"),
    ("Answer: sad. Not happy.", "dfew", "sad", "label-in-text"),
    ("She isn't surprised, she is afraid.", "dfew", "fear", "label-in-text"),
    ("The wide eyes suggest fear rather than surprise.", "dfew", "fear", "label-in-text"),
    ("Instead of anger, the face shows disgust.", "dfew", "disgust", "label-in-text"),
    ("Not neutral but happy", "dfew", "happy", "label-in-text"),
    ("The person shows no sign of anger. Emotion: neutral", "dfew", "neutral", "label-in-text"),
    ("The person seems anxious.", "mafw", "anxiety", "label-in-text"),
    ("He feels helpless", "mafw", "helplessness", "label-in-text"),
    ("She is disappointed.", "mafw", "disappointment", "label-in-text"),
    ("The emotion is DISGUST!", "mafw", "disgust", "label-in-text"),
    ("The person appears contemptuous, with one corner of the mouth raised.", "mafw", "contempt", "label-in-text"),
    ("Emotion: **Anxiety**", "mafw", "anxiety", "label-in-text"),
    ("The person seems helpless.", "mafw", "helplessness", "label-in-text"),
    ("She appears disappointed rather than sad.", "mafw", "disappointment", "label-in-text"),
    ("Sad, not disappointed", "mafw", "sadness", "label-in-text"),
    ("The person is scared", "mafw", "fear", "label-in-text"),
    ("这个人看起来很悲伤。", "dfew", "sad", "label-in-text"),
    ("情绪：愤怒", "dfew", "angry", "label-in-text"),
    ("答案：惊讶", "dfew", "surprise", "label-in-text"),
    ("我不确定，可能是恐惧。", "dfew", "fear", "label-in-text"),  # 不 negates only its own clause
    ("他不高兴，而是很生气。", "dfew", "angry", "label-in-text"),
    ("她看起来很开心，因为她在笑。", "dfew", "happy", "label-in-text"),
    ("非常害怕", "dfew", "fear", "label-in-text"),  # 非常 = very, not a negation
    ("他看起来很失望。", "mafw", "disappointment", "label-in-text"),
    # --- clear-choice: hedged or bracketed alternatives do not compete with a plain statement
    ("Emotion: fear (it could look like surprise)", "dfew", "fear", "clear-choice"),
    ("Fear; it could also be surprise", "dfew", "fear", "clear-choice"),
    ("Happy (possibly surprised)", "dfew", "happy", "clear-choice"),
    ("Sadness, maybe anger", "dfew", "sad", "clear-choice"),
    ("The person could be angry, but the drooping mouth shows sadness.", "dfew", "sad", "clear-choice"),
    ("It might be fear or surprise. The answer is fear.", "dfew", "fear", "clear-choice"),
    ("Happy or sad? The person is smiling, so happy.", "dfew", "happy", "clear-choice"),
    ("Disgust. Anger is also possible.", "dfew", "disgust", "clear-choice"),
    ("恐惧（也可能是惊讶）", "dfew", "fear", "clear-choice"),
    ("Sadness, maybe disappointment", "mafw", "sadness", "clear-choice"),
    # --- ambiguous: more than one class, no clear choice
    ("happy or sad", "dfew", None, "ambiguous"),
    ("happiness and surprise", "dfew", None, "ambiguous"),
    ("The person is surprised and happy.", "dfew", None, "ambiguous"),
    ("Angry, Sad", "dfew", None, "ambiguous"),
    ("Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear", "dfew", None, "ambiguous"),
    ("Either fear or surprise", "dfew", None, "ambiguous"),
    ("**Happy** or **Sad**", "dfew", None, "ambiguous"),
    ("The person might be sad or angry.", "dfew", None, "ambiguous"),
    ("Maybe fear, maybe surprise.", "dfew", None, "ambiguous"),
    ("1. Happy\n2. Sad", "dfew", None, "ambiguous"),
    ("- Angry\n- Disgusted", "dfew", None, "ambiguous"),
    ("快乐或悲伤", "dfew", None, "ambiguous"),
    ("惊讶和恐惧", "dfew", None, "ambiguous"),
    ("disappointment or sadness", "mafw", None, "ambiguous"),
    ("Fear and anxiety", "mafw", None, "ambiguous"),
    ("她感到无助和悲伤", "mafw", None, "ambiguous"),
    # --- negated: every mention is negated (never remapped)
    ("not happy", "dfew", None, "negated"),
    ("The person is not angry.", "dfew", None, "negated"),
    ("She isn't sad", "dfew", None, "negated"),
    ("She isn\u2019t sad", "dfew", None, "negated"),  # typographic apostrophe
    ("No fear at all", "dfew", None, "negated"),
    ("never happy", "dfew", None, "negated"),
    ("neither happy nor sad", "dfew", None, "negated"),
    ("She is unhappy", "dfew", None, "negated"),  # un + label word: not sadness
    ("I don't think the person is happy.", "dfew", None, "negated"),
    ("The person shows no signs of fear or anger.", "dfew", None, "negated"),
    ("The person is not happy, not sad.", "dfew", None, "negated"),
    ("没有恐惧", "dfew", None, "negated"),
    ("他不高兴", "dfew", None, "negated"),
    ("not contempt", "mafw", None, "negated"),
    ("他不焦虑", "mafw", None, "negated"),
    ("unhappy", "mafw", None, "negated"),
    # --- no-label: words, but no class word of this label set
    ("None of the above", "dfew", None, "no-label"),
    ("none", "dfew", None, "no-label"),
    ("None.", "mafw", None, "no-label"),
    ("I cannot determine the emotion.", "dfew", None, "no-label"),
    ("I'm not sure.", "dfew", None, "no-label"),
    ("contempt", "dfew", None, "no-label"),  # a MAFW class, not a DFEW one
    ("蔑视", "dfew", None, "no-label"),
    ("The person is smiling", "dfew", None, "no-label"),
    ("happyish", "dfew", None, "no-label"),  # whole words only
    ("sadly", "dfew", None, "no-label"),
    ("ha", "dfew", None, "no-label"),  # abbreviations are not answers
    ("<|im_end|>", "dfew", None, "no-label"),
    ("无法判断", "dfew", None, "no-label"),
    ("boredom", "mafw", None, "no-label"),
    # --- empty: nothing but space, punctuation or markup
    ("", "dfew", None, "empty"),
    ("   ", "dfew", None, "empty"),
    ("...", "dfew", None, "empty"),
    ("\u00bf?", "dfew", None, "empty"),
    ("**", "dfew", None, "empty"),
    ("\n\n", "mafw", None, "empty"),
]


@pytest.mark.parametrize("text,key,label,reason", TABLE)
def test_table(text: str, key: str, label: str | None, reason: str) -> None:
    got = parse_answer_detail(text, SETS[key])
    assert (got.label, got.reason) == (label, reason), text
    assert got.raw == text
    assert got.valid == (label is not None)
    assert parse_answer(text, SETS[key]) == label


def test_table_covers_every_reason() -> None:
    assert {row[3] for row in TABLE} == set(REASONS)
    assert len(set(REASONS)) == len(REASONS)
    assert VALID_REASONS == {r for r in REASONS if any(row[3] == r and row[2] is not None for row in TABLE)}


# Templates whose meaning is fixed by construction: {w} names the class, {o} another one.
TEMPLATES = [
    ("{w}", True, "exact"),
    ("**{W}**", True, "exact"),
    ("The person appears {w}.", True, "label-in-text"),
    ("I am not sure. {W}", True, "label-in-text"),
    ("Not {o}, rather {w}.", True, "label-in-text"),
    ("{W}. The person is not {o}.", True, "label-in-text"),
    ("{W} (it could also be {o})", True, "clear-choice"),
    ("{w} or {o}", False, "ambiguous"),
    ("{w} and {o}", False, "ambiguous"),
    ("The person is not {w}.", False, "negated"),
]


@pytest.mark.parametrize("key", sorted(SETS))
@pytest.mark.parametrize("template,valid,reason", TEMPLATES)
def test_templates_for_every_label_word(key: str, template: str, valid: bool, reason: str) -> None:
    labels = SETS[key]
    names = labels.names
    for k, name in enumerate(names):
        other = names[(k + 1) % len(names)]
        for word in labels.words(name):
            text = template.format(w=word, W=word.upper(), o=other)
            got = parse_answer_detail(text, labels)
            assert (got.label, got.reason) == ((name if valid else None), reason), text


def test_normalize() -> None:
    assert normalize("  Hello,\tWORLD!! ") == "hello world"
    assert normalize("ＡＢＣ") == "abc"
    assert normalize("isn't") == "is not"
    assert normalize("don\u2019t") == "do not"
    assert normalize("can't") == "can not"
    assert normalize("won't") == "will not"
    assert normalize("Straße") == "strasse"  # casefold, not lower
    assert normalize("a—b/c") == "a b c"
    assert normalize("情绪：愤怒。") == "情 绪 愤 怒"
    assert normalize("**Emotion:** (Sad)") == "emotion sad"


def test_none_and_matches() -> None:
    got = parse_answer_detail(None, DFEW)
    assert got.label is None and got.reason == "empty" and got.raw == ""
    amb = parse_answer_detail("sad then happy", DFEW)
    assert amb.matches == ("sad", "happy") and amb.reason == "ambiguous"
    assert not amb.valid
    # negated mentions are listed too, in first-seen order
    assert parse_answer_detail("Answer: sad. Not happy.", DFEW).matches == ("sad", "happy")
    assert parse_answer_detail("None of the above", DFEW).matches == ()


def test_no_guessing_synonyms() -> None:
    for labels in (DFEW, MAFW):
        for word in ("none", "unhappy", "nothing", "other"):
            assert labels.canonical(word) is None, (labels.key, word)


def test_bad_input_raises_msce_errors() -> None:
    with pytest.raises(ConfigError, match="string or None"):
        parse_answer_detail(b"happy", DFEW)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="string or None"):
        parse_answer(3, DFEW)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="LabelSet"):
        parse_answer("happy", "dfew")  # type: ignore[arg-type]
    clash = LabelSet("clash", ("a", "b"), ("A", "B"), ("A", "B"), synonyms={"a": ("x",), "b": ("x",)})
    with pytest.raises(MsceError, match="'x' is a word of both 'a' and 'b'"):
        parse_answer("x", clash)


def test_label_set_without_synonyms() -> None:
    plain = LabelSet("plain", ("calm", "tense"), ("Calm", "Tense"), ("CA", "TE"))
    assert parse_answer("Tense.", plain) == "tense"
    assert parse_answer_detail("calm or tense", plain).reason == "ambiguous"
    assert parse_answer_detail("happy", plain).reason == "no-label"
