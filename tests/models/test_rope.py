"""Our M-RoPE position ids equal transformers' Qwen2.5-VL ones (padded batch, two images, odd sizes)."""

from __future__ import annotations

import torch
from PIL import Image

from verl.models.rope import get_rope_index


def test_rope_index_matches_transformers(tiny_vl, tiny_processor) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_vl)
    images = [Image.new("RGB", (140, 84), (0, 0, 255)), Image.new("RGB", (56, 112), (0, 255, 0))]
    content = [{"type": "text", "text": "look"}, {"type": "image"}, {"type": "text", "text": "and"},
               {"type": "image"}, {"type": "text", "text": "?"}]  # fmt: skip
    text = tiny_processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                              tokenize=False)  # fmt: skip
    tiny_processor.tokenizer.padding_side = "left"
    inputs = tiny_processor(text=[text, text.replace("look", "look look look")], images=images + images,
                            return_tensors="pt", padding=True)  # fmt: skip
    reference, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )  # fmt: skip
    assert inputs["attention_mask"][0].sum() < inputs["attention_mask"].shape[1], "first row must be padded"
    for b in range(2):
        ours = get_rope_index(
            inputs["input_ids"][b], inputs["attention_mask"][b], inputs["image_grid_thw"][2 * b : 2 * b + 2],
            image_token_id=model.config.image_token_id, video_token_id=model.config.video_token_id,
        )  # fmt: skip
        assert torch.equal(ours, reference[:, b])


def test_text_only_positions_are_arange() -> None:
    ids = torch.tensor([5, 6, 7, 8])
    mask = torch.tensor([0, 1, 1, 1])
    pos = get_rope_index(ids, mask, image_token_id=99, video_token_id=98)
    assert pos.tolist() == [[0, 0, 1, 2]] * 3


def test_missing_grid_raises() -> None:
    import pytest

    with pytest.raises(ValueError, match="image_grid_thw"):
        get_rope_index(torch.tensor([1, 99, 99]), image_token_id=99, video_token_id=98)
