"""Class-balanced LoRA fine-tuning on msce's inputs (the paper's decoupled training, Sec. 4.1).

The paper fine-tunes Qwen2.5-VL with LoRA on about 1,500 MAFW videos drawn so that every
class has the same number of clips, which spreads the predictions across classes and
lifts the tail classes. :func:`finetune` (``msce finetune``) does this on any
transformers Qwen-VL model with exactly the frames, prompts and metrics of ``msce eval``:

Data
    Training clips are the split's train part (the balanced or official test clips are
    never trained on: the sampler refuses them). A :class:`msce.train.sampling.ClassBalancedSampler`
    draws ``n_per_class`` clips of every class (undersampling, or oversampling small
    classes), seeded; its class histogram is printed and recorded.

Inputs
    Each example is what the strategy sends at inference, as one chat turn: frames
    loaded by the core (``msce.load`` / ``msce.load_segments`` with the strategy's plan
    and the backend's ``msce.QwenVL`` target) and the strategy's prompt, rendered and
    placeholder-expanded by the transformers backend (:meth:`TransformersBackend.build_inputs`).
    The assistant's answer is the class's display name (the word listed in the prompt's
    choices, e.g. ``"Happiness"``) followed by the chat template's end-of-turn token;
    the loss covers only those answer tokens.

    * ``sparse`` / ``dense``: the frames as one video, the question and the choices.
    * ``msce``: the stage-2 prompt (keyframes interleaved with gap descriptions). The
      gap descriptions come from the BASE model: before training, the MSCE strategy runs
      on every training clip the sampler will use (stage 1 as at inference; stage 2
      limited to one token), through the response cache, and the descriptions are kept
      in ``descriptions.jsonl``. The training prompt is rebuilt from them and checked to
      be identical to the stage-2 prompt the strategy rendered. At evaluation, MSCE runs
      both stages with the adapted model (``msce eval --adapter``), as it would be used.

Training
    LoRA (peft) on the language model's linear layers (vision tower frozen unless
    ``train_vision``: then its blocks get LoRA too; the vision-language projector stays
    frozen); AdamW with warmup and a cosine, linear or constant schedule; gradient
    accumulation with the loss averaged over all answer tokens of an optimizer step;
    bf16 autocast on CUDA (fp16 + loss scaling where bf16 is unsupported), fp32 on CPU.
    Inputs for the next step are built on a background thread while the model trains.

Output directory
    ``msce_finetune.json`` (data, split, sampler histogram, strategy, model, LoRA and
    optimizer settings, sessions), ``split.json``, ``train_log.jsonl`` (one line per
    optimizer step: loss, lr, answer tokens, time), ``descriptions.jsonl`` (msce only),
    ``checkpoints/step-NNNNNNN/`` (adapter, ``trainer_state.pt`` with optimizer,
    scheduler, loss-scaler and RNG states, step and sampler position), ``adapter/`` (the
    final adapter: ``adapter_config.json``, ``adapter_model.safetensors`` and a copy of
    ``msce_finetune.json``) and ``eval/`` (an ``msce eval`` run directory of the test
    split with the adapter). A run resumes from its latest checkpoint (``resume=True``)
    and continues the step count; settings that would change the result are checked.

This module gathers the public API; the code lives in :mod:`msce.train.options`
(settings, run-directory file names), :mod:`msce.train.encoding` (examples, batches,
answer loss), :mod:`msce.train.descriptions` (MSCE stage 1), :mod:`msce.train.lora`,
:mod:`msce.train.checkpoints`, :mod:`msce.train.loop` (:func:`finetune`) and
:mod:`msce.train.evaluation`; the command line is :mod:`msce.cli.finetune`.
"""

from __future__ import annotations

from msce.train.descriptions import describe_videos
from msce.train.encoding import Example, ExampleEncoder, answer_loss, collate
from msce.train.evaluation import confusion_text, evaluate_adapter
from msce.train.lora import lora_target_modules
from msce.train.loop import FinetuneResult, finetune
from msce.train.options import CONFIG_FILE, LoraOptions, SamplingOptions, TrainOptions

__all__ = [
    "LoraOptions",
    "TrainOptions",
    "SamplingOptions",
    "Example",
    "ExampleEncoder",
    "FinetuneResult",
    "finetune",
    "evaluate_adapter",
    "describe_videos",
    "lora_target_modules",
    "collate",
    "answer_loss",
    "confusion_text",
    "CONFIG_FILE",
]
