"""Bit-for-bit comparison of checkpointed state (nested dicts, lists, tensors), shared by the resume tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def assert_same_state(a: Any, b: Any, where: str) -> None:
    """Assert ``a`` and ``b`` hold the same keys, lengths, tensors (``torch.equal``) and values; ``where`` names the
    path of the first difference."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, sorted(a)[:5], sorted(b)[:5])
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, (where, a, b)


def checkpoint_state(step_dir: Path, scratch: Path) -> dict[str, Any]:
    """Everything a resume reads from one checkpoint (the actor's weights, optimizer, scheduler, RNG and the
    trainer's state), minus what is unique to a save (its fingerprint and the rollout-sync counter)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    flat = scratch / f"{step_dir.parent.name}_{step_dir.name}.pt"
    dcp_to_torch_save(step_dir / "actor" / "dcp", flat)
    state = torch.load(flat, weights_only=False)
    state = {k: v for k, v in state.items() if not k.startswith("fingerprint_rank_")}
    extra = torch.load(step_dir / "actor" / "extra_state_rank_0.pt", weights_only=False)
    extra.pop("weights_version")
    trainer_state = json.loads((step_dir / "trainer_state.json").read_text())
    return {"dcp": state, "extra": extra, "trainer": trainer_state}
