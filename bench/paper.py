"""``python -m bench paper``: the paper's finding in miniature.

See-think GRPO without the self-reward hop, with it (v1, ``mode=sum``) and v2 (``mode=multi_reward`` with
``train_second_hop``), each from the same warm-started tiny model, on a synthetic split with a language
shortcut: "Which circle is larger, the red one or the blue one?" where the colour named first is the larger one
in ``TRAIN_SHORTCUT_SHARE`` of the training rows and only in ``TEST_SHORTCUT_SHARE`` of the test rows. A policy
that learned the wording's prior instead of looking answers the first-named colour on the test split.

Every variant runs the product (``python -m verl.trainer.main`` on the demo's config), validating greedily on
the test split before training and after the last step. The see-think variant also runs the hop (so its blind
accuracy is measured the same way) but its reward, ``seethink_reward``, ignores it.

Per run, from the last validation: accuracy (``val/overall``), blind accuracy (``val/blind_accuracy``: the
text-only answer from the response's description is right), the language-shortcut rate (``shortcut_rate``) and
the mean description length in words.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import CONFIG, run_trainer

TRAIN_SHORTCUT_SHARE = 0.9
TEST_SHORTCUT_SHARE = 0.1
TRAIN_ROWS, TEST_ROWS = 800, 64
SEEDS = (1, 2, 3)
STEPS = 30
# variant -> overrides of the demo's config (which is self-rewarded GRPO, v1)
VARIANTS: dict[str, tuple[str, ...]] = {
    "see-think GRPO, no self-reward": ("worker.reward.reward_function=verl.rewards.functions:seethink_reward",),
    "self-reward v1 (sum)": (),
    "self-reward v2 (multi_reward + train_second_hop)": (
        "algorithm.self_reward.mode=multi_reward",
        "algorithm.self_reward.train_second_hop=true",
    ),
}
_NAMED_COLOURS = re.compile(r"the (\w+) one or the (\w+) one")


def shortcut_answer(problem: str) -> str:
    """The answer the wording suggests: the colour the question names first."""
    found = _NAMED_COLOURS.search(problem)
    if found is None:
        raise ValueError(f"not a shortcut question (no 'the X one or the Y one'): {problem!r}")
    return found.group(1)


def shortcut_rows(num_rows: int, seed: int, shortcut_share: float) -> list[dict[str, Any]]:
    """Size questions in which the first-named colour is the answer in exactly ``round(share * num_rows)``
    rows (shuffled), so the question wording carries a prior of that strength."""
    from verl.tiny import make_example

    rng = random.Random(seed)
    follows = [i < round(shortcut_share * num_rows) for i in range(num_rows)]
    rng.shuffle(follows)
    rows = []
    for want in follows:
        while True:  # rejection sampling: the generator puts the larger shape on either side at random
            problem, answer, png, description = make_example(rng, "size")
            if (answer == shortcut_answer(problem)) == want:
                break
        rows.append(
            {
                "problem": problem,
                "answer": answer,
                "images": [{"bytes": png, "path": None}],
                "data_source": "synthetic_size_shortcut",
                "description": description,
            }
        )
    return rows


def shortcut_rate(records: Sequence[dict[str, Any]]) -> float:
    """Among rows whose wording suggests a wrong answer, the share answered with that suggested answer.
    ``records`` are validation records (``prompt``, ``response``, ``ground_truth``); NaN when no row qualifies."""
    from verl.rewards.extract import extract_answer
    from verl.rewards.grader import grade_answer

    misleading = [r for r in records if not grade_answer(shortcut_answer(r["prompt"]), r["ground_truth"])]
    if not misleading:
        return float("nan")
    taken = 0
    for r in misleading:
        answer = extract_answer(r["response"] or "")
        taken += answer is not None and grade_answer(answer, shortcut_answer(r["prompt"]))
    return taken / len(misleading)


def description_words(records: Sequence[dict[str, Any]]) -> float:
    """Mean words in the response's opening ``<description>`` (0 for a response without a usable one)."""
    from verl.rewards.format import extract_description

    if not records:
        return float("nan")
    return statistics.fmean(len((extract_description(r["response"]) or "").split()) for r in records)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) over seeds; the deviation is 0 for one seed."""
    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize_run(run_dir: Path) -> dict[str, float]:
    """The first and last validation of one run: accuracy, blind accuracy, shortcut rate, description words."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    vals = [m for m in metrics if "val/overall" in m]
    records = [json.loads(line) for line in (run_dir / "responses.jsonl").read_text().splitlines() if line.strip()]
    steps = sorted({r["step"] for r in records})
    out: dict[str, float] = {}
    for tag, row, step in (("start", vals[0], steps[0]), ("end", vals[-1], steps[-1])):
        at = [r for r in records if r["step"] == step]
        out[f"{tag}/accuracy"] = row["val/overall"]
        out[f"{tag}/blind_accuracy"] = row.get("val/blind_accuracy", float("nan"))
        out[f"{tag}/shortcut_rate"] = shortcut_rate(at)
        out[f"{tag}/description_words"] = description_words(at)
    return out


COLUMNS = (
    ("accuracy", "val accuracy"),
    ("blind_accuracy", "blind accuracy"),
    ("shortcut_rate", "language-shortcut rate"),
    ("description_words", "description (words)"),
)


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """Markdown table, one row per variant: mean ± standard deviation over its runs of each last-validation
    value, and the step-0 value (the shared warm start) in brackets."""
    lines = [
        "| variant | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
        "| --- | --- |" + " --- |" * len(COLUMNS),
    ]
    for variant, runs in results.items():
        cells = []
        for key, _ in COLUMNS:
            mean, dev = spread([r[f"end/{key}"] for r in runs])
            start, _ = spread([r[f"start/{key}"] for r in runs])
            cells.append(f"{mean:.2f} ± {dev:.2f} ({start:.2f})")
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: dict[str, list[dict[str, float]]]) -> str:
    """Whether the paper's direction holds: self-reward (v1) ends with a higher blind accuracy and a lower
    shortcut rate than see-think GRPO without it, comparing means over seeds."""
    base, v1 = (results.get(name) for name in list(VARIANTS)[:2])
    if not base or not v1:
        return "Not decided: both see-think GRPO and self-reward v1 must have run."
    if all(r["end/accuracy"] == 0 and r["end/blind_accuracy"] == 0 for r in base + v1):
        # Without a single right answer there is no reward signal to compare: zeros are not a negative result.
        return "Not decided: no run of either variant answered any validation question right."
    blind = spread([r["end/blind_accuracy"] for r in v1])[0] - spread([r["end/blind_accuracy"] for r in base])[0]
    short = spread([r["end/shortcut_rate"] for r in v1])[0] - spread([r["end/shortcut_rate"] for r in base])[0]
    holds = blind > 0 and short < 0
    return (
        f"Self-reward v1 minus see-think GRPO: blind accuracy {blind:+.2f}, language-shortcut rate {short:+.2f}. "
        + (
            "The paper's direction holds here (blind accuracy up, shortcut rate down)."
            if holds
            else "The paper's direction does NOT hold here."
        )
    )


def run(
    model: Path, out: Path, seeds: Sequence[int] = SEEDS, steps: int = STEPS, variants: Sequence[str] | None = None
) -> dict[str, Any]:
    """Train every variant for every seed (interleaved, so machine load touches all alike); return the per-run
    summaries, the table and the verdict."""
    from verl.tiny import write_parquet

    data = out / "data"
    write_parquet(shortcut_rows(TRAIN_ROWS, 11, TRAIN_SHORTCUT_SHARE), data / "train.parquet")
    write_parquet(shortcut_rows(TEST_ROWS, 12, TEST_SHORTCUT_SHARE), data / "test.parquet")
    chosen = list(variants or VARIANTS)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    walls: dict[str, list[float]] = {name: [] for name in chosen}
    loads = [os.getloadavg()[0]]  # other jobs on the machine slow every variant alike (runs are interleaved)
    for seed in seeds:
        for index, name in enumerate(chosen):
            run_dir = out / f"v{list(VARIANTS).index(name)}_seed{seed}"
            overrides = [
                f"config={CONFIG}",
                f"worker.actor.model.model_path={model}",
                f"data.train_files={data / 'train.parquet'}",
                f"data.val_files={data / 'test.parquet'}",
                f"data.val_batch_size={TEST_ROWS}",
                f"data.seed={seed}",
                f"trainer.seed={seed}",
                f"trainer.max_steps={steps}",
                f"trainer.val_freq={steps}",
                "trainer.val_before_train=true",
                "trainer.save_freq=-1",
                "trainer.logger=[file]",
                "trainer.resume_mode=disable",
                f"trainer.save_checkpoint_path={run_dir}",
                f"trainer.experiment_name=paper_v{index}_seed{seed}",
                *VARIANTS[name],
            ]
            walls[name].append(run_trainer(overrides))
            results[name].append(summarize_run(run_dir))
            loads.append(os.getloadavg()[0])
            print(f"    {name}, seed {seed}: {results[name][-1]}", flush=True)
    warm = (
        json.loads((Path(model) / "WARM_START.json").read_text()) if (Path(model) / "WARM_START.json").is_file() else {}
    )
    return {
        "warm_start_steps": warm.get("steps"),
        "seeds": list(seeds),
        "steps": steps,
        "runs": results,
        "wall_s": walls,
        "load_average": loads,
        "table": table(results),
        "verdict": verdict(results),
    }
