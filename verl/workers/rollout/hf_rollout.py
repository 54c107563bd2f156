"""Rollout with transformers' ``generate``: always available, and the engine on machines without vLLM.

It can share the actor's module (no weight sync needed: ``load_weights`` then only drains the iterator) or own
a model loaded from a path. With several FSDP ranks every rank must run the same number of forwards, so
``generate`` runs with ``synced_gpus`` whenever a process group spans more than one rank.

Sampling is pinned explicitly on every call: ``generate`` fills whatever is left unset from the checkpoint's
``generation_config.json``, and released Qwen2.5-VL checkpoints ship ``top_k=1, temperature=0.1,
repetition_penalty=1.05`` there, which would silently turn GRPO's group sampling into near-greedy decoding.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from ...models.family import family_of_processor, mm_token_type_ids
from ...protocol import DataProto
from .base import BaseRollout, SamplingSettings, build_output, eos_token_ids, placeholder_token_ids, sampling_settings

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class HFRollout(BaseRollout):
    """transformers ``generate`` behind :class:`BaseRollout`.

    Args:
        config: the rollout config (``worker.rollout``): default sampling parameters and lengths.
        module: the model to generate with (the actor's module, possibly FSDP-wrapped, or one of its own).
        tokenizer: the policy's tokenizer (pad id, EOS and the image placeholder ids).
        processor: the multimodal processor (turns each row's images into ``pixel_values``/``image_grid_thw``);
            ``None`` for a text-only model.
        shares_actor: ``True`` when ``module`` is the actor's, so there are no weights to load.
    """

    def __init__(
        self, config: Any, module: torch.nn.Module, tokenizer: Any, processor: Any | None, shares_actor: bool = True
    ) -> None:
        self.config, self.module, self.tokenizer, self.processor = config, module, tokenizer, processor
        self.shares_actor = shares_actor

    @classmethod
    def from_path(cls, config: Any, model_path: str, tokenizer: Any, processor: Any | None) -> HFRollout:
        """An engine with its own copy of the model, in ``config.dtype``, on the GPU when there is one."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

        hf_config = AutoConfig.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
        model_cls = AutoModelForImageTextToText if hasattr(hf_config, "vision_config") else AutoModelForCausalLM
        model = model_cls.from_pretrained(
            model_path, dtype=_DTYPES[config.dtype], trust_remote_code=config.trust_remote_code
        )
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        return cls(config, model, tokenizer, processor, shares_actor=False)

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        if self.shares_actor:
            for _ in named_tensors:  # keep the gathering collectives in step on every rank, then drop
                pass
            return
        missing, unexpected = self.module.load_state_dict(dict(named_tensors), strict=False)
        config = self.module.config
        tied = getattr(config, "tie_word_embeddings", False) or getattr(
            config.get_text_config(), "tie_word_embeddings", False
        )
        real_missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
        if real_missing or unexpected:
            raise ValueError(f"weight sync mismatch: missing {real_missing[:5]}, unexpected {unexpected[:5]}")

    def _eos_ids(self) -> set[int]:
        return eos_token_ids(self.tokenizer, getattr(self.module, "generation_config", None))

    def _image_inputs(self, prompts: DataProto, device: torch.device) -> dict[str, torch.Tensor]:
        """``pixel_values``/``image_grid_thw`` for the rows that have images and ``pixel_values_videos``/
        ``video_grid_thw`` for those with videos, in row order (as the dataset encodes them); nothing for a
        text-only batch."""
        rows = [row for row in (prompts.non_tensor_batch.get("multi_modal_data", [])) if row]
        images = [img for row in rows for img in row.get("images") or []]
        videos = [video for row in rows for video in row.get("videos") or []]
        if not images and not videos:
            return {}
        if self.processor is None:
            raise ValueError("prompts carry images or videos but the rollout has no processor (a text-only model?)")
        inputs: dict[str, torch.Tensor] = {}
        if images:
            encoded = self.processor.image_processor(images=images, return_tensors="pt")
            inputs.update({k: encoded[k].to(device) for k in ("pixel_values", "image_grid_thw")})
        if videos:  # already sampled and resized by the dataset: only patched here
            encoded = self.processor.video_processor(
                videos=[torch.from_numpy(frames).permute(0, 3, 1, 2) for frames, _ in videos],
                do_sample_frames=False,
                do_resize=False,
                return_tensors="pt",
            )
            inputs.update({k: encoded[k].to(device) for k in ("pixel_values_videos", "video_grid_thw")})
            if not family_of_processor(self.processor).video_frames_as_blocks:  # Qwen2.5-VL spaces frames in time
                temporal = self.processor.video_processor.temporal_patch_size
                seconds = [temporal / meta["sample_fps"] for _, meta in videos]
                inputs["second_per_grid_ts"] = torch.tensor(seconds, device=device)
        # Without the token types, generate() would give the image tokens text positions (not M-RoPE).
        inputs["mm_token_type_ids"] = mm_token_type_ids(self.tokenizer, prompts.batch["input_ids"]).to(device)
        return inputs

    def _sampling_kwargs(self, s: SamplingSettings) -> dict[str, Any]:
        """Every knob that changes the distribution, set (see the module docstring)."""
        kwargs: dict[str, Any] = {"num_beams": 1, "repetition_penalty": 1.0, "do_sample": not s.greedy}
        if not s.greedy:
            kwargs.update(
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k if s.top_k > 0 else 0,  # 0 disables top-k in transformers
                min_p=0.0,
                typical_p=1.0,
            )
        return kwargs

    @torch.no_grad()
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        if prompts.meta_info.get("stop"):
            raise NotImplementedError(
                "the hf rollout has no stop strings (a split rollout needs worker.rollout.name=vllm)"
            )
        s = sampling_settings(self.config, prompts.meta_info)
        device = next(self.module.parameters()).device
        input_ids = prompts.batch["input_ids"].to(device)
        attention_mask = prompts.batch["attention_mask"].to(device)
        eos = sorted(self._eos_ids())
        # Greedy copies are identical: generate one and repeat it (generate refuses n > 1 without sampling).
        per_prompt = 1 if s.greedy else s.n
        extra: dict[str, Any] = {}
        if self.config.ignore_eos:  # run to max_tokens, as vLLM's ignore_eos does
            extra["min_new_tokens"] = s.max_tokens
        synced = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        was_training = self.module.training
        self.module.eval()
        start = time.perf_counter()
        try:
            output = self.module.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=s.max_tokens,
                num_return_sequences=per_prompt,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
                synced_gpus=synced,
                use_cache=True,
                **self._sampling_kwargs(s),
                **extra,
                **self._image_inputs(prompts, device),
            )
        finally:
            if was_training:
                self.module.train()
        seconds = time.perf_counter() - start
        generated = output[:, input_ids.shape[1] :].cpu()
        if per_prompt != s.n:
            generated = generated.repeat_interleave(s.n, dim=0)
        out = build_output(
            prompts,
            generated.tolist(),
            s.n,
            s.max_tokens,
            self.tokenizer.pad_token_id,
            set() if self.config.ignore_eos else set(eos),
            forbidden_token_ids=placeholder_token_ids(self.tokenizer),
        )
        out.meta_info["timing/generate"] = seconds
        return out
