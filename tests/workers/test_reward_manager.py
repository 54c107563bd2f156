"""Reward manager: loading by file or module, score placement, components, and clear errors."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.workers.reward.reward_manager import (
    RewardFunctionError,
    RewardFunctionLoadError,
    RewardManager,
    load_reward_function,
)

FILES = Path(__file__).parent / "reward_files"


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
    with pytest.raises(RewardFunctionLoadError, match="missing.py"):
        load_reward_function(str(tmp_path / "missing.py") + ":f")
    with pytest.raises(RewardFunctionLoadError, match="no function 'nope'"):
        load_reward_function("os.path:nope")


def test_misspelt_function_suggests_the_nearest_name() -> None:
    spec = f"{FILES / 'easyr1_math.py'}:compute_scor"
    with pytest.raises(RewardFunctionLoadError) as info:
        load_reward_function(spec)
    message = str(info.value)
    assert "no function 'compute_scor'" in message and "did you mean 'compute_score'?" in message
    assert spec in message and "\n" not in message


def test_missing_module_names_the_spec() -> None:
    with pytest.raises(
        RewardFunctionLoadError, match=r"module 'no_such_pkg.rewards' \(from 'no_such_pkg.rewards:fn'\) not found"
    ):
        load_reward_function("no_such_pkg.rewards:fn")
    assert issubclass(RewardFunctionLoadError, ValueError)


def test_failing_import_and_bad_metadata_are_load_errors(tmp_path) -> None:
    broken = _write(tmp_path, "import not_installed_anywhere\n\ndef f(inputs):\n    return []\n")
    with pytest.raises(RewardFunctionLoadError, match="No module named 'not_installed_anywhere'"):
        load_reward_function(broken + ":f")
    odd = tmp_path / "odd.py"
    odd.write_text("REWARD_TYPE = 'parallel'\n\ndef f(inputs):\n    return []\n")
    with pytest.raises(RewardFunctionLoadError, match="REWARD_TYPE='parallel'.*valid: batch, sequential"):
        load_reward_function(f"{odd}:f")
    many = tmp_path / "many.py"
    many.write_text("def f(a, b, c, d, e):\n    return []\n")
    with pytest.raises(RewardFunctionLoadError, match="takes 5 positional arguments"):
        load_reward_function(f"{many}:f")


def test_spec_without_function_calls_main(tiny_tokenizer) -> None:
    assert load_reward_function(str(FILES / "easyr1_math.py")).__name__ == "main"
    manager = _manager(str(FILES / "easyr1_math.py"), tiny_tokenizer)
    scores, _ = manager.compute_reward(_data(tiny_tokenizer, ["a"], ["b"]))
    assert float(scores.sum()) == 2.0


def test_easyr1_batch_reward_file_runs_unchanged(tiny_tokenizer) -> None:
    # overall = 0.9 * accuracy + 0.1 * format (mathruler grades 0.5 against 1/2 as equal)
    manager = _manager(f"{FILES / 'easyr1_math.py'}:compute_score", tiny_tokenizer)
    texts = ["<think>half</think> \\boxed{0.5}", "\\boxed{1/2}", "<think>x</think> \\boxed{3}"]
    _, components = manager.compute_reward(_data(tiny_tokenizer, texts, ["1/2", "1/2", "4"], length=32))
    assert components["accuracy"] == [1.0, 1.0, 0.0]
    assert components["format"] == [1.0, 0.0, 1.0]
    assert components["overall"] == pytest.approx([1.0, 0.9, 0.1])
    assert manager.spec.startswith("boxed_math (")


def test_module_reward_type_wins_over_the_config(tiny_tokenizer, caplog) -> None:
    """The file declares ``REWARD_TYPE = "sequential"``: it gets one dict per call although the config says
    batch (the file raises on a list), and a warning says so."""
    with caplog.at_level(logging.WARNING):
        manager = _manager(f"{FILES / 'easyr1_sequential.py'}:compute_score", tiny_tokenizer, bonus=0.25)
    assert manager.reward_type == "sequential"
    assert "declares REWARD_TYPE='sequential'" in caplog.text and "reward_type=batch" in caplog.text
    _, components = manager.compute_reward(_data(tiny_tokenizer, ["7", "8"], ["7", "7"]))
    assert components["overall"] == [1.25, 0.25]


def test_original_vision_sr1_reward_file_is_called_with_lists(tiny_tokenizer) -> None:
    """``compute_score(predicts, ground_truths, questions, description_answers, format_weight=0.1)`` is
    recognised by its signature and gets the decoded responses, ground truths, questions and the self-reward
    hop's answers as lists (an empty string where a response has none)."""
    manager = _manager(f"{FILES / 'original_vision_sr1.py'}:compute_score", tiny_tokenizer, format_weight=0.2)
    assert manager.list_arguments == 4
    data = _data(tiny_tokenizer, ["\\boxed{2}", "\\boxed{2}", "\\boxed{5}"], ["2", "2", "2"])
    data.non_tensor_batch["blind_answer"] = np.array(["2", None, "3"], dtype=object)
    data.non_tensor_batch["raw_question"] = np.array(["one", "three", "seven"], dtype=object)
    scores, components = manager.compute_reward(data)
    # overall = 0.8 * accuracy + 0.2 * (description answer correct)
    assert components["accuracy"] == [1.0, 1.0, 0.0]
    assert components["description"] == [1.0, 0.0, 0.0]
    assert components["overall"] == pytest.approx([1.0, 0.8, 0.0])
    assert components["asked"] == [3.0, 5.0, 5.0]
    assert float(scores.sum()) == pytest.approx(1.8)


def test_original_vision_sr1_sequential_form(tiny_tokenizer) -> None:
    manager = _manager(f"{FILES / 'original_vision_sr1.py'}:per_response", tiny_tokenizer, reward_type="sequential")
    assert manager.list_arguments == 3
    _, components = manager.compute_reward(_data(tiny_tokenizer, ["red", "x"], ["red", "red"]))
    assert components["overall"] == [1.0, 0.0] and components["asked"] == [1.0, 1.0]
