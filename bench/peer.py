"""Benchmark 1 (against the peer) and 2 (self-reward overhead): one GRPO step, ours vs TRL's GRPOTrainer,
and ours with the self-reward hop on vs off.

Both sides train the same warm-started tiny Qwen2.5-VL in fp32 on the CPU, on the same rows in the same order
(our loader's seeded order, checked against our run's logged ``dataset_index``), with the same number of
prompts and completions per step, response length, sampling, learning rate, KL coefficient and reward
(accuracy + format, no self-reward). Each side's step time is the median over the steps after warm-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import REPO, STEP, bench_env, median, our_overrides, run_ours

NO_HOP = [
    "algorithm.self_reward.enable=false",
    "worker.reward.reward_function=verl.rewards.functions:seethink_reward",
]
HOP = ["algorithm.self_reward.enable=true", "worker.reward.reward_function=verl.rewards.functions:self_reward"]


def loader_order(train_file: Path, steps: int, batch: int, seed: int) -> list[int]:
    """The row order our trainer's loader serves in epoch 0 (``ResumableDataLoader`` with shuffling)."""
    import torch

    from verl.utils.dataset import load_rows

    rows = len(load_rows(str(train_file)))
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[: steps * batch]


def run_trl(model: Path, train_file: Path, steps: int, work: Path) -> dict[str, Any]:
    spec = {
        **STEP,
        "model_path": str(model),
        "train_file": str(train_file),
        "format_prompt": str(REPO / "train_examples" / "format_prompt" / "seethink.jinja"),
        "reward_function": "verl.rewards.functions:seethink_reward",
        "reward_kwargs": {"format_weight": 0.1},
        "steps": steps,
        "row_order": loader_order(train_file, steps, STEP["prompts_per_step"], STEP["seed"]),
        "output_dir": str(work / "trl_out"),
    }
    spec_path, out_path = work / "trl_spec.json", work / "trl_result.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.trl_grpo", "--spec", str(spec_path), "--out", str(out_path)],
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"TRL's GRPOTrainer failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return {**json.loads(out_path.read_text()), "row_order": spec["row_order"]}


def _trl_summary(trl: dict[str, Any], warmup: int) -> dict[str, Any]:
    steps = trl["steps"][warmup:]
    return {
        "version": trl["trl_version"],
        "steps": len(steps),
        "step": median([s["step"] for s in steps]),
        "timing": {key: median([s[key] for s in steps]) for key in steps[0]},
        "steps_all": [s["step"] for s in trl["steps"]],
        "reward": median(trl["rewards"][warmup:]),
        "response_length": median([x for x in trl["completion_length"][warmup:] if x is not None]),
        "row_order": trl["row_order"],
    }


def run(model: Path, train_file: Path, steps: int, warmup: int, rounds: int = 2) -> dict[str, Any]:
    """Ours without the hop (also with the old log-probs recomputed, as before they were reused on-policy),
    ours with the hop, and TRL: each ``warmup + steps`` steps in its own process, all of them once per round,
    interleaved; each variant keeps its fastest round (the one least disturbed by anything else on the
    machine), and every round's median is kept in ``rounds``."""
    total = warmup + steps
    variants = {
        "ours": NO_HOP,
        "ours_recompute": [*NO_HOP, "worker.actor.recompute_on_policy_log_probs=true"],
        "ours_hop": HOP,
    }
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in [*variants, "trl"]}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        for round_ in range(rounds):
            work = Path(tmp) / f"round{round_}"
            work.mkdir()
            for name, extra in variants.items():
                run_dir = work / name
                seen[name].append(run_ours(our_overrides(model, train_file, total, run_dir) + extra, run_dir, warmup))
            seen["trl"].append(_trl_summary(run_trl(model, train_file, total, work), warmup))
    results: dict[str, Any] = {name: min(runs, key=lambda r: r["step"]) for name, runs in seen.items()}
    results["rounds"] = {name: [r["step"] for r in runs] for name, runs in seen.items()}
    # Same rows on both sides: the first row of our last step is the one TRL was given there.
    first = results["ours"]["metrics_last"]["data/first_dataset_index"]
    expected = results["trl"]["row_order"][(total - 1) * STEP["prompts_per_step"]]
    results["same_rows"] = first == expected
    results["ratio_vs_trl"] = results["ours"]["step"] / results["trl"]["step"]
    results["hop_overhead"] = results["ours_hop"]["step"] / results["ours"]["step"]
    return results
