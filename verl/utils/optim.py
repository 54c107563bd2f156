"""Optimizer and learning-rate schedule construction for the actor and critic."""

from __future__ import annotations

import math
from typing import Any

import torch


def lr_multiplier(step: int, warmup_steps: int, total_steps: int, kind: str, min_lr_ratio: float = 0.0) -> float:
    """Factor applied to the base LR at optimizer step ``step`` (0-based).

    Linear warmup from 0 over ``warmup_steps``, then ``constant`` (1.0) or ``cosine`` decay from 1.0 to
    ``min_lr_ratio`` at ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        decay_steps = max(total_steps - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr_scheduler_type {kind!r}; expected 'constant' or 'cosine'")


def warmup_steps_of(optim_config: Any) -> int:
    """``lr_warmup_steps`` when set, else ``lr_warmup_ratio`` of the training steps."""
    if optim_config.lr_warmup_steps is not None:
        return int(optim_config.lr_warmup_steps)
    return int(optim_config.lr_warmup_ratio * max(optim_config.training_steps, 0))


def build_optimizer(module: torch.nn.Module, optim_config: Any) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters.

    ``adamw`` keeps the optimizer state in the parameters' dtype (fp32 master weights by default);
    ``adamw_bf16`` is the same optimizer over bf16 parameters, for models loaded with ``torch_dtype=bf16``,
    halving optimizer memory at some cost in precision.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (check freeze_vision_tower / LoRA settings)")
    if optim_config.strategy not in ("adamw", "adamw_bf16"):
        raise ValueError(f"unknown optim.strategy {optim_config.strategy!r}; expected 'adamw' or 'adamw_bf16'")
    return torch.optim.AdamW(
        params,
        lr=optim_config.lr,
        betas=tuple(optim_config.betas),
        weight_decay=optim_config.weight_decay,
        foreach=False,  # DTensor-friendly on every backend
    )


def build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_config: Any) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps_of(optim_config)
    total = max(int(optim_config.training_steps), 1)
    kind, min_ratio = optim_config.lr_scheduler_type, optim_config.min_lr_ratio or 0.0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, warmup, total, kind, min_ratio)
    )
