"""Fixtures for the worker tests: the tiny VL model and a batch of prompts with images and responses."""

from __future__ import annotations

import pytest
import torch

from verl.models.family import family_of_processor
from verl.protocol import DataProto, collate_fn
from verl.utils.dataset import RLHFDataset


@pytest.fixture(scope="session")
def model(tiny_vl):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_vl, dtype=torch.float32)


@pytest.fixture(scope="session")
def qwen3_vl_model(tiny_qwen3_vl):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_qwen3_vl, dtype=torch.float32)


@pytest.fixture(scope="session")
def make_vl_batch(tiny_dir, tiny_tokenizer, tiny_processor):
    """Builds prompts with images plus random right-padded responses (lengths 8, 5, 1, 7 repeating); the
    Qwen2.5-VL processor unless another family's is given."""

    def make(rows: int = 4, response_length: int = 8, seed: int = 0, processor=None) -> DataProto:
        processor = processor or tiny_processor
        ds = RLHFDataset(str(tiny_dir / "data" / "val.parquet"), tiny_tokenizer, processor, max_prompt_length=64)
        items = collate_fn([ds[i] for i in range(rows)])
        generator = torch.Generator().manual_seed(seed)
        responses = torch.randint(10, 400, (rows, response_length), generator=generator)
        lengths = torch.tensor([8, 5, 1, 7] * rows)[:rows].clamp(max=response_length)
        response_mask = (torch.arange(response_length)[None] < lengths[:, None]).long()
        responses[response_mask == 0] = tiny_tokenizer.pad_token_id
        input_ids = torch.cat([items["input_ids"], responses], dim=1)
        attention_mask = torch.cat([items["attention_mask"], response_mask], dim=1)
        family = family_of_processor(processor)
        position_ids = torch.stack(
            [
                family.position_ids(
                    processor, input_ids[i], attention_mask[i], items["multi_modal_inputs"][i]["image_grid_thw"]
                )
                for i in range(rows)
            ]
        )
        return DataProto.from_dict(
            tensors={
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "position_ids": position_ids,
                "responses": responses,
                "response_mask": response_mask,
            },
            non_tensors={"multi_modal_inputs": items["multi_modal_inputs"]},
        )

    return make


@pytest.fixture(scope="session")
def reference_log_probs():
    """One plain padded forward over a whole batch (no trimming, no micro-batches): the ground truth."""

    def compute(model, batch: DataProto) -> torch.Tensor:
        b, mm = batch.batch, batch.non_tensor_batch["multi_modal_inputs"]
        length = b["responses"].shape[1]
        with torch.no_grad():
            logits = model(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                position_ids=b["position_ids"].transpose(0, 1),
                pixel_values=torch.cat([m["pixel_values"] for m in mm]),
                image_grid_thw=torch.cat([m["image_grid_thw"] for m in mm]),
            ).logits[:, -length - 1 : -1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, b["responses"].unsqueeze(-1)).squeeze(-1)
        return lp * b["response_mask"]

    return compute
