"""A reward file in EasyR1's style: module-level ``REWARD_NAME``/``REWARD_TYPE`` and a batch ``compute_score``
that grades with ``mathruler``, as EasyR1's and the original Vision-SR1's reward files do."""

from __future__ import annotations

import re
from typing import Any

from mathruler.grader import extract_boxed_content, grade_answer

REWARD_NAME = "math"
REWARD_TYPE = "batch"

_THINK_THEN_BOXED = re.compile(r"\s*<think>.+?</think>.*\\boxed\{.+\}.*", re.DOTALL)


def compute_score(reward_inputs: list[dict[str, Any]], format_weight: float = 0.1) -> list[dict[str, float]]:
    """Per response: ``format`` (reasoning in <think> tags, answer boxed), ``accuracy`` (the boxed answer
    equals the ground truth) and ``overall``, their mix weighted by ``format_weight``."""
    scores = []
    for item in reward_inputs:
        response = item["response"]
        format_score = 1.0 if _THINK_THEN_BOXED.fullmatch(response) else 0.0
        accuracy = 1.0 if grade_answer(extract_boxed_content(response), item["ground_truth"]) else 0.0
        scores.append(
            {
                "overall": (1.0 - format_weight) * accuracy + format_weight * format_score,
                "format": format_score,
                "accuracy": accuracy,
            }
        )
    return scores
