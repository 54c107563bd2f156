"""Grading a folder of responses with the rules and the fake judge server; resuming after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import handmade
import pytest
from judge_server import FakeJudgeServer, response, write_jsonl

from verl.evaluation.cli import llm_eval_main
from verl.evaluation.judge import OpenAIBackend
from verl.evaluation.llm_eval import evaluate_dir
from verl.evaluation.records import EvaluationInputError

JUDGED = handmade.JUDGED
_judge = handmade.make_judge


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_counts_on_the_handmade_set(judge_server: FakeJudgeServer, tmp_path) -> None:
    gold_dir, responses_dir = handmade.build(tmp_path)
    judge_server.plan = {handmade.JUDGE_KEY_RAMBLING: ["rambling"]}
    out = tmp_path / "judged"
    report = evaluate_dir(responses_dir, out, _judge(out / "cache.jsonl"), gold_dir=gold_dir, only=JUDGED)
    info = report["benchmarks"]
    assert (info["mm-vet"]["records"], info["mm-vet"]["rule_correct"], info["mm-vet"]["judged_correct"]) == (6, 2, 4)
    assert info["mm-vet"]["judge_errors"] == 1 and info["mm-vet"]["judge_asked"] == 4
    assert (info["MLLM_test"]["rule_correct"], info["MLLM_test"]["judged_correct"]) == (3, 3)
    assert info["MMMU"]["judge_asked"] == 0  # multiple choice: string match, no judge
    assert len(judge_server.log) == handmade.EXPECTED_JUDGE_CALLS
    assert not any("MMMU" in p or "hallusionbench" in p for p in judge_server.prompts())

    mm_vet = _read(out / "mm-vet.jsonl")
    assert [r["dataset_index"] for r in mm_vet] == list(range(6))  # sorted, although the input was shuffled
    assert [r["gold"] for r in mm_vet] == [truth for _, truth in handmade.MM_VET]
    assert [r["judge_verdict"] for r in mm_vet] == [None, "correct", "incorrect", "correct", None, "judge_error"]
    assert mm_vet[5]["judged_correct"] is False  # a judge error is never correct
    groups = [r["benchmark"] for r in _read(out / "MLLM_test.jsonl")]
    assert groups == ["MLLM_test/mathverse", "MLLM_test/mathverse", "MLLM_test/realWorldQA", "MLLM_test/mmmu-pro"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge_model"] == "fake-judge" and summary["missing"] == []


def test_shuffling_does_not_change_the_result(judge_server: FakeJudgeServer, tmp_path) -> None:
    outs = []
    for seed in (1, 2):
        gold_dir, responses_dir = handmade.build(tmp_path / str(seed), seed=seed)
        out = tmp_path / str(seed) / "judged"
        evaluate_dir(responses_dir, out, _judge(out / "cache.jsonl"), gold_dir=gold_dir, only=JUDGED)
        outs.append([(r["dataset_index"], r["judged_correct"]) for r in _read(out / "mm-vet.jsonl")])
    assert outs[0] == outs[1]
    first_lines = [json.loads(line)["dataset_index"] for line in (tmp_path / "1/responses/mm-vet.jsonl").open()]
    assert first_lines != sorted(first_lines)  # the input really was shuffled


class _InterruptAfter:
    """Wraps a backend; the call after ``calls`` answered ones raises KeyboardInterrupt (Ctrl-C mid-run)."""

    def __init__(self, backend: OpenAIBackend, calls: int) -> None:
        self.backend, self.model, self.left = backend, backend.model, calls

    def generate(self, prompt: str) -> str:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.backend.generate(prompt)


def test_resume_after_interruption_asks_nothing_twice(judge_server: FakeJudgeServer, tmp_path) -> None:
    gold_dir, responses_dir = handmade.build(tmp_path)
    out, cache = tmp_path / "judged", tmp_path / "judged" / "cache.jsonl"
    interrupted = _judge(cache, _InterruptAfter(OpenAIBackend(timeout=2), calls=2), concurrency=1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_dir(responses_dir, out, interrupted, gold_dir=gold_dir, only=["mm-vet"])
    assert len(judge_server.log) == 2 and not (out / "mm-vet.jsonl").exists()

    resumed = _judge(cache)
    report = evaluate_dir(responses_dir, out, resumed, gold_dir=gold_dir, only=["mm-vet"])
    prompts = judge_server.prompts()
    assert len(prompts) == 4 and len(set(prompts)) == 4  # every judged answer asked exactly once overall
    assert resumed.counts["cache_hits"] == 2 and report["benchmarks"]["mm-vet"]["judge_cached"] == 2
    assert report["benchmarks"]["mm-vet"]["judged_correct"] == 5  # rules 0, 4; judge 1, 3, 5 (no rambling here)

    again = _judge(cache)
    evaluate_dir(responses_dir, out, again, gold_dir=gold_dir, only=["mm-vet"])
    assert len(judge_server.log) == 4 and again.counts["calls"] == 0


def test_unregistered_benchmark_is_an_error_naming_the_flags(tmp_path) -> None:
    gold_dir, responses_dir = handmade.build(tmp_path)
    write_jsonl(responses_dir / "mystery.jsonl", [response(0, "\\boxed{1}", "1")])
    with pytest.raises(EvaluationInputError) as info:
        evaluate_dir(responses_dir, tmp_path / "judged", None, gold_dir=gold_dir)
    message = str(info.value)
    assert message.startswith(f"{responses_dir / 'mystery.jsonl'}: unknown benchmark (register it with ")
    assert "--benchmarks mystery --gold mystery=SPEC" in message and "--skip_unknown" in message
    assert not (tmp_path / "judged").exists()  # checked before anything is graded


def test_skip_unknown_skips_and_lists_the_file(tmp_path) -> None:
    gold_dir, responses_dir = handmade.build(tmp_path)
    write_jsonl(responses_dir / "mystery.jsonl", [response(0, "\\boxed{1}", "1")])
    report = evaluate_dir(responses_dir, tmp_path / "judged", None, gold_dir=gold_dir, skip_unknown=True)
    why = report["skipped_files"][str(responses_dir / "mystery.jsonl")]
    assert why.startswith("unknown benchmark") and "--benchmarks mystery --gold mystery=SPEC" in why
    assert "mystery" not in report["benchmarks"] and "gsm8k" in report["benchmarks"]
    report = evaluate_dir(responses_dir, tmp_path / "judged", None, gold_dir=gold_dir, only=["gsm8k", "mmstar"])
    assert report["missing"] == ["mmstar"]
    assert str(responses_dir / "mystery.jsonl") in report["not_requested"]  # left out by --benchmarks, listed


def test_declared_benchmark_without_gold_is_an_error_naming_the_gold_flag(tmp_path) -> None:
    responses_dir = tmp_path / "responses"
    write_jsonl(responses_dir / "tiny.jsonl", [response(0, "\\boxed{1}", "1")])
    with pytest.raises(EvaluationInputError, match=r"tiny.jsonl: no gold source \(give --gold tiny=SPEC"):
        evaluate_dir(responses_dir, tmp_path / "judged", None, only=["tiny"], extra=["tiny"])


def test_local_benchmark_full_chain_on_the_command_line(tmp_path, capsys) -> None:
    """The chain the README gives for a local benchmark: LLM_eval.py --benchmarks NAME --gold NAME=FILE, then
    eval.py --benchmarks NAME; without the flags the first step stops (exit 2) naming them."""
    from verl.evaluation.cli import eval_main

    responses_dir = tmp_path / "responses"
    write_jsonl(responses_dir / "tiny.jsonl", [response(0, "\\boxed{3}", "3"), response(1, "\\boxed{5}", "4")])
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"problem": "q0", "answer": "3"}, {"problem": "q1", "answer": "4"}])
    judged = tmp_path / "judged"
    base = ["--input_dir", str(responses_dir), "--output_dir", str(judged), "--judge", "none"]
    assert llm_eval_main(base) == 2
    assert "--benchmarks tiny --gold tiny=SPEC" in capsys.readouterr().err
    assert llm_eval_main([*base, "--skip_unknown"]) == 0
    assert f"skipped {responses_dir / 'tiny.jsonl'}: unknown benchmark" in capsys.readouterr().out
    assert llm_eval_main([*base, "--benchmarks", "tiny", "--gold", f"tiny={gold}"]) == 0
    capsys.readouterr()
    assert eval_main(["--llm_eval_dir", str(judged), "--mcq_dir", str(responses_dir), "--benchmarks", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "average (1 rows)" in printed and "Missing: none." in printed
    row = next(line for line in printed.splitlines() if line.startswith("tiny "))
    assert row.split()[:4] == ["tiny", "rules", "only", "(not"] and "50.0" in row


def test_command_line(judge_server: FakeJudgeServer, tmp_path, capsys) -> None:
    gold_dir, responses_dir = handmade.build(tmp_path)
    out = tmp_path / "judged"
    argv = ["--input_dir", str(responses_dir), "--output_dir", str(out), "--gold_dir", str(gold_dir),
            "--benchmarks", "mm-vet", "mmstar", "--backoff", "0.01"]  # fmt: skip
    assert llm_eval_main(argv) == 0
    printed = capsys.readouterr().out
    assert "missing (no response file): mmstar" in printed
    assert (out / "judge_cache.jsonl").is_file() and len(judge_server.log) == 4

    (responses_dir / "mm-vet.jsonl").write_text("{oops\n", encoding="utf-8")
    assert llm_eval_main(argv) == 2
    assert "mm-vet.jsonl:1: not a JSON object" in capsys.readouterr().err
