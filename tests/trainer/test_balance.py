"""Token balancing across data-parallel ranks."""

from __future__ import annotations

import random

import torch

from verl.trainer.balance import balanced_order, chunk_token_sums


def test_balanced_order_is_a_permutation_with_equal_chunks_and_even_loads() -> None:
    lengths = [100, 1, 90, 2, 80, 3, 70, 4]  # as they come: rank 0 would get 100+1+90+2 = 193, rank 1 157
    order = balanced_order(lengths, 2)
    assert sorted(order) == list(range(8))
    halves = [sum(lengths[i] for i in order[:4]), sum(lengths[i] for i in order[4:])]
    assert abs(halves[0] - halves[1]) <= 10  # 175 vs 175 here
    assert halves == [175, 175]


def test_heaviest_rank_is_within_one_sequence_of_the_mean_and_better_on_average() -> None:
    rng = random.Random(0)
    before_total = after_total = 0
    for _ in range(50):
        world = rng.choice([2, 4])
        lengths = [rng.randint(1, 200) for _ in range(world * rng.randint(2, 6))]
        order = balanced_order(lengths, world)
        mask = torch.zeros(len(lengths), 200)
        for row, length in enumerate(lengths):
            mask[row, :length] = 1
        before, after = max(chunk_token_sums(mask, world)), max(chunk_token_sums(mask[order], world))
        assert after <= sum(lengths) / world + max(lengths)
        before_total, after_total = before_total + before, after_total + after
    assert after_total < before_total


def test_single_rank_or_indivisible_batch_keeps_the_order() -> None:
    assert balanced_order([5, 1, 3], 1) == [0, 1, 2]
    assert balanced_order([5, 1, 3], 2) == [0, 1, 2]
