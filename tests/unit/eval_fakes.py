"""Model-free stand-ins for the strategy/backend contract, and fixture-tree builders,
shared by the evaluation-harness tests (and run as a child process by the crash test)."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msce.labels import LabelSet


@dataclass
class FakeResult:
    raw_answer: str
    parsed: str | None
    frame_indices: list[int]
    timestamps: list[float]
    prompts: list[str]
    stage1: list[str] = field(default_factory=list)
    visual_tokens: int = 0
    model_calls: int = 1
    cache_hits: int = 0
    latency_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class FakeBackend:
    model_id = "fake/tiny-model"

    def __init__(self, model: str = "fake/tiny-model", **options):
        self.model_id = model
        self.options = options

    def fingerprint(self) -> dict:
        return {"dtype": "none"}

    def target(self):
        return None

    def generate(self, requests, params):  # pragma: no cover - the fake strategy never calls it
        return ["neutral" for _ in requests]


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


class FakeStrategy:
    """Answers from an oracle ``truth`` (file name -> label; default: the parent folder's
    name): right with probability ``accuracy``, unparseable with probability ``invalid``,
    else a wrong class.

    ``kill_at``: SIGKILL this process when asked for that video (1-based call count);
    ``sleep``: seconds per video; ``fail_on``: file names that raise DecodeError.
    """

    def __init__(self, truth: dict[str, str] | None = None, accuracy: float = 0.6, invalid: float = 0.1,
                 salt: str = "", kill_at: int | None = None, sleep: float = 0.0, fps: float = 1.0,
                 name: str = "fake", fail_on: tuple[str, ...] = ()):
        self.name = name
        self.fail_on = set(fail_on)
        self.truth = truth
        self.accuracy = accuracy
        self.invalid = invalid
        self.salt = salt
        self.kill_at = kill_at
        self.sleep = sleep
        self.fps = fps
        self.calls = 0

    def config(self) -> dict:
        return {"name": self.name, "fps": self.fps, "accuracy": self.accuracy, "invalid": self.invalid,
                "salt": self.salt}

    def run(self, video, labels: LabelSet, backend, cache=None) -> FakeResult:
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.sleep:
            time.sleep(self.sleep)
        key = Path(video).name
        if key in self.fail_on:
            from msce.errors import DecodeError

            raise DecodeError(f"cannot decode {video}: invalid data found when processing input")
        true = self.truth[key] if self.truth is not None else Path(video).parent.name.lower()
        u = _unit(self.salt + key)
        if u < self.invalid:
            answer, parsed = "I cannot tell.", None
        elif u < self.invalid + self.accuracy:
            answer, parsed = f"The emotion is {true}.", true
        else:
            others = [n for n in labels.names if n != true]
            parsed = others[int(_unit("w" + self.salt + key) * len(others))]
            answer = parsed.capitalize()
        return FakeResult(
            raw_answer=answer,
            parsed=parsed,
            frame_indices=[0, 25, 50],
            timestamps=[0.0, 1.0, 2.0],
            prompts=[f"Which emotion? Options: {', '.join(labels.names)}"],
            visual_tokens=3 * 64,
            latency_s=0.001,
        )


def make_generic_tree(root: Path, per_class: dict[str, int]) -> dict[str, str]:
    """``root/<label>/<label>_<i>.mp4`` (fake bytes); returns file name -> label."""
    truth = {}
    for label, n in per_class.items():
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{label}_{i:03d}.mp4"
            (d / name).write_bytes(b"\x00\x00\x00\x18ftypmp42")
            truth[name] = label
    return truth
