"""``python -m bench [peer] [rollout] [scaling] [gpu] [memory] [paper] [peer-large]``: run the benchmarks
and rewrite BENCHMARKS.md.

With no names it runs the CPU ones (peer + self-reward overhead, rollout engines, scaling); ``make bench``
installs TRL into ``.bench-deps`` first. Each section of BENCHMARKS.md is rewritten only when its benchmark
ran, so ``python -m bench rollout`` leaves the other tables as they were.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from .common import REPO, STEP, machine, tiny_assets
from .peer_large import section as peer_large_section

OUT = REPO / "BENCHMARKS.md"
RESULTS = REPO / "bench" / "results"
CPU_BENCHES = ("peer", "rollout", "scaling", "memory")
PEER_TARGET, HOP_TARGET, MFU_TARGET = 0.5, 1.10, 0.40
NOTES = "## Reading the numbers"


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def peer_section(r: dict[str, Any]) -> str:
    ours, hop, trl = r["ours"], r["ours_hop"], r["trl"]
    ratio, overhead = r["ratio_vs_trl"], r["hop_overhead"]
    lines = [
        f"One GRPO step: {STEP['prompts_per_step']} prompts × n={STEP['n']}, responses up to "
        f"{STEP['max_response_length']} tokens, fp32 training, lr {STEP['lr']}, KL {STEP['kl_coef']} to the "
        f"reference, reward accuracy + format. Median of {ours['steps']} steps after warm-up; TRL {trl['version']} "
        f"`GRPOTrainer` on the same rows in the same order (checked: {'yes' if r['same_rows'] else 'NO'}). "
        f"Every variant ran {len(r['rounds']['ours'])} times, interleaved; the table keeps each one's fastest "
        "run (medians of every run: "
        + ", ".join(f"{name} {' / '.join(_fmt(x) for x in xs)}" for name, xs in r["rounds"].items())
        + ").",
        "",
        "| | step (s) | rollout | reward | log-probs + advantages | update | mean reward | mean response |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    t = ours["timing"]
    ours_lp = t.get("old", 0.0) + t.get("ref", 0.0) + t.get("adv", 0.0)
    lines.append(
        f"| ours (vLLM-CPU rollout) | {_fmt(ours['step'])} | {_fmt(t.get('gen', 0))} | {_fmt(t.get('reward', 0))} "
        f"| {_fmt(ours_lp)} | {_fmt(t.get('update_actor', 0))} | {_fmt(ours['reward'])} "
        f"| {ours['response_length']:.0f} |"
    )
    rc = r.get("ours_recompute")
    if rc is not None:
        t = rc["timing"]
        rc_lp = t.get("old", 0.0) + t.get("ref", 0.0) + t.get("adv", 0.0)
        lines.append(
            f"| ours, old log-probs recomputed | {_fmt(rc['step'])} | {_fmt(t.get('gen', 0))} "
            f"| {_fmt(t.get('reward', 0))} | {_fmt(rc_lp)} | {_fmt(t.get('update_actor', 0))} "
            f"| {_fmt(rc['reward'])} | {rc['response_length']:.0f} |"
        )
    tt = trl["timing"]
    lines.append(
        f"| TRL GRPOTrainer (HF generate) | {_fmt(trl['step'])} | {_fmt(tt['gen'])} | {_fmt(tt['reward'])} "
        f"| {_fmt(tt['log_probs_and_adv'])} | {_fmt(tt['update'])} | {_fmt(trl['reward'])} "
        f"| {trl['response_length']:.0f} |"
    )
    lines += [
        "",
        f"**Ours / TRL = {_fmt(ratio)}×** (target ≤ {PEER_TARGET}×: {'met' if ratio <= PEER_TARGET else 'NOT met'}).",
        "",
        "### Self-reward overhead",
        "",
        "Same step with the hop on (`algorithm.self_reward.enable=true`, blind answers of up to "
        f"{r.get('hop_max_tokens', 32)} tokens, reward `self_reward`) and off.",
        "",
        "| | step (s) | rollout | self-reward hop | reward | update |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, res in (("hop off", ours), ("hop on", hop)):
        t = res["timing"]
        lines.append(
            f"| {name} | {_fmt(res['step'])} | {_fmt(t.get('gen', 0))} | {_fmt(t.get('self_reward_hop', 0))} "
            f"| {_fmt(t.get('reward', 0))} | {_fmt(t.get('update_actor', 0))} |"
        )
    described = hop["metrics_last"].get("self_reward/description_missing_rate")
    lines += [
        "",
        f"**Hop on / off = {_fmt(overhead)}×** (target ≤ {HOP_TARGET}×: "
        f"{'met' if overhead <= HOP_TARGET else 'NOT met'}; the paper reports about 1.24× on 8 GPUs)."
        + (f" Share of responses without a description (no hop for them): {_fmt(described)}." if described else ""),
    ]
    if "hop" in r:  # the hop off / sequential / pipelined comparison (bench.peer.run_hop)
        from .peer import hop_section

        lines += ["", hop_section(r["hop"])]
    return "\n".join(lines)


def rollout_section(points: list[dict[str, Any]]) -> str:
    by = {(p["engine"], p["n"], p["length"]): p for p in points}
    keys = sorted({(p["n"], p["length"]) for p in points})
    lines = [
        "8 image prompts, run to the full length (`ignore_eos`), response tokens per second (best of 2 after a "
        "warm-up call). vLLM-CPU in bf16, HF `generate` in fp32, as the tiny demo runs each.",
        "",
        "| n | response length | vLLM tokens/s | HF tokens/s | vLLM / HF |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, length in keys:
        v, h = by[("vllm", n, length)], by[("hf", n, length)]
        lines.append(
            f"| {n} | {length} | {v['tokens_per_s']:.0f} | {h['tokens_per_s']:.0f} "
            f"| {v['tokens_per_s'] / h['tokens_per_s']:.1f}× |"
        )
    return "\n".join(lines)


def scaling_section(points: list[dict[str, Any]]) -> str:
    lines = [
        "Self-reward runs (the main job); one value changed at a time from the shared shape, responses run to the "
        "full length (`ignore_eos`). Step time is the median after warm-up; memory is the worker's peak resident "
        "set (engine + training, one CPU rank).",
        "",
        "| prompts × n=4 | max response | mean response | step (s) | rollout (s) | update (s) | peak RSS (GB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        lines.append(
            f"| {p['prompts']} | {p['max_response_length']} | {p['response_length']:.0f} | {_fmt(p['step'])} "
            f"| {_fmt(p['gen'])} | {_fmt(p['update'])} | {_fmt(p['peak_rss_gb'])} |"
        )
    return "\n".join(lines)


def gpu_section(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"Not measured: {r['skipped']}."
    lines = [
        f"{r['device']}, random weights with the Qwen2.5-VL-3B configuration, bf16, SDPA attention, "
        f"{r['batch']} × {r['seq_len']} tokens, forward + backward + AdamW.",
        "",
        "| gradient checkpointing | tokens/s | MFU | peak memory (GB) |",
        "| --- | --- | --- | --- |",
    ]
    for flag in (False, True):
        m = r[f"train_checkpointing_{flag}"]
        if "error" in m:
            lines.append(f"| {flag} | {m['error']} | | |")
        else:
            lines.append(f"| {flag} | {m['tokens_per_s']:.0f} | {m['mfu']:.1%} | {m['peak_memory_gb']:.1f} |")
    lines += ["", f"HF `generate` (sampling, 256 new tokens): {r['hf_generate_tokens_per_s']:.0f} tokens/s."]
    return "\n".join(lines)


def memory_section(r: dict[str, Any]) -> str:
    from .memory import case_key

    rows, vocab = r["rows"], r["vocab"]
    by = {case_key(c): c for c in r["cases"]}
    responses = sorted({c["response"] for c in r["cases"] if c.get("rows", rows) == rows})
    batch_response = r.get("batch_response", 512)
    batch_rows = sorted({c.get("rows", rows) for c in r["cases"] if c["response"] == batch_response})

    def cells(op: str, b: int, response: int) -> str:
        out = []
        for path in ("padded", "padding-free"):
            for version in ("before", "after"):
                case = by.get((op, b, response, path, version))
                out.append("–" if case is None else "not run" if "skipped" in case else
                           case.get("error", f"{case['added_gb']:.2f}"))  # fmt: skip
        return " | ".join(out)

    runs = r.get("sweeps", {})
    # Sweeps rerun alone carry their own date and duration; one run of both is the stamp above.
    when = "; ".join(f"{name} sweep {run['date']}, {run['wall_s']:.0f} s" for name, run in sorted(runs.items()))
    if len({(run["date"], run["wall_s"]) for run in runs.values()}) <= 1:
        when = ""
    lines = [
        f"A random Qwen2 language model (2 layers, hidden 64) with Qwen's vocabulary ({vocab:,} tokens), fp32; "
        f"B rows in one micro-batch, prompts of {r['prompt']} and {r['prompt'] - 16} tokens and responses of R and "
        "R/2 tokens, alternating. "
        "Peak memory added by the call (GB): each case in a fresh process, its peak resident set (`ru_maxrss`) "
        "minus its resident set just before the call. *before*: full logits, the padding-free path through a "
        "zero-filled (B, L, V) grid, an fp32 log-softmax over (B, R, V) (kept in `bench/memory.py` as "
        "`LegacyActor`); *after*: the output layer on the response positions only, 512 tokens at a time. "
        "*before* cases whose response logits exceed "
        f"{r.get('before_limit_gb', 1.3)} GB are not run (the old path holds several copies of them). "
        "`log_probs` is `compute_log_prob` with entropy (the old-log-prob pass), `update` one `update_policy` "
        "(KL loss, no entropy bonus). `python -m bench.memory --sweeps length` or `--sweeps batch` reruns one "
        "table and keeps the other's figures" + (f" (measured: {when})." if when else "."),
        "",
        f"R from 512 to 2,048 at B = {rows}:",
        "",
        "| call | R | response logits B×R×V fp32 (GB) | padded before | padded after "
        "| padding-free before | padding-free after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for op in ("log_probs", "update"):
        for response in responses:
            logits_gb = rows * response * vocab * 4 / 1e9
            lines.append(f"| {op} | {response} | {logits_gb:.2f} | {cells(op, rows, response)} |")
    if len(batch_rows) > 1:
        lines += [
            "",
            f"B from {batch_rows[0]} to {batch_rows[-1]} at R = {batch_response}, the log-prob pass:",
            "",
            "| call | B | response logits B×R×V fp32 (GB) | padded before | padded after "
            "| padding-free before | padding-free after |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for b in batch_rows:
            logits_gb = b * batch_response * vocab * 4 / 1e9
            lines.append(f"| log_probs | {b} | {logits_gb:.2f} | {cells('log_probs', b, batch_response)} |")
    return "\n".join(lines)


def paper_section(r: dict[str, Any]) -> str:
    from .paper import TEST_ROWS, TEST_SHORTCUT_SHARE, TRAIN_ROWS, TRAIN_SHORTCUT_SHARE

    walls = [w for ws in r["wall_s"].values() for w in ws]
    loads = r.get("load_average") or [float("nan")]
    warm = f"{r['warm_start_steps']} supervised steps" if r.get("warm_start_steps") else "`assets/tiny`"
    return "\n".join(
        [
            f"Each variant trains {r['steps']} steps of the demo's config from the same warm start ({warm}), "
            f'seeds {", ".join(map(str, r["seeds"]))}, on {TRAIN_ROWS} size questions ("Which circle is larger, '
            f'the red one or the blue one?") whose first-named colour is the answer in {TRAIN_SHORTCUT_SHARE:.0%} '
            f"of the training rows and {TEST_SHORTCUT_SHARE:.0%} of the {TEST_ROWS} test rows. Greedy validation on "
            "the test split; each cell is the mean ± standard deviation over seeds after the last step, the "
            "warm start's value (step 0) in brackets. Language-shortcut rate: among test rows whose wording "
            "suggests a wrong answer, the share answered with it. Blind accuracy: the text-only answer from the "
            f"response's description is right. Runs took {min(walls):.0f}–{max(walls):.0f} s each; the "
            f"machine's 1-minute load average was {min(loads):.1f}–{max(loads):.1f} during them.",
            "",
            r["table"],
            "",
            f"**{r['verdict']}**",
        ]
    )


SECTIONS = {
    "peer": ("1–2. Step time against TRL's GRPOTrainer, and the self-reward overhead", peer_section),
    "rollout": ("3. Rollout engines", rollout_section),
    "scaling": ("4. Scaling with batch and response length", scaling_section),
    "gpu": ("5. GPU: actor throughput and MFU", gpu_section),
    "memory": ("6. Memory of the log-prob pass and the update at Qwen's vocabulary", memory_section),
    "paper": ("7. The paper's finding in miniature", paper_section),
    "peer-large": ("8. Step time against TRL's GRPOTrainer at a rollout-heavy shape", peer_large_section),
}


def write(results: dict[str, Any], durations: dict[str, float]) -> None:
    """Rewrite BENCHMARKS.md: the sections that ran now, the others as they were."""
    old = OUT.read_text() if OUT.exists() else ""
    body = []
    for name, (title, render) in SECTIONS.items():
        begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        if name in results:
            stamp = f"_{dt.date.today().isoformat()}, {machine()}, {durations[name]:.0f} s: `python -m bench {name}`_"
            section = f"{begin}\n{stamp}\n\n{render(results[name])}\n{end}"
        else:
            found = re.search(re.escape(begin) + r".*?" + re.escape(end), old, re.S)
            section = found.group(0) if found else f"{begin}\nNot run yet: `python -m bench {name}`.\n{end}"
        body.append(f"## {title}\n\n{section}\n")
    header = (
        "# Benchmarks\n\n"
        "Measured side by side in one run on the same machine; every table says when, where and how to rerun "
        "it. `make bench` runs 1–4 (it installs TRL into `.bench-deps`, outside the project's environment) and "
        "rewrites this file; `python -m bench NAME` reruns one section. Raw results: `bench/results/*.json`.\n\n"
        "Targets: ours ≤ 0.5× TRL's step time on the CPU; self-reward overhead ≤ 1.10×; MFU ≥ 40% on H100/H200.\n"
    )
    # Hand-written analysis below the tables survives a rerun.
    notes = old[old.index(NOTES) :] if NOTES in old else ""
    OUT.write_text(header + "\n" + "\n".join(body) + ("\n" + notes if notes else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, of {list(SECTIONS)} (default: the CPU ones)")
    parser.add_argument("--assets", default=str(REPO / "assets" / "tiny"), help="tiny assets folder (made if absent)")
    parser.add_argument("--steps", type=int, default=4, help="measured steps per run of benchmark 1-2")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up steps, not measured")
    parser.add_argument("--paper-seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds of `paper`")
    parser.add_argument("--paper-steps", type=int, default=30, help="training steps of each `paper` run")
    args = parser.parse_args(argv)
    names = args.names or list(CPU_BENCHES)
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(SECTIONS)}")
    if set(names) & {"peer", "rollout", "scaling"}:  # the others build their own models
        model, train_file = tiny_assets(Path(args.assets))
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        start = time.perf_counter()
        print(f"==> bench {name}", file=sys.stderr, flush=True)
        if name == "peer":
            from . import peer

            results[name] = peer.run(model, train_file, args.steps, args.warmup)
            results[name]["hop"] = peer.run_hop(model, train_file, args.steps, args.warmup)
        elif name == "rollout":
            from . import rollout

            results[name] = rollout.run(model, train_file)
        elif name == "scaling":
            from . import scaling

            results[name] = scaling.run(model, train_file, warmup=args.warmup)
        elif name == "gpu":
            from . import gpu

            results[name] = gpu.run()
        elif name == "memory":
            from . import memory

            results[name] = memory.run()
        elif name == "paper":
            from . import paper

            results[name] = paper.run(model, REPO / "checkpoints" / "bench_paper", args.paper_seeds, args.paper_steps)
        elif name == "peer-large":
            from . import peer_large

            results[name] = peer_large.run(Path(args.assets), min(args.steps, 2), args.warmup)
        durations[name] = time.perf_counter() - start
        (RESULTS / f"{name}.json").write_text(json.dumps(results[name], indent=2, default=str))
        print(f"    {name}: {durations[name]:.0f} s", file=sys.stderr, flush=True)
        write(results, durations)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
