"""Benchmark 5 (GPU only): actor forward+backward throughput and MFU for a randomly initialised model with the
Qwen2.5-VL-3B configuration in bf16, with and without gradient checkpointing; HF rollout tokens/s.

No weights are downloaded: the configuration is written out here (the published 3B's sizes) and the weights are
random, which costs the same FLOPs. Text-only sequences of equal length keep the measurement about the
language model, which is where the FLOPs are (see ``verl.models.flops``). Run with ``python -m bench gpu`` on
a machine with a CUDA device; elsewhere it reports that it was skipped.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from verl.models.flops import mfu, peak_tflops


def qwen2_5_vl_3b_config() -> Any:
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        tie_word_embeddings=True,
    )


def train_throughput(
    model: Any, batch: int, seq_len: int, checkpointing: bool, steps: int = 5, warmup: int = 2
) -> dict[str, float]:
    """Tokens/s and MFU of forward+backward+AdamW on random tokens (median-free: total over ``steps``)."""
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (batch, seq_len), device="cuda")
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    value = mfu(model.config, [seq_len] * batch, seconds)
    return {
        "tokens_per_s": batch * seq_len / seconds,
        "mfu": float("nan") if value is None else value,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
    }


def run(batch: int = 4, seq_len: int = 4096) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            qwen2_5_vl_3b_config(), dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "peak_tflops": peak_tflops(),
        "batch": batch,
        "seq_len": seq_len,
    }
    for checkpointing in (False, True):
        torch.cuda.reset_peak_memory_stats()
        try:
            result[f"train_checkpointing_{checkpointing}"] = train_throughput(model, batch, seq_len, checkpointing)
        except torch.cuda.OutOfMemoryError:
            result[f"train_checkpointing_{checkpointing}"] = {"error": "out of memory"}
        torch.cuda.empty_cache()
    model.eval()
    prompt = torch.randint(0, 1000, (batch * 8, 256), device="cuda")
    with torch.no_grad():
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(input_ids=prompt, max_new_tokens=256, min_new_tokens=256, do_sample=True)
        torch.cuda.synchronize()
    result["hf_generate_tokens_per_s"] = (out.shape[1] - prompt.shape[1]) * out.shape[0] / (time.perf_counter() - start)
    return result
