"""The rollout interface and the output layout both engines share.

``generate_sequences(prompts)`` takes a DataProto with left-padded ``input_ids``/``attention_mask``/
``position_ids`` and non-tensor ``raw_prompt_ids`` (plus ``multi_modal_data`` for images) and returns
``n`` responses per prompt (rows repeated interleaved: a, a, b, b) as::

    prompts (B*n, P)  responses (B*n, R)  input_ids = prompts ++ responses  attention_mask  response_mask
    position_ids (M-RoPE (B*n, 3, P+R) for VL prompts, (B*n, P+R) otherwise)  [rollout_log_probs (B*n, R)]

``R`` is the call's ``max_tokens`` (``meta_info``) or the configured response length. Per-call sampling
overrides come through ``meta_info``: ``n``, ``temperature``, ``top_p``, ``top_k``, ``max_tokens``,
``do_sample`` (False: greedy, n=1) and ``validate`` (True: apply ``val_override_config``). That is how the
self-reward hop asks the same engine for one short, text-only answer per description.

A split rollout (vLLM): ``meta_info["stop"]`` (a list of strings) stops each response after the first of
them, kept in the output, and marks the rows that stopped there (``stopped_at_stop_string``);
``continue_sequences`` then finishes those rows from their own token ids in one engine call, alongside extra
text-only prompts (the self-reward hop's blind answers), and returns the same layout as an unsplit rollout.

The output's ``meta_info`` holds ``generated_tokens`` (response tokens under the mask), ``timing/generate``
(seconds) and ``cut_at_placeholder`` (see :func:`build_output`); the input's ``meta_info`` is not copied.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...protocol import DataProto


@dataclass
class SamplingSettings:
    n: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    greedy: bool


def sampling_settings(config: Any, meta: dict[str, Any]) -> SamplingSettings:
    """Config defaults ← ``val_override_config`` (when ``validate``) ← per-call ``meta_info`` overrides."""
    values = {
        "n": config.n,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "max_tokens": config.response_length,
    }
    if meta.get("validate"):
        values.update({k: v for k, v in (config.val_override_config or {}).items() if k in values})
    values.update({k: meta[k] for k in values if k in meta})
    greedy = meta.get("do_sample") is False or float(values["temperature"]) == 0.0
    if greedy:
        values["n"] = 1 if meta.get("do_sample") is False else values["n"]
    if int(values["max_tokens"]) > config.response_length:
        raise ValueError(f"max_tokens={values['max_tokens']} exceeds data.max_response_length={config.response_length}")
    return SamplingSettings(
        n=int(values["n"]),
        temperature=float(values["temperature"]),
        top_p=float(values["top_p"]),
        top_k=int(values["top_k"]),
        max_tokens=int(values["max_tokens"]),
        greedy=greedy,
    )


def response_positions(prompt_positions: torch.Tensor, response_length: int) -> torch.Tensor:
    """Position ids for generated tokens: each axis continues from the prompt's last position + 1.

    ``prompt_positions`` is (B, P) or (B, 3, P); generated text advances all M-RoPE axes together, starting
    after the largest prompt position (as Qwen2-VL does when decoding)."""
    steps = torch.arange(1, response_length + 1, dtype=prompt_positions.dtype)
    if prompt_positions.dim() == 3:
        start = prompt_positions.max(dim=-1).values.max(dim=-1, keepdim=True).values  # (B, 1)
        return (start + steps).unsqueeze(1).expand(-1, prompt_positions.shape[1], -1)
    return prompt_positions[:, -1:] + steps


def build_output(
    prompts: DataProto,
    token_lists: list[list[int]],
    n: int,
    response_length: int,
    pad_token_id: int,
    eos_token_ids: set[int],
    log_probs: list[list[float]] | None = None,
    forbidden_token_ids: set[int] | None = None,
) -> DataProto:
    """Assemble the shared output layout from per-sample generated token ids (B*n lists, interleaved).

    A response is cut before the first ``forbidden_token_ids`` token (the image/video placeholders): the
    model's forward would try to fill such a token with vision features it does not have. Trained models
    never emit them; an untrained one can, and the cut count is reported as ``cut_at_placeholder``."""
    forbidden = forbidden_token_ids or set()
    cut = 0
    batch = prompts.batch
    total = len(token_lists)
    responses = torch.full((total, response_length), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((total, response_length), dtype=torch.long)
    rollout_log_probs = torch.zeros((total, response_length), dtype=torch.float32) if log_probs is not None else None
    for i, tokens in enumerate(token_lists):
        tokens = list(tokens)[:response_length]
        for j, token in enumerate(tokens):
            if token in forbidden:
                tokens = tokens[:j]
                cut += 1
                break
        # Keep the EOS token (it is part of what the policy chose) but nothing after it.
        for j, token in enumerate(tokens):
            if token in eos_token_ids:
                tokens = tokens[: j + 1]
                break
        if tokens:
            responses[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            response_mask[i, : len(tokens)] = 1
            if rollout_log_probs is not None:
                rollout_log_probs[i, : len(tokens)] = torch.tensor(log_probs[i][: len(tokens)], dtype=torch.float32)
    prompt_ids = batch["input_ids"].repeat_interleave(n, dim=0)
    prompt_mask = batch["attention_mask"].repeat_interleave(n, dim=0)
    prompt_positions = batch["position_ids"].repeat_interleave(n, dim=0)
    tensors = {
        "prompts": prompt_ids,
        "responses": responses,
        "input_ids": torch.cat([prompt_ids, responses], dim=-1),
        "attention_mask": torch.cat([prompt_mask, response_mask], dim=-1),
        "response_mask": response_mask,
        "position_ids": torch.cat([prompt_positions, response_positions(prompt_positions, response_length)], dim=-1),
    }
    if rollout_log_probs is not None:
        tensors["rollout_log_probs"] = rollout_log_probs
    non_tensors = {k: np.repeat(v, n, axis=0) for k, v in prompts.non_tensor_batch.items()}
    out = DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)
    out.meta_info["generated_tokens"] = int(response_mask.sum())
    out.meta_info["cut_at_placeholder"] = cut
    return out


def eos_token_ids(tokenizer: Any, generation_config: Any | None = None) -> set[int]:
    """Where a response ends: the tokenizer's EOS plus the generation config's (Qwen lists ``<|im_end|>`` and
    ``<|endoftext|>`` there)."""
    ids: set[int] = set()
    for value in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        ids |= set(value if isinstance(value, list | tuple) else [value])
    return {int(i) for i in ids if i is not None}


def generation_eos_ids(model_path: str, tokenizer: Any) -> set[int]:
    """:func:`eos_token_ids` with the ``generation_config.json`` of a model folder (when it has one)."""
    from transformers import GenerationConfig

    try:
        generation_config = GenerationConfig.from_pretrained(model_path)
    except OSError:
        generation_config = None
    return eos_token_ids(tokenizer, generation_config)


def placeholder_token_ids(tokenizer: Any) -> set[int]:
    """Ids of the image/video placeholder tokens, which generated text must never contain."""
    vocab = tokenizer.get_vocab()
    return {vocab[t] for t in ("<|image_pad|>", "<|video_pad|>") if t in vocab}


@dataclass
class ContinuationPlan:
    """How :meth:`BaseRollout.continue_sequences` finishes a rollout that stopped at a stop string."""

    prompts: DataProto
    """the rows' prompt part (``input_ids``, ``attention_mask``, ``position_ids`` and the non-tensor fields)"""
    generated: list[list[int]]
    """each row's response tokens so far"""
    log_probs: list[list[float]] | None
    """their rollout log-probs, when the first call returned them"""
    to_continue: list[int]
    """the rows that stopped at the stop string with tokens left (``stopped_at_stop_string``)"""


def continuation_plan(partial: DataProto) -> ContinuationPlan:
    """Split the output of a ``generate_sequences`` call with ``meta_info["stop"]`` back into prompts and
    generated tokens, so that a second call can continue the rows that stopped at the stop string."""
    b = partial.batch
    width = b["prompts"].shape[-1]
    lengths = b["response_mask"].sum(-1).tolist()
    generated = [b["responses"][i, : int(n)].tolist() for i, n in enumerate(lengths)]
    log_probs = None
    if "rollout_log_probs" in b:
        log_probs = [b["rollout_log_probs"][i, : int(n)].tolist() for i, n in enumerate(lengths)]
    non_tensors = {k: v for k, v in partial.non_tensor_batch.items() if k != "extra_prompt_ids"}
    prompts = DataProto.from_dict(
        tensors={
            "input_ids": b["prompts"],
            "attention_mask": b["attention_mask"][:, :width],
            "position_ids": b["position_ids"][..., :width],
        },
        non_tensors=non_tensors,
    )
    stopped = b["stopped_at_stop_string"].tolist() if "stopped_at_stop_string" in b else [False] * len(partial)
    return ContinuationPlan(prompts, generated, log_probs, [i for i, s in enumerate(stopped) if s])


class BaseRollout(ABC):
    """A generation engine that can be fed new weights."""

    @abstractmethod
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """``n`` responses per prompt in the layout of the module docstring."""

    @abstractmethod
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights with the actor's (Hugging Face names, full tensors).

        The iterator is consumed to the end on every rank, in order: under FSDP each item is a collective."""

    supports_split: bool = False
    """whether :meth:`generate_sequences` honours ``meta_info["stop"]`` and :meth:`continue_sequences` exists"""

    def continue_sequences(self, partial: DataProto) -> DataProto:
        """Finish a rollout split at a stop string and answer extra text-only prompts in the same engine call
        (see :class:`~.vllm_rollout.VLLMRollout`); engines without it refuse."""
        raise NotImplementedError(f"{type(self).__name__} cannot continue a split rollout")

    def sleep(self) -> None:
        """Free accelerator memory between rollouts (engines without sleep mode do nothing)."""
        return None

    def wake_up(self) -> None:
        """Undo ``sleep``."""
        return None
