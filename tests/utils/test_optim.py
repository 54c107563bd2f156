"""LR schedule multipliers worked by hand, and optimizer construction errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from verl.utils.optim import build_lr_scheduler, build_optimizer, lr_multiplier


def test_warmup_then_constant() -> None:
    assert [lr_multiplier(s, 4, 10, "constant") for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_from_one_to_min_ratio() -> None:
    # no warmup, 4 decay steps: 0.5*(1+cos(pi*k/4)) scaled into [0.1, 1]
    expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    got = [lr_multiplier(s, 0, 4, "cosine", 0.1) for s in range(5)]
    assert got == pytest.approx(expected)
    assert got[0] == pytest.approx(1.0) and got[-1] == pytest.approx(0.1)
    assert lr_multiplier(100, 0, 4, "cosine", 0.1) == pytest.approx(0.1)


def test_unknown_schedule_raises() -> None:
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        lr_multiplier(5, 0, 10, "linear")


def _optim(**overrides) -> SimpleNamespace:
    values = dict(
        lr=0.1,
        betas=(0.9, 0.999),
        weight_decay=0.0,
        strategy="adamw",
        lr_warmup_ratio=0.5,
        lr_warmup_steps=None,
        min_lr_ratio=None,
        lr_scheduler_type="constant",
        training_steps=4,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def test_scheduler_uses_warmup_ratio_of_training_steps() -> None:
    layer = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(layer, _optim())
    scheduler = build_lr_scheduler(optimizer, _optim())
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.05, 0.1, 0.1])  # 2 warmup steps (0.5 * 4)


def test_optimizer_needs_trainable_parameters() -> None:
    layer = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(layer, _optim())
