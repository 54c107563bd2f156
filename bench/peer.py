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


def run_trl(
    model: Path, train_file: Path, steps: int, work: Path, step: dict[str, Any] | None = None
) -> dict[str, Any]:
    """TRL's ``GRPOTrainer`` (``bench.trl_grpo`` in its own process) for ``steps`` steps of the shared shape
    ``STEP``, with ``step``'s keys overriding it."""
    s = {**STEP, **(step or {})}
    spec = {
        **s,
        "model_path": str(model),
        "train_file": str(train_file),
        "format_prompt": str(REPO / "train_examples" / "format_prompt" / "seethink.jinja"),
        "reward_function": "verl.rewards.functions:seethink_reward",
        "reward_kwargs": {"format_weight": 0.1},
        "steps": steps,
        "row_order": loader_order(train_file, steps, s["prompts_per_step"], s["seed"]),
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


# ---------------------------------------------------------------------------------------------- the hop's cost

HOP_SHAPES = (STEP["max_response_length"], 256)
"""response lengths at which the hop's variants are compared: the shared shape's (responses end where the model
ends them), and 256 tokens, run to the full length (``ignore_eos``: the tiny model stops at ~40 tokens)"""
HOP_VARIANTS = {
    "off": NO_HOP,
    "sequential": [*HOP, "algorithm.self_reward.pipelined=false"],
    "pipelined": [*HOP, "algorithm.self_reward.pipelined=true"],
}


def _hop_overrides(length: int) -> list[str]:
    return ["worker.rollout.ignore_eos=true"] if length != STEP["max_response_length"] else []


def run_hop(
    model: Path, train_file: Path, steps: int, warmup: int, rounds: int = 2, shapes: tuple[int, ...] = HOP_SHAPES
) -> dict[str, Any]:
    """The self-reward hop's cost: hop off, the sequential hop (a second generation after the rollout) and the
    pipelined one (blind answers inside the rollout), at each of :data:`HOP_SHAPES`; every variant in its own
    process, all of them once per round, interleaved, so that load on the machine hits all alike. Each variant
    keeps its fastest round; the ratios are to hop off at the same shape."""
    total = warmup + steps
    seen: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as tmp:
        for round_ in range(rounds):
            for length in shapes:
                for name, extra in HOP_VARIANTS.items():
                    key = f"{name}@{length}"
                    run_dir = Path(tmp) / f"round{round_}" / key
                    run_dir.mkdir(parents=True)
                    overrides = our_overrides(model, train_file, total, run_dir, max_response_length=length)
                    extra = extra + _hop_overrides(length)
                    seen.setdefault(key, []).append(run_ours(overrides + extra, run_dir, warmup))
    results: dict[str, Any] = {key: min(runs, key=lambda r: r["step"]) for key, runs in seen.items()}
    results["rounds"] = {key: [r["step"] for r in runs] for key, runs in seen.items()}
    results["ratios"] = {
        f"{name}@{length}": results[f"{name}@{length}"]["step"] / results[f"off@{length}"]["step"]
        for length in shapes
        for name in ("sequential", "pipelined")
    }
    return results


def hop_section(r: dict[str, Any], target: float = 1.05) -> str:
    """BENCHMARKS.md's table of :func:`run_hop`."""

    def f(x: float) -> str:
        return f"{x:.2f}"

    lines = [
        "### Self-reward hop: sequential and pipelined",
        "",
        "The same step with the hop off, the sequential hop (`algorithm.self_reward.pipelined=false`: the blind "
        "answers are a second generation after the rollout) and the pipelined one (default: the rollout stops at "
        "`</description>`, then one engine call finishes every response together with the blind answers), at "
        f"responses up to {HOP_SHAPES[0]} tokens and of {HOP_SHAPES[1]} tokens (`ignore_eos`; the blind answers "
        "then run to their `max_tokens` too). Every variant ran "
        f"{len(next(iter(r['rounds'].values())))} times, interleaved, on a machine shared with other work; the "
        "table keeps each one's fastest run (medians of every run: "
        + ", ".join(f"{k} {' / '.join(f(x) for x in xs)}" for k, xs in r["rounds"].items())
        + "). Engine seconds are the vLLM `generate` calls inside the rollout.",
        "",
        "| max response | hop | step (s) | / off | rollout | engine | hop (driver) | reward wait | update "
        "| mean response | first half: mean / max tokens |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, res in r.items():
        if "@" not in key:
            continue
        name, length = key.split("@")
        t, m = res["timing"], res["metrics_last"]
        hop = t.get("self_reward_hop", t.get("gen/self_reward_hop", 0.0))
        split = (
            f"{m['self_reward/split/first_half_tokens_mean']:.0f} / {m['self_reward/split/first_half_tokens_max']:.0f}"
            if "self_reward/split/first_half_tokens_max" in m
            else ""
        )
        ratio = r["ratios"].get(key, 1.0)
        lines.append(
            f"| {length} | {name} | {f(res['step'])} | {f(ratio)}× | {f(t.get('gen', 0))} | "
            f"{f(t.get('gen/generate', 0))} | {f(hop)} | {f(t.get('reward_wait', 0))} | "
            f"{f(t.get('update_actor', 0))} | {res['response_length']:.0f} | {split} |"
        )
    shapes = sorted({int(k.split("@")[1]) for k in r["ratios"]})
    verdicts = [
        f"{length} tokens: **{f(r['ratios'][f'pipelined@{length}'])}×** "
        f"(sequential {f(r['ratios'][f'sequential@{length}'])}×)"
        for length in shapes
    ]
    met = all(r["ratios"][f"pipelined@{length}"] <= target for length in shapes)
    lines += [
        "",
        f"Pipelined / off: {'; '.join(verdicts)} (target ≤ {target}×: {'met' if met else 'NOT met'}).",
    ]
    return "\n".join(lines)
