"""The model-family registry: every tiny checkpoint maps to its family, unknown types are named, and what
a family says (vision tower) is what the workers use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoConfig

from verl.models.family import families, family_of_config, family_of_processor


@pytest.mark.parametrize(
    ("folder", "family"),
    [("qwen2_5_vl", "qwen2_vl"), ("qwen2_text", "qwen2_vl"), ("qwen3_vl", "qwen3_vl"), ("qwen3_text", "qwen3_vl")],
)
def test_each_tiny_checkpoint_belongs_to_its_family(tiny_dir, folder: str, family: str) -> None:
    assert family_of_config(AutoConfig.from_pretrained(tiny_dir / folder)).name == family
    assert folder in {b.folder for b in families()[family].tiny_builders}


def test_unknown_model_type_and_processor_are_named() -> None:
    with pytest.raises(ValueError, match="'llama'.*known types"):
        family_of_config(SimpleNamespace(model_type="llama"))
    with pytest.raises(ValueError, match="SimpleNamespace.*known processors"):
        family_of_processor(SimpleNamespace())


def test_freeze_vision_tower_freezes_exactly_the_families_tower(tiny_qwen3_vl) -> None:
    from transformers import AutoModelForImageTextToText

    from verl.workers.fsdp_workers import freeze_vision_tower

    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen3_vl)
    tower = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n)
    assert tower > 0 and freeze_vision_tower(model) == tower
    assert all(p.requires_grad == (".visual." not in n) for n, p in model.named_parameters())
