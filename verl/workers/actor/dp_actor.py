"""Data-parallel actor: response log-probs and the policy update, on one rank's share of the batch.

The module may be a plain ``nn.Module`` or one wrapped by FSDP; this file only runs forwards/backwards and
the optimizer step. The math (policy loss, KL, aggregation) lives in ``verl.trainer.core_algos``.

Batch layout (a DataProto): ``input_ids`` = prompt (left padded) + response (right padded) of shape
(B, P+R), ``attention_mask``, ``position_ids`` ((B, 3, P+R) M-RoPE for VL models, (B, P+R) for text),
``responses`` (B, R), ``response_mask`` (B, R), and for VL rows ``multi_modal_inputs`` (object array of
dicts with ``pixel_values`` and ``image_grid_thw``; repeated rollouts share the same dict).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ...protocol import DataProto
from ...trainer import core_algos

logger = logging.getLogger(__name__)


def _micro_batches(data: DataProto, size: int) -> list[DataProto]:
    return data.split(size) if len(data) > size else [data]


def partition_by_token_budget(lengths: Sequence[int], budget: int, min_parts: int = 1) -> list[list[int]]:
    """Group rows into micro-batches of at most ``budget`` tokens each (dynamic batching).

    First-fit decreasing: rows from the longest down, each into the first group with room, so the groups are
    few and full. While there are fewer than ``min_parts`` groups (another rank needs that many: every rank must
    run the same number of forwards, or FSDP's collectives hang), the group with the most rows is halved, which
    keeps every group within budget. Each group lists its row indices in ascending order; a row longer than
    ``budget`` raises naming ``max_token_len_per_device``.
    """
    if budget < 1:
        raise ValueError(f"max_token_len_per_device must be >= 1, got {budget}")
    longest = max(lengths, default=0)
    if longest > budget:
        raise ValueError(
            f"a sequence of {longest} tokens does not fit max_token_len_per_device={budget}: raise it to at least "
            f"{longest} (data.max_prompt_length + data.max_response_length always fits)"
        )
    if min_parts > len(lengths):
        raise ValueError(f"cannot form {min_parts} non-empty micro-batches from {len(lengths)} rows")
    groups: list[list[int]] = []
    loads: list[int] = []
    for row in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for g, load in enumerate(loads):
            if load + lengths[row] <= budget:
                groups[g].append(row)
                loads[g] += lengths[row]
                break
        else:
            groups.append([row])
            loads.append(lengths[row])
    while len(groups) < min_parts:
        widest = max(range(len(groups)), key=lambda g: len(groups[g]))
        rows = groups.pop(widest)
        groups.append(rows[0::2])  # rows are longest first: alternating keeps the halves' loads close
        groups.append(rows[1::2])
    return [sorted(g) for g in sorted(groups, key=min)]


def _max_over_ranks(value: int) -> int:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = torch.tensor([value], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())
    return value


def micro_batches(data: DataProto, rows: int, config: Any) -> list[tuple[np.ndarray, DataProto]]:
    """Split ``data`` for forward passes: ``(row indices, micro-batch)`` pairs covering every row once.

    Fixed: consecutive slices of ``rows`` rows. With ``config.dynamic_batching``: groups of at most
    ``config.max_token_len_per_device`` valid tokens (prompt + response), ``None`` meaning ``rows`` times the
    batch's padded sequence length; every rank forms as many groups as the rank that needs the most."""
    if not getattr(config, "dynamic_batching", False) or len(data) == 0:
        return [
            (np.arange(start, start + len(micro)), micro)
            for start, micro in zip(range(0, max(len(data), 1), rows), _micro_batches(data, rows))
        ]
    budget = config.max_token_len_per_device or rows * data.batch["input_ids"].shape[-1]
    lengths = data.batch["attention_mask"].sum(dim=-1).tolist()
    parts = partition_by_token_budget(lengths, budget)
    parts = partition_by_token_budget(lengths, budget, min_parts=_max_over_ranks(len(parts)))
    return [(np.asarray(part), data[np.asarray(part)]) for part in parts]


def _in_row_order(pieces: list[tuple[np.ndarray, torch.Tensor]], rows: int) -> torch.Tensor:
    """Reassemble per-micro-batch outputs into the batch's row order."""
    first = pieces[0][1]
    out = first.new_zeros((rows, *first.shape[1:]))
    for index, values in pieces:
        out[torch.as_tensor(index, dtype=torch.long)] = values
    return out


def _multimodal_kwargs(rows: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Concatenate per-row processor outputs (pixel_values, image_grid_thw, and the video ones) for one
    forward; in a batch mixing image, video and text rows each key gathers the rows that have it, in order."""
    if rows is None:
        return {}
    present = [r for r in rows if r]
    keys = list(dict.fromkeys(key for r in present for key in r))
    return {key: torch.cat([r[key] for r in present if key in r], dim=0) for key in keys}


def _finite_on_every_rank(loss: torch.Tensor) -> bool:
    """Whether the loss is finite here and on every other data-parallel rank. The ranks must agree before
    anyone skips the backward: a rank that skips alone leaves the others waiting in FSDP's gradient
    reduce-scatter."""
    finite = torch.isfinite(loss.detach()).to(torch.int32)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def packed_positions(valid: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Position ids for the valid tokens of all rows packed into one sequence (padding-free forward).

    ``valid`` is the (B, L) attention mask as bools, ``pos`` the (B, L) text positions or the (3, B, L) M-RoPE
    ones. Rows are told apart by text positions restarting at 0 (transformers builds the block-diagonal mask
    from them); for M-RoPE they are prepended as a 4th axis, giving (4, 1, T), which is how transformers
    recognises packed VL input. Text-only: (1, T)."""
    lengths = valid.sum(dim=1)
    text_pos = torch.cat([torch.arange(int(n), device=valid.device) for n in lengths]).unsqueeze(0)
    if pos.dim() == 3:
        packed = torch.stack([p[valid] for p in pos]).unsqueeze(1)  # (3, 1, T)
        return torch.cat([text_pos.unsqueeze(0), packed], dim=0)  # (4, 1, T)
    return text_pos


def packed_predictors(valid: torch.Tensor, response_length: int) -> torch.Tensor:
    """(B, R) indices into the packed sequence (the valid tokens of all rows, row after row) of the token before
    each of the last ``response_length`` columns of the (B, L) grid ``valid``: the state that predicts that
    response token. Columns that are padding get the index of an earlier valid token (mask them out)."""
    batch_size, width = valid.shape
    packed_index = (valid.flatten().cumsum(0) - 1).clamp(min=0).view(batch_size, width)
    return packed_index[:, width - response_length - 1 : width - 1]


_WEIGHTED_LOSSES = ("actor/pg_loss", "actor/kl_loss", "actor/entropy")


def _scoring_temperature(temperature: float | torch.Tensor) -> float | torch.Tensor:
    """The temperature the logits are divided by: per row (a ``(B,)`` tensor) or one for all; a greedy
    sample (temperature 0) is scored by the plain softmax (1), never a division by 0."""
    if isinstance(temperature, torch.Tensor):
        temperature = temperature.float()
        return torch.where(temperature > 0, temperature, torch.ones_like(temperature))
    return temperature if temperature > 0 else 1.0


# Rows of logits that exist at once when scoring responses: 512 x 151,936 fp32 is 0.31 GB per copy.
LOG_PROB_CHUNK_TOKENS = 512


@contextlib.contextmanager
def _head_replaced(module: torch.nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[Callable]:
    """Within the block the model's output layer runs ``forward`` instead of producing logits; yields the
    layer's own forward (hidden states -> logits) for ``forward`` to call on the rows it selects.

    The replacement runs inside the model's own forward call, so a sharded output layer (FSDP) has its
    weights gathered exactly as when it computes logits, and a LoRA-wrapped one keeps its adapter."""
    head = module.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(module).__name__} has no output layer (get_output_embeddings() is None)")
    original = head.forward
    own = head.__dict__.get("forward")
    head.forward = forward
    try:
        yield original
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


class DataParallelActor:
    """Computes log-probs and updates the policy for the rows this rank holds.

    ``config`` is the actor section (``worker.actor``): micro batch sizes, ``global_batch_size_per_device``,
    ``ppo_epochs``, clip ratios, ``loss_type``, ``loss_avg_mode``, KL settings, ``max_grad_norm``,
    ``entropy_coeff`` and ``padding_free``.
    """

    def __init__(self, config: Any, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.config = config
        self.module = module
        self.optimizer = optimizer
        self.non_finite_updates = 0  # updates skipped because the loss or the grad norm was NaN/inf
        # use_torch_compile: the per-chunk scoring (logsumexp, gather, entropy over the vocabulary) is compiled
        # once per shape class; the model's forward is left to FSDP as it is
        self._score_logits = (
            torch.compile(core_algos.token_log_probs_from_logits, dynamic=True)
            if getattr(config, "use_torch_compile", False)
            else core_algos.token_log_probs_from_logits
        )

    # ------------------------------------------------------------------ forward

    def _forward(
        self, micro: DataProto, temperature: float, with_entropy: bool, entropy_grad: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Response log-probs (B, R) and entropies, 0 on padding; ``entropy_grad`` builds the entropy with
        autograd (needed only when it is in the loss)."""
        batch = micro.batch
        if "temperature" in batch:  # per row: the second hop's rows were sampled at the hop's temperature
            temperature = batch["temperature"]
        input_ids, attention_mask, position_ids = batch["input_ids"], batch["attention_mask"], batch["position_ids"]
        responses = batch["responses"]
        response_length = responses.shape[-1]
        mm_kwargs = _multimodal_kwargs(micro.non_tensor_batch.get("multi_modal_inputs"))

        # Drop the columns that are padding in every row: prompts are left padded, responses right padded.
        valid_columns = attention_mask.any(dim=0).nonzero().flatten()
        start = int(valid_columns[0]) if len(valid_columns) else 0
        end = int(valid_columns[-1]) + 1 if len(valid_columns) else input_ids.shape[1]
        prompt_length = input_ids.shape[1] - response_length
        start = min(start, prompt_length - 1)  # keep the last prompt token: it predicts the first response token
        kept_response = max(end - prompt_length, 0)
        ids = input_ids[:, start:end]
        mask = attention_mask[:, start:end]
        pos = position_ids[..., start:end]
        if pos.dim() == 3:  # (B, 3, L) -> (3, B, L) as Qwen2-VL expects
            pos = pos.transpose(0, 1)

        # Score only the response tokens that exist: the hidden state before each predicts it.
        batch_size, width = ids.shape
        scored = mask[:, width - kept_response :].bool()  # (B, kept_response)
        targets = responses[:, :kept_response][scored]
        temperature = _scoring_temperature(temperature)
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(ids.device).unsqueeze(-1).expand(-1, kept_response)[scored]
        if self.config.padding_free:
            valid = mask.bool()
            predictors = packed_predictors(valid, kept_response)[scored]
            model_inputs = {
                "input_ids": ids[valid].unsqueeze(0),
                "position_ids": packed_positions(valid, pos),
                "logits_to_keep": 0,  # the head sees every packed token and keeps the predictors
            }
        else:
            kept = kept_response + 1  # the head sees the last prompt token and the responses, row by row
            grid = torch.arange(batch_size, device=ids.device).unsqueeze(-1) * kept
            predictors = (grid + torch.arange(kept_response, device=ids.device))[scored]
            model_inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "logits_to_keep": kept}
        log_probs, entropy = self._score_responses(
            model_inputs | mm_kwargs, predictors, targets, temperature, with_entropy, entropy_grad
        )
        out_lp = log_probs.new_zeros(batch_size, response_length)
        out_lp[:, :kept_response][scored] = log_probs
        out_ent = None
        if entropy is not None:
            out_ent = entropy.new_zeros(batch_size, response_length)
            out_ent[:, :kept_response][scored] = entropy
        return out_lp, out_ent

    def _score_responses(
        self,
        model_inputs: dict[str, Any],
        predictors: torch.Tensor,
        targets: torch.Tensor,
        temperature: float | torch.Tensor,
        with_entropy: bool,
        entropy_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One model forward that stops at the last hidden states; the output layer is applied only to the
        ``predictors`` (flat indices into the hidden states it is handed) in chunks of
        ``LOG_PROB_CHUNK_TOKENS`` (``core_algos.chunked_token_log_probs``), so no (tokens, vocabulary) logits
        exist beyond one chunk, in the forward or kept for the backward."""

        def score(hidden: torch.Tensor) -> torch.Tensor:
            selected = hidden.flatten(0, -2)[predictors]
            lp, ent = core_algos.chunked_token_log_probs(
                selected,
                logits_of,
                targets,
                temperature,
                with_entropy,
                entropy_grad,
                LOG_PROB_CHUNK_TOKENS,
                self._score_logits,
            )
            return torch.stack([lp, ent], dim=-1) if ent is not None else lp.unsqueeze(-1)

        with _head_replaced(self.module, score) as logits_of:
            scores = self.module(use_cache=False, **model_inputs).logits  # (N, 1 or 2): what ``score`` returned
        entropy = None
        if with_entropy:  # the stack gave it a grad_fn; with no entropy_grad no gradient may flow through it
            entropy = scores[:, 1] if entropy_grad else scores[:, 1].detach()
        return scores[:, 0], entropy

    @torch.no_grad()
    def compute_log_prob(self, data: DataProto, temperature: float = 1.0, with_entropy: bool = False) -> DataProto:
        """Log-probs (and entropies) of the response tokens, zero on padding; micro-batched."""
        self.module.eval()
        log_probs, entropies = [], []
        for index, micro in micro_batches(data, self.config.micro_batch_size_per_device_for_experience, self.config):
            lp, ent = self._forward(micro, temperature, with_entropy)
            mask = micro.batch["response_mask"].to(lp.dtype)
            log_probs.append((index, lp * mask))
            if ent is not None:
                entropies.append((index, ent * mask))
        tensors = {"log_probs": _in_row_order(log_probs, len(data))}
        if entropies:
            tensors["entropies"] = _in_row_order(entropies, len(data))
        return DataProto.from_dict(tensors=tensors)

    # ------------------------------------------------------------------ update

    def _micro_loss(
        self, micro: DataProto, temperature: float, weight_total: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, batch = self.config, micro.batch
        mask = batch["response_mask"]
        # Per-row loss weights (the two hops of a v2 step, padding rows at 0): weighted means over the
        # mini-batch's ``weight_total``; zero-weight rows are left out of the loss and the metrics alike.
        weights = batch.get("loss_weight", None)
        if weights is not None:
            mask = mask * (weights > 0).to(mask.dtype).unsqueeze(-1)
        weighting = {"row_weights": weights, "weight_total": weight_total}
        # No old log-probs: the trainer found the update on-policy, so the old policy is this one, and the
        # entropy the old pass would have logged is measured here instead.
        on_policy = "old_log_probs" not in batch
        with_entropy = cfg.entropy_coeff != 0 or on_policy
        log_probs, entropy = self._forward(micro, temperature, with_entropy, entropy_grad=cfg.entropy_coeff != 0)
        old_log_probs = log_probs.detach() if on_policy else batch["old_log_probs"]
        pg_loss, metrics = core_algos.compute_policy_loss(
            old_log_probs=old_log_probs,
            log_probs=log_probs,
            advantages=batch["advantages"],
            response_mask=mask,
            clip_ratio_low=cfg.clip_ratio_low,
            clip_ratio_high=cfg.clip_ratio_high,
            clip_ratio_dual=cfg.clip_ratio_dual,
            loss_type=cfg.loss_type,
            loss_avg_mode=cfg.loss_avg_mode,
            tau_positive=cfg.tau_positive,
            tau_negative=cfg.tau_negative,
            **weighting,
        )
        loss = pg_loss
        out = {f"actor/{k}": float(v) for k, v in metrics.items()}
        out["actor/pg_loss"] = float(pg_loss.detach())
        if cfg.entropy_coeff != 0:
            entropy_loss = core_algos.aggregate_loss(entropy, mask, cfg.loss_avg_mode, **weighting)
            loss = loss - cfg.entropy_coeff * entropy_loss
            out["actor/entropy"] = float(entropy_loss.detach())
        elif entropy is not None:
            out["actor/entropy"] = float(
                core_algos.aggregate_loss(entropy.detach(), mask, cfg.loss_avg_mode, **weighting)
            )
            del entropy  # frees the entropy branch of the graph before the backward
        if cfg.use_kl_loss and not cfg.disable_kl:
            kl = core_algos.compute_kl(log_probs, batch["ref_log_probs"], cfg.kl_penalty)
            kl_loss = core_algos.aggregate_loss(kl, mask, cfg.loss_avg_mode, **weighting)
            loss = loss + cfg.kl_coef * kl_loss
            out["actor/kl_loss"] = float(kl_loss.detach())
        return loss, out

    def _loss_weight(self, micro: DataProto, mini: DataProto) -> float:
        """Share of the mini-batch loss this micro-batch carries, so accumulation equals one big batch."""
        if self.config.loss_avg_mode in ("token-mean", "token"):
            return float(micro.batch["response_mask"].sum()) / max(float(mini.batch["response_mask"].sum()), 1.0)
        return len(micro) / len(mini)

    def _weight_total(self, mini: DataProto) -> torch.Tensor | None:
        """This rank's share of the mini-batch's loss-weight total (``core_algos.loss_weight_total`` summed over
        the ranks, divided by their number: the gradient average over ranks then gives the weighted mean of
        the whole mini-batch); None when the rows carry no ``loss_weight``."""
        if "loss_weight" not in mini.batch:
            return None
        total = core_algos.loss_weight_total(
            mini.batch["response_mask"], self.config.loss_avg_mode, mini.batch["loss_weight"]
        ).detach()
        world = 1
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            world = dist.get_world_size()
        return (total / world).clamp(min=1e-12)

    def update_policy(self, data: DataProto, temperature: float = 1.0) -> dict[str, list[float]]:
        """PPO-style update: ``ppo_epochs`` passes over mini-batches of ``global_batch_size_per_device`` rows,
        each accumulated over micro-batches of ``micro_batch_size_per_device_for_update`` rows (or, with
        ``dynamic_batching``, of ``max_token_len_per_device`` tokens; each micro-batch's loss is weighted by its
        share of the mini-batch, so the step is the same either way). A mini-batch whose
        loss or gradient norm is not finite is skipped: ``actor/non_finite_skipped`` is how many were skipped in
        this call (0 when none), which the trainer's consecutive-step guard reads."""
        if self.optimizer is None:
            raise RuntimeError("update_policy needs an optimizer; this actor was built for inference only")
        cfg = self.config
        self.module.train()
        metrics: dict[str, list[float]] = defaultdict(list)
        mini_size = cfg.global_batch_size_per_device if cfg.global_batch_size_per_device > 0 else len(data)
        mini_size = int(data.meta_info.get("mini_batch_rows", mini_size))  # v2: both hops' rows per mini-batch
        skipped = 0
        for _ in range(cfg.ppo_epochs):
            for mini in _micro_batches(data, mini_size):
                self.optimizer.zero_grad(set_to_none=True)
                finite = True
                weight_total = self._weight_total(mini)
                partial: dict[str, float] = defaultdict(float)
                for _, micro in micro_batches(mini, cfg.micro_batch_size_per_device_for_update, cfg):
                    loss, micro_metrics = self._micro_loss(micro, temperature, weight_total)
                    if not _finite_on_every_rank(loss):
                        finite = False
                        break
                    share = 1.0 if weight_total is not None else self._loss_weight(micro, mini)
                    (loss * share).backward()
                    for key, value in micro_metrics.items():
                        if weight_total is not None and key in _WEIGHTED_LOSSES:
                            partial[key] += value  # weighted: each micro-batch holds its share of the sum
                        else:
                            metrics[key].append(value)
                for key in list(partial):
                    metrics[key].append(partial.pop(key))
                grad_norm = self._clip_grad_norm() if finite else float("nan")
                if not finite or not math.isfinite(grad_norm):
                    self.non_finite_updates += 1
                    skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    logger.warning(
                        "skipped an actor update: %s is not finite", "the loss" if not finite else "the grad norm"
                    )
                    continue
                self.optimizer.step()
                metrics["actor/grad_norm"].append(grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        metrics["actor/non_finite_skipped"] = [float(skipped)]
        return dict(metrics)

    def _clip_grad_norm(self) -> float:
        parameters = [p for p in self.module.parameters() if p.grad is not None]
        clip = getattr(self.module, "clip_grad_norm_", None)  # FSDP1 computes the norm across shards itself
        if callable(clip):
            norm = clip(self.config.max_grad_norm)
        else:
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
        if hasattr(norm, "full_tensor"):  # FSDP2 DTensor
            norm = norm.full_tensor()
        return float(norm)

    # ------------------------------------------------------------------ supervised fine-tuning

    def _sft_nll(self, micro: DataProto) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed next-token negative log-likelihood per row over the labelled tokens, and their counts.

        ``labels`` is -100 wherever no loss is wanted (prompt, images, padding); batches are right padded.
        """
        batch = micro.batch
        mask = batch["attention_mask"]
        end = max(int(mask.sum(-1).max()), 1)
        ids, mask, labels = batch["input_ids"][:, :end], mask[:, :end], batch["labels"][:, :end]
        pos = batch["position_ids"][..., :end]
        if pos.dim() == 3:  # (B, 3, L) -> (3, B, L) as Qwen2-VL expects
            pos = pos.transpose(0, 1)
        target = F.pad(labels[:, 1:], (0, 1), value=-100)  # token t predicts token t + 1
        mm_kwargs = _multimodal_kwargs(micro.non_tensor_batch.get("multi_modal_inputs"))
        if self.config.padding_free:
            valid = mask.bool()
            lengths = valid.sum(dim=1)
            text_pos = torch.cat([torch.arange(int(n), device=ids.device) for n in lengths]).unsqueeze(0)
            if pos.dim() == 3:
                packed_pos = torch.cat([text_pos.unsqueeze(0), torch.stack([p[valid] for p in pos]).unsqueeze(1)])
            else:
                packed_pos = text_pos
            logits = self.module(
                input_ids=ids[valid].unsqueeze(0), position_ids=packed_pos, use_cache=False, **mm_kwargs
            ).logits[0]
            token_nll = F.cross_entropy(logits.float(), target[valid], ignore_index=-100, reduction="none")
            rows = valid.nonzero()[:, 0]
            nll = token_nll.new_zeros(len(ids)).index_add(0, rows, token_nll)
        else:
            logits = self.module(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **mm_kwargs
            ).logits
            token_nll = F.cross_entropy(
                logits.float().flatten(0, 1), target.flatten(), ignore_index=-100, reduction="none"
            )
            nll = token_nll.view(target.shape).sum(-1)
        return nll, (target != -100).sum(-1)

    @torch.no_grad()
    def compute_sft_nll(self, data: DataProto) -> DataProto:
        """Per-row summed NLL and labelled-token counts (``nll``, ``tokens``), for validation loss."""
        self.module.eval()
        nlls, counts = [], []
        for index, micro in micro_batches(data, self.config.micro_batch_size_per_device_for_experience, self.config):
            nll, tokens = self._sft_nll(micro)
            nlls.append((index, nll.detach().float().cpu()))
            counts.append((index, tokens.cpu()))
        return DataProto.from_dict(
            tensors={"nll": _in_row_order(nlls, len(data)), "tokens": _in_row_order(counts, len(data))}
        )

    def update_sft(self, data: DataProto, global_tokens: int, world_size: int) -> tuple[torch.Tensor, float]:
        """One optimizer step of token-mean cross-entropy over the whole global batch.

        Each rank's summed NLL is scaled by ``world_size / global_tokens``: FSDP averages gradients over the
        ranks, so the step equals one big batch where every labelled token weighs the same, whatever the
        split of rows and micro-batches. Returns the per-row NLL sums and the gradient norm (before
        clipping); a non-finite norm skips the step (counted in ``non_finite_updates``).
        """
        if self.optimizer is None:
            raise RuntimeError("update_sft needs an optimizer; this actor was built for inference only")
        self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        scale = world_size / max(global_tokens, 1)
        nlls = []
        for index, micro in micro_batches(data, self.config.micro_batch_size_per_device_for_update, self.config):
            nll, _ = self._sft_nll(micro)
            (nll.sum() * scale).backward()
            nlls.append((index, nll.detach().float().cpu()))
        grad_norm = self._clip_grad_norm()
        if math.isfinite(grad_norm):
            self.optimizer.step()
        else:
            self.non_finite_updates += 1
        self.optimizer.zero_grad(set_to_none=True)
        return _in_row_order(nlls, len(data)), grad_norm
