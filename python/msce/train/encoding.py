"""Training examples: the strategy's inference request as one chat turn plus the answer
tokens, their batching, and the loss over the answer tokens only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from msce.errors import ConfigError, MsceError
from msce.io import load
from msce.io import load_segments


@dataclass
class Example:
    """One encoded training example (batch dimension removed).

    ``input_ids`` = prompt + answer; the last ``n_answer`` ids are the loss targets.
    ``per_token`` holds the other (L,) tensors (``attention_mask``,
    ``mm_token_type_ids``); ``visual`` the tensors concatenated across a batch
    (``pixel_values_videos``, ``video_grid_thw``, ``pixel_values``, ...).
    """

    id: str
    label: str
    input_ids: Any
    n_answer: int
    per_token: dict
    visual: dict
    prompt: str
    answer: str
    frame_indices: list[int] = field(default_factory=list)


def _strategy_kind(strategy: Any) -> str:
    from msce.models.strategies import MSCE, Sparse

    if isinstance(strategy, MSCE):
        return "msce"
    if isinstance(strategy, Sparse):  # Sparse and Dense
        return "frames"
    raise ConfigError(f"fine-tuning supports the sparse, dense and msce strategies; got {type(strategy).__name__}")


class ExampleEncoder:
    """Builds training examples exactly as the strategy builds inference requests.

    Args:
        backend: a :class:`msce.models.backends.hf.TransformersBackend` (its chat template,
            placeholder expansion and tensor layout are used as they are at inference).
        strategy: a Sparse / Dense / MSCE strategy.
        labels: the dataset's :class:`msce.labels.LabelSet`.
        descriptions: for MSCE, ``{sample id: record}`` from :func:`describe_videos`.
    """

    def __init__(self, backend: Any, strategy: Any, labels: Any, descriptions: Mapping[str, Mapping] | None = None):
        self.backend = backend
        self.strategy = strategy
        self.labels = labels
        self.kind = _strategy_kind(strategy)
        self.descriptions = descriptions or {}
        if getattr(backend, "mode", None) not in ("tokens", "processor"):
            raise ConfigError("fine-tuning needs the transformers backend (msce.models.backends.hf.TransformersBackend)")
        tok = backend.tokenizer
        eos = backend.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tok.eos_token_id is not None:
            eos.append(int(tok.eos_token_id))
        self.eos_ids = {int(e) for e in eos}
        if not self.eos_ids:
            raise ConfigError(f"{backend.model_id}: no end-of-sequence token to end the answers with")
        self._completion_memo: dict[tuple[str, str], list[int]] = {}

    def answer(self, label: str) -> str:
        """The answer word for a class: its display name, as listed in the prompt's choices."""
        return self.labels.display[self.labels.index(label)]

    def request(self, sample: Any) -> tuple[list, str, list[int]]:
        """(backend request, the prompt as text, frame indices sent) for one clip."""
        from msce.models.prompts import as_text
        from msce.models.strategies import _materialize

        target = self.backend.target()
        if self.kind == "frames":
            batch = load(sample.path, self.strategy.spec(), target)
            kind = "image" if len(batch.indices) == 1 else "video"
            rendered = self.strategy.prompts.classify(self.labels, kind)
            return _materialize(rendered, [batch]), as_text(rendered), [int(i) for i in batch.indices]
        rec = self.descriptions.get(str(sample.id))
        if rec is None:
            raise MsceError(f"no stage-1 descriptions for clip {sample.id!r}; run describe_videos first")
        segments = load_segments(sample.path, self.strategy.spec(), target)
        keyframes = [s for s in segments if s.roles[0] == "keyframe"]
        kf = [int(k.indices[0]) for k in keyframes]
        if kf != list(rec["keyframe_indices"]):
            raise MsceError(f"clip {sample.id!r}: keyframes {kf} differ from those described "
                            f"({rec['keyframe_indices']}); the clip or the plan changed")
        rendered = self.strategy.prompts.stage2(list(rec["motions"]), self.labels)
        text = as_text(rendered)
        if text != rec["stage2_prompt"]:
            raise MsceError(f"clip {sample.id!r}: the rebuilt stage-2 prompt differs from the one the MSCE "
                            f"strategy rendered; training and inference prompts must be identical")
        return _materialize(rendered, keyframes), text, kf

    def completion_ids(self, request: list, answer: str) -> list[int]:
        """Token ids of the assistant turn (answer + end-of-turn) as the chat template
        writes it after the generation prompt, cut after the first end-of-sequence token."""
        backend = self.backend
        messages = backend._messages(request)
        prompt = backend.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        memo_key = (prompt[-200:], answer)
        hit = self._completion_memo.get(memo_key)
        if hit is not None:
            return list(hit)
        full = backend.processor.apply_chat_template(
            messages + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False)
        if full.startswith(prompt) and answer in full[len(prompt):]:
            text = full[len(prompt):]
        else:  # a template that rewrites earlier turns: answer + end of sequence
            text = answer + (backend.tokenizer.eos_token or "")
        ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
        for i, t in enumerate(ids):
            if t in self.eos_ids:
                ids = ids[:i + 1]
                break
        else:
            ids = ids + [min(self.eos_ids)]
        self._completion_memo[memo_key] = list(ids)
        return ids

    def encode(self, sample: Any) -> Example:
        import torch

        request, prompt, frames = self.request(sample)
        answer = self.answer(sample.label)
        inputs = self.backend.build_inputs([request])
        ids = inputs["input_ids"]
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise MsceError(f"expected input_ids of shape (1, L), got {tuple(ids.shape)}")
        n = ids.shape[1]
        completion = torch.tensor(self.completion_ids(request, answer), dtype=ids.dtype)
        per_token: dict = {}
        visual: dict = {}
        for key, value in inputs.items():
            if key == "input_ids":
                continue
            if not isinstance(value, torch.Tensor):
                raise MsceError(f"cannot batch the non-tensor model input {key!r}")
            if value.dim() == 2 and tuple(value.shape) == (1, n) and not _is_visual_key(key):
                fill = 1 if key == "attention_mask" else 0
                per_token[key] = torch.cat([value[0], torch.full((len(completion),), fill, dtype=value.dtype)])
            else:
                visual[key] = value
        if "attention_mask" not in per_token:
            per_token["attention_mask"] = torch.ones(n + len(completion), dtype=torch.long)
        return Example(id=str(sample.id), label=sample.label, input_ids=torch.cat([ids[0], completion]),
                       n_answer=len(completion), per_token=per_token, visual=visual, prompt=prompt,
                       answer=answer, frame_indices=frames)


def _is_visual_key(key: str) -> bool:
    return key.startswith("pixel_values") or key.endswith("grid_thw") or key.endswith("per_grid_ts")


def collate(examples: Sequence[Example], pad_id: int) -> tuple[dict, Any, int]:
    """Left-padded model inputs, the answer targets ``(B, A)`` (-100 = ignored) and ``A``,
    the longest answer. Left padding puts every answer at the end of its row, so only
    the last ``A + 1`` positions need logits."""
    import torch

    if not examples:
        raise ConfigError("cannot collate an empty batch")
    b = len(examples)
    length = max(len(e.input_ids) for e in examples)
    a = max(e.n_answer for e in examples)
    input_ids = torch.full((b, length), int(pad_id), dtype=examples[0].input_ids.dtype)
    targets = torch.full((b, a), -100, dtype=torch.long)
    keys = sorted(set().union(*(e.per_token.keys() for e in examples)))
    per_token = {k: torch.zeros((b, length), dtype=next(e.per_token[k].dtype for e in examples
                                                         if k in e.per_token)) for k in keys}
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[i, length - n:] = e.input_ids
        for k in keys:
            if k not in e.per_token:
                raise MsceError(f"example {e.id!r} lacks the model input {k!r} that others in its batch have")
            per_token[k][i, length - n:] = e.per_token[k]
        targets[i, a - e.n_answer:] = e.input_ids[n - e.n_answer:]
    inputs = {"input_ids": input_ids, **per_token}
    vkeys = sorted(set().union(*(e.visual.keys() for e in examples)))
    for k in vkeys:
        inputs[k] = torch.cat([e.visual[k] for e in examples if k in e.visual], 0)
    return inputs, targets, a


def answer_loss(model: Any, inputs: Mapping, targets: Any, n_answer: int, keep_logits: bool = True):
    """Summed cross-entropy of the answer tokens and their count.

    With ``keep_logits`` the model computes logits for the last ``n_answer + 1``
    positions only (``logits_to_keep``); position ``L - n_answer - 1 + j`` predicts
    answer token ``j``.
    """
    import torch.nn.functional as F

    kwargs = dict(inputs)
    kwargs["use_cache"] = False
    if keep_logits:
        kwargs["logits_to_keep"] = n_answer + 1
    logits = model(**kwargs).logits
    logits = logits[:, -(n_answer + 1):-1, :].float()
    targets = targets.to(logits.device)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                           reduction="sum")
    return loss, int((targets != -100).sum())
