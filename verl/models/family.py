"""What differs between the model families we train, in one record per family.

Each family lives in its own module (``qwen2_vl.py``, ``qwen3_vl.py``) and registers a :class:`ModelFamily`
here; the rest of the code asks for the family of a model config or a processor and never names a model
class. A new family is one new module listed in ``_FAMILY_MODULES``.

What a family says:

- ``model_types``: the ``config.model_type`` values it covers (the VL model and its text-only sibling);
- ``processor_classes``: the processor class names that belong to it (the dataset sees only the processor);
- ``vision_tower``: the module name of the vision encoder and its merger (frozen by
  ``freeze_vision_tower``, left without LoRA adapters);
- ``video_frames_as_blocks``: whether each temporal patch of a video is its own block of video tokens
  with a timestamp in text between blocks (Qwen3-VL), rather than one block spaced in time (Qwen2.5-VL);
- ``qkv_bias`` / ``qk_norm``: whether the language model's q/k/v projections have biases (Qwen2) and its
  queries and keys an RMSNorm each (Qwen3), for the FLOPs counter's parameter count;
- ``tiny_builders``: the tiny random checkpoints the embedded generator writes for this family.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .rope import get_rope_index


@dataclass(frozen=True)
class TinyBuilder:
    """One tiny checkpoint of a family: the folder it is written to under the tiny assets, and how to build it.

    ``build_model(tokenizer, token_ids, seed)`` returns the random model; ``build_processor(tokenizer,
    chat_template)`` the processor saved beside it, or None for a text model (the tokenizer is saved then)."""

    folder: str
    build_model: Callable[[Any, dict[str, int], int], Any]
    build_processor: Callable[[Any, str], Any] | None = None


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]
    processor_classes: tuple[str, ...] = ()
    vision_tower: str = "visual"
    video_frames_as_blocks: bool = False
    qkv_bias: bool = True
    qk_norm: bool = False
    tiny_builders: tuple[TinyBuilder, ...] = field(default=())

    def position_ids(
        self,
        processor: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        second_per_grid_ts: list[float] | torch.Tensor | None = None,
        tokens_per_second: float = 2.0,
    ) -> torch.Tensor:
        """(3, L) M-RoPE position ids of one prompt as this family's model computes them; ``tokens_per_second``
        is the model's ``vision_config.tokens_per_second`` (Qwen2.5-VL's temporal spacing of video frames)."""
        tokenizer = getattr(processor, "tokenizer", processor)
        image_processor = getattr(processor, "image_processor", None)
        return get_rope_index(
            input_ids,
            attention_mask,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            second_per_grid_ts=second_per_grid_ts,
            image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
            video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
            spatial_merge_size=getattr(image_processor, "merge_size", 2),
            tokens_per_second=tokens_per_second,
            video_frames_as_blocks=self.video_frames_as_blocks,
        )


def mm_token_type_ids(tokenizer: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Which tokens are image (1) or video (2) placeholders, text (0) elsewhere: what transformers' Qwen VL
    models need beside ``input_ids`` to compute M-RoPE themselves (in ``generate``); without it they fall
    back to text positions."""
    types = torch.zeros_like(input_ids, dtype=torch.int32)
    types[input_ids == tokenizer.convert_tokens_to_ids("<|image_pad|>")] = 1
    types[input_ids == tokenizer.convert_tokens_to_ids("<|video_pad|>")] = 2
    return types


_FAMILY_MODULES = ("qwen2_vl", "qwen3_vl")
_FAMILIES: dict[str, ModelFamily] = {}


def families() -> dict[str, ModelFamily]:
    """Every registered family by name (the family modules are imported on first use)."""
    if not _FAMILIES:
        for module in _FAMILY_MODULES:
            family = importlib.import_module(f"{__package__}.{module}").FAMILY
            _FAMILIES[family.name] = family
    return _FAMILIES


def family_of_config(config: Any) -> ModelFamily:
    """The family of a Hugging Face config (or a model with ``.config``); unknown types raise, naming them."""
    config = getattr(config, "config", config)
    model_type = getattr(config, "model_type", None)
    for family in families().values():
        if model_type in family.model_types:
            return family
    known = sorted(t for f in families().values() for t in f.model_types)
    raise ValueError(f"model_type {model_type!r} belongs to no known model family; known types: {known}")


def family_of_processor(processor: Any) -> ModelFamily:
    """The family of a multimodal processor, by its class name."""
    name = type(processor).__name__
    for family in families().values():
        if name in family.processor_classes:
            return family
    known = sorted(c for f in families().values() for c in f.processor_classes)
    raise ValueError(f"processor {name} belongs to no known model family; known processors: {known}")


# ----------------------------------------------------------------------------- tiny checkpoints (shared sizes)


def tiny_text_kwargs(tokenizer: Any, token_ids: dict[str, int]) -> dict[str, Any]:
    """The language-model sizes every tiny checkpoint shares: 2 layers of width 128, heads of 64 (vLLM's CPU
    attention rejects smaller heads), a vocabulary padded to a multiple of 64 like real checkpoints."""
    return {
        "vocab_size": ((len(tokenizer) + 63) // 64) * 64,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "max_position_embeddings": 4096,
        "bos_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids["<|im_end|>"],
        "pad_token_id": token_ids["<|endoftext|>"],
        "tie_word_embeddings": True,
    }


def tiny_vision_token_kwargs(token_ids: dict[str, int]) -> dict[str, int]:
    """The special-token ids a Qwen VL config names."""
    return {
        "image_token_id": token_ids["<|image_pad|>"],
        "video_token_id": token_ids["<|video_pad|>"],
        "vision_start_token_id": token_ids["<|vision_start|>"],
        "vision_end_token_id": token_ids["<|vision_end|>"],
    }


def finish_tiny_model(model: Any, token_ids: dict[str, int]) -> Any:
    """float32 weights and a generation config that stops at ``<|im_end|>``, as a released checkpoint has."""
    from transformers import GenerationConfig

    model = model.to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids["<|im_end|>"], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids["<|endoftext|>"],
    )
    return model


def tiny_processor(
    processor_class: Any,
    video_processor_class: Any,
    tokenizer: Any,
    chat_template: str,
    patch_size: int,
    pixels: tuple[int, int],
) -> Any:
    """A Qwen-style processor for the tiny checkpoints: the image processor takes ``pixels`` (min, max) per
    image, the video processor up to 8 images' worth per clip, both with 2-frame temporal patches and 2x2 merging."""
    from transformers import Qwen2VLImageProcessor

    min_pixels, max_pixels = pixels
    patching = {"patch_size": patch_size, "temporal_patch_size": 2, "merge_size": 2}
    return processor_class(
        image_processor=Qwen2VLImageProcessor(
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **patching
        ),
        tokenizer=tokenizer,
        video_processor=video_processor_class(
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels * 8}, **patching
        ),
        chat_template=chat_template,
    )
