"""What every benchmark shares: the tiny assets, our trainer run as users run it, and medians.

Our side is always ``python3 -m verl.trainer.main`` in a fresh process on the demo's config
(``train_examples/configs/tiny_selfReward_cpu.yaml``) with overrides, so a benchmark measures the product, not a
special path. Step timings come from the run's own ``metrics.jsonl`` (``timing/*``, ``perf/*``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
FORMAT_PROMPT = REPO / "train_examples" / "format_prompt" / "seethink.jinja"
BENCH_DEPS = REPO / ".bench-deps"

# The shared shape of one step (both sides, every benchmark unless it varies a value): 8 prompts × n=4,
# responses up to 96 tokens, one optimizer step per rollout, learning rate 1e-4, KL loss 1e-2 to the reference.
STEP = {
    "prompts_per_step": 8,
    "n": 4,
    "max_response_length": 96,
    "lr": 1e-4,
    "weight_decay": 1e-2,
    "max_grad_norm": 1.0,
    "kl_coef": 1e-2,
    "temperature": 1.0,
    "top_p": 0.99,
    "min_pixels": 3136,
    "max_pixels": 12544,
    "seed": 1,
}


def tiny_assets(out: Path, warm_start_steps: int = 300) -> tuple[Path, Path]:
    """The demo's assets (generated once): the warm-started tiny VL model, so that its responses carry
    descriptions and the self-reward hop does real work, and the training parquet."""
    from verl.tiny import generate, warm_start

    generate(out, seed=0)
    model = warm_start(out, warm_start_steps, format_prompt=str(FORMAT_PROMPT))
    return Path(model), out / "data" / "train.parquet"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, Python {platform.python_version()}"


def our_overrides(model: Path, train_file: Path, steps: int, run_dir: Path, **step: Any) -> list[str]:
    """Config overrides for ``steps`` training steps of the shared shape (``step`` replaces its values)."""
    s = {**STEP, **step}
    rows = s["prompts_per_step"] * s["n"]
    return [
        f"config={CONFIG}",
        f"worker.actor.model.model_path={model}",
        f"data.train_files={train_file}",
        "data.val_files=",
        f"data.rollout_batch_size={s['prompts_per_step']}",
        f"data.max_response_length={s['max_response_length']}",
        f"data.min_pixels={s['min_pixels']}",
        f"data.max_pixels={s['max_pixels']}",
        f"data.seed={s['seed']}",
        f"worker.rollout.n={s['n']}",
        f"worker.rollout.temperature={s['temperature']}",
        f"worker.rollout.top_p={s['top_p']}",
        f"worker.actor.global_batch_size={s['prompts_per_step']}",
        f"worker.actor.micro_batch_size_per_device_for_update={rows}",
        f"worker.actor.micro_batch_size_per_device_for_experience={rows}",
        f"worker.actor.optim.lr={s['lr']}",
        f"worker.actor.optim.weight_decay={s['weight_decay']}",
        f"worker.actor.max_grad_norm={s['max_grad_norm']}",
        f"algorithm.kl_coef={s['kl_coef']}",
        f"trainer.max_steps={steps}",
        "trainer.val_before_train=false",
        "trainer.val_freq=-1",
        "trainer.save_freq=-1",
        "trainer.logger=[file]",
        "trainer.resume_mode=disable",
        f"trainer.save_checkpoint_path={run_dir}",
    ]


def run_trainer(overrides: list[str]) -> float:
    """Run our trainer in a fresh process, as the demo runs it; returns its wall time in seconds."""
    env = dict(
        os.environ,
        VLLM_ENABLE_V1_MULTIPROCESSING="0",
        VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main", *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"our trainer failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def run_ours(overrides: list[str], run_dir: Path, warmup: int) -> dict[str, Any]:
    """Run our trainer in a fresh process; the medians of its step timings after ``warmup`` steps."""
    wall = run_trainer(overrides)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    measured = rows[warmup:]
    if not measured:
        raise RuntimeError(f"{len(rows)} steps logged, none left after {warmup} warm-up steps")
    timing = {
        key.removeprefix("timing/"): median([r[key] for r in measured if key in r])
        for key in sorted({k for r in measured for k in r if k.startswith("timing/")})
    }
    return {
        "steps": len(measured),
        "timing": timing,
        "step": timing["step"],
        "steps_all": [r["timing/step"] for r in rows],
        "peak_rss_gb": max((r.get("perf/cpu_max_rss_gb", 0.0) for r in rows), default=0.0),
        "response_length": median([r["response_length/mean"] for r in measured]),
        "reward": median([r["reward/overall"] for r in measured]),
        "metrics_last": measured[-1],
        "wall": wall,
    }


def bench_env() -> dict[str, str]:
    """The environment of a peer process: TRL from ``.bench-deps`` in front of the project's packages."""
    if not BENCH_DEPS.exists():
        raise RuntimeError(f"{BENCH_DEPS} is missing: run `make bench` (it installs TRL there, outside .venv)")
    path = os.pathsep.join(filter(None, [str(BENCH_DEPS), str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
