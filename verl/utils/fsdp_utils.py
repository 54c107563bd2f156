"""FSDP wrapping, offloading and full-weight iteration for the workers.

FSDP2 (``fully_shard``) is the default: every decoder layer and vision block becomes its own unit, then the
root. FSDP1 (``FullyShardedDataParallel``) is kept for users whose setups rely on it. Both work with
``gloo`` on CPU ranks and ``nccl`` on GPUs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def to_dtype(name: str | None, default: torch.dtype) -> torch.dtype:
    if name is None:
        return default
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def _wrap_classes(module: torch.nn.Module) -> set[type]:
    names = set(getattr(module, "_no_split_modules", None) or [])
    return {type(m) for m in module.modules() if type(m).__name__ in names}


def mesh_shape(world_size: int, fsdp_size: int) -> tuple[int, ...]:
    """The device mesh for ``fsdp.fsdp_size``: ``(world_size,)`` shards over every rank (``-1`` or the world
    size); ``(world_size // fsdp_size, fsdp_size)`` is hybrid sharding: parameters sharded within groups of
    ``fsdp_size`` ranks, replicated across the groups, gradients averaged over all ranks."""
    if fsdp_size == -1 or fsdp_size == world_size:
        return (world_size,)
    if fsdp_size < 1 or fsdp_size > world_size or world_size % fsdp_size:
        raise ValueError(
            f"fsdp.fsdp_size={fsdp_size} ranks per sharding group must divide the world size {world_size} "
            "(-1 shards over all ranks)"
        )
    return (world_size // fsdp_size, fsdp_size)


def build_device_mesh(device: torch.device, world_size: int, fsdp_size: int) -> Any:
    """A 1-D ``("fsdp",)`` mesh or, for hybrid sharding, a 2-D ``("ddp", "fsdp")`` one (see ``mesh_shape``)."""
    from torch.distributed.device_mesh import init_device_mesh

    shape = mesh_shape(world_size, fsdp_size)
    names = ("fsdp",) if len(shape) == 1 else ("ddp", "fsdp")
    return init_device_mesh(device.type, shape, mesh_dim_names=names)


def is_on_meta(module: torch.nn.Module) -> bool:
    """Whether any parameter of ``module`` is a meta tensor (built without storage for rank-0 init)."""
    return any(p.is_meta for p in module.parameters())


def apply_fsdp2(
    module: torch.nn.Module,
    fsdp_config: Any,
    device: torch.device,
    world_size: int,
) -> torch.nn.Module:
    """Shard ``module`` with ``fully_shard`` (per transformer block, then the root) over the mesh of
    ``fsdp_config.fsdp_size`` (a 2-D mesh gives hybrid sharding). A module on the meta device is sharded there
    and then given (uninitialised) storage on ``device``; ``load_from_rank0`` fills it."""
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )

    mesh = build_device_mesh(device, world_size, fsdp_config.fsdp_size)
    mp_policy = MixedPrecisionPolicy(
        param_dtype=to_dtype(fsdp_config.mp_param_dtype, torch.bfloat16),
        reduce_dtype=to_dtype(fsdp_config.mp_reduce_dtype, torch.float32),
        cast_forward_inputs=True,
    )
    offload = CPUOffloadPolicy() if fsdp_config.enable_cpu_offload and device.type == "cuda" else OffloadPolicy()
    kwargs = {"mesh": mesh, "mp_policy": mp_policy, "offload_policy": offload}
    on_meta = is_on_meta(module)
    wrap = _wrap_classes(module)
    for sub in module.modules():
        if type(sub) in wrap:
            fully_shard(sub, reshard_after_forward=fsdp_config.enable_full_shard, **kwargs)
    fully_shard(module, reshard_after_forward=fsdp_config.enable_full_shard, **kwargs)
    if hasattr(module, "generate"):
        # generate() runs the vision tower before its first forward (multimodal encoder outputs): without the
        # root's pre-forward gather, the root-owned patch embedding would meet its input as a shard (DTensor).
        register_fsdp_forward_method(module, "generate")
    if on_meta:
        module.to_empty(device="cpu" if isinstance(offload, CPUOffloadPolicy) else device)
    return module


def rank0_state(module: torch.nn.Module, rank: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Before wrapping, for rank-0 init: rank 0's full state dict (other ranks: empty) and every buffer, the
    non-persistent ones (rotary frequencies) included, broadcast from rank 0 to all ranks."""
    state = module.state_dict() if rank == 0 else {}
    buffers = [{name: b.detach().cpu() for name, b in module.named_buffers()} if rank == 0 else None]
    dist.broadcast_object_list(buffers, src=0)
    return state, buffers[0]


def load_from_rank0(module: torch.nn.Module, state: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
    """After wrapping, for rank-0 init: every rank's shards get rank 0's weights (broadcast tensor by tensor,
    so only rank 0 ever held the whole model in host memory) and rank 0's buffers."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(module, state, options=options)
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name].to(buffer.device, buffer.dtype))


def apply_fsdp1(module: torch.nn.Module, fsdp_config: Any, device: torch.device, world_size: int) -> torch.nn.Module:
    """Wrap ``module`` with FSDP1 (``FULL_SHARD``, or ``SHARD_GRAD_OP`` when full shard is off; their hybrid
    forms when ``fsdp_size`` gives a 2-D mesh). GPU only."""
    if device.type != "cuda":
        raise ValueError("fsdp.fsdp_version=1 (FSDP1) needs a GPU; CPU ranks use fsdp.fsdp_version=2 (fully_shard)")
    from torch.distributed.fsdp import CPUOffload, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=_wrap_classes(module))
    mesh = build_device_mesh(device, world_size, fsdp_config.fsdp_size)
    if mesh.ndim == 2:  # shard within groups of fsdp_size ranks, replicate across them
        full, zero2 = ShardingStrategy.HYBRID_SHARD, ShardingStrategy._HYBRID_SHARD_ZERO2
    else:
        full, zero2 = ShardingStrategy.FULL_SHARD, ShardingStrategy.SHARD_GRAD_OP
    strategy = full if fsdp_config.enable_full_shard else zero2
    # rank-0 init: the other ranks hold the model on the meta device; FSDP gives them storage and copies rank
    # 0's parameters and buffers to every rank
    rank0_init = dist.is_initialized() and dist.get_world_size() > 1 and fsdp_config.enable_rank0_init
    on_meta = is_on_meta(module)
    # FSDP1 flattens each unit's parameters into one tensor, which needs one requires_grad per unit unless the
    # original parameters are kept: a frozen vision tower or LoRA adapters need use_orig_params
    use_orig_params = fsdp_config.use_orig_params or len({p.requires_grad for p in module.parameters()}) > 1
    mixed = MixedPrecision(
        param_dtype=to_dtype(fsdp_config.mp_param_dtype, torch.bfloat16),
        reduce_dtype=to_dtype(fsdp_config.mp_reduce_dtype, torch.float32),
        buffer_dtype=to_dtype(fsdp_config.mp_buffer_dtype, torch.float32),
    )
    return FSDP(
        module,
        auto_wrap_policy=policy,
        sharding_strategy=strategy,
        mixed_precision=mixed,
        cpu_offload=CPUOffload(offload_params=fsdp_config.enable_cpu_offload),
        device_id=device if device.type == "cuda" else None,
        use_orig_params=use_orig_params,
        device_mesh=mesh,
        sync_module_states=rank0_init,
        param_init_fn=(lambda m: m.to_empty(device=device, recurse=False)) if on_meta else None,
    )


def iter_full_state_dict(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, full tensor) one parameter at a time, gathering shards lazily (every rank gets every
    tensor; callers must consume the iterator on all ranks in the same order)."""
    fsdp1 = _is_fsdp1(module)
    if fsdp1:
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        config = FullStateDictConfig(offload_to_cpu=False, rank0_only=False)
        with FSDP.state_dict_type(module, StateDictType.FULL_STATE_DICT, config):
            state = module.state_dict()
        for name, tensor in state.items():
            yield name, tensor
        return
    for name, tensor in module.state_dict().items():
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
        yield name, tensor


def _is_fsdp1(module: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return isinstance(module, FSDP)


def unwrap_name(name: str) -> str:
    """Parameter name without FSDP1 wrapper prefixes."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


def offload_module(module: torch.nn.Module) -> None:
    """Move parameters (and grads) to CPU between phases; a no-op on CPU ranks."""
    for p in module.parameters():
        if p.device.type != "cpu":
            p.data = p.data.to("cpu", non_blocking=True)
            if p.grad is not None:
                p.grad = p.grad.to("cpu", non_blocking=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_module(module: torch.nn.Module, device: torch.device) -> None:
    """Bring offloaded parameters back to ``device``."""
    if device.type == "cpu":
        return
    for p in module.parameters():
        p.data = p.data.to(device, non_blocking=True)
        if p.grad is not None:
            p.grad = p.grad.to(device, non_blocking=True)


def offload_optimizer(optimizer: torch.optim.Optimizer) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and value.device.type != "cpu":
                state[key] = value.to("cpu", non_blocking=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    if device.type == "cpu":
        return
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device, non_blocking=True)


CPU_THREADS_ENV = "VSR1_CPU_THREADS_PER_RANK"


def cpu_threads_per_rank(local_world_size: int) -> int:
    """Threads for one CPU rank's tensor work: its share of the node's cores, or ``$VSR1_CPU_THREADS_PER_RANK``.

    Ray pins ``OMP_NUM_THREADS`` to an actor's CPU reservation (1 here), which would leave a one-rank CPU run
    training on a single core while the others idle."""
    import os

    override = os.environ.get(CPU_THREADS_ENV)
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"${CPU_THREADS_ENV} must be a positive integer, got {override!r}")
        return int(override)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(local_world_size, 1))


def memory_metrics(device: torch.device) -> dict[str, list[float]]:
    """Peak memory of this process so far: resident host memory (the vLLM-CPU engine and CPU training live
    there) and, on a GPU, the most the allocator ever held."""
    import resource

    # ru_maxrss is in KiB on Linux.
    metrics = {"perf/cpu_max_rss_gb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20]}
    if device.type == "cuda":
        metrics["perf/max_memory_allocated_gb"] = [torch.cuda.max_memory_allocated(device) / 2**30]
        metrics["perf/max_memory_reserved_gb"] = [torch.cuda.max_memory_reserved(device) / 2**30]
    return metrics


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of a scalar over ranks (identity without a process group)."""
    if not dist.is_available() or not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor) / dist.get_world_size()


def save_sharded(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    lr_scheduler: Any | None,
    path: str,
    rank: int,
    extra: dict[str, Any] | None = None,
) -> str:
    """Save model and optimizer shards with torch.distributed.checkpoint (reshardable to any world size),
    plus this rank's LR scheduler, RNG states and ``extra`` in ``extra_state_rank_{rank}.pt``.

    Every rank also writes the save's fingerprint (one random id shared by all ranks) into its own shard file
    as ``fingerprint_rank_{rank}``, so a reader can tell a shard copied in from another save; returned so the
    caller can record it beside the checkpoint (``meta.json``)."""
    import os

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    os.makedirs(path, exist_ok=True)
    if optimizer is not None:
        model_state, optim_state = get_state_dict(module, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
    else:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = {"model": get_model_state_dict(module)}
    fingerprint = shared_fingerprint()
    state[f"fingerprint_rank_{rank}"] = fingerprint
    dcp.save(state, checkpoint_id=os.path.join(path, "dcp"))
    extra_state = {
        "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        **(extra or {}),
    }
    torch.save(extra_state, os.path.join(path, f"extra_state_rank_{rank}.pt"))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return fingerprint


def shared_fingerprint() -> str:
    """A random id that every rank of the process group agrees on (rank 0 draws it)."""
    import uuid

    token = [uuid.uuid4().hex]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast_object_list(token, src=0)
    return token[0]


def load_sharded(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    lr_scheduler: Any | None,
    path: str,
    rank: int,
) -> dict[str, Any]:
    """Inverse of ``save_sharded``; returns this rank's extra state.

    A checkpoint saved without optimizer state (``extra["model_only"]``, from ``trainer.save_model_only``)
    restores the weights, LR schedule and RNG and leaves ``optimizer`` as it is (fresh), with a warning: the
    Adam moments restart from zero."""
    import logging
    import os

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    extra_file = os.path.join(path, f"extra_state_rank_{rank}.pt")
    extra = torch.load(extra_file, weights_only=False) if os.path.exists(extra_file) else {}
    if optimizer is not None and extra.get("model_only"):
        logging.getLogger(__name__).warning(
            "%s was saved with trainer.save_model_only=true (no optimizer state): resuming the weights and LR "
            "schedule with a fresh optimizer, whose moments restart from zero",
            path,
        )
        optimizer = None
    if optimizer is not None:
        model_state, optim_state = get_state_dict(module, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
    else:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = {"model": get_model_state_dict(module)}
    dcp.load(state, checkpoint_id=os.path.join(path, "dcp"))
    if optimizer is not None:
        set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    else:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(module, state["model"])
    if lr_scheduler is not None and extra.get("lr_scheduler") is not None:
        lr_scheduler.load_state_dict(extra["lr_scheduler"])
    if extra.get("rng_cpu") is not None:
        torch.set_rng_state(extra["rng_cpu"])
    if extra.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(extra["rng_cuda"])
    return extra
