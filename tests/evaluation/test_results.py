"""Result tables of the hand-made run, the comparison across runs and the language-shortcut rates."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import handmade
import pytest
from judge_server import FakeJudgeServer, response, write_jsonl

from verl.evaluation.cli import eval_main
from verl.evaluation.llm_eval import evaluate_dir
from verl.evaluation.records import EvaluationInputError
from verl.evaluation.results import MMMU_PRO_ROW, compare_runs, shortcut_rates, summarize_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dirs(judge_server: FakeJudgeServer, tmp_path) -> tuple[Path, Path]:
    gold_dir, responses_dir = handmade.build(tmp_path)
    judge_server.plan = {handmade.JUDGE_KEY_RAMBLING: ["rambling"]}
    judged = tmp_path / "judged"
    evaluate_dir(
        responses_dir, judged, handmade.make_judge(judged / "cache.jsonl"), gold_dir=gold_dir, only=handmade.JUDGED
    )
    return judged, responses_dir


def test_run_table_counts(run_dirs) -> None:
    judged, responses = run_dirs
    result = summarize_run(judged, responses)
    counts = {
        name: (row.n, row.rule_correct, row.judged_correct, row.judge_errors) for name, row in result.rows.items()
    }
    assert counts == {
        "MMMU": (4, 3, 3, 0),
        "mmmu-pro-vision": (2, 1, 1, 0),
        "mm-vet": (6, 2, 4, 1),
        "MLLM_test/mathverse": (2, 1, 1, 0),
        "MLLM_test/mmmu-pro": (1, 1, 1, 0),
        "MLLM_test/realWorldQA": (1, 1, 1, 0),
        "hallusionbench": (2, 1, 1, 0),
    }
    pooled = result.pooled_mmmu_pro()
    assert pooled is not None and (pooled.n, pooled.rule_correct) == (3, 2)
    rule, judged_mean, rows = result.average()
    assert rows == 6  # MMMU, mm-vet, mathverse, realWorldQA, hallusionbench, pooled MMMU-Pro
    assert rule == pytest.approx((3 / 4 + 2 / 6 + 1 / 2 + 1 + 1 / 2 + 2 / 3) / 6)
    assert judged_mean == pytest.approx((3 / 4 + 4 / 6 + 1 / 2 + 1 + 1 / 2 + 2 / 3) / 6)
    assert result.missing["gsm8k"].startswith("not judged")
    assert result.missing["mmstar"] == "no response file"
    assert "mmmu_pro_10options" in result.missing and "MMMU" not in result.missing
    assert any("mm-vet: 1 judge errors" in note for note in result.notes)


def test_mcq_without_judged_file_uses_response_ground_truth(tmp_path) -> None:
    _, responses = handmade.build(tmp_path)
    result = summarize_run(None, responses, benchmarks=["MMMU", "hallusionbench", "mm-vet"])
    assert result.rows["MMMU"].judged_correct == 3 and "gold from the response file" in result.rows["MMMU"].source
    assert result.missing == {"mm-vet": "not judged (run LLM_eval.py on it)"}


def test_command_writes_tables(run_dirs, capsys) -> None:
    judged, responses = run_dirs
    assert eval_main(["--llm_eval_dir", str(judged), "--mcq_dir", str(responses)]) == 0
    printed = capsys.readouterr().out
    assert "mm-vet" in printed and "Missing:" in printed and "- mmstar: no response file" in printed
    rows = {row[0]: row for row in csv.reader((judged / "results.csv").open())}
    assert rows["mm-vet"][3:6] == ["33.3", "66.7", "1"]
    assert rows[MMMU_PRO_ROW][2:5] == ["3", "66.7", "66.7"]
    assert "| MMMU | string match | 4 | 75.0 | 75.0 | 0 |" in (judged / "results.md").read_text()


def test_comparison_and_chart(run_dirs, tmp_path) -> None:
    judged, responses = run_dirs
    full = summarize_run(judged, responses)
    partial = summarize_run(None, responses)  # multiple choice only
    table = compare_runs([("full", full), ("mcq-only", partial)])
    rows = {row[0]: row[1:] for row in table}
    assert rows["mm-vet"] == ["66.7", "missing"]
    assert rows["MMMU"] == ["75.0", "75.0"]
    # the average is over rows both runs have: MMMU, hallusionbench and the pooled MMMU-Pro (mmmu-pro-vision only
    # in the second run, so its pooled value differs)
    average = next(v for k, v in rows.items() if k.startswith("average"))
    assert average == [f"{100 * (3 / 4 + 1 / 2 + 2 / 3) / 3:.1f}", f"{100 * (3 / 4 + 1 / 2 + 1 / 2) / 3:.1f}"]

    runs_file = tmp_path / "runs.txt"
    runs_file.write_text(f"# label | judged | responses\nfull | {judged} | {responses}\nmcq-only | - | {responses}\n")
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "Evaluation/get_eval_result.sh"), str(runs_file), str(tmp_path / "cmp")],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cmp/comparison.png").stat().st_size > 1000
    assert (tmp_path / "cmp/full/results.md").is_file()
    assert "mcq-only: mm-vet (not judged" in (tmp_path / "cmp/comparison.md").read_text()


def test_bad_runs_file(tmp_path, capsys) -> None:
    runs_file = tmp_path / "runs.txt"
    runs_file.write_text("only a label\n")
    assert eval_main(["--runs", str(runs_file)]) == 2
    assert "runs.txt:1: expected 'label | judged dir | responses dir'" in capsys.readouterr().err


def test_judged_folder_must_be_llm_eval_output(tmp_path) -> None:
    _, responses = handmade.build(tmp_path)
    with pytest.raises(EvaluationInputError, match="not a judged record"):
        summarize_run(responses, None, benchmarks=["mm-vet"])  # response files passed as judged files


def test_shortcut_rates(tmp_path) -> None:
    blind_right, blind_wrong = "<think>t</think> \\boxed{4}", "\\boxed{5}"
    records = [
        response(0, "\\boxed{4}", "4", blind=blind_right),  # right, blind right
        response(1, "\\boxed{4}", "4", blind=blind_wrong),  # right, blind wrong: shortcut
        response(2, "\\boxed{4}", "4", blind=[blind_wrong, blind_right]),  # one blind right: not a shortcut
        response(3, "\\boxed{7}", "4", blind=blind_wrong),  # wrong: not a shortcut
        response(4, "\\boxed{4}", "4", blind=None),  # no blind answer: not counted
    ]
    write_jsonl(tmp_path / "mmstar.jsonl", records)
    write_jsonl(tmp_path / "MMMU.jsonl", [response(0, "\\boxed{B}", "B")])  # no blind answers at all
    table = shortcut_rates(tmp_path)
    assert table[1:] == [["mmstar", "4", "75.0", "37.5", "25.0"]]


def test_rules_only_run_says_so(tmp_path) -> None:
    gold_dir, responses = handmade.build(tmp_path)
    evaluate_dir(responses, tmp_path / "rules", None, gold_dir=gold_dir, only=["mm-vet"])
    row = summarize_run(tmp_path / "rules", None, benchmarks=["mm-vet"]).rows["mm-vet"]
    assert (row.graded_by, row.rule_correct, row.judged_correct) == ("rules only (not judged)", 2, 2)


def test_unreachable_gold_names_the_source(tmp_path) -> None:
    from verl.evaluation.records import load_gold

    bad = tmp_path / "gold.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(EvaluationInputError, match=r"gold\.parquet: could not load the gold answers"):
        load_gold(str(bad))


def test_files_of_unexpected_benchmarks_are_listed_with_the_flags(run_dirs, tmp_path, capsys) -> None:
    """A local benchmark's response file is never dropped silently: the table says it is not in it, and how."""
    judged, responses = run_dirs
    write_jsonl(responses / "tiny.jsonl", [response(0, "\\boxed{3}", "3")])
    result = summarize_run(judged, responses)
    why = result.unlisted[str(responses / "tiny.jsonl")]
    assert "--benchmarks tiny" in why and "--mcq tiny" in why
    assert not any("cache" in path for path in result.unlisted)  # the judge cache beside the judged files
    assert eval_main(["--llm_eval_dir", str(judged), "--mcq_dir", str(responses)]) == 0
    printed = capsys.readouterr().out
    assert f"Not in the table:\n- {responses / 'tiny.jsonl'}: tiny is not an expected benchmark" in printed
    assert f"{responses / 'tiny.jsonl'}" in (judged / "results.md").read_text()

    runs_file = tmp_path / "runs.txt"
    runs_file.write_text(f"full | {judged} | {responses}\n")
    assert eval_main(["--runs", str(runs_file)]) == 0
    assert f"- full: {responses / 'tiny.jsonl'}: tiny is not an expected benchmark" in capsys.readouterr().out
    assert eval_main(["--runs", str(runs_file), "--benchmarks", "tiny", "--mcq", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "tiny is not an expected benchmark" not in printed and "mm-vet is not an expected benchmark" in printed
    assert any(line.split()[:2] == ["tiny", "100.0"] for line in printed.splitlines()), printed
