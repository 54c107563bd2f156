"""Bit-for-bit comparison of checkpointed state (nested dicts, lists, tensors), shared by the resume tests."""

from __future__ import annotations

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
