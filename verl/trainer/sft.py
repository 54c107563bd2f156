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
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch

from ..utils.config_utils import format_config, load_config
from ..utils.dataset import ResumableDataLoader
from ..utils.sft_dataset import IGNORE_INDEX, SFTDataset, sft_collate
from ..utils.tokenizer import get_processor, get_tokenizer
from .loop import TrainingLoop
from .main import run_cli
from .sft_config import SFTConfig

logger = logging.getLogger(__name__)


def _identity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


class SFTTrainer(TrainingLoop):
    """Drives one actor worker group through the epochs; holds the data. The loop itself (resume, when to
    validate and save, tracking, progress, failures) is :class:`~.loop.TrainingLoop`'s."""

    validate_at_last_step = True  # the validation loss is computed at the end even with val_freq=-1

    def __init__(self, config: SFTConfig) -> None:
        super().__init__(config)
        model_cfg = config.worker.actor.model
        self.tokenizer = get_tokenizer(model_cfg.tokenizer_path, trust_remote_code=model_cfg.trust_remote_code)
        self.processor = get_processor(model_cfg.tokenizer_path, trust_remote_code=model_cfg.trust_remote_code)
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
        self.group = None
        self._batch_iter: Iterator[list[dict[str, Any]]] | None = None

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

    def _start_workers(self) -> None:
        from ..single_controller import RayResourcePool, RayWorkerGroup
        from ..workers.fsdp_workers import FSDPWorker

        t = self.config.trainer
        use_gpu = t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available())
        self.pool = RayResourcePool([t.n_gpus_per_node] * t.nnodes, use_gpu=use_gpu)
        self.group = RayWorkerGroup(self.pool, FSDPWorker, self.config.worker, "actor", name_prefix="sft")
        self.group.init_model()

    # ------------------------------------------------------------------ the loop's hooks

    def _checkpoint_groups(self) -> dict[str, Any]:
        return {"actor": self.group}

    def _trainer_state(self) -> dict[str, Any]:
        return {"dataloader": self.loader.state_dict(), "kind": "sft"}

    def _load_trainer_state(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state["dataloader"])

    @property
    def data_epoch(self) -> int:
        return self.loader.epoch

    def _role(self, group_name: str) -> str:
        return "actor"

    def _finish(self) -> None:
        if self.config.trainer.save_hf_model:
            self._enter("save_hf_model")
            path = os.path.join(self.run_dir, "hf_model")
            self.group.save_hf_model(path)
            logger.info("Hugging Face model written to %s", path)

    # ------------------------------------------------------------------ the step

    def _next_rows(self) -> list[dict[str, Any]]:
        """The next batch of records, epoch after epoch, from the loader's (possibly resumed) position."""
        if self._batch_iter is None:
            self._batch_iter = self._batches()
        return next(self._batch_iter)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            yield from self.loader

    def train_step(self) -> dict[str, Any]:
        timing: dict[str, float] = {}
        with self.timer("step", timing, phase="update_actor"):
            batch = self.collate(self._next_rows())
            labelled = int((batch.batch["labels"] != IGNORE_INDEX).sum())
            batch.meta_info["global_tokens"] = labelled
            out = self.group.train_sft_batch(batch)
        seconds = timing["step"]
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

    def validate(self) -> dict[str, float]:
        return {"sft/val_loss": self.validation_loss()}


def run(argv: list[str] | None = None) -> dict[str, Any]:
    config = load_config(SFTConfig, argv if argv is not None else sys.argv[1:])
    print(format_config(config), flush=True)
    from .preflight import check_model

    check_model(config.worker.actor.model)  # before Ray: a folder that is not a model is a config error
    return SFTTrainer(config).run_on_ray()


def main(argv: list[str] | None = None) -> None:
    run_cli(run, argv)


if __name__ == "__main__":
    main()
