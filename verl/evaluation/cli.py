"""Command lines of the evaluation scripts in ``Evaluation/`` (which only call these ``main`` functions).

Input errors (a malformed line, an unknown folder, a wrong gold source, a response file of a benchmark nobody
registered) and judge set-up errors exit with status 2 and one message naming the file and line (or the flags
to give); they never print a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .benchmarks import DEFAULT_BENCHMARKS
from .records import EvaluationInputError

__all__ = ["eval_main", "llm_eval_main"]


def _names(values: Sequence[str] | None) -> list[str]:
    return [name for value in values or [] for name in re.split(r"[,\s]+", value) if name]


def _gold_specs(values: Sequence[str] | None) -> dict[str, str]:
    specs = {}
    for value in values or []:
        name, sep, spec = value.partition("=")
        if not sep or not name or not spec:
            raise SystemExit(f"--gold expects name=spec (owner/dataset@split or a local file), got {value!r}")
        specs[name] = spec
    return specs


def llm_eval_main(argv: Sequence[str] | None = None) -> int:
    """``LLM_eval.py``: grade a folder of response files with the rules and a judge."""
    parser = argparse.ArgumentParser(
        description="Join each <benchmark>.jsonl of --input_dir with its gold answers by dataset_index, grade it "
        "with the rule-based grader, ask an LLM judge about the answers the rules call wrong, and write judged "
        "files and summary.json to --output_dir. Judge endpoint, model and key come from the environment: "
        "JUDGE_BASE_URL / JUDGE_MODEL / JUDGE_API_KEY (openai), GEMINI_API_KEY / JUDGE_MODEL (gemini).",
    )
    parser.add_argument("--input_dir", required=True, help="folder of <benchmark>.jsonl response files")
    parser.add_argument("--output_dir", required=True, help="folder for the judged files")
    parser.add_argument("--judge", default="openai",
                        help="openai | gemini | none (rules only) | module:function | file.py:function")  # fmt: skip
    parser.add_argument("--benchmarks", nargs="*", help="only these benchmarks (missing ones are reported); "
                        "names not in the built-in list are declared as open-ended benchmarks")  # fmt: skip
    parser.add_argument("--mcq", nargs="*", help="declare these benchmark names multiple choice")
    parser.add_argument("--gold", action="append", metavar="NAME=SPEC",
                        help="gold source of a benchmark: owner/dataset@split or a local parquet/json/jsonl file")  # fmt: skip
    parser.add_argument("--gold_dir", help="folder with <benchmark>.parquet/.jsonl/.json gold files")
    parser.add_argument("--judge_mcq", action="store_true", help="also judge multiple-choice benchmarks")
    parser.add_argument("--concurrency", type=int, default=8, help="judge requests in flight")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per judge request")
    parser.add_argument("--max_retries", type=int, default=4, help="retries per judge request")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)")
    parser.add_argument("--max_tokens", type=int, default=512, help="judge reply length limit")
    parser.add_argument("--cache", help="judge cache file (default <output_dir>/judge_cache.jsonl)")
    parser.add_argument("--skip_bad_lines", action="store_true",
                        help="skip and count malformed lines instead of stopping")  # fmt: skip
    parser.add_argument("--skip_unknown", action="store_true",
                        help="skip and list response files of unregistered benchmarks (or without gold) instead "
                        "of stopping")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from .judge import Judge, JudgeCache, JudgeConfigError, make_backend
    from .llm_eval import evaluate_dir

    try:
        judge = None
        if args.judge != "none":
            backend = make_backend(args.judge, timeout=args.timeout, max_tokens=args.max_tokens)
            cache = JudgeCache(args.cache or Path(args.output_dir) / "judge_cache.jsonl")
            judge = Judge(backend, cache, concurrency=args.concurrency, max_retries=args.max_retries,
                          backoff=args.backoff)  # fmt: skip
        names = _names(args.benchmarks)
        mcq = _names(args.mcq)
        report = evaluate_dir(args.input_dir, args.output_dir, judge, gold_specs=_gold_specs(args.gold),
                              gold_dir=args.gold_dir, only=(names + mcq) or None, extra=names, extra_mcq=mcq,
                              judge_mcq=args.judge_mcq, skip_bad_lines=args.skip_bad_lines,
                              skip_unknown=args.skip_unknown)  # fmt: skip
    except (EvaluationInputError, JudgeConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'benchmark':<22} {'n':>6} {'rules':>6} {'judged':>6} {'judge errors':>12} {'gt mismatches':>13}")
    for name, info in report["benchmarks"].items():
        print(f"{name:<22} {info['records']:>6} {info['rule_correct']:>6} {info['judged_correct']:>6} "
              f"{info['judge_errors']:>12} {info['ground_truth_mismatches']:>13}")  # fmt: skip
    for path, why in report["skipped_files"].items():
        print(f"skipped {path}: {why}")
    if report["not_requested"]:
        print(f"not evaluated (not in --benchmarks/--mcq): {', '.join(report['not_requested'])}")
    if report["missing"]:
        print(f"missing (no response file): {', '.join(report['missing'])}")
    if report["judge_counts"]:
        print(f"judge {report['judge_model']}: {report['judge_counts']}")
    print(f"judged files and summary.json: {args.output_dir}")
    return 0


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``eval.py`` / ``eval_result.py``: result tables of one run, or a comparison of several (``--runs``)."""
    parser = argparse.ArgumentParser(
        description="Per-benchmark accuracy (rule-based and judged; multiple choice by string match), pooled "
        "MMMU-Pro and the average, as a printed table, results.md and results.csv. With --runs, one comparison "
        "across runs (comparison.md/.csv/.png).",
    )
    parser.add_argument("--llm_eval_dir", help="judged files written by LLM_eval.py")
    parser.add_argument("--mcq_dir", help="response files (multiple-choice benchmarks are string-matched here)")
    parser.add_argument("--runs", help="runs file: 'label | judged dir | responses dir' per line")
    parser.add_argument("--output_dir", help="where the tables go (default: the judged folder, else the responses)")
    parser.add_argument("--benchmarks", nargs="*", help="expected benchmarks (default: the paper's list)")
    parser.add_argument("--mcq", nargs="*", help="declare these benchmark names multiple choice")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from .results import read_runs_file, shortcut_rates, summarize_run, write_comparison, write_run, write_shortcut

    names = _names(args.benchmarks) or list(DEFAULT_BENCHMARKS)
    mcq = _names(args.mcq)
    names += [n for n in mcq if n not in names]
    try:
        if args.runs:
            runs = read_runs_file(args.runs)
            output_dir = Path(args.output_dir or Path(args.runs).parent / "comparison")
            results = []
            for label, judged, responses in runs:
                result = summarize_run(judged, responses, names, mcq)
                print(f"== {label}\n{write_run(result, output_dir / _safe(label), title=label)}")
                results.append((label, result))
            print(write_comparison(results, output_dir))
            print(f"tables and chart: {output_dir}")
            return 0
        if not args.llm_eval_dir and not args.mcq_dir:
            parser.error("give --llm_eval_dir and/or --mcq_dir (or --runs)")
        output_dir = Path(args.output_dir or args.llm_eval_dir or args.mcq_dir)
        result = summarize_run(args.llm_eval_dir, args.mcq_dir, names, mcq)
        print(write_run(result, output_dir))
        if args.mcq_dir:
            text = write_shortcut(shortcut_rates(args.mcq_dir, names), output_dir)
            if text:
                print(f"language shortcut (%):\n{text}")
    except (EvaluationInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"tables: {output_dir}")
    return 0


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"
