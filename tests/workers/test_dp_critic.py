"""Critic: values on response tokens only, and updates that fit the returns."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from verl.workers.critic.dp_critic import DataParallelCritic
from verl.workers.fsdp_workers import ValueHeadModel


def _config() -> SimpleNamespace:
    return SimpleNamespace(
        micro_batch_size_per_device_for_experience=2,
        micro_batch_size_per_device_for_update=2,
        global_batch_size_per_device=4,
        ppo_epochs=1,
        cliprange_value=100.0,
        loss_avg_mode="token-mean",
        max_grad_norm=1.0,
    )


def test_values_are_zero_on_padding_and_updates_fit_the_returns(model, make_vl_batch) -> None:
    critic_model = ValueHeadModel(copy.deepcopy(model))
    critic = DataParallelCritic(_config(), critic_model, torch.optim.Adam(critic_model.parameters(), lr=1e-2))
    batch = make_vl_batch(rows=4)
    mask = batch.batch["response_mask"]
    values = critic.compute_values(batch).batch["values"]
    assert values.shape == mask.shape
    assert (values[mask == 0] == 0).all()
    batch.batch["values"] = values
    batch.batch["returns"] = torch.ones_like(values) * mask

    def error() -> float:
        v = critic.compute_values(batch).batch["values"]
        return float((((v - batch.batch["returns"]) ** 2) * mask).sum() / mask.sum())

    before = error()
    for _ in range(5):
        metrics = critic.update_critic(batch)
    assert error() < before * 0.5
    assert len(metrics["critic/vf_loss"]) == 2 and metrics["critic/grad_norm"]
