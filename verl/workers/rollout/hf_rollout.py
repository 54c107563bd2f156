"""Rollout with transformers' ``generate``: always available, and the engine on GPUs without vLLM.

It can share the actor's module (no weight sync needed: ``load_weights`` is then a no-op) or own a model
loaded from a path. With several FSDP ranks every rank must run the same number of forwards, so
``generate`` runs with ``synced_gpus`` whenever a process group spans more than one rank.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from ...protocol import DataProto
from .base import BaseRollout, build_output, placeholder_token_ids, sampling_settings


class HFRollout(BaseRollout):
    def __init__(self, config: Any, module: torch.nn.Module, tokenizer: Any, processor: Any | None) -> None:
        self.config, self.module, self.tokenizer, self.processor = config, module, tokenizer, processor
        self.shares_actor = True

    @classmethod
    def from_path(cls, config: Any, model_path: str, tokenizer: Any, processor: Any | None) -> HFRollout:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

        hf_config = AutoConfig.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
        cls_ = AutoModelForImageTextToText if hasattr(hf_config, "vision_config") else AutoModelForCausalLM
        model = cls_.from_pretrained(model_path, dtype=torch.float32, trust_remote_code=config.trust_remote_code)
        rollout = cls(config, model, tokenizer, processor)
        rollout.shares_actor = False
        return rollout

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        if self.shares_actor:
            for _ in named_tensors:  # keep collectives in step on every rank, then drop
                pass
            return
        state = dict(named_tensors)
        missing, unexpected = self.module.load_state_dict(state, strict=False)
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied embeddings
        if real_missing or unexpected:
            raise ValueError(f"weight sync mismatch: missing {real_missing[:5]}, unexpected {unexpected[:5]}")

    def _eos_ids(self) -> set[int]:
        eos = getattr(getattr(self.module, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos])

    @torch.no_grad()
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        s = sampling_settings(self.config, prompts.meta_info)
        batch = prompts.batch
        kwargs: dict[str, Any] = {}
        mm_rows = prompts.non_tensor_batch.get("multi_modal_data")
        if mm_rows is not None and any(r for r in mm_rows):
            images = [img for row in mm_rows if row for img in row.get("images", [])]
            image_inputs = self.processor.image_processor(images=images, return_tensors="pt")
            kwargs["pixel_values"] = image_inputs["pixel_values"]
            kwargs["image_grid_thw"] = image_inputs["image_grid_thw"]
        device = next(self.module.parameters()).device
        input_ids = batch["input_ids"].to(device)
        attention_mask = batch["attention_mask"].to(device)
        synced = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        was_training = self.module.training
        self.module.eval()
        eos = sorted(self._eos_ids())
        output = self.module.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=s.max_tokens,
            do_sample=not s.greedy,
            temperature=s.temperature if not s.greedy else None,
            top_p=s.top_p if not s.greedy else None,
            top_k=(s.top_k if s.top_k > 0 else None) if not s.greedy else None,
            num_return_sequences=s.n,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id,
            synced_gpus=synced,
            use_cache=True,
            **{k: v.to(device) for k, v in kwargs.items()},
        )
        if was_training:
            self.module.train()
        generated = output[:, input_ids.shape[1] :].cpu().tolist()
        return build_output(
            prompts,
            generated,
            s.n,
            s.max_tokens,
            self.tokenizer.pad_token_id,
            set(eos),
            forbidden_token_ids=placeholder_token_ids(self.tokenizer),
        )
