"""Rollout engines: shared output layout, per-call overrides, and vLLM weight sync against transformers."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from verl.models.rope import get_rope_index
from verl.protocol import DataProto, collate_fn
from verl.utils.dataset import RLHFDataset
from verl.workers.rollout import build_rollout
from verl.workers.rollout.base import sampling_settings

RESPONSE_LENGTH = 12


def _config(**overrides) -> SimpleNamespace:
    values = dict(
        name="hf",
        n=2,
        temperature=1.0,
        top_p=1.0,
        top_k=-1,
        seed=0,
        limit_images=1,
        limit_videos=0,
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
        response_length=RESPONSE_LENGTH,
        trust_remote_code=False,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(scope="module")
def prompts(tiny_dir, tiny_tokenizer, tiny_processor) -> DataProto:
    """Three image prompts as the dataset makes them (left-padded, M-RoPE positions, raw ids, PIL images)."""
    ds = RLHFDataset(str(tiny_dir / "data" / "val.parquet"), tiny_tokenizer, tiny_processor, max_prompt_length=64)
    rows = collate_fn([ds[i] for i in range(3)])
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data", "multi_modal_inputs")
    return DataProto.from_single_dict({k: rows[k] for k in keys})


def _text_prompts(tokenizer, questions: list[str]) -> DataProto:
    """A left-padded, text-only batch for the VL model (no ``multi_modal_data``), like the self-reward hop's."""
    ids = [
        tokenizer(
            tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        )["input_ids"]
        for q in questions
    ]
    length = max(len(i) for i in ids)
    input_ids = torch.full((len(ids), length), tokenizer.pad_token_id)
    mask = torch.zeros_like(input_ids)
    for row, seq in enumerate(ids):
        input_ids[row, length - len(seq) :] = torch.tensor(seq)
        mask[row, length - len(seq) :] = 1
    positions = ((mask.cumsum(-1) - 1).clamp(min=0) * mask).unsqueeze(1).expand(-1, 3, -1).clone()
    raw = np.empty(len(ids), dtype=object)
    raw[:] = ids
    return DataProto.from_dict(
        tensors={"input_ids": input_ids, "attention_mask": mask, "position_ids": positions},
        non_tensors={"raw_prompt_ids": raw},
    )


def _with_meta(data: DataProto, **meta) -> DataProto:
    out = copy.copy(data)
    out.meta_info = dict(meta)
    return out


def _check_layout(out: DataProto, prompts: DataProto, n: int, length: int, tokenizer, model) -> None:
    """Shapes, interleaved repetition, masks cut after EOS, and positions equal to a full-sequence M-RoPE pass."""
    b = out.batch
    assert len(out) == len(prompts) * n
    assert b["responses"].shape == (len(out), length) and b["response_mask"].shape == (len(out), length)
    for j in range(n):  # rows a, a, b, b: every copy of a prompt is its prompt
        assert torch.equal(b["prompts"][j::n], prompts.batch["input_ids"])
    assert torch.equal(b["input_ids"], torch.cat([b["prompts"], b["responses"]], -1))
    prompt_mask = prompts.batch["attention_mask"].repeat_interleave(n, 0)
    assert torch.equal(b["attention_mask"], torch.cat([prompt_mask, b["response_mask"]], -1))
    eos = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    placeholder = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    grids = prompts.non_tensor_batch.get("multi_modal_inputs")
    for i in range(len(out)):
        valid = int(b["response_mask"][i].sum())
        assert b["response_mask"][i, :valid].all() and not b["response_mask"][i, valid:].any()
        ids = b["responses"][i, :valid].tolist()
        assert not any(t in eos for t in ids[:-1]), "nothing is kept after an EOS"
        assert (b["responses"][i, valid:] == tokenizer.pad_token_id).all(), "right-padded with the pad id"
        assert placeholder not in ids, "responses never contain image placeholders"
        ends_early = valid < length and ids and ids[-1] not in eos
        assert not ends_early or out.meta_info["cut_at_placeholder"] > 0, "short responses end with EOS"
        grid = grids[i // n]["image_grid_thw"] if grids is not None and grids[i // n] else None
        full = get_rope_index(
            b["input_ids"][i],
            b["attention_mask"][i],
            grid,
            image_token_id=model.config.image_token_id,
            video_token_id=model.config.video_token_id,
        )
        mask = b["attention_mask"][i].bool()
        assert torch.equal(b["position_ids"][i][:, mask], full[:, mask])
    key = next(iter(prompts.non_tensor_batch))
    assert out.non_tensor_batch[key][0] is out.non_tensor_batch[key][n - 1], "non-tensor fields repeated per copy"
    assert out.meta_info["generated_tokens"] == int(b["response_mask"].sum())
    assert out.meta_info["timing/generate"] >= 0


# ---------------------------------------------------------------------------------------------- sampling settings


def test_sampling_settings_precedence_and_limits() -> None:
    config = _config(n=8, temperature=1.0, top_p=0.99, val_override_config={"temperature": 0.5, "n": 2})
    s = sampling_settings(config, {})
    assert (s.n, s.temperature, s.top_p, s.max_tokens, s.greedy) == (8, 1.0, 0.99, RESPONSE_LENGTH, False)
    s = sampling_settings(config, {"validate": True})
    assert (s.n, s.temperature) == (2, 0.5), "validate applies val_override_config"
    s = sampling_settings(config, {"validate": True, "n": 3, "max_tokens": 4})
    assert (s.n, s.temperature, s.max_tokens) == (3, 0.5, 4), "per-call meta wins over val_override_config"
    s = sampling_settings(config, {"do_sample": False, "n": 4})
    assert s.greedy and s.n == 1, "do_sample=False is greedy with one response"
    with pytest.raises(ValueError, match=f"exceeds data.max_response_length={RESPONSE_LENGTH}"):
        sampling_settings(config, {"max_tokens": 99})


# ---------------------------------------------------------------------------------------------- hf engine


def test_hf_rollout_layout_and_overrides(model, prompts, tiny_tokenizer, tiny_processor) -> None:
    rollout = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=copy.deepcopy(model))
    _check_layout(rollout.generate_sequences(prompts), prompts, 2, RESPONSE_LENGTH, tiny_tokenizer, model)

    first = rollout.generate_sequences(_with_meta(prompts, validate=True))
    assert len(first) == 3, "val_override_config sets n=1"
    assert torch.equal(
        first.batch["responses"], rollout.generate_sequences(_with_meta(prompts, validate=True)).batch["responses"]
    )

    twice = DataProto.concat([prompts, prompts])
    greedy = rollout.generate_sequences(_with_meta(twice, do_sample=False, n=4))
    assert len(greedy) == 6 and torch.equal(greedy.batch["responses"][:3], greedy.batch["responses"][3:])
    assert torch.equal(greedy.batch["responses"][:3], first.batch["responses"])

    short = rollout.generate_sequences(_with_meta(prompts, max_tokens=4, n=1))
    assert (
        short.batch["responses"].shape == (3, 4)
        and short.batch["input_ids"].shape[1] == prompts.batch["input_ids"].shape[1] + 4
    )

    # temperature 0 with n > 1 (a val_override_config without n) repeats the greedy answer
    repeated = build_rollout(
        _config(val_override_config={"temperature": 0.0}), "", tiny_tokenizer, tiny_processor, module=rollout.module
    ).generate_sequences(_with_meta(prompts, validate=True))
    assert torch.equal(repeated.batch["responses"][::2], repeated.batch["responses"][1::2])


def test_hf_rollout_text_only_call_on_the_vl_model(model, tiny_tokenizer, tiny_processor) -> None:
    rollout = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=model)
    text = _text_prompts(tiny_tokenizer, ["Describe: red. Colour?", "Two circles. How many?"])
    out = rollout.generate_sequences(_with_meta(text, n=1, max_tokens=8))
    _check_layout(out, text, 1, 8, tiny_tokenizer, model)


def test_hf_rollout_ignores_the_checkpoints_sampling_defaults(model, prompts, tiny_tokenizer, tiny_processor) -> None:
    """Released Qwen2.5-VL checkpoints set top_k=1 in generation_config.json: it must not make sampling greedy."""
    module = copy.deepcopy(model)
    module.generation_config.top_k = 1
    module.generation_config.temperature = 0.1
    module.generation_config.repetition_penalty = 1.05
    out = build_rollout(_config(n=4), "", tiny_tokenizer, tiny_processor, module=module).generate_sequences(prompts)
    responses = out.batch["responses"][:4]
    assert len({tuple(r.tolist()) for r in responses}) > 1


def test_hf_rollout_refuses_stop_strings(model, prompts, tiny_tokenizer, tiny_processor) -> None:
    rollout = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=model)
    assert not rollout.supports_split
    with pytest.raises(NotImplementedError, match="worker.rollout.name=vllm"):
        rollout.generate_sequences(_with_meta(prompts, stop=["</description>"]))


def test_hf_rollout_from_path_loads_new_weights(model, prompts, tiny_vl, tiny_tokenizer, tiny_processor) -> None:
    owned = build_rollout(_config(), str(tiny_vl), tiny_tokenizer, tiny_processor)
    assert not owned.shares_actor
    shared = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=model)
    reference = shared.generate_sequences(_with_meta(prompts, do_sample=False)).batch["responses"]
    assert torch.equal(owned.generate_sequences(_with_meta(prompts, do_sample=False)).batch["responses"], reference)
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    owned.load_weights(perturbed.state_dict().items())
    assert not torch.equal(owned.generate_sequences(_with_meta(prompts, do_sample=False)).batch["responses"], reference)
    owned.load_weights(model.state_dict().items())
    assert torch.equal(owned.generate_sequences(_with_meta(prompts, do_sample=False)).batch["responses"], reference)


# ---------------------------------------------------------------------------------------------- vllm engine


@pytest.fixture(scope="module")
def vllm_engine(tiny_vl, tiny_tokenizer, tiny_processor):
    """One engine for the module (each start-up costs ~10 s). fp32, so greedy tokens can equal transformers'."""
    pytest.importorskip("vllm")
    return build_rollout(
        _config(name="vllm", dtype="fp32", calculate_log_probs=True), str(tiny_vl), tiny_tokenizer, tiny_processor
    )


@pytest.mark.slow
def test_vllm_layout_and_self_reward_style_calls(vllm_engine, prompts, tiny_tokenizer, model) -> None:
    out = vllm_engine.generate_sequences(_with_meta(prompts, n=4))
    _check_layout(out, prompts, 4, RESPONSE_LENGTH, tiny_tokenizer, model)
    assert out.batch["rollout_log_probs"].shape == out.batch["responses"].shape
    assert (out.batch["rollout_log_probs"][out.batch["response_mask"] == 0] == 0).all()
    assert (out.batch["rollout_log_probs"][out.batch["response_mask"] == 1] <= 0).all()

    # the second hop: text only, one short answer per description, same engine, same process
    text = _text_prompts(tiny_tokenizer, ["Describe: red. Colour?", "Two circles. How many?"])
    answer = vllm_engine.generate_sequences(_with_meta(text, n=1, max_tokens=8))
    _check_layout(answer, text, 1, 8, tiny_tokenizer, model)
    assert int(answer.batch["response_mask"].sum()) > 0


@pytest.mark.slow
def test_vllm_greedy_and_validate_overrides(vllm_engine, prompts, tiny_tokenizer, model) -> None:
    twice = DataProto.concat([prompts, prompts])
    greedy = vllm_engine.generate_sequences(_with_meta(twice, do_sample=False, n=4))
    assert len(greedy) == 6, "do_sample=False gives one response per prompt"
    assert torch.equal(greedy.batch["responses"][:3], greedy.batch["responses"][3:])
    validated = vllm_engine.generate_sequences(_with_meta(prompts, validate=True))
    assert len(validated) == 3, "val_override_config sets n=1"
    assert torch.equal(validated.batch["responses"], greedy.batch["responses"][:3]), "and temperature 0"


@pytest.mark.slow
def test_vllm_weight_sync_matches_transformers_and_follows_new_weights(
    vllm_engine, prompts, model, tiny_tokenizer, tiny_processor
) -> None:
    hf = build_rollout(_config(), "", tiny_tokenizer, tiny_processor, module=copy.deepcopy(model))
    vllm_engine.load_weights(model.state_dict().items())
    ours = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    reference = hf.generate_sequences(_with_meta(prompts, do_sample=False))
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
    changed = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    assert not torch.equal(changed.batch["responses"], ours.batch["responses"])
    vllm_engine.load_weights(model.state_dict().items())
    again = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    assert torch.equal(again.batch["responses"], ours.batch["responses"])
    torch.testing.assert_close(again.batch["rollout_log_probs"], ours.batch["rollout_log_probs"])


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
    ours = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    # The merged model is near-uniform, so greedy ties can break differently: compare the log-probs that
    # transformers' merged model gives vLLM's tokens instead (exact agreement means the weights arrived).
    from verl.workers.actor.dp_actor import DataParallelActor

    merged = copy.deepcopy(peft_model).merge_and_unload()
    actor_config = SimpleNamespace(micro_batch_size_per_device_for_experience=8, padding_free=False)
    hf_lp = DataParallelActor(actor_config, merged).compute_log_prob(ours).batch["log_probs"]
    mask = ours.batch["response_mask"].bool()
    torch.testing.assert_close(ours.batch["rollout_log_probs"][mask], hf_lp[mask], atol=2e-3, rtol=1e-3)
    vllm_engine.load_weights(model.state_dict().items())
    base = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    assert not torch.equal(base.batch["responses"], ours.batch["responses"])


def test_hf_rollout_prefills_with_our_m_rope_positions(tiny_dir, any_tiny_vl, any_tiny_processor) -> None:
    """Each family's HF generate uses the M-RoPE positions that training uses, on a batch mixing image,
    video and text rows: the language model's prefill sees the dataset's ``position_ids`` (without the token
    types, transformers gives image tokens text positions), and every greedy token is the argmax of one
    teacher-forced forward with the output's."""
    from transformers import AutoModelForImageTextToText

    from verl.workers.actor.dp_actor import _multimodal_kwargs

    tokenizer, processor = any_tiny_processor.tokenizer, any_tiny_processor
    model = AutoModelForImageTextToText.from_pretrained(any_tiny_vl, dtype=torch.float32)
    ds = RLHFDataset(str(tiny_dir / "data" / "mixed.parquet"), tokenizer, processor, max_prompt_length=128,
                     min_pixels=3136, max_pixels=12544)  # fmt: skip
    rows = collate_fn([ds[i] for i in range(6)])
    assert [r.split("_")[1] for r in rows["data_source"]] == ["count", "video", "text", "colour", "video", "text"]
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data", "multi_modal_inputs")
    batch = DataProto.from_single_dict({k: rows[k] for k in keys})
    seen = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True
    )
    rollout = build_rollout(_config(), "", tokenizer, processor, module=model)
    out = rollout.generate_sequences(_with_meta(batch, do_sample=False, n=1, max_tokens=6))
    hook.remove()
    prefill = seen[0][-3:].transpose(0, 1)  # (B, 3, P): the M-RoPE rows (transformers may prepend text positions)
    mask = batch.batch["attention_mask"].bool()
    # transformers 5.19 resumes the text after a Qwen2.5-VL video at start + max(h, w) / merge even when the
    # frames' temporal positions run past it; vLLM and we resume after the largest position (the rule for
    # images and Qwen3-VL frames, where the two agree). Those rows are left out for Qwen2.5-VL.
    checked = [i for i in range(len(batch)) if "video" not in rows["data_source"][i] or "qwen3" in any_tiny_vl.name]
    for i in checked:
        assert torch.equal(prefill[i][:, mask[i]], batch.batch["position_ids"][i][:, mask[i]])

    b = out.batch
    with torch.no_grad():
        logits = model(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            position_ids=b["position_ids"].transpose(0, 1),
            **_multimodal_kwargs(out.non_tensor_batch["multi_modal_inputs"]),
        ).logits
    length = b["responses"].shape[1]
    predicted = logits[:, -length - 1 : -1].argmax(-1)
    mask = b["response_mask"].bool()
    mask[[i for i in range(len(batch)) if i not in checked]] = False
    assert mask.sum() > 0 and torch.equal(predicted[mask], b["responses"][mask])


@pytest.mark.slow
def test_vllm_with_image_video_and_text_rows_matches_the_actor(tiny_dir, any_tiny_vl) -> None:
    """Each family in vLLM on a batch mixing image, video and text rows: after a weight sync, vLLM's log-probs
    of its greedy tokens equal the FSDP actor's under our M-RoPE positions (weights, positions, frame spacing
    and video inputs all agree), and a sync of other weights changes the answers and a sync back restores
    them."""
    pytest.importorskip("vllm")
    from transformers import AutoModelForImageTextToText

    from verl.utils.tokenizer import get_processor
    from verl.workers.actor.dp_actor import DataParallelActor

    processor = get_processor(str(any_tiny_vl))
    tokenizer = processor.tokenizer
    model = AutoModelForImageTextToText.from_pretrained(any_tiny_vl, dtype=torch.float32)
    ds = RLHFDataset(str(tiny_dir / "data" / "mixed.parquet"), tokenizer, processor, max_prompt_length=128,
                     min_pixels=3136, max_pixels=12544)  # fmt: skip
    rows = collate_fn([ds[i] for i in range(6)])
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data", "multi_modal_inputs")
    prompts = DataProto.from_single_dict({k: rows[k] for k in keys})
    config = _config(name="vllm", dtype="fp32", calculate_log_probs=True, limit_videos=1, prompt_length=128)
    engine = build_rollout(config, str(any_tiny_vl), tokenizer, processor)
    engine.load_weights(model.state_dict().items())
    ours = engine.generate_sequences(_with_meta(prompts, do_sample=False))
    actor = DataParallelActor(SimpleNamespace(micro_batch_size_per_device_for_experience=8, padding_free=True), model)
    actor_lp = actor.compute_log_prob(ours).batch["log_probs"]
    mask = ours.batch["response_mask"].bool()
    assert mask[1].any() and mask[2].any(), "the video and text rows answered"
    torch.testing.assert_close(ours.batch["rollout_log_probs"][mask], actor_lp[mask], atol=2e-3, rtol=1e-3)

    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    engine.load_weights(perturbed.state_dict().items())
    assert not torch.equal(engine.generate_sequences(_with_meta(prompts, do_sample=False)).batch["responses"],
                           ours.batch["responses"])  # fmt: skip
    engine.load_weights(model.state_dict().items())
    again = engine.generate_sequences(_with_meta(prompts, do_sample=False))
    assert torch.equal(again.batch["responses"], ours.batch["responses"])


@pytest.mark.slow
def test_vllm_split_rollout_equals_the_unsplit_one(vllm_engine, prompts, model, tiny_tokenizer) -> None:
    """Stop at a string, then continue from the token ids with extra text prompts in the same call: the same
    greedy tokens, layout and log-probs as one call (the images reach the continuation), and the extra answers
    of a separate call."""
    from verl.workers.actor.dp_actor import DataParallelActor

    vllm_engine.load_weights(model.state_dict().items())
    whole = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False))
    # a stop string that a row writes: the text of three of its tokens, none special, from the third on
    special = set(tiny_tokenizer.all_special_ids)
    row, start, stop = next(
        (r, i, tiny_tokenizer.decode(ids[i : i + 3]))
        for r, ids in enumerate(_response_ids(whole))
        for i in range(2, len(ids) - 4)
        if not special & set(ids[i : i + 3]) and tiny_tokenizer.decode(ids[i : i + 3])
    )
    partial = vllm_engine.generate_sequences(_with_meta(prompts, do_sample=False, stop=[stop]))
    stopped = partial.batch["stopped_at_stop_string"]
    assert stopped[row] and len(_response_ids(partial)[row]) <= start + 3
    assert stop in tiny_tokenizer.decode(_response_ids(partial)[row])
    text = _text_prompts(tiny_tokenizer, ["Describe: red. Colour?", "Two circles. How many?"])
    extra = np.empty(len(partial), dtype=object)
    extra[0], extra[2] = text.non_tensor_batch["raw_prompt_ids"][0], text.non_tensor_batch["raw_prompt_ids"][1]
    partial.non_tensor_batch["extra_prompt_ids"] = extra
    partial.meta_info = {
        "do_sample": False,
        "extra_sampling": {"n": 2, "max_tokens": 8, "temperature": 0.0, "top_p": 1.0},  # greedy n > 1: repeated
    }
    out = vllm_engine.continue_sequences(partial)

    assert out.meta_info["continued_rows"] == int(stopped.sum())
    for key in ("prompts", "responses", "input_ids", "attention_mask", "position_ids", "response_mask"):
        assert torch.equal(out.batch[key], whole.batch[key]), key
    torch.testing.assert_close(out.batch["rollout_log_probs"], whole.batch["rollout_log_probs"], atol=1e-4, rtol=1e-4)
    # a separate call: greedy with n=2 (vLLM itself refuses n > 1 without sampling), rows a, a, b, b
    answers = vllm_engine.generate_sequences(_with_meta(text, n=2, max_tokens=8, temperature=0.0))
    assert len(answers) == 4 and torch.equal(answers.batch["responses"][0], answers.batch["responses"][1])
    for row, answer in ((0, 0), (2, 2)):
        valid = int(answers.batch["response_mask"][answer].sum())
        assert out.non_tensor_batch["extra_token_ids"][row] == [answers.batch["responses"][answer, :valid].tolist()] * 2
    assert out.non_tensor_batch["extra_token_ids"][1] is None

    # the trainer's log-probs: the split rollout's tensors are the unsplit one's, and vLLM's log-probs of the
    # continued tokens (computed with the images) agree with the trainer's
    actor = DataParallelActor(SimpleNamespace(micro_batch_size_per_device_for_experience=8, padding_free=False), model)
    split_lp = actor.compute_log_prob(out).batch["log_probs"]
    assert torch.equal(split_lp, actor.compute_log_prob(whole).batch["log_probs"])
    mask = out.batch["response_mask"].bool()
    torch.testing.assert_close(out.batch["rollout_log_probs"][mask], split_lp[mask], atol=2e-3, rtol=1e-3)


def _response_ids(out: DataProto) -> list[list[int]]:
    return [r[: int(m.sum())].tolist() for r, m in zip(out.batch["responses"], out.batch["response_mask"])]
