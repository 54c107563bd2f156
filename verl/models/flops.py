"""FLOPs of a training step for the language models of the families in ``verl.models``, for throughput and MFU metrics.

Per token, forward + backward of the dense weights costs 6 FLOPs per parameter; causal attention adds
``12 * layers * heads * head_dim * seq_len`` per token (QK^T and AV, forward and backward), so a sequence
of length s costs ``6 * N * s + 12 * L * H * d * s^2``. The vision tower is left out (a few percent of a
7B model's FLOPs at typical image sizes), so MFU is slightly under-reported for image-heavy batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# Dense bf16 peak TFLOP/s per device, by substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "4090": 165.0}


def text_config_of(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def dense_parameters(config: Any) -> int:
    """Weights touched per token by the language model (embeddings counted once when tied)."""
    from .family import family_of_config

    family = family_of_config(config)
    c = text_config_of(config)
    hidden, inter, layers, vocab = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    head_dim = getattr(c, "head_dim", None) or hidden // c.num_attention_heads
    bias = 1 if family.qkv_bias else 0
    q = (hidden + bias) * c.num_attention_heads * head_dim
    kv = 2 * (hidden + bias) * c.num_key_value_heads * head_dim
    o = c.num_attention_heads * head_dim * hidden
    mlp = 3 * hidden * inter
    per_layer = q + kv + o + mlp + 2 * hidden + (2 * head_dim if family.qk_norm else 0)  # RMSNorm weights
    tied = getattr(config, "tie_word_embeddings", getattr(c, "tie_word_embeddings", False))
    embeddings = vocab * hidden * (1 if tied else 2)
    return layers * per_layer + embeddings + hidden


def step_flops(config: Any, seq_lens: Sequence[int]) -> float:
    """FLOPs of forward + backward over sequences of the given lengths."""
    c = text_config_of(config)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    tokens = sum(seq_lens)
    squares = sum(s * s for s in seq_lens)
    return (
        6.0 * dense_parameters(config) * tokens
        + 12.0 * c.num_hidden_layers * c.num_attention_heads * head_dim * squares
    )


def peak_tflops(device: torch.device | None = None) -> float | None:
    """Dense bf16 peak of the current CUDA device, or None when unknown (CPU, unlisted GPU)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_TFLOPS.items() if key in name), None)


def mfu(
    config: Any, seq_lens: Sequence[int], seconds: float, n_devices: int = 1, peak: float | None = None
) -> float | None:
    """Model FLOPs utilisation of a phase that processed ``seq_lens`` in ``seconds`` on ``n_devices``."""
    peak = peak if peak is not None else peak_tflops()
    if not peak or seconds <= 0:
        return None
    return step_flops(config, seq_lens) / seconds / (peak * 1e12 * n_devices)
