"""FLOPs counter: parameter count equals the real model's, and the formula by hand."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from verl.models.flops import dense_parameters, mfu, step_flops


@pytest.mark.parametrize("folder", ["qwen2_text", "qwen3_text"])
def test_dense_parameters_match_the_text_model(tiny_dir, folder: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir / folder)
    assert dense_parameters(model.config) == sum(p.numel() for p in model.parameters())


def test_step_flops_by_hand(tiny_vl) -> None:
    config = AutoConfig.from_pretrained(tiny_vl)
    n = dense_parameters(config)
    # two layers, two heads of dim 64: attention adds 12 * 2 * 2 * 64 per token per context token
    expected = 6 * n * (3 + 5) + 12 * 2 * 2 * 64 * (3 * 3 + 5 * 5)
    assert step_flops(config, [3, 5]) == pytest.approx(expected)


def test_mfu_needs_a_known_peak(tiny_vl) -> None:
    config = AutoConfig.from_pretrained(tiny_vl)
    if not torch.cuda.is_available():
        assert mfu(config, [10], seconds=1.0) is None, "no peak is known for a CPU"
    value = mfu(config, [100, 100], seconds=2.0, n_devices=2, peak=1.0)  # 1 TFLOP/s per device
    assert value == pytest.approx(step_flops(config, [100, 100]) / 2.0 / 2e12)
