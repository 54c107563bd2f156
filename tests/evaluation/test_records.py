"""Response files and gold answers: joined by dataset_index, bad input named by file and line."""

from __future__ import annotations

import json
import random

import pytest
from judge_server import response, write_jsonl

from verl.evaluation.records import EvaluationInputError, join_gold, load_gold, read_responses


@pytest.fixture
def gold_file(tmp_path):
    rows = [{"problem": f"<image>Q{i}?", "answer": str(10 * i), "file_name": "a" if i < 3 else "b"} for i in range(6)]
    return write_jsonl(tmp_path / "gold.jsonl", rows)


def test_shuffled_responses_join_by_index(tmp_path, gold_file) -> None:
    records = [response(i, f"\\boxed{{{10 * i}}}", str(10 * i)) for i in range(6)]
    random.Random(0).shuffle(records)
    path = write_jsonl(tmp_path / "bench.jsonl", records)
    gold = load_gold(str(gold_file), group_key="file_name")
    joined = join_gold(read_responses(path), gold)
    assert [i for i, _, _ in joined.pairs] == list(range(6))
    assert all(record["ground_truth"] == item.answer for _, record, item in joined.pairs)
    assert [item.group for _, _, item in joined.pairs] == ["a", "a", "a", "b", "b", "b"]
    assert joined.mismatches == [] and joined.unanswered == 0


def test_ground_truth_mismatch_and_unanswered_are_reported(tmp_path, gold_file) -> None:
    path = write_jsonl(tmp_path / "bench.jsonl", [response(0, "x", "0"), response(2, "x", "999")])
    joined = join_gold(read_responses(path), load_gold(str(gold_file)))
    assert joined.mismatches == [(2, "999", "20")]
    assert joined.unanswered == 4


def test_malformed_line_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(response(0, "x", "0")) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(EvaluationInputError, match=r"bench\.jsonl:2: not a JSON object"):
        read_responses(path)
    skipped = read_responses(path, skip_bad_lines=True)
    assert list(skipped.records) == [0] and skipped.skipped["bad_json"] == 1


def test_missing_dataset_index_names_file_and_line(tmp_path) -> None:
    bad = {k: v for k, v in response(1, "x", "1").items() if k != "dataset_index"}
    path = write_jsonl(tmp_path / "bench.jsonl", [response(0, "x", "0"), bad])
    with pytest.raises(EvaluationInputError, match=r"bench\.jsonl:2: no 'dataset_index'"):
        read_responses(path)
    assert read_responses(path, skip_bad_lines=True).skipped["bad_record"] == 1


def test_duplicate_index_in_one_step_is_an_error(tmp_path) -> None:
    path = write_jsonl(tmp_path / "bench.jsonl", [response(3, "x", "0"), response(3, "y", "0")])
    with pytest.raises(EvaluationInputError, match="dataset_index 3 already appeared on line 1"):
        read_responses(path)


def test_several_validation_steps_keep_the_latest(tmp_path) -> None:
    records = [{**response(0, "late", "0"), "step": 10}, {**response(0, "early", "0"), "step": 5},
               {**response(1, "one", "1"), "step": 5}]  # fmt: skip
    out = read_responses(write_jsonl(tmp_path / "bench.jsonl", records))
    assert out.records[0]["response"] == "late" and out.records[1]["response"] == "one"
    assert out.skipped["earlier_step"] == 1


def test_index_outside_the_gold_is_an_error(tmp_path, gold_file) -> None:
    path = write_jsonl(tmp_path / "bench.jsonl", [response(0, "x", "0"), response(17, "x", "0")])
    with pytest.raises(EvaluationInputError, match=r"bench\.jsonl:2: dataset_index 17 is not a row"):
        join_gold(read_responses(path), load_gold(str(gold_file)))
    joined = join_gold(read_responses(path), load_gold(str(gold_file)), skip_bad_lines=True)
    assert joined.skipped["index_not_in_gold"] == 1 and len(joined.pairs) == 1


def test_gold_without_answer_column(tmp_path) -> None:
    path = write_jsonl(tmp_path / "gold.jsonl", [{"problem": "q", "solution": "1"}])
    with pytest.raises(EvaluationInputError, match="gold column 'answer' not found"):
        load_gold(str(path))
