"""``DataProto.pad_to_match``: how the second hop's text-only sequences are padded to the main batch's shape."""

from __future__ import annotations

import torch

from verl.protocol import DataProto


def _batch(prompt: list[list[int]], response: list[list[int]], prompt_len: int, response_len: int) -> DataProto:
    """Left-padded prompts and right-padded responses (0 = pad), as the rollout returns them."""
    rows = len(prompt)
    prompts = torch.zeros(rows, prompt_len, dtype=torch.long)
    responses = torch.zeros(rows, response_len, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt, response)):
        prompts[i, prompt_len - len(p) :] = torch.tensor(p)
        responses[i, : len(r)] = torch.tensor(r)
    response_mask = (responses != 0).long()
    input_ids = torch.cat([prompts, responses], dim=1)
    attention_mask = (input_ids != 0).long()
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "response_mask": response_mask,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0) * attention_mask,
            "advantages": response_mask.float() * 0.5,
            "temperature": torch.full((rows,), 0.5),
        }
    )


def test_pad_to_pads_prompts_left_and_responses_right() -> None:
    short = _batch([[5, 6]], [[7]], prompt_len=2, response_len=1)
    long = _batch([[1, 2, 3, 4]], [[8, 9, 10]], prompt_len=4, response_len=3)
    padded = short.pad_to_match(long).batch
    assert padded["prompts"].tolist() == [[0, 0, 5, 6]]
    assert padded["responses"].tolist() == [[7, 0, 0]]
    assert padded["response_mask"].tolist() == [[1, 0, 0]]
    assert padded["advantages"].tolist() == [[0.5, 0.0, 0.0]]
    assert padded["temperature"].tolist() == [0.5]  # per-row values are not widened
    assert padded["input_ids"].tolist() == [[0, 0, 5, 6, 7, 0, 0]]
    assert padded["attention_mask"].tolist() == [[0, 0, 1, 1, 1, 0, 0]]
    # The layout invariant the actor relies on: input_ids = prompts ++ responses.
    assert torch.equal(padded["input_ids"], torch.cat([padded["prompts"], padded["responses"]], dim=1))
    # Padded batches of both shapes now concatenate (the second hop appends its rows to the update batch).
    both = DataProto.concat([short.pad_to_match(long), long.pad_to_match(short)])
    assert both.batch["input_ids"].shape == (2, 7)


def test_pad_to_leaves_a_batch_of_the_same_shape_alone() -> None:
    data = _batch([[1, 2]], [[3, 4]], prompt_len=2, response_len=2)
    assert data.pad_to_match(data) is data
