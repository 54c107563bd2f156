"""The shared training loop without Ray: when it validates and saves, where it resumes from, what the
checkpoint's trainer state holds (the adaptive KL coefficient), the phase timer, the unlimited
``max_try_make_batch`` and what a failing worker's message advises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.single_controller import WorkerError
from verl.trainer import TrainingAborted, core_algos
from verl.trainer.config import PPOConfig
from verl.trainer.loop import TrainingLoop, resume_path, should_save, should_validate
from verl.trainer.ray_trainer import RayPPOTrainer
from verl.utils import checkpoint as ckpt
from verl.utils.config_utils import load_config


class _Group:
    """A worker group's checkpoint calls, recorded; a save writes the step it holds."""

    def __init__(self, state: dict[str, int]) -> None:
        self.state, self.loaded = state, []

    def save_checkpoint(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "weights.json").write_text(json.dumps(self.state))

    def load_checkpoint(self, path: str) -> None:
        self.loaded.append(path)
        self.state.update(json.loads((Path(path) / "weights.json").read_text()))

    def shutdown(self) -> None:
        pass


class _Loop(TrainingLoop):
    """A loop whose step counts and whose 'model' is the number of steps it has trained."""

    def __init__(self, run_dir: Path, total_steps: int, *argv: str, validation: bool = False) -> None:
        super().__init__(
            load_config(PPOConfig, [f"trainer.save_checkpoint_path={run_dir}", "trainer.logger=[file]", *argv])
        )
        self.total_steps = total_steps
        self.val_dataset = [0] if validation else None
        self.group = _Group({"trained": 0})
        self.validated_at: list[int] = []

    def _checkpoint_groups(self) -> dict[str, Any]:
        return {"actor": self.group}

    def _val_before_train(self) -> bool:
        return self.config.trainer.val_before_train

    def _trainer_state(self) -> dict[str, Any]:
        return {"extra": self.global_step * 10}

    def _load_trainer_state(self, state: dict[str, Any]) -> None:
        self.loaded_state = state

    def train_step(self) -> dict[str, Any]:
        timing: dict[str, float] = {}
        with self.timer("update", timing, phase="update_actor"):
            self.group.state["trained"] += 1
        return {"timing/update": timing["update"]}

    def validate(self) -> dict[str, float]:
        self.validated_at.append(self.global_step)
        return {"val/overall": 1.0}


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- the schedule


def test_save_schedule_every_n_and_the_last_step_and_minus_one_only_the_last() -> None:
    assert [s for s in range(1, 6) if should_save(s, 5, 2)] == [2, 4, 5]
    assert [s for s in range(1, 6) if should_save(s, 5, -1)] == [5]
    assert [s for s in range(1, 7) if should_save(s, 6, 3)] == [3, 6]


def test_validation_schedule_rl_and_sft() -> None:
    assert [s for s in range(1, 6) if should_validate(s, 5, 2)] == [2, 4, 5]
    assert [s for s in range(1, 6) if should_validate(s, 5, -1)] == []  # RL: -1 = never during training
    assert [s for s in range(1, 6) if should_validate(s, 5, -1, at_last_step=True)] == [5]  # SFT: at the end


def test_save_freq_minus_one_saves_once_at_the_end(tmp_path) -> None:
    loop = _Loop(tmp_path, 3, "trainer.save_freq=-1", "trainer.val_before_train=false")
    last = loop.fit()
    assert ckpt.complete_steps(tmp_path) == [3]
    assert json.loads((tmp_path / "global_step_3" / "actor" / "weights.json").read_text()) == {"trained": 3}
    assert ckpt.read_trainer_state(tmp_path / "global_step_3") == {"global_step": 3, "extra": 30}
    assert [r["step"] for r in _rows(tmp_path)] == [1, 2, 3]
    assert last["checkpoint/path"] == str(tmp_path / "global_step_3")
    assert json.loads((tmp_path / "progress.json").read_text())["phase"] == "done"


def test_save_and_validation_every_n_steps_and_at_the_last(tmp_path) -> None:
    loop = _Loop(tmp_path, 5, "trainer.save_freq=2", "trainer.val_freq=2", "trainer.save_limit=2", validation=True)
    loop.fit()
    assert loop.validated_at == [0, 2, 4, 5]  # before training (val_before_train), every 2 and the last step
    assert ckpt.complete_steps(tmp_path) == [4, 5]  # 2 was rotated away by save_limit=2
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert ["checkpoint/path" in r for r in rows] == [False, False, True, False, True, True]
    assert all(r["timing/update"] >= 0.0 for r in rows[1:])


def test_phase_timer_records_the_phase_and_sums_repeated_blocks(tmp_path) -> None:
    loop = _Loop(tmp_path, 1)
    loop.global_step = 7
    timing: dict[str, float] = {}
    with loop.timer("gen", timing, phase="rollout"):
        assert json.loads((tmp_path / "progress.json").read_text())["phase"] == "rollout"
    first = timing["gen"]
    with loop.timer("gen", timing):
        pass
    assert timing["gen"] >= first > 0.0
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert (progress["step"], progress["phase"], loop.phase) == (7, "gen", "gen")


# ----------------------------------------------------------------------------- resume


def _checkpoint(root: Path, step: int) -> Path:
    folder = ckpt.partial_dir(root, step)
    (folder / "actor").mkdir()
    (folder / "actor" / "weights.json").write_text(json.dumps({"trained": step}))
    return ckpt.finalize(root, step, {"global_step": step, "extra": step * 10})


def test_resume_path_auto_prefers_the_run_folder_then_load_checkpoint_path(tmp_path) -> None:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    start = _checkpoint(elsewhere, 5)
    assert resume_path("auto", str(run), str(start)) == str(start)  # nothing in the run folder yet
    assert resume_path("auto", str(run), None) is None
    own = _checkpoint(run, 7)
    assert resume_path("auto", str(run), str(start)) == str(own)  # the run's own progress wins
    assert resume_path("path", str(run), str(start)) == str(start)
    assert resume_path("disable", str(run), str(start)) is None


def test_auto_resume_from_load_checkpoint_path_continues_the_run(tmp_path) -> None:
    start = _checkpoint(tmp_path / "elsewhere", 2)
    run = tmp_path / "run"
    loop = _Loop(run, 4, f"trainer.load_checkpoint_path={start}", "trainer.val_before_train=false")
    assert loop.config.trainer.resume_mode == "auto"
    loop.resume()
    assert loop.global_step == 2 and loop.group.state == {"trained": 2}
    assert loop.loaded_state == {"global_step": 2, "extra": 20}
    loop.fit()
    assert [r["step"] for r in _rows(run)] == [3, 4]
    assert ckpt.complete_steps(run) == [4]


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path) -> None:
    _checkpoint(tmp_path, 2)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)))
    loop = _Loop(tmp_path, 4, "trainer.val_before_train=false")
    assert loop.resume() == str(tmp_path / "global_step_2")
    loop.fit()
    assert [r["step"] for r in _rows(tmp_path)] == [1, 2, 3, 4]  # step 3 once: the redone one
    assert "timing/update" in _rows(tmp_path)[2]


def test_resume_mode_disable_starts_fresh(tmp_path) -> None:
    _checkpoint(tmp_path, 2)
    loop = _Loop(tmp_path, 1, "trainer.resume_mode=disable")
    assert loop.resume() is None and loop.global_step == 0 and loop.group.loaded == []


# ----------------------------------------------------------------------------- the RL trainer's state


def _rl_trainer(tmp_path: Path, *argv: str) -> RayPPOTrainer:
    """An RL trainer with its loop state and fake groups, built without a model."""
    trainer = object.__new__(RayPPOTrainer)
    TrainingLoop.__init__(
        trainer,
        load_config(
            PPOConfig,
            [
                f"trainer.save_checkpoint_path={tmp_path}",
                "trainer.logger=[file]",
                "worker.rollout.n=2",
                "data.rollout_batch_size=2",
                "worker.actor.global_batch_size=2",
                "trainer.n_gpus_per_node=1",
                "worker.actor.micro_batch_size_per_device_for_update=1",
                "worker.actor.micro_batch_size_per_device_for_experience=1",
                *argv,
            ],
        ),  # fmt: skip
    )
    alg = trainer.config.algorithm
    trainer.kl_ctrl = core_algos.get_kl_controller(alg.kl_type, alg.kl_coef, alg.kl_target, alg.kl_horizon)
    trainer.actor_rollout, trainer.critic = _Group({"trained": 0}), None
    trainer.train_dataset = [0]
    trainer.hop_cfg = trainer.config.algorithm.self_reward

    class Loader:
        position = 0

        def state_dict(self) -> dict[str, int]:
            return {"position": self.position}

        def load_state_dict(self, state: dict[str, int]) -> None:
            self.position = state["position"]

    trainer.train_loader = Loader()
    return trainer


def test_adaptive_kl_coefficient_is_checkpointed_and_restored(tmp_path) -> None:
    argv = ("algorithm.kl_type=adaptive", "algorithm.kl_coef=0.1", "algorithm.kl_target=0.1",
            "algorithm.kl_horizon=100")  # fmt: skip
    trainer = _rl_trainer(tmp_path, *argv)
    trainer.kl_ctrl.update(current_kl=0.2, n_steps=50)  # error clip(0.2/0.1 - 1) = 0.2: 0.1 * (1 + 0.2 * 50/100)
    assert trainer.kl_ctrl.kl_coef == pytest.approx(0.11)
    trainer.global_step, trainer.train_loader.position = 3, 12
    trainer.save_checkpoint()
    assert ckpt.read_trainer_state(tmp_path / "global_step_3")["kl_coef"] == pytest.approx(0.11)

    resumed = _rl_trainer(tmp_path, *argv)
    assert resumed.kl_ctrl.kl_coef == pytest.approx(0.1)
    resumed.resume()
    assert resumed.kl_ctrl.kl_coef == pytest.approx(0.11)  # not reset to algorithm.kl_coef
    assert (resumed.global_step, resumed.train_loader.position) == (3, 12)


# ----------------------------------------------------------------------------- max_try_make_batch


def _filtering_trainer(tmp_path: Path, max_try: int, all_same_tries: int) -> RayPPOTrainer:
    """Online filtering where the first ``all_same_tries`` rollouts give every response the same reward (so
    every group is filtered out) and later ones give each group one right and one wrong response."""
    trainer = _rl_trainer(tmp_path, "algorithm.online_filtering=true", f"trainer.max_try_make_batch={max_try}")
    calls = {"rollouts": 0}

    def next_batch() -> DataProto:
        return DataProto.from_dict(
            tensors={"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3),
                     "position_ids": torch.zeros(2, 3, dtype=torch.long)},
            non_tensors={"raw_prompt_ids": np.array([[1, 1, 1]] * 2, dtype=object),
                         "dataset_index": np.array([0, 1], dtype=object)},
        )  # fmt: skip

    class Rollout:
        def generate_sequences(self, gen: DataProto) -> DataProto:
            calls["rollouts"] += 1
            rows = len(gen) * 2
            return DataProto.from_dict(
                tensors={"input_ids": torch.ones(rows, 5, dtype=torch.long), "attention_mask": torch.ones(rows, 5),
                         "position_ids": torch.zeros(rows, 5, dtype=torch.long),
                         "responses": torch.ones(rows, 2, dtype=torch.long), "response_mask": torch.ones(rows, 2)},
            )  # fmt: skip

    class Reward:
        def compute_reward(self, batch: DataProto) -> tuple[torch.Tensor, dict[str, list[float]]]:
            same = calls["rollouts"] <= all_same_tries
            overall = [1.0] * len(batch) if same else [1.0, 0.0] * (len(batch) // 2)
            return torch.zeros(len(batch), 2), {"overall": overall}

    trainer._next_batch = next_batch
    trainer.actor_rollout, trainer.reward_fn = Rollout(), Reward()
    trainer.hop = None
    trainer.calls = calls
    return trainer


def test_max_try_make_batch_minus_one_is_unlimited(tmp_path) -> None:
    trainer = _filtering_trainer(tmp_path, -1, all_same_tries=25)  # more than the default limit of 20
    step = trainer._make_batch({}, {})
    assert trainer.calls["rollouts"] == 26 and len(step.batch) == 4
    assert step.components["overall"] == [1.0, 0.0, 1.0, 0.0]


def test_max_try_make_batch_limit_stops_with_the_key(tmp_path) -> None:
    trainer = _filtering_trainer(tmp_path, 3, all_same_tries=25)
    with pytest.raises(RuntimeError, match=r"after 3 tries \(trainer.max_try_make_batch\)"):
        trainer._make_batch({}, {})
    assert trainer.calls["rollouts"] == 3


# ----------------------------------------------------------------------------- a failing worker's advice


def _failure(loop: TrainingLoop, method: str, cause_type: str, types: tuple[str, ...]) -> str:
    error = WorkerError(
        f"FSDPWorker.{method} raised on rank 0 of 1 (actor actor_0): {cause_type}: bad",
        worker_class="FSDPWorker",
        method=method,
        rank=0,
        cause=RuntimeError("bad"),
        group="actor",
        cause_type=cause_type,
        cause_message="bad",
        cause_types=types,
        remote_traceback="Traceback (most recent call last):\n  ...\nbad",
    )
    return str(loop._worker_failure(error))


def test_rerun_advice_only_with_a_checkpoint_and_a_failure_a_rerun_would_not_repeat(tmp_path) -> None:
    loop = _Loop(tmp_path, 3)
    loop.global_step, loop.phase = 2, "rollout"
    runtime = ("RuntimeError", "Exception", "BaseException", "object")
    message = _failure(loop, "generate_sequences", "RuntimeError", runtime)
    assert message.startswith("the actor worker (rank 0) failed during generate_sequences at step 2 (phase rollout): ")
    assert "RuntimeError: bad\nno complete checkpoint yet: rerunning the same command starts over" in message
    assert "resume from it" not in message and "worker traceback:\nTraceback" in message

    _checkpoint(tmp_path, 1)
    message = _failure(loop, "generate_sequences", "RuntimeError", runtime)
    assert f"last complete checkpoint: {tmp_path / 'global_step_1'}, intact. Rerun the same command" in message

    for method, cause, types in [
        ("init_model", "RuntimeError", runtime),  # raised while the workers start
        ("load_checkpoint", "RuntimeError", runtime),  # the checkpoint a rerun would load again
        ("generate_sequences", "ValueError", ("ValueError", "Exception")),
        ("generate_sequences", "pydantic_core._pydantic_core.ValidationError", ("ValidationError", "ValueError")),
    ]:
        message = _failure(loop, method, cause, types)
        assert f"{cause}: bad\na rerun of the same command would fail the same way: fix the setting" in message
        assert "Rerun the same command to resume" not in message


def test_rerun_advice_follows_the_resume_mode(tmp_path) -> None:
    start = _checkpoint(tmp_path / "elsewhere", 4)
    loop = _Loop(tmp_path / "run", 3, f"trainer.load_checkpoint_path={start}")
    message = _failure(loop, "generate_sequences", "RuntimeError", ("RuntimeError",))
    assert f"no complete checkpoint yet: rerunning the same command starts again from {start}" in message
    _checkpoint(tmp_path / "run", 1)
    loop = _Loop(tmp_path / "run", 3, "trainer.resume_mode=disable")
    message = _failure(loop, "generate_sequences", "RuntimeError", ("RuntimeError",))
    assert "Rerun with trainer.resume_mode=auto to resume from it (trainer.resume_mode=disable would not)" in message


def test_a_worker_failing_at_start_becomes_training_aborted(tmp_path) -> None:
    loop = _Loop(tmp_path, 1)

    def start() -> None:
        raise WorkerError(
            "FSDPWorker.init_model raised", worker_class="FSDPWorker", method="init_model", rank=0,
            cause=RuntimeError("x"), group="actor", cause_type="ValueError", cause_message="max_tokens=32 exceeds",
            cause_types=("ValueError",),
        )  # fmt: skip

    loop._start_workers = start
    with pytest.raises(TrainingAborted, match=r"failed during init_model at step 0 \(phase init_workers\): Value"):
        loop.init_workers()


def test_without_online_filtering_the_reward_is_graded_in_a_thread(tmp_path) -> None:
    import threading

    trainer = _filtering_trainer(tmp_path, -1, all_same_tries=0)
    trainer.config.algorithm.online_filtering = False
    graded_in = []
    grade = trainer.reward_fn.compute_reward

    def compute_reward(batch: DataProto) -> tuple[torch.Tensor, dict[str, list[float]]]:
        graded_in.append(threading.current_thread().name)
        return grade(batch)

    trainer.reward_fn.compute_reward = compute_reward
    step = trainer._make_batch({}, {})
    scores, components, seconds = step.pending.result()
    assert step.components == {} and "token_level_scores" not in step.batch.batch, "filled in after the log-probs"
    assert graded_in[0].startswith("reward") and graded_in[0] != threading.current_thread().name
    assert components == {"overall": [1.0, 0.0, 1.0, 0.0]} and scores.shape == (4, 2) and seconds >= 0
    trainer._reward_thread.shutdown()
