"""Reward code in one place: answer extraction, equivalence grading, format checks and the reward functions
that the reward manager loads (``verl.rewards.functions:self_reward`` and friends)."""

from .extract import extract_answer, extract_boxed, extract_choice, extract_tag
from .format import DescriptionCheck, check_description, cot_format_ok, extract_description, seethink_format_ok
from .functions import (
    description_leaks,
    grade_blind_answer,
    seethink_reward,
    self_reward,
    validation_reward,
    visionr1_cot_reward,
)
from .grader import grade_answer, grader_stats, normalize_answer

__all__ = [
    "DescriptionCheck",
    "check_description",
    "grade_blind_answer",
    "cot_format_ok",
    "description_leaks",
    "extract_answer",
    "extract_boxed",
    "extract_choice",
    "extract_description",
    "extract_tag",
    "grade_answer",
    "grader_stats",
    "normalize_answer",
    "self_reward",
    "seethink_format_ok",
    "seethink_reward",
    "validation_reward",
    "visionr1_cot_reward",
]
