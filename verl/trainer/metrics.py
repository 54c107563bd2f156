"""Step metrics computed on the driver from the batch: rewards per component, lengths, advantages, KL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..protocol import DataProto


def reduce_metrics(metrics: Mapping[str, Sequence[float] | float]) -> dict[str, float]:
    """Mean of each metric's values (scalars pass through)."""
    out = {}
    for key, values in metrics.items():
        if isinstance(values, (int, float)):
            out[key] = float(values)
        elif len(values):
            out[key] = float(np.mean(values))
    return out


def _masked_stats(prefix: str, values: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    valid = values[mask.bool()]
    if valid.numel() == 0:
        return {}
    return {
        f"{prefix}/mean": float(valid.mean()),
        f"{prefix}/max": float(valid.max()),
        f"{prefix}/min": float(valid.min()),
    }


def compute_data_metrics(batch: DataProto, components: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Reward components (``reward/<name>``), response length (mean/max/min/clip ratio), prompt length,
    advantages, returns and, when present, values and token-level KL to the reference."""
    b = batch.batch
    mask = b["response_mask"]
    metrics: dict[str, Any] = {f"reward/{k}": float(np.mean(v)) for k, v in components.items() if len(v)}
    lengths = mask.sum(-1).float()
    max_len = mask.shape[-1]
    metrics.update(
        {
            "response_length/mean": float(lengths.mean()),
            "response_length/max": float(lengths.max()),
            "response_length/min": float(lengths.min()),
            "response_length/clip_ratio": float((lengths >= max_len).float().mean()),
        }
    )
    if "prompts" in b:
        prompt_mask = b["attention_mask"][:, : b["prompts"].shape[-1]]
        metrics["prompt_length/mean"] = float(prompt_mask.sum(-1).float().mean())
    sequence_scores = b["token_level_scores"].sum(-1) if "token_level_scores" in b else None
    if sequence_scores is not None:
        metrics["critic/score/mean"] = float(sequence_scores.mean())
    for key in ("advantages", "returns", "values"):
        if key in b:
            metrics.update(_masked_stats(f"critic/{key}", b[key], mask))
    if "ref_log_probs" in b and "old_log_probs" in b:
        kl = (b["old_log_probs"] - b["ref_log_probs"]) * mask
        metrics["actor/reference_kl"] = float(kl.sum() / mask.sum().clamp(min=1))
    if "entropies" in b:
        metrics["actor/entropy_old"] = float((b["entropies"] * mask).sum() / mask.sum().clamp(min=1))
    return metrics
