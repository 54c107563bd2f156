"""Benchmark 7: the peer comparison (ours vs TRL's ``GRPOTrainer``) at a second, rollout-heavy shape.

Benchmark 1 runs a 0.7 M-parameter model whose responses stop after ~38 tokens, where fixed per-call costs
dominate a step. Here both sides train a random Qwen2.5-VL of ~43 M parameters with Qwen's real vocabulary
(151,936 tokens, tied embeddings) and responses of 256 to 512 tokens: a random model at that vocabulary almost
never samples an end token, so every response runs (nearly) to the full length and the rollout is hundreds of
decode steps. Everything else is benchmark 1's protocol: the same rows in the same order, the same prompts and
completions per step, sampling, learning rate, KL coefficient and reward (accuracy + format) on both sides,
fp32 training, each side in a fresh process, ours and TRL interleaved in one run.

The model reuses the tiny assets' vision tower, processor and tokenizer; the tokenizer's BPE vocabulary is
extended with synthetic tokens (``Ġsyn<k>``) up to the real vocabulary size, so that every id a random model
samples decodes to text on both sides.

``python -m bench peer-large`` runs the default shape; ``python -m bench.peer_large --lengths 256`` runs a
subset and rewrites the same BENCHMARKS.md section after each response length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import REPO, STEP, our_overrides, run_ours
from .peer import NO_HOP, _trl_summary, run_trl

PEER_TARGET = 0.5
NAMES = {"gen": "rollout", "reward": "reward", "log_probs": "log-probs", "update": "update", "other": "other"}

VOCAB = 151_936
# Text model: 4 layers of width 256 (4 heads of 64, 2 KV heads); with the tied 151,936 × 256 embedding that is
# ~43 M parameters, ~90% of them in the embedding / output layer, as in a small real Qwen.
TEXT = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
}
# Rows per step kept small so that a 2-core machine finishes a step in tens of seconds: 2 prompts × n=4.
LARGE_STEP = {"prompts_per_step": 2, "n": 4}
LENGTHS = (256, 512)
SYNTHETIC_PREFIX = "Ġsyn"
# Files of the tiny model folder that the larger model keeps as they are (the weights and config are new).
KEPT_FILES = ("chat_template.jinja", "processor_config.json", "tokenizer_config.json")


def extend_tokenizer(tokenizer_json: dict[str, Any], vocab: int) -> tuple[dict[str, Any], dict[int, int]]:
    """A copy of a BPE ``tokenizer.json`` filled with synthetic tokens up to ``vocab`` ids, and the map of
    the special tokens' old ids to their new ones.

    The synthetic tokens take the ids right after the BPE vocabulary and the special (added) tokens move to the
    last ids, as in Qwen's real vocabulary; transformers assigns added tokens the ids after the vocabulary's
    entries, so the vocabulary must stay contiguous. The new tokens are plain vocabulary entries (no merges
    produce them): encoding text is unchanged and only decoding sampled ids uses them."""
    out = json.loads(json.dumps(tokenizer_json))
    table = out["model"]["vocab"]
    added = sorted(out.get("added_tokens", []), key=lambda t: t["id"])
    if sorted(table.values()) != list(range(len(table))):
        raise ValueError("the BPE vocabulary's ids are not contiguous from 0")
    if [t["id"] for t in added] != list(range(len(table), len(table) + len(added))):
        raise ValueError("the added tokens do not follow the BPE vocabulary")
    last = vocab - len(added)
    if last < len(table):
        raise ValueError(f"the tokenizer already uses {len(table) + len(added)} ids, more than {vocab}")
    for k, token_id in enumerate(range(len(table), last)):
        token = f"{SYNTHETIC_PREFIX}{k}"
        if token in table:
            raise ValueError(f"synthetic token {token!r} is already in the vocabulary")
        table[token] = token_id
    moved = {t["id"]: last + i for i, t in enumerate(added)}
    for t in added:
        t["id"] = moved[t["id"]]
    return out, moved


def _move_ids(config: dict[str, Any], moved: dict[int, int]) -> None:
    """Rewrite the special-token ids of a model or generation config (``*token_id`` keys, nested configs)."""
    for key, value in config.items():
        if isinstance(value, dict):
            _move_ids(value, moved)
        elif key.endswith("token_id") and isinstance(value, int):
            config[key] = moved.get(value, value)
        elif key.endswith("token_id") and isinstance(value, list):
            config[key] = [moved.get(v, v) for v in value]


def build_model(tiny_model: Path, out: Path, vocab: int = VOCAB, seed: int = 0) -> Path:
    """Write the larger random Qwen2.5-VL into ``out`` (once; reused when its manifest matches)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    manifest_path = out / "PEER_LARGE.json"
    wanted = {"vocab": vocab, "seed": seed, "text": TEXT, "tiny_model": str(tiny_model.resolve())}
    if manifest_path.is_file():
        found = json.loads(manifest_path.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in KEPT_FILES:
        shutil.copy(tiny_model / name, tmp / name)
    tokenizer, moved = extend_tokenizer(json.loads((tiny_model / "tokenizer.json").read_text()), vocab)
    (tmp / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    generation = json.loads((tiny_model / "generation_config.json").read_text())
    _move_ids(generation, moved)

    config = json.loads((tiny_model / "config.json").read_text())
    _move_ids(config, moved)
    config["text_config"].update(TEXT, vocab_size=vocab)
    config["text_config"]["layer_types"] = ["full_attention"] * TEXT["num_hidden_layers"]
    config["vision_config"]["out_hidden_size"] = TEXT["hidden_size"]
    for key in ("architectures", "transformers_version", "dtype", "model_type"):
        config.pop(key, None)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config)).to(torch.float32)
    model.save_pretrained(tmp)
    (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    parameters = sum(p.numel() for p in model.parameters())
    (tmp / "PEER_LARGE.json").write_text(json.dumps({**wanted, "parameters": parameters}, indent=2) + "\n")
    tmp.rename(out)
    return out


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _times(x: float) -> str:
    return "–" if x != x else f"{x:.2f}×"


def _load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


def run_length(model: Path, train_file: Path, length: int, steps: int, warmup: int, rounds: int = 1) -> dict[str, Any]:
    """One response length: ours (no self-reward hop) and TRL, ``warmup + steps`` steps each in a fresh
    process, interleaved (TRL first in odd rounds); each side keeps its fastest round."""
    step = {**LARGE_STEP, "max_response_length": length}
    total = warmup + steps
    seen: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
    loads: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-peer-large-{length}-") as tmp:
        for round_ in range(rounds):
            work = Path(tmp) / f"round{round_}"
            work.mkdir()
            order = ("ours", "trl") if round_ % 2 == 0 else ("trl", "ours")
            for side in order:
                loads.append(_load())
                print(f"    length {length}, round {round_}: {side} (load {loads[-1][0]:.1f})", file=sys.stderr)
                if side == "ours":
                    run_dir = work / "ours"
                    overrides = our_overrides(model, train_file, total, run_dir, **step) + NO_HOP
                    seen["ours"].append(run_ours(overrides, run_dir, warmup))
                else:
                    seen["trl"].append(_trl_summary(run_trl(model, train_file, total, work, step), warmup))
            loads.append(_load())
    result: dict[str, Any] = {name: min(runs, key=lambda r: r["step"]) for name, runs in seen.items()}
    result["rounds"] = {name: [r["step"] for r in runs] for name, runs in seen.items()}
    first = result["ours"]["metrics_last"]["data/first_dataset_index"]
    expected = result["trl"]["row_order"][(total - 1) * step["prompts_per_step"]]
    result.update(
        max_response_length=length,
        same_rows=first == expected,
        ratio_vs_trl=result["ours"]["step"] / result["trl"]["step"],
        load_average=loads,
    )
    return result


def run(
    assets: Path,
    steps: int = 2,
    warmup: int = 1,
    lengths: tuple[int, ...] = LENGTHS,
    rounds: int = 1,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the model (once) and measure every response length in ``lengths``; the cases of ``previous``
    at other lengths are kept, so that lengths can be measured in separate invocations."""
    from verl.tiny import generate

    tiny = generate(assets, seed=0)
    model = build_model(tiny / "qwen2_5_vl", assets / "peer_large_qwen2_5_vl")
    manifest = json.loads((model / "PEER_LARGE.json").read_text())
    cases = [c for c in (previous or {}).get("cases", []) if c["max_response_length"] not in lengths]
    for length in lengths:
        cases.append(run_length(model, tiny / "data" / "train.parquet", length, steps, warmup, rounds))
    cases.sort(key=lambda c: c["max_response_length"])
    return {
        "parameters": manifest["parameters"],
        "vocab": manifest["vocab"],
        "text": manifest["text"],
        "step": {**STEP, **LARGE_STEP},
        "cases": cases,
    }


def phases(side: str, res: dict[str, Any]) -> dict[str, float]:
    """A side's step split into the phases both trainers have: rollout, reward, log-probs (old + reference +
    advantages), update, and the rest of the step."""
    t = res["timing"]
    if side == "ours":
        split = {
            "gen": t.get("gen", 0.0),
            "reward": t.get("reward", 0.0),
            "log_probs": t.get("old", 0.0) + t.get("ref", 0.0) + t.get("adv", 0.0),
            "update": t.get("update_actor", 0.0),
        }
    else:
        split = {"gen": t["gen"], "reward": t["reward"], "log_probs": t["log_probs_and_adv"], "update": t["update"]}
    split["other"] = res["step"] - sum(split.values())
    return split


def _step_counts(case: dict[str, Any]) -> str:
    """How many steps the medians of a case are over ("2", or "2 (TRL 1)" should the sides differ)."""
    ours, trl = case["ours"]["steps"], case["trl"]["steps"]
    return str(ours) if ours == trl else f"{ours} (TRL {trl})"


def section(r: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: per response length, both sides' step split, rollout tokens/s and the
    per-phase ratios, then ours/TRL against the target and the phases that miss it."""
    s = r["step"]
    rows = s["prompts_per_step"] * s["n"]
    text = r["text"]
    first = r["cases"][0]
    counts = {_step_counts(c) for c in r["cases"]}
    lines = [
        f"A random Qwen2.5-VL of {r['parameters'] / 1e6:.1f} M parameters: text model of {text['num_hidden_layers']} "
        f"layers, width {text['hidden_size']}, Qwen's vocabulary ({r['vocab']:,} tokens, tied embeddings: "
        f"{r['vocab'] * text['hidden_size'] / r['parameters']:.0%} of the parameters), the tiny vision tower. "
        f"One GRPO step: {s['prompts_per_step']} prompts × n={s['n']}, responses up to the length below (a random "
        f"model at this vocabulary almost never ends early), fp32 training, lr {s['lr']}, KL {s['kl_coef']} to the "
        "reference, reward accuracy + format, no self-reward hop; TRL "
        f"{first['trl']['version']} `GRPOTrainer` on the same rows in the same order. "
        + (
            f"Median of {next(iter(counts))} steps after warm-up"
            if len(counts) == 1
            else "Median of the steps after warm-up (how many at each length: below)"
        )
        + ", each side in a fresh process, ours and TRL interleaved in one run per length. *rollout tokens/s* is "
        "the response tokens of a step over its rollout time.",
        "",
        "| response length | | step (s) | rollout | reward | log-probs + advantages | update | other "
        "| rollout tokens/s | mean response |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for case in r["cases"]:
        length = case["max_response_length"]
        split = {side: phases(side, case[side]) for side in ("ours", "trl")}
        for side, label in (("ours", "ours (vLLM-CPU rollout)"), ("trl", "TRL GRPOTrainer (HF generate)")):
            p, res = split[side], case[side]
            rate = rows * res["response_length"] / p["gen"] if p["gen"] > 0 else float("nan")
            lines.append(
                f"| {length} | {label} | {_fmt(res['step'])} | {_fmt(p['gen'])} | {_fmt(p['reward'])} "
                f"| {_fmt(p['log_probs'])} | {_fmt(p['update'])} | {_fmt(p['other'])} | {rate:.0f} "
                f"| {res['response_length']:.0f} |"
            )
        ratio = {
            k: split["ours"][k] / split["trl"][k] if split["trl"][k] > 1e-3 else float("nan") for k in split["ours"]
        }
        lines.append(
            f"| {length} | ours / TRL | {_times(case['ratio_vs_trl'])} | {_times(ratio['gen'])} "
            f"| {_times(ratio['reward'])} | {_times(ratio['log_probs'])} | {_times(ratio['update'])} "
            f"| {_times(ratio['other'])} | | |"
        )
        met = case["ratio_vs_trl"] <= PEER_TARGET
        slow = [f"{NAMES[k]} {_fmt(ratio[k])}×" for k in ("gen", "log_probs", "update") if ratio[k] > PEER_TARGET]
        engine, sync = (
            case["ours"]["timing"].get("gen/generate", 0.0),
            case["ours"]["timing"].get("gen/weight_sync", 0.0),
        )
        load = ", ".join(f"{one:.1f}" for one, _, _ in case["load_average"])
        verdicts.append(
            f"- **{length} tokens: ours / TRL = {_fmt(case['ratio_vs_trl'])}×** (target ≤ {PEER_TARGET}×: "
            f"{'met' if met else 'NOT met'}"
            + (f"; phases above {PEER_TARGET}× of TRL's: {', '.join(slow)}" if slow else "")
            + f"). Our rollout: the engine's generate call {_fmt(engine)} s "
            f"({rows * case['ours']['response_length'] / engine:.0f} tokens/s) + weight sync {_fmt(sync)} s. "
            f"Same rows: {'yes' if case['same_rows'] else 'NO'}. "
            + ("" if len(counts) == 1 else f"Steps per side: {_step_counts(case)} after warm-up. ")
            + "1-minute load average before each run and "
            f"at the end: {load} (2 cores; runs of every round: "
            + ", ".join(f"{name} {' / '.join(_fmt(x) for x in xs)} s" for name, xs in case["rounds"].items())
            + ")."
        )
    return "\n".join([*lines, "", *verdicts])


def main(argv: list[str] | None = None) -> None:
    from . import __main__ as bench_main

    parser = argparse.ArgumentParser(prog="python -m bench.peer_large", description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", default=str(REPO / "assets" / "tiny"), help="tiny assets folder (made if absent)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), help="response lengths")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up steps, not measured")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved runs of each side")
    args = parser.parse_args(argv)
    import time

    path = bench_main.RESULTS / "peer-large.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    bench_main.RESULTS.mkdir(exist_ok=True)
    for length in args.lengths:
        start = time.perf_counter()
        result = run(Path(args.assets), args.steps, args.warmup, (length,), args.rounds, previous)
        path.write_text(json.dumps(result, indent=2, default=str))
        bench_main.write({"peer-large": result}, {"peer-large": time.perf_counter() - start})
        previous = result
    print(f"wrote {bench_main.OUT}")


if __name__ == "__main__":
    main()
