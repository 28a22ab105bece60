"""LoRA layers: which linear layers get them, and wrapping the model with peft."""

from __future__ import annotations

from typing import Any

from msce.errors import ConfigError
from msce.train.options import LoraOptions, Log

_VISION_PARTS = ("visual", "vision_tower", "vision_model", "vision_encoder", "image_encoder")
_PROJECTOR_WORDS = ("merger", "projector")


def lora_target_modules(model: Any, lora: LoraOptions) -> list[str]:
    """Full names of the linear layers that get LoRA (see :class:`LoraOptions`)."""
    import torch.nn as nn

    wanted = set(lora.target_modules)
    all_linear = "all-linear" in wanted
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or mod is head:
            continue
        parts = name.split(".")
        if any(p in _VISION_PARTS for p in parts):
            if lora.train_vision and not any(w in p for p in parts for w in _PROJECTOR_WORDS):
                names.append(name)
        elif all_linear or parts[-1] in wanted:
            names.append(name)
    if not any(not any(p in _VISION_PARTS for p in n.split(".")) for n in names):
        raise ConfigError(f"no linear layer of the language model matches target_modules {sorted(wanted)}")
    return names


def _apply_lora(model: Any, lora: LoraOptions, gradient_checkpointing: bool, log: Log):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ConfigError(f"fine-tuning needs peft (pip install 'msce[finetune]'): {exc}") from None
    targets = lora_target_modules(model, lora)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.scale_alpha, lora_dropout=float(lora.dropout),
                     target_modules=targets, bias="none")
    peft_model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    n_vision = sum(1 for n in targets if any(p in _VISION_PARTS for p in n.split(".")))
    log(f"LoRA r={lora.r} alpha={lora.scale_alpha:g} on {len(targets) - n_vision} language-model and "
        f"{n_vision} vision linear layers: {trainable:,} trainable of {total:,} parameters "
        f"({100.0 * trainable / max(total, 1):.3f} %)")
    return peft_model, targets, trainable
