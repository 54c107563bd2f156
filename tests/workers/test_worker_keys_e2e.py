"""End to end on 2 CPU ranks: the worker keys EasyR1 configs use act together in a real run.

An EasyR1-style reward file (``REWARD_TYPE``, ``mathruler``), ``loss_type=sapo``, token-budget micro-batches,
rank-0 init, and checkpoints without optimizer state that a second run resumes from with a fresh optimizer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
REWARD = Path(__file__).parent / "reward_files" / "easyr1_math.py"


def _run(tiny_dir: Path, run_dir: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "verl.trainer.main",
        f"config={CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"trainer.save_checkpoint_path={run_dir}",
        "trainer.val_before_train=false",
        "trainer.val_freq=-1",
        "trainer.save_freq=2",
        "data.max_response_length=48",
        "trainer.ray_num_cpus=4",
        "trainer.n_gpus_per_node=2",
        "algorithm.self_reward.enable=false",
        f"worker.reward.reward_function={REWARD}:compute_score",
        "worker.actor.loss_type=sapo",
        "worker.actor.dynamic_batching=true",
        "worker.actor.fsdp.enable_rank0_init=true",
        "trainer.save_model_only=true",
        "trainer.seed=3",
        *overrides,
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_easyr1_keys_train_save_model_only_and_resume_with_a_fresh_optimizer(tiny_dir, tmp_path, cpu_run_env) -> None:
    from torch.distributed.checkpoint import FileSystemReader

    first = _run(tiny_dir, tmp_path, cpu_run_env, "trainer.max_steps=2")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    assert "reward function boxed_math" in first.stdout + first.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/accuracy" in row and "reward/format" in row for row in rows)
    assert all(row["actor/pg_loss"] == row["actor/pg_loss"] for row in rows if "actor/pg_loss" in row)
    stored = FileSystemReader(str(tmp_path / "global_step_2" / "actor" / "dcp")).read_metadata().state_dict_metadata
    assert any(k.startswith("model") for k in stored) and not any(k.startswith("optimizer") for k in stored)

    second = _run(tiny_dir, tmp_path, cpu_run_env, "trainer.max_steps=3")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    assert "fresh optimizer" in second.stdout + second.stderr
    steps = [json.loads(line).get("step") for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert 3 in steps
