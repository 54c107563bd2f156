"""Actor on one rank: log-probs (padded, trimmed, padding-free) and the policy update's accumulation."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from verl.protocol import DataProto
from verl.workers.actor.dp_actor import DataParallelActor, micro_batches, partition_by_token_budget


def _actor_config(**overrides) -> SimpleNamespace:
    config = dict(
        micro_batch_size_per_device_for_experience=2,
        micro_batch_size_per_device_for_update=4,
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
        entropy_coeff=0.0,
        padding_free=False,
        dynamic_batching=False,
        max_token_len_per_device=None,
        use_torch_compile=False,
    )
    config.update(overrides)
    return SimpleNamespace(**config)


@pytest.fixture(scope="module")
def batch(make_vl_batch) -> DataProto:
    return make_vl_batch()


def test_log_probs_equal_unbatched_reference(model, batch, reference_log_probs) -> None:
    actor = DataParallelActor(_actor_config(), model)
    ours = actor.compute_log_prob(batch).batch["log_probs"]
    torch.testing.assert_close(ours, reference_log_probs(model, batch), atol=1e-5, rtol=1e-5)
    assert (ours[batch.batch["response_mask"] == 0] == 0).all()


def test_padding_free_log_probs_equal_padded(model, batch) -> None:
    padded = DataParallelActor(_actor_config(padding_free=False), model).compute_log_prob(batch, with_entropy=True)
    packed = DataParallelActor(_actor_config(padding_free=True), model).compute_log_prob(batch, with_entropy=True)
    torch.testing.assert_close(packed.batch["log_probs"], padded.batch["log_probs"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed.batch["entropies"], padded.batch["entropies"], atol=1e-5, rtol=1e-5)


def test_qwen3_vl_log_probs_padded_and_padding_free_equal_the_reference_and_update_trains(
    qwen3_vl_model, make_vl_batch, tiny_qwen3_vl, reference_log_probs
) -> None:
    """The same actor paths on Qwen3-VL (interleaved M-RoPE, DeepStack): padded and packed log-probs equal one
    plain forward, and a padding-free update moves both the language model and the vision tower."""
    from verl.utils.tokenizer import get_processor

    batch = make_vl_batch(processor=get_processor(str(tiny_qwen3_vl)))
    reference = reference_log_probs(qwen3_vl_model, batch)
    for padding_free in (False, True):
        actor = DataParallelActor(_actor_config(padding_free=padding_free), qwen3_vl_model)
        ours = actor.compute_log_prob(batch).batch["log_probs"]
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    data = _prepared(qwen3_vl_model, batch)
    before = {k: v.detach().clone() for k, v in qwen3_vl_model.named_parameters()}
    after = _updated_params(qwen3_vl_model, data, padding_free=True)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(".visual." in k for k in moved) and any("language_model" in k for k in moved)


def _prepared(model, batch: DataProto) -> DataProto:
    data = copy.copy(batch)
    data.batch = batch.batch.clone()
    old = DataParallelActor(_actor_config(), model).compute_log_prob(data).batch["log_probs"]
    data.batch["old_log_probs"] = old
    data.batch["advantages"] = torch.tensor([1.0, -0.5, 2.0, -1.0])[:, None] * data.batch["response_mask"]
    return data


def _updated_params(model, data: DataProto, **overrides) -> dict[str, torch.Tensor]:
    clone = copy.deepcopy(model)
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.1)
    DataParallelActor(_actor_config(**overrides), clone, optimizer).update_policy(data)
    return {k: v.detach().clone() for k, v in clone.named_parameters()}


@pytest.mark.parametrize("loss_avg_mode", ["token-mean", "seq-mean-token-mean"])
def test_gradient_accumulation_equals_one_big_batch(model, batch, loss_avg_mode) -> None:
    data = _prepared(model, batch)
    big = _updated_params(model, data, micro_batch_size_per_device_for_update=4, loss_avg_mode=loss_avg_mode)
    small = _updated_params(model, data, micro_batch_size_per_device_for_update=1, loss_avg_mode=loss_avg_mode)
    start = {k: v.detach() for k, v in model.named_parameters()}
    moved = sum(float((big[k] - start[k]).abs().sum()) for k in big)
    assert moved > 0, "the update must change the weights"
    for key in big:
        torch.testing.assert_close(small[key], big[key], atol=1e-6, rtol=1e-5)


def test_update_lowers_the_policy_loss_on_a_fixed_batch(model, batch) -> None:
    data = _prepared(model, batch)
    clone = copy.deepcopy(model)
    optimizer = torch.optim.Adam(clone.parameters(), lr=1e-3)
    actor = DataParallelActor(_actor_config(), clone, optimizer)

    def surrogate() -> float:
        lp = actor.compute_log_prob(data).batch["log_probs"]
        mask = data.batch["response_mask"]
        return float(-(data.batch["advantages"] * lp * mask).sum() / mask.sum())

    before = surrogate()
    for _ in range(3):
        metrics = actor.update_policy(data)
    assert surrogate() < before
    assert all(torch.isfinite(torch.tensor(v)).all() for v in metrics["actor/grad_norm"])
    assert metrics["actor/non_finite_skipped"] == [0.0]


def test_non_finite_loss_skips_the_update(model, batch, caplog) -> None:
    data = _prepared(model, batch)
    data.batch["advantages"] = data.batch["advantages"] * float("nan")
    clone = copy.deepcopy(model)
    before = {k: v.detach().clone() for k, v in clone.named_parameters()}
    actor = DataParallelActor(_actor_config(), clone, torch.optim.SGD(clone.parameters(), lr=0.1))
    metrics = actor.update_policy(data)
    assert metrics["actor/non_finite_skipped"] == [1.0] and actor.non_finite_updates == 1
    assert "skipped an actor update: the loss is not finite" in caplog.text
    for key, value in clone.named_parameters():
        assert torch.equal(value, before[key])


def test_gradient_checkpointing_gives_the_same_update(model, batch) -> None:
    data = _prepared(model, batch)
    plain = _updated_params(model, data)
    checkpointed = copy.deepcopy(model)
    checkpointed.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.SGD(checkpointed.parameters(), lr=0.1)
    DataParallelActor(_actor_config(), checkpointed, optimizer).update_policy(data)
    for name, value in checkpointed.named_parameters():
        torch.testing.assert_close(value.detach(), plain[name], atol=1e-6, rtol=1e-5)


def test_on_policy_update_without_old_log_probs_equals_the_recomputed_one(model, batch) -> None:
    """With one epoch over one mini-batch the old policy is the current one: leaving ``old_log_probs`` out
    (the trainer then skips that pass) gives the same update as passing them in."""
    data = _prepared(model, batch)
    without = copy.copy(data)
    without.batch = data.batch.clone()
    without.batch.pop("old_log_probs")
    recomputed = _updated_params(model, data)
    reused = _updated_params(model, without)
    start = {k: v.detach() for k, v in model.named_parameters()}
    assert sum(float((reused[k] - start[k]).abs().sum()) for k in reused) > 0, "the update must change the weights"
    for key in recomputed:
        torch.testing.assert_close(reused[key], recomputed[key], atol=1e-6, rtol=1e-5)


def test_on_policy_update_logs_the_entropy_the_skipped_pass_would_have(model, batch) -> None:
    data = _prepared(model, batch)
    data.batch.pop("old_log_probs")
    clone = copy.deepcopy(model)
    actor = DataParallelActor(_actor_config(), clone, torch.optim.SGD(clone.parameters(), lr=0.1))
    entropies = actor.compute_log_prob(data, with_entropy=True).batch["entropies"]
    mask = data.batch["response_mask"]
    expected = float((entropies * mask).sum() / mask.sum())
    metrics = actor.update_policy(data)
    assert metrics["actor/entropy"] == [pytest.approx(expected, rel=1e-5)]


def test_sapo_and_gspo_token_are_selected_by_loss_type(model, batch) -> None:
    """On policy (ratio 1) SAPO's gate has slope 1 and GSPO-token's per-token gradient is ``-A``, so both step
    exactly like the default loss; off policy SAPO's temperature changes the step."""
    data = _prepared(model, batch)
    default = _updated_params(model, data)
    for loss_type in ("sapo", "gspo_token"):
        stepped = _updated_params(model, data, loss_type=loss_type)
        for key in default:
            torch.testing.assert_close(stepped[key], default[key], atol=1e-6, rtol=1e-5)
    data.batch["old_log_probs"] = data.batch["old_log_probs"] - 0.5 * data.batch["response_mask"]
    mild = _updated_params(model, data, loss_type="sapo", tau_positive=1.0, tau_negative=1.0)
    sharp = _updated_params(model, data, loss_type="sapo", tau_positive=8.0, tau_negative=8.0)
    assert max(float((mild[k] - sharp[k]).abs().max()) for k in mild) > 1e-6


def test_token_budget_partition_hand_worked() -> None:
    # first-fit decreasing over lengths [5, 9, 3, 7, 2] with budget 10: 9 opens a group, 7 another, 5 a third,
    # 3 joins the 7 (10), 2 joins the 5 (7) -> {1}, {3, 2}, {0, 4}, listed by first row
    assert partition_by_token_budget([5, 9, 3, 7, 2], 10) == [[0, 4], [1], [2, 3]]
    # another rank needs 4 groups: the group with the most rows ({3, 2}) is halved
    assert partition_by_token_budget([5, 9, 3, 7, 2], 10, min_parts=4) == [[0, 4], [1], [2], [3]]
    assert partition_by_token_budget([4, 4, 4], 100) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="max_token_len_per_device=8: raise it to at least 9"):
        partition_by_token_budget([5, 9], 8)
    with pytest.raises(ValueError, match="3 non-empty micro-batches from 2 rows"):
        partition_by_token_budget([1, 1], 8, min_parts=3)


def _dynamic(batch) -> dict:
    """A token budget that forces mixed groups: the longest row plus the shortest one."""
    lengths = sorted(batch.batch["attention_mask"].sum(-1).tolist())
    return dict(dynamic_batching=True, max_token_len_per_device=int(lengths[-1] + lengths[0]))


def test_dynamic_batching_forms_token_budget_micro_batches(batch) -> None:
    config = _actor_config(**_dynamic(batch))
    pieces = micro_batches(batch, 4, config)
    lengths = batch.batch["attention_mask"].sum(-1)
    assert 1 < len(pieces) < len(batch)
    assert sorted(int(i) for index, _ in pieces for i in index) == list(range(len(batch)))
    for index, micro in pieces:
        assert int(lengths[index].sum()) <= config.max_token_len_per_device
        assert torch.equal(micro.batch["input_ids"], batch.batch["input_ids"][index])
    # None: micro batch size x padded length, which here holds every row at once
    assert len(micro_batches(batch, 4, _actor_config(dynamic_batching=True))) == 1


def test_dynamic_batching_log_probs_equal_fixed(model, batch) -> None:
    fixed = DataParallelActor(_actor_config(), model).compute_log_prob(batch, with_entropy=True)
    dynamic = DataParallelActor(_actor_config(**_dynamic(batch)), model).compute_log_prob(batch, with_entropy=True)
    for key in ("log_probs", "entropies"):
        torch.testing.assert_close(dynamic.batch[key], fixed.batch[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("loss_avg_mode", ["token-mean", "seq-mean-token-mean"])
def test_dynamic_batching_update_equals_fixed_micro_batching(model, batch, loss_avg_mode) -> None:
    """Token-budget micro-batches group the rows differently, but each one's loss is weighted by its share of
    the mini-batch, so one update moves the weights exactly as fixed micro-batches of one row do."""
    data = _prepared(model, batch)
    fixed = _updated_params(model, data, micro_batch_size_per_device_for_update=1, loss_avg_mode=loss_avg_mode)
    dynamic = _updated_params(model, data, loss_avg_mode=loss_avg_mode, **_dynamic(batch))
    start = {k: v.detach() for k, v in model.named_parameters()}
    assert sum(float((fixed[k] - start[k]).abs().sum()) for k in fixed) > 0, "the update must change the weights"
    for key in fixed:
        torch.testing.assert_close(dynamic[key], fixed[key], atol=1e-6, rtol=1e-5)


@pytest.mark.slow  # compiling on CPU takes a minute or two
def test_use_torch_compile_compiles_the_log_prob_head_with_the_same_results(model, batch) -> None:
    from verl.trainer.core_algos import token_log_probs_from_logits

    plain = DataParallelActor(_actor_config(), model)
    compiled = DataParallelActor(_actor_config(use_torch_compile=True), model)
    assert plain._score_logits is token_log_probs_from_logits
    assert compiled._score_logits is not token_log_probs_from_logits
    logits = torch.randn(10, 11, generator=torch.Generator().manual_seed(0))
    responses = torch.randint(0, 11, (10,), generator=torch.Generator().manual_seed(1))
    expected = plain._score_logits(logits, responses, 0.7, True)
    got = compiled._score_logits(logits, responses, 0.7, True)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        compiled.compute_log_prob(batch).batch["log_probs"], plain.compute_log_prob(batch).batch["log_probs"]
    )


def test_padding_rows_of_weight_zero_are_not_trained(model, batch) -> None:
    """3 rows over 2 ranks: rank 1 gets row 2 and a copy of row 0 for padding. Its update equals the update on
    row 2 alone, so row 0 is not trained twice."""
    from verl.single_controller.decorator import Dispatch, dispatch

    data = _prepared(model, batch)[:3]
    call = dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (data,), {})
    padded_chunk = call.args[1][0]
    assert padded_chunk.batch["loss_weight"].tolist() == [1.0, 0.0]
    with_padding = _updated_params(model, padded_chunk, global_batch_size_per_device=2)
    alone = _updated_params(model, data[2:3], global_batch_size_per_device=2)
    for key in alone:
        torch.testing.assert_close(with_padding[key], alone[key], atol=1e-6, rtol=1e-5)


def test_per_row_temperature_and_greedy_rows(model, batch) -> None:
    """A ``temperature`` column scores each row at its own temperature; 0 (greedy) is scored at 1, not NaN."""
    actor = DataParallelActor(_actor_config(), model)
    rows = copy.copy(batch)
    rows.batch = batch.batch.clone()
    rows.batch["temperature"] = torch.tensor([1.0, 0.0, 2.0, 0.5])
    ours = actor.compute_log_prob(rows).batch["log_probs"]
    assert torch.isfinite(ours).all()
    for i, temperature in enumerate([1.0, 1.0, 2.0, 0.5]):
        alone = actor.compute_log_prob(batch, temperature=temperature).batch["log_probs"]
        torch.testing.assert_close(ours[i], alone[i], atol=1e-5, rtol=1e-5)
    greedy = actor.compute_log_prob(batch, temperature=0.0).batch["log_probs"]
    torch.testing.assert_close(greedy, actor.compute_log_prob(batch, temperature=1.0).batch["log_probs"])


def test_loss_weights_give_each_group_its_own_token_mean(model, batch) -> None:
    """Weights (1 - h) / T1 on rows 0-1 and h / T2 on rows 2-3 update like the loss (1 - h) L(0-1) + h L(2-3)."""
    data = _prepared(model, batch)
    mask = data.batch["response_mask"].float()
    h = 0.3
    t1, t2 = float(mask[:2].sum()), float(mask[2:].sum())
    weighted = copy.copy(data)
    weighted.batch = data.batch.clone()
    weighted.batch["loss_weight"] = torch.tensor([(1 - h) / t1] * 2 + [h / t2] * 2)
    ours = _updated_params(model, weighted, micro_batch_size_per_device_for_update=1)
    # the same loss by hand: token-mean of each half, mixed, on a plain (unweighted) actor through advantages
    clone = copy.deepcopy(model)
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.1)
    actor = DataParallelActor(_actor_config(), clone, optimizer)
    optimizer.zero_grad()
    for part, share in ((slice(0, 2), 1 - h), (slice(2, 4), h)):
        loss, _ = actor._micro_loss(data[part], 1.0)
        (loss * share).backward()
    optimizer.step()
    for key, value in clone.named_parameters():
        torch.testing.assert_close(ours[key], value.detach(), atol=1e-6, rtol=1e-5)


def test_v2_update_batch_on_the_tiny_model_minimises_the_two_hop_formula(model, batch, tiny_tokenizer) -> None:
    """The second hop's rows (text only, greedy, different widths) joined to an image batch by
    ``SelfRewardHop.update_batch`` update the real model exactly like ``0.5 * L_first + 0.5 * L_second``, each
    hop's loss a token mean over its own tokens, its rows scored at their own temperature."""
    import numpy as np

    from verl.trainer.self_reward import HopResult, Sampling, SelfRewardHop, text_prompt_batch

    hop = SelfRewardHop(tiny_tokenizer, Sampling(1, 4, 0.0, 1.0), generate=lambda ids, s: ["x"] * len(ids))
    prompts = text_prompt_batch([hop.prompt_ids(d, "How many?") for d in ("two dots", "a red square")], 0, True)
    responses = torch.tensor([[11, 12, 13, 0], [21, 0, 0, 0], [31, 32, 0, 0]])
    response_mask = (responses != 0).long()
    rows = [0, 0, 1]  # blind answers 0 and 1 answer description 0
    attention = torch.cat([prompts.batch["attention_mask"][rows], response_mask], dim=1)
    positions = ((attention.cumsum(-1) - 1).clamp(min=0) * attention).unsqueeze(1).expand(-1, 3, -1).clone()
    sequences = DataProto.from_dict(
        tensors={
            "input_ids": torch.cat([prompts.batch["input_ids"][rows], responses], dim=1),
            "attention_mask": attention,
            "position_ids": positions,
            "responses": responses,
            "response_mask": response_mask,
        }
    )
    result = HopResult(
        descriptions=["two dots", "a red square", None, None],
        blind_answers=[["a", "b"], ["c"], None, None],
        grades=[[1.0, 0.0], [1.0], None, None],
        sequences=sequences,
        sources=[0, 0, 1],
    )
    main = _prepared(model, batch)
    main.batch["returns"] = main.batch["advantages"]
    main.non_tensor_batch["uid"] = np.array(["a", "a", "b", "b"], dtype=object)
    main.meta_info["temperature"] = 1.0
    scorer = DataParallelActor(_actor_config(), model)

    class Workers:
        def compute_log_probs(self, data: DataProto) -> DataProto:
            return scorer.compute_log_prob(data).rename("log_probs", "old_log_probs")

        def compute_ref_log_probs(self, data: DataProto) -> DataProto:
            return scorer.compute_log_prob(data).rename("log_probs", "ref_log_probs")

    out = hop.update_batch(main, result, Workers(), 0.5, world_size=1, mini_batches=1, loss_avg_mode="token-mean")
    assert len(out) == 7 and out.meta_info["mini_batch_rows"] == 7
    assert out.batch["temperature"].tolist() == [1.0] * 4 + [0.0] * 3

    clone = copy.deepcopy(model)
    actor = DataParallelActor(
        _actor_config(global_batch_size_per_device=7), clone, torch.optim.SGD(clone.parameters(), lr=0.1)
    )
    metrics = actor.update_policy(out)
    assert metrics["actor/non_finite_skipped"] == [0.0]

    by_hand = copy.deepcopy(model)
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.1)
    plain = DataParallelActor(_actor_config(), by_hand, optimizer)
    unweighted = out.select(batch_keys=[k for k in out.batch if k != "loss_weight"])
    optimizer.zero_grad()
    for part in (slice(0, 4), slice(4, 7)):
        loss, _ = plain._micro_loss(unweighted[part], 1.0)
        (0.5 * loss).backward()
    optimizer.step()
    for key, value in by_hand.named_parameters():
        torch.testing.assert_close(dict(clone.named_parameters())[key].detach(), value.detach(), atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ response-only, chunked log-probs


def _full_logits_loss(model, batch: DataProto, upstream: torch.Tensor, ent_upstream: torch.Tensor) -> torch.Tensor:
    """The straightforward computation the chunked one replaces: every position's logits, an fp32 log-softmax
    over the whole vocabulary, the response part read off."""
    from verl.trainer.core_algos import entropy_from_logits

    b, mm = batch.batch, batch.non_tensor_batch["multi_modal_inputs"]
    length = b["responses"].shape[1]
    logits = model(
        input_ids=b["input_ids"],
        attention_mask=b["attention_mask"],
        position_ids=b["position_ids"].transpose(0, 1),
        pixel_values=torch.cat([m["pixel_values"] for m in mm]),
        image_grid_thw=torch.cat([m["image_grid_thw"] for m in mm]),
    ).logits[:, -length - 1 : -1]
    logits = logits.float()
    lp = torch.log_softmax(logits, -1).gather(-1, b["responses"].unsqueeze(-1)).squeeze(-1)
    mask = b["response_mask"]
    return ((lp * upstream + entropy_from_logits(logits) * ent_upstream) * mask).sum()


def _ours_loss(actor: DataParallelActor, batch: DataProto, upstream, ent_upstream) -> torch.Tensor:
    lp, ent = actor._forward(batch, 1.0, with_entropy=True, entropy_grad=True)
    return ((lp * upstream + ent * ent_upstream) * batch.batch["response_mask"]).sum()


def _grads(model, loss_fn) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return {"loss": loss.detach(), **grads}


def _lora_model(model):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"])
    )
    with torch.no_grad():  # B starts at 0, which would hide the adapter from the logits
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return lora


@pytest.mark.parametrize("with_lora", [False, True], ids=["full", "lora"])
def test_packed_and_padded_log_probs_and_gradients_equal_the_full_logits(model, batch, with_lora) -> None:
    """With images (M-RoPE) and, with LoRA, adapters on the attention and on the output layer itself: both the
    padded and the padding-free paths give the full-logits computation's log-probs, entropies and gradients."""
    subject = _lora_model(model) if with_lora else copy.deepcopy(model)
    subject.train()
    generator = torch.Generator().manual_seed(3)
    shape = batch.batch["responses"].shape
    upstream, ent_upstream = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    expected = _grads(subject, lambda: _full_logits_loss(subject, batch, upstream, ent_upstream))
    assert any("lora" in name for name in expected) == with_lora
    for padding_free in (False, True):
        actor = DataParallelActor(_actor_config(padding_free=padding_free), subject)
        got = _grads(subject, lambda actor=actor: _ours_loss(actor, batch, upstream, ent_upstream))
        assert got.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=f"{padding_free} {name}")


@pytest.mark.parametrize("padding_free", [False, True])
def test_output_layer_sees_only_the_response_predictors_in_chunks(model, batch, padding_free, monkeypatch) -> None:
    """The output layer runs on the hidden states that predict response tokens only (not prompt or image
    tokens, not padding), at most LOG_PROB_CHUNK_TOKENS rows at a time, and is itself again afterwards."""
    import verl.workers.actor.dp_actor as dp_actor

    monkeypatch.setattr(dp_actor, "LOG_PROB_CHUNK_TOKENS", 4)
    head = model.get_output_embeddings()
    rows: list[int] = []
    original = head.forward

    def counting(hidden: torch.Tensor) -> torch.Tensor:
        rows.append(hidden.flatten(0, -2).shape[0])
        return original(hidden)

    monkeypatch.setattr(head, "forward", counting)
    actor = DataParallelActor(_actor_config(padding_free=padding_free), model)
    actor.compute_log_prob(batch)
    # micro-batches of 2 rows with 8 + 5 and 1 + 7 response tokens: chunks of at most 4
    assert rows == [4, 4, 4, 1, 4, 4]
    assert head.forward is counting  # the instance's own forward is put back
    monkeypatch.undo()
    assert "forward" not in head.__dict__
    logits = model(input_ids=batch.batch["input_ids"][:1, -3:]).logits
    assert logits.shape[-1] == model.config.get_text_config().vocab_size


def test_logged_entropy_is_built_without_gradient(model, batch) -> None:
    actor = DataParallelActor(_actor_config(), model)
    model.train()
    lp, ent = actor._forward(batch, 1.0, with_entropy=True, entropy_grad=False)
    assert lp.requires_grad and not ent.requires_grad
    lp, ent = actor._forward(batch, 1.0, with_entropy=True, entropy_grad=True)
    assert ent.requires_grad
    model.eval()
