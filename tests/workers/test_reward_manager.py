"""Reward manager: loading by file or module, score placement, components, and clear errors."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.workers.reward.reward_manager import RewardFunctionError, RewardManager, load_reward_function


def _data(tokenizer, texts: list[str], truths: list[str], length: int = 12) -> DataProto:
    rows, masks = [], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:length]
        rows.append(ids + [tokenizer.pad_token_id] * (length - len(ids)))
        masks.append([1] * len(ids) + [0] * (length - len(ids)))
    return DataProto.from_dict(
        tensors={"responses": torch.tensor(rows), "response_mask": torch.tensor(masks)},
        non_tensors={
            "ground_truth": np.array(truths, dtype=object),
            "raw_question": np.array(["q"] * len(texts), dtype=object),
        },
    )


def _write(tmp_path, body: str) -> str:
    path = tmp_path / "my_reward.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _manager(spec: str, tokenizer, reward_type: str = "batch", **kwargs) -> RewardManager:
    config = SimpleNamespace(
        reward_function=spec, reward_function_kwargs=kwargs, reward_type=reward_type, skip_special_tokens=True
    )
    return RewardManager(config, tokenizer)


EXACT = """
def score(inputs, bonus=0.0):
    return [{"overall": float(x["response"].strip() == x["ground_truth"]) + bonus, "length": x["response_length"]}
            for x in inputs]

def one(item):
    return float(item["response"].strip() == item["ground_truth"])
"""


def test_scores_land_on_the_last_valid_token_with_components(tmp_path, tiny_tokenizer) -> None:
    manager = _manager(_write(tmp_path, EXACT) + ":score", tiny_tokenizer, bonus=0.5)
    data = _data(tiny_tokenizer, ["red", "blue circle", "3"], ["red", "blue", "3"])
    scores, components = manager.compute_reward(data)
    mask = data.batch["response_mask"]
    last = mask.sum(-1) - 1
    assert scores[torch.arange(3), last].tolist() == [1.5, 0.5, 1.5]
    assert float(scores.sum()) == pytest.approx(3.5), "nothing else is scored"
    assert components["overall"] == [1.5, 0.5, 1.5]
    assert components["length"] == [float(n) for n in mask.sum(-1).tolist()]


def test_sequential_reward_type(tmp_path, tiny_tokenizer) -> None:
    manager = _manager(_write(tmp_path, EXACT) + ":one", tiny_tokenizer, reward_type="sequential")
    _, components = manager.compute_reward(_data(tiny_tokenizer, ["red", "x"], ["red", "red"]))
    assert components["overall"] == [1.0, 0.0]


def test_package_reward_function_by_module_path() -> None:
    assert load_reward_function("os.path:join")("a", "b") == "a/b"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def f(inputs):\n    raise KeyError('boom')\n", r"my_reward.py:f raised KeyError: 'boom' \(batch of 2; first"),
        ("def f(inputs):\n    return [{'overall': 1.0}]\n", r"returned 1 results for 2 responses"),
        ("def f(inputs):\n    return [{'overall': float('nan')}] * 2\n", r"overall=nan for sample 0"),
        ("def f(inputs):\n    return [{'score': 1.0}] * 2\n", r"expected a dict with 'overall'"),
    ],
    ids=["raises", "wrong length", "nan", "no overall"],
)
def test_bad_reward_functions_give_clear_errors(tmp_path, tiny_tokenizer, body, message) -> None:
    manager = _manager(_write(tmp_path, body) + ":f", tiny_tokenizer)
    with pytest.raises(RewardFunctionError, match=message):
        manager.compute_reward(_data(tiny_tokenizer, ["red", "blue"], ["red", "blue"]))


def test_sequential_error_names_sample_and_response(tmp_path, tiny_tokenizer) -> None:
    body = "def f(item):\n    if item['response'] == 'blue':\n        raise ValueError('bad')\n    return 1.0\n"
    manager = _manager(_write(tmp_path, body) + ":f", tiny_tokenizer, reward_type="sequential")
    with pytest.raises(RewardFunctionError, match=r"raised ValueError: bad on sample 1; response: 'blue'"):
        manager.compute_reward(_data(tiny_tokenizer, ["red", "blue"], ["red", "blue"]))


def test_loading_errors_name_the_spec(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.py"):
        load_reward_function(str(tmp_path / "missing.py") + ":f")
    with pytest.raises(AttributeError, match="no function 'nope'"):
        load_reward_function("os.path:nope")
