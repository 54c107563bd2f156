"""Token balancing: reorder a batch so every data-parallel rank gets about the same number of tokens.

``DP_COMPUTE_PROTO`` hands rank i the i-th contiguous chunk of the batch, so the order decides each rank's
load. Long and short responses are spread over equal-size bins, largest first into the lightest bin
that still has room (the classic greedy for balanced partitioning), and the bins are laid end to end.
"""

from __future__ import annotations

import heapq

import torch


def balanced_order(seq_lens: list[int], world_size: int) -> list[int]:
    """A permutation of ``range(len(seq_lens))`` whose ``world_size`` equal chunks have near-equal sums."""
    n = len(seq_lens)
    if world_size <= 1 or n % world_size:
        return list(range(n))
    capacity = n // world_size
    bins: list[list[int]] = [[] for _ in range(world_size)]
    heap = [(0, rank) for rank in range(world_size)]  # (tokens so far, rank)
    for index in sorted(range(n), key=lambda i: -seq_lens[i]):
        full = []
        load, rank = heapq.heappop(heap)
        while len(bins[rank]) >= capacity:
            full.append((load, rank))
            load, rank = heapq.heappop(heap)
        bins[rank].append(index)
        heapq.heappush(heap, (load + seq_lens[index], rank))
        for item in full:
            heapq.heappush(heap, item)
    return [i for b in bins for i in sorted(b)]


def chunk_token_sums(attention_mask: torch.Tensor, world_size: int) -> list[int]:
    """Tokens per rank if the batch were split into ``world_size`` contiguous chunks as it stands."""
    return [int(c.sum()) for c in attention_mask.chunk(world_size)]
