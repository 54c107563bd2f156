"""Rollout engines behind one interface: ``vllm`` (GPU or CPU build) and ``hf`` (transformers generate)."""

from __future__ import annotations

from typing import Any

import torch

from .base import BaseRollout, build_output, sampling_settings

__all__ = ["BaseRollout", "build_output", "build_rollout", "sampling_settings"]


def build_rollout(
    config: Any, model_path: str, tokenizer: Any, processor: Any | None, module: torch.nn.Module | None = None
) -> BaseRollout:
    """The engine named by ``worker.rollout.name``; ``hf`` shares ``module`` (the actor) when given."""
    if config.name == "vllm":
        from .vllm_rollout import VLLMRollout

        return VLLMRollout(config, model_path, tokenizer, processor)
    if config.name == "hf":
        from .hf_rollout import HFRollout

        if module is not None:
            return HFRollout(config, module, tokenizer, processor)
        return HFRollout.from_path(config, model_path, tokenizer, processor)
    raise ValueError(f"unknown worker.rollout.name {config.name!r}; expected 'vllm' or 'hf'")
