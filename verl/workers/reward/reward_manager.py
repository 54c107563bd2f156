"""The reward manager: decodes responses, calls the user's reward function, checks what it returns.

``worker.reward.reward_function`` names the function as ``path/to/file.py:function`` or
``package.module:function``. Loading it runs that file's code, like any Python import: only point it at
code you trust.

``reward_type: batch`` calls ``fn(reward_inputs: list[dict], **kwargs) -> list[dict]`` once per batch;
``sequential`` calls ``fn(reward_input: dict, **kwargs) -> dict`` per response. Each input dict has
``response``, ``response_length``, ``ground_truth``, ``question`` and ``blind_answer`` (the self-reward
hop's answer, or None). Each result needs a finite ``overall``; other numeric keys are components logged as
``reward/<name>``. The score is placed on the last valid response token.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ...protocol import DataProto


class RewardFunctionError(RuntimeError):
    """The reward function raised or returned something unusable; the message names it and the sample."""


def load_reward_function(spec: str) -> Callable[..., Any]:
    """Import ``file.py:function`` or ``package.module:function``."""
    location, _, name = spec.rpartition(":")
    if not location or not name:
        raise ValueError(f"reward function {spec!r} must look like 'path/to/file.py:function' or 'pkg.module:fn'")
    if location.endswith(".py") or os.sep in location:
        if not os.path.isfile(location):
            raise FileNotFoundError(f"reward function file {location!r} (from {spec!r}) does not exist")
        module_name = f"vsr1_reward_{abs(hash(os.path.abspath(location)))}"
        module_spec = importlib.util.spec_from_file_location(module_name, location)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    function = getattr(module, name, None)
    if not callable(function):
        raise AttributeError(f"{location!r} has no function {name!r} (from reward function {spec!r})")
    return function


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


class RewardManager:
    """Turns a batch of rollouts into token-level scores plus per-component metrics."""

    def __init__(self, config: Any, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.spec = config.reward_function
        self.function = load_reward_function(config.reward_function)
        self.kwargs = dict(config.reward_function_kwargs or {})

    def _inputs(self, data: DataProto) -> list[dict[str, Any]]:
        responses = data.batch["responses"]
        lengths = data.batch["response_mask"].sum(dim=-1).tolist()
        nt = data.non_tensor_batch
        blind = nt.get("blind_answer")
        questions = nt.get("raw_question")
        inputs = []
        for i, length in enumerate(lengths):
            text = self.tokenizer.decode(
                responses[i, : int(length)], skip_special_tokens=self.config.skip_special_tokens
            )
            inputs.append(
                {
                    "response": text,
                    "response_length": int(length),
                    "ground_truth": str(nt["ground_truth"][i]),
                    "question": str(questions[i]) if questions is not None else "",
                    "blind_answer": blind[i] if blind is not None else None,
                }
            )
        return inputs

    def _call(self, inputs: list[dict[str, Any]]) -> list[dict[str, float]]:
        name = self.spec
        if self.config.reward_type == "batch":
            try:
                results = self.function(inputs, **self.kwargs)
            except Exception as exc:
                raise RewardFunctionError(
                    f"reward function {name} raised {type(exc).__name__}: {exc} (batch of {len(inputs)}; "
                    f"first response: {_clip(inputs[0]['response'])!r})"
                ) from exc
        else:
            results = []
            for i, item in enumerate(inputs):
                try:
                    results.append(self.function(item, **self.kwargs))
                except Exception as exc:
                    raise RewardFunctionError(
                        f"reward function {name} raised {type(exc).__name__}: {exc} on sample {i}; "
                        f"response: {_clip(item['response'])!r}"
                    ) from exc
        if not isinstance(results, (list, tuple)) or len(results) != len(inputs):
            got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
            raise RewardFunctionError(f"reward function {name} returned {got} results for {len(inputs)} responses")
        checked = []
        for i, result in enumerate(results):
            if isinstance(result, (int, float)):
                result = {"overall": float(result)}
            if not isinstance(result, dict) or "overall" not in result:
                raise RewardFunctionError(
                    f"reward function {name} returned {result!r:.80} for sample {i}; expected a dict with 'overall'"
                )
            for key, value in result.items():
                if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(float(value)):
                    raise RewardFunctionError(
                        f"reward function {name} returned {key}={value!r} for sample {i} (must be a finite number); "
                        f"response: {_clip(inputs[i]['response'])!r}"
                    )
            checked.append({k: float(v) for k, v in result.items()})
        return checked

    def compute_reward(self, data: DataProto) -> tuple[torch.Tensor, dict[str, list[float]]]:
        """(token-level scores of shape (B, R) with the score on the last valid token, components per sample)."""
        results = self._call(self._inputs(data))
        mask = data.batch["response_mask"]
        scores = torch.zeros(mask.shape, dtype=torch.float32)
        last = (mask.sum(dim=-1) - 1).clamp(min=0)
        scores[torch.arange(len(results)), last] = torch.tensor([r["overall"] for r in results])
        components: dict[str, list[float]] = defaultdict(list)
        for result in results:
            for key, value in result.items():
                components[key].append(value)
        return scores, dict(components)
