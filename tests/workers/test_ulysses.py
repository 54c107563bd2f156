"""Ulysses sequence parallelism: 2 gloo ranks with ``ulysses_size=2`` give the log-probs, loss and gradients of
one rank with ``ulysses_size=1`` on the same batch (Qwen2.5-VL with images, and text-only Qwen2 with fewer
key/value heads than ranks, with SDPA and eager attention), padded and padding-free, under FSDP2; and the
values, loss and gradients of the Qwen2.5-VL critic."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from verl.protocol import DataProto
from verl.utils import ulysses
from verl.utils.ulysses import SequenceParallel, config_problem

WORLD = 2
_MODES = {
    "qwen2_5_vl": (False, True),
    "qwen2": (False, True),
    "qwen2_eager": (True,),
    "qwen2_5_vl_critic": (False,),
}
"""Padded (False) and padding-free (True) runs per case; the critic runs padded only, and the eager attention
(an additive mask instead of SDPA's boolean one) packed."""


def _actor_config(padding_free: bool) -> SimpleNamespace:
    return SimpleNamespace(
        micro_batch_size_per_device_for_experience=2,
        micro_batch_size_per_device_for_update=2,
        global_batch_size_per_device=4,
        ppo_epochs=1,
        max_grad_norm=1e9,
        clip_ratio_low=0.2,
        clip_ratio_high=0.3,
        clip_ratio_dual=3.0,
        loss_type="default",
        tau_positive=1.0,
        tau_negative=1.05,
        loss_avg_mode="token-mean",
        use_kl_loss=False,
        disable_kl=False,
        kl_penalty="low_var_kl",
        kl_coef=0.0,
        entropy_coeff=0.01,
        padding_free=padding_free,
        dynamic_batching=False,
        max_token_len_per_device=None,
        use_torch_compile=False,
    )


def _critic_config() -> SimpleNamespace:
    return SimpleNamespace(
        micro_batch_size_per_device_for_experience=2,
        micro_batch_size_per_device_for_update=2,
        global_batch_size_per_device=4,
        ppo_epochs=1,
        max_grad_norm=1e9,
        cliprange_value=0.5,
        loss_avg_mode="token-mean",
        padding_free=False,
        dynamic_batching=False,
        max_token_len_per_device=None,
    )


_FSDP = SimpleNamespace(
    fsdp_size=-1, enable_full_shard=True, enable_cpu_offload=False, mp_param_dtype="fp32", mp_reduce_dtype="fp32"
)


def _with_advantages(batch: DataProto) -> DataProto:
    data = copy.copy(batch)
    data.batch = batch.batch.clone()
    signs = torch.tensor([1.0, -0.5, 2.0, -1.0])[: len(batch)]
    data.batch["advantages"] = signs[:, None] * data.batch["response_mask"]
    data.batch["values"] = torch.zeros_like(data.batch["advantages"])
    data.batch["returns"] = data.batch["advantages"] * 0.3  # the critic's targets
    return data


def _run(model: torch.nn.Module, data: DataProto, padding_free: bool, sp: SequenceParallel | None) -> dict:
    """Log-probs (or values, for a critic) of ``data``, then one SGD step (lr 1: the weight change is minus the
    gradient)."""
    from verl.utils import fsdp_utils
    from verl.workers.actor.dp_actor import DataParallelActor
    from verl.workers.critic.dp_critic import DataParallelCritic
    from verl.workers.fsdp_workers import ValueHeadModel

    if sp is not None:
        sp.install(model)
        model = fsdp_utils.apply_fsdp2(model, _FSDP, torch.device("cpu"), WORLD)
    before = {name: _full(p).clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    run = sp.run if sp is not None else (lambda compute, rows: compute(rows))
    if isinstance(model, ValueHeadModel):
        critic = DataParallelCritic(_critic_config(), model, optimizer)
        outputs = run(critic.compute_values, data).batch["values"]
        loss = run(critic.update_critic, data)["critic/vf_loss"]
    else:
        actor = DataParallelActor(_actor_config(padding_free), model, optimizer)
        outputs = run(actor.compute_log_prob, data).batch["log_probs"]
        loss = run(actor.update_policy, data)["actor/pg_loss"]
    grads = {name: before[name] - _full(p) for name, p in model.named_parameters()}
    return {"outputs": outputs, "loss": loss, "grads": grads}


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor().detach() if hasattr(tensor, "full_tensor") else tensor.detach()


def _rank(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    cases = torch.load(f"{out}/cases.pt", weights_only=False)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        sp = SequenceParallel(WORLD, "worker.actor.ulysses_size")
        results = {}
        for name, (model, batch) in cases.items():
            half = len(batch) // WORLD
            own = _with_advantages(batch)[rank * half : (rank + 1) * half]  # the group gathers both halves
            for padding_free in _MODES[name]:
                key = f"{name}/{'padding_free' if padding_free else 'padded'}"
                start = time.perf_counter()
                results[key] = _run(copy.deepcopy(model), own, padding_free, sp)
                results[key]["seconds"] = time.perf_counter() - start
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _critic(model: torch.nn.Module) -> torch.nn.Module:
    """The VL model with a value head (random, not the zero init, so the backbone gets a gradient)."""
    from verl.workers.fsdp_workers import ValueHeadModel

    critic = ValueHeadModel(copy.deepcopy(model))
    torch.manual_seed(1)
    torch.nn.init.normal_(critic.value_head.weight, std=0.1)
    return critic


def _text_model_and_batch(attention: str = "sdpa") -> tuple[torch.nn.Module, DataProto]:
    """A random Qwen2 with 4 query heads and 1 key/value head (repeated to 2 for the exchange), and a batch of
    left-padded prompts and right-padded responses."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=256,
        attn_implementation=attention,
    )
    model = Qwen2ForCausalLM(config).float()
    prompt_lengths, response_lengths, prompt, response = [5, 9, 3, 7], [6, 2, 8, 5], 9, 8
    ids = torch.randint(3, 300, (4, prompt + response))
    mask = torch.zeros_like(ids)
    for row, (p, r) in enumerate(zip(prompt_lengths, response_lengths)):
        mask[row, prompt - p : prompt + r] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = DataProto.from_dict(
        tensors={
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "responses": ids[:, prompt:],
            "response_mask": mask[:, prompt:],
        }
    )
    return model, batch


@pytest.mark.slow
def test_two_ranks_with_ulysses_size_2_equal_one_rank(tmp_path: Path, model, make_vl_batch) -> None:
    vl_batch = make_vl_batch(rows=4, response_length=8)
    cases = {
        "qwen2_5_vl": (model, vl_batch),
        "qwen2": _text_model_and_batch(),
        "qwen2_eager": _text_model_and_batch("eager"),
        "qwen2_5_vl_critic": (_critic(model), vl_batch),
    }
    torch.save(cases, tmp_path / "cases.pt")  # files, not pipes: the ranks load the models and batches
    start = time.perf_counter()
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    spawned = time.perf_counter() - start
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for name, (reference_model, batch) in cases.items():
        data = _with_advantages(batch)
        # The VL batch's prompts hold images; the text batch's second micro-batch is 15 columns long padded and
        # 23 tokens packed, so the padding to a multiple of ulysses_size is exercised as well.
        for mode in ("padding_free" if padding_free else "padded" for padding_free in _MODES[name]):
            ours = [r[f"{name}/{mode}"] for r in ranks]
            expected = _run(copy.deepcopy(reference_model), data, mode == "padding_free", None)
            outputs = torch.cat([o["outputs"] for o in ours])  # each rank returns its own rows
            torch.testing.assert_close(outputs, expected["outputs"], atol=1e-5, rtol=1e-5)
            for o in ours:  # the loss is the mini-batch's, on both ranks of the group
                torch.testing.assert_close(o["loss"], expected["loss"], atol=1e-5, rtol=1e-5)
                assert o["grads"].keys() == expected["grads"].keys()
                for param, grad in expected["grads"].items():
                    torch.testing.assert_close(o["grads"][param], grad, atol=2e-5, rtol=1e-4, msg=param)
            moved = sum(float(g.abs().sum()) for g in expected["grads"].values())
            assert moved > 0, "the reference update changed no weight: the comparison would prove nothing"
    print(
        f"2-rank ulysses check: {spawned:.1f}s spawned, per case {[round(v['seconds'], 1) for v in ranks[0].values()]}"
    )


def test_config_problem_names_the_key_and_the_reason(tiny_vl) -> None:
    from transformers import AutoConfig, LlamaConfig

    vl = AutoConfig.from_pretrained(tiny_vl)  # 2 attention heads
    assert config_problem(vl, 1, "worker.actor.ulysses_size") is None
    assert config_problem(vl, 2, "worker.actor.ulysses_size") is None
    problem = config_problem(vl, 4, "worker.critic.ulysses_size")
    assert problem.startswith("worker.critic.ulysses_size=4 must divide the model's 2 attention heads")
    llama = LlamaConfig(num_attention_heads=4)
    problem = config_problem(llama, 2, "worker.actor.ulysses_size")
    assert "built for Qwen2, Qwen2-VL and Qwen2.5-VL models, not model_type 'llama'" in problem


def test_language_model_is_found_inside_wrappers_and_other_families_are_refused(model) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    assert type(ulysses.language_model(model)).__name__ == "Qwen2_5_VLTextModel"
    llama = LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    with pytest.raises(ValueError, match="LlamaForCausalLM holds none of them"):
        ulysses.language_model(llama)


@pytest.fixture
def group_of_one(tmp_path: Path):
    """A gloo process group of one rank in the test process, torn down afterwards."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_an_installed_model_is_unchanged_outside_and_inside_a_group_of_one(group_of_one, model, make_vl_batch) -> None:
    """Outside ``active()`` the hooks and the registered attention are the base model's (the HF rollout
    generates with the actor's module); inside, a group of one runs the whole split/exchange/gather path."""
    batch = make_vl_batch(rows=2)
    b, mm = batch.batch, batch.non_tensor_batch["multi_modal_inputs"]
    inputs = dict(
        input_ids=b["input_ids"],
        attention_mask=b["attention_mask"],
        position_ids=b["position_ids"].transpose(0, 1),
        pixel_values=torch.cat([m["pixel_values"] for m in mm]),
        image_grid_thw=torch.cat([m["image_grid_thw"] for m in mm]),
        use_cache=False,
    )
    installed = copy.deepcopy(model)
    sp = SequenceParallel(1, "worker.actor.ulysses_size")
    sp.install(installed)
    assert installed.config.text_config._attn_implementation == "ulysses_sdpa"
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.testing.assert_close(installed(**inputs).logits, expected)
        with sp.active():  # padding positions' outputs are dropped, and differ: compare the real tokens'
            real = b["attention_mask"].bool()
            torch.testing.assert_close(installed(**inputs).logits[real], expected[real], atol=1e-5, rtol=1e-5)
        prompt = {k: v for k, v in inputs.items() if k not in ("position_ids", "use_cache")}
        generate = dict(max_new_tokens=3, do_sample=False, pad_token_id=0)
        assert torch.equal(installed.generate(**prompt, **generate), model.generate(**prompt, **generate))
