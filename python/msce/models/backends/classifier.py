"""Vision-only video classifiers from transformers (``AutoModelForVideoClassification``).

VideoMAE (and MAE-DFER / HiCMAE-style VideoMAE checkpoints), TimeSformer, ViViT and
V-JEPA 2 classify a clip into the classes of their ``id2label``. This backend lets them
run under the same strategies, plans, cache and runner as the VLMs:

Answer
    A classifier reads no text: the prompt the strategy renders is recorded but ignored.
    :meth:`ClassifierBackend.generate` answers each request with the canonical name of
    the predicted class in the backend's label set, then, on a second line, the softmax
    probabilities of every class of that set in its canonical order::

        happy
        [p dfew: 0.4123 0.1012 0.0990 0.1520 0.0811 0.0702 0.0842]

    The answer parser (``msce.models.answers``) reads the first line (the bracket holds
    no label word), so runs, metrics and reports treat classifiers like any model, and
    the probabilities are stored with the raw answer in ``predictions.jsonl`` and in the
    response cache. :func:`read_probabilities` reads them back. Classes of the set the
    checkpoint does not have get probability 0.

Labels
    The checkpoint's ``id2label`` names are mapped BY NAME to DFEW or MAFW with
    :meth:`msce.labels.LabelSet.canonical` (names and synonyms, case-insensitive), never
    by id: MAFW's id orders differ between code bases. ``labels=None`` picks the set that
    maps every class, preferring the one with the checkpoint's class count (a 7-class
    DFEW head maps into both DFEW and MAFW and gets DFEW). A class that maps nowhere,
    or two classes that map to one name, raise :class:`msce.errors.ConfigError` listing
    them; such a checkpoint needs a new head first (``msce finetune --backend classifier``).

Frames
    The strategy plans and decodes the frames (``msce.Frames(layout="NHWC",
    dtype="uint8")``). Where ``msce.target_for`` reproduces the checkpoint's HF video
    processor (VideoMAE's), msce's native transform resizes, crops and normalizes them
    into the tensors that processor returns (exactly equal; ``config()["tensors"]`` is
    ``"msce"``); otherwise the HF video processor does it (frame sampling off;
    ``"hf-processor"``). The model takes a fixed clip length
    (``config.num_frames``; ``frames_per_clip`` for V-JEPA 2; the ``num_frames`` option
    overrides). msce's choice of how a plan's ``N`` frames become a clip of ``T``, in the
    order the strategy sent them (so a shuffled plan stays shuffled): position
    ``k`` (0-based) takes the sent frame ``floor((2k + 1) * N / (2T))``, the centre of the
    k-th of T equal segments (:func:`clip_positions`). With ``N >= T`` these are ``T``
    distinct frames spread evenly over the sequence; with ``N < T`` every frame repeats
    ``T/N`` times in place (nearest-neighbour upsampling in time). A one-frame request is
    a still clip. The positions are recorded in :class:`ClassifierOutput`; the strategy's
    ``frame_indices`` keep listing every frame it loaded.

Each :meth:`ClassifierBackend.generate` call is one batched forward pass (clips of equal
processed shape are stacked; ``max_batch_size`` splits large calls); the answer is
deterministic (no decoding, so only ``temperature=0`` is accepted).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from msce.errors import BackendError, ConfigError, UnsupportedError
from msce.labels import LABEL_SETS, LabelSet, get_label_set
from msce.models.backends._weights import weights_config
from msce.models.backends.base import GenerationParams, Request, check_request, is_frames
from msce.targets import Frames, Target, target_for

__all__ = [
    "ClassifierBackend",
    "ClassifierOutput",
    "LabelMap",
    "map_labels",
    "clip_positions",
    "model_num_frames",
    "format_answer",
    "read_probabilities",
    "CLIP_RULE",
]

#: Name of msce's plan-to-clip rule (recorded in fingerprints and run records).
CLIP_RULE = "segment-centres"

_PROB_LINE = re.compile(r"\[p ([^\s:\]]+): ([0-9. ]*)\]\s*$")


@dataclass(frozen=True)
class LabelMap:
    """How a checkpoint's classes map into a label set.

    ``names[i]``: canonical name (in ``label_set``) of model class ``i``, or None when it
    maps to nothing; ``model_labels[i]``: the checkpoint's own name of class ``i``.
    """

    label_set: LabelSet
    model_labels: tuple[str, ...]
    names: tuple[str | None, ...]

    @property
    def unmapped(self) -> list[str]:
        return [m for m, n in zip(self.model_labels, self.names) if n is None]

    @property
    def duplicates(self) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for m, n in zip(self.model_labels, self.names):
            if n is not None:
                seen.setdefault(n, []).append(m)
        return {n: ms for n, ms in seen.items() if len(ms) > 1}

    @property
    def complete(self) -> bool:
        return not self.unmapped and not self.duplicates

    def set_index(self) -> list[int | None]:
        """Position in the label set of each model class (None when unmapped)."""
        return [None if n is None else self.label_set.index(n) for n in self.names]

    def to_dict(self) -> dict:
        return {"label_set": self.label_set.key, "model_labels": list(self.model_labels), "names": list(self.names)}


def _id2label(config_or_map: Any) -> list[str]:
    id2label = getattr(config_or_map, "id2label", config_or_map)
    if not isinstance(id2label, Mapping) or not id2label:
        raise ConfigError("the checkpoint has no id2label names to map")
    ids = sorted(int(k) for k in id2label)
    if ids != list(range(len(ids))):
        raise ConfigError(f"id2label ids must be 0..{len(ids) - 1}, got {ids}")
    return [str(id2label.get(i, id2label.get(str(i)))) for i in ids]


def _map_into(model_labels: Sequence[str], label_set: LabelSet) -> LabelMap:
    names = tuple(label_set.canonical(m.replace("_", " ")) for m in model_labels)
    return LabelMap(label_set, tuple(model_labels), names)


def _describe_failure(m: LabelMap) -> str:
    parts = []
    if m.unmapped:
        parts.append(f"unmapped {m.unmapped}")
    if m.duplicates:
        parts.append("several classes for one name " + ", ".join(f"{n}: {ms}" for n, ms in m.duplicates.items()))
    return f"{m.label_set.key}: " + "; ".join(parts)


def map_labels(id2label: Any, labels: str | LabelSet | None = None) -> LabelMap:
    """Map a checkpoint's ``id2label`` (a config or a dict) into DFEW or MAFW by name.

    ``labels``: ``"dfew"``, ``"mafw"``, a :class:`LabelSet`, or None to pick the set that
    maps every class (the one with as many classes as the checkpoint when both do, else
    the smaller). Raises ConfigError naming every class that maps nowhere (or several
    classes that map to one name) when no set maps them all.
    """
    model_labels = _id2label(id2label)
    if labels is not None:
        label_set = labels if isinstance(labels, LabelSet) else _label_set(labels)
        m = _map_into(model_labels, label_set)
        if not m.complete:
            raise ConfigError(f"cannot map the checkpoint's classes {model_labels} into {label_set.key} by name "
                              f"({_describe_failure(m)}); fine-tune a new head with "
                              "`msce finetune --backend classifier`")
        return m
    maps = [_map_into(model_labels, s) for s in LABEL_SETS.values()]
    ok = [m for m in maps if m.complete]
    if not ok:
        raise ConfigError(f"cannot map the checkpoint's classes {model_labels} into any label set by name ("
                          + "; ".join(_describe_failure(m) for m in maps)
                          + "); fine-tune a new head with `msce finetune --backend classifier`")
    exact = [m for m in ok if len(m.label_set) == len(model_labels)]
    return (exact or sorted(ok, key=lambda m: len(m.label_set)))[0]


def _label_set(labels: str) -> LabelSet:
    try:
        return get_label_set(str(labels))
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None


def clip_positions(n: int, num_frames: int | None) -> list[int]:
    """Positions (into the ``n`` frames as sent) that make a clip of ``num_frames``.

    Position ``k`` is ``floor((2k + 1) * n / (2 * num_frames))``: the centre of the k-th
    of ``num_frames`` equal segments. ``num_frames=None`` keeps all ``n`` frames.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"a clip needs at least one frame, got n={n!r}")
    if num_frames is None:
        return list(range(n))
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ConfigError(f"num_frames must be a positive int or None, got {num_frames!r}")
    return [(2 * k + 1) * n // (2 * num_frames) for k in range(num_frames)]


def model_num_frames(config: Any) -> int | None:
    """Frames per clip a video classifier's config expects (None when it does not say)."""
    for attr in ("num_frames", "frames_per_clip"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def format_answer(name: str, label_set: LabelSet, probabilities: Sequence[float]) -> str:
    """The answer text: the class name, then the probabilities in the set's order."""
    if len(probabilities) != len(label_set):
        raise ConfigError(f"{len(probabilities)} probabilities for {len(label_set)} {label_set.key} classes")
    return f"{name}\n[p {label_set.key}: {' '.join(f'{p:.4f}' for p in probabilities)}]"


def read_probabilities(raw: str, label_set: LabelSet | None = None) -> dict[str, float] | None:
    """The per-class probabilities a classifier answer carries (canonical name -> p), or
    None for an answer without them (any VLM's). ``label_set`` is needed only for a set
    other than DFEW and MAFW (its key must match the answer's)."""
    if not isinstance(raw, str):
        return None
    m = _PROB_LINE.search(raw)
    if m is None:
        return None
    if label_set is None:
        label_set = LABEL_SETS.get(m.group(1))
    if label_set is None or label_set.key != m.group(1):
        return None
    values = [float(v) for v in m.group(2).split()]
    if len(values) != len(label_set):
        return None
    return dict(zip(label_set.names, values))


@dataclass
class ClassifierOutput:
    """One request's result: the predicted class (canonical name and the checkpoint's
    own name), logits in model-class order, probabilities in label-set order, and the
    positions of the sent frames that made the clip."""

    label: str
    model_label: str
    logits: list[float]
    probabilities: list[float]
    positions: list[int]
    label_set: LabelSet = field(repr=False)

    def answer(self) -> str:
        return format_answer(self.label, self.label_set, self.probabilities)


def _uint8_clip(part: Any):
    """(T, H, W, 3) uint8 numpy frames of a FrameBatch (NHWC or NCHW uint8 data)."""
    import numpy as np

    data = part.data
    if hasattr(data, "detach"):
        data = data.detach().to("cpu").numpy()
    arr = np.asarray(data)
    layout = getattr(getattr(part, "target", None), "layout", None)
    if arr.ndim == 4 and layout == "NCHW" and arr.shape[1] == 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ConfigError("the classifier backend needs frames loaded with msce.Frames(dtype='uint8'); "
                          f"got dtype {arr.dtype} shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _frames_part(request: Request) -> Any:
    frames = [p for p in request if is_frames(p)]
    if len(frames) != 1:
        raise ConfigError(f"the classifier backend classifies one clip per request, got {len(frames)} visual parts "
                          "(strategies sparse, dense and shuffled send one; MSCE needs a text-generating model)")
    return frames[0]


class ClassifierBackend:
    """Run a transformers video classifier under msce's strategies.

    Args:
        model: local checkpoint directory (or hub id where the machine has network).
        labels: ``"dfew"``, ``"mafw"`` or None (infer from the checkpoint's names; see
            :func:`map_labels`).
        num_frames: frames per clip fed to the model (None = the config's
            ``num_frames`` / ``frames_per_clip``; all sent frames when it has neither).
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        max_batch_size: at most this many clips per forward pass (None = all).
    """

    def __init__(self, model: str, labels: str | LabelSet | None = None, num_frames: int | None = None,
                 dtype: Any = "auto", device: str = "auto", revision: str | None = None,
                 local_files_only: bool | None = None, trust_remote_code: bool = False,
                 max_batch_size: int | None = None):
        if max_batch_size is not None and int(max_batch_size) < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        if num_frames is not None:
            num_frames = int(num_frames)
            if num_frames < 1:
                raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        import torch
        from transformers import AutoModelForVideoClassification, AutoVideoProcessor

        from msce.models.backends.hf import _resolve_dtype, _weights_identity

        self.model_name = str(model)
        self.model_id = self.model_name
        self.revision = revision
        self.max_batch_size = None if max_batch_size is None else int(max_batch_size)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if local_files_only is None:
            local_files_only = Path(self.model_name).is_dir()
        kwargs: dict[str, Any] = dict(revision=revision, local_files_only=local_files_only,
                                      trust_remote_code=trust_remote_code)
        try:
            self.processor = AutoVideoProcessor.from_pretrained(self.model_name, **kwargs)
            self.model = AutoModelForVideoClassification.from_pretrained(
                self.model_name, dtype=_resolve_dtype(dtype), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"cannot load video classifier {self.model_name!r}: {exc}") from exc
        self.model.to(self.device)
        self.model.eval()
        # msce's exact equivalent of the HF video processor, where there is one (None: HF's path)
        self.msce_target: Target | None
        try:
            self.msce_target = target_for(self.processor)
        except UnsupportedError:
            self.msce_target = None
        self.label_map = map_labels(self.model.config, labels)
        self.label_set = self.label_map.label_set
        self._set_index = self.label_map.set_index()
        self.config_num_frames = model_num_frames(self.model.config)
        self.num_frames = num_frames if num_frames is not None else self.config_num_frames
        self.dtype_name = str(self.model.dtype).replace("torch.", "")
        self.model_dir, self._digest = _weights_identity(self.model_name, revision, self.model.config)
        self._lock = threading.Lock()
        self.forward_invocations = 0  # batched forward passes made (diagnostics and tests)

    def __repr__(self) -> str:
        return (f"ClassifierBackend(model={self.model_name!r}, labels={self.label_set.key!r}, "
                f"num_frames={self.num_frames}, device={str(self.device)!r})")

    # -- the Backend protocol -------------------------------------------------------
    def target(self) -> Frames:
        return Frames(layout="NHWC", dtype="uint8")

    def fingerprint(self) -> dict:
        return {"backend": "classifier", "weights": self._digest, "dtype": self.dtype_name,
                "num_frames": self.num_frames, "clip_rule": CLIP_RULE, "labels": self.label_map.to_dict()}

    def config(self) -> dict:
        return {
            "backend": "classifier",
            **weights_config(self),
            "architecture": type(self.model).__name__,
            "processor": type(self.processor).__name__,
            "tensors": "hf-processor" if self.msce_target is None else "msce",
            "num_frames": self.num_frames,
            "config_num_frames": self.config_num_frames,
            "clip_rule": CLIP_RULE,
            "label_map": self.label_map.to_dict(),
        }

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[str]:
        if not params.greedy:
            raise ConfigError("a classifier's answer is its argmax: use temperature 0")
        return [o.answer() for o in self.classify(requests)]

    # -- classification -------------------------------------------------------------
    def clip(self, part: Any):
        """The (num_frames, H, W, 3) uint8 clip for one FrameBatch, and its positions."""
        frames = _uint8_clip(part)
        positions = clip_positions(int(frames.shape[0]), self.num_frames)
        return frames[positions], positions

    def inputs(self, clips: Sequence[Any]) -> dict:
        """The model's inputs for uint8 clips (of one shape): the checkpoint's HF video
        processor output, made by msce's native transform where ``msce_target`` is set."""
        if self.msce_target is not None:
            try:
                return self._msce_inputs(clips)
            except UnsupportedError:
                pass  # a geometry msce does not reproduce (e.g. a crop larger than the frame): HF's path
        return self.hf_inputs(clips)

    def _msce_inputs(self, clips: Sequence[Any]) -> dict:
        import torch

        from msce.io import preprocess

        per_clip = [preprocess(c, self.msce_target).to_hf() for c in clips]
        return {k: torch.cat([p[k] for p in per_clip], 0) for k in per_clip[0]}

    def hf_inputs(self, clips: Sequence[Any]) -> dict:
        """The model's inputs for uint8 clips from the checkpoint's HF video processor."""
        try:
            enc = self.processor(videos=list(clips), return_tensors="pt", do_sample_frames=False)
        except (ValueError, TypeError) as exc:
            raise BackendError(f"{self.model_name!r}: video processor failed: {exc}") from exc
        return dict(enc)

    def logits(self, inputs: Mapping[str, Any]):
        """float32 logits (batch, model classes) of one forward pass."""
        import torch

        moved = {k: (v.to(self.device, dtype=self.model.dtype) if torch.is_floating_point(v) else v.to(self.device))
                 for k, v in inputs.items() if hasattr(v, "to")}
        with torch.inference_mode():
            try:
                out = self.model(**moved)
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"{self.model_name!r}: forward failed: {exc}") from exc
        self.forward_invocations += 1
        return out.logits.float().cpu()

    def classify(self, requests: Sequence[Request]) -> list[ClassifierOutput]:
        """One :class:`ClassifierOutput` per request, in request order."""
        for r in requests:
            check_request(r)
        parts = [_frames_part(r) for r in requests]
        if not parts:
            return []
        clips, positions = zip(*(self.clip(p) for p in parts))
        step = self.max_batch_size or len(clips)
        out: list[ClassifierOutput] = []
        with self._lock:
            for start in range(0, len(clips), step):
                chunk = list(clips[start:start + step])
                same = len({c.shape for c in chunk}) == 1
                groups = [chunk] if same else [[c] for c in chunk]
                for g, group in enumerate(groups):
                    first = start + (0 if same else g)
                    logits = self.logits(self.inputs(group))
                    for j in range(logits.shape[0]):
                        out.append(self._output(logits[j], list(positions[first + j])))
        return out

    def _output(self, logits: Any, positions: list[int]) -> ClassifierOutput:
        import torch

        probs = torch.softmax(logits, dim=-1).tolist()
        in_set = [0.0] * len(self.label_set)
        for i, p in enumerate(probs):
            in_set[self._set_index[i]] += p
        best = int(torch.argmax(logits))
        if not all(math.isfinite(v) for v in probs):
            raise BackendError(f"{self.model_name!r}: non-finite logits {logits.tolist()}")
        return ClassifierOutput(label=self.label_map.names[best], model_label=self.label_map.model_labels[best],
                                logits=logits.tolist(), probabilities=in_set, positions=positions,
                                label_set=self.label_set)
