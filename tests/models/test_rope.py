"""Our M-RoPE position ids equal transformers' for each model family (padded batch, two images, odd sizes;
a video on Qwen3-VL, whose frames are separate blocks behind timestamps)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from verl.models.family import family_of_config, family_of_processor
from verl.models.rope import get_rope_index


def test_rope_index_matches_transformers(any_tiny_vl, any_tiny_processor) -> None:
    from transformers import AutoModelForImageTextToText

    tiny_processor = any_tiny_processor
    model = AutoModelForImageTextToText.from_pretrained(any_tiny_vl)
    family = family_of_processor(tiny_processor)
    assert family is family_of_config(model.config)
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
        ours = family.position_ids(
            tiny_processor, inputs["input_ids"][b], inputs["attention_mask"][b],
            image_grid_thw=inputs["image_grid_thw"][2 * b : 2 * b + 2],
        )  # fmt: skip
        assert torch.equal(ours, reference[:, b])


def test_qwen3_vl_video_frames_are_blocks_behind_timestamps(tiny_qwen3_vl) -> None:
    """A 4-frame video on Qwen3-VL: two temporal patches, each its own block after a ``<t seconds>`` text."""
    import numpy as np
    from transformers import AutoModelForImageTextToText

    from verl.utils.tokenizer import get_processor

    processor = get_processor(str(tiny_qwen3_vl))
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen3_vl)
    frames = np.zeros((4, 64, 96, 3), dtype=np.uint8)
    content = [{"type": "video"}, {"type": "text", "text": "which way?"}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)  # fmt: skip
    inputs = processor(text=[text], videos=[frames], return_tensors="pt", videos_kwargs={"fps": 2.0,
                       "do_sample_frames": False})  # fmt: skip
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 6]]
    assert "seconds>" in processor.tokenizer.decode(inputs["input_ids"][0])
    reference, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )  # fmt: skip
    ours = family_of_processor(processor).position_ids(
        processor, inputs["input_ids"][0], inputs["attention_mask"][0], video_grid_thw=inputs["video_grid_thw"]
    )
    assert torch.equal(ours, reference[:, 0])
    # Read as one Qwen2.5-VL block, the two frames' tokens are not contiguous (a timestamp lies between).
    with pytest.raises(ValueError, match="consecutive vision tokens"):
        get_rope_index(inputs["input_ids"][0], inputs["attention_mask"][0], video_grid_thw=inputs["video_grid_thw"],
                       image_token_id=model.config.image_token_id, video_token_id=model.config.video_token_id)  # fmt: skip


def test_text_only_positions_are_arange() -> None:
    ids = torch.tensor([5, 6, 7, 8])
    mask = torch.tensor([0, 1, 1, 1])
    pos = get_rope_index(ids, mask, image_token_id=99, video_token_id=98)
    assert pos.tolist() == [[0, 0, 1, 2]] * 3


def test_missing_grid_raises() -> None:
    with pytest.raises(ValueError, match="image_grid_thw"):
        get_rope_index(torch.tensor([1, 99, 99]), image_token_id=99, video_token_id=98)
