"""The PPOConfig tree: EasyR1 key names, derived keys, cross-section checks, YAML + CLI loading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from verl.trainer.config import PPOConfig
from verl.utils.config_utils import ConfigError, format_config, load_config, save_config

# 8 ranks, 512 prompts x 8 responses, 128 prompts per update: the paper's recipe (SPEC section 2)
PAPER = [
    "worker.rollout.n=8",
    "worker.actor.global_batch_size=128",
    "algorithm.use_kl_loss=true",
    "algorithm.kl_penalty=low_var_kl",
    "algorithm.kl_coef=1.0e-2",
    "data.max_response_length=2048",
]


def load(*argv: str) -> PPOConfig:
    return load_config(PPOConfig, list(argv))


def error_of(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(*argv)
    return str(info.value)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths (checkpoints, templates, reward files) resolve here


def test_defaults_load_and_follow_the_spec() -> None:
    cfg = load()
    assert cfg.data.prompt_key == "problem" and cfg.data.answer_key == "answer" and cfg.data.image_key == "images"
    assert cfg.worker.actor.model.trust_remote_code is False
    assert cfg.worker.rollout.tensor_parallel_size == 1
    assert cfg.trainer.logger == ["console", "file"]
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.self_reward.enable is False
    assert cfg.worker.actor.fsdp.fsdp_version == 2 and cfg.worker.actor.loss_avg_mode == "token-mean"


def test_config_module_does_not_import_torch() -> None:
    code = "import sys, verl.trainer.config; assert 'torch' not in sys.modules, 'torch imported'"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ----------------------------------------------------------------------------- keys and types


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            "worker.actor.fsdp.torch_dtyp=bf16",
            "unknown config key 'worker.actor.fsdp.torch_dtyp'; did you mean 'worker.actor.fsdp.torch_dtype'?",
        ),
        ("data.promt_key=q", "unknown config key 'data.promt_key'; did you mean 'data.prompt_key'?"),
        ("worker.rollut.n=8", "unknown config key 'worker.rollut'; did you mean 'worker.rollout'?"),
        ("trainr.nnodes=2", "unknown config key 'trainr'; did you mean 'trainer'?"),
        ("trainer.max_response_length=8", "did you mean 'data.max_response_length'"),
        (
            "algorithm.self_reward.external.base_url=x",
            "unknown config key 'algorithm.self_reward.external.base_url'; "
            "did you mean 'algorithm.self_reward.external.base_url_env'?",
        ),
    ],
)
def test_unknown_keys_at_every_depth(arg: str, expected: str) -> None:
    assert expected in error_of(arg)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("worker.rollout.n=eight", "worker.rollout.n: expected int, got 'eight' (str)"),
        ("algorithm.kl_coef=much", "algorithm.kl_coef: expected float, got 'much' (str)"),
        ("data.shuffle=maybe", "data.shuffle: expected bool, got 'maybe' (str)"),
        ("trainer.logger=5", "trainer.logger: expected list of one of 'console', 'file', 'wandb'"),
        (
            "trainer.logger=[console,wandbb]",
            "trainer.logger[1]: expected one of 'console', 'file', 'wandb', 'tensorboard', 'swanlab', 'mlflow', "
            "got 'wandbb' (str); did you mean 'wandb'?",
        ),
        ("algorithm.adv_estimator=ppo", "algorithm.adv_estimator: expected one of 'grpo', 'rloo',"),
        ("worker.actor.fsdp.fsdp_version=3", "worker.actor.fsdp.fsdp_version: expected one of 1, 2, got 3 (int)"),
        ("worker.actor.optim.betas=[0.9]", "worker.actor.optim.betas: expected list of 2 (float, float)"),
        ("worker.actor=fast", "worker.actor: is a config section"),
        ("algorithm.reward_channels=[accuracy]", "algorithm.reward_channels: expected mapping of str to float"),
    ],
)
def test_wrong_types_are_named(arg: str, expected: str) -> None:
    assert expected in error_of(arg)


@pytest.mark.parametrize(
    ("arg", "source"),
    [
        ("worker.actor.kl_coef=0.1", "algorithm.kl_coef"),
        ("worker.rollout.prompt_length=10", "data.max_prompt_length"),
        ("worker.ref.padding_free=false", "worker.actor.padding_free"),
        ("worker.actor.optim.training_steps=10", "the trainer"),
        ("worker.actor.global_batch_size_per_device=4", "worker.actor.global_batch_size"),
        ("algorithm.use_critic=true", "algorithm.adv_estimator"),
    ],
)
def test_derived_keys_cannot_be_set(arg: str, source: str) -> None:
    key = arg.split("=")[0]
    assert f"'{key}' cannot be set: it is derived at start-up from {source}" in error_of(arg)


def test_logger_list_forms() -> None:
    assert load("trainer.logger=[console,file]").trainer.logger == ["console", "file"]
    assert load("trainer.logger=console,file").trainer.logger == ["console", "file"]
    assert load("trainer.logger=[wandb, console, wandb]").trainer.logger == ["wandb", "console"]
    assert load("trainer.logger=[]").trainer.logger == []


def test_key_without_equals_is_an_error() -> None:
    assert "'worker.rollout.n' is not of the form key=value" in error_of("worker.rollout.n")


# ----------------------------------------------------------------------------- YAML + CLI


def test_yaml_and_cli_precedence(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "worker:\n"
        "  rollout:\n    n: 5\n    top_p: 0.99\n"
        "  actor:\n    global_batch_size: 128\n    optim:\n      lr: 1e-5\n    fsdp:\n      torch_dtype: fp32\n"
        "trainer:\n  logger: [console]\n  n_gpus_per_node: 4\n"
    )
    cfg = load(
        f"config={path}",
        "worker.rollout.n=4",
        "worker.actor.fsdp.torch_dtype=bf16",
        "data.max_pixels=1000",
        "data.min_pixels=100",
        "trainer.logger=[console,file]",
    )
    assert cfg.worker.rollout.n == 4 and cfg.worker.actor.fsdp.torch_dtype == "bf16"  # CLI wins
    assert cfg.worker.rollout.top_p == 0.99 and cfg.worker.actor.optim.lr == 1e-5  # YAML kept
    assert cfg.trainer.n_gpus_per_node == 4 and cfg.trainer.logger == ["console", "file"]
    assert cfg.data.max_pixels == 1000 and cfg.data.prompt_key == "problem"  # defaults kept
    assert cfg.worker.actor.optim.weight_decay == 1e-2 and cfg.worker.rollout.temperature == 1.0


def test_missing_and_malformed_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "no_such.yaml"
    message = error_of(f"config={missing}")
    assert str(missing) in message and "not found" in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker:\n  rollout: {n: 8\n")
    message = error_of(f"config={bad}")
    assert str(bad) in message and "not valid YAML" in message


def test_save_load_round_trip(tmp_path: Path) -> None:
    reward = tmp_path / "reward.py"
    reward.write_text("def compute_score(x):\n    return []\n")
    cfg = load(
        *PAPER,
        "worker.reward.reward_function=reward.py:compute_score",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "algorithm.self_reward.enable=true",
        "algorithm.self_reward.mode=multi_reward",
        "worker.actor.loss_avg_mode=seq",
    )
    path = tmp_path / "saved" / "config.yaml"
    save_config(cfg, path)
    again = load_config(PPOConfig, yaml_path=path)
    assert again == cfg
    assert again.worker.actor.global_batch_size_per_device == 128


def test_format_config_contains_nested_keys() -> None:
    text = format_config(load())
    assert "worker:\n  hybrid_engine: true\n  actor:\n" in text
    assert "    fsdp:\n      enable_full_shard: true\n" in text
    assert "      torch_dtype: null\n" in text
    assert "kl_coef: 0.001  # derived from algorithm.kl_coef" in text


# ----------------------------------------------------------------------------- derived values


def test_cross_section_copies() -> None:
    cfg = load(*PAPER, "worker.actor.model.trust_remote_code=true", "worker.actor.model.model_path=some/model")
    rollout, actor, ref = cfg.worker.rollout, cfg.worker.actor, cfg.worker.ref
    assert (rollout.prompt_length, rollout.response_length, rollout.trust_remote_code) == (512, 2048, True)
    assert (actor.use_kl_loss, actor.kl_penalty, actor.kl_coef, actor.disable_kl) == (True, "low_var_kl", 1e-2, False)
    assert ref.micro_batch_size_per_device_for_experience == actor.micro_batch_size_per_device_for_experience
    assert ref.padding_free is actor.padding_free and ref.ulysses_size == actor.ulysses_size
    assert actor.model.tokenizer_path == "some/model"  # defaults to model_path; hub ids stay as they are
    assert cfg.algorithm.use_reference_policy and not cfg.algorithm.use_critic


def test_trainer_seed_reaches_the_worker_section() -> None:
    from verl.trainer.sft_config import SFTConfig

    assert load("trainer.seed=7").worker.seed == 7
    sft = ["trainer.n_gpus_per_node=1", "worker.actor.global_batch_size=4", "trainer.seed=5"]
    assert load_config(SFTConfig, sft).worker.seed == 5
    assert "'worker.seed' cannot be set: it is derived at start-up from trainer.seed" in error_of("worker.seed=3")


@pytest.mark.parametrize(("alias", "mode"), [("token", "token-mean"), ("seq", "seq-mean-token-mean")])
def test_loss_avg_mode_aliases_are_normalised(alias: str, mode: str) -> None:
    cfg = load(f"worker.actor.loss_avg_mode={alias}", f"worker.critic.loss_avg_mode={alias}")
    assert cfg.worker.actor.loss_avg_mode == mode and cfg.worker.critic.loss_avg_mode == mode


def test_global_batch_size_per_device_counts_responses_per_data_parallel_rank() -> None:
    assert load(*PAPER).worker.actor.global_batch_size_per_device == 128 * 8 // 8
    two_nodes = load(*PAPER, "trainer.nnodes=2")
    assert two_nodes.worker.actor.global_batch_size_per_device == 128 * 8 // 16


def test_ulysses_size_is_accepted_and_divides_the_data_parallel_ranks() -> None:
    """4-way sequence parallelism on 8 ranks: 2 data-parallel ranks, each holding half of an update's responses;
    the reference model follows the actor, and verl's old key name still loads."""
    cfg = load(*PAPER, "worker.actor.ulysses_size=4")
    actor, ref = cfg.worker.actor, cfg.worker.ref
    assert (actor.ulysses_size, ref.ulysses_size) == (4, 4)
    assert actor.global_batch_size_per_device == 128 * 8 // 2
    assert load("worker.actor.ulysses_sequence_parallel_size=2").worker.actor.ulysses_size == 2
    critic = load(
        "algorithm.adv_estimator=gae", "worker.critic.model.model_path=m", "worker.critic.ulysses_size=8"
    ).worker.critic
    assert (critic.ulysses_size, critic.global_batch_size_per_device) == (8, 256 * 8)


def test_paths_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "see_think.jinja").write_text("{{ content }} <description>")
    (tmp_path / "reward.py").write_text("def compute_score(x):\n    return []\n")
    cfg = load(
        "data.format_prompt=prompts/see_think.jinja",
        "data.image_dir=prompts",
        "worker.reward.reward_function=reward.py",
        "worker.val_reward.reward_function_kwargs={format_weight: 0.0}",
        "worker.reward.reward_function_kwargs={format_weight: 0.1, extra: 1}",
    )
    assert cfg.data.format_prompt == str(tmp_path / "prompts" / "see_think.jinja")
    assert cfg.data.image_dir == str(tmp_path / "prompts")
    assert cfg.worker.reward.reward_function == f"{tmp_path / 'reward.py'}:main"
    assert cfg.worker.reward.function_spec() == (str(tmp_path / "reward.py"), "main")
    assert cfg.worker.val_reward.reward_function == cfg.worker.reward.reward_function
    assert cfg.worker.val_reward.reward_function_kwargs == {"format_weight": 0.0, "extra": 1}
    assert cfg.trainer.save_checkpoint_path == str(tmp_path / "checkpoints" / "vision_sr1" / "demo")
    assert cfg.trainer.response_path == str(tmp_path / "checkpoints" / "vision_sr1" / "demo" / "responses.jsonl")
    module = load("worker.reward.reward_function=verl.rewards.see_think:compute_score")
    assert module.worker.reward.reward_function == "verl.rewards.see_think:compute_score"
    inline = load("data.format_prompt={{ content }} Answer in \\boxed{}.")
    assert inline.data.format_prompt.startswith("{{ content }}")


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("data.format_prompt=prompts/missing.jinja", "data.format_prompt: template file 'prompts/missing.jinja'"),
        ("data.image_dir=no_images", "data.image_dir: folder 'no_images' not found"),
        ("worker.reward.reward_function=missing.py:fn", "worker.reward.reward_function: file 'missing.py' not found"),
        ("worker.reward.reward_function=x.py:1fn", "expected 'path/file.py:function' or 'package.module:function'"),
        ("trainer.load_checkpoint_path=nowhere", "trainer.load_checkpoint_path: folder 'nowhere' not found"),
    ],
)
def test_missing_paths_are_errors(arg: str, expected: str) -> None:
    assert expected in error_of(arg)


# ----------------------------------------------------------------------------- derived checks


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["data.rollout_batch_size=100"],
            "data.rollout_batch_size=100 prompts must be a multiple of worker.actor.global_batch_size=256 prompts "
            "per update; e.g. set worker.actor.global_batch_size=100",
        ),
        (
            [
                "data.rollout_batch_size=96",
                "worker.actor.global_batch_size=96",
                "worker.rollout.n=3",
                "trainer.n_gpus_per_node=7",
            ],
            "data.rollout_batch_size=96 x worker.rollout.n=3 = 288 responses must split evenly over the world size 7",
        ),
        (
            ["data.rollout_batch_size=32", "worker.actor.global_batch_size=1", "worker.rollout.n=2"],
            "worker.actor.global_batch_size=1 x worker.rollout.n=2 = 2 responses per update must split evenly over "
            "8 data-parallel ranks",
        ),
        (
            [
                "worker.actor.global_batch_size=16",
                "worker.rollout.n=2",
                "worker.actor.micro_batch_size_per_device_for_update=3",
            ],
            "worker.actor.micro_batch_size_per_device_for_update=3 must divide the 4 responses per device per update",
        ),
        (
            ["worker.rollout.n=1"],
            "algorithm.adv_estimator=grpo compares the responses to the same prompt, so it needs "
            "worker.rollout.n >= 2 (got 1)",
        ),
        (["worker.rollout.n=1", "algorithm.adv_estimator=rloo"], "algorithm.adv_estimator=rloo compares"),
        (["worker.rollout.n=0"], "worker.rollout.n: must be >= 1, got 0"),
        (["data.max_prompt_length=0"], "data.max_prompt_length: must be >= 1, got 0"),
        (["data.max_response_length=-5"], "data.max_response_length: must be >= 1, got -5"),
        (
            ["worker.rollout.max_model_len=1000"],
            "worker.rollout.max_model_len=1000 is shorter than data.max_prompt_length + data.max_response_length = 1024",
        ),
        (
            ["worker.rollout.tensor_parallel_size=3"],
            "worker.rollout.tensor_parallel_size=3 must divide the world size 8",
        ),
        (["worker.actor.ulysses_size=3"], "worker.actor.ulysses_size=3 must divide the world size 8"),
        (["worker.actor.ulysses_size=0"], "worker.actor.ulysses_size: must be >= 1, got 0"),
        (
            ["algorithm.adv_estimator=gae", "worker.critic.model.model_path=m", "worker.critic.ulysses_size=16"],
            "worker.critic.ulysses_size=16 must divide the world size 8",
        ),
        (
            ["worker.actor.ulysses_size=4", "worker.actor.global_batch_size=1", "worker.rollout.n=3"],
            "worker.actor.global_batch_size=1 x worker.rollout.n=3 = 3 responses per update must split evenly over "
            "2 data-parallel ranks (world size 8 / worker.actor.ulysses_size=4)",
        ),
        (["worker.hybrid_engine=false"], "worker.hybrid_engine: separate actor and rollout GPUs are not built"),
        (["data.video_fps=0"], "data.video_fps: must be > 0"),
        (["data.filter_overlong_prompts_workers=4"], "data.filter_overlong_prompts_workers: the length filter"),
        (["trainer.ray_timeline=t.json"], "trainer.ray_timeline: writing a Ray timeline is not supported"),
        (["worker.actor.tau_negative=0"], "worker.actor.tau_negative: must be > 0, got 0.0"),
        (["algorithm.adv_estimator=grpo_passk"], "algorithm.adv_estimator: 'grpo_passk' (EasyR1's pass@k advantage)"),
        (["worker.reward.num_cpus=4"], "worker.reward.num_cpus: the reward function runs in the trainer process"),
        (["worker.critic.model.lora.rank=8"], "worker.critic.model.lora.rank: LoRA is built for the actor only"),
        (
            ["trainer.find_last_checkpoint=false", "trainer.resume_mode=auto"],
            "trainer.resume_mode: 'auto' contradicts trainer.find_last_checkpoint=false",
        ),
        (
            ["algorithm.adv_estimator=gae"],
            "algorithm.adv_estimator=gae trains a value model: set worker.critic.model.model_path",
        ),
        (
            ["algorithm.adv_estimator=gae", "worker.critic.model.model_path=m", "worker.critic.global_batch_size=200"],
            "must be a multiple of worker.critic.global_batch_size=200",
        ),
        (
            ["algorithm.self_reward.mode=multi_reward"],
            "algorithm.self_reward.mode: 'multi_reward' needs the second hop; set algorithm.self_reward.enable=true",
        ),
        (
            ["algorithm.self_reward.train_second_hop=true"],
            "algorithm.self_reward.train_second_hop: true needs the second hop",
        ),
        (
            [
                "algorithm.self_reward.enable=true",
                "algorithm.self_reward.train_second_hop=true",
                "algorithm.self_reward.backend=external",
            ],
            "algorithm.self_reward.train_second_hop: trains the policy on its own blind answers, so it needs "
            "algorithm.self_reward.backend=policy",
        ),
        (["algorithm.self_reward.backend=external"], "algorithm.self_reward.backend: 'external' needs the second hop"),
        (["algorithm.self_reward.enable=true", "algorithm.self_reward.n=0"], "algorithm.self_reward.n: must be >= 1"),
        (
            ["algorithm.self_reward.enable=true", "algorithm.self_reward.max_tokens=0"],
            "algorithm.self_reward.max_tokens: must be >= 1",
        ),
        (
            ["algorithm.self_reward.external.api_key_env=sk-123"],
            "algorithm.self_reward.external.api_key_env: must be an environment variable name",
        ),
        (
            ["algorithm.reward_channels={accuracy: 1.0}", "algorithm.adv_estimator=remax"],
            "algorithm.reward_channels: {'accuracy': 1.0} gives each channel its own group-normalised (GRPO) advantage",
        ),
        (["algorithm.reward_channels={accuracy: 0, perception: 0}"], "needs at least one non-zero weight"),
        (["trainer.resume_mode=path"], "trainer.resume_mode: 'path' needs trainer.load_checkpoint_path"),
        (["trainer.val_freq=0"], "trainer.val_freq: must be -1 (off/unlimited) or >= 1, got 0"),
        (["data.min_pixels=10", "data.max_pixels=5"], "data.min_pixels: must be <= data.max_pixels, got 10 > 5"),
        (["data.dataloader_num_workers=-1"], "data.dataloader_num_workers: must be >= 0, got -1"),
        (
            ["worker.actor.fsdp.fsdp_version=1", "worker.actor.fsdp.enable_cpu_offload=true"],
            "worker.actor.fsdp.enable_cpu_offload=true with FSDP1 forbids gradient accumulation: set "
            "worker.actor.micro_batch_size_per_device_for_update=256",
        ),
        (  # one micro-batch by rows, but token-budget micro-batches accumulate all the same
            [
                "worker.actor.fsdp.fsdp_version=1",
                "worker.actor.fsdp.enable_cpu_offload=true",
                "worker.actor.micro_batch_size_per_device_for_update=256",
                "worker.actor.dynamic_batching=true",
            ],
            "worker.actor.fsdp.enable_cpu_offload=true with FSDP1 forbids gradient accumulation",
        ),
    ],
)
def test_start_up_checks_name_keys_and_values(argv: list[str], expected: str) -> None:
    assert expected in error_of(*argv)


def test_checks_that_pass() -> None:
    assert load("worker.rollout.n=1", "algorithm.adv_estimator=remax").worker.rollout.n == 1
    dynamic = load("worker.actor.micro_batch_size_per_device_for_update=3", "worker.actor.dynamic_batching=true")
    assert dynamic.worker.actor.global_batch_size_per_device == 256
    gae = load("algorithm.adv_estimator=gae", "worker.critic.model.model_path=m", "worker.critic.global_batch_size=128")
    assert gae.algorithm.use_critic and gae.worker.critic.global_batch_size_per_device == 128
    assert gae.worker.critic.model.tokenizer_path == "m"
    one_gpu = load(
        "trainer.n_gpus_per_node=1",
        "data.rollout_batch_size=4",
        "worker.actor.global_batch_size=2",
        "worker.rollout.n=2",
        "worker.actor.micro_batch_size_per_device_for_update=2",
    )
    assert one_gpu.worker.actor.global_batch_size_per_device == 4
    assert not load("algorithm.disable_kl=true").algorithm.use_reference_policy


def test_disable_kl_wins_over_use_kl_loss_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="verl.trainer.config"):
        cfg = load("algorithm.disable_kl=True", "algorithm.use_kl_loss=true")
    assert cfg.algorithm.use_kl_loss is False and cfg.worker.actor.use_kl_loss is False
    assert cfg.worker.actor.disable_kl is True and not cfg.algorithm.use_reference_policy
    lines = [r.getMessage() for r in caplog.records if "use_kl_loss" in r.getMessage()]
    assert lines == ["algorithm.disable_kl=true: no KL term, so algorithm.use_kl_loss=true is ignored"]


@pytest.mark.parametrize(
    ("argv", "mode"),
    [
        ([], "auto"),
        (["trainer.find_last_checkpoint=true"], "auto"),
        (["trainer.find_last_checkpoint=false"], "disable"),
        (["trainer.find_last_checkpoint=false", "trainer.load_checkpoint_path=ckpt/global_step_2"], "path"),
        (["trainer.find_last_checkpoint=true", "trainer.load_checkpoint_path=ckpt/global_step_2"], "auto"),
        (["trainer.resume_mode=disable"], "disable"),  # set explicitly, ours wins over the default true
        (["trainer.find_last_checkpoint=false", "trainer.resume_mode=disable"], "disable"),
    ],
)
def test_find_last_checkpoint_maps_onto_resume_mode(argv: list[str], mode: str, tmp_path: Path) -> None:
    (tmp_path / "ckpt" / "global_step_2").mkdir(parents=True)
    assert load(*argv).trainer.resume_mode == mode


@pytest.mark.parametrize("arg", ["worker.actor.loss_type=sapo", "worker.actor.clip_ratio_high=0.28"])
def test_sft_refuses_rl_update_keys(arg: str) -> None:
    from verl.trainer.sft_config import SFTConfig

    with pytest.raises(ConfigError) as info:
        load_config(SFTConfig, ["trainer.n_gpus_per_node=1", "worker.actor.global_batch_size=4", arg])
    assert f"{arg} is a setting of the RL policy update that SFT does not use" in str(info.value)


def test_sft_refuses_sequence_parallelism() -> None:
    from verl.trainer.sft_config import SFTConfig

    with pytest.raises(ConfigError) as info:
        load_config(
            SFTConfig, ["trainer.n_gpus_per_node=2", "worker.actor.global_batch_size=4", "worker.actor.ulysses_size=2"]
        )
    assert "worker.actor.ulysses_size=2: sequence parallelism is built for the RL trainer, not SFT" in str(info.value)


def test_sft_find_last_checkpoint_maps_onto_resume_mode() -> None:
    from verl.trainer.sft_config import SFTConfig

    sft = ["trainer.n_gpus_per_node=1", "worker.actor.global_batch_size=4"]
    assert load_config(SFTConfig, sft).trainer.resume_mode == "auto"
    assert load_config(SFTConfig, [*sft, "trainer.find_last_checkpoint=false"]).trainer.resume_mode == "disable"


@pytest.mark.parametrize("loss_type", ["default", "gspo", "gspo_token", "cispo", "sapo"])
def test_every_policy_loss_of_core_algos_passes_validation(loss_type: str) -> None:
    assert load(f"worker.actor.loss_type={loss_type}").worker.actor.loss_type == loss_type


def test_every_loss_core_algos_implements_is_accepted() -> None:
    from typing import get_args, get_type_hints

    from verl.trainer.core_algos import LOSS_TYPES
    from verl.workers.config import ActorConfig

    accepted = set(get_args(get_type_hints(ActorConfig)["loss_type"]))
    assert set(LOSS_TYPES) <= accepted


def test_accepted_advantage_estimators_are_the_implemented_ones() -> None:
    from typing import get_args

    from verl.trainer.config import AdvEstimator
    from verl.trainer.core_algos import ADV_ESTIMATORS

    assert set(get_args(AdvEstimator)) - {"grpo_passk"} == set(ADV_ESTIMATORS)


def test_multi_reward_fills_channels_and_keeps_explicit_ones() -> None:
    on = ["algorithm.self_reward.enable=true", "algorithm.self_reward.mode=multi_reward"]
    assert load(*on).algorithm.reward_channels == {"accuracy": 1.0, "perception": 1.0}
    explicit = load(*on, "algorithm.reward_channels={accuracy: 1, perception: 0.5}")
    assert explicit.algorithm.reward_channels == {"accuracy": 1.0, "perception": 0.5}
    trained = load(*on, "algorithm.self_reward.train_second_hop=true", "algorithm.use_kl_loss=true")
    assert trained.algorithm.self_reward.train_second_hop and trained.algorithm.self_reward.second_hop_weight == 0.5
    # KL in the reward would leave the trained blind answers without any KL term: refused, naming the keys
    message = error_of(*on, "algorithm.self_reward.train_second_hop=true")
    assert "algorithm.self_reward.train_second_hop" in message and "algorithm.use_kl_loss=true" in message


def test_all_problems_are_reported_at_once() -> None:
    message = error_of("data.rollout_batch_size=100", "worker.rollout.max_model_len=10")
    assert message.startswith("2 config errors:")
    assert "data.rollout_batch_size=100" in message and "worker.rollout.max_model_len=10" in message
    message = error_of("worker.rollout.n=0", "data.max_prompt_length=0", "trainer.nnodes=0")
    assert "worker.rollout.n" in message and "data.max_prompt_length" in message and "trainer.nnodes" in message


def test_paper_recipe_yaml(tmp_path: Path) -> None:
    """A Vision-SR1-style YAML (EasyR1 key names) loads unchanged apart from paths."""
    (tmp_path / "format.jinja").write_text("{{ content }}")
    (tmp_path / "reward.py").write_text("def compute_score(x):\n    return []\n")
    path = tmp_path / "selfReward_config.yaml"
    path.write_text(
        f"""
data:
  train_files: LMMs-Lab-Turtle/Vision-SR1-47K@train
  val_files: zli12321/mmstar@test
  prompt_key: problem
  max_prompt_length: 12800
  max_response_length: 2048
  rollout_batch_size: 512
  val_batch_size: 1024
  format_prompt: {tmp_path / "format.jinja"}
  max_pixels: 4194304
  min_pixels: 262144
algorithm:
  adv_estimator: grpo
  use_kl_loss: true
  kl_penalty: low_var_kl
  kl_coef: 1.0e-2
  self_reward:
    enable: true
worker:
  actor:
    global_batch_size: 128
    micro_batch_size_per_device_for_update: 4
    micro_batch_size_per_device_for_experience: 8
    model:
      model_path: Qwen/Qwen2.5-VL-7B-Instruct
      lora:
    optim:
      lr: 1.0e-6
      weight_decay: 1.0e-2
      strategy: adamw
    offload:
      offload_params: true
      offload_optimizer: true
  rollout:
    max_num_batched_tokens: 15000
    max_model_len: 16384
    n: 8
    top_p: 0.99
    tensor_parallel_size: 2
    val_override_config:
      temperature: 0.0
      n: 1
  ref:
    fsdp:
      enable_cpu_offload: true
  reward:
    reward_type: batch
    reward_function: {tmp_path / "reward.py"}:compute_score
trainer:
  total_epochs: 1
  logger: ["console", "wandb"]
  val_freq: 5
  save_freq: 15
  save_checkpoint_path: ./saves/selfReward
  response_path: ./responses/SelfReward.jsonl
"""
    )
    cfg = load(f"config={path}", "trainer.experiment_name=qwen2_5_vl_7b_selfReward_grpo")
    assert cfg.worker.actor.global_batch_size_per_device == 128
    assert cfg.worker.rollout.val_override_config == {"temperature": 0.0, "n": 1}
    assert cfg.trainer.response_path == os.path.join(str(tmp_path), "responses", "SelfReward.jsonl")
    assert cfg.algorithm.self_reward.enable and cfg.worker.actor.model.lora.rank == 0


def test_worker_behaviour_keys_reach_the_workers_or_are_refused() -> None:
    cfg = load("trainer.seed=7", "trainer.save_model_only=true", "worker.actor.loss_type=sapo")
    assert cfg.worker.seed == 7 and cfg.worker.save_model_only is True
    assert (cfg.worker.actor.tau_positive, cfg.worker.actor.tau_negative) == (1.0, 1.05)
    assert "algorithm.kl_penalty: full (exact KL over the vocabulary) needs" in error_of("algorithm.kl_penalty=full")
    load("algorithm.kl_penalty=full", "algorithm.disable_kl=true")  # no KL at all: nothing to refuse
    assert "worker.ref.offload.offload_optimizer: the reference model is frozen" in error_of(
        "worker.ref.offload.offload_optimizer=true"
    )
    assert "worker.actor.fsdp.fsdp_size=3 ranks per sharding group must divide the world size 2" in error_of(
        "worker.actor.fsdp.fsdp_size=3", "trainer.n_gpus_per_node=2", "data.rollout_batch_size=2",
        "worker.actor.global_batch_size=2",
    )  # fmt: skip
    assert "worker.actor.tau_negative: must be > 0" in error_of("worker.actor.tau_negative=0")
