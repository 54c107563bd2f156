"""The reward manager: decodes responses, calls the user's reward function, checks what it returns.

``worker.reward.reward_function`` names the function as ``path/to/file.py:function`` or
``package.module:function``; without ``:function`` the function ``main`` is used (EasyR1's rule). Loading it
runs that file's code, like any Python import: only point it at code you trust.

A reward file written for EasyR1 runs unchanged: its module-level ``REWARD_TYPE`` (``"batch"`` or
``"sequential"``) decides how it is called, over ``worker.reward.reward_type``, and its ``REWARD_NAME`` names
it in the log and in error messages.

How the function is called is read from its signature (the positional parameters without a default):

- one (EasyR1, and ours): ``batch`` calls ``fn(reward_inputs: list[dict], **kwargs) -> list[dict]`` once per
  batch, ``sequential`` calls ``fn(reward_input: dict, **kwargs) -> dict`` per response. Each input dict has
  ``response``, ``response_length``, ``ground_truth``, ``question`` and ``blind_answer`` (the self-reward
  hop's answer, or None);
- two to four (older EasyR1 and the original Vision-SR1 repository, e.g. ``compute_score(predicts,
  ground_truths, questions, description_answers, format_weight=0.1)``): the leading ones of (responses,
  ground truths, questions, description answers) as lists (``batch``) or as strings, one response per call
  (``sequential``). The description answer is the self-reward hop's answer (``""`` where there is none).

Each result needs a finite ``overall``; other numeric keys are components logged as ``reward/<name>``. The
score is placed on the last valid response token.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import logging
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ...protocol import DataProto

logger = logging.getLogger(__name__)

DEFAULT_FUNCTION_NAME = "main"
"""the function used when a spec has no ``:function`` (EasyR1's default)"""
REWARD_TYPES = ("batch", "sequential")
_LIST_ARGUMENTS = ("responses", "ground_truths", "questions", "description_answers")


class RewardFunctionError(RuntimeError):
    """The reward function raised or returned something unusable; the message names it and the sample."""


class RewardFunctionLoadError(ValueError):
    """The reward function spec cannot be loaded: missing file or module, no such function, an import that
    fails, an unusable signature or ``REWARD_TYPE``. The message is one line that names the spec."""


@dataclass(frozen=True)
class LoadedReward:
    """A reward function and how to call it."""

    function: Callable[..., Any]
    name: str
    """the module's ``REWARD_NAME``, else the spec"""
    reward_type: str | None
    """the module's ``REWARD_TYPE``; ``None`` when the module does not declare one"""
    list_arguments: int
    """0: the function takes input dicts; 2-4: it takes that many of (responses, ground truths, questions,
    description answers)"""


def _split_spec(spec: str) -> tuple[str, str]:
    location, colon, name = spec.strip().rpartition(":")
    if not colon:
        location, name = name, DEFAULT_FUNCTION_NAME
    if not location or not name.isidentifier():
        raise RewardFunctionLoadError(
            f"reward function {spec!r} must look like 'path/to/file.py:function' or 'package.module:function'"
        )
    return location, name


def _import(location: str, spec: str) -> ModuleType:
    if location.endswith(".py") or os.sep in location or "/" in location:
        if not os.path.isfile(location):
            raise RewardFunctionLoadError(
                f"reward function file {location!r} (from {spec!r}) does not exist "
                f"(resolved to {os.path.abspath(location)!r})"
            )
        module_name = f"vsr1_reward_{abs(hash(os.path.abspath(location)))}"
        module_spec = importlib.util.spec_from_file_location(module_name, location)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise RewardFunctionLoadError(
                f"importing reward function file {location!r} (from {spec!r}) raised {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if exc.name and (location == exc.name or location.startswith(exc.name + ".")):
            raise RewardFunctionLoadError(
                f"reward function module {location!r} (from {spec!r}) not found: no such file or importable module"
            ) from exc
        raise RewardFunctionLoadError(
            f"importing reward function module {location!r} (from {spec!r}) failed: {exc}"
        ) from exc
    except Exception as exc:
        raise RewardFunctionLoadError(
            f"importing reward function module {location!r} (from {spec!r}) raised {type(exc).__name__}: {exc}"
        ) from exc


def _list_arguments(function: Callable[..., Any], spec: str) -> int:
    """How many positional arguments without a default the function takes: 1 means input dicts (returned as
    0), 2-4 the list convention."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (a builtin): assume input dicts
        return 0
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]
    if len(required) == 1:
        return 0
    if 2 <= len(required) <= len(_LIST_ARGUMENTS):
        return len(required)
    raise RewardFunctionLoadError(
        f"reward function {spec!r} takes {len(required)} positional arguments without a default ({required}); "
        "expected one (the input dicts) or 2-4 of (responses, ground_truths, questions, description_answers)"
    )


def load_reward(spec: str) -> LoadedReward:
    """Import the function named by ``spec`` with its module's ``REWARD_NAME``/``REWARD_TYPE`` and calling
    convention. Raises ``RewardFunctionLoadError`` (one line naming the spec) when it cannot be used."""
    location, name = _split_spec(spec)
    module = _import(location, spec)
    function = getattr(module, name, None)
    if not callable(function):
        candidates = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; its functions: {', '.join(sorted(candidates))}"
        raise RewardFunctionLoadError(f"{location!r} has no function {name!r} (from reward function {spec!r}){hint}")
    reward_type = getattr(module, "REWARD_TYPE", None)
    if reward_type is not None and reward_type not in REWARD_TYPES:
        raise RewardFunctionLoadError(
            f"{location!r} declares REWARD_TYPE={reward_type!r} (from reward function {spec!r}); "
            f"valid: {', '.join(REWARD_TYPES)}"
        )
    return LoadedReward(
        function=function,
        name=str(getattr(module, "REWARD_NAME", spec)),
        reward_type=reward_type,
        list_arguments=_list_arguments(function, spec),
    )


def load_reward_function(spec: str) -> Callable[..., Any]:
    """Import ``file.py:function`` or ``package.module:function`` (``main`` when no function is named) and
    check that it can be called. Raises ``RewardFunctionLoadError`` naming the spec."""
    return load_reward(spec).function


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


class RewardManager:
    """Turns a batch of rollouts into token-level scores plus per-component metrics."""

    def __init__(self, config: Any, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        loaded = load_reward(config.reward_function)
        self.function = loaded.function
        self.list_arguments = loaded.list_arguments
        self.kwargs = dict(config.reward_function_kwargs or {})
        self.reward_type = loaded.reward_type or config.reward_type
        self.spec = (
            config.reward_function
            if loaded.name == config.reward_function
            else f"{loaded.name} ({config.reward_function})"
        )
        logger.info(
            "reward function %s (%s), called as %s with %s",
            loaded.name,
            config.reward_function,
            self.reward_type,
            f"{loaded.list_arguments} lists" if loaded.list_arguments else "input dicts",
        )
        if loaded.reward_type is not None and loaded.reward_type != config.reward_type:
            logger.warning(
                "reward function %s declares REWARD_TYPE=%r: called as %s, not as worker.reward.reward_type=%s",
                config.reward_function,
                loaded.reward_type,
                loaded.reward_type,
                config.reward_type,
            )

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

    def _positional(self, item: dict[str, Any]) -> tuple[Any, ...]:
        """One response's arguments in the list convention (response, ground truth, question, description)."""
        description = "" if item["blind_answer"] is None else item["blind_answer"]
        return (item["response"], item["ground_truth"], item["question"], description)[: self.list_arguments]

    def _call_one(self, item: dict[str, Any]) -> Any:
        if self.list_arguments:
            return self.function(*self._positional(item), **self.kwargs)
        return self.function(item, **self.kwargs)

    def _call(self, inputs: list[dict[str, Any]]) -> list[dict[str, float]]:
        name = self.spec
        if self.reward_type == "batch":
            try:
                if self.list_arguments:
                    columns = zip(*(self._positional(item) for item in inputs))
                    results = self.function(*(list(column) for column in columns), **self.kwargs)
                else:
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
                    results.append(self._call_one(item))
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
