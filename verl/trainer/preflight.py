"""Start-up checks: everything knowable from the config, the model's own config and the data, checked in
seconds before Ray starts, so a mistake costs one line and exit status 2 instead of a worker's traceback.

``check_config`` runs on the loaded config alone (plus the model folder's ``config.json`` and tokenizer and
the reward functions' modules); ``check_data`` runs on the datasets the trainer built. Both raise one
``ConfigError`` listing every problem found, each on its own line, naming the key to change and its value.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import os
from typing import Any

from ..utils.config_utils import ConfigError
from ..utils.dataset import RLHFDataset
from ..utils.ulysses import config_problem
from ..workers.reward.reward_manager import load_reward_function
from .config import PPOConfig

# vLLM derives the engine's longest context from these rope scaling types by multiplying by ``factor``.
_SCALED_ROPE_TYPES = ("linear", "dynamic", "yarn")


def check_config(config: PPOConfig) -> None:
    """Check the model folders, the sequence lengths against the model, the second hop's length and the reward
    functions; raise one ``ConfigError`` naming every key to change."""
    problems: list[str] = []
    model = config.worker.actor.model
    hf_config = _check_model_folder(
        model.model_path, "worker.actor.model.model_path", problems, model.trust_remote_code
    )
    if model.tokenizer_path and model.tokenizer_path != model.model_path:
        _check_tokenizer(model.tokenizer_path, "worker.actor.model.tokenizer_path", problems, model.trust_remote_code)
    elif hf_config is not None:
        _check_tokenizer(model.model_path, "worker.actor.model.model_path", problems, model.trust_remote_code)
    if config.algorithm.use_critic and config.worker.critic.model.model_path:
        critic = config.worker.critic.model
        critic_config = _check_model_folder(
            critic.model_path, "worker.critic.model.model_path", problems, critic.trust_remote_code
        )
        if critic_config is not None:
            problems.append(
                config_problem(critic_config, config.worker.critic.ulysses_size, "worker.critic.ulysses_size")
            )
    if hf_config is not None:
        problems += length_problems(config, model_context_length(hf_config), model.model_path)
        problems.append(config_problem(hf_config, config.worker.actor.ulysses_size, "worker.actor.ulysses_size"))
    problems = [problem for problem in problems if problem]
    problems += hop_length_problems(config)
    for key, section in (("worker.reward", config.worker.reward), ("worker.val_reward", config.worker.val_reward)):
        problem = reward_function_problem(f"{key}.reward_function", section.reward_function)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError.combine([ConfigError(problem) for problem in dict.fromkeys(problems)])


def check_model(model: Any, key: str = "worker.actor.model") -> None:
    """The model folder check alone (the SFT entry point's start-up check): ``config.json`` and a tokenizer."""
    problems: list[str] = []
    if _check_model_folder(model.model_path, f"{key}.model_path", problems, model.trust_remote_code) is not None:
        path, path_key = (
            (model.tokenizer_path, "tokenizer_path") if model.tokenizer_path else (model.model_path, "model_path")
        )
        _check_tokenizer(path, f"{key}.{path_key}", problems, model.trust_remote_code)
    if problems:
        raise ConfigError.combine([ConfigError(problem) for problem in problems])


def check_data(config: PPOConfig, datasets: list[RLHFDataset | None]) -> None:
    """Check the rows the datasets kept against the rollout engine's per-prompt image and video limits."""
    limit = config.worker.rollout.limit_images
    problems = []
    if config.worker.rollout.name == "vllm":  # vLLM reserves memory for videos only when told to
        videos = config.worker.rollout.limit_videos
        for dataset in datasets:
            most = max(dataset.rows, key=lambda row: len(row.videos), default=None) if dataset else None
            if most is not None and len(most.videos) > videos:
                problems.append(
                    f"worker.rollout.limit_videos={videos}, but {dataset.data_path}: row {most.index} has "
                    f"{len(most.videos)} video(s); set worker.rollout.limit_videos={len(most.videos)}"
                )
    for dataset in datasets:
        if dataset is None or limit <= 0:
            continue
        most = max(dataset.rows, key=lambda row: len(row.images), default=None)
        if most is not None and len(most.images) > limit:
            problems.append(
                f"worker.rollout.limit_images={limit}, but {dataset.data_path}: row {most.index} has "
                f"{len(most.images)} images; set worker.rollout.limit_images={len(most.images)} (or 0 for the "
                "engine's default)"
            )
    if problems:
        raise ConfigError.combine([ConfigError(problem) for problem in problems])


# ----------------------------------------------------------------------------- model folder


def _check_model_folder(path: str | None, key: str, problems: list[str], trust_remote_code: bool) -> Any | None:
    """The model's ``AutoConfig`` (``None`` after adding a problem): a local folder must hold ``config.json``;
    a hub id must resolve to a config."""
    if not path:
        return None
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        listing = sorted(os.listdir(path))
        shown = ", ".join(listing[:6]) + (", ..." if len(listing) > 6 else "") if listing else "it is empty"
        problems.append(
            f"{key}={path}: not a model folder (no config.json; {shown}); point it at a folder with config.json, "
            "the weights and the tokenizer files (e.g. a checkpoint's actor/huggingface folder) or at a hub id"
        )
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # OSError, ValueError, KeyError (unknown model_type), ...
        problems.append(f"{key}={path}: cannot read the model's config.json: {_one_line(exc)}")
        return None


def _check_tokenizer(path: str, key: str, problems: list[str], trust_remote_code: bool) -> None:
    from ..utils.tokenizer import get_tokenizer

    try:
        get_tokenizer(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        problems.append(f"{key}={path}: no tokenizer loads from it: {_one_line(exc)}")


def model_context_length(hf_config: Any) -> int | None:
    """The longest sequence the model takes: its language model's ``max_position_embeddings``, times the rope
    scaling factor for the scaling types that extend it (as vLLM derives its limit); ``None`` when unknown."""
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    length = getattr(text, "max_position_embeddings", None) or getattr(hf_config, "max_position_embeddings", None)
    if not isinstance(length, int):
        return None
    scaling = getattr(text, "rope_scaling", None) or {}
    rope_type = scaling.get("rope_type", scaling.get("type"))
    if rope_type in _SCALED_ROPE_TYPES and isinstance(scaling.get("factor"), (int, float)):
        base = scaling.get("original_max_position_embeddings", length) if rope_type == "yarn" else length
        length = int(base * scaling["factor"])
    return length


# ----------------------------------------------------------------------------- lengths


def length_problems(config: PPOConfig, context: int | None, model_path: str) -> list[str]:
    """Prompt + response against the model's context, and the rollout engine's ``max_model_len`` against both."""
    if context is None:
        return []
    data, rollout = config.data, config.worker.rollout
    total = data.max_prompt_length + data.max_response_length
    problems = []
    if total > context:
        problems.append(
            f"data.max_prompt_length={data.max_prompt_length} + data.max_response_length={data.max_response_length}"
            f" = {total} tokens, more than the model's context of {context} (max_position_embeddings in "
            f"{model_path}/config.json); lower data.max_prompt_length or data.max_response_length so they sum to "
            f"at most {context}"
        )
    if rollout.max_model_len is not None and rollout.max_model_len > context:
        problems.append(
            f"worker.rollout.max_model_len={rollout.max_model_len} is more than the model's context of {context} "
            f"(max_position_embeddings in {model_path}/config.json); set worker.rollout.max_model_len to at most "
            f"{context} or to null"
        )
    return problems


def hop_length_problems(config: PPOConfig) -> list[str]:
    """Generation lengths asked of the policy's rollout engine, which answers at most
    ``data.max_response_length`` tokens: the second hop's and the validation override's ``max_tokens``."""
    limit = config.data.max_response_length
    problems = []
    hop = config.algorithm.self_reward
    if hop.enable and hop.backend == "policy" and hop.max_tokens > limit:
        problems.append(
            f"algorithm.self_reward.max_tokens={hop.max_tokens} is more than data.max_response_length={limit} (the "
            f"policy's rollout engine generates the blind answers); set algorithm.self_reward.max_tokens={limit} or "
            f"less, or raise data.max_response_length"
        )
    override = config.worker.rollout.val_override_config.get("max_tokens")
    if isinstance(override, int) and override > limit:
        problems.append(
            f"worker.rollout.val_override_config.max_tokens={override} is more than data.max_response_length="
            f"{limit}; lower it or raise data.max_response_length"
        )
    return problems


# ----------------------------------------------------------------------------- reward functions


def reward_function_problem(key: str, spec: str | None) -> str | None:
    """``None`` when ``spec`` loads (``load_reward_function``, as the reward manager will), else one line naming
    the key, the spec and why, with the nearest names when the function is not in its module."""
    try:
        load_reward_function(spec)
    except Exception as exc:
        if spec is None:
            return f"{key} is not set; set it to 'path/to/file.py:function' or 'package.module:function'"
        message = _one_line(exc)
        if "did you mean" not in message.lower():
            message += _suggestion(spec)
        return f"{key}={spec}: {type(exc).__name__}: {message}"
    return None


def _suggestion(spec: str) -> str:
    """`` (did you mean 'x'?)`` from the public callables of the module the spec names, or ``""``."""
    location, _, name = spec.rpartition(":")
    try:
        if location.endswith(".py") or os.sep in location:
            with open(location, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        else:
            module = importlib.import_module(location)
            names = [n for n in dir(module) if callable(getattr(module, n))]
    except Exception:  # the module itself is missing or broken: its own error says so
        return ""
    close = difflib.get_close_matches(name, [n for n in names if not n.startswith("_")], n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
