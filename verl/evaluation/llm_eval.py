"""Grade a folder of response files: join each with its gold answers, grade with the rules, ask the judge about
what the rules call wrong, and write one judged file per benchmark plus a summary.

Each judged record (``<output_dir>/<benchmark>.jsonl``, sorted by ``dataset_index``) has ``dataset_index``,
``benchmark`` (the row's own benchmark: ``MLLM_test/mathverse`` for bundles), ``question``, ``gold``,
``response``, ``prediction`` (the extracted final answer or None), ``rule_correct``, ``judge_verdict``
(``correct``/``incorrect``/``judge_error``, or None when the rules already said correct or the benchmark is
multiple choice and judging it was not asked for), ``judge_reply``, ``judge_model``, ``judged_correct``
(rules or judge said correct; a judge error is never correct) and ``blind_answer``.
``summary.json`` holds per-benchmark counts, ground-truth mismatches, skips and missing gold rows.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..rewards.extract import extract_answer
from ..rewards.grader import grade_answer
from ..utils.dataset import strip_image_placeholders
from .benchmarks import Benchmark, get_benchmark
from .judge import CORRECT, JUDGE_ERROR, Judge, JudgeRequest, build_judge_prompt
from .records import EvaluationInputError, find_gold_file, join_gold, load_gold, read_responses

__all__ = ["BenchmarkSummary", "evaluate_dir", "evaluate_file", "group_name", "write_jsonl"]

logger = logging.getLogger(__name__)

_TAIL_CHARS = 2000


def group_name(benchmark: Benchmark, group: str | None) -> str:
    """The row name a record is reported under: the benchmark, or ``bundle/sub-benchmark`` for bundles."""
    return f"{benchmark.name}/{group}" if benchmark.group_key and group else benchmark.name


@dataclass
class BenchmarkSummary:
    """Counts for one response file."""

    benchmark: str
    gold: str
    records: int = 0
    rule_correct: int = 0
    judged_correct: int = 0
    judge_asked: int = 0
    judge_errors: int = 0
    judge_cached: int = 0
    unanswered_gold_rows: int = 0
    ground_truth_mismatches: int = 0
    mismatch_examples: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def write_jsonl(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> None:
    """Write records atomically (a temporary file renamed into place), so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _answer_for_judge(response: str, prediction: str | None) -> str:
    if prediction is not None and prediction.strip():
        return prediction
    return response[-_TAIL_CHARS:] if response.strip() else "(empty response)"


def evaluate_file(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    benchmark: Benchmark,
    gold_spec: str,
    judge: Judge | None,
    judge_mcq: bool = False,
    skip_bad_lines: bool = False,
) -> BenchmarkSummary:
    """Grade one response file into ``<output_dir>/<benchmark>.jsonl`` (see the module docstring)."""
    responses = read_responses(path, skip_bad_lines=skip_bad_lines)
    gold = load_gold(gold_spec, benchmark.answer_key, benchmark.question_key, benchmark.group_key)
    joined = join_gold(responses, gold, skip_bad_lines=skip_bad_lines)
    summary = BenchmarkSummary(benchmark=benchmark.name, gold=gold_spec, unanswered_gold_rows=joined.unanswered,
                               ground_truth_mismatches=len(joined.mismatches),
                               mismatch_examples=joined.mismatches[:5], skipped=dict(joined.skipped))  # fmt: skip
    use_judge = judge is not None and (judge_mcq or not benchmark.mcq)

    out_records: list[dict[str, Any]] = []
    requests: list[tuple[int, JudgeRequest]] = []
    for index, record, item in tqdm(joined.pairs, desc=f"{benchmark.name}: rules", unit="q", disable=None,
                                    file=sys.stderr):  # fmt: skip
        response = record["response"]
        prediction = extract_answer(response)
        rule_correct = prediction is not None and grade_answer(prediction, item.answer)
        question = strip_image_placeholders(str(record.get("prompt") or item.question or "")).strip()
        out_records.append(
            {
                "dataset_index": index,
                "benchmark": group_name(benchmark, item.group),
                "question": question,
                "gold": item.answer,
                "response": response,
                "prediction": prediction,
                "rule_correct": rule_correct,
                "judge_verdict": None,
                "judge_reply": None,
                "judge_model": None,
                "judged_correct": rule_correct,
                "blind_answer": record.get("blind_answer"),
            }
        )
        if use_judge and not rule_correct:
            prompt = build_judge_prompt(question, item.answer, _answer_for_judge(response, prediction))
            requests.append((len(out_records) - 1, JudgeRequest(benchmark.name, index, prompt)))

    if requests:
        assert judge is not None
        results = judge.judge_many([r for _, r in requests], desc=f"{benchmark.name}: judge")
        for (position, _), result in zip(requests, results):
            out = out_records[position]
            out.update(judge_verdict=result.verdict, judge_reply=result.reply, judge_model=judge.model,
                       judged_correct=result.verdict == CORRECT)  # fmt: skip
            if result.error:
                out["judge_error_detail"] = result.error
            summary.judge_cached += result.cached

    summary.records = len(out_records)
    summary.rule_correct = sum(r["rule_correct"] for r in out_records)
    summary.judged_correct = sum(r["judged_correct"] for r in out_records)
    summary.judge_asked = len(requests)
    summary.judge_errors = sum(r["judge_verdict"] == JUDGE_ERROR for r in out_records)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    write_jsonl(Path(output_dir) / f"{benchmark.name}.jsonl", out_records)
    return summary


def resolve_gold(
    benchmark: Benchmark, gold_specs: Mapping[str, str], gold_dir: str | os.PathLike[str] | None
) -> str | None:
    """Where this benchmark's gold answers come from: ``--gold name=spec``, then ``<gold_dir>/<name>.*``, then
    the registered hub dataset."""
    if benchmark.name in gold_specs:
        return gold_specs[benchmark.name]
    if gold_dir is not None:
        found = find_gold_file(gold_dir, benchmark.name)
        if found is not None:
            return found
    return benchmark.gold


def evaluate_dir(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    judge: Judge | None,
    gold_specs: Mapping[str, str] | None = None,
    gold_dir: str | os.PathLike[str] | None = None,
    only: Collection[str] | None = None,
    extra: Collection[str] = (),
    extra_mcq: Collection[str] = (),
    judge_mcq: bool = False,
    skip_bad_lines: bool = False,
    skip_unknown: bool = False,
) -> dict[str, Any]:
    """Grade every ``<benchmark>.jsonl`` in ``input_dir`` (or the ``only`` ones) and write ``summary.json``.

    A file of a benchmark nobody registered, or of one without a gold source, is an error naming the flags
    that register it, checked before anything is graded; with ``skip_unknown`` such files are skipped and
    listed under ``skipped_files`` instead. Files left out by ``only`` are listed under ``not_requested``;
    requested benchmarks without a response file under ``missing``."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise EvaluationInputError(f"{input_dir}: no such folder of response files")
    gold_specs = dict(gold_specs or {})
    present = sorted(input_dir.glob("*.jsonl"))
    files = [p for p in present if only is None or p.stem in only]
    not_requested = [str(p) for p in present if p not in files]
    planned: list[tuple[Path, Benchmark, str]] = []
    skipped_files: dict[str, str] = {}
    for path in files:
        benchmark = get_benchmark(path.stem, extra=set(extra) | set(gold_specs), extra_mcq=extra_mcq)
        spec = resolve_gold(benchmark, gold_specs, gold_dir) if benchmark is not None else None
        if spec is None:
            why = "unknown benchmark" if benchmark is None else "no gold source"
            skipped_files[str(path)] = f"{why} ({register_hint(path.stem, declared=benchmark is not None)})"
        else:
            planned.append((path, benchmark, spec))
    if skipped_files and not skip_unknown:
        listed = "; ".join(f"{path}: {why}" for path, why in skipped_files.items())
        raise EvaluationInputError(f"{listed}; or pass --skip_unknown to leave such files out")
    for path, why in skipped_files.items():
        logger.warning("skipped %s: %s", path, why)
    summaries: dict[str, Any] = {}
    for path, benchmark, spec in tqdm(planned, desc="benchmarks", unit="file", disable=None, file=sys.stderr):
        summaries[benchmark.name] = evaluate_file(path, output_dir, benchmark, spec, judge, judge_mcq,
                                                  skip_bad_lines).__dict__  # fmt: skip
    missing = sorted(set(only) - {p.stem for p in files}) if only is not None else []
    report: dict[str, Any] = {
        "input_dir": str(input_dir),
        "judge_model": judge.model if judge is not None else None,
        "judge_counts": dict(judge.counts) if judge is not None else None,
        "benchmarks": summaries,
        "skipped_files": skipped_files,
        "not_requested": not_requested,
        "missing": missing,
        "skipped_lines": dict(sum((Counter(s["skipped"]) for s in summaries.values()), Counter())),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "summary.json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    return report


def register_hint(name: str, declared: bool = False) -> str:
    """The flags that register a local benchmark ``name`` with its gold answers (``declared``: the name is
    already given with --benchmarks or --mcq, only its gold is missing)."""
    spec = "SPEC being owner/dataset@split or a local parquet/jsonl/json file"
    if declared:
        return f"give --gold {name}=SPEC, {spec}, or --gold_dir DIR holding {name}.parquet/.jsonl/.json"
    return f"register it with --benchmarks {name} --gold {name}=SPEC, {spec}; add --mcq {name} for multiple choice"
