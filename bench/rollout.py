"""Benchmark 3: rollout engines. vLLM (the CPU build here) vs transformers ``generate`` (our ``hf`` engine),
response tokens per second for the same image prompts, across ``n`` and response length.

Both engines run to the full length (``ignore_eos``) so they produce the same number of tokens; the model is
the warm-started tiny Qwen2.5-VL, the prompts the first rows of the training set with their images, in the
layout the trainer sends. Each point is the best of ``repeats`` calls after one warm-up call (generation on a
quiet machine varies little; the best is the least disturbed).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .common import STEP


def _prompts(model: Path, train_file: Path, rows: int) -> tuple[Any, Any, Any]:
    from verl.protocol import DataProto, collate_fn
    from verl.utils.dataset import RLHFDataset
    from verl.utils.tokenizer import get_processor, get_tokenizer

    tokenizer, processor = get_tokenizer(str(model)), get_processor(str(model))
    dataset = RLHFDataset(
        str(train_file),
        tokenizer,
        processor,
        max_prompt_length=192,
        format_prompt=str(Path(__file__).resolve().parents[1] / "train_examples/format_prompt/seethink.jinja"),
        min_pixels=STEP["min_pixels"],
        max_pixels=STEP["max_pixels"],
    )
    batch = collate_fn([dataset[i] for i in range(rows)])
    keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data")
    return DataProto.from_single_dict({k: batch[k] for k in keys}), tokenizer, processor


def _engine(name: str, model: Path, tokenizer: Any, processor: Any, max_length: int) -> Any:
    from verl.workers.config import RolloutConfig
    from verl.workers.rollout import build_rollout

    config = RolloutConfig(
        name=name,
        n=1,
        temperature=STEP["temperature"],
        top_p=STEP["top_p"],
        dtype="bf16" if name == "vllm" else "fp32",  # as the tiny demo runs each
        ignore_eos=True,
        enforce_eager=True,
        limit_images=1,
        max_num_batched_tokens=8192,
        disable_tqdm=True,
    )
    config.prompt_length, config.response_length = 192, max_length
    return build_rollout(config, str(model), tokenizer, processor)


def run(
    model: Path,
    train_file: Path,
    prompts: int = 8,
    ns: tuple[int, ...] = (1, 4, 8),
    lengths: tuple[int, ...] = (32, 96, 256),
    repeats: int = 2,
) -> list[dict[str, Any]]:
    batch, tokenizer, processor = _prompts(model, train_file, prompts)
    points = []
    for engine_name in ("vllm", "hf"):
        engine = _engine(engine_name, model, tokenizer, processor, max(lengths))
        engine.generate_sequences(_with(batch, n=1, max_tokens=8))  # warm-up: kernels, caches, first image
        for n in ns:
            for length in lengths:
                best = float("inf")
                tokens = 0
                for _ in range(repeats):
                    start = time.perf_counter()
                    out = engine.generate_sequences(_with(batch, n=n, max_tokens=length))
                    best = min(best, time.perf_counter() - start)
                    tokens = int(out.batch["response_mask"].sum())
                points.append(
                    {"engine": engine_name, "n": n, "length": length, "tokens": tokens, "tokens_per_s": tokens / best}
                )
        del engine
    return points


def _with(batch: Any, **meta: Any) -> Any:
    from verl.protocol import DataProto

    out = DataProto.from_dict(tensors=dict(batch.batch.items()), non_tensors=dict(batch.non_tensor_batch))
    out.meta_info.update(meta)
    return out
