"""Lazy imports of optional packages, with an error that says which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> (pip extra, what needs it)
OPTIONAL = {
    "wandb": ("loggers", "trainer.logger=wandb"),
    "tensorboard": ("loggers", "trainer.logger=tensorboard"),
    "swanlab": ("loggers", "trainer.logger=swanlab"),
    "mlflow": ("loggers", "trainer.logger=mlflow"),
    "openai": ("judge", "the LLM judge and the external self-reward hop"),
    "google.genai": ("judge", "the Gemini judge backend"),
    "vllm": ("cpu or gpu profile of setup.sh", "worker.rollout.name=vllm"),
    "flash_attn": ("gpu profile of setup.sh", "flash-attention kernels"),
}


class MissingDependencyError(ImportError):
    """An optional package is needed by the chosen configuration but is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra, used_by = OPTIONAL.get(module, (None, None))
        if extra is None:
            raise
        how = f"pip install 'vision-sr1[{extra}]'" if " " not in extra else f"install the {extra}"
        raise MissingDependencyError(f"{used_by} needs the '{module}' package: {how} ({exc})") from exc
