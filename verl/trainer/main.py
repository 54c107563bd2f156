"""Entry point: ``python3 -m verl.trainer.main config=path.yaml key.sub=value ...``.

Loads the config (dataclass defaults ← YAML ← command line), prints and saves it, checks it against the model
and the data (``verl.trainer.preflight``), starts Ray (a local instance, or the cluster named by
``RAY_ADDRESS``), builds the workers and runs the loop. A mistake found before Ray starts is one line naming the
key to change and exit status 2. Ctrl-C shuts the workers down before exiting; a run stopped by a dead worker or
by too many non-finite steps prints why and exits with status 1 (rerun the same command to resume from the last
complete checkpoint).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from ..utils.config_utils import ConfigError, format_config, load_config
from . import TrainingAborted
from .config import PPOConfig

# The driver's environment variables that every worker on every node gets (Ray's job-wide runtime_env): the
# engine's and the project's switches, the Hugging Face cache and token, the tracker's settings, and the import
# path (so the workers import the same ``verl`` as the driver).
WORKER_ENV_PREFIXES = ("VLLM_", "TOKENIZERS_", "VSR1_", "HF_", "WANDB_")
WORKER_ENV_NAMES = ("PYTHONPATH",)


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (this process's by default) that the workers get, on every node.

    Under ``ray job submit`` the job's own ``runtime_env`` variables are left out: they are this process's
    variables too, already reach every worker, and Ray refuses a driver that sets one of them again."""
    import json

    environ = dict(os.environ if environ is None else environ)
    try:
        job = json.loads(environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        from_job = set((job.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, AttributeError):
        from_job = set()
    return {
        k: v
        for k, v in environ.items()
        if (k.startswith(WORKER_ENV_PREFIXES) or k in WORKER_ENV_NAMES) and k not in from_job
    }


def init_ray(num_cpus: int | None) -> None:
    """Start a local Ray instance of the run's own with ``num_cpus`` (all when ``None``), or join the cluster named by
    ``$RAY_ADDRESS`` (``ray start`` on each node, or ``ray job submit``); the workers, on every node, get this
    process's variables that :func:`worker_env` selects. Whether the cluster has the nodes the run asks for is
    checked when the workers' placement groups are made (:class:`~verl.single_controller.ClusterError`)."""
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": worker_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(runtime_env=runtime_env)
    else:
        # "local": a new instance of this run's own, never the cluster a `ray start` on this machine last made.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env)


def run(argv: list[str] | None = None) -> dict[str, float]:
    config = load_config(PPOConfig, argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine, as RL frameworks run it
    from ..utils.console import quiet_console, verbose
    from . import preflight
    from .ray_trainer import RayPPOTrainer

    # Everything knowable from the config, the model folder and the reward functions is checked first, before
    # Ray starts and before the run folder exists: bad input fails in seconds, as a config error naming the key.
    preflight.check_config(config)
    run_dir = config.trainer.save_checkpoint_path
    # Library chatter goes to <run>/run.log; the terminal keeps progress, validation, warnings once, errors.
    with quiet_console(os.path.join(run_dir, "run.log"), enabled=not verbose()) as console:
        console.log_only(format_config(config))
        print(f"run folder {run_dir}: config.yaml, metrics.jsonl, run.log (full log)", flush=True)
        try:
            trainer = RayPPOTrainer(config)
        except ValueError as exc:  # a dataset's DatasetError, or a check the trainer makes on the config and data
            raise ConfigError(" ".join(str(exc).split())) from exc
        preflight.check_data(config, [trainer.train_dataset, trainer.val_dataset])
        return trainer.run_on_ray()


def run_cli(run_fn: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> None:
    """Run an entry point's ``run`` and turn the failures users cause or meet into one line and an exit
    status: 2 for a config error, 1 for a run that had to stop, 130 for Ctrl-C (workers shut down first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_fn(argv)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingAborted as exc:
        print(f"training stopped: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(
            "interrupted: workers shut down; resume with the same command (trainer.resume_mode=auto)", file=sys.stderr
        )
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> None:
    run_cli(run, argv)


if __name__ == "__main__":
    main()
