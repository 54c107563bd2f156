"""A reward file in EasyR1's layout that scores one response per call (``REWARD_TYPE = "sequential"``)."""

from typing import Any

from mathruler.grader import grade_answer

REWARD_NAME = "one_by_one"
REWARD_TYPE = "sequential"


def compute_score(reward_input: dict[str, Any], bonus: float = 0.0) -> dict[str, float]:
    if not isinstance(reward_input, dict):
        raise TypeError(f"expected one input dict, got {type(reward_input).__name__}")
    answer = reward_input["response"].strip()
    return {"overall": (1.0 if grade_answer(answer, reward_input["ground_truth"]) else 0.0) + bonus}
