"""Qwen2-VL / Qwen2.5-VL and their text sibling Qwen2.

M-RoPE with sections (temporal, height, width) in contiguous blocks of the rotary dimensions; a video is one
block of ``t * h * w`` tokens whose temporal positions are spaced by ``second_per_grid_ts *
tokens_per_second``. The tiny checkpoints: a 2-layer Qwen2.5-VL (14 px patches, window attention) and a
2-layer Qwen2.
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

PATCH_SIZE = 14


def build_tiny_vl(tokenizer: Any, token_ids: dict[str, int], seed: int) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = tiny_text_kwargs(tokenizer, token_ids)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}
    config = Qwen2_5_VLConfig(
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
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        tie_word_embeddings=True,
        **tiny_vision_token_kwargs(token_ids),
    )
    torch.manual_seed(seed)
    return finish_tiny_model(Qwen2_5_VLForConditionalGeneration(config), token_ids)


def build_tiny_text(tokenizer: Any, token_ids: dict[str, int], seed: int) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed + 7)
    return finish_tiny_model(Qwen2ForCausalLM(Qwen2Config(**tiny_text_kwargs(tokenizer, token_ids))), token_ids)


def build_tiny_processor(tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return tiny_processor(
        Qwen2_5_VLProcessor, Qwen2VLVideoProcessor, tokenizer, chat_template, PATCH_SIZE, (56 * 56, 224 * 224)
    )


FAMILY = ModelFamily(
    name="qwen2_vl",
    model_types=("qwen2_vl", "qwen2_5_vl", "qwen2"),
    processor_classes=("Qwen2VLProcessor", "Qwen2_5_VLProcessor"),
    vision_tower="visual",
    video_frames_as_blocks=False,
    qkv_bias=True,
    qk_norm=False,
    tiny_builders=(
        TinyBuilder("qwen2_5_vl", build_tiny_vl, build_tiny_processor),
        TinyBuilder("qwen2_text", build_tiny_text),
    ),
)
