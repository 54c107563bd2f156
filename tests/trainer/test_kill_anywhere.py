"""Kill anywhere, resume, and end where an uninterrupted run ends.

One uninterrupted reference run, then one run that is killed again and again, each time resumed with the
same command:

1. SIGKILL of the whole job during step 2's rollout;
2. SIGKILL during step 3's actor update;
3. SIGKILL while step 3's checkpoint is being written (its ``.partial`` folder is on disk), after which a
   renamed folder without its ``COMPLETE`` marker is also planted: neither may ever be loaded;
4. SIGKILL of the actor's Ray worker (not the driver) during step 4's rollout: the run must stop by itself
   with a message naming the role and the step, and leave the last complete checkpoint intact;
5. the last resume runs to the end.

Where in a phase each kill lands is drawn from a seeded generator: a random share of the phase's duration
in the reference run, counted from the moment ``progress.json`` says the phase began.

The killed run must match the reference exactly: the same steps, each logged once, the same data order per
step, the same rewards and losses, and checkpoints whose weights, optimizer state, scheduler, RNG and
data-loader position are equal. That holds because the vLLM engine runs inside the worker and samples from
the worker's torch random state, which the checkpoint saves and the resume restores: a resumed run draws
the very rollouts the uninterrupted one drew.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from state_equality import assert_same_state, checkpoint_state

from verl.utils import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
STEPS = 4

pytestmark = pytest.mark.slow


def _command(tiny_dir: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "verl.trainer.main",
        f"config={CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"trainer.save_checkpoint_path={run_dir}",
        f"trainer.max_steps={STEPS}",
        "trainer.save_freq=1",
        "trainer.save_limit=-1",
        "trainer.val_freq=-1",
        "trainer.val_before_train=false",
        "trainer.logger=[file]",
        "trainer.ray_num_cpus=4",
        "data.max_response_length=48",
    ]


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        VLLM_ENABLE_V1_MULTIPROCESSING="0",
        VLLM_CPU_KVCACHE_SPACE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )


def _start(tiny_dir: Path, run_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            _command(tiny_dir, run_dir),
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the job's Ray processes share its process group
        )


def _progress(run_dir: Path) -> tuple[int, str] | None:
    try:
        state = json.loads((run_dir / "progress.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return int(state["step"]), str(state["phase"])


def _wait(proc: subprocess.Popen, log: Path, ready: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)


def _kill_job(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_killed_anywhere_the_run_resumes_and_matches_an_uninterrupted_one(tiny_dir: Path, tmp_path: Path) -> None:
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    proc = _start(tiny_dir, reference_dir, tmp_path / "reference.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    reference = _metrics(reference_dir)
    assert [r["step"] for r in reference] == list(range(1, STEPS + 1))
    durations = {"rollout": "timing/gen", "update_actor": "timing/update_actor"}

    rng = random.Random(11)
    landed: list[tuple[str, int, str]] = []

    def kill_in_phase(attempt: int, step: int, phase: str) -> None:
        log = tmp_path / f"attempt{attempt}.log"
        proc = _start(tiny_dir, killed_dir, log)
        _wait(proc, log, lambda: _progress(killed_dir) == (step, phase), f"step {step} {phase}")
        time.sleep(rng.uniform(0.0, 0.4) * reference[step - 1][durations[phase]])
        _kill_job(proc)
        landed.append(("job", *_progress(killed_dir)))

    kill_in_phase(1, 2, "rollout")
    assert ckpt.find_latest(killed_dir) == killed_dir / "global_step_1"
    kill_in_phase(2, 3, "update_actor")
    assert ckpt.find_latest(killed_dir) == killed_dir / "global_step_2"

    log = tmp_path / "attempt3.log"
    proc = _start(tiny_dir, killed_dir, log)
    partial = killed_dir / "global_step_3.partial"
    _wait(proc, log, lambda: (partial / "actor").exists(), "step 3's checkpoint being written")
    _kill_job(proc)
    landed.append(("job", *_progress(killed_dir)))
    assert partial.is_dir() and not (killed_dir / "global_step_3").exists(), "the kill missed the checkpoint write"
    torn = killed_dir / "global_step_4"
    torn.mkdir()  # renamed but without its marker: must be ignored too
    (torn / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    assert ckpt.find_latest(killed_dir) == killed_dir / "global_step_2"

    log = tmp_path / "attempt4.log"
    proc = _start(tiny_dir, killed_dir, log)
    _wait(proc, log, lambda: "worker pids by rank" in log.read_text(), "the worker pids")
    pid = int(re.search(r"actor_rollout_ref worker pids by rank: \[(\d+)", log.read_text()).group(1))
    _wait(proc, log, lambda: _progress(killed_dir) == (4, "rollout"), "step 4 rollout")
    time.sleep(rng.uniform(0.0, 0.4) * reference[3]["timing/gen"])
    os.kill(pid, signal.SIGKILL)
    landed.append(("worker", *_progress(killed_dir)))
    try:
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            _kill_job(proc)
    output = log.read_text()
    assert status == 1, output[-3000:]
    assert "resumed from " + str(killed_dir / "global_step_2") + " at step 2" in output
    assert (
        "training stopped: the actor_rollout_ref worker (rank 0) failed during generate_sequences at step 4 "
        "(phase rollout): "
        in output
        and f"\nlast complete checkpoint: {killed_dir / 'global_step_3'}, intact. Rerun the same command" in output
    ), output[-3000:]
    assert ckpt.find_latest(killed_dir) == killed_dir / "global_step_3"

    log = tmp_path / "attempt5.log"
    proc = _start(tiny_dir, killed_dir, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "resumed from " + str(killed_dir / "global_step_3") + " at step 3" in log.read_text()

    assert landed == [
        ("job", 2, "rollout"),
        ("job", 3, "update_actor"),
        ("job", 3, "checkpoint"),
        ("worker", 4, "rollout"),
    ]
    rows = _metrics(killed_dir)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1)), "each step is logged exactly once"
    for ours, theirs in zip(rows, reference):
        for key in ("data/first_dataset_index", "data/dataset_index_digest", "training/global_step"):
            assert ours[key] == theirs[key], (ours["step"], key)
        for key in ("reward/overall", "actor/pg_loss", "response_length/mean"):
            assert ours[key] == theirs[key], (ours["step"], key, ours[key], theirs[key])
    assert ckpt.complete_steps(killed_dir) == list(range(1, STEPS + 1))
    assert not list(killed_dir.glob("*.partial"))
    for step in range(1, STEPS + 1):
        assert_same_state(
            checkpoint_state(killed_dir / f"global_step_{step}", tmp_path),
            checkpoint_state(reference_dir / f"global_step_{step}", tmp_path),
            f"global_step_{step}",
        )
