"""Evaluation runs on a Ray cluster (``msce eval --ray``, ``msce sweep --ray``): the run
directory :func:`msce.eval.runner.run_eval` writes, with the videos spread over Ray workers.

:func:`run_ray` is ``run_eval`` with a :class:`RayExecutor`: the driver keeps everything
that touches the run directory (config, resume, the one :class:`~msce.eval.runlog.PredictionLog`,
errors, metrics) and Ray only computes outcomes, so ``msce report`` and resuming work as for
a local run.

Data flow (Ray Data)::

    videos left to run (driver) -> from_items, one block per task of ``task_videos`` videos
      -> map_batches(_VideoWorker): decode + preprocess (msce's native core) and the strategy
      -> rows (position, pickled outcome) -> driver: in sample order, once each -> the log

``decode="model"`` (the default of one run): the ``_VideoWorker`` actors ARE the model actors (a fixed
pool of ``workers`` actors, ``num_gpus=gpus`` each). Each task runs its videos with the
in-process executor of :mod:`msce.eval.pipeline`, so a worker decodes upcoming videos in
native threads while its model works, and ``batch_size``/``concurrency``/``prefetch`` apply
inside every worker. ``decode="workers"``: Ray tasks (CPU, warm worker processes) decode and
drive the strategies, and every model step travels as preprocessed tensors through Ray's
object store to a separate pool of ``model_actors`` model actors, which live as long as the
executor (a sweep keeps them for all of a model's runs: the default of ``msce sweep --ray``).
bench/README.md measures both with the tiny model and the 1-s HTTP server: a single run is
dominated by starting the workers either way (neither mode was consistently faster), while a
second run on the same executor, possible only with ``decode="workers"`` (Ray Data starts an
actor pool afresh for every dataset), runs within 20-40 % of the in-process executor. So one
run decodes where its model runs (no frames cross processes or nodes), and a sweep ships
tensors to model actors that it loads once per model.

MSCE's two stages: a video's whole strategy runs in one task (its ``steps`` generator lives
in one worker: stage 2, which needs stage 1's answers, follows in the same place), in both
modes. Chaining the stages as separate Ray Data stages would ship every video's decoded
keyframes twice and need the strategy's state serialised between them.

Exactly once. A worker that dies (killed, out of memory, node lost) is restarted by Ray and
its task is run again from the start (Ray Data's actor pool: ``max_restarts=-1``,
``max_task_retries=-1``); a failed attempt returns no rows, so its videos come back once, from
the retry. The driver is the only writer: it keeps the rows of each position (= sample id:
ids are unique within a run) it has not handed on yet, hands them to the runner strictly in
sample order, and drops any second row of a position (``RayExecutor.duplicates_dropped``);
:meth:`PredictionLog.append` refuses an id already in the file besides. An error of one
video (a media error with ``on_error="skip"``, or any error that stops the run) travels as
that video's outcome, exactly as in the local runner.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from msce.errors import ConfigError, MsceError
from msce.eval.pipeline import Execution, Outcome, run_pipelined
from msce.eval.runner import EvalResult, _backend_config, _result_dict, run_eval

__all__ = ["BackendSpec", "RayOptions", "RayExecutor", "run_ray", "require_ray", "INSTALL_HINT", "DECODE_MODES"]

INSTALL_HINT = "pip install 'msce[ray]'"
DECODE_MODES = ("model", "workers")
#: Backends that hold a model in the worker's memory (they get a GPU each when the cluster has GPUs).
LOCAL_MODEL_BACKENDS = ("transformers", "classifier")
#: Generate calls a model actor of any other backend (a server client) serves at once (``decode="workers"``).
SERVER_CALLS_PER_ACTOR = 16


def require_ray() -> Any:
    """The ``ray`` module (with Ray Data), or ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"running on Ray needs Ray with Ray Data, which is not installed here ({exc}); "
                          f"install it with: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class BackendSpec:
    """A backend built on each Ray worker: ``msce.models.backends.get_backend(name, **options)``
    (``name``: a registered name or ``package.module:Class``). The driver never loads the model."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        from msce.models.backends import get_backend

        return get_backend(self.name, **dict(self.options))


@dataclass(frozen=True)
class RayOptions:
    """Where and how a run uses Ray.

    ``address``: None = ``RAY_ADDRESS`` or a new local Ray on this machine; ``"auto"`` = the
    cluster this machine joined with ``ray start``; ``"host:6379"`` or ``"ray://host:10001"``.
    ``workers``: Ray Data workers (model actors with ``decode="model"``); ``gpus``: GPUs per
    model actor (None: 1 for a local-model backend when the cluster has GPUs, else 0);
    ``cpus``: CPUs per worker; ``task_videos``: videos per Ray task (a retried task reruns
    them all); ``model_actors``: the model pool of ``decode="workers"`` (default ``workers``).
    """

    address: str | None = None
    workers: int = 2
    gpus: float | None = None
    cpus: float = 1.0
    decode: str | None = None  # None: "model" (a sweep makes it "workers")
    task_videos: int = 8
    model_actors: int | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "task_videos", "model_actors"):
            v = getattr(self, name)
            if v is None and name == "model_actors":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"ray {name} must be a positive int, got {v!r}")
        for name in ("gpus", "cpus"):
            v = getattr(self, name)
            if v is None and name == "gpus":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ConfigError(f"ray {name} must be a number >= 0, got {v!r}")
        if self.decode is not None and self.decode not in DECODE_MODES:
            raise ConfigError(f"ray decode must be one of {DECODE_MODES}, got {self.decode!r}")


def _connect(address: str | None) -> Any:
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the runner draws its own bar
    ctx.print_on_execution_start = False
    return ray


def _unwrap(exc: BaseException) -> BaseException:
    """The msce error inside a Ray task error (its ``cause`` chain), else ``exc``."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if isinstance(cur, MsceError):
            return cur
        cur = getattr(cur, "cause", None) or cur.__cause__
        seen += 1
    return exc


def _describe(backend: Any) -> dict:
    """What the driver needs of a backend built on a worker: its run-config record, and what
    a stand-in needs to drive strategies (``decode="workers"``)."""
    return {"config": _backend_config(backend), "model_id": backend.model_id, "target": backend.target(),
            "fingerprint": backend.fingerprint()}


class _ModelActor:
    """A model on one Ray worker (``decode="workers"``): answers generate calls."""

    def __init__(self, spec: BackendSpec):
        self.backend = spec.build()

    def describe(self) -> dict:
        return _describe(self.backend)

    def generate(self, requests: list, params: Any) -> list[str]:
        return list(self.backend.generate(requests, params))


class _ActorBackend:
    """The backend a decoding worker sees with ``decode="workers"``: ``target()`` and
    ``fingerprint()`` of the real one, and ``generate`` sent (frames as tensors) to a model
    actor, round robin from a per-worker offset."""

    def __init__(self, actors: Sequence[Any], info: Mapping[str, Any]):
        self._actors = list(actors)
        self.model_id = info["model_id"]
        self._target = info["target"]
        self._fingerprint = info["fingerprint"]
        self._turn = itertools.count(os.getpid())

    def target(self) -> Any:
        return self._target

    def fingerprint(self) -> dict:
        return dict(self._fingerprint)

    def generate(self, requests: Sequence[Any], params: Any) -> list[str]:
        ray = require_ray()
        actor = self._actors[next(self._turn) % len(self._actors)]
        return ray.get(actor.generate.remote(list(requests), params))


class _Video:
    """A video as the in-process executor takes it."""

    __slots__ = ("id", "path")

    def __init__(self, sid: str, path: str):
        self.id = sid
        self.path = path


def _pack_error(exc: BaseException) -> bytes:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling travels as text
        return pickle.dumps(MsceError(f"{type(exc).__name__}: {exc}"))


class _VideoWorker:
    """The Ray Data map function: one task = ``task_videos`` consecutive videos, run with the
    in-process executor; returns one row per video that ended (position, pickled outcome)."""

    def __init__(self, backend: Any, strategy: Any, labels: Any, cache_path: str | None, execution: Execution,
                 pass_id: bool, fatal: Any):
        if isinstance(backend, BackendSpec):
            self.backend = backend.build()
        else:  # ("actors", handles, info): decode="workers"
            _, actors, info = backend
            self.backend = _ActorBackend(actors, info)
        self.cache = None
        if cache_path is not None:
            from msce.models.cache import ResponseCache

            self.cache = ResponseCache(cache_path)
        self.strategy, self.labels, self.pass_id, self.fatal = strategy, labels, pass_id, fatal
        # the sequential runner's calls, one video at a time, with errors as outcomes
        self.execution = Execution(1, 1, 1, 1) if execution.sequential else execution

    def __call__(self, batch: Mapping[str, Any]) -> dict:
        import numpy as np

        pos = [int(p) for p in batch["pos"]]
        videos = [_Video(str(i), str(p)) for i, p in zip(batch["id"], batch["path"])]
        out_pos, payload = [], []
        outcomes = run_pipelined(videos, self.strategy, self.labels, self.backend, self.cache, self.execution,
                                 pass_id=self.pass_id, fatal=self.fatal)
        for o in outcomes:
            result, error = None, None
            if o.error is None:
                try:
                    result = _result_dict(o.result)
                except Exception as exc:  # noqa: BLE001 - a strategy returning something else
                    error = _pack_error(exc)
            else:
                error = _pack_error(o.error)
            out_pos.append(pos[o.position])
            payload.append(pickle.dumps((result, error, o.wall_s, o.damaged_frames)))
        return {"pos": np.asarray(out_pos, dtype=np.int64), "payload": np.asarray(payload, dtype=object)}


def _decode_task(batch: Mapping[str, Any], **work: Any) -> dict:
    """``decode="workers"``: one Ray task decodes and drives its videos; the model steps go to
    the model actors."""
    worker = _VideoWorker(**work)
    try:
        return worker(batch)
    finally:
        if worker.cache is not None:
            worker.cache.close()


class RayExecutor:
    """Runs a run's videos on Ray for :func:`msce.eval.runner.run_eval` (``executor=``).

    Connects on creation. Model actors of ``decode="workers"`` and the backend description
    are kept for the executor's life (a sweep reuses one executor per model); :meth:`close`
    ends the actors.
    """

    def __init__(self, backend: BackendSpec, options: RayOptions | None = None):
        if not isinstance(backend, BackendSpec):
            raise ConfigError(f"a Ray run builds its backend on the workers: pass a BackendSpec(name, options), "
                              f"not {type(backend).__name__}")
        self.spec = backend
        options = options or RayOptions()
        self.options = options if options.decode else dataclasses.replace(options, decode="model")
        self.ray = _connect(self.options.address)
        gpus = self.options.gpus
        if gpus is None:
            has_gpu = float(self.ray.cluster_resources().get("GPU", 0)) > 0
            gpus = 1.0 if has_gpu and backend.name in LOCAL_MODEL_BACKENDS else 0.0
        self.gpus = float(gpus)
        self.duplicates_dropped = 0
        self._actors: list[Any] | None = None
        self._info: dict | None = None

    # -- the backend, described on the cluster

    def _model_actors(self) -> list[Any]:
        if self._actors is None:
            n = self.options.model_actors or self.options.workers
            # a local model answers one call at a time; a server client may have many in flight
            calls = 1 if self.spec.name in LOCAL_MODEL_BACKENDS else SERVER_CALLS_PER_ACTOR
            self._check_fits(n, 0.0, "model actors")
            # like any Ray actor by default, a model actor holds no CPU while it lives: the decoding
            # tasks get the CPUs (holding them would starve the tasks on a small machine)
            cls = self.ray.remote(num_gpus=self.gpus, num_cpus=0, max_restarts=-1,
                                  max_task_retries=-1, max_concurrency=calls)(_ModelActor)
            self._actors = [cls.remote(self.spec) for _ in range(n)]
        return self._actors

    def _check_fits(self, n: int, cpus: float, what: str) -> None:
        """ConfigError when ``n`` actors of ``cpus`` CPUs and ``self.gpus`` GPUs each cannot all be
        placed at once (a fixed pool would wait for them forever)."""
        have = self.ray.cluster_resources()
        for name, each in (("CPU", cpus), ("GPU", self.gpus)):
            if n * each > float(have.get(name, 0)) + 1e-9:
                raise ConfigError(f"ray: {n} {what} x {each:g} {name} each need {n * each:g} {name}s, and the "
                                  f"cluster has {float(have.get(name, 0)):g}: use fewer workers (--ray-workers) or "
                                  f"fewer {name}s each (--ray-gpus, RayOptions.cpus)")

    def _describe(self) -> dict:
        if self._info is None:
            try:
                if self.options.decode == "workers":
                    ref = self._model_actors()[0].describe.remote()
                else:  # one build on a worker like the model actors' (the driver loads nothing)
                    task = self.ray.remote(num_gpus=self.gpus, num_cpus=self.options.cpus, max_retries=3)(
                        lambda spec: _describe(spec.build()))
                    ref = task.remote(self.spec)
                self._info = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the backend's own error, when it is one of msce's
                inner = _unwrap(exc)
                if inner is not exc:
                    raise inner from None
                raise
        return self._info

    def backend_config(self) -> dict:
        """The backend's record in ``config.json`` (as a local run writes it)."""
        return dict(self._describe()["config"])

    def to_dict(self, execution: Execution) -> dict:
        """The session's ``execution`` record."""
        o = self.options
        return {"mode": "ray", "ray": self.ray.__version__, "address": o.address, "decode": o.decode,
                "workers": o.workers, "model_actors": (o.model_actors or o.workers) if o.decode == "workers" else None,
                "gpus_per_model_actor": self.gpus, "cpus_per_worker": o.cpus, "task_videos": o.task_videos,
                "worker_execution": execution.to_dict()}

    # -- the run

    def outcomes(self, todo: Sequence[Any], strategy: Any, labels: Any, cache: Any, execution: Execution, *,
                 pass_id: bool, fatal: Any) -> Iterator[Outcome]:
        """One Outcome per video of ``todo``, in order (fewer when a fatal error ends the run:
        none after it). Rows a retried task delivers twice are dropped here and counted in
        ``duplicates_dropped`` (per run; the run directory's session record gets it from
        :meth:`session_summary`)."""
        self.duplicates_dropped = 0
        cache_path = None
        if cache is not None:
            path = getattr(cache, "path", None)
            if path is None:
                raise ConfigError("a Ray run opens the response cache on every worker: pass a cache with a "
                                  "path (msce.models.cache.ResponseCache) or none")
            cache_path = os.fspath(path)
        if self.options.decode == "workers":
            backend: Any = ("actors", self._model_actors(), self._describe())
            num_gpus = 0.0
        else:
            backend, num_gpus = self.spec, self.gpus
        return self._ordered(list(todo), backend, num_gpus, strategy, labels, cache_path, execution, pass_id, fatal)

    def _ordered(self, todo: list, backend: Any, num_gpus: float, strategy: Any, labels: Any, cache_path: str | None,
                 execution: Execution, pass_id: bool, fatal: Any) -> Iterator[Outcome]:
        n = len(todo)
        if n == 0:
            return
        k = self.options.task_videos
        items = [{"pos": i, "id": str(s.id), "path": os.fspath(s.path)} for i, s in enumerate(todo)]
        tasks = math.ceil(n / k)
        ds = self.ray.data.from_items(items, override_num_blocks=tasks)
        work = {"backend": backend, "strategy": strategy, "labels": labels, "cache_path": cache_path,
                "execution": execution, "pass_id": pass_id, "fatal": fatal}
        size = min(self.options.workers, tasks)
        if isinstance(backend, BackendSpec):  # model actors: each builds the model once for the run
            self._check_fits(size, self.options.cpus, "model workers")
            ds = ds.map_batches(_VideoWorker, batch_size=k, batch_format="numpy", num_cpus=self.options.cpus,
                                num_gpus=num_gpus, compute=self.ray.data.ActorPoolStrategy(size=size),
                                fn_constructor_kwargs=work)
        else:  # decoding tasks (warm worker processes, retried up to 3 times) calling the model actors
            ds = ds.map_batches(_decode_task, batch_size=k, batch_format="numpy", num_cpus=self.options.cpus,
                                compute=self.ray.data.TaskPoolStrategy(size=size), fn_kwargs=work, max_retries=3)
        pending: dict[int, Outcome] = {}
        given = 0
        stopped = False
        rows = iter(ds.iter_rows())
        try:
            for row in rows:
                p = int(row["pos"])
                if p < given or p in pending:
                    self.duplicates_dropped += 1
                    continue
                result, error, wall, damaged = pickle.loads(row["payload"])
                pending[p] = Outcome(p, result, None if error is None else pickle.loads(error), wall, damaged)
                while given in pending:
                    o = pending.pop(given)
                    given += 1
                    yield o
                    if o.error is not None and fatal(o.error):
                        stopped = True
                        return
        except Exception as exc:  # noqa: BLE001 - a task that failed for good (not a video's error)
            inner = _unwrap(exc)
            if inner is not exc:
                raise inner from None
            raise
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        if not stopped and given < n:
            raise MsceError(f"the Ray run ended with {n - given} of {n} videos without an outcome "
                            f"(first: {todo[given].id!r})")

    def session_summary(self) -> dict:
        """Added to the session's execution record in config.json when the run ends."""
        return {"duplicates_dropped": self.duplicates_dropped}

    def close(self) -> None:
        """End the model actors (``decode="workers"``)."""
        if self._actors is not None:
            for a in self._actors:
                self.ray.kill(a)
            self._actors = None


def run_ray(dataset: Any, samples: Sequence[Any], strategy: Any, backend: BackendSpec, out_dir: str | os.PathLike,
            cache: Any = None, *, ray: RayOptions | RayExecutor | None = None, **kwargs: Any) -> EvalResult:
    """:func:`msce.eval.runner.run_eval` on a Ray cluster: the same arguments, except that
    ``backend`` is a :class:`BackendSpec` built on every worker and ``ray`` says where and how
    (a :class:`RayOptions`, or a :class:`RayExecutor` to reuse). ``batch_size``,
    ``concurrency``, ``prefetch`` apply inside each worker. The run directory, its order,
    resume and reports are those of a local run (module docstring)."""
    executor = ray if isinstance(ray, RayExecutor) else RayExecutor(backend, ray)
    try:
        return run_eval(dataset, samples, strategy, None, out_dir, cache, executor=executor, **kwargs)
    finally:
        if not isinstance(ray, RayExecutor):
            executor.close()
