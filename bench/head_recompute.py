"""Benchmark: what the update pays for recomputing the output layer in its backward, at benchmark 8's shape.

The actor scores response tokens a chunk at a time and checkpoints each chunk, so the (tokens, vocabulary)
logits are recomputed in the backward instead of kept (the flat memory of benchmark 6). With Qwen's vocabulary
the output layer is most of a small model's arithmetic, so that recompute is a visible share of the update.
This times ``DataParallelActor.update_policy`` on benchmark 8's text model (4 layers, width 256, vocabulary
151,936, tied embeddings; 8 rows of a 96-token prompt and a full-length response, fp32, AdamW, one
micro-batch) as it is and with the chunks' checkpoint replaced by a direct call (logits kept for the backward),
alternating the two in one process so that both see the same load.

``python -m bench.head_recompute --length 512 --rounds 4`` prints the times and keeps them, by length, in
``bench/results/head-recompute.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any
from unittest import mock

ROWS = 8
PROMPT = 96


def _batch(length: int, vocab: int, seed: int = 0) -> Any:
    import torch

    from verl.protocol import DataProto

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (ROWS, PROMPT + length), generator=generator)
    zeros = torch.zeros(ROWS, length)
    return DataProto.from_dict(
        tensors={
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "position_ids": torch.arange(PROMPT + length).expand(ROWS, -1).clone(),
            "responses": ids[:, PROMPT:],
            "response_mask": torch.ones(ROWS, length, dtype=torch.long),
            "old_log_probs": zeros - 11.9,
            "ref_log_probs": zeros - 11.9,
            "advantages": torch.randn(ROWS, 1, generator=generator).expand(ROWS, length).clone(),
        }
    )


def run(length: int = 512, rounds: int = 4, threads: int = 2, vocab: int | None = None) -> dict[str, Any]:
    """Seconds of one ``update_policy`` with and without the recompute, ``rounds`` times each after one
    warm-up update, alternating which goes first. ``vocab`` (default Qwen's) only shrinks the model for tests."""
    import torch
    import torch.utils.checkpoint
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from verl.workers.actor.dp_actor import DataParallelActor

    from .memory import _actor_config
    from .peer_large import TEXT, VOCAB

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocab = vocab or VOCAB
    config = Qwen2Config(vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=True, **TEXT)
    config._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(config).float()
    actor = DataParallelActor(
        _actor_config(padding_free=False, rows=ROWS), model, torch.optim.AdamW(model.parameters(), lr=1e-4)
    )
    data = _batch(length, vocab)

    def direct(function: Any, *args: Any, **_: Any) -> Any:
        return function(*args)

    actor.update_policy(data)  # warm-up, not timed: the first update allocates what the others reuse
    seconds: dict[str, list[float]] = {"recompute": [], "kept": []}
    for round_ in range(rounds):
        for variant in ("recompute", "kept") if round_ % 2 else ("kept", "recompute"):
            patch = mock.patch.object(torch.utils.checkpoint, "checkpoint", direct) if variant == "kept" else None
            start = time.perf_counter()
            if patch:
                with patch:
                    actor.update_policy(data)
            else:
                actor.update_policy(data)
            seconds[variant].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    return {"length": length, "rows": ROWS, "prompt": PROMPT, "seconds": seconds, "median": medians,
            "recompute_over_kept": medians["recompute"] / medians["kept"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from . import __main__ as bench_main

    parser = argparse.ArgumentParser(prog="python -m bench.head_recompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=512, help="response tokens per row")
    parser.add_argument("--rounds", type=int, default=4, help="updates of each variant, alternated")
    args = parser.parse_args(argv)
    result = run(args.length, args.rounds)
    path = bench_main.RESULTS / "head-recompute.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    bench_main.RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps({**kept, str(args.length): result}, indent=2, sort_keys=True))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
