"""The start-up checks' pieces that the bad-input corpus (``tests/test_bad_inputs.py``) does not reach through
the entry point: the model's context length as vLLM derives it, and the reward-function suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import Qwen2Config

from verl.trainer.preflight import model_context_length, reward_function_problem


@pytest.mark.parametrize(
    ("rope_scaling", "expected"),
    [
        (None, 4096),
        ({"rope_type": "linear", "factor": 2.0}, 8192),  # 4096 x 2
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}, 4096),  # 1024 x 4
        (
            {
                "rope_type": "llama3",
                "factor": 8.0,
                "original_max_position_embeddings": 1024,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
            },
            4096,
        ),  # fmt: skip  # llama3 does not extend it
    ],
    ids=["plain", "linear", "yarn", "llama3"],
)
def test_model_context_length(rope_scaling, expected: int) -> None:
    config = Qwen2Config(max_position_embeddings=4096, rope_scaling=rope_scaling)
    assert model_context_length(config) == expected


def test_context_length_of_a_vision_language_model_is_its_language_model_s(tiny_vl: Path) -> None:
    from transformers import AutoConfig

    assert model_context_length(AutoConfig.from_pretrained(tiny_vl)) == 4096  # text_config of the tiny model


def test_reward_function_problem_is_none_for_a_good_spec_and_names_the_key_otherwise(tmp_path: Path) -> None:
    assert reward_function_problem("worker.reward.reward_function", "verl.rewards.functions:self_reward") is None
    path = tmp_path / "scores.py"
    path.write_text("def exact_match(inputs, **kw):\n    return []\n\ndef _helper():\n    pass\n")
    problem = reward_function_problem("worker.reward.reward_function", f"{path}:exact_matc")
    assert problem is not None and problem.startswith(f"worker.reward.reward_function={path}:exact_matc: ")
    assert "'exact_match'" in problem and "_helper" not in problem
    far = reward_function_problem("worker.reward.reward_function", f"{path}:zzz")
    assert far is not None and "did you mean" not in far
