"""Native SFT: assistant-only labels (hand-checked), the loss against transformers' own, padded vs packed,
config checks; end to end on the CPU (slow): the loss falls on a fixed batch, the checkpoint has the actor
layout, a resumed run ends with the same weights, and an RL run starts from the exported model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from verl.protocol import DataProto
from verl.utils.sft_data import make_tiny_sft_set
from verl.utils.sft_dataset import IGNORE_INDEX, SFTDataset, encode_conversation, sft_collate

REPO = Path(__file__).resolve().parents[2]
SFT_CONFIG = REPO / "train_examples" / "configs" / "sft_tiny_cpu.yaml"
RL_CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
SEETHINK = REPO / "train_examples" / "format_prompt" / "seethink.jinja"


@pytest.fixture(scope="module")
def sft_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sft_set(tiny_dir, tmp_path_factory.mktemp("sft") / "data", rows=48, format_prompt=str(SEETHINK))


def _labelled_text(tokenizer, encoded: dict) -> list[str]:
    """The labelled stretches of a sequence, decoded one contiguous run at a time."""
    ids, labels = encoded["input_ids"].tolist(), encoded["labels"].tolist()
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_only_assistant_turns_are_labelled_hand_checked(tiny_tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "content": "<think>2+2</think> \\boxed{4}"},
        {"role": "user", "content": "And three?"},
        {"role": "assistant", "content": "\\boxed{5}"},
    ]
    encoded = encode_conversation(messages, [], tiny_tokenizer)
    # Written out by hand from the Qwen chat template: the system and user turns and each
    # "<|im_start|>assistant\n" header are context; the answer and its <|im_end|> are trained, the "\n" is not.
    expected_text = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTwo plus two?<|im_end|>\n"
        "<|im_start|>assistant\n<think>2+2</think> \\boxed{4}<|im_end|>\n"
        "<|im_start|>user\nAnd three?<|im_end|>\n<|im_start|>assistant\n\\boxed{5}<|im_end|>\n"
    )
    assert tiny_tokenizer.decode(encoded["input_ids"]) == expected_text
    assert _labelled_text(tiny_tokenizer, encoded) == [
        "<think>2+2</think> \\boxed{4}<|im_end|>",
        "\\boxed{5}<|im_end|>",
    ]
    answer_tokens = len(tiny_tokenizer("<think>2+2</think> \\boxed{4}")["input_ids"]) + 1
    answer_tokens += len(tiny_tokenizer("\\boxed{5}")["input_ids"]) + 1
    assert int((encoded["labels"] != IGNORE_INDEX).sum()) == answer_tokens


def test_image_record_matches_the_processor_and_images_are_not_labelled(sft_dir, any_tiny_processor):
    tiny_processor, tiny_tokenizer = any_tiny_processor, any_tiny_processor.tokenizer
    ds = SFTDataset(str(sft_dir), tiny_tokenizer, tiny_processor, min_pixels=3136, max_pixels=12544)
    item = ds[0]
    image_id = tiny_tokenizer.convert_tokens_to_ids("<|image_pad|>")
    image_positions = item["input_ids"] == image_id
    grid = item["multi_modal_inputs"]["image_grid_thw"][0]
    assert int(image_positions.sum()) == int(grid.prod()) // 4
    assert (item["labels"][image_positions] == IGNORE_INDEX).all()
    (labelled,) = _labelled_text(tiny_tokenizer, item)
    assert labelled.startswith("<description>") and labelled.endswith("}<|im_end|>")
    assert item["position_ids"].shape == (3, len(item["input_ids"]))
    assert len(ds) == 3 * 48


def test_cutoff_truncates_the_answer_but_never_an_image(sft_dir, tiny_tokenizer, tiny_processor) -> None:
    from verl.utils.dataset import DatasetError

    full = SFTDataset(str(sft_dir), tiny_tokenizer, tiny_processor, min_pixels=3136, max_pixels=12544)[0]
    cut = len(full["input_ids"]) - 5
    short = SFTDataset(str(sft_dir), tiny_tokenizer, tiny_processor, cutoff_len=cut, min_pixels=3136,
                       max_pixels=12544)[0]  # fmt: skip
    assert torch.equal(short["input_ids"], full["input_ids"][:cut])
    assert torch.equal(short["labels"], full["labels"][:cut])
    with pytest.raises(DatasetError, match=r"vision_see_think.json: record 0: .*cutoff_len"):
        SFTDataset(str(sft_dir), tiny_tokenizer, tiny_processor, cutoff_len=20, min_pixels=3136, max_pixels=12544)[0]


def _actor(model, padding_free: bool):
    from types import SimpleNamespace

    from verl.workers.actor.dp_actor import DataParallelActor

    config = SimpleNamespace(
        padding_free=padding_free,
        micro_batch_size_per_device_for_update=2,
        micro_batch_size_per_device_for_experience=2,
        max_grad_norm=1.0,
    )
    return DataParallelActor(config, model, torch.optim.SGD(model.parameters(), lr=0.0))


def _mixed_batch(sft_dir, tokenizer, processor) -> DataProto:
    ds = SFTDataset(str(sft_dir), tokenizer, processor, min_pixels=3136, max_pixels=12544)
    return sft_collate([ds[0], ds[48], ds[96], ds[1]], tokenizer.pad_token_id)  # see-think, reasoner, text, see


def test_sft_loss_equals_transformers_and_packed_equals_padded(sft_dir, any_tiny_vl, any_tiny_processor):
    from transformers import AutoModelForImageTextToText

    tiny_processor, tiny_tokenizer = any_tiny_processor, any_tiny_processor.tokenizer
    model = AutoModelForImageTextToText.from_pretrained(any_tiny_vl, dtype=torch.float32)
    batch = _mixed_batch(sft_dir, tiny_tokenizer, tiny_processor)
    padded = _actor(model, False).compute_sft_nll(batch)
    packed = _actor(model, True).compute_sft_nll(batch)
    torch.testing.assert_close(packed.batch["nll"], padded.batch["nll"], rtol=1e-4, atol=1e-3)
    b = batch.batch
    for i in range(len(batch)):  # transformers' own shifted loss, one row at a time, no padding
        n = int(b["attention_mask"][i].sum())
        mm = batch.non_tensor_batch["multi_modal_inputs"][i] or {}
        with torch.no_grad():
            out = model(
                input_ids=b["input_ids"][i : i + 1, :n],
                position_ids=b["position_ids"][i : i + 1, :, :n].transpose(0, 1),
                labels=b["labels"][i : i + 1, :n],
                **mm,
            )
        tokens = int(padded.batch["tokens"][i])
        assert tokens == int((b["labels"][i, 1:n] != IGNORE_INDEX).sum()) > 0
        torch.testing.assert_close(padded.batch["nll"][i] / tokens, out.loss, rtol=1e-4, atol=1e-4)


def test_update_is_token_mean_over_the_whole_batch_whatever_the_micro_batches(sft_dir, tiny_vl, tiny_tokenizer,
                                                                           tiny_processor):  # fmt: skip
    from transformers import AutoModelForImageTextToText

    batch = _mixed_batch(sft_dir, tiny_tokenizer, tiny_processor)
    tokens = int((batch.batch["labels"] != IGNORE_INDEX).sum())
    grads = []
    for micro in (1, 4):
        model = AutoModelForImageTextToText.from_pretrained(tiny_vl, dtype=torch.float32)
        actor = _actor(model, False)
        actor.config.micro_batch_size_per_device_for_update = micro
        actor.optimizer.zero_grad = lambda set_to_none=True: None  # keep the gradients to compare them
        actor.update_sft(batch, tokens, world_size=1)
        grads.append(model.lm_head.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_config_checks_batch_arithmetic() -> None:
    from verl.trainer.sft_config import SFTConfig
    from verl.utils.config_utils import ConfigError, load_config

    with pytest.raises(ConfigError, match="global_batch_size=12 .* world size 8"):
        load_config(SFTConfig, ["worker.actor.global_batch_size=12"])
    with pytest.raises(ConfigError, match="micro_batch_size_per_device_for_update=3"):
        load_config(
            SFTConfig, ["worker.actor.global_batch_size=16", "worker.actor.micro_batch_size_per_device_for_update=3"]
        )
    config = load_config(SFTConfig, ["config=" + str(REPO / "train_examples/configs/cold_start_sft.yaml")])
    optim = config.worker.actor.optim
    assert (optim.lr, optim.lr_scheduler_type, optim.lr_warmup_ratio) == (1e-5, "cosine", 0.1)
    assert config.trainer.total_epochs == 3 and config.data.cutoff_len == 4092 and config.data.max_pixels == 262144
    assert config.worker.actor.model.freeze_vision_tower and config.worker.actor.fsdp.mp_param_dtype == "bf16"


# ----------------------------------------------------------------------------- end to end (slow)


def _env() -> dict[str, str]:
    return dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1",
                TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")  # fmt: skip


def _sft(tiny_dir: Path, sft_dir: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "verl.trainer.sft", f"config={SFT_CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}", f"data.train_files={sft_dir}",
        f"trainer.save_checkpoint_path={run_dir}", "trainer.ray_num_cpus=2", "trainer.max_steps=4",
        "trainer.save_freq=2", *overrides,
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def straight_run(tiny_dir: Path, sft_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("sft_run") / "straight"
    _sft(tiny_dir, sft_dir, run_dir)
    return run_dir


def _loss_on(model_path: Path, batch: DataProto) -> float:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32)
    out = _actor(model, False).compute_sft_nll(batch)
    return float(out.batch["nll"].sum() / out.batch["tokens"].sum())


@pytest.mark.slow
def test_sft_lowers_the_loss_and_saves_the_actor_layout(straight_run, tiny_dir, sft_dir, tiny_tokenizer,
                                                        tiny_processor) -> None:  # fmt: skip
    batch = _mixed_batch(sft_dir, tiny_tokenizer, tiny_processor)
    before, after = _loss_on(tiny_dir / "qwen2_5_vl", batch), _loss_on(straight_run / "hf_model", batch)
    # The exported weights are group/world-readable like the rest of the folder (safetensors writes 0600).
    assert (straight_run / "hf_model" / "model.safetensors").stat().st_mode & 0o044 == 0o044
    assert after < before - 0.3, (before, after)

    assert (straight_run / "latest_checkpointed_iteration.txt").read_text().strip() == "4"
    for step in (2, 4):
        actor = straight_run / f"global_step_{step}" / "actor"
        assert (actor.parent / "COMPLETE").is_file() and (actor / "dcp").is_dir()
        assert (actor / "hf" / "config.json").is_file() and (actor / "extra_state_rank_0.pt").is_file()
        meta = json.loads((actor / "meta.json").read_text())
        assert meta["role"] == "actor" and meta["world_size"] == 1 and meta["lora"] is None
        assert json.loads((actor.parent / "trainer_state.json").read_text())["global_step"] == step

    rows = [json.loads(line) for line in (straight_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("sft/loss", "actor/lr", "actor/grad_norm", "perf/tokens_per_second"):
        assert all(isinstance(r[key], float) and r[key] == r[key] for r in rows), key
    lrs = [r["actor/lr"] for r in rows]  # 4 steps, warmup 0.1 -> 0 steps: cosine from the peak
    assert lrs[0] == pytest.approx(2e-3 * 0.5 * (1 + __import__("math").cos(__import__("math").pi / 4)))
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(straight_run, tiny_dir, sft_dir, tmp_path) -> None:
    """A run stopped after its step-2 checkpoint (here: a copy of that checkpoint alone) resumes to step 4
    with the same data, optimizer and LR schedule: the same losses and the same final weights."""
    import shutil

    from safetensors.torch import load_file

    run_dir = tmp_path / "resumed"
    shutil.copytree(straight_run / "global_step_2", run_dir / "global_step_2")
    (run_dir / "latest_checkpointed_iteration.txt").write_text("2\n")
    proc = _sft(tiny_dir, sft_dir, run_dir)
    assert "resumed from" in proc.stderr and "global_step_2" in proc.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    straight = [json.loads(line) for line in (straight_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 4]
    assert [r["sft/loss"] for r in rows] == pytest.approx([r["sft/loss"] for r in straight[2:]], rel=1e-5)
    assert [r["actor/lr"] for r in rows] == pytest.approx([r["actor/lr"] for r in straight[2:]])
    a = load_file(straight_run / "hf_model" / "model.safetensors")
    b = load_file(run_dir / "hf_model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_merged_sft_checkpoint_starts_an_rl_run(straight_run, tiny_dir, tmp_path) -> None:
    """SFT → merge → RL in one environment: the merger turns the last SFT checkpoint into the same weights the
    trainer exported itself, and an RL run starts from the merged folder."""
    from safetensors.torch import load_file

    merged = tmp_path / "merged"
    merge = subprocess.run(
        [sys.executable, "scripts/model_merger.py", "--local_dir", str(straight_run / "global_step_4" / "actor"),
         "--target_dir", str(merged), "--dtype", "fp32"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert merge.returncode == 0, merge.stdout[-2000:] + merge.stderr[-4000:]
    exported = load_file(straight_run / "hf_model" / "model.safetensors")
    ours = {}
    for shard in merged.glob("*.safetensors"):
        ours.update(load_file(shard))
    assert ours.keys() == exported.keys()
    for name in exported:
        torch.testing.assert_close(ours[name], exported[name], rtol=0, atol=0)

    run_dir = tmp_path / "rl"
    command = [
        sys.executable, "-m", "verl.trainer.main", f"config={RL_CONFIG}",
        f"worker.actor.model.model_path={merged}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}", f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"trainer.save_checkpoint_path={run_dir}", "trainer.max_steps=1", "trainer.val_before_train=false",
        "trainer.val_freq=-1", "trainer.save_freq=1", "data.max_response_length=48", "trainer.ray_num_cpus=4",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and rows[-1]["reward/overall"] == rows[-1]["reward/overall"]
    assert (run_dir / "global_step_1" / "actor" / "meta.json").is_file()
