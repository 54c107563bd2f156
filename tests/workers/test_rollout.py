"""Rollout engines: shared output layout, per-call overrides, and vLLM weight sync against transformers."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from verl.models.rope import get_rope_index
from verl.protocol import DataProto, collate_fn
from verl.utils.dataset import RLHFDataset
from verl.workers.rollout import build_rollout
from verl.workers.rollout.base import sampling_settings


def _config(**overrides) -> SimpleNamespace:
    values = dict(
        name="hf",
        n=2,
        temperature=1.0,
        top_p=1.0,
        top_k=-1,
        seed=0,
        limit_images=1,
        dtype="fp32",
        gpu_memory_utilization=0.5,
        ignore_eos=False,
        enforce_eager=True,
        enable_chunked_prefill=False,
        tensor_parallel_size=1,
        max_model_len=None,
        max_num_batched_tokens=4096,
        enable_prefix_caching=True,
        enable_sleep_mode=False,
        disable_log_stats=True,
        disable_tqdm=True,
        calculate_log_probs=False,
        val_override_config={"temperature": 0.0, "n": 1},
        prompt_length=64,
        response_length=12,
        trust_remote_code=False,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(scope="module")
def prompts(tiny_dir, tiny_tokenizer, tiny_processor) -> DataProto:
    ds = RLHFDataset(str(tiny_dir / "data" / "val.parquet"), tiny_tokenizer, tiny_processor, max_prompt_length=64)
    rows = collate_fn([ds[i] for i in range(3)])
    return DataProto.from_single_dict(
        {
            k: rows[k]
            for k in (
                "input_ids",
                "attention_mask",
                "position_ids",
                "raw_prompt_ids",
                "multi_modal_data",
                "multi_modal_inputs",
            )
        }
    )


def _check_layout(out: DataProto, prompts: DataProto, n: int, length: int, tokenizer, model) -> None:
    b = out.batch
    assert len(out) == len(prompts) * n
    assert b["responses"].shape == (len(out), length)
    assert torch.equal(b["prompts"][::n], prompts.batch["input_ids"])
    assert torch.equal(b["input_ids"], torch.cat([b["prompts"], b["responses"]], -1))
    eos = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    for i in range(len(out)):
        valid = int(b["response_mask"][i].sum())
        assert b["response_mask"][i, :valid].all() and not b["response_mask"][i, valid:].any()
        ids = b["responses"][i, :valid].tolist()
        assert not any(t in eos for t in ids[:-1]), "nothing is kept after an EOS"
        placeholder = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert placeholder not in ids, "responses never contain image placeholders"
        ends_early = valid < length and ids and ids[-1] not in eos
        assert not ends_early or out.meta_info["cut_at_placeholder"] > 0, "short responses end with EOS"
        full = get_rope_index(
            b["input_ids"][i],
            b["attention_mask"][i],
            prompts.non_tensor_batch["multi_modal_data"][i // n] and _grid(prompts, i // n),
            image_token_id=model.config.image_token_id,
            video_token_id=model.config.video_token_id,
        )
        mask = b["attention_mask"][i].bool()
        assert torch.equal(b["position_ids"][i][:, mask], full[:, mask])
    assert out.non_tensor_batch["raw_prompt_ids"][0] is out.non_tensor_batch["raw_prompt_ids"][n - 1]


def _grid(prompts: DataProto, row: int) -> torch.Tensor:
    from verl.utils.tokenizer import get_processor  # noqa: F401  (processor is the fixture's)

    images = prompts.non_tensor_batch["multi_modal_data"][row]["images"]
    return torch.tensor([[1, img.height // 14, img.width // 14] for img in images])


def test_hf_rollout_layout_and_overrides(model, prompts, tiny_tokenizer, tiny_processor) -> None:
    rollout = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=copy.deepcopy(model))
    out = rollout.generate_sequences(prompts)
    _check_layout(out, prompts, 2, 12, tiny_tokenizer, model)
    greedy = copy.copy(prompts)
    greedy.meta_info = {"validate": True}
    first = rollout.generate_sequences(greedy)
    second = rollout.generate_sequences(greedy)
    assert len(first) == 3, "val_override_config sets n=1"
    assert torch.equal(first.batch["responses"], second.batch["responses"]), "temperature 0 is greedy"
    short = copy.copy(prompts)
    short.meta_info = {"max_tokens": 4, "n": 1}
    assert rollout.generate_sequences(short).batch["responses"].shape == (3, 4)


def test_sampling_settings_reject_too_many_tokens() -> None:
    with pytest.raises(ValueError, match="exceeds data.max_response_length=12"):
        sampling_settings(_config(), {"max_tokens": 99})


@pytest.fixture(scope="module")
def vllm_engine(tiny_vl, tiny_tokenizer, tiny_processor):
    pytest.importorskip("vllm")
    return build_rollout(
        _config(name="vllm", dtype="fp32", calculate_log_probs=True), str(tiny_vl), tiny_tokenizer, tiny_processor
    )


def _greedy(prompts: DataProto, **meta) -> DataProto:
    data = copy.copy(prompts)
    data.meta_info = {"do_sample": False, **meta}
    return data


@pytest.mark.slow
def test_vllm_layout_and_self_reward_style_calls(vllm_engine, prompts, tiny_tokenizer, model) -> None:
    sampled = copy.copy(prompts)
    sampled.meta_info = {"n": 4}
    out = vllm_engine.generate_sequences(sampled)
    _check_layout(out, prompts, 4, 12, tiny_tokenizer, model)
    chat = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe: red. Colour?"}], add_generation_prompt=True, tokenize=False
    )
    text = tiny_tokenizer(chat, add_special_tokens=False)["input_ids"]
    from verl.trainer.ray_trainer import build_text_prompts

    hop = build_text_prompts([text, text[2:]], tiny_tokenizer.pad_token_id, multimodal=True)
    hop.meta_info = {"n": 1, "max_tokens": 8}
    answer = vllm_engine.generate_sequences(hop)
    assert answer.batch["responses"].shape == (2, 8) and int(answer.batch["response_mask"].sum()) > 0


@pytest.mark.slow
def test_vllm_weight_sync_matches_transformers_and_follows_new_weights(
    vllm_engine, prompts, model, tiny_tokenizer, tiny_processor
) -> None:
    hf = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=copy.deepcopy(model))
    vllm_engine.load_weights(model.state_dict().items())
    ours = vllm_engine.generate_sequences(_greedy(prompts))
    reference = hf.generate_sequences(_greedy(prompts))
    assert torch.equal(ours.batch["responses"][:, :6], reference.batch["responses"][:, :6])
    # vLLM's log-probs of its tokens agree with the transformers model's log-probs of the same tokens
    from verl.workers.actor.dp_actor import DataParallelActor

    actor_config = SimpleNamespace(micro_batch_size_per_device_for_experience=8, padding_free=False)
    hf_lp = DataParallelActor(actor_config, model).compute_log_prob(ours).batch["log_probs"]
    mask = ours.batch["response_mask"].bool()
    torch.testing.assert_close(ours.batch["rollout_log_probs"][mask], hf_lp[mask], atol=2e-3, rtol=1e-3)

    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    vllm_engine.load_weights(perturbed.state_dict().items())
    changed = vllm_engine.generate_sequences(_greedy(prompts))
    assert not torch.equal(changed.batch["responses"], ours.batch["responses"])
    vllm_engine.load_weights(model.state_dict().items())
    again = vllm_engine.generate_sequences(_greedy(prompts))
    assert torch.equal(again.batch["responses"], ours.batch["responses"])


@pytest.mark.slow
def test_vllm_weight_sync_of_merged_lora_matches_transformers(
    vllm_engine, prompts, model, tiny_tokenizer, tiny_processor
) -> None:
    from peft import LoraConfig, get_peft_model

    from verl.workers.fsdp_workers import merged_lora_weights

    peft_model = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", exclude_modules=r".*visual.*")
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    vllm_engine.load_weights(merged_lora_weights(iter(peft_model.state_dict().items()), scaling=2.0))
    ours = vllm_engine.generate_sequences(_greedy(prompts))
    # The merged model is near-uniform, so greedy ties can break differently: compare the log-probs that
    # transformers' merged model gives vLLM's tokens instead (exact agreement means the weights arrived).
    from verl.workers.actor.dp_actor import DataParallelActor

    merged = copy.deepcopy(peft_model).merge_and_unload()
    actor_config = SimpleNamespace(micro_batch_size_per_device_for_experience=8, padding_free=False)
    hf_lp = DataParallelActor(actor_config, merged).compute_log_prob(ours).batch["log_probs"]
    mask = ours.batch["response_mask"].bool()
    torch.testing.assert_close(ours.batch["rollout_log_probs"][mask], hf_lp[mask], atol=2e-3, rtol=1e-3)
    base = vllm_engine
    base.load_weights(model.state_dict().items())
    assert not torch.equal(base.generate_sequences(_greedy(prompts)).batch["responses"], ours.batch["responses"])
