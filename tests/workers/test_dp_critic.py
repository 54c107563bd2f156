"""Critic: values on response tokens only, and updates that fit the returns."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from verl.workers.critic.dp_critic import DataParallelCritic
from verl.workers.fsdp_workers import ValueHeadModel


def _config(**overrides) -> SimpleNamespace:
    config = dict(
        micro_batch_size_per_device_for_experience=2,
        micro_batch_size_per_device_for_update=2,
        global_batch_size_per_device=4,
        ppo_epochs=1,
        cliprange_value=100.0,
        loss_avg_mode="token-mean",
        max_grad_norm=1.0,
        dynamic_batching=False,
        max_token_len_per_device=None,
        padding_free=False,
    )
    return SimpleNamespace(**{**config, **overrides})


def test_dynamic_batching_values_and_update_equal_fixed(model, make_vl_batch) -> None:
    batch = make_vl_batch(rows=4)
    lengths = sorted(batch.batch["attention_mask"].sum(-1).tolist())
    budget = int(lengths[-1] + lengths[0])  # forces mixed token-budget groups
    base = ValueHeadModel(copy.deepcopy(model))
    torch.nn.init.normal_(base.value_head.weight, std=0.02)
    results = {}
    for name, overrides in {
        "fixed": {"micro_batch_size_per_device_for_update": 1},
        "dynamic": {"dynamic_batching": True, "max_token_len_per_device": budget},
    }.items():
        module = copy.deepcopy(base)
        critic = DataParallelCritic(_config(**overrides), module, torch.optim.SGD(module.parameters(), lr=0.1))
        values = critic.compute_values(batch).batch["values"]
        data = copy.copy(batch)
        data.batch = batch.batch.clone()
        data.batch["values"] = values
        data.batch["returns"] = torch.ones_like(values) * data.batch["response_mask"]
        critic.update_critic(data)
        results[name] = (values, {k: v.detach().clone() for k, v in module.named_parameters()})
    torch.testing.assert_close(results["dynamic"][0], results["fixed"][0], atol=1e-5, rtol=1e-5)
    moved = float((results["fixed"][1]["value_head.weight"] - base.value_head.weight.detach()).abs().sum())
    assert moved > 0, "the update must change the weights"
    for key, value in results["fixed"][1].items():
        torch.testing.assert_close(results["dynamic"][1][key], value, atol=1e-6, rtol=1e-5)


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


def test_padding_free_values_equal_padded(model, make_vl_batch) -> None:
    batch = make_vl_batch(rows=4)
    critic_model = ValueHeadModel(copy.deepcopy(model))
    torch.nn.init.normal_(critic_model.value_head.weight, std=0.02)
    padded = DataParallelCritic(_config(), critic_model).compute_values(batch).batch["values"]
    packed = DataParallelCritic(_config(padding_free=True), critic_model).compute_values(batch).batch["values"]
    assert padded.abs().sum() > 0
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-4)


def test_padding_free_value_gradients_equal_padded(model, make_vl_batch) -> None:
    """The packed path reads the response values straight off the packed sequence: same gradients as padded."""
    batch = make_vl_batch(rows=4)
    critic_model = ValueHeadModel(copy.deepcopy(model))
    torch.nn.init.normal_(critic_model.value_head.weight, std=0.02)
    upstream = torch.randn(batch.batch["responses"].shape, generator=torch.Generator().manual_seed(0))
    grads = {}
    for padding_free in (False, True):
        critic_model.zero_grad(set_to_none=True)
        (
            DataParallelCritic(_config(padding_free=padding_free), critic_model)._values(batch) * upstream
        ).sum().backward()
        grads[padding_free] = {n: p.grad.clone() for n, p in critic_model.named_parameters() if p.grad is not None}
    assert grads[True].keys() == grads[False].keys() and grads[False]
    for name, value in grads[False].items():
        torch.testing.assert_close(grads[True][name], value, atol=1e-5, rtol=1e-4, msg=name)
