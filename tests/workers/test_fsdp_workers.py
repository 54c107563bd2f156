"""FSDP worker on 2 gloo ranks under Ray: sharded log-probs, an update, weight gathering; LoRA merging."""

from __future__ import annotations

import copy
import os

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
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
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


@pytest.mark.slow
def test_hf_rollout_on_two_sharded_ranks_generates_what_the_unsharded_model_does(
    ray_local, tiny_dir, tiny_vl, tiny_tokenizer, tiny_processor, model
) -> None:
    """The HF engine generates with the FSDP-sharded actor itself: generate() runs the vision tower before its
    first forward, so the root's parameters must be gathered around generate() too (they were left as shards:
    "mixed torch.Tensor and DTensor" in the patch embedding). Greedy tokens equal the unsharded model's."""
    from verl.single_controller import RayResourcePool, RayWorkerGroup
    from verl.workers.fsdp_workers import FSDPWorker
    from verl.workers.rollout import build_rollout

    config = _config(tiny_vl, **{"worker.rollout.name": "hf", "worker.rollout.dtype": "fp32"})
    from verl.protocol import DataProto
    from verl.utils.dataset import RLHFDataset, collate_fn

    ds = RLHFDataset(str(tiny_dir / "data" / "val.parquet"), tiny_tokenizer, tiny_processor, max_prompt_length=64)
    rows = collate_fn([ds[i] for i in range(4)])
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data", "multi_modal_inputs")
    prompts = DataProto.from_single_dict({k: rows[k] for k in keys})
    assert all(row["images"] for row in prompts.non_tensor_batch["multi_modal_data"])
    prompts.meta_info = {"do_sample": False}
    pool = RayResourcePool([2], use_gpu=False)
    group = RayWorkerGroup(pool, FSDPWorker, config.worker, "actor_rollout", name_prefix="fsdp_hf_test")
    try:
        group.init_model()
        sharded = group.generate_sequences(prompts)
    finally:
        group.shutdown()
    alone = build_rollout(config.worker.rollout, "", tiny_tokenizer, tiny_processor, module=model)
    expected = alone.generate_sequences(prompts)
    assert torch.equal(sharded.batch["responses"], expected.batch["responses"])


@pytest.mark.slow
def test_sequence_parallel_group_of_two_ranks_computes_and_trains_the_unsharded_model(
    ray_local, tiny_vl, model, make_vl_batch, reference_log_probs
) -> None:
    """``ulysses_size=2`` through the worker: both ranks share the 4 rows (the driver still sends each rank 2),
    packed, in token-budget micro-batches, with gradient checkpointing (the recomputed attention sees the whole
    sequence again)."""
    from verl.single_controller import RayResourcePool, RayWorkerGroup
    from verl.workers.fsdp_workers import FSDPWorker

    config = _config(
        tiny_vl,
        **{
            "worker.actor.ulysses_size": 2,
            "worker.actor.padding_free": True,
            "worker.actor.model.enable_gradient_checkpointing": True,
            "worker.actor.micro_batch_size_per_device_for_update": 2,
            "worker.actor.dynamic_batching": True,
            "worker.actor.max_token_len_per_device": 150,
        },
    )
    assert config.worker.actor.global_batch_size_per_device == 4  # 2 prompts x 2 responses on 1 data-parallel rank
    group = RayWorkerGroup(RayResourcePool([2], use_gpu=False), FSDPWorker, config.worker, "actor", name_prefix="sp")
    try:
        group.init_model()
        batch = make_vl_batch(rows=4)
        out = group.compute_log_probs(batch)
        expected = reference_log_probs(model, batch)
        torch.testing.assert_close(out.batch["old_log_probs"], expected, atol=1e-5, rtol=1e-4)
        data = copy.copy(batch)
        data.batch = batch.batch.clone()
        data.batch["old_log_probs"] = out.batch["old_log_probs"]
        data.batch["advantages"] = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * data.batch["response_mask"]
        metrics = group.update_actor(data).meta_info["metrics"]
        losses, norms = metrics["actor/pg_loss"], metrics["actor/grad_norm"]  # rank 0's values, then rank 1's
        half = len(losses) // 2
        assert losses[:half] == losses[half:], "the two ranks of the group compute the same losses"
        assert len(norms) == 2 and norms[0] == norms[1] and all(torch.isfinite(torch.tensor(norms)))
        new = group.compute_log_probs(batch).batch["old_log_probs"]
        mask = batch.batch["response_mask"]

        def surrogate(lp: torch.Tensor) -> float:
            return float(-(data.batch["advantages"] * lp * mask).sum() / mask.sum())

        assert surrogate(new) < surrogate(expected), "the update lowers the loss on this batch"
    finally:
        group.shutdown()


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


# ------------------------------------------------------------------ one rank in this process (no Ray)


@pytest.fixture
def one_rank(monkeypatch):
    """A process group of one in the test process for workers built directly; torn down afterwards."""
    import socket

    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    if dist.is_initialized():
        dist.destroy_process_group()


def _worker(tiny_vl, role: str = "actor", **overrides):
    from verl.workers.fsdp_workers import FSDPWorker

    config = _config(tiny_vl, **{"trainer.n_gpus_per_node": 1, **overrides})
    worker = FSDPWorker(config.worker, role)
    worker.init_model()
    return worker


def _lora_a(worker) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in worker.actor.module.named_parameters() if "lora_A" in n}


def test_trainer_seed_seeds_model_init(one_rank, tiny_vl) -> None:
    """LoRA's A matrices are drawn at init: the same trainer.seed draws the same ones, another seed others."""
    lora = {"worker.actor.model.lora.rank": 4, "worker.actor.model.lora.target_modules": "q_proj,v_proj"}
    first = _worker(tiny_vl, **{"trainer.seed": 7, **lora})
    assert torch.initial_seed() == 7  # seed + rank 0
    again = _lora_a(_worker(tiny_vl, **{"trainer.seed": 7, **lora}))
    other = _lora_a(_worker(tiny_vl, **{"trainer.seed": 8, **lora}))
    assert torch.initial_seed() == 8
    drawn = _lora_a(first)
    assert drawn and drawn.keys() == again.keys() == other.keys()
    assert all(torch.equal(drawn[k], again[k]) for k in drawn)
    assert not any(torch.equal(drawn[k], other[k]) for k in drawn)


def test_save_model_only_checkpoints_resume_with_a_fresh_optimizer(one_rank, tiny_vl, tmp_path, caplog) -> None:
    from torch.distributed.checkpoint import FileSystemReader

    saver = _worker(tiny_vl, **{"trainer.save_model_only": True})
    with torch.no_grad():
        next(saver.actor.module.parameters()).add_(0.5)  # something a fresh load would not have
    saver.save_checkpoint(str(tmp_path / "actor"))
    stored = FileSystemReader(str(tmp_path / "actor" / "dcp")).read_metadata().state_dict_metadata
    assert any(k.startswith("model") for k in stored) and not any(k.startswith("optimizer") for k in stored)
    assert torch.load(tmp_path / "actor" / "extra_state_rank_0.pt", weights_only=False)["model_only"] is True

    resumed = _worker(tiny_vl)
    with caplog.at_level("WARNING"):
        resumed.load_checkpoint(str(tmp_path / "actor"))
    assert "save_model_only=true (no optimizer state)" in caplog.text
    expected = dict(saver.actor.module.named_parameters())
    for name, value in resumed.actor.module.named_parameters():
        torch.testing.assert_close(value, expected[name], msg=name)
    assert len(resumed.actor.optimizer.state) == 0


def test_ref_and_critic_offload_move_their_weights_around_each_phase(
    one_rank, tiny_vl, make_vl_batch, monkeypatch
) -> None:
    from verl.utils import fsdp_utils

    calls: list[tuple[str, str]] = []

    def record(action: str):
        def call(target, *args) -> None:
            kind = "optimizer" if isinstance(target, torch.optim.Optimizer) else "module"
            calls.append((action, kind))

        return call

    for name in ("offload_module", "load_module", "offload_optimizer", "load_optimizer"):
        monkeypatch.setattr(fsdp_utils, name, record(name))
    batch = make_vl_batch(rows=2)

    ref = _worker(tiny_vl, "ref", **{"worker.ref.offload.offload_params": True})
    assert calls == [("offload_module", "module")], "offloaded once built"
    calls.clear()
    ref.compute_ref_log_probs(batch)
    assert calls == [("load_module", "module"), ("offload_module", "module")]

    calls.clear()
    critic_keys = {
        "worker.critic.model.model_path": str(tiny_vl),
        "worker.critic.model.enable_gradient_checkpointing": False,
        "worker.critic.offload.offload_params": True,
        "worker.critic.offload.offload_optimizer": True,
    }
    critic = _worker(tiny_vl, "critic", **critic_keys)
    assert calls == [("offload_module", "module"), ("offload_optimizer", "optimizer")]
    calls.clear()
    values = critic.compute_values(batch).batch["values"]
    assert calls == [("load_module", "module"), ("offload_module", "module")]
    calls.clear()
    data = copy.copy(batch)
    data.batch = batch.batch.clone()
    data.batch["values"], data.batch["returns"] = values, torch.ones_like(values) * batch.batch["response_mask"]
    critic.update_critic(data)
    assert calls == [
        ("load_module", "module"),
        ("load_optimizer", "optimizer"),
        ("offload_module", "module"),
        ("offload_optimizer", "optimizer"),
    ]


def test_rank0_init_meta_model_gets_rank0_weights_and_buffers(one_rank, tiny_vl, model, make_vl_batch) -> None:
    """The path of the ranks other than 0: the architecture on the meta device, sharded, then filled with rank
    0's weights and buffers (the rotary frequencies are not in the state dict); it then computes exactly what
    the loaded model does."""
    import torch.distributed as dist

    from verl.utils import fsdp_utils
    from verl.workers.actor.dp_actor import DataParallelActor
    from verl.workers.fsdp_workers import load_hf_model

    config = _config(tiny_vl)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}", rank=0, world_size=1)
    cpu = torch.device("cpu")
    loaded = load_hf_model(config.worker.actor.model, torch.float32, cpu)
    bare = load_hf_model(config.worker.actor.model, torch.float32, cpu, on_meta=True)
    assert fsdp_utils.is_on_meta(bare) and not fsdp_utils.is_on_meta(loaded)
    state, buffers = fsdp_utils.rank0_state(loaded, rank=0)
    assert any("inv_freq" in name for name in buffers) and not any("inv_freq" in name for name in state)
    sharded = fsdp_utils.apply_fsdp2(bare, config.worker.actor.fsdp, cpu, world_size=1)
    fsdp_utils.load_from_rank0(sharded, state, buffers)
    batch = make_vl_batch(rows=2)
    expected = DataParallelActor(config.worker.actor, model).compute_log_prob(batch).batch["log_probs"]
    got = DataParallelActor(config.worker.actor, sharded).compute_log_prob(batch).batch["log_probs"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_fsdp_size_gives_a_hybrid_mesh_or_a_clear_error() -> None:
    from verl.utils.fsdp_utils import mesh_shape

    assert mesh_shape(8, -1) == (8,) and mesh_shape(8, 8) == (8,)
    assert mesh_shape(8, 2) == (4, 2) and mesh_shape(2, 1) == (2, 1)
    for bad in (3, 16, 0):
        with pytest.raises(
            ValueError, match=f"fsdp.fsdp_size={bad} ranks per sharding group must divide the world size 8"
        ):
            mesh_shape(8, bad)


@pytest.mark.slow
def test_hybrid_shard_with_rank0_init_matches_the_unsharded_model(
    ray_local, tiny_vl, model, make_vl_batch, reference_log_probs
) -> None:
    """fsdp_size=1 on 2 ranks: a (2, 1) mesh, weights replicated (each rank a whole copy), loaded on rank 0
    only and broadcast; log-probs equal the local model's and one update changes the weights."""
    from verl.single_controller import RayResourcePool, RayWorkerGroup
    from verl.workers.fsdp_workers import FSDPWorker

    config = _config(tiny_vl, **{"worker.actor.fsdp.fsdp_size": 1, "worker.actor.fsdp.enable_rank0_init": True})
    group = RayWorkerGroup(RayResourcePool([2], use_gpu=False), FSDPWorker, config.worker, "actor", name_prefix="hsdp")
    try:
        group.init_model()
        batch = make_vl_batch(rows=4)
        out = group.compute_log_probs(batch)
        torch.testing.assert_close(out.batch["old_log_probs"], reference_log_probs(model, batch), atol=1e-5, rtol=1e-4)
        before = group.actor_state_dict()
        data = copy.copy(batch)
        data.batch = batch.batch.clone()
        data.batch["old_log_probs"] = out.batch["old_log_probs"]
        data.batch["advantages"] = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * data.batch["response_mask"]
        metrics = group.update_actor(data).meta_info["metrics"]
        assert metrics["actor/grad_norm"] and all(torch.isfinite(torch.tensor(metrics["actor/grad_norm"])))
        after = group.actor_state_dict()
        assert any(not torch.equal(after[n], before[n]) for n in after), "one update must change the weights"
    finally:
        group.shutdown()
