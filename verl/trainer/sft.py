"""Supervised fine-tuning (the cold start) on the RL stack: ``python3 -m verl.trainer.sft config=sft.yaml ...``.

The same FSDP worker (role ``actor``), config keys, loggers and checkpoint layout as the RL trainer, so an
SFT checkpoint (``global_step_N/actor``) goes through the model merger unchanged, and with
``trainer.save_hf_model`` the run also ends with a Hugging Face folder (``<run>/hf_model``) that an RL run
starts from. One step::

    batch of records → tokens with assistant-only labels → one optimizer step on every rank → metrics
      (→ validation loss, checkpoint when due)

Logged per step: ``sft/loss`` (token-mean cross-entropy over the batch's labelled tokens), ``actor/lr``,
``actor/grad_norm``, ``perf/tokens_per_second`` (all tokens, prompts and images included), ``sft/tokens``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from functools import partial
from typing import Any

import torch

from ..utils import checkpoint as ckpt
from ..utils.config_utils import config_to_dict, format_config, load_config, save_config
from ..utils.dataset import ResumableDataLoader
from ..utils.sft_dataset import IGNORE_INDEX, SFTDataset, sft_collate
from ..utils.tokenizer import get_processor, get_tokenizer
from ..utils.tracking import Tracking
from .main import init_ray, run_cli
from .sft_config import SFTConfig

logger = logging.getLogger(__name__)


def _identity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


class SFTTrainer:
    """Drives one actor worker group through the epochs; holds the data, the loggers and checkpoint logic."""

    def __init__(self, config: SFTConfig) -> None:
        self.config = config
        model_cfg = config.worker.actor.model
        self.tokenizer = get_tokenizer(model_cfg.tokenizer_path, trust_remote_code=model_cfg.trust_remote_code)
        self.processor = get_processor(model_cfg.tokenizer_path, trust_remote_code=model_cfg.trust_remote_code)
        self.run_dir = config.trainer.save_checkpoint_path
        os.makedirs(self.run_dir, exist_ok=True)
        save_config(config, os.path.join(self.run_dir, "config.yaml"))
        self.collate = partial(sft_collate, pad_token_id=self.tokenizer.pad_token_id)
        self.train_dataset = self._dataset(config.data.train_files)
        self.val_dataset = self._dataset(config.data.val_files) if config.data.val_files else None
        d, t = config.data, config.trainer
        self.loader = ResumableDataLoader(
            self.train_dataset,
            config.worker.actor.global_batch_size,
            shuffle=d.shuffle,
            seed=d.seed,
            num_workers=d.dataloader_num_workers,
            collate=_identity,
        )
        self.total_steps = len(self.loader) * t.total_epochs
        if t.max_steps is not None:
            self.total_steps = min(t.max_steps, self.total_steps)
        config.worker.actor.optim.training_steps = self.total_steps
        self.global_step = 0
        self.group = None

    def _dataset(self, files: str) -> SFTDataset:
        d = self.config.data
        return SFTDataset(
            files,
            self.tokenizer,
            self.processor,
            cutoff_len=d.cutoff_len,
            min_pixels=d.min_pixels,
            max_pixels=d.max_pixels,
            image_dir=d.image_dir,
            subsets=d.subsets or None,
            skip_bad_rows=d.skip_bad_rows,
            chat_template=d.override_chat_template,
        )

    # ------------------------------------------------------------------ workers

    def init_workers(self) -> None:
        from ..single_controller import RayResourcePool, RayWorkerGroup
        from ..workers.fsdp_workers import FSDPWorker

        t = self.config.trainer
        use_gpu = t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available())
        self.pool = RayResourcePool([t.n_gpus_per_node] * t.nnodes, use_gpu=use_gpu)
        self.group = RayWorkerGroup(self.pool, FSDPWorker, self.config.worker, "actor", name_prefix="sft")
        self.group.init_model()
        self._maybe_resume()

    def shutdown(self) -> None:
        if self.group is not None:
            self.group.shutdown()
        if hasattr(self, "tracking"):
            self.tracking.finish()

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> str:
        root = self.config.trainer.save_checkpoint_path
        folder = ckpt.partial_dir(root, self.global_step)
        self.group.save_checkpoint(str(folder / "actor"))
        state = {"global_step": self.global_step, "dataloader": self.loader.state_dict(), "kind": "sft"}
        final = ckpt.finalize(root, self.global_step, state)
        ckpt.rotate(root, self.config.trainer.save_limit)
        return str(final)

    def _maybe_resume(self) -> None:
        t = self.config.trainer
        if t.resume_mode == "disable":
            return
        path = t.load_checkpoint_path or ckpt.find_latest(t.save_checkpoint_path)
        if path is None:
            return
        state = ckpt.read_trainer_state(path)
        self.group.load_checkpoint(os.path.join(path, "actor"))
        self.global_step = int(state["global_step"])
        self.loader.load_state_dict(state["dataloader"])
        logger.info("resumed from %s at step %d", path, self.global_step)

    # ------------------------------------------------------------------ the loop

    def _batches(self) -> Any:
        """Batches forever, epoch after epoch, continuing from the loader's (possibly resumed) position."""
        while True:
            yield from self.loader

    def train_step(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        start = time.perf_counter()
        batch = self.collate(rows)
        labelled = int((batch.batch["labels"] != IGNORE_INDEX).sum())
        batch.meta_info["global_tokens"] = labelled
        out = self.group.train_sft_batch(batch)
        seconds = time.perf_counter() - start
        tokens = int(batch.batch["attention_mask"].sum())
        metrics = dict(out.meta_info["metrics"])
        metrics.update(
            {
                "sft/loss": float(out.batch["nll"].sum()) / max(labelled, 1),
                "sft/tokens": tokens,
                "sft/labelled_tokens": labelled,
                "perf/tokens_per_second": tokens / seconds,
                "timing/step": seconds,
            }
        )
        return metrics

    def validation_loss(self, dataset: SFTDataset | None = None) -> float:
        """Token-mean cross-entropy over a whole dataset (the validation set by default)."""
        dataset = dataset or self.val_dataset
        size = self.config.worker.actor.global_batch_size
        nll, tokens = 0.0, 0
        for start in range(0, len(dataset), size):
            rows = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
            batch = self.collate(rows)
            out = self.group.compute_sft_nll(batch)
            nll += float(out.batch["nll"].sum())
            tokens += int(out.batch["tokens"].sum())
        return nll / max(tokens, 1)

    def fit(self) -> dict[str, float]:
        t = self.config.trainer
        self.tracking = Tracking(
            t.logger,
            t.project_name,
            t.experiment_name,
            self.run_dir,
            config=config_to_dict(self.config),
            total_steps=self.total_steps,
        )
        batches = self._batches()
        metrics: dict[str, Any] = {}
        while self.global_step < self.total_steps:
            rows = next(batches)
            self.global_step += 1
            metrics = self.train_step(rows)
            metrics["training/global_step"] = self.global_step
            metrics["training/epoch"] = self.loader.epoch
            is_last = self.global_step >= self.total_steps
            if self.val_dataset is not None and (is_last or (t.val_freq > 0 and self.global_step % t.val_freq == 0)):
                metrics["sft/val_loss"] = self.validation_loss()
            if is_last or (t.save_freq > 0 and self.global_step % t.save_freq == 0):
                metrics["checkpoint/path"] = self.save_checkpoint()
            self.tracking.log(metrics, step=self.global_step)
        if t.save_hf_model:
            path = os.path.join(self.run_dir, "hf_model")
            self.group.save_hf_model(path)
            logger.info("Hugging Face model written to %s", path)
        return metrics


def run(argv: list[str] | None = None) -> dict[str, Any]:
    config = load_config(SFTConfig, argv if argv is not None else sys.argv[1:])
    print(format_config(config), flush=True)
    trainer = SFTTrainer(config)
    init_ray(config.trainer.ray_num_cpus)
    try:
        trainer.init_workers()
        return trainer.fit()
    finally:
        trainer.shutdown()


def main(argv: list[str] | None = None) -> None:
    run_cli(run, argv)


if __name__ == "__main__":
    main()
