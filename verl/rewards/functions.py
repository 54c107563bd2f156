"""Reward functions, in the batch form the reward manager calls:

``fn(reward_inputs: list[dict], format_weight: float = 0.1, **kwargs) -> list[dict[str, float]]``

Each input has ``response`` (decoded text), ``ground_truth`` and ``response_length`` (tokens), and optionally
``question`` and ``blind_answer`` (the self-reward hop's text-only answer from the response's description:
``None`` when the hop did not run or the response had no description; a list when the hop sampled several).
Each output has ``overall`` (the scalar reward) and named float components that the trainer logs.

Accuracy is graded on the last ``\\boxed{}`` of the response (the prompt asks for it there); a response without a
box scores 0. With format weight ``w``: ``overall = (1 - w) * accuracy + w * format`` (+ ``perception`` for the
self-reward), following Vision-SR1 (arXiv 2508.19652).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from .extract import extract_answer, extract_boxed, parse_choice
from .format import check_description, cot_format_ok, seethink_format_ok
from .grader import grade_answer, normalize_answer

__all__ = [
    "description_leaks",
    "grade_blind_answer",
    "self_reward",
    "seethink_reward",
    "validation_reward",
    "visionr1_cot_reward",
]

logger = logging.getLogger(__name__)
_warned_kwargs: set[str] = set()


def _check(reward_inputs: list[dict[str, Any]], format_weight: float, kwargs: dict[str, Any], name: str) -> None:
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"{name}: format_weight must be in [0, 1], got {format_weight}")
    for key in sorted(set(kwargs) - _warned_kwargs):
        _warned_kwargs.add(key)
        logger.warning("%s ignores the unknown keyword argument %r", name, key)
    for i, item in enumerate(reward_inputs):
        missing = [key for key in ("response", "ground_truth") if key not in item]
        if missing:
            raise KeyError(f"{name}: reward input {i} lacks {missing}; it has {sorted(item)}")


def _accuracy(response: str | None, ground_truth: Any) -> float:
    answer = extract_boxed(response)
    return float(answer is not None and grade_answer(answer, ground_truth))


def grade_blind_answer(answer: str | None, ground_truth: Any) -> float:
    """1.0 when a blind (second-hop) answer states the ground truth, else 0.0.

    The answer is found as validation finds it: the last ``\\boxed{}``, else the last ``<answer>`` tag, else a
    final "The answer is X" / "Answer: X" statement. The perception reward judges what the description let the
    blind reader conclude, not the blind answer's formatting (``perception_format`` logs that)."""
    found = extract_answer(answer) if answer else None
    return float(found is not None and grade_answer(found, ground_truth))


def _format_reward(reward_inputs: list[dict[str, Any]], format_weight: float, format_ok: Any) -> list[dict[str, float]]:
    scores = []
    for item in reward_inputs:
        response = item["response"] or ""
        accuracy = _accuracy(response, item["ground_truth"])
        fmt = float(format_ok(response))
        scores.append({"overall": (1 - format_weight) * accuracy + format_weight * fmt, "accuracy": accuracy,
                       "format": fmt})  # fmt: skip
    return scores


def visionr1_cot_reward(
    reward_inputs: list[dict[str, Any]], format_weight: float = 0.1, **kwargs: Any
) -> list[dict[str, float]]:
    """Vision-R1-style run: chain-of-thought format ``<think>...</think> ... \\boxed{}`` and answer accuracy,
    ``overall = (1 - w) * accuracy + w * format``."""
    _check(reward_inputs, format_weight, kwargs, "visionr1_cot_reward")
    return _format_reward(reward_inputs, format_weight, cot_format_ok)


def seethink_reward(
    reward_inputs: list[dict[str, Any]], format_weight: float = 0.1, **kwargs: Any
) -> list[dict[str, float]]:
    """See-think without self-reward (the paper's ablation): ``<description>/<think>/\\boxed{}`` format and
    accuracy, ``overall = (1 - w) * accuracy + w * format``; no perception term."""
    _check(reward_inputs, format_weight, kwargs, "seethink_reward")
    return _format_reward(reward_inputs, format_weight, seethink_format_ok)


# ----------------------------------------------------------------------------------------------- self-reward

_LETTER_MENTION = r"(?:\({L}\)|(?<![A-Za-z]){L}\)|(?i:answer|option|choice)\s*(?i:is|:)?\s*:?\s*\(?{L}(?![A-Za-z]))"


def description_leaks(description: str, ground_truth: Any) -> bool:
    """Does the description already state the final answer? True when it holds a ``\\boxed{`` / ``\\fbox{``, or
    the ground truth as a standalone token:

    - an option letter (``B``, ``(B)``) counts only as an option mention: ``(B)``, ``B)``, ``answer is B``,
      ``option B`` (case-sensitive), never the article "A" in "A red square";
    - anything else matches case-insensitively on word boundaries, so "2" is found in "there are 2 dogs" but
      not in "12", "2.5" or "x2", and "red" not in "reddish".

    For counting or reading questions a faithful description contains the answer; the guard is meant for data
    whose answers are derived (math), which is why ``leak_guard`` is off by default."""
    if not description:
        return False
    if re.search(r"\\(?:boxed|fbox)\s*\{", description):
        return True
    truth = normalize_answer(ground_truth)
    if not truth:
        return False
    choice = parse_choice(truth)
    if choice is not None and not re.fullmatch(r"[a-z]", truth):
        return re.search(_LETTER_MENTION.format(L=choice.letter), description) is not None
    body = r"\s+".join(re.escape(part) for part in truth.split())
    pattern = rf"(?<![A-Za-z0-9])(?<!\d[.,]){body}(?![A-Za-z0-9])(?![.,]\d)"
    return re.search(pattern, description, flags=re.IGNORECASE) is not None


def _as_list(blind_answer: Any) -> list[str | None]:
    if blind_answer is None:
        return []
    if isinstance(blind_answer, str):
        return [blind_answer]
    if isinstance(blind_answer, Iterable):
        return list(blind_answer)
    return [str(blind_answer)]


def self_reward(
    reward_inputs: list[dict[str, Any]], format_weight: float = 0.1, leak_guard: bool = False, **kwargs: Any
) -> list[dict[str, float]]:
    """Vision-SR1 self-reward (v1 sum): ``overall = (1 - w) * accuracy + w * format + perception``.

    - ``accuracy``: the response's boxed answer graded against the ground truth;
    - ``format``: see-think format (description, think, box in order);
    - ``perception``: the blind answer graded against the ground truth (``grade_blind_answer``; the mean when
      there are several). 0 unless the response opens with a non-empty description that holds no boxed answer
      (``check_description``), and 0 when ``blind_answer`` is None: the whole response is never graded in its
      place, and an answer copied into the description, or a description written after the reasoning, earns
      nothing;
    - ``perception_format``: the blind answer has ``<think>...</think> ... \\boxed{}`` (mean over blind answers);
    - ``description_missing``: 1 when the response has no non-empty description;
    - ``description_misplaced``: 1 when it has one, but not before ``<think>`` at the start of the response;
    - ``description_leak``: 1 when the opening description holds a ``\\boxed{}``/``\\fbox{}``;
    - ``leak_guarded``: 1 when ``leak_guard`` zeroed the perception because the description itself states the
      answer (``description_leaks``; opt-in, as a faithful description of a counting image names the count).
    """
    _check(reward_inputs, format_weight, kwargs, "self_reward")
    scores = []
    for item in reward_inputs:
        response = item["response"] or ""
        truth = item["ground_truth"]
        accuracy = _accuracy(response, truth)
        fmt = float(seethink_format_ok(response))
        description = check_description(response)
        blind = _as_list(item.get("blind_answer")) if description.text is not None else []
        perception = perception_format = 0.0
        if blind:
            perception = sum(grade_blind_answer(b, truth) for b in blind) / len(blind)
            perception_format = sum(float(cot_format_ok(b)) for b in blind) / len(blind)
        leaked = leak_guard and description.text is not None and description_leaks(description.text, truth)
        if leaked:
            perception = 0.0
        scores.append(
            {
                "overall": (1 - format_weight) * accuracy + format_weight * fmt + perception,
                "accuracy": accuracy,
                "format": fmt,
                "perception": perception,
                "perception_format": perception_format,
                "description_missing": float(description.status == "missing"),
                "description_misplaced": float(description.status == "misplaced"),
                "description_leak": float(description.status == "leak"),
                "leak_guarded": float(leaked),
            }
        )
    return scores


def validation_reward(
    reward_inputs: list[dict[str, Any]], format_weight: float = 0.0, **kwargs: Any
) -> list[dict[str, float]]:
    """Validation: accuracy only (``overall = accuracy``). The answer is the last ``\\boxed{}``, else the last
    ``<answer>`` tag, else the last "Answer: X" line, so a model that ignores the format is still measured on
    its answers. ``format_weight`` is accepted so one kwargs dict serves training and validation, and ignored."""
    _check(reward_inputs, format_weight, kwargs, "validation_reward")
    scores = []
    for item in reward_inputs:
        answer = extract_answer(item["response"] or "")
        accuracy = float(answer is not None and grade_answer(answer, item["ground_truth"]))
        scores.append({"overall": accuracy, "accuracy": accuracy})
    return scores
