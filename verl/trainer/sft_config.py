"""The SFT run config: ``data`` (chat records), ``worker.actor`` (the same section as RL) and ``trainer``.

``python3 -m verl.trainer.sft config=sft.yaml key.sub=value``. The model, optimizer, FSDP and offload keys are
the RL actor's (``worker.actor.model.model_path``, ``worker.actor.optim.lr``, ``worker.actor.fsdp.torch_dtype``,
...), so a checkpoint written here is an actor checkpoint that the model merger and RL resume read as is.

Batch units: ``worker.actor.global_batch_size`` is examples per optimizer step (LLaMA-Factory's
``per_device_train_batch_size x gradient_accumulation_steps x GPUs``); ``micro_batch_size_per_device_for_update``
is examples per forward/backward on one rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ..utils.config_utils import ConfigError, derived, require
from ..workers.config import ActorConfig
from .config import Logger, _resolve_template, resolve_resume_mode

__all__ = ["RL_ONLY_ACTOR_KEYS", "SFTConfig", "SFTDataConfig", "SFTTrainerConfig", "SFTWorkerConfig"]

RL_ONLY_ACTOR_KEYS = (
    "clip_ratio_low",
    "clip_ratio_high",
    "clip_ratio_dual",
    "loss_type",
    "loss_avg_mode",
    "ppo_epochs",
    "recompute_on_policy_log_probs",
    "entropy_coeff",
    "tau_positive",
    "tau_negative",
)
"""``worker.actor`` keys of the policy update that the SFT step does not use (its loss is the token mean of the
answer's negative log-likelihood over the whole batch): a non-default value is refused."""


@dataclass
class SFTDataConfig:
    """Where the SFT records come from and how they become tokens."""

    train_files: str = ""
    """comma-separated: a LLaMA-Factory data folder (with ``dataset_info.json``), .json/.jsonl record files,
    .parquet files or ``owner/dataset@split`` hub ids"""
    val_files: str = ""
    """as ``train_files``, for the validation loss; empty = none"""
    subsets: list[str] = field(default_factory=list)
    """entries of a data folder's ``dataset_info.json`` to train on; empty = all three cold-start subsets"""
    image_dir: str | None = None
    """folder that relative image paths are read from; ``None`` = the folder of each data file"""
    cutoff_len: int = 4092
    """most tokens per example (image tokens included); longer answers lose their tail (LLaMA-Factory's key)"""
    min_pixels: int | None = None
    """images smaller than this many pixels are upscaled; ``null`` = no lower bound"""
    max_pixels: int | None = 262144
    """images larger than this many pixels are downscaled (the paper's cold start: 262144)"""
    override_chat_template: str | None = None
    """chat template replacing the tokenizer's: a template file (made absolute) or inline Jinja text"""
    shuffle: bool = True
    seed: int = 1
    """seed of the shuffling order"""
    skip_bad_rows: bool = False
    """drop (and count) bad records instead of failing with the list of them"""
    dataloader_num_workers: int = 0

    def post_init(self) -> None:
        require(self.cutoff_len >= 8, "cutoff_len", f"must be >= 8 tokens, got {self.cutoff_len}")
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            require(value is None or value >= 1, name, f"must be >= 1 or null, got {value}")
        if self.min_pixels is not None and self.max_pixels is not None:
            require(self.min_pixels <= self.max_pixels, "min_pixels", f"must be <= data.max_pixels={self.max_pixels}")
        require(self.dataloader_num_workers >= 0, "dataloader_num_workers", "must be >= 0")
        if self.image_dir is not None:
            require(os.path.isdir(self.image_dir), "image_dir", f"folder {self.image_dir!r} not found")
            self.image_dir = os.path.abspath(self.image_dir)
        for name in ("train_files", "val_files"):
            parts = [p.strip() for p in getattr(self, name).split(",") if p.strip()]
            setattr(self, name, ",".join(os.path.abspath(p) if os.path.exists(p) else p for p in parts))
        self.override_chat_template = _resolve_template(self.override_chat_template, "override_chat_template")


@dataclass
class SFTWorkerConfig:
    """Only the actor: the model, optimizer and FSDP settings of the RL actor section."""

    actor: ActorConfig = field(default_factory=ActorConfig)
    seed: int = derived(1, "trainer.seed")
    """seed of model initialisation in the workers (each rank adds its rank)"""
    save_model_only: bool = derived(False, "trainer.save_model_only")
    """checkpoints hold the weights without optimizer state"""


@dataclass
class SFTTrainerConfig:
    """Length, devices, logging, validation and checkpoints of an SFT run."""

    total_epochs: int = 3
    """passes over the training data (the paper's cold start: 3)"""
    max_steps: int | None = None
    """stop after this many optimizer steps; overrides ``total_epochs``"""
    project_name: str = "vision_sr1"
    experiment_name: str = "cold_start_sft"
    logger: list[Logger] = field(default_factory=lambda: ["console", "file"])
    nnodes: int = 1
    n_gpus_per_node: int = 8
    """ranks per node (GPUs, or CPU processes with ``device=cpu``)"""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    val_freq: int = -1
    """validation loss every this many steps (and at the end); -1 = only at the end when ``data.val_files``"""
    save_freq: int = -1
    """checkpoint every this many steps; -1 = only at the end"""
    save_limit: int = -1
    """checkpoints kept; -1 = all"""
    save_checkpoint_path: str | None = None
    """run folder; ``None`` = ``checkpoints/<project_name>/<experiment_name>``; made absolute"""
    load_checkpoint_path: str | None = None
    """a ``global_step_N`` folder to resume from; made absolute"""
    find_last_checkpoint: bool = True
    """as in RL (EasyR1's switch): true = ``resume_mode=auto``; false = ``disable``, or ``path`` when
    ``load_checkpoint_path`` is set"""
    resume_mode: Literal["auto", "disable", "path"] | None = None
    """as in RL: ``auto`` resumes from the newest checkpoint of the run folder, else ``load_checkpoint_path``;
    ``None`` (default) = from ``find_last_checkpoint``"""
    save_hf_model: bool = True
    """at the end, also write the model as a Hugging Face folder, ``<save_checkpoint_path>/hf_model``, that
    ``worker.actor.model.model_path`` of an RL run can point at directly"""
    seed: int = 1
    """seed of model init"""
    save_model_only: bool = False
    """save weights without optimizer state (a resume starts a fresh optimizer, with a warning)"""
    ray_num_cpus: int | None = None
    """CPUs Ray may use; ``None`` = all"""

    @property
    def world_size(self) -> int:
        return self.nnodes * self.n_gpus_per_node

    def post_init(self) -> None:
        for name in ("total_epochs", "nnodes", "n_gpus_per_node"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1 or null")
        for name in ("val_freq", "save_freq", "save_limit"):
            value = getattr(self, name)
            require(value == -1 or value >= 1, name, f"must be -1 (off/unlimited) or >= 1, got {value}")
        self.logger = list(dict.fromkeys(self.logger))
        if self.save_checkpoint_path is None:
            self.save_checkpoint_path = os.path.join("checkpoints", self.project_name, self.experiment_name)
        self.save_checkpoint_path = os.path.abspath(self.save_checkpoint_path)
        self.resume_mode = resolve_resume_mode(self.resume_mode, self.find_last_checkpoint, self.load_checkpoint_path)
        if self.resume_mode == "path":
            require(self.load_checkpoint_path is not None, "resume_mode", "'path' needs trainer.load_checkpoint_path")
        if self.load_checkpoint_path is not None:
            require(self.resume_mode != "disable", "load_checkpoint_path", "is set but trainer.resume_mode=disable")
            require(os.path.isdir(self.load_checkpoint_path), "load_checkpoint_path", "folder not found")
            self.load_checkpoint_path = os.path.abspath(self.load_checkpoint_path)


@dataclass
class SFTConfig:
    """The whole SFT run: ``python3 -m verl.trainer.sft config=sft.yaml key.sub=value ...``."""

    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    worker: SFTWorkerConfig = field(default_factory=SFTWorkerConfig)
    trainer: SFTTrainerConfig = field(default_factory=SFTTrainerConfig)

    def post_init(self) -> None:
        actor, world = self.worker.actor, self.trainer.world_size
        self.worker.seed = self.trainer.seed
        gbs, micro = actor.global_batch_size, actor.micro_batch_size_per_device_for_update
        problems = []
        defaults = ActorConfig()
        for name in RL_ONLY_ACTOR_KEYS:
            value = getattr(actor, name)
            if value != getattr(defaults, name):
                text = str(value).lower() if isinstance(value, bool) else value
                problems.append(
                    f"worker.actor.{name}={text} is a setting of the RL policy update that SFT does not use; "
                    "remove it from the SFT config"
                )
        if actor.ulysses_size != 1:
            problems.append(
                f"worker.actor.ulysses_size={actor.ulysses_size}: sequence parallelism is built for the RL trainer, "
                "not SFT; set it to 1"
            )
        if gbs % world:
            problems.append(
                f"worker.actor.global_batch_size={gbs} examples per step must split evenly over the world size "
                f"{world} (trainer.nnodes x trainer.n_gpus_per_node)"
            )
        elif (gbs // world) % micro:
            problems.append(
                f"worker.actor.micro_batch_size_per_device_for_update={micro} must divide the {gbs // world} "
                f"examples per rank per step (worker.actor.global_batch_size={gbs} / {world} ranks)"
            )
        if problems:
            raise ConfigError.combine([ConfigError(p) for p in problems])
        actor.global_batch_size_per_device = gbs // world
        self.worker.seed = self.trainer.seed
        self.worker.save_model_only = self.trainer.save_model_only
