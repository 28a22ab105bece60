"""Rendered prompts are snapshot-tested: the exact text is stored in tests/snapshots/.

To rewrite the snapshots on purpose (after adding a prompt version or changing a
renderer), run ``MSCE_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_prompts.py`` and review
the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msce.errors import ConfigError
from msce.labels import DFEW, MAFW
from msce.prompts import PromptSet, Visual, as_text, available_versions, get_prompts

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"
UPDATE = os.environ.get("MSCE_UPDATE_SNAPSHOTS") == "1"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return
    assert path.is_file(), f"missing snapshot {path}; run with MSCE_UPDATE_SNAPSHOTS=1 to create it"
    assert text == path.read_bytes().decode("utf-8"), f"prompt differs from snapshot {path.name}"


CASES = {
    "classify_video": lambda p, labels: p.classify(labels, "video"),
    "classify_image": lambda p, labels: p.classify(labels, "image"),
    "stage1_m4": lambda p, labels: p.stage1(4),
    "stage2_n1": lambda p, labels: p.stage2([], labels),
    "stage2_n3": lambda p, labels: p.stage2(
        ["The eyebrows rise briefly.", "The lips press together\nand relax."], labels),
    "stage2_n3_empty_gap": lambda p, labels: p.stage2([None, "The mouth corners turn down."], labels),
}


@pytest.mark.parametrize("labels", [DFEW, MAFW], ids=lambda ls: ls.key)
@pytest.mark.parametrize("case", sorted(CASES))
def test_snapshot_v1(case: str, labels) -> None:
    rendered = CASES[case](get_prompts("v1"), labels)
    check_snapshot(f"prompt_v1_{case}_{labels.key}", as_text(rendered))


def test_versions() -> None:
    assert "v1" in available_versions()
    with pytest.raises(ConfigError):
        PromptSet(version="v999")


def test_stage2_interleaves_keyframes_and_motions() -> None:
    motions = ["t1", "t2", "t3"]
    parts = get_prompts().stage2(motions, DFEW)
    visuals = [p for p in parts if isinstance(p, Visual)]
    assert [v.ref for v in visuals] == [0, 1, 2, 3]
    assert all(v.kind == "image" for v in visuals)
    # k1, t1, k2, t2, k3, t3, k4: each motion text sits between its two keyframes
    texts = [p for p in parts if isinstance(p, str)]
    assert len(texts) == len(visuals) + 1
    for j, m in enumerate(motions):
        assert f"Motion: {m}" in texts[j + 1]
        assert f"FrameID {j + 2}:" in texts[j + 1]
    assert texts[0].startswith("Analyze the following sequence of sparse keyframes")
    assert texts[-1].endswith("Emotion Labels choices: Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear")


def test_parts_alternate_text_and_visuals() -> None:
    parts = get_prompts().stage2(["a", "b"], MAFW)
    for a, b in zip(parts, parts[1:]):
        assert not (isinstance(a, str) and isinstance(b, str))


def test_question_override() -> None:
    p = PromptSet(question="How does the person feel?")
    assert "Question: How does the person feel?" in as_text(p.classify(DFEW))
    assert p.config() == {"version": "v1", "question": "How does the person feel?"}


def test_template_files_have_no_stray_braces() -> None:
    t = get_prompts().templates
    assert set(t) >= {"question", "answer", "stage1", "stage2_intro", "stage2_keyframe", "stage2_motion"}
    # motion text with braces must pass through verbatim
    text = as_text(get_prompts().stage2(["{odd} {braces}"], DFEW))
    assert "Motion: {odd} {braces}," in text
