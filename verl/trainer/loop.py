"""The loop every trainer shares: resume, when to validate and save, tracking, the progress file, phase timing
and what a failing worker tells the user.

:class:`TrainingLoop` runs ``global_step`` from where the run stands (0, or the step of the checkpoint it resumed
from) to ``total_steps``. A subclass (the RL trainer, the SFT trainer) supplies the step and the parts a
checkpoint holds::

    _start_workers()        build the worker groups (failures become TrainingAborted with their cause)
    _checkpoint_groups()    {"actor": group, "critic": group}: what a checkpoint saves, one subfolder each
    _trainer_state()        JSON-able state beside the step (dataloader position, KL coefficient, ...)
    _load_trainer_state(s)  restore it on resume
    train_step()            one step; returns its metrics
    validate()              validation metrics (only called when ``has_validation``)
    data_epoch              the training data's epoch, logged as ``training/epoch``

and may override ``_resumable``, ``_logs_to_trim``, ``_check_step``, ``_finish``, ``_role`` and
``validate_at_last_step``. The loop per step: ``train_step`` → validation when due → the metrics row (logged
before the checkpoint, so a kill while saving leaves a row that the resume drops and redoes) → ``_check_step`` →
checkpoint when due.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..utils import checkpoint as ckpt
from ..utils.config_utils import ConfigError, config_to_dict, save_config
from ..utils.tracking import Tracking
from . import TrainingAborted

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
# Written into trainer.save_checkpoint_path by rank 0's node at start-up and read back on every node and by the
# trainer process: each rank writes its own checkpoint shards there and the trainer completes the checkpoint.
SHARED_FOLDER_MARKER = ".shared_folder_check"
# Tests only: "<Ray node id>:<folder>" makes that node see every path it checks under <folder>, so that one
# machine can play a node whose checkpoint folder is not the one the others see.
TEST_NODE_ROOT_ENV = "VSR1_TEST_NODE_ROOT"

# Worker methods whose failure is a set-up failure: model loading, engine start, loading the checkpoint to
# resume from. A rerun repeats it.
SETUP_METHODS = frozenset({"__init__", "init_model", "load_checkpoint"})
# Exception types (or their bases) that mean bad configuration or input: a rerun repeats them too.
SETUP_ERROR_TYPES = frozenset(
    {
        "ValueError",
        "TypeError",
        "KeyError",
        "ConfigError",
        "ValidationError",
        "NotImplementedError",
        "FileNotFoundError",
        "ImportError",
    }
)


@contextmanager
def timer(name: str, timing: dict[str, float]) -> Iterator[None]:
    """Add the seconds the ``with`` block takes to ``timing[name]`` (summed when a step runs it several times)."""
    start = time.perf_counter()
    yield
    timing[name] = timing.get(name, 0.0) + time.perf_counter() - start


def should_save(step: int, total_steps: int, save_freq: int) -> bool:
    """Every ``save_freq`` steps and at the last step; ``save_freq=-1``: only at the last step."""
    return step >= total_steps or (save_freq > 0 and step % save_freq == 0)


def should_validate(step: int, total_steps: int, val_freq: int, at_last_step: bool = False) -> bool:
    """Every ``val_freq`` steps and at the last step; ``val_freq=-1``: never, or only at the last step when
    ``at_last_step`` (the SFT trainer's validation loss)."""
    last = step >= total_steps
    if val_freq > 0:
        return last or step % val_freq == 0
    return at_last_step and last


def resume_path(resume_mode: str, save_checkpoint_path: str, load_checkpoint_path: str | None) -> str | None:
    """The checkpoint a run starts from: ``disable`` none; ``path`` ``load_checkpoint_path``; ``auto`` the newest
    complete checkpoint in ``save_checkpoint_path`` (the run's own progress), else ``load_checkpoint_path`` when
    set, else none (a fresh start)."""
    if resume_mode == "disable":
        return None
    if resume_mode == "path":
        return load_checkpoint_path
    latest = ckpt.find_latest(save_checkpoint_path)
    return str(latest) if latest is not None else load_checkpoint_path


def drop_rows_after(path: str, step: int) -> int:
    """Rewrite a JSONL log (``metrics.jsonl``, ``responses.jsonl``) without rows whose ``step`` is above
    ``step`` (a torn last line goes too); returns how many were dropped. Missing files are left alone."""
    import json

    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if isinstance(row, dict) and int(row.get("step", 0)) > step:
                dropped += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, path)
    return dropped


def _node_view(path: str) -> str:
    """``path`` as this node sees it: the same path, unless a test gives this Ray node its own root."""
    node_id, _, root = os.environ.get(TEST_NODE_ROOT_ENV, "").partition(":")
    if root:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_node_id() == node_id:
            return root + path
    return path


def write_folder_marker(folder: str, token: str) -> None:
    """Write ``token`` into the shared-folder marker in ``folder`` (made when missing), as this node sees it."""
    folder = _node_view(folder)
    os.makedirs(folder, exist_ok=True)
    ckpt.write_json_atomic(os.path.join(folder, SHARED_FOLDER_MARKER), {"token": token})


def read_folder_marker(folder: str) -> str | None:
    """The token in ``folder``'s shared-folder marker as this node sees it; None when there is none."""
    import json

    try:
        with open(os.path.join(_node_view(folder), SHARED_FOLDER_MARKER), encoding="utf-8") as f:
            return str(json.load(f)["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_folder_marker(folder: str) -> None:
    """Remove ``folder``'s shared-folder marker (this node's view)."""
    with suppress(FileNotFoundError):
        os.remove(os.path.join(_node_view(folder), SHARED_FOLDER_MARKER))


def _host() -> str:
    import socket

    return socket.gethostname()


def is_setup_error(method: str, cause_types: tuple[str, ...] | list[str]) -> bool:
    """Whether a worker failure would happen again on a rerun: raised while the workers start (``init_model``)
    or of a configuration/input type (``ValueError``, pydantic's ``ValidationError``, ...)."""
    return method in SETUP_METHODS or any(name in SETUP_ERROR_TYPES for name in cause_types)


class TrainingLoop:
    """The shared loop (see the module docstring for what a subclass supplies)."""

    validate_at_last_step: bool = False
    """validate at the last step even when ``val_freq=-1`` (the SFT trainer's validation loss)"""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.run_dir = config.trainer.save_checkpoint_path
        os.makedirs(self.run_dir, exist_ok=True)
        save_config(config, os.path.join(self.run_dir, "config.yaml"))
        self.global_step = 0
        self.total_steps = 0
        self.phase = "start"
        self.val_dataset: Any = None

    # ------------------------------------------------------------------ subclass hooks

    def _start_workers(self) -> None:
        raise NotImplementedError

    def _checkpoint_groups(self) -> dict[str, Any]:
        raise NotImplementedError

    def _trainer_state(self) -> dict[str, Any]:
        return {}

    def _load_trainer_state(self, state: dict[str, Any]) -> None:
        pass

    def train_step(self) -> dict[str, Any]:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        return {}

    @property
    def data_epoch(self) -> int:
        return 0

    @property
    def has_validation(self) -> bool:
        return self.val_dataset is not None

    def _val_only(self) -> bool:
        """Validate once and stop (the RL trainer's ``trainer.val_only``)."""
        return False

    def _val_before_train(self) -> bool:
        """Validate at step 0 before the first update (the RL trainer's ``trainer.val_before_train``)."""
        return False

    def _resumable(self) -> bool:
        """Whether this run resumes at all (the RL trainer's ``val_only`` does not)."""
        return True

    def _logs_to_trim(self) -> list[str]:
        """JSONL logs whose rows after the resumed step are dropped (``metrics.jsonl`` always is)."""
        return []

    def _check_step(self, metrics: dict[str, Any]) -> None:
        """Called after a step's row is logged, before its checkpoint; may raise TrainingAborted."""

    def _finish(self) -> None:
        """Called once after the last step."""

    def _role(self, group_name: str) -> str:
        """The role a worker group plays, for messages (``actor`` → ``actor_rollout_ref``)."""
        return group_name or "unknown"

    # ------------------------------------------------------------------ progress and timing

    def _enter(self, phase: str) -> None:
        """Record the step and phase in ``<run>/progress.json``: after a kill or a hang it shows where the run
        was, and the error of a failing worker names it."""
        self.phase = phase
        ckpt.write_json_atomic(
            os.path.join(self.run_dir, PROGRESS_FILE), {"step": self.global_step, "phase": phase, "time": time.time()}
        )

    @contextmanager
    def timer(self, name: str, timing: dict[str, float], phase: str | None = None) -> Iterator[None]:
        """``with self.timer("gen", timing, phase="rollout"):`` enters the phase (``progress.json``; ``phase``
        defaults to ``name``) and adds the block's seconds to ``timing[name]``."""
        self._enter(phase or name)
        with timer(name, timing):
            yield

    # ------------------------------------------------------------------ workers

    def run_on_ray(self) -> dict[str, Any]:
        """Start Ray (``trainer.ray_num_cpus``; a local instance or ``$RAY_ADDRESS``), the workers, then the loop;
        the workers are shut down however it ends. Both entry points end with this."""
        from .main import init_ray

        init_ray(self.config.trainer.ray_num_cpus)
        try:
            self.init_workers()
            return self.fit()
        finally:
            self.shutdown()

    def init_workers(self) -> None:
        """Start the worker groups, then resume; a worker failing to start raises TrainingAborted with its cause."""
        from ..single_controller import ClusterError, WorkerError

        self.phase = "init_workers"
        try:
            self._start_workers()
            self.check_shared_checkpoint_folder()
            self.resume()
        except WorkerError as exc:
            raise self._worker_failure(exc) from exc
        except ClusterError as exc:
            t = self.config.trainer
            raise ConfigError(
                f"trainer.nnodes={t.nnodes} x trainer.n_gpus_per_node={t.n_gpus_per_node} does not fit the Ray "
                f"cluster: {exc}"
            ) from exc

    def _resource_pool(self) -> Any:
        """The resource pool of the checkpointed worker groups (None for groups that are not Ray groups)."""
        for group in self._checkpoint_groups().values():
            pool = getattr(group, "resource_pool", None)
            if pool is not None:
                return pool
        return None

    def check_shared_checkpoint_folder(self) -> None:
        """Stop with a config error unless ``trainer.save_checkpoint_path`` is one folder that every node of the
        workers and this process see: rank 0's node writes a marker with a fresh token there, every node and this
        process read it back. Every rank writes its own shards into the folder and this process completes each
        checkpoint there, so a folder local to each node would fail at the first save or, worse, at resume."""
        import uuid

        pool = self._resource_pool()
        if pool is None:
            return
        folder = self.config.trainer.save_checkpoint_path
        token = uuid.uuid4().hex
        pool.run_on_each_node(write_folder_marker, folder, token, nodes=[0])
        try:
            seen = pool.run_on_each_node(read_folder_marker, folder)
            names = pool.node_names()
            blind = [name for name, found in zip(names, seen) if found != token]
            if read_folder_marker(folder) != token:
                blind.append(f"the trainer process on {_host()}")
        finally:
            pool.run_on_each_node(remove_folder_marker, folder, nodes=[0])
        if blind:
            raise ConfigError(
                f"trainer.save_checkpoint_path={folder} is not the same folder on every node: the marker rank 0's "
                f"{names[0]} wrote there is not seen by {', '.join(blind)}. Every rank writes its own checkpoint "
                "shards into this folder and the trainer process completes each checkpoint there: set it to a path "
                "on storage that every node mounts at the same place (NFS, Lustre, a cloud file system)"
            )

    def shutdown(self) -> None:
        for group in reversed(list(self._checkpoint_groups().values())):
            if group is not None:
                group.shutdown()
        if hasattr(self, "tracking"):
            self.tracking.finish()

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> str:
        """Write ``global_step_N`` (each group's part, then the trainer state and the marker) and rotate."""
        t = self.config.trainer
        folder = ckpt.partial_dir(t.save_checkpoint_path, self.global_step)
        for name, group in self._checkpoint_groups().items():
            if group is not None:
                group.save_checkpoint(str(folder / name))
        state = {"global_step": self.global_step, **self._trainer_state()}
        final = ckpt.finalize(t.save_checkpoint_path, self.global_step, state)
        ckpt.rotate(t.save_checkpoint_path, t.save_limit)
        return str(final)

    def resume(self) -> str | None:
        """Load the checkpoint ``trainer.resume_mode`` names (see :func:`resume_path`) and drop the rows a killed
        attempt logged after its step; returns the checkpoint's path, or None for a fresh start."""
        t = self.config.trainer
        if t.resume_mode == "disable" or not self._resumable():
            return None
        path = resume_path(t.resume_mode, t.save_checkpoint_path, t.load_checkpoint_path)
        if path is not None:
            state = ckpt.read_trainer_state(path)
            for name, group in self._checkpoint_groups().items():
                if group is not None:
                    group.load_checkpoint(os.path.join(path, name))
            self._load_trainer_state(state)
            self.global_step = int(state["global_step"])
            logger.info("resumed from %s at step %d", path, self.global_step)
        # Rows a killed attempt logged after this point are redone now: drop them so each step is logged once.
        keep = self.global_step if path is not None else -1
        dropped = sum(
            drop_rows_after(log, keep) for log in [os.path.join(self.run_dir, METRICS_FILE), *self._logs_to_trim()]
        )
        if dropped:
            logger.info("dropped %d logged row(s) after step %d from an interrupted attempt", dropped, keep)
        return path

    def _last_checkpoint(self) -> str | None:
        latest = ckpt.find_latest(self.config.trainer.save_checkpoint_path)
        return str(latest) if latest is not None else None

    def _resume_advice(self) -> str:
        """What a rerun of the same command does now: resume from the newest complete checkpoint, or start over."""
        t = self.config.trainer
        latest = self._last_checkpoint()
        if latest is None:
            if t.resume_mode != "disable" and t.load_checkpoint_path:
                return (
                    f"no complete checkpoint yet: rerunning the same command starts again from {t.load_checkpoint_path}"
                )
            return "no complete checkpoint yet: rerunning the same command starts over from step 0"
        if t.resume_mode != "auto":  # disable starts over, path loads load_checkpoint_path again
            return (
                f"last complete checkpoint: {latest}, intact. Rerun with trainer.resume_mode=auto to resume from it "
                f"(trainer.resume_mode={t.resume_mode} would not)"
            )
        return (
            f"last complete checkpoint: {latest}, intact. Rerun the same command to resume from it "
            "(trainer.resume_mode=auto)"
        )

    # ------------------------------------------------------------------ failures

    def _worker_failure(self, exc: Exception) -> TrainingAborted:
        """One message for a failed worker: who (and on which node, with several), where, the exception raised
        inside it, and what to do next
        (resume from the last checkpoint, or, when a rerun would fail the same way, fix what the cause names)."""
        method = getattr(exc, "method", "?")
        cause_type = getattr(exc, "cause_type", "") or type(exc).__name__
        cause_message = getattr(exc, "cause_message", None)
        if cause_message is not None:  # on one line: pydantic's messages span several
            cause = f"{cause_type}: " + " | ".join(line.strip() for line in cause_message.splitlines() if line.strip())
        else:
            cause = str(exc).split("\n", 1)[0]
        node = getattr(exc, "node", "")  # named when the workers span several nodes
        head = (
            f"the {self._role(getattr(exc, 'group', ''))} worker (rank {getattr(exc, 'rank', '?')})"
            + (f" on {node}" if node else "")
            + f" failed during {method} at step {self.global_step} (phase {self.phase}): {cause}"
        )
        if is_setup_error(method, tuple(getattr(exc, "cause_types", ()))):
            latest = self._last_checkpoint()
            kept = f" ({latest} is kept; resume_mode=auto starts from it)" if latest else ""
            advice = (
                "a rerun of the same command would fail the same way: fix the setting or input the cause names, "
                f"then rerun{kept}"
            )
        else:
            advice = self._resume_advice()
        details = getattr(exc, "remote_traceback", "") or ""
        return TrainingAborted(f"{head}\n{advice}" + (f"\n\nworker traceback:\n{details.rstrip()}" if details else ""))

    # ------------------------------------------------------------------ the loop

    def _start_tracking(self) -> None:
        t = self.config.trainer
        self.tracking = Tracking(
            t.logger,
            t.project_name,
            t.experiment_name,
            self.run_dir,
            config=config_to_dict(self.config),
            total_steps=self.total_steps,
        )

    def fit(self) -> dict[str, Any]:
        """Run the remaining steps; returns the last logged row (a failing worker raises TrainingAborted)."""
        from ..single_controller import WorkerError

        try:
            return self._fit()
        except WorkerError as exc:
            raise self._worker_failure(exc) from exc

    def _fit(self) -> dict[str, Any]:
        t = self.config.trainer
        self._start_tracking()
        row: dict[str, Any] = {}
        val_only = self._val_only()
        if val_only or (self._val_before_train() and self.global_step == 0 and self.has_validation):
            self._enter("validation")
            row = self.validate()
            self.tracking.log(row, step=self.global_step)
            if val_only:
                return row
        while self.global_step < self.total_steps:
            self.global_step += 1
            row = self.train_step()
            row["training/global_step"] = self.global_step
            row["training/epoch"] = self.data_epoch
            if self.has_validation and should_validate(
                self.global_step, self.total_steps, t.val_freq, self.validate_at_last_step
            ):
                self._enter("validation")
                row.update(self.validate())
            save = should_save(self.global_step, self.total_steps, t.save_freq)
            if save:
                row["checkpoint/path"] = str(ckpt.step_dir(t.save_checkpoint_path, self.global_step))
            self.tracking.log(row, step=self.global_step)
            self._check_step(row)
            if save:
                self._enter("checkpoint")
                self.save_checkpoint()
        self._finish()
        self._enter("done")
        return row
