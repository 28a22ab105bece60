"""A model-free stepped strategy and a recording backend for the pipelined-runner tests
(also imported by the child process of the kill -9 test)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from msce.labels import LabelSet
from msce.models.backends.base import GenerationParams
from msce.models.strategies import ModelStep, StrategyResult, drive_steps

P1 = GenerationParams(max_new_tokens=16)
P2 = GenerationParams(max_new_tokens=8)


def unit(text: str) -> float:
    """A deterministic number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


class EchoBackend:
    """Answers from the request text alone; records every generate call (its first texts).

    ``describe ...`` -> ``motion-<digest>``; ``classify ...`` -> one of ``answers`` chosen
    by the digest of the text (or ``"no idea"`` for about 1 in 10). ``call_s``: seconds
    slept per generate call (a model that takes its time, however many requests).
    """

    model_id = "fake/echo"

    def __init__(self, answers: tuple[str, ...] = ("happy", "sad", "angry"), call_s: float = 0.0):
        self.answers = answers
        self.call_s = call_s
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def fingerprint(self) -> dict:
        return {"echo": 1}

    def target(self):
        return None

    def generate(self, requests, params):
        with self._lock:
            self.calls.append([r[0] for r in requests])
        if self.call_s:
            time.sleep(self.call_s)
        out = []
        for r in requests:
            text = " ".join(p for p in r if isinstance(p, str))
            if text.startswith("describe"):
                out.append("motion-" + hashlib.sha256(text.encode()).hexdigest()[:6])
            elif unit("x" + text) < 0.1:
                out.append("no idea")
            else:
                out.append(self.answers[int(unit(text) * len(self.answers))])
        return out


class SteppedFake:
    """MSCE-shaped: decode (``decode_s`` x a per-video fraction of sleep), stage 1 with 0-2
    ``describe`` requests (P1), stage 2 with one ``classify`` request (P2).

    ``fail_on``: file names whose decoding raises DecodeError; ``boom_on``: file names
    whose decoding raises RuntimeError (not a media error); ``hold``: ``(file name,
    predictions path, lines, ready path)``: decoding that video waits until the
    predictions file holds ``lines`` lines, creates ``ready`` and then waits forever.
    """

    name = "stepped-fake"

    def __init__(self, decode_s: float = 0.0, fail_on: tuple[str, ...] = (), boom_on: tuple[str, ...] = (),
                 hold: tuple[str, str, int, str] | None = None):
        self.decode_s = decode_s
        self.fail_on = set(fail_on)
        self.boom_on = set(boom_on)
        self.hold = hold

    def config(self) -> dict:
        return {"name": self.name, "fps": 1.0}

    def run(self, video, labels: LabelSet, backend, cache=None, *, sample_id=None) -> StrategyResult:
        return drive_steps(self.steps(video, labels, backend, sample_id=sample_id), backend, cache)

    def steps(self, video, labels: LabelSet, backend, *, sample_id=None):
        start = time.perf_counter()
        key = Path(video).name
        if self.hold is not None and key == self.hold[0]:
            pred, lines, ready = Path(self.hold[1]), int(self.hold[2]), self.hold[3]
            while not pred.exists() or pred.read_bytes().count(b"\n") < lines:
                time.sleep(0.01)
            Path(ready + ".tmp").write_text(str(os.getpid()))
            os.replace(ready + ".tmp", ready)
            while True:
                time.sleep(1.0)
        if self.decode_s:
            time.sleep(self.decode_s * unit("d" + key))
        if key in self.fail_on:
            from msce.errors import DecodeError

            raise DecodeError(f"cannot decode {video}")
        if key in self.boom_on:
            raise RuntimeError(f"strategy bug on {video}")
        n_gaps = int(unit("g" + key) * 3)
        stage1 = [[f"describe {key} gap {j}"] for j in range(n_gaps)]
        gen1 = yield ModelStep(stage1, P1)
        prompt = f"classify {key} after {'|'.join(gen1.texts)} sid={sample_id}"
        gen2 = yield ModelStep([[prompt]], P2)
        raw = gen2.texts[0]
        parsed = raw if raw in labels.names else None
        return StrategyResult(
            raw_answer=raw, parsed=parsed, frame_indices=[0, 10], timestamps=[0.0, 1.0],
            prompts=[r[0] for r in stage1] + [prompt], stage1=list(gen1.texts), visual_tokens=7,
            model_calls=gen1.model_calls + gen2.model_calls, cache_hits=gen1.cache_hits + gen2.cache_hits,
            latency_s=time.perf_counter() - start, strategy=self.name, parse_reason="test",
            model_requests=gen1.model_requests + gen2.model_requests,
        )
