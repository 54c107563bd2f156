"""Qwen3-VL and its text sibling Qwen3.

Differences from Qwen2.5-VL that matter here: interleaved M-RoPE (``mrope_interleaved``: the temporal,
height and width frequencies alternate across the rotary dimensions instead of sitting in three blocks),
16 px patches with learned position embeddings (``num_position_embeddings``, a square grid), DeepStack
(features of the vision layers ``deepstack_visual_indexes`` are added to the first language layers), and
videos written as one block per temporal patch, each behind a ``<t seconds>`` text timestamp. Position ids
are computed the same way as for Qwen2.5-VL once video grids are split per frame. The tiny checkpoints: a
2-layer Qwen3-VL and a 2-layer Qwen3.
"""

from __future__ import annotations

from typing import Any

import torch

from .family import (
    ModelFamily,
    TinyBuilder,
    finish_tiny_model,
    tiny_processor,
    tiny_text_kwargs,
    tiny_vision_token_kwargs,
)

PATCH_SIZE = 16


def build_tiny_vl(tokenizer: Any, token_ids: dict[str, int], seed: int) -> Any:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    text = tiny_text_kwargs(tokenizer, token_ids)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5000000.0,
        "mrope_section": [8, 12, 12],  # sums to head_dim / 2
        "mrope_interleaved": True,
    }
    config = Qwen3VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": text["hidden_size"],
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,  # an 8x8 grid, interpolated to the image's
            "deepstack_visual_indexes": [0],
        },
        tie_word_embeddings=True,
        **tiny_vision_token_kwargs(token_ids),
    )
    torch.manual_seed(seed)
    return finish_tiny_model(Qwen3VLForConditionalGeneration(config), token_ids)


def build_tiny_text(tokenizer: Any, token_ids: dict[str, int], seed: int) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed + 7)
    return finish_tiny_model(Qwen3ForCausalLM(Qwen3Config(**tiny_text_kwargs(tokenizer, token_ids))), token_ids)


def build_tiny_processor(tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    return tiny_processor(
        Qwen3VLProcessor, Qwen3VLVideoProcessor, tokenizer, chat_template, PATCH_SIZE, (64 * 64, 256 * 256)
    )


FAMILY = ModelFamily(
    name="qwen3_vl",
    model_types=("qwen3_vl", "qwen3"),
    processor_classes=("Qwen3VLProcessor",),
    vision_tower="visual",
    video_frames_as_blocks=True,
    qkv_bias=False,
    qk_norm=True,
    tiny_builders=(
        TinyBuilder("qwen3_vl", build_tiny_vl, build_tiny_processor),
        TinyBuilder("qwen3_text", build_tiny_text),
    ),
)
