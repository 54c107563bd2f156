"""EasyR1 as its users run it: the fixture config, the overrides of each EasyR1 example script, the key set of
EasyR1's config dataclasses, and the command-line arguments that point the config at the tiny assets.

``config.yaml`` (next to this file) holds every key of EasyR1's ``examples/config.yaml`` with EasyR1's values.
``EXAMPLE_SCRIPTS`` holds the overrides of each ``examples/*.sh`` and ``examples/baselines/*.sh`` as the shell
passes them (quotes removed), with ``${MODEL_PATH}`` and ``${EXPERIMENT_NAME}`` filled in. ``path_args`` is
what a user changes: only paths. ``tiny_run_args`` adds the sizes for a two-step run on CPU ranks.
"""

from __future__ import annotations

from pathlib import Path

FIXTURE_DIR = Path(__file__).resolve().parent
CONFIG = FIXTURE_DIR / "config.yaml"
FORMAT_PROMPT = FIXTURE_DIR / "math.jinja"
REWARD_FILE = FIXTURE_DIR / "math_reward.py"

EXAMPLE_SCRIPTS: dict[str, list[str]] = {
    "baselines/qwen2_5_vl_3b_clevr": [
        "data.train_files=BUAADreamer/clevr_count_70k@train",
        "data.val_files=BUAADreamer/clevr_count_70k@test",
        "data.format_prompt=./examples/format_prompt/r1v.jinja",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-3B-Instruct",
        "worker.rollout.tensor_parallel_size=1",
        "worker.reward.reward_function=./examples/reward_function/r1v.py:compute_score",
        "trainer.experiment_name=qwen2_5_vl_3b_clevr",
        "trainer.n_gpus_per_node=2",
    ],
    "baselines/qwen2_5_vl_3b_geoqa8k": [
        "data.train_files=leonardPKU/GEOQA_8K_R1V@train",
        "data.val_files=leonardPKU/GEOQA_8K_R1V@test",
        "data.format_prompt=./examples/format_prompt/r1v.jinja",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-3B-Instruct",
        "worker.rollout.tensor_parallel_size=1",
        "worker.reward.reward_function=./examples/reward_function/r1v.py:compute_score",
        "trainer.experiment_name=qwen2_5_vl_3b_geoqa8k",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_7b_math_grpo": ["worker.actor.model.model_path=Qwen/Qwen2.5-7B-Instruct"],
    "qwen2_5_vl_32b_geo3k_grpo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-32B-Instruct",
        "worker.actor.fsdp.torch_dtype=bf16",
        "worker.actor.optim.strategy=adamw_bf16",
        "worker.rollout.tensor_parallel_size=8",
        "trainer.experiment_name=qwen2_5_vl_32b_geo_grpo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_3b_android_gui_grpo": [
        "data.train_files=yuehua-s/numbergame@train",
        "data.val_files=yuehua-s/numbergame@test",
        "data.max_prompt_length=3072",
        "data.max_response_length=64",
        "data.rollout_batch_size=32",
        "data.val_batch_size=60",
        "data.format_prompt=examples/format_prompt/android_gui.jinja",
        "data.seed=42",
        "data.filter_overlong_prompts=false",
        "algorithm.kl_coef=4.0e-2",
        "worker.actor.global_batch_size=32",
        "worker.actor.max_grad_norm=0.1",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-3B-Instruct",
        "worker.actor.model.trust_remote_code=true",
        "worker.actor.optim.lr=1.0e-5",
        "worker.actor.optim.weight_decay=1.0e-1",
        "worker.actor.optim.lr_warmup_ratio=0.05",
        "worker.actor.optim.lr_scheduler_type=constant",
        "worker.rollout.n=8",
        "worker.rollout.temperature=0.9",
        "worker.rollout.top_p=0.95",
        "worker.rollout.limit_images=1",
        "worker.rollout.gpu_memory_utilization=0.75",
        "worker.rollout.tensor_parallel_size=1",
        "worker.reward.reward_function=examples/reward_function/android_gui.py:compute_score",
        "trainer.total_epochs=3",
        "trainer.project_name=easy_r1",
        "trainer.experiment_name=qwen2_5_vl_3b_android_gui_grpo_20250101_000000",
        'trainer.logger=["console","wandb"]',
        "trainer.n_gpus_per_node=2",
        "trainer.nnodes=1",
        "trainer.val_freq=2",
        "trainer.val_generations_to_log=10",
        "trainer.save_freq=10",
    ],
    "qwen2_5_vl_3b_geo3k_grpo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-3B-Instruct",
        "trainer.experiment_name=qwen2_5_vl_3b_geo_grpo",
        "trainer.n_gpus_per_node=2",
    ],
    "qwen2_5_vl_7b_geo3k_cispo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "worker.actor.loss_type=cispo",
        "worker.actor.clip_ratio_low=0",
        "worker.actor.clip_ratio_high=4",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_cispo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_dapo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "data.mini_rollout_batch_size=128",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "worker.actor.clip_ratio_low=0.2",
        "worker.actor.clip_ratio_high=0.28",
        "algorithm.disable_kl=True",
        "algorithm.online_filtering=True",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_dapo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_grpo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_grpo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_gspo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "worker.actor.loss_type=gspo_token",
        "worker.actor.loss_avg_mode=seq",
        "worker.actor.clip_ratio_low=3e-4",
        "worker.actor.clip_ratio_high=4e-4",
        "algorithm.disable_kl=True",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_gspo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_reinforce": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "algorithm.adv_estimator=reinforce_plus_plus",
        "algorithm.use_kl_loss=false",
        "algorithm.kl_penalty=kl",
        "algorithm.kl_coef=1.0e-3",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_reinforce_pp",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_sapo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "worker.actor.loss_type=sapo",
        "algorithm.disable_kl=True",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_sapo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_geo3k_swanlab": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "trainer.experiment_name=qwen2_5_vl_7b_geo_grpo",
        "trainer.logger=[console,swanlab]",  # the shell strips the quotes of ['console','swanlab']
        "trainer.n_gpus_per_node=8",
    ],
    "qwen2_5_vl_7b_multi_image": [
        "data.train_files=hiyouga/journeybench-multi-image-vqa@train",
        "data.val_files=hiyouga/journeybench-multi-image-vqa@test",
        "data.rollout_batch_size=256",
        "worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct",
        "worker.rollout.limit_images=2",
        "trainer.experiment_name=qwen2_5_vl_7b_multi_image",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen3_14b_dapo17k_dapo": [
        "data.train_files=Saigyouji-Yuyuko1000/dapo17k@train",
        "data.val_files=Saigyouji-Yuyuko1000/dapo17k@test",
        "data.format_prompt=./examples/format_prompt/dapo.jinja",
        "data.max_prompt_length=2048",
        "data.max_response_length=20480",
        "data.rollout_batch_size=512",
        "data.mini_rollout_batch_size=256",
        "worker.actor.ulysses_size=8",
        "worker.actor.model.model_path=Qwen/Qwen3-14B-Base",
        "worker.actor.fsdp.torch_dtype=bf16",
        "worker.actor.optim.strategy=adamw_bf16",
        "worker.actor.optim.weight_decay=0.1",
        "worker.actor.optim.lr_warmup_steps=10",
        "worker.actor.global_batch_size=32",
        "worker.actor.clip_ratio_low=0.2",
        "worker.actor.clip_ratio_high=0.28",
        "worker.actor.clip_ratio_dual=10.0",
        "worker.rollout.n=16",
        "worker.rollout.max_num_batched_tokens=22528",
        'worker.rollout.val_override_config={"n":16,"temperature":1.0,"top_p":0.7}',
        "worker.rollout.gpu_memory_utilization=0.8",
        "worker.rollout.tensor_parallel_size=4",
        "worker.reward.reward_function=./examples/reward_function/dapo.py:compute_score",
        'worker.reward.reward_function_kwargs={"max_response_length":20480,"overlong_buffer_length":4096,'
        '"overlong_penalty_factor":1.0}',
        "algorithm.disable_kl=True",
        "algorithm.online_filtering=True",
        "algorithm.filter_key=accuracy_normalized",
        "algorithm.filter_low=0.01",
        "algorithm.filter_high=0.99",
        "trainer.total_epochs=10",
        "trainer.max_try_make_batch=10",
        "trainer.experiment_name=qwen3_14b_dapo17k_dapo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen3_4b_math_grpo": [
        "data.max_response_length=4096",
        "worker.actor.model.model_path=Qwen/Qwen3-4B",
        "trainer.experiment_name=qwen3_4b_math_grpo",
    ],
    "qwen3_4b_math_grpo_lora": [
        "data.max_response_length=2048",
        "worker.actor.model.model_path=Qwen/Qwen3-4B",
        "worker.actor.model.lora.rank=64",
        "worker.actor.model.lora.alpha=64",
        "worker.actor.optim.lr=1e-5",
        "worker.rollout.tensor_parallel_size=1",
        "trainer.experiment_name=qwen3_4b_math_grpo_lora",
        "trainer.n_gpus_per_node=1",
    ],
    "qwen3_vl_30b_geo3k_grpo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen3-VL-30B-A3B-Instruct",
        "worker.actor.fsdp.torch_dtype=bf16",
        "worker.actor.optim.strategy=adamw_bf16",
        "worker.rollout.tensor_parallel_size=8",
        "trainer.experiment_name=qwen3_vl_30b_geo_grpo",
        "trainer.n_gpus_per_node=8",
    ],
    "qwen3_vl_4b_geo3k_grpo": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen3-VL-4B-Instruct",
        "trainer.experiment_name=qwen3_vl_4b_geo_grpo",
        "trainer.n_gpus_per_node=2",
    ],
    "qwen3_vl_4b_geo3k_grpo_lora": [
        "data.train_files=hiyouga/geometry3k@train",
        "data.val_files=hiyouga/geometry3k@test",
        "worker.actor.model.model_path=Qwen/Qwen3-VL-4B-Instruct",
        "worker.actor.model.lora.rank=64",
        "worker.actor.optim.lr=1e-5",
        "trainer.experiment_name=qwen3_vl_4b_geo_grpo_lora",
        "trainer.n_gpus_per_node=2",
    ],
}

REFUSED_IN_SCRIPTS: dict[str, str] = {}
"""Scripts that use a key we refuse, and the start of the error they get."""

_TRAINED_MODEL_KEYS = {
    "model": "model_path tokenizer_path override_config enable_gradient_checkpointing trust_remote_code "
    "freeze_vision_tower",
    "model.lora": "rank alpha target_modules exclude_modules",
    "optim": "lr betas weight_decay strategy lr_warmup_ratio lr_warmup_steps min_lr_ratio lr_scheduler_type",
    "fsdp": "enable_full_shard enable_cpu_offload enable_rank0_init use_orig_params torch_dtype fsdp_size "
    "mp_param_dtype mp_reduce_dtype mp_buffer_dtype",
    "offload": "offload_params offload_optimizer",
}
_SECTIONS = {
    "data": "train_files val_files prompt_key answer_key image_key video_key image_dir video_fps max_prompt_length "
    "max_response_length rollout_batch_size mini_rollout_batch_size val_batch_size format_prompt "
    "override_chat_template shuffle seed min_pixels max_pixels filter_overlong_prompts "
    "filter_overlong_prompts_workers",
    "algorithm": "gamma lam adv_estimator disable_kl use_kl_loss kl_penalty kl_coef kl_type kl_horizon kl_target "
    "online_filtering filter_key filter_low filter_high",
    "trainer": "total_epochs max_steps project_name experiment_name logger nnodes n_gpus_per_node "
    "max_try_make_batch critic_warmup val_freq val_before_train val_only val_generations_to_log save_freq "
    "save_limit save_model_only save_checkpoint_path load_checkpoint_path ray_timeline find_last_checkpoint",
    "worker": "hybrid_engine",
    "worker.actor": "strategy global_batch_size micro_batch_size_per_device_for_update "
    "micro_batch_size_per_device_for_experience max_grad_norm clip_ratio_low clip_ratio_high clip_ratio_dual "
    "loss_avg_mode loss_type ppo_epochs padding_free dynamic_batching ulysses_size use_torch_compile tau_positive "
    "tau_negative",
    "worker.critic": "strategy global_batch_size micro_batch_size_per_device_for_update "
    "micro_batch_size_per_device_for_experience max_grad_norm cliprange_value loss_avg_mode ppo_epochs "
    "padding_free dynamic_batching ulysses_size",
    "worker.ref": "strategy",
    "worker.ref.fsdp": _TRAINED_MODEL_KEYS["fsdp"],
    "worker.ref.offload": _TRAINED_MODEL_KEYS["offload"],
    "worker.reward": "reward_function reward_function_kwargs skip_special_tokens num_cpus",
    "worker.rollout": "name n temperature top_p top_k seed limit_images dtype gpu_memory_utilization ignore_eos "
    "enforce_eager enable_chunked_prefill tensor_parallel_size max_model_len max_num_batched_tokens "
    "disable_log_stats disable_tqdm val_override_config",
}
for _role in ("worker.actor", "worker.critic"):
    for _sub, _names in _TRAINED_MODEL_KEYS.items():
        _SECTIONS[f"{_role}.{_sub}"] = _names

EASYR1_KEYS: list[str] = sorted(f"{section}.{name}" for section, names in _SECTIONS.items() for name in names.split())
"""Every settable key of EasyR1's config dataclasses (``verl/trainer/config.py``, ``verl/workers/*/config.py``)."""


def path_args(tiny_dir: str | Path, out_dir: str | Path) -> list[str]:
    """``config=<fixture>`` and the paths an EasyR1 user changes, pointed at the tiny assets: the model, the
    data, the format prompt, the reward file and where checkpoints go. Nothing else."""
    tiny_dir, out_dir = Path(tiny_dir), Path(out_dir)
    return [
        f"config={CONFIG}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"data.format_prompt={FORMAT_PROMPT}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
        f"worker.reward.reward_function={REWARD_FILE}:compute_score",
        f"trainer.save_checkpoint_path={out_dir / 'checkpoints'}",
    ]


def tiny_run_args(tiny_dir: str | Path, out_dir: str | Path, steps: int = 2) -> list[str]:
    """``path_args`` plus the sizes of a ``steps``-step run of the tiny model on one CPU rank (the 7B
    recipe's batch and lengths would take hours there); the algorithm keys stay EasyR1's."""
    return [
        *path_args(tiny_dir, out_dir),
        "data.max_prompt_length=192",
        "data.max_response_length=32",
        "data.rollout_batch_size=4",
        "data.val_batch_size=8",
        "data.min_pixels=3136",
        "data.max_pixels=12544",
        "worker.actor.global_batch_size=4",
        "worker.actor.micro_batch_size_per_device_for_update=4",
        "worker.actor.micro_batch_size_per_device_for_experience=8",
        "worker.actor.model.enable_gradient_checkpointing=false",
        "worker.actor.fsdp.torch_dtype=fp32",
        "worker.actor.fsdp.mp_param_dtype=fp32",
        "worker.rollout.n=2",
        "worker.rollout.tensor_parallel_size=1",
        "worker.rollout.enforce_eager=true",
        "worker.rollout.limit_images=1",
        "trainer.n_gpus_per_node=1",
        "trainer.device=cpu",
        "trainer.logger=[console,file]",
        f"trainer.max_steps={steps}",
        "trainer.val_before_train=false",
        "trainer.val_freq=-1",
        f"trainer.save_freq={steps}",
    ]
