"""The model merger end to end on the CPU: train the tiny VL model 2 steps on 2 gloo ranks (full and LoRA),
save, merge with scripts/model_merger.py, and check the folder against the in-memory actor, transformers,
peft and vLLM-CPU; resharding (1 rank vs 2 ranks) and the refusals of broken or wrong folders."""

from __future__ import annotations

import copy
import json
import os
import runpy
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from verl.models.rope import get_rope_index
from verl.protocol import DataProto, collate_fn
from verl.trainer.config import PPOConfig
from verl.utils.config_utils import load_config
from verl.utils.dataset import RLHFDataset
from verl.utils.model_merger import make_files_readable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "model_merger.py"
RESPONSE_LENGTH = 8


def merge(*args: str) -> Path:
    """Run the CLI in this process (its ``main``), as a user would from the repo root."""
    return runpy.run_path(str(SCRIPT))["main"](list(args))


def _config(tiny_vl: Path, n_ranks: int, lora_rank: int = 0) -> PPOConfig:
    values = {
        "worker.actor.model.model_path": str(tiny_vl),
        "worker.actor.model.enable_gradient_checkpointing": False,
        "worker.actor.model.lora.rank": lora_rank,
        "worker.actor.model.lora.alpha": 8,
        "worker.actor.fsdp.mp_param_dtype": "fp32",
        "worker.actor.fsdp.torch_dtype": "fp32",
        "worker.actor.optim.lr": 1e-2,  # big steps, so trained weights are far from the initial ones
        "worker.actor.padding_free": False,
        "worker.actor.micro_batch_size_per_device_for_update": 1,
        "worker.actor.micro_batch_size_per_device_for_experience": 2,
        "worker.actor.global_batch_size": 2,
        "worker.rollout.n": 2,
        "data.rollout_batch_size": 2,
        "data.max_prompt_length": 64,
        "data.max_response_length": RESPONSE_LENGTH,
        "trainer.n_gpus_per_node": n_ranks,
    }
    return load_config(PPOConfig, overrides=values)


def _dataset(tiny_dir: Path, tokenizer, processor) -> RLHFDataset:
    return RLHFDataset(str(tiny_dir / "data" / "val.parquet"), tokenizer, processor, max_prompt_length=64)


@pytest.fixture(scope="module")
def vl_batch(tiny_dir, tiny_vl, tiny_tokenizer, tiny_processor) -> DataProto:
    """A fixed image+text batch: 4 dataset prompts with images and random right-padded responses."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_vl)
    items = collate_fn([_dataset(tiny_dir, tiny_tokenizer, tiny_processor)[i] for i in range(4)])
    responses = torch.randint(10, 400, (4, RESPONSE_LENGTH), generator=torch.Generator().manual_seed(0))
    response_mask = (torch.arange(RESPONSE_LENGTH)[None] < torch.tensor([8, 5, 2, 7])[:, None]).long()
    responses[response_mask == 0] = tiny_tokenizer.pad_token_id
    input_ids = torch.cat([items["input_ids"], responses], dim=1)
    attention_mask = torch.cat([items["attention_mask"], response_mask], dim=1)
    mm = items["multi_modal_inputs"]
    position_ids = torch.stack(
        [
            get_rope_index(
                input_ids[i],
                attention_mask[i],
                mm[i]["image_grid_thw"],
                image_token_id=config.image_token_id,
                video_token_id=config.video_token_id,
            )
            for i in range(4)
        ]
    )
    return DataProto.from_dict(
        tensors={
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "responses": responses,
            "response_mask": response_mask,
        },
        non_tensors={"multi_modal_inputs": mm},
    )


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def _group(config: PPOConfig, n_ranks: int, name: str):
    from verl.single_controller import RayResourcePool, RayWorkerGroup
    from verl.workers.fsdp_workers import FSDPWorker

    group = RayWorkerGroup(
        RayResourcePool([n_ranks], use_gpu=False), FSDPWorker, config.worker, "actor", name_prefix=name
    )
    group.init_model()
    return group


def _train_and_save(tiny_vl: Path, root: Path, batch: DataProto, lora_rank: int, name: str) -> SimpleNamespace:
    """Save at step 0, run 2 updates, save at step 2; keep what the in-memory actor says at step 2."""
    group = _group(_config(tiny_vl, 2, lora_rank), 2, name)
    try:
        group.save_checkpoint(str(root / "global_step_0" / "actor"))
        initial = group.actor_state_dict()
        for _ in range(2):
            data = copy.copy(batch)
            data.batch = batch.batch.clone()
            data.batch["old_log_probs"] = group.compute_log_probs(batch).batch["old_log_probs"]
            data.batch["advantages"] = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * batch.batch["response_mask"]
            group.update_actor(data)
        group.save_checkpoint(str(root / "global_step_2" / "actor"))
        out = group.compute_log_probs(batch)
        return SimpleNamespace(
            root=root,
            actor=root / "global_step_2" / "actor",
            initial=initial,
            weights=group.actor_state_dict(),
            log_probs=out.batch["old_log_probs"],
            entropies=out.batch["entropies"],
        )
    finally:
        group.shutdown()


@pytest.fixture(scope="module")
def full_run(ray_local, tiny_vl, vl_batch, tmp_path_factory) -> SimpleNamespace:
    return _train_and_save(tiny_vl, tmp_path_factory.mktemp("full"), vl_batch, 0, "merger_full")


@pytest.fixture(scope="module")
def lora_run(ray_local, tiny_vl, vl_batch, tmp_path_factory) -> SimpleNamespace:
    return _train_and_save(tiny_vl, tmp_path_factory.mktemp("lora"), vl_batch, 4, "merger_lora")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a merged folder, read straight from its safetensors files."""
    out: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def _load(folder: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    return model, processor


def _actor_view(model) -> SimpleNamespace:
    from verl.workers.actor.dp_actor import DataParallelActor

    config = SimpleNamespace(micro_batch_size_per_device_for_experience=4, padding_free=False)
    return DataParallelActor(config, model)


def _check_against_actor(folder: Path, run: SimpleNamespace, batch: DataProto) -> torch.nn.Module:
    """The merged folder holds the in-memory actor's weights and computes what the sharded actor computes."""
    model, processor = _load(folder)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and processor.chat_template
    state = model.state_dict()
    assert state.keys() == run.weights.keys()
    for name, tensor in run.weights.items():
        assert state[name].dtype == torch.float32, name
        assert torch.equal(state[name], tensor), name
    assert any(not torch.equal(run.weights[n], run.initial[n]) for n in run.weights), "training moved the weights"
    out = _actor_view(model).compute_log_prob(batch, with_entropy=True)
    torch.testing.assert_close(out.batch["log_probs"], run.log_probs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.batch["entropies"], run.entropies, atol=1e-5, rtol=1e-4)
    return model


def _vllm_generates_like(folder: Path, model, reference, tiny_dir: Path) -> None:
    """vLLM-CPU starts from the folder and its log-probs of its own greedy tokens are those of ``model``
    (transformers on the same folder), and not those of ``reference`` (the weights before training)."""
    pytest.importorskip("vllm")
    from verl.utils.tokenizer import get_processor, get_tokenizer
    from verl.workers.rollout import build_rollout

    tokenizer, processor = get_tokenizer(str(folder)), get_processor(str(folder))
    rows = collate_fn([_dataset(tiny_dir, tokenizer, processor)[i] for i in range(3)])
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data", "multi_modal_inputs")
    prompts = DataProto.from_single_dict({k: rows[k] for k in keys})
    prompts.meta_info = {"do_sample": False}
    from verl.workers.config import RolloutConfig

    config = RolloutConfig(
        name="vllm", n=1, dtype="fp32", ignore_eos=True, enforce_eager=True, limit_images=1,
        max_num_batched_tokens=4096, enable_prefix_caching=False, calculate_log_probs=True,
    )  # fmt: skip
    config.prompt_length, config.response_length = 64, RESPONSE_LENGTH
    engine = build_rollout(config, str(folder), tokenizer, processor)
    try:
        out = engine.generate_sequences(prompts)
    finally:
        del engine
    mask = out.batch["response_mask"].bool()
    assert int(mask.sum()) == 3 * RESPONSE_LENGTH, "vLLM generated every token asked for"
    ours = _actor_view(model).compute_log_prob(out).batch["log_probs"]
    torch.testing.assert_close(out.batch["rollout_log_probs"][mask], ours[mask], atol=2e-3, rtol=1e-3)
    before = _actor_view(reference).compute_log_prob(out).batch["log_probs"]
    assert (out.batch["rollout_log_probs"][mask] - before[mask]).abs().max() > 1e-2, "vLLM serves the trained weights"


@pytest.mark.slow
def test_full_run_merges_to_a_folder_transformers_and_vllm_load(full_run, vl_batch, tiny_vl, tiny_dir, tmp_path):
    target = merge("--local_dir", str(full_run.actor), "--target_dir", str(tmp_path / "hf"), "--max_shard_size", "1MB")
    assert target == (tmp_path / "hf").resolve()
    names = {p.name for p in target.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors.index.json", "chat_template.jinja"} <= names
    assert "tokenizer.json" in names and "processor_config.json" in names
    index = json.loads((target / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in target.glob("*.safetensors"))
    assert len(shards) > 1 and sorted(set(index["weight_map"].values())) == shards
    assert not (tmp_path / "hf.partial").exists()
    model = _check_against_actor(target, full_run, vl_batch)

    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_vl, dtype=torch.float32)
    _vllm_generates_like(target, model, base, tiny_dir)


@pytest.mark.slow
def test_lora_run_merges_adapters_and_exports_them(lora_run, vl_batch, tiny_vl, tiny_dir):
    target = merge("--local_dir", str(lora_run.actor), "--export_adapter")
    assert target == lora_run.actor / "huggingface"
    model = _check_against_actor(target, lora_run, vl_batch)
    assert not any("lora" in name for name in _weights(target)), "adapters are merged, not shipped"

    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_vl, dtype=torch.float32)
    adapter_config = json.loads((target / "lora_adapter" / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8)
    assert adapter_config["base_model_name_or_path"] == str(tiny_vl)
    peft_merged = PeftModel.from_pretrained(copy.deepcopy(base), target / "lora_adapter").merge_and_unload()
    for name, tensor in peft_merged.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, atol=1e-6, rtol=1e-5, msg=name)
    _vllm_generates_like(target, model, base, tiny_dir)


@pytest.mark.slow
def test_one_rank_and_two_rank_checkpoints_of_the_same_weights_merge_identically(
    ray_local, full_run, tiny_vl, tmp_path
):
    group = _group(_config(tiny_vl, 1), 1, "merger_one_rank")
    try:
        group.load_checkpoint(str(full_run.actor))  # resharded from 2 ranks to 1
        group.save_checkpoint(str(tmp_path / "global_step_2" / "actor"))
    finally:
        group.shutdown()
    one_rank = tmp_path / "global_step_2" / "actor"
    assert json.loads((one_rank / "meta.json").read_text())["world_size"] == 1
    assert len(list((one_rank / "dcp").glob("*.distcp"))) == 1
    assert len(list((full_run.actor / "dcp").glob("*.distcp"))) == 2
    a = _weights(merge("--local_dir", str(one_rank), "--target_dir", str(tmp_path / "one")))
    b = _weights(merge("--local_dir", str(full_run.actor), "--target_dir", str(tmp_path / "two")))
    assert a.keys() == b.keys() and a
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_dtype_option_and_rerun_over_a_previous_export(full_run, tmp_path):
    target = tmp_path / "hf"
    merge("--local_dir", str(full_run.actor), "--target_dir", str(target), "--max_shard_size", "1MB")
    assert len(list(target.glob("*.safetensors"))) > 1
    merge("--local_dir", str(full_run.actor), "--target_dir", str(target), "--dtype", "bf16")
    assert sorted(p.name for p in target.glob("*.safetensors")) == ["model.safetensors"], "no stale shards left"
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in target.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o666 & ~umask and set(modes.values()) == {0o666 & ~umask}, modes
    weights = _weights(target)
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert json.loads((target / "config.json").read_text())["dtype"] == "bfloat16"
    for name, tensor in full_run.weights.items():
        if name in weights:
            assert torch.equal(weights[name], tensor.to(torch.bfloat16)), name


def _copy(run: SimpleNamespace, tmp_path: Path, step: int = 2) -> Path:
    dst = tmp_path / f"global_step_{step}"
    shutil.copytree(run.root / f"global_step_{step}", dst)
    return dst / "actor"


@pytest.mark.slow
def test_missing_truncated_and_foreign_shards_are_named(full_run, tmp_path):
    ckpt = _copy(full_run, tmp_path / "missing")
    (ckpt / "dcp" / "__1_0.distcp").unlink()
    with pytest.raises(SystemExit, match=r"shard .*__1_0\.distcp is missing \(2 shard files expected, written by 2"):
        merge("--local_dir", str(ckpt))
    assert not (ckpt / "huggingface").exists() and not (ckpt / "huggingface.partial").exists()

    ckpt = _copy(full_run, tmp_path / "truncated")
    shard = ckpt / "dcp" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=r"shard .*__0_0\.distcp is truncated \(1000 bytes"):
        merge("--local_dir", str(ckpt))

    ckpt = _copy(full_run, tmp_path / "foreign")
    shutil.copy(full_run.root / "global_step_0" / "actor" / "dcp" / "__1_0.distcp", ckpt / "dcp" / "__1_0.distcp")
    with pytest.raises(SystemExit, match=r"shard .*__1_0\.distcp comes from another save \(fingerprint \w+, meta"):
        merge("--local_dir", str(ckpt))


@pytest.mark.slow
def test_folders_that_are_not_actor_checkpoints_are_explained(full_run, tmp_path):
    step = _copy(full_run, tmp_path / "step").parent
    with pytest.raises(SystemExit, match=r"is a step folder; pass its actor checkpoint: --local_dir .*actor"):
        merge("--local_dir", str(step))

    partial = tmp_path / "partial" / "global_step_2.partial"
    shutil.copytree(step, partial)
    with pytest.raises(SystemExit, match=r"inside global_step_2\.partial, a checkpoint whose save did not finish"):
        merge("--local_dir", str(partial / "actor"))

    critic = _copy(full_run, tmp_path / "critic")
    meta = json.loads((critic / "meta.json").read_text())
    (critic / "meta.json").write_text(json.dumps({**meta, "role": "critic", "value_head": True}))
    with pytest.raises(SystemExit, match=r"is a critic checkpoint .*pass the sibling actor folder"):
        merge("--local_dir", str(critic))

    bare = _copy(full_run, tmp_path / "bare")
    (bare / "meta.json").unlink()
    with pytest.raises(SystemExit, match=r"is not an actor checkpoint: no meta\.json"):
        merge("--local_dir", str(bare))

    with pytest.raises(SystemExit, match=r"does not exist or is not a folder"):
        merge("--local_dir", str(tmp_path / "nowhere"))

    with pytest.raises(SystemExit, match=r"trained without LoRA, there is no adapter"):
        merge("--local_dir", str(full_run.actor), "--export_adapter")

    data = tmp_path / "notes"
    data.mkdir()
    (data / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"exists and is not a model folder"):
        merge("--local_dir", str(full_run.actor), "--target_dir", str(data))
    assert (data / "keep.txt").read_text() == "mine"


def test_written_files_get_the_mode_of_plain_new_files(tmp_path):
    """Weights written through a private temporary file (0600) become 0644 under umask 022, like the rest."""
    (tmp_path / "sub").mkdir()
    for path in (tmp_path / "model.safetensors", tmp_path / "sub" / "adapter_model.safetensors"):
        path.write_bytes(b"x")
        path.chmod(0o600)
    previous = os.umask(0o022)
    try:
        make_files_readable(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "sub" / "adapter_model.safetensors").stat().st_mode) == 0o644
