"""EasyR1 drop-in at load time: EasyR1's ``examples/config.yaml`` and the overrides of each of its example scripts
load through our config (validation included, no Ray) with only the paths changed, and every override holds the
value EasyR1 gives it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from easyr1_args import CONFIG, EASYR1_KEYS, EXAMPLE_SCRIPTS, REFUSED_IN_SCRIPTS, path_args, tiny_run_args
from omegaconf import OmegaConf

from verl.trainer.config import PPOConfig
from verl.utils.config_utils import config_to_dict, load_config
from verl.workers.config import LOSS_AVG_ALIASES

PATH_KEYS = {
    "data.train_files",
    "data.val_files",
    "data.format_prompt",
    "worker.actor.model.model_path",
    "worker.reward.reward_function",
    "trainer.save_checkpoint_path",
}
"""What an EasyR1 user changes: ``path_args`` sets these, so a script's own value for them is replaced."""


def _flat_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in tree.items():
        key = f"{prefix}.{name}" if prefix else name
        # val_override_config is a mapping value, not a section
        if isinstance(value, dict) and not key.endswith("val_override_config"):
            keys += _flat_keys(value, key)
        else:
            keys.append(key)
    return keys


def _settable_keys(cls: type, prefix: str = "") -> set[str]:
    from dataclasses import fields, is_dataclass
    from typing import get_type_hints

    hints, keys = get_type_hints(cls), set()
    for f in fields(cls):
        if not f.init:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        keys.add(key)
        if isinstance(hints[f.name], type) and is_dataclass(hints[f.name]):
            keys |= _settable_keys(hints[f.name], key)
    return keys


def _lookup(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def _script_argv(name: str, tiny_dir: Path, out_dir: Path) -> list[str]:
    """``config=...``, then the script's overrides, then the paths (later arguments win)."""
    paths = path_args(tiny_dir, out_dir)
    return [paths[0], *EXAMPLE_SCRIPTS[name], *paths[1:]]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative checkpoint paths resolve here, not in the repository


def test_every_key_of_easyr1_config_dataclasses_is_a_key_here() -> None:
    missing = sorted(set(EASYR1_KEYS) - _settable_keys(PPOConfig))
    assert missing == []


def test_fixture_holds_easyr1_example_config_keys_only() -> None:
    keys = _flat_keys(yaml.safe_load(CONFIG.read_text()))
    assert len(keys) == len(set(keys)) == 86  # as many as EasyR1's examples/config.yaml has
    assert set(keys) <= set(EASYR1_KEYS)
    assert "trainer.find_last_checkpoint" in keys and "algorithm.use_kl_loss" in keys


def test_easyr1_config_loads_with_only_the_paths_changed(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(PPOConfig, path_args(tiny_dir, tmp_path))
    algo, actor, ref, rollout, trainer = (
        cfg.algorithm,
        cfg.worker.actor,
        cfg.worker.ref,
        cfg.worker.rollout,
        cfg.trainer,
    )
    assert (algo.use_kl_loss, algo.kl_penalty, algo.kl_coef, algo.use_reference_policy) == (
        True,
        "low_var_kl",
        0.01,
        True,
    )
    assert (actor.use_kl_loss, actor.kl_penalty, actor.kl_coef) == (True, "low_var_kl", 0.01)
    assert actor.dynamic_batching and actor.padding_free and actor.ulysses_size == 1
    assert (actor.offload.offload_params, actor.offload.offload_optimizer) == (True, True)
    assert (ref.fsdp.enable_cpu_offload, ref.offload.offload_params, ref.dynamic_batching) == (True, False, True)
    assert (actor.model.lora.rank, actor.model.lora.alpha, actor.model.lora.exclude_modules) == (0, 64, ".*visual.*")
    assert actor.global_batch_size_per_device == 128 * 5 // 8
    assert (rollout.n, rollout.tensor_parallel_size, rollout.disable_tqdm) == (5, 2, False)
    assert rollout.val_override_config == {"temperature": 0.6, "top_p": 0.95, "n": 1}
    assert (cfg.data.max_prompt_length, cfg.data.val_batch_size, cfg.data.rollout_batch_size) == (2048, 1024, 512)
    assert trainer.logger == ["file", "wandb"] and trainer.project_name == "easy_r1"
    assert (trainer.find_last_checkpoint, trainer.resume_mode) == (True, "auto")
    assert (trainer.save_freq, trainer.save_limit, trainer.val_freq, trainer.total_epochs) == (5, 3, 5, 15)
    assert trainer.save_checkpoint_path == str(tmp_path / "checkpoints")


@pytest.mark.parametrize("name", sorted(set(EXAMPLE_SCRIPTS) - set(REFUSED_IN_SCRIPTS)))
def test_each_example_script_loads_and_its_overrides_hold(name: str, tiny_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(PPOConfig, _script_argv(name, tiny_dir, tmp_path))
    tree = config_to_dict(cfg)
    for arg in EXAMPLE_SCRIPTS[name]:
        key = arg.partition("=")[0]
        if key in PATH_KEYS:
            continue
        expected = OmegaConf.to_container(OmegaConf.from_dotlist([arg]))
        expected = _lookup(expected, key)
        if key.endswith("loss_avg_mode"):
            expected = LOSS_AVG_ALIASES.get(expected, expected)
        assert _lookup(tree, key) == expected, key


def test_the_dapo_script_loads_with_its_sequence_parallelism(tiny_dir: Path, tmp_path: Path) -> None:
    name = "qwen3_14b_dapo17k_dapo"
    cfg = load_config(PPOConfig, _script_argv(name, tiny_dir, tmp_path))
    assert (cfg.worker.actor.ulysses_size, cfg.worker.ref.ulysses_size) == (8, 8)
    assert cfg.worker.rollout.val_override_config == {"n": 16, "temperature": 1.0, "top_p": 0.7}
    assert cfg.worker.reward.reward_function_kwargs == {
        "max_response_length": 20480,
        "overlong_buffer_length": 4096,
        "overlong_penalty_factor": 1.0,
    }
    assert (cfg.data.mini_rollout_batch_size, cfg.algorithm.filter_key) == (256, "accuracy_normalized")
    assert cfg.worker.actor.optim.lr_warmup_steps == 10 and cfg.worker.actor.fsdp.torch_dtype == "bf16"


@pytest.mark.parametrize(
    ("name", "loss_type"),
    [
        ("qwen2_5_vl_7b_geo3k_sapo", "sapo"),
        ("qwen2_5_vl_7b_geo3k_gspo", "gspo_token"),
        ("qwen2_5_vl_7b_geo3k_dapo", "default"),
    ],
)
def test_disable_kl_in_a_script_wins_over_the_yaml_use_kl_loss(
    name: str, loss_type: str, tiny_dir: Path, tmp_path: Path
) -> None:
    cfg = load_config(PPOConfig, _script_argv(name, tiny_dir, tmp_path))
    assert cfg.worker.actor.loss_type == loss_type
    assert cfg.algorithm.disable_kl and not cfg.algorithm.use_kl_loss and not cfg.algorithm.use_reference_policy
    assert cfg.worker.actor.disable_kl and not cfg.worker.actor.use_kl_loss


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        (["trainer.logger=['console','swanlab']"], lambda c: c.trainer.logger == ["console", "swanlab"]),
        (["data.mini_rollout_batch_size=128"], lambda c: c.data.mini_rollout_batch_size == 128),
        (["algorithm.online_filtering=True"], lambda c: c.algorithm.online_filtering),
        (
            ["worker.actor.model.lora.rank=64", "worker.actor.model.lora.target_modules=q_proj,k_proj,v_proj"],
            lambda c: (
                (c.worker.actor.model.lora.rank, c.worker.actor.model.lora.target_modules)
                == (64, "q_proj,k_proj,v_proj")
            ),
        ),
        (["worker.actor.model.freeze_vision_tower=true"], lambda c: c.worker.actor.model.freeze_vision_tower),
        (["trainer.find_last_checkpoint=false"], lambda c: c.trainer.resume_mode == "disable"),
        (["trainer.save_model_only=true"], lambda c: c.trainer.save_model_only),
        (["trainer.experiment_name=${trainer.project_name}_x"], lambda c: c.trainer.experiment_name == "easy_r1_x"),
    ],
)
def test_single_overrides_on_the_easyr1_config(extra: list[str], check, tiny_dir: Path, tmp_path: Path) -> None:
    assert check(load_config(PPOConfig, [*path_args(tiny_dir, tmp_path), *extra]))


def test_tiny_run_args_pass_validation(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(PPOConfig, tiny_run_args(tiny_dir, tmp_path))
    assert cfg.trainer.max_steps == 2 and cfg.trainer.device == "cpu" and cfg.trainer.world_size == 1
    assert cfg.algorithm.use_kl_loss and cfg.worker.actor.dynamic_batching  # the algorithm keys stay EasyR1's
