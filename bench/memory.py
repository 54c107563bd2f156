"""Benchmark: peak memory of the actor's log-prob pass and of one update, at Qwen's real vocabulary size.

A tiny random Qwen2 language model (2 layers, hidden 64) with the real vocabulary (151,936 tokens, tied
embeddings) scores B rows of a 64-token prompt plus responses of R and R/2 tokens (alternating), in one
micro-batch: the vocabulary-sized tensors dominate, as they do at 7B with long responses. Two sweeps: R from 512
to 2,048 at B=2 (the log-prob pass and the update), and B from 2 to 16 at R=512 (the log-prob pass), so that
both factors of B x L x V are varied. Each case runs in a fresh Python process and reports its peak resident set
(``ru_maxrss``) minus the resident set just before the measured call, so what the call itself allocated at its
peak, whatever the interpreter and model take.

"before" is the log-prob computation this project used until the output layer ran on the response positions
only (full logits, the padding-free path scattered into a (B, L, V) grid, an fp32 log-softmax over (B, R, V)),
kept here as ``LegacyActor`` so it can still be measured; "after" is ``DataParallelActor`` as it is.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

VOCAB = 151_936
PROMPT = 64
ROWS = 2
RESPONSES = (512, 1024, 2048)
# The batch sweep: the log-prob pass at one response length, B rows in one micro-batch.
BATCH_ROWS = (2, 4, 8, 16)
BATCH_RESPONSE = 512
SWEEPS = ("length", "batch")
# "before" cases whose response-logit tensor (B x R x V fp32) is above this are not run: the old path keeps
# several copies of it, more than a shared machine should be asked for.
BEFORE_LIMIT_GB = 1.3


def response_logits_gb(rows: int, response: int, vocab: int = VOCAB) -> float:
    """Size of the response logits in fp32, B x R x V x 4 bytes: what the old path held several copies of."""
    return rows * response * vocab * 4 / 1e9


def _actor_config(padding_free: bool, rows: int = ROWS) -> SimpleNamespace:
    """The actor's config with every batch size at ``rows``: the whole batch is one micro-batch, so the
    measured peak is that of B rows at once."""
    return SimpleNamespace(
        micro_batch_size_per_device_for_experience=rows,
        micro_batch_size_per_device_for_update=rows,
        global_batch_size_per_device=rows,
        ppo_epochs=1,
        max_grad_norm=1.0,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        clip_ratio_dual=3.0,
        loss_type="default",
        tau_positive=1.0,
        tau_negative=1.05,
        loss_avg_mode="token-mean",
        use_kl_loss=True,
        disable_kl=False,
        kl_penalty="low_var_kl",
        kl_coef=1e-2,
        entropy_coeff=0.0,
        padding_free=padding_free,
        dynamic_batching=False,
        max_token_len_per_device=None,
        use_torch_compile=False,
    )


def tiny_model(vocab: int = VOCAB, seed: int = 0) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    return Qwen2ForCausalLM(config).float()


def make_batch(response: int, vocab: int = VOCAB, rows: int = ROWS, seed: int = 0) -> Any:
    """Left-padded prompts (the second one 16 tokens shorter) and right-padded responses of R and R/2 tokens,
    with the columns the update reads (old/ref log-probs, advantages)."""
    import torch

    from verl.protocol import DataProto

    generator = torch.Generator().manual_seed(seed)
    prompt_lengths = [PROMPT - 16 * (i % 2) for i in range(rows)]
    response_lengths = [response // (1 + i % 2) for i in range(rows)]
    prompt_mask = torch.tensor([[0] * (PROMPT - n) + [1] * n for n in prompt_lengths])
    response_mask = torch.tensor([[1] * n + [0] * (response - n) for n in response_lengths])
    prompts = torch.randint(0, vocab, (rows, PROMPT), generator=generator) * prompt_mask
    responses = torch.randint(0, vocab, (rows, response), generator=generator) * response_mask
    attention = torch.cat([prompt_mask, response_mask], dim=1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0) * attention
    zeros = torch.zeros(rows, response)
    return DataProto.from_dict(
        tensors={
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention,
            "position_ids": positions,
            "responses": responses,
            "response_mask": response_mask,
            "old_log_probs": zeros - 11.9,
            "ref_log_probs": zeros - 11.9,
            "advantages": torch.randn(rows, 1, generator=generator) * response_mask,
        }
    )


def legacy_actor_class() -> type:
    """The actor with the log-prob computation as it was before (full logits; the padding-free path through a
    zero-filled (B, L, V) grid; fp32 log-softmax over (B, R, V); entropy always with autograd)."""
    import torch
    import torch.nn.functional as F

    from verl.trainer import core_algos
    from verl.workers.actor.dp_actor import (
        DataParallelActor,
        _multimodal_kwargs,
        _scoring_temperature,
        packed_positions,
    )

    def gather(logits, responses, temperature, with_entropy):
        temperature = _scoring_temperature(temperature)
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(logits.device).view(-1, 1, 1)
        logits = logits.float() / temperature
        log_probs = torch.gather(F.log_softmax(logits, dim=-1), -1, responses.unsqueeze(-1)).squeeze(-1)
        return log_probs, (core_algos.entropy_from_logits(logits) if with_entropy else None)

    class LegacyActor(DataParallelActor):
        def _forward(self, micro, temperature, with_entropy, entropy_grad=False):
            batch = micro.batch
            if "temperature" in batch:
                temperature = batch["temperature"]
            input_ids, attention_mask, position_ids = batch["input_ids"], batch["attention_mask"], batch["position_ids"]
            responses = batch["responses"]
            response_length = responses.shape[-1]
            mm_kwargs = _multimodal_kwargs(micro.non_tensor_batch.get("multi_modal_inputs"))
            valid_columns = attention_mask.any(dim=0).nonzero().flatten()
            start, end = int(valid_columns[0]), int(valid_columns[-1]) + 1
            prompt_length = input_ids.shape[1] - response_length
            start = min(start, prompt_length - 1)
            kept = end - prompt_length
            ids, mask, pos = input_ids[:, start:end], attention_mask[:, start:end], position_ids[..., start:end]
            if pos.dim() == 3:
                pos = pos.transpose(0, 1)
            if self.config.padding_free:
                valid = mask.bool()
                logits = self.module(
                    input_ids=ids[valid].unsqueeze(0), position_ids=packed_positions(valid, pos), use_cache=False
                ).logits[0]
                full = logits.new_zeros(*ids.shape, logits.shape[-1])
                full[valid] = logits
                log_probs, entropy = gather(full[:, -kept - 1 : -1], responses[:, :kept], temperature, with_entropy)
            else:
                output = self.module(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=False,
                    logits_to_keep=kept + 1,
                    **mm_kwargs,
                )
                log_probs, entropy = gather(output.logits[:, :-1], responses[:, :kept], temperature, with_entropy)
            pad = response_length - kept
            if pad:
                log_probs = F.pad(log_probs, (0, pad))
                entropy = F.pad(entropy, (0, pad)) if entropy is not None else None
            return log_probs, entropy

    return LegacyActor


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """One case in this process: build the model and batch, then run the measured call once."""
    import torch

    from verl.workers.actor.dp_actor import DataParallelActor

    torch.set_num_threads(int(case.get("threads", 2)))
    vocab = int(case.get("vocab", VOCAB))
    rows = int(case.get("rows", ROWS))
    model = tiny_model(vocab)
    data = make_batch(case["response"], vocab, rows)
    actor_class = legacy_actor_class() if case["version"] == "before" else DataParallelActor
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3) if case["op"] == "update" else None
    actor = actor_class(_actor_config(case["path"] == "padding-free", rows), model, optimizer)
    gc.collect()
    rss_before = _rss_gb()
    start = time.perf_counter()
    if case["op"] == "log_probs":
        out = actor.compute_log_prob(data, with_entropy=True).batch["log_probs"]
        check = float(out.sum())
    else:
        metrics = actor.update_policy(data)
        check = float(metrics["actor/pg_loss"][0])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB
    return {**case, "rss_before_gb": rss_before, "peak_gb": peak, "added_gb": peak - rss_before, "seconds": seconds,
            "check": check}  # fmt: skip


def _case(rows: int, response: int, path: str, version: str, op: str) -> dict[str, Any]:
    case = {"rows": rows, "response": response, "path": path, "version": version, "op": op}
    if version == "before" and response_logits_gb(rows, response) > BEFORE_LIMIT_GB:
        case["skipped"] = f"response logits {response_logits_gb(rows, response):.1f} GB > limit"
    return case


def case_key(case: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a case: (call, B, R, path, version); results written before the batch sweep have no
    ``rows`` and were measured at ``ROWS``."""
    return (case["op"], case.get("rows", ROWS), case["response"], case["path"], case["version"])


def cases(
    responses: tuple[int, ...] = RESPONSES,
    batch_rows: tuple[int, ...] = BATCH_ROWS,
    sweeps: tuple[str, ...] = SWEEPS,
) -> list[dict[str, Any]]:
    """Every case of the chosen sweeps, each once: (R, call, path, version) at B=``ROWS``, then the log-prob
    pass at R=``BATCH_RESPONSE`` for each B; "before" only while its response logits fit the limit."""
    out: list[dict[str, Any]] = []
    points = []
    if "length" in sweeps:
        points += [(ROWS, response, op) for response in responses for op in ("log_probs", "update")]
    if "batch" in sweeps:
        points += [(rows, BATCH_RESPONSE, "log_probs") for rows in batch_rows]
    for rows, response, op in points:
        for path in ("padded", "padding-free"):
            for version in ("before", "after"):
                case = _case(rows, response, path, version, op)
                if all(case_key(case) != case_key(c) for c in out):
                    out.append(case)
    return out


def run(
    responses: tuple[int, ...] = RESPONSES,
    batch_rows: tuple[int, ...] = BATCH_ROWS,
    sweeps: tuple[str, ...] = SWEEPS,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Each case in a fresh subprocess (``python -m bench.memory --case JSON``), one at a time; the cases of
    ``previous`` that this run does not measure are kept, so that a sweep can be rerun alone."""
    from .common import REPO

    results = []
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    for case in cases(responses, batch_rows, sweeps):
        if "skipped" in case:
            results.append(case)
            continue
        proc = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--case", json.dumps(case)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            results.append({**case, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"    memory {results[-1]}", file=sys.stderr, flush=True)
    measured = {case_key(c) for c in results}
    kept = [{"rows": ROWS, **c} for c in (previous or {}).get("cases", []) if case_key(c) not in measured]
    runs = dict((previous or {}).get("sweeps", {}))
    wall = time.perf_counter() - start
    runs.update({sweep: {"date": time.strftime("%Y-%m-%d"), "wall_s": wall} for sweep in sweeps})
    return {
        "rows": ROWS,
        "prompt": PROMPT,
        "vocab": VOCAB,
        "batch_response": BATCH_RESPONSE,
        "before_limit_gb": BEFORE_LIMIT_GB,
        "sweeps": runs,
        "cases": kept + results,
    }


def main(argv: list[str] | None = None) -> None:
    """``--case JSON`` measures one case in this process (what ``run`` starts); ``--sweeps batch`` reruns one
    sweep, keeps the other's results and rewrites the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--case", help="one case as JSON (see cases()), measured in this process")
    parser.add_argument("--sweeps", nargs="+", choices=SWEEPS, default=list(SWEEPS), help="sweeps to rerun")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    from . import __main__ as bench_main

    path = bench_main.RESULTS / "memory.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    start = time.perf_counter()
    result = run(sweeps=tuple(args.sweeps), previous=previous)
    bench_main.RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    bench_main.write({"memory": result}, {"memory": time.perf_counter() - start})
    print(f"wrote {bench_main.OUT}")


if __name__ == "__main__":
    main()
