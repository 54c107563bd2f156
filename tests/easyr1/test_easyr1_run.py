"""EasyR1 drop-in end to end: two training steps from EasyR1's ``examples/config.yaml`` (our fixture copy of it) on
the tiny assets, with an EasyR1-style reward file that grades with ``mathruler``, through the real entry point.
Only paths and the sizes a CPU can run change (``tiny_run_args``); the algorithm keys stay EasyR1's (KL loss,
dynamic batching, padding-free)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from easyr1_args import tiny_run_args

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_two_steps_from_the_easyr1_config_with_a_mathruler_reward_file(tiny_dir, tmp_path, cpu_run_env) -> None:
    args = [*tiny_run_args(tiny_dir, tmp_path), "trainer.ray_num_cpus=4"]
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main", *args],
        cwd=REPO,
        env=cpu_run_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    run_dir = tmp_path / "checkpoints"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    # The reward file's own channels reached the logs: the file ran, mathruler graded.
    for key in ("reward/overall", "reward/accuracy", "reward/format"):
        assert all(isinstance(row[key], float) for row in rows), key
    # EasyR1's use_kl_loss=true: the KL loss term was computed in the update.
    assert all("actor/kl_loss" in row for row in rows)
    assert (run_dir / "global_step_2" / "COMPLETE").exists()
