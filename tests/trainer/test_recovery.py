"""The trainer's recovery pieces without Ray: the non-finite guard, the worker-failure message, the progress
file and trimming logs on resume. End to end: ``test_kill_anywhere.py``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from verl.single_controller import WorkerError
from verl.trainer import TrainingAborted, core_algos
from verl.trainer.config import PPOConfig
from verl.trainer.loop import drop_rows_after
from verl.trainer.ray_trainer import RayPPOTrainer
from verl.utils import checkpoint as ckpt
from verl.utils.config_utils import load_config


class _Loader:
    epoch = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch}


class _Group:
    """Saves an empty part where the checkpoint asks for it."""

    def save_checkpoint(self, path: str) -> None:
        Path(path).mkdir(parents=True)

    def shutdown(self) -> None:
        pass


def _trainer(tmp_path: Path, *argv: str, steps: list[Any]) -> RayPPOTrainer:
    """A trainer with the loop's state but no workers: ``train_step`` returns (or raises) ``steps`` in turn."""
    trainer = object.__new__(RayPPOTrainer)
    trainer.config = load_config(
        PPOConfig, [f"trainer.save_checkpoint_path={tmp_path}", "trainer.logger=[file]", *argv]
    )
    trainer.run_dir = str(tmp_path)
    trainer.global_step, trainer.phase, trainer._nonfinite_streak = 0, "start", 0
    trainer.total_steps, trainer.val_dataset, trainer.train_loader = len(steps), None, _Loader()
    trainer._group_roles = {"actor": "actor_rollout_ref", "critic": "critic"}
    trainer.actor_rollout, trainer.critic = _Group(), None
    trainer.kl_ctrl = core_algos.FixedKLController(0.0)
    pending = list(steps)

    def train_step() -> dict[str, Any]:
        trainer._enter("update_actor")
        item = pending.pop(0)
        if isinstance(item, BaseException):
            raise item
        return dict(item)

    trainer.train_step = train_step
    return trainer


def _logged_steps(tmp_path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_non_finite_steps_in_a_row_stop_the_run_with_a_warning_each(tmp_path, caplog) -> None:
    bad, good = {"actor/non_finite_skipped": 1.0}, {"actor/non_finite_skipped": 0.0}
    trainer = _trainer(tmp_path, "trainer.max_consecutive_nonfinite_steps=2", steps=[bad, good, bad, bad, good, good])
    with caplog.at_level(logging.WARNING), pytest.raises(TrainingAborted) as info:
        trainer.fit()
    assert "stopped at step 4" in str(info.value) and "2 steps in a row" in str(info.value)
    assert "trainer.max_consecutive_nonfinite_steps=2" in str(info.value)
    assert "no complete checkpoint yet" in str(info.value)
    assert caplog.text.count("actor update skipped") == 3  # steps 1, 3 and 4; the good step 2 reset the count
    assert _logged_steps(tmp_path) == [1, 2, 3, 4]  # the stopping step's metrics are kept


def test_non_finite_limit_off_never_stops(tmp_path) -> None:
    bad = {"actor/non_finite_skipped": 1.0}
    trainer = _trainer(tmp_path, "trainer.max_consecutive_nonfinite_steps=-1", steps=[bad] * 4)
    trainer.fit()
    assert _logged_steps(tmp_path) == [1, 2, 3, 4]


def test_a_dead_worker_names_role_step_phase_and_the_checkpoint(tmp_path) -> None:
    ckpt.partial_dir(tmp_path, 1)
    ckpt.finalize(tmp_path, 1, {"global_step": 1})
    died = WorkerError(
        "FSDPWorker rank 0 of 1 (actor actor_0) died during update_actor",
        worker_class="FSDPWorker",
        method="update_actor",
        rank=0,
        cause=RuntimeError("killed"),
        group="actor",
    )
    trainer = _trainer(tmp_path, steps=[{}, died])
    with pytest.raises(TrainingAborted) as info:
        trainer.fit()
    message = str(info.value)
    assert message.startswith("the actor_rollout_ref worker (rank 0) failed during update_actor at step 2")
    assert "(phase update_actor)" in message and f"last complete checkpoint: {tmp_path / 'global_step_1'}" in message
    assert "died during update_actor" in message  # the original error follows
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 2


def test_drop_rows_after_keeps_earlier_steps_and_drops_a_torn_line(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [json.dumps({"step": s, "x": s}) for s in (0, 1, 2, 3, 4)]
    path.write_text("\n".join(rows) + '\n{"step": 5, "x"')
    assert drop_rows_after(str(path), 2) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 1, 2]
    assert drop_rows_after(str(path), 2) == 0
    assert drop_rows_after(str(tmp_path / "missing.jsonl"), 0) == 0
