"""Metric loggers selected by ``trainer.logger``: console, file (JSONL), wandb, tensorboard, swanlab, mlflow.

Third-party backends are imported only when chosen, and a missing one names the extra that installs it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .import_utils import require

BACKENDS = ("console", "file", "wandb", "tensorboard", "swanlab", "mlflow")


def _scalar(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value


class ConsoleLogger:
    """One compact line per step with a progress bar and an ETA (the headline keys), and one line per
    validation (accuracy, blind accuracy, language-shortcut rate)."""

    HEADLINE = (
        "reward/overall",
        "reward/accuracy",
        "reward/format",
        "reward/perception",
        "response_length/mean",
        "sft/loss",
        "sft/val_loss",
        "actor/kl_loss",
        "actor/entropy",
        "actor/grad_norm",
        "timing/step",
    )

    def __init__(self, total_steps: int | None, stream: TextIO | None = None) -> None:
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        self.start = time.time()
        self.first_step: int | None = None

    VALIDATION = ("val/overall", "val/blind_accuracy", "val/language_shortcut_rate")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.first_step is None:
            self.first_step, self.start = step, time.time()
        if not metrics or any(not key.startswith("val/") for key in metrics):  # not a validation alone
            parts = [self._progress(step)]
            for key in self.HEADLINE:
                if key in metrics and (value := _scalar(metrics[key])) is not None:
                    parts.append(f"{key.split('/')[-1] if key != 'timing/step' else 'step_s'}={value:.3g}")
            print(" ".join(parts), file=self.stream, flush=True)
        validation = [
            f"{key[len('val/') :]}={value:.3g}"
            for key in self.VALIDATION
            if key in metrics and (value := _scalar(metrics[key])) is not None
        ]
        if validation:
            print(f"validation at step {step}: " + " ".join(validation), file=self.stream, flush=True)

    def _progress(self, step: int) -> str:
        if not self.total_steps:
            return f"step {step}"
        done = min(step / self.total_steps, 1.0)
        bar = "#" * int(done * 20)
        elapsed = time.time() - self.start
        steps_run = max(step - self.first_step, 1)  # steps since the first logged one
        eta = elapsed / steps_run * max(self.total_steps - step, 0)
        return f"[{bar:<20}] {step}/{self.total_steps} eta {int(eta // 60)}m{int(eta % 60):02d}s"

    def finish(self) -> None:
        pass


class FileLogger:
    """Appends one JSON object per step (``{"step": N, ...metrics}``) to ``metrics.jsonl`` in the run folder."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (kept open for the run)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step}
        for key, value in metrics.items():
            number = _scalar(value)
            row[key] = (
                number if number is not None and math.isfinite(number) else (None if number is not None else value)
            )
        self.file.write(json.dumps(row, default=str) + "\n")
        self.file.flush()

    def finish(self) -> None:
        self.file.close()


class _ThirdParty:
    def __init__(self, backend: str, project: str, experiment: str, config: dict[str, Any], log_dir: str) -> None:
        self.backend = backend
        if backend == "wandb":
            self.module = require("wandb")
            self.run = self.module.init(project=project, name=experiment, config=config)
        elif backend == "tensorboard":
            require("tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(log_dir, "tensorboard"))
        elif backend == "swanlab":
            self.module = require("swanlab")
            self.module.init(project=project, experiment_name=experiment, config=config)
        elif backend == "mlflow":
            self.module = require("mlflow")
            self.module.set_experiment(project)
            self.module.start_run(run_name=experiment)
            self.module.log_params({k: str(v)[:250] for k, v in _flatten(config).items()})

    def log(self, metrics: dict[str, Any], step: int) -> None:
        scalars = {k: v for k, v in ((k, _scalar(v)) for k, v in metrics.items()) if v is not None}
        if self.backend == "wandb":
            self.module.log(scalars, step=step)
        elif self.backend == "tensorboard":
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)
        elif self.backend == "swanlab":
            self.module.log(scalars, step=step)
        elif self.backend == "mlflow":
            self.module.log_metrics({k.replace("@", "_at_"): v for k, v in scalars.items()}, step=step)

    def finish(self) -> None:
        if self.backend == "wandb":
            self.module.finish()
        elif self.backend == "tensorboard":
            self.writer.close()
        elif self.backend == "swanlab":
            self.module.finish()
        elif self.backend == "mlflow":
            self.module.end_run()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Tracking:
    """Fans every ``log(metrics, step)`` out to the chosen backends."""

    def __init__(
        self,
        backends: Sequence[str],
        project: str,
        experiment: str,
        log_dir: str,
        config: dict[str, Any] | None = None,
        total_steps: int | None = None,
    ) -> None:
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown trainer.logger entries {unknown}; choose from {list(BACKENDS)}")
        self.loggers: list[Any] = []
        for backend in backends:
            if backend == "console":
                self.loggers.append(ConsoleLogger(total_steps))
            elif backend == "file":
                self.loggers.append(FileLogger(os.path.join(log_dir, "metrics.jsonl")))
            else:
                self.loggers.append(_ThirdParty(backend, project, experiment, config or {}, log_dir))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log(metrics, step)

    def finish(self) -> None:
        for logger in self.loggers:
            logger.finish()
