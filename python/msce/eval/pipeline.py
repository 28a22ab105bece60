"""The pipelined executor behind :func:`msce.eval.runner.run_eval`: decoding ahead, many
videos' model requests in flight or in one batch, outcomes in sample order.

Three bounded thread pools share the work of one run:

* **decode** (``decode_workers`` threads): opens a video's ``strategy.steps(...)``
  generator and runs it to its first :class:`~msce.models.strategies.ModelStep`, i.e.
  decoding and preprocessing (the native core releases the GIL, so these threads run in
  parallel with each other and with the model);
* **model** (``concurrency`` threads): answers steps with the response cache and ONE
  ``backend.generate`` per group (:func:`answer_steps`), then advances each member's
  generator to its next step or its result;
* the calling thread schedules and hands back :class:`Outcome` objects strictly in
  sample order, however the work completes.

At most ``prefetch`` videos are in flight (started and not yet handed back), so memory
stays bounded by ``prefetch`` videos' frames whatever the dataset size.

Grouping. With ``batch_size == 1`` every step is its own generate call, exactly the call
the sequential runner makes, dispatched as soon as a model thread is free (requests of
up to ``concurrency`` videos in flight at once: what an HTTP server wants). With
``batch_size = B > 1`` the videos left to run are cut into chunks of B consecutive ones;
when every unfinished member of a chunk waits on a step, the steps of the lowest stage
(ties: the first member's) that share generation parameters go into one generate call
(MSCE: the stage-1 gap requests of B videos, then their stage-2 requests). Which videos
share a batch therefore depends only on the list of videos left to run and on the cache,
never on timing; a batched call left-pads its prompts (docs/evaluation.md, "Throughput").

Strategies without ``steps`` (written to the plain contract) run whole in a model thread:
``concurrency`` of them at once, no batching.

Errors. An exception of one video becomes that video's Outcome (in order); a model error
becomes the Outcome of every video of the group. Once ``fatal(exc)`` says an outcome
stops the run, no later video is started; the earlier ones finish and are handed back
first, as in the sequential runner. Closing the iterator early cancels queued work and
waits for running work to end.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

from msce.errors import BackendError, ConfigError
from msce.io.damage import unwatch_damage, watch_damage
from msce.models.cache import CachedGeneration, generate_cached, request_key
from msce.models.strategies.base import ModelStep

__all__ = ["Execution", "Outcome", "answer_steps", "run_pipelined"]


def _usable_cpus() -> int:
    """CPUs this process may use (affinity, container quota): the native core's count."""
    from msce._native import C
    return int(C.usable_cpus())


@dataclass(frozen=True)
class Execution:
    """How :func:`msce.eval.runner.run_eval` executes a run (recorded in every session).

    ``batch_size``: videos whose model steps share one generate call; ``concurrency``:
    generate calls in flight at once (threads); ``prefetch``: videos in flight at most
    (decoded or decoding, waiting on the model, or finished but waiting for an earlier
    one to be written; default ``2 * max(batch_size, concurrency, 2)``);
    ``decode_workers``: decoding threads (default ``min(prefetch, cpu count, 8)``).
    All 1 / None = the sequential runner.
    """

    batch_size: int = 1
    concurrency: int = 1
    prefetch: int | None = None
    decode_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency", "prefetch", "decode_workers"):
            v = getattr(self, name)
            if v is None and name in ("prefetch", "decode_workers"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if self.prefetch is not None and self.prefetch < self.batch_size:
            raise ConfigError(f"prefetch ({self.prefetch}) must be >= batch_size ({self.batch_size}): a batch "
                              f"needs all its videos in flight")

    @property
    def sequential(self) -> bool:
        return (self.batch_size, self.concurrency, self.prefetch, self.decode_workers) == (1, 1, None, None)

    def resolved(self) -> "Execution":
        prefetch = self.prefetch or 2 * max(self.batch_size, self.concurrency, 2)
        workers = self.decode_workers or max(1, min(prefetch, _usable_cpus(), 8))
        return Execution(self.batch_size, self.concurrency, prefetch, workers)

    def to_dict(self) -> dict:
        if self.sequential:
            return {"mode": "sequential"}
        return {"mode": "pipelined", **asdict(self.resolved())}


@dataclass
class Outcome:
    """One video's end: ``result`` (what the strategy returned) or ``error``; ``wall_s``
    from its start (decoding) to its end, waits included."""

    position: int
    result: Any = None
    error: BaseException | None = None
    wall_s: float = 0.0
    damaged_frames: int | None = None  # frames its loads decoded that the decoder flagged (msce.io.damage)


def answer_steps(backend: Any, steps: Sequence[ModelStep], cache: Any) -> list[CachedGeneration]:
    """Answer several videos' steps (same params) with the cache and ONE generate call.

    Each step gets the :class:`CachedGeneration` that :func:`generate_cached` would have
    given it alone, run after the steps before it: a request that an earlier step of the
    group also misses is sent once and counts as a cache hit of the later step (the
    sequential runner would have found it cached). ``model_calls`` is 1 for a step with
    a request the model answered, else 0.
    """
    if not steps:
        return []
    if len(steps) == 1:
        return [generate_cached(backend, steps[0].requests, steps[0].params, cache)]
    params = steps[0].params
    if any(s.params != params for s in steps):
        raise ConfigError("answer_steps needs steps with the same generation parameters")
    if cache is None:
        flat = [r for s in steps for r in s.requests]
        texts = list(backend.generate(flat, params)) if flat else []
        _check_count(texts, flat)
        out, k = [], 0
        for s in steps:
            n = len(s.requests)
            out.append(CachedGeneration(texts[k:k + n], [False] * n, 1 if n else 0))
            k += n
        return out
    fp = backend.fingerprint()
    digests: dict[int, str] = {}
    keys = [[request_key(backend.model_id, fp, r, params, digests) for r in s.requests] for s in steps]
    texts = [[cache.get(k) for k in ks] for ks in keys]
    owner: dict[str, int] = {}  # key -> step that sends it
    send: list[tuple[int, int]] = []  # (step, request) sent to the model, in order
    hit = [[t is not None for t in ts] for ts in texts]
    for i, ks in enumerate(keys):
        for j, k in enumerate(ks):
            if texts[i][j] is not None:
                continue
            first = owner.setdefault(k, i)
            if first == i:
                send.append((i, j))
            else:
                hit[i][j] = True  # answered by an earlier video of this group
    answers = list(backend.generate([steps[i].requests[j] for i, j in send], params)) if send else []
    _check_count(answers, send)
    answered: dict[str, str] = {}
    for (i, j), a in zip(send, answers):
        texts[i][j] = a
        answered.setdefault(keys[i][j], a)
        cache.put(keys[i][j], a, backend.model_id)
    calls = [0] * len(steps)
    for i, _ in send:
        calls[i] = 1
    out = []
    for i, ks in enumerate(keys):
        ts = [texts[i][j] if texts[i][j] is not None else answered[k] for j, k in enumerate(ks)]
        out.append(CachedGeneration(ts, hit[i], calls[i]))
    return out


def _check_count(answers: list, sent: list) -> None:
    if len(answers) != len(sent):
        raise BackendError(f"backend returned {len(answers)} answers for {len(sent)} requests")


class _Video:
    __slots__ = ("pos", "sample", "gen", "step", "stage", "t0")

    def __init__(self, pos: int, sample: Any):
        self.pos = pos
        self.sample = sample
        self.gen: Any = None
        self.step: ModelStep | None = None
        self.stage = 0
        self.t0 = time.perf_counter()


_PREP, _WAIT, _MODEL, _DONE = "prep", "wait", "model", "done"


def run_pipelined(samples: Sequence[Any], strategy: Any, labels: Any, backend: Any, cache: Any,
                  execution: Execution, *, pass_id: bool = False,
                  fatal: Callable[[BaseException], bool] = lambda exc: True) -> Iterator[Outcome]:
    """Run ``strategy`` over ``samples`` (objects with ``path`` and ``id``) and yield one
    :class:`Outcome` per sample, in sample order (see the module docstring).

    ``pass_id``: call a plain ``run`` with ``sample_id=`` (``steps`` always gets it);
    ``fatal(exc)``: whether an error stops the run (no later video is started).
    """
    ex = execution.resolved()
    stepped = callable(getattr(strategy, "steps", None))
    n = len(samples)
    events: queue.SimpleQueue = queue.SimpleQueue()
    decode_pool = ThreadPoolExecutor(ex.decode_workers, thread_name_prefix="msce-decode")
    model_pool = ThreadPoolExecutor(ex.concurrency, thread_name_prefix="msce-model")
    state: list[str] = [_PREP] * n
    videos: dict[int, _Video] = {}
    finished: dict[int, Outcome] = {}
    busy = 0  # model threads in use
    started = 0
    stop_at = n  # positions from here on are never started (a fatal error came first)
    given = 0  # outcomes handed back

    def advance(v: _Video, answer: CachedGeneration | None) -> tuple:
        """Run v's generator to its next non-empty step or its end (in a worker)."""
        try:
            while True:
                step = v.gen.send(answer)
                if not isinstance(step, ModelStep):
                    raise ConfigError(f"a strategy's steps() yielded {type(step).__name__}; expected a ModelStep")
                v.stage += 1
                if step.requests:
                    return ("step", v, step)
                answer = CachedGeneration([], [], 0)
        except StopIteration as stop:
            return ("done", v, stop.value, None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in order
            return ("done", v, None, exc)

    def prepare(v: _Video) -> None:
        try:
            sid = str(v.sample.id)
            v.gen = strategy.steps(v.sample.path, labels, backend, sample_id=sid)
        except BaseException as exc:  # noqa: BLE001
            events.put(("done", v, None, exc))
            return
        events.put(advance(v, None))

    def run_whole(v: _Video) -> None:
        try:
            if pass_id:
                res = strategy.run(v.sample.path, labels, backend, cache, sample_id=str(v.sample.id))
            else:
                res = strategy.run(v.sample.path, labels, backend, cache)
        except BaseException as exc:  # noqa: BLE001
            events.put(("done", v, None, exc))
        else:
            events.put(("done", v, res, None))
        events.put(("free",))

    def answer_group(group: list[_Video]) -> None:
        try:
            gens = answer_steps(backend, [v.step for v in group], cache)
        except BaseException as exc:  # noqa: BLE001 - every member fails with the model
            for v in group:
                v.gen.close()
                events.put(("done", v, None, exc))
        else:
            for v, g in zip(group, gens):
                events.put(advance(v, g))
        events.put(("free",))

    def submit(group: list[_Video]) -> None:
        nonlocal busy
        busy += 1
        for v in group:
            state[v.pos] = _MODEL
        model_pool.submit(answer_group, group)

    def chunk_group(c: int) -> list[_Video] | None:
        """The next group of chunk c, when every unfinished member waits on a step."""
        lo, hi = c * ex.batch_size, min((c + 1) * ex.batch_size, n)
        waiting = []
        for p in range(lo, hi):
            if p >= stop_at or state[p] == _DONE:
                continue
            if p >= started or state[p] != _WAIT:
                return None
            waiting.append(videos[p])
        if not waiting:
            return None
        lead = min(waiting, key=lambda v: (v.stage, v.pos))
        return [v for v in waiting if v.stage == lead.stage and v.step.params == lead.step.params]

    def dispatch() -> None:
        if not stepped:
            return
        pending = sorted(p for p, v in videos.items() if state[p] == _WAIT)
        if ex.batch_size == 1:
            for p in pending:
                if busy >= ex.concurrency:
                    return
                submit([videos[p]])
            return
        for c in sorted({p // ex.batch_size for p in pending}):
            if busy >= ex.concurrency:
                return
            group = chunk_group(c)
            if group:
                submit(group)

    def start(p: int) -> None:
        nonlocal busy
        v = _Video(p, samples[p])
        videos[p] = v
        watch_damage(v.sample.path)
        if stepped:
            decode_pool.submit(prepare, v)
        else:
            busy += 1
            state[p] = _MODEL
            model_pool.submit(run_whole, v)

    def finish(v: _Video, result: Any, error: BaseException | None) -> None:
        nonlocal stop_at
        state[v.pos] = _DONE
        videos.pop(v.pos, None)
        finished[v.pos] = Outcome(v.pos, result, error, time.perf_counter() - v.t0,
                                  unwatch_damage(v.sample.path))
        if error is not None and fatal(error):
            stop_at = min(stop_at, v.pos + 1)

    try:
        while given < min(n, stop_at):
            if given in finished:
                yield finished.pop(given)
                given += 1
                continue
            while started < min(n, stop_at) and started - given < ex.prefetch and (stepped or busy < ex.concurrency):
                start(started)
                started += 1
            dispatch()
            event = events.get()
            kind = event[0]
            if kind == "free":
                busy -= 1
            elif kind == "step":
                _, v, step = event
                v.step = step
                state[v.pos] = _WAIT
            else:
                _, v, result, error = event
                finish(v, result, error)
    finally:
        decode_pool.shutdown(wait=True, cancel_futures=True)
        model_pool.shutdown(wait=True, cancel_futures=True)
        for v in videos.values():
            unwatch_damage(v.sample.path)
            if v.gen is not None:
                v.gen.close()
