"""The FSDP worker: one process per device (or CPU rank) holding one or more roles.

Roles: ``actor`` (trainable policy), ``rollout`` (a generation engine fed with the actor's weights each
step), ``ref`` (frozen reference policy for KL), ``critic`` (value model for GAE). Colocated actor, rollout
and reference in one process is the default (``role="actor_rollout_ref"``); a critic gets its own worker.

The driver calls the methods marked ``@register``; a DataProto argument is split across ranks by data
parallel rank and the results are concatenated (``Dispatch.DP_COMPUTE_PROTO``). With ``ulysses_size > 1`` the
ranks of one sequence-parallel group first gather each other's rows, work on them together (each holding a
slice of every sequence) and return their own rows' results (``verl.utils.ulysses``); FSDP still shards over
the whole world.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..protocol import DataProto
from ..single_controller import Dispatch, Worker, register
from ..utils import fsdp_utils
from ..utils.optim import build_lr_scheduler, build_optimizer
from ..utils.tokenizer import get_processor, get_tokenizer
from ..utils.ulysses import SequenceParallel
from .actor.dp_actor import DataParallelActor

logger = logging.getLogger(__name__)

ROLES = {"actor", "actor_rollout", "actor_rollout_ref", "rollout", "ref", "critic"}


def attention_implementation(device: torch.device) -> str:
    """flash-attention 2 on CUDA when installed (varlen kernels for padding-free), SDPA otherwise."""
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def load_hf_model(
    model_config: Any, dtype: torch.dtype, device: torch.device, value_head: bool = False, on_meta: bool = False
) -> torch.nn.Module:
    """A causal LM or image-text-to-text model from a hub id or local folder.

    ``value_head=True`` returns a critic: the same backbone with a scalar head on the last hidden state.
    ``on_meta=True`` builds the architecture on the meta device without reading any weights (the ranks other
    than 0 under ``fsdp.enable_rank0_init``: FSDP gives them storage and rank 0's weights).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    path = model_config.model_path
    if not path:
        raise ValueError("worker.actor.model.model_path is not set")
    try:
        hf_config = AutoConfig.from_pretrained(path, trust_remote_code=model_config.trust_remote_code)
    except OSError as exc:
        raise ValueError(f"cannot load a model config from {path!r} (a hub id or a local folder): {exc}") from exc
    for key, value in (model_config.override_config or {}).items():
        setattr(hf_config, key, value)
    is_vl = hasattr(hf_config, "vision_config")
    cls = AutoModelForImageTextToText if is_vl else AutoModelForCausalLM
    if on_meta:
        with torch.device("meta"):
            model = cls.from_config(
                hf_config,
                dtype=dtype,
                trust_remote_code=model_config.trust_remote_code,
                attn_implementation=attention_implementation(device),
            )
    else:
        model = cls.from_pretrained(
            path,
            config=hf_config,
            dtype=dtype,
            trust_remote_code=model_config.trust_remote_code,
            attn_implementation=attention_implementation(device),
        )
    if value_head:
        with torch.device("meta" if on_meta else "cpu"):
            model = ValueHeadModel(model)
    return model


class ValueHeadModel(torch.nn.Module):
    """A policy backbone with a linear value head (one scalar per token), for the GAE critic."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm
        hidden = lm.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1, dtype=next(lm.parameters()).dtype)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self._no_split_modules = getattr(lm, "_no_split_modules", None)

    def forward(self, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("logits_to_keep", None)
        # The backbone without the output head: its last hidden state (whole under sequence parallelism).
        output = self.lm.base_model(**kwargs)
        return self.value_head(output.last_hidden_state).squeeze(-1)


def freeze_vision_tower(model: torch.nn.Module) -> int:
    """Freeze the vision encoder (and its merger/projector); returns how many parameters were frozen."""
    from ..models.family import family_of_config

    tower = family_of_config(getattr(model, "lm", model)).vision_tower  # the critic wraps its backbone as .lm
    frozen = 0
    for name, module in model.named_modules():
        if name == tower or name.endswith("." + tower):
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def lora_settings(lora_config: Any) -> dict[str, Any]:
    """The adapter settings as applied (target list parsed, the vision tower excluded by default), in the
    form ``meta.json`` records them so the model merger rebuilds exactly the same adapters."""
    target = lora_config.target_modules
    if isinstance(target, str) and target != "all-linear":
        target = [t.strip() for t in target.split(",") if t.strip()]
    return {
        "rank": lora_config.rank,
        "alpha": lora_config.alpha,
        "dropout": lora_config.dropout,
        "target_modules": target,
        "exclude_modules": lora_config.exclude_modules or r".*visual.*",
    }


def peft_lora_config(settings: dict[str, Any]) -> Any:
    """A peft ``LoraConfig`` from :func:`lora_settings`' output."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=settings["target_modules"],
        exclude_modules=settings["exclude_modules"],
        bias="none",
    )


def apply_lora(model: torch.nn.Module, lora_config: Any) -> torch.nn.Module:
    """Wrap with peft LoRA adapters; the vision tower is excluded unless listed explicitly."""
    from peft import get_peft_model

    return get_peft_model(model, peft_lora_config(lora_settings(lora_config)))


def merged_lora_weights(
    named: Iterator[tuple[str, torch.Tensor]], scaling: float
) -> Iterator[tuple[str, torch.Tensor]]:
    """Turn a peft state dict into plain base-model weights with ``W + scaling * B @ A`` merged in.

    Names lose peft's ``base_model.model.`` prefix and ``.base_layer`` infix, so the result loads into a
    model (or a rollout engine) that has never heard of LoRA. Relies on peft's registration order
    (base layer, then lora_A, then lora_B) to merge each layer as soon as its pieces have arrived.
    """
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in named:
        name = name.removeprefix("base_model.model.")
        for marker, key in ((".lora_A.", "A"), (".lora_B.", "B"), (".base_layer.", None)):
            if marker in name:
                prefix, rest = name.split(marker, 1)
                key = key or rest  # "weight" or "bias" of the base layer
                break
        else:
            yield name, tensor
            continue
        entry = pending.setdefault(prefix, {})
        entry[key] = tensor
        if {"A", "B", "weight"} <= entry.keys():
            weight = entry["weight"]
            delta = (entry["B"].float() @ entry["A"].float()) * scaling
            yield f"{prefix}.weight", (weight.float() + delta).to(weight.dtype)
            if "bias" in entry:
                yield f"{prefix}.bias", entry["bias"]
            del pending[prefix]
    if pending:
        raise ValueError(f"incomplete LoRA layers in the state dict: {sorted(pending)[:3]}")


class _NoSequenceParallel:
    """``ulysses_size=1``: every rank works on its own rows."""

    size = 1

    def run(self, compute: Any, data: DataProto) -> Any:
        return compute(data)


class FSDPWorker(Worker):
    """Holds the roles named by ``role`` on this rank; see the module docstring."""

    def __init__(self, config: Any, role: str) -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
        self.config, self.role = config, role
        self._is_actor = role.startswith("actor")
        self._is_rollout = "rollout" in role
        self._is_ref = role.endswith("ref") or role == "ref"
        self._is_critic = role == "critic"
        self.actor = self.ref = self.critic_module = self.rollout = None
        self.actor_sp = self.critic_sp = _NoSequenceParallel()
        self._weights_version = 0  # bumped by every actor update
        self._synced_version = -1  # what the rollout engine holds

    # ------------------------------------------------------------------ setup

    def _rank0_init(self, fsdp_config: Any) -> bool:
        """Whether this role loads its weights on rank 0 only (``fsdp.enable_rank0_init``, several ranks)."""
        return fsdp_config.enable_rank0_init and self.world_size > 1

    def _build(self, model_config: Any, fsdp_config: Any, dtype: torch.dtype, value_head: bool = False) -> Any:
        """Load a role's model: real weights, or the bare architecture on the meta device on the ranks other
        than 0 under rank-0 init (one copy of the weights in host memory instead of one per rank)."""
        on_meta = self._rank0_init(fsdp_config) and self.rank != 0
        return load_hf_model(model_config, dtype, self.device, value_head=value_head, on_meta=on_meta)

    def _wrap(self, module: torch.nn.Module, fsdp_config: Any) -> torch.nn.Module:
        if self.world_size == 1 and self.device.type == "cpu":
            return module  # a single CPU rank has nothing to shard
        if not fsdp_utils.is_on_meta(module):
            module.to(self.device)
        if fsdp_config.fsdp_version == 1:  # FSDP1 broadcasts rank 0's states itself (sync_module_states)
            return fsdp_utils.apply_fsdp1(module, fsdp_config, self.device, self.world_size)
        if not self._rank0_init(fsdp_config):
            return fsdp_utils.apply_fsdp2(module, fsdp_config, self.device, self.world_size)
        state, buffers = fsdp_utils.rank0_state(module, self.rank)
        module = fsdp_utils.apply_fsdp2(module, fsdp_config, self.device, self.world_size)
        fsdp_utils.load_from_rank0(module, state, buffers)
        return module

    def _offload(self, module: torch.nn.Module, optimizer: Any, offload: Any) -> None:
        """Move a role's weights / optimizer states to CPU memory between its phases, as its ``offload``
        section asks (``worker.{actor,ref,critic}.offload``); a no-op on CPU ranks."""
        if offload.offload_params:
            fsdp_utils.offload_module(module)
        if optimizer is not None and offload.offload_optimizer:
            fsdp_utils.offload_optimizer(optimizer)

    def _load(self, module: torch.nn.Module, optimizer: Any, offload: Any) -> None:
        """Bring what ``_offload`` moved back to the device before the role computes."""
        if offload.offload_params:
            fsdp_utils.load_module(module, self.device)
        if optimizer is not None and offload.offload_optimizer:
            fsdp_utils.load_optimizer(optimizer, self.device)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self) -> None:
        """Load models, wrap them with FSDP, build optimizers and the rollout engine."""
        self.init_distributed()
        if self.device.type == "cpu":  # before the rollout engine: vLLM-CPU freezes the thread count
            torch.set_num_threads(fsdp_utils.cpu_threads_per_rank(self.local_world_size))
        torch.manual_seed(self.config.seed + self.rank)  # trainer.seed: model init and (hf) sampling
        actor_cfg = self.config.actor
        model_cfg = actor_cfg.model
        self.tokenizer = get_tokenizer(
            model_cfg.tokenizer_path or model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code
        )
        self.processor = get_processor(
            model_cfg.tokenizer_path or model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code
        )

        if self._is_actor:
            dtype = fsdp_utils.to_dtype(actor_cfg.fsdp.torch_dtype, torch.float32)
            if actor_cfg.optim.strategy == "adamw_bf16":
                dtype = torch.bfloat16
            model = self._build(model_cfg, actor_cfg.fsdp, dtype)
            if model_cfg.freeze_vision_tower:
                freeze_vision_tower(model)
            if model_cfg.enable_gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self._lora_scaling = None
            self.actor_sp = self._sequence_parallel(actor_cfg.ulysses_size, "worker.actor.ulysses_size", model)
            if model_cfg.lora.rank > 0:
                model = apply_lora(model, model_cfg.lora)
                self._lora_scaling = model_cfg.lora.alpha / model_cfg.lora.rank
            module = self._wrap(model, actor_cfg.fsdp)
            optimizer = build_optimizer(module, actor_cfg.optim)
            self.lr_scheduler = build_lr_scheduler(optimizer, actor_cfg.optim)
            self.actor = DataParallelActor(actor_cfg, module, optimizer)
            self._offload(module, optimizer, actor_cfg.offload)

        if self._is_ref:
            ref_cfg = self.config.ref
            if self._is_actor and model_cfg.lora.rank > 0:
                self.ref = "lora_base"  # the actor's base weights with adapters disabled
            else:
                dtype = fsdp_utils.to_dtype(
                    ref_cfg.fsdp.torch_dtype, torch.bfloat16 if self.device.type == "cuda" else torch.float32
                )
                ref_model = self._build(model_cfg, ref_cfg.fsdp, dtype)
                ref_model.requires_grad_(False)
                self.actor_sp = self._sequence_parallel(ref_cfg.ulysses_size, "worker.ref.ulysses_size", ref_model)
                self.ref = DataParallelActor(ref_cfg, self._wrap(ref_model, ref_cfg.fsdp))
                self._offload(self.ref.module, None, ref_cfg.offload)

        if self._is_critic:
            critic_cfg = self.config.critic
            dtype = fsdp_utils.to_dtype(critic_cfg.fsdp.torch_dtype, torch.float32)
            critic = self._build(critic_cfg.model, critic_cfg.fsdp, dtype, value_head=True)
            self.critic_sp = self._sequence_parallel(critic_cfg.ulysses_size, "worker.critic.ulysses_size", critic)
            if critic_cfg.model.freeze_vision_tower:
                freeze_vision_tower(critic)
            module = self._wrap(critic, critic_cfg.fsdp)
            from .critic.dp_critic import DataParallelCritic

            optimizer = build_optimizer(module, critic_cfg.optim)
            self.critic_lr_scheduler = build_lr_scheduler(optimizer, critic_cfg.optim)
            self.critic_module = DataParallelCritic(critic_cfg, module, optimizer)
            self._offload(module, optimizer, critic_cfg.offload)

        if self._is_rollout:
            self.rollout = self._build_rollout()

    def _sequence_parallel(self, size: int, key: str, model: torch.nn.Module) -> Any:
        """Install sequence parallelism on ``model`` (the actor's and reference's share one group)."""
        if size == 1:
            return _NoSequenceParallel()
        sp = self.actor_sp if self.actor_sp.size == size else SequenceParallel(size, key)
        sp.install(model)
        return sp

    def _build_rollout(self) -> Any:
        from .rollout import build_rollout

        return build_rollout(
            self.config.rollout,
            model_path=self.config.actor.model.model_path,
            tokenizer=self.tokenizer,
            processor=self.processor,
            module=self.actor.module if self.actor is not None else None,
        )

    # ------------------------------------------------------------------ weights

    def _actor_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        named = ((fsdp_utils.unwrap_name(n), t) for n, t in fsdp_utils.iter_full_state_dict(self.actor.module))
        if self._lora_scaling is not None:
            named = merged_lora_weights(named, self._lora_scaling)
        return named

    def _sync_rollout_weights(self) -> float:
        """Load the actor's current weights into the rollout engine, once per actor update."""
        if self.actor is None or self._synced_version == self._weights_version:
            return 0.0
        start = time.perf_counter()
        fsdp_utils.load_module(self.actor.module, self.device)
        self.rollout.load_weights(self._actor_weights())
        if self.config.actor.offload.offload_params:
            fsdp_utils.offload_module(self.actor.module)
        self._synced_version = self._weights_version
        return time.perf_counter() - start

    # ------------------------------------------------------------------ actor / rollout

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        sync_seconds = self._sync_rollout_weights()
        output = self.rollout.generate_sequences(prompts)
        output.meta_info["timing/weight_sync"] = sync_seconds
        return output

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def continue_sequences(self, partial: DataProto) -> DataProto:
        """Second half of a rollout split at a stop string (``BaseRollout.continue_sequences``). The driver calls
        it right after the first half, with no update between, so the engine's weights are the same."""
        sync_seconds = self._sync_rollout_weights()
        output = self.rollout.continue_sequences(partial)
        output.meta_info["timing/weight_sync"] = sync_seconds
        return output

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_log_probs(self, data: DataProto) -> DataProto:
        """Current-policy log-probs of the responses (``old_log_probs``), with entropies."""
        fsdp_utils.load_module(self.actor.module, self.device)
        data = data.to(self.device)
        temperature = data.meta_info.get("temperature", self.config.rollout.temperature)
        out = self.actor_sp.run(lambda rows: self.actor.compute_log_prob(rows, temperature, with_entropy=True), data)
        out.rename(["log_probs", "entropies"], ["old_log_probs", "entropies"])
        if self.config.actor.offload.offload_params:
            fsdp_utils.offload_module(self.actor.module)
        return out.to("cpu")

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_ref_log_probs(self, data: DataProto) -> DataProto:
        data = data.to(self.device)
        temperature = data.meta_info.get("temperature", self.config.rollout.temperature)
        if self.ref == "lora_base":
            with self.actor.module.disable_adapter():
                out = self.actor_sp.run(lambda rows: self.actor.compute_log_prob(rows, temperature), data)
        else:
            self._load(self.ref.module, None, self.config.ref.offload)
            out = self.actor_sp.run(lambda rows: self.ref.compute_log_prob(rows, temperature), data)
            self._offload(self.ref.module, None, self.config.ref.offload)
        out.rename("log_probs", "ref_log_probs")
        return out.to("cpu")

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_actor(self, data: DataProto) -> DataProto:
        start = time.perf_counter()
        fsdp_utils.load_module(self.actor.module, self.device)
        fsdp_utils.load_optimizer(self.actor.optimizer, self.device)
        data = data.to(self.device)
        temperature = data.meta_info.get("temperature", self.config.rollout.temperature)
        metrics = self.actor_sp.run(lambda rows: self.actor.update_policy(rows, temperature), data)
        self.lr_scheduler.step()
        self._weights_version += 1
        metrics["actor/lr"] = [self.lr_scheduler.get_last_lr()[0]]
        metrics["timing/update_actor_rank"] = [time.perf_counter() - start]
        metrics.update(fsdp_utils.memory_metrics(self.device))
        if self.config.actor.offload.offload_params:
            fsdp_utils.offload_module(self.actor.module)
        if self.config.actor.offload.offload_optimizer:
            fsdp_utils.offload_optimizer(self.actor.optimizer)
        return DataProto(meta_info={"metrics": metrics})

    # ------------------------------------------------------------------ supervised fine-tuning

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def train_sft_batch(self, data: DataProto) -> DataProto:
        """One SFT optimizer step on this rank's rows; ``meta_info["global_tokens"]`` is the labelled-token
        count of the whole global batch (see ``DataParallelActor.update_sft``)."""
        fsdp_utils.load_module(self.actor.module, self.device)
        fsdp_utils.load_optimizer(self.actor.optimizer, self.device)
        data = data.to(self.device)
        nll, grad_norm = self.actor.update_sft(data, int(data.meta_info["global_tokens"]), self.world_size)
        self.lr_scheduler.step()
        self._weights_version += 1
        if self.config.actor.offload.offload_params:
            fsdp_utils.offload_module(self.actor.module)
        if self.config.actor.offload.offload_optimizer:
            fsdp_utils.offload_optimizer(self.actor.optimizer)
        metrics = {
            "actor/grad_norm": grad_norm,
            "actor/lr": self.lr_scheduler.get_last_lr()[0],
            "actor/non_finite_skipped": float(self.actor.non_finite_updates),
        }
        return DataProto.from_dict(tensors={"nll": nll.cpu()}, meta_info={"metrics": metrics})

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_sft_nll(self, data: DataProto) -> DataProto:
        fsdp_utils.load_module(self.actor.module, self.device)
        out = self.actor.compute_sft_nll(data.to(self.device))
        if self.config.actor.offload.offload_params:
            fsdp_utils.offload_module(self.actor.module)
        return out.to("cpu")

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_hf_model(self, path: str) -> None:
        """Write the actor's full weights (LoRA merged) as a Hugging Face model folder, from rank 0.

        Every rank takes part in gathering the shards; the folder loads with ``from_pretrained`` and vLLM
        like the starting checkpoint (same config, tokenizer/processor and generation config).
        """
        fsdp_utils.load_module(self.actor.module, self.device)
        state = {name: tensor.detach().cpu() for name, tensor in self._actor_weights()}
        if self.rank == 0:
            model = self.actor.module
            if self._lora_scaling is not None:
                model = model.get_base_model()
            model = getattr(model, "_fsdp_wrapped_module", model)
            model.save_pretrained(path, state_dict=state)
            (self.processor or self.tokenizer).save_pretrained(path)
            try:
                from transformers import GenerationConfig

                GenerationConfig.from_pretrained(self.config.actor.model.model_path).save_pretrained(path)
            except OSError:
                pass  # the model has no generation_config.json
            from ..utils.model_merger import make_files_readable

            make_files_readable(Path(path))  # readable like the merger's folders, not safetensors' private 0600
        if torch.distributed.is_initialized():
            torch.distributed.barrier()

    # ------------------------------------------------------------------ critic

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_values(self, data: DataProto) -> DataProto:
        offload = self.config.critic.offload
        self._load(self.critic_module.module, None, offload)
        out = self.critic_sp.run(self.critic_module.compute_values, data.to(self.device))
        self._offload(self.critic_module.module, None, offload)
        return out.to("cpu")

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_critic(self, data: DataProto) -> DataProto:
        critic, offload = self.critic_module, self.config.critic.offload
        self._load(critic.module, critic.optimizer, offload)
        metrics = self.critic_sp.run(critic.update_critic, data.to(self.device))
        self.critic_lr_scheduler.step()
        self._offload(critic.module, critic.optimizer, offload)
        return DataProto(meta_info={"metrics": metrics})

    # ------------------------------------------------------------------ checkpoints

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, path: str) -> None:
        """Write this worker's role into ``path`` (``.../global_step_N.partial/actor`` or ``critic``).

        With ``trainer.save_model_only`` the optimizer state is left out (weights, LR schedule and RNG are
        kept); resuming from such a checkpoint starts a fresh optimizer, with a warning."""
        model_only = self.config.save_model_only
        if self.actor is not None:
            fingerprint = fsdp_utils.save_sharded(
                self.actor.module,
                None if model_only else self.actor.optimizer,
                self.lr_scheduler,
                path,
                self.rank,
                extra={"weights_version": self._weights_version, "model_only": model_only},
            )
            if self.rank == 0:
                self._save_hf_meta(path, self.config.actor, fingerprint)
        elif self.critic_module is not None:
            fingerprint = fsdp_utils.save_sharded(
                self.critic_module.module,
                None if model_only else self.critic_module.optimizer,
                self.critic_lr_scheduler,
                path,
                self.rank,
                extra={"model_only": model_only},
            )
            if self.rank == 0:
                self._save_hf_meta(path, self.config.critic, fingerprint)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, path: str) -> None:
        if self.actor is not None:
            extra = fsdp_utils.load_sharded(self.actor.module, self.actor.optimizer, self.lr_scheduler, path, self.rank)
            self._weights_version = int(extra.get("weights_version", 0)) + 1  # force a rollout weight sync
        elif self.critic_module is not None:
            fsdp_utils.load_sharded(
                self.critic_module.module, self.critic_module.optimizer, self.critic_lr_scheduler, path, self.rank
            )

    def _save_hf_meta(self, path: str, role_config: Any, fingerprint: str) -> None:
        """What the model merger needs without any other input: HF config, tokenizer/processor, meta.json.

        ``fingerprint`` is the id every rank wrote into its shard; the merger checks the shards against it.
        ``base_dtype`` is the dtype of the model as published (the merger's default output dtype), which can
        differ from the training dtype ``dtype``.
        """
        import json

        from transformers import AutoConfig

        model_cfg = role_config.model
        hf_dir = os.path.join(path, "hf")
        hf_config = AutoConfig.from_pretrained(model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code)
        hf_config.save_pretrained(hf_dir)
        base_dtype = getattr(hf_config, "dtype", None)
        base_dtype = str(base_dtype).removeprefix("torch.") if base_dtype is not None else None
        (self.processor or self.tokenizer).save_pretrained(hf_dir)
        try:
            from transformers import GenerationConfig

            GenerationConfig.from_pretrained(model_cfg.model_path).save_pretrained(hf_dir)
        except OSError:
            pass  # the model has no generation_config.json
        dtype = role_config.fsdp.torch_dtype or "fp32"
        meta = {
            "model_path": model_cfg.model_path,
            "dtype": "bf16" if role_config.optim.strategy == "adamw_bf16" else dtype,
            "world_size": self.world_size,
            "fsdp_version": role_config.fsdp.fsdp_version,
            "base_dtype": base_dtype,
            "lora": lora_settings(model_cfg.lora) if model_cfg.lora.rank > 0 else None,
            "role": self.role,
            "value_head": self.critic_module is not None and self.actor is None,
            "trust_remote_code": model_cfg.trust_remote_code,
            "fingerprint": fingerprint,
        }
        with open(os.path.join(path, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)

    # ------------------------------------------------------------------ inspection (tests, merger)

    @register(dispatch_mode=Dispatch.RANK_ZERO)
    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """The actor's full weights (merged LoRA), gathered on every rank and returned from rank 0."""
        return {name: tensor.detach().cpu().clone() for name, tensor in self._actor_weights()}

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def pid(self) -> int:
        return os.getpid()
