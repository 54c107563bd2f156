"""Export an actor checkpoint (``global_step_N/actor``) as a Hugging Face model folder.

The trainer saves the actor as torch.distributed.checkpoint shards (one ``.distcp`` file per rank, any world
size, FSDP1 or FSDP2) beside ``hf/`` (config, tokenizer, processor, chat template) and ``meta.json`` (model
path, dtypes, world size, LoRA settings, the save's fingerprint). This module reads those files offline, on
one process without a process group, and writes what ``from_pretrained`` and vLLM expect: safetensors shards
with an index, ``config.json``, ``generation_config.json`` and the processor files. LoRA adapters are merged
into the base weights; the adapter alone can be exported too.

Used by ``scripts/model_merger.py``; see the README section "Export to Hugging Face".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .fsdp_utils import DTYPES

logger = logging.getLogger(__name__)

_DTYPE_NAMES = {
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "fp32": "fp32",
    "bf16": "bf16",
    "fp16": "fp16",
}
_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
ADAPTER_SUBDIR = "lora_adapter"


class CheckpointError(ValueError):
    """The folder cannot be exported; the message names the file or setting at fault and what to do."""


@dataclass
class ActorCheckpoint:
    """A validated actor checkpoint folder and its ``meta.json``."""

    path: Path
    meta: dict[str, Any]

    @property
    def dcp_dir(self) -> Path:
        return self.path / "dcp"

    @property
    def hf_dir(self) -> Path:
        return self.path / "hf"

    @property
    def lora(self) -> dict[str, Any] | None:
        return self.meta.get("lora") or None


def open_checkpoint(local_dir: str | os.PathLike) -> ActorCheckpoint:
    """Check that ``local_dir`` is a complete actor checkpoint and read its ``meta.json``.

    Refuses, with the reason, a step folder (points at its ``actor/``), a ``.partial`` folder (a save that did
    not finish), a critic, and folders without the merger's metadata.
    """
    path = Path(local_dir).expanduser().resolve()
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist or is not a folder; pass --local_dir .../global_step_N/actor")
    for part in (path, path.parent):
        if part.name.endswith(".partial"):
            raise CheckpointError(
                f"{path} is inside {part.name}, a checkpoint whose save did not finish (the trainer renames "
                "global_step_N.partial to global_step_N when every file is written); use a complete global_step_N"
            )
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        if (path / "actor" / "meta.json").is_file():
            raise CheckpointError(f"{path} is a step folder; pass its actor checkpoint: --local_dir {path / 'actor'}")
        raise CheckpointError(
            f"{path} is not an actor checkpoint: no meta.json (expected .../global_step_N/actor as written by the "
            "trainer, with dcp/, hf/ and meta.json)"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_file} is not valid JSON: {exc}") from exc
    if meta.get("value_head") or meta.get("role") == "critic":
        raise CheckpointError(
            f"{path} is a critic checkpoint (a value model, role {meta.get('role')!r}); the merger exports the "
            "policy: pass the sibling actor folder"
        )
    ckpt = ActorCheckpoint(path, meta)
    if not (ckpt.dcp_dir / ".metadata").is_file():
        raise CheckpointError(f"{path} has no dcp/.metadata: the sharded weights are missing or were not copied")
    if not (ckpt.hf_dir / "config.json").is_file():
        raise CheckpointError(f"{path} has no hf/config.json: the model config saved with the checkpoint is missing")
    return ckpt


def _read_metadata(ckpt: ActorCheckpoint) -> Any:
    from torch.distributed.checkpoint import FileSystemReader

    try:
        return FileSystemReader(str(ckpt.dcp_dir)).read_metadata()
    except Exception as exc:  # a truncated or foreign .metadata file
        raise CheckpointError(f"cannot read {ckpt.dcp_dir / '.metadata'}: {exc}") from exc


def check_shards(ckpt: ActorCheckpoint, metadata: Any | None = None) -> list[str]:
    """Check that every shard file the index names is present, whole, and written by the same save.

    A missing or short ``.distcp`` file, or one whose embedded fingerprint differs from ``meta.json``'s
    (copied in from another run or step), is an error naming the file. Returns the shard file names.
    """
    metadata = metadata or _read_metadata(ckpt)
    ends: dict[str, int] = defaultdict(int)
    for info in metadata.storage_data.values():
        ends[info.relative_path] = max(ends[info.relative_path], info.offset + info.length)
    world_size = ckpt.meta.get("world_size")
    for name, end in sorted(ends.items()):
        file = ckpt.dcp_dir / name
        if not file.is_file():
            raise CheckpointError(
                f"shard {file} is missing ({len(ends)} shard files expected, written by {world_size} ranks); "
                "copy the whole checkpoint folder"
            )
        size = file.stat().st_size
        if size < end:
            raise CheckpointError(f"shard {file} is truncated ({size} bytes, the index needs at least {end})")

    expected = ckpt.meta.get("fingerprint")
    keys = [k for k in metadata.state_dict_metadata if k.startswith("fingerprint_rank_")]
    if expected is None or not keys:
        logger.warning("%s predates save fingerprints: cannot check that its shards come from one save", ckpt.path)
        return sorted(ends)
    files = {idx.fqn: info.relative_path for idx, info in metadata.storage_data.items()}
    for key in sorted(keys):
        file = ckpt.dcp_dir / files[key]
        try:
            found = _load({key: ""}, ckpt)[key]
        except Exception as exc:
            raise CheckpointError(
                f"shard {file} does not belong to this checkpoint (cannot read {key}: {exc})"
            ) from exc
        if found != expected:
            raise CheckpointError(
                f"shard {file} comes from another save (fingerprint {found}, meta.json says {expected}); "
                "every .distcp file must come from the same global_step_N of the same run"
            )
    return sorted(ends)


def _load(state: dict[str, Any], ckpt: ActorCheckpoint) -> dict[str, Any]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    with warnings.catch_warnings():  # reading on one process without a process group is the intent here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, storage_reader=FileSystemReader(str(ckpt.dcp_dir)), no_dist=True)
    return state


def _clean_name(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def load_model_state(ckpt: ActorCheckpoint, check: bool = True) -> dict[str, torch.Tensor]:
    """The full (unsharded) model tensors as trained, names as the training module had them (peft names for a
    LoRA run). Optimizer state is never read."""
    metadata = _read_metadata(ckpt)
    if check:
        check_shards(ckpt, metadata)
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    model: dict[str, torch.Tensor] = {}
    for key, info in metadata.state_dict_metadata.items():
        if not key.startswith("model.") or not isinstance(info, TensorStorageMetadata):
            continue
        path = (metadata.planner_data or {}).get(key, ("model", key.removeprefix("model.")))
        if len(path) != 2 or path[0] != "model":
            raise CheckpointError(f"unexpected key {key!r} in {ckpt.dcp_dir}: not a flat model state dict")
        model[path[1]] = torch.empty(info.size, dtype=info.properties.dtype)
    if not model:
        raise CheckpointError(f"{ckpt.dcp_dir} holds no model tensors")
    _load({"model": model}, ckpt)
    return {_clean_name(name): tensor for name, tensor in model.items()}


def hf_state_dict(ckpt: ActorCheckpoint, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names and values the Hugging Face model class expects: LoRA adapters merged as ``W + alpha/r * B @ A``.
    Without LoRA, ``state`` itself (no copy)."""
    lora = ckpt.lora
    if lora is None:
        return state
    from ..workers.fsdp_workers import merged_lora_weights

    return dict(merged_lora_weights(iter(state.items()), scaling=lora["alpha"] / lora["rank"]))


def output_dtype(ckpt: ActorCheckpoint, dtype: str | None) -> torch.dtype:
    """``dtype`` when given, else the dtype the model was published in (``meta.json``'s ``base_dtype``, or
    the saved config's), else the training dtype."""
    if dtype is not None:
        if dtype not in DTYPES:
            raise CheckpointError(f"unknown --dtype {dtype!r}; expected one of {sorted(DTYPES)}")
        return DTYPES[dtype]
    name = ckpt.meta.get("base_dtype")
    if name is None:
        config = json.loads((ckpt.hf_dir / "config.json").read_text(encoding="utf-8"))
        name = config.get("dtype") or config.get("torch_dtype")
    name = _DTYPE_NAMES.get(str(name)) or _DTYPE_NAMES.get(str(ckpt.meta.get("dtype")), "fp32")
    return DTYPES[name]


def _model_class(config: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM


def _empty_model(ckpt: ActorCheckpoint, dtype: torch.dtype) -> torch.nn.Module:
    """The model class built on the meta device: no memory and no random init until weights are assigned."""
    from transformers import AutoConfig

    trust = bool(ckpt.meta.get("trust_remote_code", False))
    config = AutoConfig.from_pretrained(ckpt.hf_dir, trust_remote_code=trust)
    with torch.device("meta"):
        return _model_class(config).from_config(config, dtype=dtype, trust_remote_code=trust)


def _assign(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"the checkpoint's tensors do not match {what}: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    model.load_state_dict(state, strict=True, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` with floating tensors in ``dtype``, replaced one at a time (peak memory: one extra tensor)."""
    for name, tensor in state.items():
        if tensor.is_floating_point():
            state[name] = tensor.to(dtype)
    return state


def _fresh_dir(target: Path) -> Path:
    """A staging folder beside ``target``; refuses to later replace a non-empty folder that is not a model."""
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target} exists and is a file; choose another --target_dir")
    if target.exists() and any(target.iterdir()) and not (target / "config.json").is_file():
        raise CheckpointError(f"{target} exists and is not a model folder; choose another --target_dir")
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def _current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def make_files_readable(folder: Path) -> None:
    """Give every file under ``folder`` the mode a plain ``open()`` would (0644 under the usual umask 022):
    transformers writes safetensors through a private temporary file (0600), which would leave the weights of
    a shared model folder unreadable to the other users who can read its config and tokenizer."""
    mode = 0o666 & ~_current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def _copy_processor_files(ckpt: ActorCheckpoint, out: Path) -> None:
    """Tokenizer, processor and chat template files as saved with the checkpoint (what training used)."""
    for file in sorted(ckpt.hf_dir.iterdir()):
        if file.is_file() and not (out / file.name).exists():
            shutil.copy2(file, out / file.name)


def export_adapter(ckpt: ActorCheckpoint, state: dict[str, torch.Tensor], out: Path, dtype: torch.dtype) -> Path:
    """Write the LoRA adapter alone as a peft folder (``adapter_config.json``, ``adapter_model.safetensors``)
    that ``PeftModel.from_pretrained(base, out)`` loads on top of ``meta.json``'s ``model_path``."""
    from peft import get_peft_model

    from ..workers.fsdp_workers import peft_lora_config

    if ckpt.lora is None:
        raise CheckpointError(f"{ckpt.path} was trained without LoRA (meta.json has no lora): no adapter to export")
    peft_model = get_peft_model(_empty_model(ckpt, dtype), peft_lora_config(ckpt.lora))
    _assign(peft_model, _cast(dict(state), dtype), "the peft model rebuilt from meta.json's lora settings")
    peft_model.peft_config["default"].base_model_name_or_path = ckpt.meta.get("model_path")
    peft_model.save_pretrained(out)
    return out


def merge_checkpoint(
    local_dir: str | os.PathLike,
    target_dir: str | os.PathLike | None = None,
    dtype: str | None = None,
    export_lora_adapter: bool = False,
    max_shard_size: str | int = "5GB",
) -> Path:
    """Write the Hugging Face folder for the actor checkpoint ``local_dir``; returns its path.

    Args:
        local_dir: ``.../global_step_N/actor``.
        target_dir: output folder; default ``<local_dir>/huggingface``. Written to ``<target_dir>.partial`` and
            renamed when complete, so a crash never leaves a half-written model behind.
        dtype: ``fp32``, ``bf16`` or ``fp16``; default the dtype the base model was published in.
        export_lora_adapter: also write the adapter alone under ``<target_dir>/lora_adapter`` (LoRA runs only).
        max_shard_size: largest safetensors file (``"5GB"``, bytes as int); bigger models get an index file.
    """
    ckpt = open_checkpoint(local_dir)
    if export_lora_adapter and ckpt.lora is None:
        raise CheckpointError(f"--export_adapter: {ckpt.path} was trained without LoRA, there is no adapter")
    target = Path(target_dir).expanduser().resolve() if target_dir else ckpt.path / "huggingface"
    torch_dtype = output_dtype(ckpt, dtype)
    staging = _fresh_dir(target)
    try:
        raw = load_model_state(ckpt)
        if export_lora_adapter:
            export_adapter(ckpt, raw, staging / ADAPTER_SUBDIR, torch_dtype)
        state = hf_state_dict(ckpt, raw)
        del raw  # the training-dtype tensors go as soon as each is cast
        model = _empty_model(ckpt, torch_dtype)
        _assign(model, _cast(state, torch_dtype), type(model).__name__)
        del state
        if (ckpt.hf_dir / "generation_config.json").is_file():
            from transformers import GenerationConfig

            model.generation_config = GenerationConfig.from_pretrained(ckpt.hf_dir)
        model.save_pretrained(staging, max_shard_size=max_shard_size)
        _copy_processor_files(ckpt, staging)
        make_files_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported %s to %s (%s)", ckpt.path, target, torch_dtype)
    return target


def upload_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = True) -> str:
    """Upload ``folder`` to the hub model repo ``repo_id`` (created, private by default, if absent); the token
    comes from ``HF_TOKEN`` or ``huggingface-cli login``. Returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Upload model")
    return str(url)
