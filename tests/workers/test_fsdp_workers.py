"""FSDP worker on 2 gloo ranks under Ray: sharded log-probs, an update, weight gathering; LoRA merging."""

from __future__ import annotations

import copy

import pytest
import torch

from verl.trainer.config import PPOConfig
from verl.utils.config_utils import load_config
from verl.workers.fsdp_workers import merged_lora_weights


def _config(tiny_vl, **overrides) -> PPOConfig:
    values = {
        "worker.actor.model.model_path": str(tiny_vl),
        "worker.actor.model.enable_gradient_checkpointing": False,
        "worker.actor.fsdp.mp_param_dtype": "fp32",
        "worker.actor.fsdp.torch_dtype": "fp32",
        "worker.actor.optim.lr": 1e-3,
        "worker.actor.padding_free": False,
        "worker.actor.micro_batch_size_per_device_for_update": 1,
        "worker.actor.micro_batch_size_per_device_for_experience": 2,
        "worker.actor.global_batch_size": 2,
        "worker.rollout.n": 2,
        "worker.rollout.temperature": 1.0,
        "data.rollout_batch_size": 2,
        "data.max_prompt_length": 64,
        "data.max_response_length": 8,
        "trainer.n_gpus_per_node": 2,
    }
    values.update(overrides)
    return load_config(PPOConfig, overrides=values)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def actor_group(ray_local, tiny_vl):
    from verl.single_controller import RayResourcePool, RayWorkerGroup
    from verl.workers.fsdp_workers import FSDPWorker

    config = _config(tiny_vl)
    pool = RayResourcePool([2], use_gpu=False)
    group = RayWorkerGroup(pool, FSDPWorker, config.worker, "actor", name_prefix="fsdp_test")
    group.init_model()
    yield group
    group.shutdown()


@pytest.mark.slow
def test_sharded_log_probs_equal_unsharded_and_update_changes_weights(
    actor_group, model, make_vl_batch, reference_log_probs
) -> None:
    batch = make_vl_batch(rows=4)
    out = actor_group.compute_log_probs(batch)
    assert out.batch["old_log_probs"].shape == (4, 8)
    torch.testing.assert_close(out.batch["old_log_probs"], reference_log_probs(model, batch), atol=1e-5, rtol=1e-4)

    before = actor_group.actor_state_dict()
    reference = model.state_dict()
    assert before.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(before[name], tensor, msg=name)

    data = copy.copy(batch)
    data.batch = batch.batch.clone()
    data.batch["old_log_probs"] = out.batch["old_log_probs"]
    data.batch["advantages"] = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * data.batch["response_mask"]
    result = actor_group.update_actor(data)
    metrics = result.meta_info["metrics"]
    assert metrics["actor/grad_norm"] and all(torch.isfinite(torch.tensor(metrics["actor/grad_norm"])))
    after = actor_group.actor_state_dict()
    changed = [n for n in after if not torch.equal(after[n], before[n])]
    assert changed, "one update must change the weights"

    new = actor_group.compute_log_probs(batch).batch["old_log_probs"]
    mask = batch.batch["response_mask"]

    def surrogate(lp: torch.Tensor) -> float:
        return float(-(data.batch["advantages"] * lp * mask).sum() / mask.sum())

    assert surrogate(new) < surrogate(out.batch["old_log_probs"]), "the update lowers the loss on this batch"


def test_lora_merge_equals_peft_merge(tiny_dir) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir / "qwen2_text", dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # B starts at zero; make the adapters do something
    ours = dict(merged_lora_weights(iter(peft_model.state_dict().items()), scaling=8 / 4))
    expected = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    assert ours.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-6, rtol=1e-6, msg=name)
    original = peft_model.state_dict()["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"]
    assert not torch.equal(ours["model.layers.0.self_attn.q_proj.weight"], original), "the adapters were merged"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal of FSDP1")
def test_fsdp1_on_cpu_ranks_is_refused_with_a_clear_error(ray_local, tiny_vl) -> None:
    from verl.single_controller import RayResourcePool, RayWorkerGroup, WorkerError
    from verl.workers.fsdp_workers import FSDPWorker

    config = _config(tiny_vl, **{"worker.actor.fsdp.fsdp_version": 1})
    group = RayWorkerGroup(
        RayResourcePool([2], use_gpu=False), FSDPWorker, config.worker, "actor", name_prefix="fsdp1_test"
    )
    try:
        with pytest.raises(WorkerError, match=r"init_model raised on rank .*fsdp_version=1 \(FSDP1\) needs a GPU"):
            group.init_model()
    finally:
        group.shutdown()


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_skips_the_update_on_every_rank(actor_group, make_vl_batch) -> None:
    from verl.single_controller import Dispatch

    batch = make_vl_batch(rows=4)
    data = copy.copy(batch)
    data.batch = batch.batch.clone()
    data.batch["old_log_probs"] = actor_group.compute_log_probs(batch).batch["old_log_probs"]
    advantages = torch.tensor([1.0, -1.0, 1.0, float("nan")])  # only rank 1's rows (2, 3) see the NaN
    data.batch["advantages"] = advantages[:, None] * data.batch["response_mask"]
    before = actor_group.actor_state_dict()
    # Not blocking, so that ranks stuck in a collective fail the test instead of hanging it.
    future = actor_group._call("update_actor", Dispatch.DP_COMPUTE_PROTO, False, (data,), {})
    metrics = future.get(timeout_s=120).meta_info["metrics"]
    # the driver sees every rank's metrics: rank 0's own loss was finite, it skipped because rank 1's was not
    assert metrics["actor/non_finite_skipped"] == [1.0, 1.0], metrics
    assert not metrics.get("actor/grad_norm")
    after = actor_group.actor_state_dict()
    assert all(torch.equal(after[name], before[name]) for name in before), "no rank applied the update"
