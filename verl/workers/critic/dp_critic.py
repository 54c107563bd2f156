"""Data-parallel critic: per-token values of the responses and the clipped value loss (for GAE)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch

from ...protocol import DataProto
from ...trainer import core_algos
from ..actor.dp_actor import (
    _in_row_order,
    _micro_batches,
    _multimodal_kwargs,
    micro_batches,
    packed_positions,
    packed_predictors,
)


class DataParallelCritic:
    """``module`` maps model inputs to one value per token (``ValueHeadModel``)."""

    def __init__(self, config: Any, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.config, self.module, self.optimizer = config, module, optimizer

    def _values(self, micro: DataProto) -> torch.Tensor:
        """Values of the states before each response token, 0 on padding. With ``padding_free`` the valid
        tokens of all rows are packed into one sequence (as the actor does) and the values of the states before
        the response tokens read off it."""
        batch = micro.batch
        response_length = batch["responses"].shape[-1]
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        position_ids = batch["position_ids"]
        if position_ids.dim() == 3:
            position_ids = position_ids.transpose(0, 1)
        mm_kwargs = _multimodal_kwargs(micro.non_tensor_batch.get("multi_modal_inputs"))
        if self.config.padding_free:
            valid = attention_mask.bool()
            packed = self.module(
                input_ids=input_ids[valid].unsqueeze(0),
                position_ids=packed_positions(valid, position_ids),
                use_cache=False,
                **mm_kwargs,
            )[0]
            values = packed[packed_predictors(valid, response_length)]
        else:
            values = self.module(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
                **mm_kwargs,
            )
            # The value of the state before each response token: hidden states at positions P-1 .. P+R-2.
            values = values[:, -response_length - 1 : -1]
        return values.float() * batch["response_mask"]

    @torch.no_grad()
    def compute_values(self, data: DataProto) -> DataProto:
        self.module.eval()
        rows = self.config.micro_batch_size_per_device_for_experience
        chunks = [(index, self._values(micro)) for index, micro in micro_batches(data, rows, self.config)]
        return DataProto.from_dict(tensors={"values": _in_row_order(chunks, len(data))})

    def update_critic(self, data: DataProto) -> dict[str, list[float]]:
        """``ppo_epochs`` passes over mini-batches, accumulated over micro-batches of rows or, with
        ``dynamic_batching``, of ``max_token_len_per_device`` tokens (each weighted by its share of the
        mini-batch, so the step is the same either way)."""
        cfg = self.config
        self.module.train()
        metrics: dict[str, list[float]] = defaultdict(list)
        mini_size = cfg.global_batch_size_per_device if cfg.global_batch_size_per_device > 0 else len(data)
        for _ in range(cfg.ppo_epochs):
            for mini in _micro_batches(data, mini_size):
                self.optimizer.zero_grad(set_to_none=True)
                tokens = max(float(mini.batch["response_mask"].sum()), 1.0)
                for _, micro in micro_batches(mini, cfg.micro_batch_size_per_device_for_update, cfg):
                    vpreds = self._values(micro)
                    loss, clipfrac = core_algos.compute_value_loss(
                        vpreds=vpreds,
                        returns=micro.batch["returns"],
                        values=micro.batch["values"],
                        response_mask=micro.batch["response_mask"],
                        cliprange_value=cfg.cliprange_value,
                        loss_avg_mode=cfg.loss_avg_mode,
                    )
                    weight = (
                        float(micro.batch["response_mask"].sum()) / tokens
                        if cfg.loss_avg_mode == "token-mean"
                        else len(micro) / len(mini)
                    )
                    (loss * weight).backward()
                    metrics["critic/vf_loss"].append(float(loss.detach()))
                    metrics["critic/vf_clipfrac"].append(float(clipfrac))
                norm = float(
                    torch.nn.utils.clip_grad_norm_(
                        [p for p in self.module.parameters() if p.grad is not None], cfg.max_grad_norm
                    )
                )
                if not math.isfinite(norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    metrics["critic/non_finite_skipped"].append(1.0)
                    continue
                self.optimizer.step()
                metrics["critic/grad_norm"].append(norm)
        return dict(metrics)
