"""Rendered prompts are snapshot-tested: the exact text is stored in tests/snapshots/.

To rewrite the snapshots on purpose (after adding a prompt version or changing a
renderer), run ``MSCE_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_prompts.py``: every test
whose snapshot was rewritten fails ("snapshot rewritten"), so an update never passes
unnoticed (in CI either). Review the diff, then rerun without the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msce.errors import ConfigError
from msce.labels import DFEW, MAFW
from msce.models.prompts import PromptSet, Visual, as_text, available_versions, get_prompts

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"
UPDATE = os.environ.get("MSCE_UPDATE_SNAPSHOTS") == "1"


def check_snapshot(name: str, text: str, root: Path | None = None, update: bool | None = None) -> None:
    """``text`` must equal the stored snapshot. With MSCE_UPDATE_SNAPSHOTS=1 a missing or
    different snapshot is rewritten and the test FAILS (a rewrite is never a pass: review the
    diff, then rerun without the variable); an unchanged one passes."""
    path = (SNAPSHOTS if root is None else root) / f"{name}.txt"
    stored = path.read_bytes().decode("utf-8") if path.is_file() else None
    if UPDATE if update is None else update:
        if stored == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        pytest.fail(f"snapshot rewritten: {path.name}; review the diff, then rerun without MSCE_UPDATE_SNAPSHOTS",
                    pytrace=False)
    assert stored is not None, f"missing snapshot {path}; run with MSCE_UPDATE_SNAPSHOTS=1 to create it"
    assert text == stored, f"prompt differs from snapshot {path.name}"


def test_snapshot_update_fails_after_rewriting(tmp_path) -> None:
    with pytest.raises(pytest.fail.Exception, match="snapshot rewritten: new.txt"):
        check_snapshot("new", "first\n", root=tmp_path, update=True)  # created: not a pass
    assert (tmp_path / "new.txt").read_bytes() == b"first\n"
    check_snapshot("new", "first\n", root=tmp_path, update=True)  # unchanged: passes
    check_snapshot("new", "first\n", root=tmp_path, update=False)
    with pytest.raises(AssertionError, match="differs from snapshot new.txt"):
        check_snapshot("new", "second\n", root=tmp_path, update=False)
    with pytest.raises(pytest.fail.Exception, match="rerun without MSCE_UPDATE_SNAPSHOTS"):
        check_snapshot("new", "second\n", root=tmp_path, update=True)  # changed: rewritten, fails
    assert (tmp_path / "new.txt").read_bytes() == b"second\n"
    with pytest.raises(AssertionError, match="missing snapshot"):
        check_snapshot("absent", "x", root=tmp_path, update=False)


CASES = {
    "classify_video": lambda p, labels: p.classify(labels, "video"),
    "classify_image": lambda p, labels: p.classify(labels, "image"),
    "stage1_m4": lambda p, labels: p.stage1(4),
    "stage2_n1": lambda p, labels: p.stage2([], labels),
    "stage2_n3": lambda p, labels: p.stage2(
        ["The eyebrows rise briefly.", "The lips press together\nand relax."], labels),
    "stage2_n3_empty_gap": lambda p, labels: p.stage2([None, "The mouth corners turn down."], labels),
    # msce's controls: keyframes alone (sparse-images), neutral gap text (msce-notext)
    "keyframes_n1": lambda p, labels: p.keyframes(1, labels),
    "keyframes_n3": lambda p, labels: p.keyframes(3, labels),
    "stage2_notext_n3": lambda p, labels: p.stage2_neutral([True, True], labels),
    "stage2_notext_n3_empty_gap": lambda p, labels: p.stage2_neutral([False, True], labels),
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


def test_control_prompts() -> None:
    p = get_prompts()
    parts = p.keyframes(4, DFEW)
    assert [v.ref for v in parts if isinstance(v, Visual)] == [0, 1, 2, 3]
    assert all(v.kind == "image" for v in parts if isinstance(v, Visual))
    text = as_text(parts)
    assert "Motion" not in text and text.count("<image>") == 4
    # msce-notext: exactly MSCE's stage 2 with the neutral sentence in place of each description
    neutral = p.neutral_motion()
    assert neutral == "No motion description is available for this gap."
    assert p.stage2_neutral([True, False, True], MAFW) == p.stage2([neutral, None, neutral], MAFW)
    with pytest.raises(ConfigError):
        p.keyframes(0, DFEW)
