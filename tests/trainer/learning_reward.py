"""A reward a freshly initialised tiny model can learn within a few dozen steps, for the learning tests.

The random tiny model samples nearly uniformly from its vocabulary, so a reward for *which* tokens it emits
moves as soon as the policy gradient reaches the weights: here, the share of the response's tokens that start
a new word (begin with a space). About a fifth of the tiny tokenizer's pieces do, so the untrained policy
scores about 0.2 and a policy that learned it scores close to 1.
"""

from __future__ import annotations

from typing import Any


def word_start_rate(reward_inputs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """``overall`` = spaces in the response per response token, capped at 1 (0 for an empty response)."""
    scores = []
    for item in reward_inputs:
        tokens = max(int(item["response_length"]), 1)
        scores.append({"overall": min(item["response"].count(" ") / tokens, 1.0)})
    return scores
