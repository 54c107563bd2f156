"""A reward file in EasyR1's layout: module metadata, a batch function over input dicts, mathruler grading."""

import re
from typing import Any

from mathruler.grader import extract_boxed_content, grade_answer

REWARD_NAME = "boxed_math"
REWARD_TYPE = "batch"


def _well_formed(response: str) -> float:
    """1 when the reasoning sits in think tags and the answer in a box."""
    return 1.0 if re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", response, re.DOTALL) else 0.0


def compute_score(reward_inputs: list[dict[str, Any]], format_weight: float = 0.1) -> list[dict[str, float]]:
    results = []
    for item in reward_inputs:
        correct = 1.0 if grade_answer(extract_boxed_content(item["response"]), item["ground_truth"]) else 0.0
        shape = _well_formed(item["response"])
        results.append({"overall": (1 - format_weight) * correct + format_weight * shape, "format": shape,
                        "accuracy": correct})  # fmt: skip
    return results


def main(reward_inputs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """What a spec without ``:function`` calls."""
    return [{"overall": 2.0} for _ in reward_inputs]
