"""Ulysses sequence parallelism for the language model of Qwen2, Qwen2-VL and Qwen2.5-VL.

``worker.actor.ulysses_size`` (and ``worker.critic.ulysses_size``) ranks form one sequence-parallel group. They
hold the same rows; each runs the decoder layers on its own contiguous slice of every sequence. Around each
attention the heads are exchanged by an all-to-all (every rank gets the whole sequence for ``1 / ulysses_size`` of
the heads), and exchanged back afterwards, so the activations of the decoder layers, the largest part of a long
sequence's memory, are split ``ulysses_size`` ways.

How it hooks into transformers, without copying model code:

- The input embeddings (with the image features merged in, the vision tower running whole on every rank of the
  group) are made on the full sequence by the model itself. A forward pre-hook on the language model (the decoder
  stack) pads the sequence to a multiple of the group size, keeps this rank's slice of the embeddings (or token
  ids) and of the position ids (text, or M-RoPE's 3 rows, or the 4 rows of a packed VL batch), and passes the
  full sequence's attention layout to the attention layers as a keyword argument (it travels with the layer
  inputs, so gradient checkpointing's recomputation sees it too).
- The attention function is registered in transformers' attention registry as ``ulysses_<base>`` (``base`` being
  the model's own: ``sdpa``, ``eager`` or flash-attention) and set on the language model's config only. Outside a
  sequence-parallel forward it is the base function unchanged.
- A forward hook gathers the language model's last hidden state back to the full sequence (and drops the
  padding), so the output head, log-probs and values are computed as without sequence parallelism. The
  per-layer hidden states (``output_hidden_states``) stay per-rank slices: read ``last_hidden_state``.

Gradients: every rank of a group computes the same loss from the gathered hidden states; the gather's backward
keeps this rank's slice of the gradient times the group size. FSDP averages gradients over all ``world`` ranks
(it shards over the whole world, as verl does), so the decoder weights, whose gradient is split over the group,
get their full-batch gradient, and the output head, whose gradient every rank of the group computes whole, is
unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..protocol import DataProto

__all__ = [
    "SUPPORTED_LANGUAGE_MODELS",
    "SequenceParallel",
    "all_to_all",
    "config_problem",
    "gather_sequence",
    "language_model",
]

SUPPORTED_LANGUAGE_MODELS: dict[str, str] = {
    "Qwen2Model": "Qwen2",
    "Qwen2VLTextModel": "Qwen2-VL",
    "Qwen2_5_VLTextModel": "Qwen2.5-VL",
}
"""Decoder stacks (transformers class names) that sequence parallelism is built for, with their family names."""

_SUPPORTED_MODEL_TYPES = ("qwen2", "qwen2_vl", "qwen2_5_vl")
_BASE_ATTENTIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
_PREFIX = "ulysses_"
_LAYOUT_KEY = "ulysses_layout"


def config_problem(hf_config: Any, size: int, key: str) -> str | None:
    """Why ``size``-way sequence parallelism cannot run this model (its ``AutoConfig``), or None when it can.

    ``key`` names the setting in the message (``worker.actor.ulysses_size``)."""
    if size <= 1:
        return None
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in _SUPPORTED_MODEL_TYPES:
        return (
            f"{key}={size}: sequence parallelism is built for Qwen2, Qwen2-VL and Qwen2.5-VL models, not "
            f"model_type {model_type!r}; set {key}=1"
        )
    text = hf_config.get_text_config()
    heads = text.num_attention_heads
    if heads % size:
        return (
            f"{key}={size} must divide the model's {heads} attention heads (each rank of a sequence-parallel "
            f"group attends with heads / ulysses_size of them); use a divisor of {heads}"
        )
    return None


# ---------------------------------------------------------------------------------------------- communication


def _exchange(x: torch.Tensor, group: Any, scatter_dim: int, gather_dim: int) -> torch.Tensor:
    size = dist.get_world_size(group)
    inputs = [part.contiguous() for part in x.chunk(size, dim=scatter_dim)]
    outputs = [torch.empty_like(inputs[0]) for _ in range(size)]
    dist.all_to_all(outputs, inputs, group=group)
    return torch.cat(outputs, dim=gather_dim)


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, scatter_dim: int, gather_dim: int) -> torch.Tensor:
        ctx.group, ctx.scatter_dim, ctx.gather_dim = group, scatter_dim, gather_dim
        return _exchange(x, group, scatter_dim, gather_dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return _exchange(grad, ctx.group, ctx.gather_dim, ctx.scatter_dim), None, None, None


def all_to_all(x: torch.Tensor, group: Any, scatter_dim: int, gather_dim: int) -> torch.Tensor:
    """Split ``x`` into equal parts along ``scatter_dim``, send part ``i`` to rank ``i`` of ``group`` and
    concatenate what arrives along ``gather_dim`` (differentiable: the backward is the reverse exchange)."""
    return _AllToAll.apply(x, group, scatter_dim, gather_dim)


class _GatherSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, dim: int) -> torch.Tensor:
        ctx.group, ctx.dim = group, dim
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        size = dist.get_world_size(ctx.group)
        own = grad.chunk(size, dim=ctx.dim)[dist.get_rank(ctx.group)]
        return own * size, None, None


def gather_sequence(x: torch.Tensor, group: Any, dim: int = 1) -> torch.Tensor:
    """Concatenate every rank's slice of ``x`` along ``dim`` (the sequence).

    Every rank of the group goes on to compute the same loss from the result, so the backward keeps this rank's
    slice of the gradient, times the group size: the gradient reduction averages over all ranks, and the
    ``size`` ranks of a group each hold only their slice's share of the decoder weights' gradient."""
    return _GatherSequence.apply(x, group, dim)


# ---------------------------------------------------------------------------------------------- attention


@dataclass
class _Layout:
    """The full (padded) sequence's attention pattern, handed to every attention layer of one forward."""

    group: Any
    size: int
    key_valid: torch.Tensor | None
    """(B, L) bools, padded batches: which tokens are real (left-padded prompts, right-padded responses)"""
    segments: torch.Tensor | None
    """(B, L) ids, packed batches: tokens attend within their segment (rows restart text positions at 0)"""
    text_positions: torch.Tensor | None
    """(B, L) text positions of a packed batch, for flash-attention's variable-length kernels"""
    _mask: torch.Tensor | None = None

    def mask(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        """(B, 1, L, L) bools: causal, within a segment, to real keys; a padding query sees itself (its output is
        dropped, and a query with no key would give NaN). Built once per forward, shared by the layers."""
        if self._mask is None:
            self._mask = self._build_mask(batch, length, device)
        return self._mask

    def _build_mask(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        allowed = causal.expand(batch, length, length)
        if self.segments is not None:
            allowed = allowed & (self.segments[:, :, None] == self.segments[:, None, :])
        if self.key_valid is not None:
            allowed = allowed & self.key_valid[:, None, :]
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=device)
        return allowed.unsqueeze(1)


class _GroupedKV:
    """An attention module as seen by the base attention function when key/value heads were repeated before the
    exchange: the same module with ``num_key_value_groups`` matching the repeated heads."""

    def __init__(self, module: torch.nn.Module, groups: int) -> None:
        self._module, self.num_key_value_groups = module, groups

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _base_attention(name: str) -> Callable[..., tuple[torch.Tensor, Any]]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name == "eager":
        from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

        return eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[name]


def _attention_for(base: str) -> Callable[..., tuple[torch.Tensor, Any]]:
    def attention(
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        layout: _Layout | None = kwargs.pop(_LAYOUT_KEY, None)
        forward = _base_attention(base)
        if layout is None:
            return forward(module, query, key, value, attention_mask, **kwargs)
        group, size = layout.group, layout.size
        heads, kv_heads = query.shape[1], key.shape[1]
        if kv_heads % size:  # repeat key/value heads until each rank gets a whole number of them
            repeated = math.lcm(kv_heads, size)
            key = key.repeat_interleave(repeated // kv_heads, dim=1)
            value = value.repeat_interleave(repeated // kv_heads, dim=1)
            module = _GroupedKV(module, heads // repeated)
        # (B, heads, L / size, D) -> (B, heads / size, L, D): gather the sequence, scatter the heads
        query, key, value = (all_to_all(t, group, scatter_dim=1, gather_dim=2) for t in (query, key, value))
        batch, length = query.shape[0], query.shape[2]
        if base.startswith("flash"):
            mask = layout.key_valid.to(torch.int32) if layout.key_valid is not None else None
            kwargs["position_ids"] = layout.text_positions
        else:
            mask = layout.mask(batch, length, query.device)
            if base == "eager":
                mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                    ~mask, torch.finfo(query.dtype).min
                )
            kwargs.pop("position_ids", None)
        output, _ = forward(module, query, key, value, mask, **kwargs)
        # (B, L, heads / size, D) -> (B, L / size, heads, D): scatter the sequence back, gather the heads
        return all_to_all(output, group, scatter_dim=1, gather_dim=2), None

    return attention


def _register(base: str) -> str:
    """Register ``ulysses_<base>`` (attention and its mask function) in transformers' registries; its name."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import AttentionInterface

    name = _PREFIX + base
    AttentionInterface.register(name, _attention_for(base))
    # Outside a sequence-parallel forward the base attention runs and needs its own mask.
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


# ---------------------------------------------------------------------------------------------- the model


def language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack inside ``model`` (a causal LM, a VL model, a LoRA or value-head wrapper of either)."""
    for module in model.modules():
        if type(module).__name__ in SUPPORTED_LANGUAGE_MODELS:
            return module
    raise ValueError(
        f"sequence parallelism is built for the {', '.join(SUPPORTED_LANGUAGE_MODELS.values())} language models; "
        f"{type(model).__name__} holds none of them"
    )


def _pad_positions(positions: torch.Tensor, pad: int) -> torch.Tensor:
    """Extend position ids (any leading axes, sequence last) by ``pad`` tokens numbered from 0: a segment of
    their own in a packed batch."""
    if not pad:
        return positions
    extra = torch.arange(pad, device=positions.device, dtype=positions.dtype)
    return torch.cat([positions, extra.expand(*positions.shape[:-1], pad)], dim=-1)


class SequenceParallel:
    """The sequence-parallel group of this rank, and the hooks that run a model's language model over it.

    Ranks ``[g * size, (g + 1) * size)`` form group ``g``; every rank must build it (``dist.new_group`` is
    collective). The worker hands each rank of a group the same rows (:meth:`gather_rows`), runs its forwards
    inside :meth:`active`, and returns this rank's share of the results (:meth:`own_rows`).

    Example (every rank of a 2-rank gloo job)::

        sp = SequenceParallel(2, "worker.actor.ulysses_size")
        sp.install(model)
        rows = sp.gather_rows(my_rows)
        with sp.active():
            logits = model(input_ids=rows.batch["input_ids"], ...).logits  # the full sequence, on every rank
    """

    def __init__(self, size: int, key: str) -> None:
        world, rank = dist.get_world_size(), dist.get_rank()
        if size < 1 or world % size:
            raise ValueError(f"{key}={size} must divide the world size {world}")
        self.size, self.key = size, key
        groups = [dist.new_group(list(range(start, start + size))) for start in range(0, world, size)]
        self.group = groups[rank // size]
        self.rank = rank % size
        self._active = False
        self._rows: list[int] = []

    # ------------------------------------------------------------------ rows

    def gather_rows(self, data: DataProto) -> DataProto:
        """Every rank's rows of this group, in rank order: the rows the group works on together."""
        parts: list[Any] = [None] * self.size
        dist.all_gather_object(parts, data, group=self.group)
        self._rows = [len(part) for part in parts]
        return DataProto.concat(parts)

    def own_rows(self, data: DataProto) -> DataProto:
        """This rank's rows of a result computed on :meth:`gather_rows`'s rows (row for row)."""
        if sum(self._rows) != len(data):
            raise ValueError(f"expected one result row per gathered row ({sum(self._rows)}), got {len(data)}")
        start = sum(self._rows[: self.rank])
        return data[start : start + self._rows[self.rank]]

    def run(self, compute: Callable[[DataProto], Any], data: DataProto) -> Any:
        """``compute`` on the group's rows with sequence parallelism on; a DataProto result with one row per
        row is cut back to this rank's rows (a metrics-only result is returned whole)."""
        rows = self.gather_rows(data)
        with self.active():
            out = compute(rows)
        if isinstance(out, DataProto) and len(out) == len(rows) and len(rows):
            return self.own_rows(out)
        return out

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Forwards of an installed model inside this block run sequence-parallel (generation outside it does
        not)."""
        self._active = True
        try:
            yield
        finally:
            self._active = False

    # ------------------------------------------------------------------ model

    def install(self, model: torch.nn.Module) -> None:
        """Register the attention function and the hooks on ``model``'s language model (before FSDP wraps it)."""
        decoder = language_model(model)
        problem = config_problem(_model_config(model, decoder), self.size, self.key)
        if problem:
            raise ValueError(problem)
        config = decoder.config
        base = config._attn_implementation or "eager"
        base = base.removeprefix(_PREFIX)
        if base not in _BASE_ATTENTIONS:
            raise ValueError(
                f"{self.key}={self.size}: sequence parallelism runs over {', '.join(_BASE_ATTENTIONS)} attention, "
                f"not {base!r}"
            )
        config._attn_implementation = _register(base)
        decoder.register_forward_pre_hook(self._split, with_kwargs=True)
        decoder.register_forward_hook(self._gather, with_kwargs=True)

    def _split(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict] | None:
        if not self._active:
            return None
        if args:
            raise TypeError("a sequence-parallel language model takes keyword arguments only")
        if kwargs.get("past_key_values") is not None:
            raise ValueError("a sequence-parallel forward cannot use a key/value cache")
        embeds, ids = kwargs.get("inputs_embeds"), kwargs.get("input_ids")
        tokens = embeds if embeds is not None else ids
        batch, length = tokens.shape[:2]
        pad = -length % self.size
        padded = length + pad
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = torch.arange(length, device=tokens.device).expand(batch, length)
        positions = _pad_positions(positions, pad)
        mask = kwargs.get("attention_mask")
        key_valid = segments = text = None
        if mask is not None:
            key_valid = F.pad(mask.bool(), (0, pad), value=False)
        else:
            if positions.dim() == 2:
                text = positions
            elif positions.shape[0] == 4:  # packed VL batch: text positions first, then M-RoPE's 3 rows
                text = positions[0]
            if text is not None:
                segments = (text == 0).long().cumsum(dim=-1)
        chunk = padded // self.size
        lo, hi = self.rank * chunk, (self.rank + 1) * chunk
        kwargs = dict(kwargs)
        kwargs["position_ids"] = positions[..., lo:hi]
        kwargs["attention_mask"] = None
        if embeds is not None:
            kwargs["inputs_embeds"] = F.pad(embeds, (0, 0, 0, pad))[:, lo:hi]
        else:
            kwargs["input_ids"] = F.pad(ids, (0, pad))[:, lo:hi]
        kwargs[_LAYOUT_KEY] = _Layout(self.group, self.size, key_valid, segments, text)
        self._length = length
        return args, kwargs

    def _gather(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        if _LAYOUT_KEY not in kwargs:
            return None
        output.last_hidden_state = gather_sequence(output.last_hidden_state, self.group)[:, : self._length]
        return output


def _model_config(model: torch.nn.Module, decoder: torch.nn.Module) -> Any:
    """The model's top config (the one with ``model_type`` qwen2 / qwen2_vl / qwen2_5_vl)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "model_type", None) in _SUPPORTED_MODEL_TYPES:
            return config
    return decoder.config
