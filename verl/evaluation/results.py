"""Result tables: per-benchmark accuracy of one run, a comparison across runs, and language-shortcut rates.

Scores per row (a benchmark, or a bundle's sub-benchmark such as ``MLLM_test/mathverse``):

- multiple-choice benchmarks (``Benchmark.mcq``: MMMU, MMMU-Pro vision and 10 options, VisNumBench,
  HallusionBench) are scored by string match of the option letter (or the short answer when the gold is not
  an option) on the responses, in both the rule-based and the judged column;
- the others come from the judged files of ``LLM_eval.py``: ``rule-based`` is the grader alone, ``judged`` is
  grader-or-judge, where a judge error counts as wrong (and is shown in its own column).

``MMMU-Pro (weighted)`` pools the MMMU-Pro rows by sample count; ``average`` is the plain mean over rows,
with the MMMU-Pro parts replaced by their pooled row. Expected benchmarks without results are listed as
missing, with the reason, and files of benchmarks not expected as "not in the table", with the flags that put
them there: nothing is silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..rewards.extract import extract_answer, extract_boxed, extract_choice, parse_choice
from ..rewards.grader import grade_answer
from .benchmarks import DEFAULT_BENCHMARKS, MMMU_PRO_PARTS, get_benchmark
from .records import EvaluationInputError, read_jsonl, read_responses

__all__ = [
    "MMMU_PRO_ROW",
    "Row",
    "RunResult",
    "compare_runs",
    "mcq_correct",
    "plot_comparison",
    "shortcut_rates",
    "summarize_run",
    "write_comparison",
    "write_run",
]

logger = logging.getLogger(__name__)

MMMU_PRO_ROW = "MMMU-Pro (weighted)"
AVERAGE_ROW = "average"
STRING_MATCH, JUDGE, RULES_ONLY = "string match", "rules + judge", "rules only (not judged)"


def mcq_correct(response: str, gold: str) -> bool:
    """String match for multiple choice: the option letter the response commits to equals the gold letter; when
    the gold is not an option (``yes``/``no``, a number), the extracted answer must match it."""
    prediction = extract_choice(response) if parse_choice(gold) is not None else extract_answer(response)
    return prediction is not None and grade_answer(prediction, gold)


@dataclass
class Row:
    """Correct counts of one table row; scores are fractions of ``n``."""

    name: str
    graded_by: str
    n: int
    rule_correct: int
    judged_correct: int
    judge_errors: int = 0
    source: str = ""

    @property
    def rule(self) -> float:
        return self.rule_correct / self.n if self.n else float("nan")

    @property
    def judged(self) -> float:
        return self.judged_correct / self.n if self.n else float("nan")


@dataclass
class RunResult:
    """One run's rows, its summary rows (pooled MMMU-Pro, average) and what is missing."""

    rows: dict[str, Row]
    missing: dict[str, str] = field(default_factory=dict)
    """expected benchmark -> why it has no result"""
    notes: list[str] = field(default_factory=list)
    unlisted: dict[str, str] = field(default_factory=dict)
    """response or judged file of a benchmark not in the expected list -> how to put it in the table"""

    def pooled_mmmu_pro(self) -> Row | None:
        parts = [self.rows[name] for name in MMMU_PRO_PARTS if name in self.rows]
        if not parts:
            return None
        return Row(MMMU_PRO_ROW, "pooled by n", sum(p.n for p in parts), sum(p.rule_correct for p in parts),
                   sum(p.judged_correct for p in parts), sum(p.judge_errors for p in parts),
                   source=" + ".join(p.name for p in parts))  # fmt: skip

    def averaged_rows(self) -> list[Row]:
        """The rows the average is taken over: MMMU-Pro parts replaced by their pooled row."""
        rows = [row for name, row in self.rows.items() if name not in MMMU_PRO_PARTS]
        pooled = self.pooled_mmmu_pro()
        return rows + ([pooled] if pooled is not None else [])

    def average(self) -> tuple[float, float, int]:
        """(rule-based mean, judged mean, number of rows averaged)."""
        rows = self.averaged_rows()
        if not rows:
            return float("nan"), float("nan"), 0
        return sum(r.rule for r in rows) / len(rows), sum(r.judged for r in rows) / len(rows), len(rows)


def _judged_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    needed = ("dataset_index", "benchmark", "gold", "response", "rule_correct", "judged_correct", "judge_verdict")
    out = []
    for number, record in read_jsonl(path):
        absent = [k for k in needed if k not in record]
        if absent:
            raise EvaluationInputError(f"{path}:{number}: not a judged record (lacks {absent}); is this folder "
                                       "the output of LLM_eval.py?")  # fmt: skip
        out.append((number, record))
    return out


def _mcq_row(name: str, responses_path: Path | None, judged_path: Path | None) -> Row:
    """String-match row from the responses (gold from the judged file, joined by index, when there is one)."""
    judged = {r["dataset_index"]: r for _, r in _judged_records(judged_path)} if judged_path else {}
    pairs: list[tuple[str, str]] = []
    if responses_path is not None:
        responses = read_responses(responses_path)
        source = f"responses {responses_path}"
        for index, record in responses.records.items():
            if judged:
                if index not in judged:
                    raise EvaluationInputError(
                        f"{responses_path}:{responses.lines[index]}: dataset_index {index} is not in {judged_path}; "
                        "the judged file is from other responses (run LLM_eval.py again)"
                    )
                gold = judged[index]["gold"]
            elif record.get("ground_truth") is not None:
                gold = str(record["ground_truth"])
            else:
                raise EvaluationInputError(f"{responses_path}:{responses.lines[index]}: no 'ground_truth', and no "
                                           "judged file to take the gold from")  # fmt: skip
            pairs.append((record["response"], gold))
        source += " (gold from the judged file)" if judged else " (gold from the response file)"
    else:
        pairs = [(r["response"], r["gold"]) for r in judged.values()]
        source = f"judged {judged_path}"
    correct = sum(mcq_correct(response, gold) for response, gold in tqdm(pairs, desc=f"{name}: string match",
                                                                         disable=None, file=sys.stderr))  # fmt: skip
    return Row(name, STRING_MATCH, len(pairs), correct, correct, source=source)


def _judged_rows(judged_path: Path) -> list[Row]:
    rows: dict[str, Row] = {}
    records = _judged_records(judged_path)
    asked = any(record.get("judge_model") for _, record in records)
    for _, record in records:
        name = record["benchmark"]
        row = rows.setdefault(name, Row(name, JUDGE if asked else RULES_ONLY, 0, 0, 0, source=f"judged {judged_path}"))
        row.n += 1
        row.rule_correct += bool(record["rule_correct"])
        row.judged_correct += record["judged_correct"] is True
        row.judge_errors += record["judge_verdict"] == "judge_error"
    return [rows[name] for name in sorted(rows)]


def summarize_run(
    llm_eval_dir: str | os.PathLike[str] | None,
    mcq_dir: str | os.PathLike[str] | None,
    benchmarks: Sequence[str] = DEFAULT_BENCHMARKS,
    extra_mcq: Collection[str] = (),
) -> RunResult:
    """Rows for every expected benchmark found in the judged folder (``LLM_eval.py`` output) or, for multiple
    choice, the responses folder; the rest are reported missing with the reason."""
    judged_dir = Path(llm_eval_dir) if llm_eval_dir else None
    responses_dir = Path(mcq_dir) if mcq_dir else None
    for folder in (judged_dir, responses_dir):
        if folder is not None and not folder.is_dir():
            raise EvaluationInputError(f"{folder}: no such folder")
    result = RunResult(rows={})
    for name in benchmarks:
        benchmark = get_benchmark(name, extra=benchmarks, extra_mcq=extra_mcq)
        assert benchmark is not None
        judged = judged_dir / f"{name}.jsonl" if judged_dir else None
        judged = judged if judged is not None and judged.is_file() else None
        responses = responses_dir / f"{name}.jsonl" if responses_dir else None
        responses = responses if responses is not None and responses.is_file() else None
        if benchmark.mcq:
            if responses is None and judged is None:
                result.missing[name] = "no response file"
                continue
            result.rows[name] = _mcq_row(name, responses, judged)
        elif judged is None:
            result.missing[name] = "not judged (run LLM_eval.py on it)" if responses else "no response file"
        else:
            for row in _judged_rows(judged):
                result.rows[row.name] = row
    for path in _benchmark_files(judged_dir, responses_dir):
        if path.stem not in benchmarks:
            result.unlisted[str(path)] = (
                f"{path.stem} is not an expected benchmark; pass --benchmarks with it in the list (e.g. "
                f"--benchmarks {path.stem}; the list replaces the paper's), and --mcq {path.stem} if it is multiple "
                "choice"
            )
    for row in result.rows.values():
        if row.judge_errors:
            result.notes.append(f"{row.name}: {row.judge_errors} judge errors, counted as wrong")
    if judged_dir is not None and (judged_dir / "summary.json").is_file():
        with open(judged_dir / "summary.json", encoding="utf-8") as f:
            summary = json.load(f)
        for name, info in summary.get("benchmarks", {}).items():
            if info.get("ground_truth_mismatches"):
                result.notes.append(f"{name}: {info['ground_truth_mismatches']} response ground truths differ from "
                                    "the gold (the gold was used)")  # fmt: skip
            if info.get("unanswered_gold_rows"):
                result.notes.append(f"{name}: {info['unanswered_gold_rows']} gold rows have no response")
        for path, why in summary.get("skipped_files", {}).items():
            result.notes.append(f"LLM_eval skipped {path}: {why}")
    return result


def _benchmark_files(judged_dir: Path | None, responses_dir: Path | None) -> list[Path]:
    """The per-benchmark files of a run: every ``*.jsonl`` of the responses folder, and the judged files that
    ``LLM_eval.py``'s ``summary.json`` lists (the judge cache beside them is not a benchmark)."""
    files = sorted(responses_dir.glob("*.jsonl")) if responses_dir is not None else []
    if judged_dir is not None and (judged_dir / "summary.json").is_file():
        with open(judged_dir / "summary.json", encoding="utf-8") as f:
            judged = json.load(f).get("benchmarks", {})
        files += [judged_dir / f"{name}.jsonl" for name in sorted(judged) if (judged_dir / f"{name}.jsonl").is_file()]
    return files


# ------------------------------------------------------------------------------------------------ tables


def _pct(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f}"  # NaN check


def run_table(result: RunResult) -> list[list[str]]:
    """Header and rows of one run's table (percentages)."""
    table = [["benchmark", "graded by", "n", "rule-based", "judged", "judge errors"]]
    for row in result.rows.values():
        table.append([row.name, row.graded_by, str(row.n), _pct(row.rule), _pct(row.judged), str(row.judge_errors)])
    pooled = result.pooled_mmmu_pro()
    if pooled is not None:
        table.append([pooled.name, pooled.graded_by, str(pooled.n), _pct(pooled.rule), _pct(pooled.judged),
                      str(pooled.judge_errors)])  # fmt: skip
    rule, judged, count = result.average()
    table.append([f"{AVERAGE_ROW} ({count} rows)", "mean", "", _pct(rule), _pct(judged), ""])
    return table


def _markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "|".join(" --- " for _ in table[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join(lines) + "\n"


def _plain(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines) + "\n"


def _csv(table: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    return buffer.getvalue()


def _missing_text(missing: dict[str, str]) -> str:
    if not missing:
        return "Missing: none.\n"
    return "Missing:\n" + "".join(f"- {name}: {why}\n" for name, why in missing.items())


def _unlisted_text(unlisted: dict[str, str], label: str = "") -> str:
    prefix = f"{label}: " if label else ""
    return "".join(f"- {prefix}{path}: {why}\n" for path, why in unlisted.items())


def write_run(result: RunResult, output_dir: str | os.PathLike[str], title: str = "Evaluation") -> str:
    """Write ``results.md`` and ``results.csv`` to ``output_dir``; returns the plain-text table for printing."""
    table = run_table(result)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    notes = "".join(f"- {note}\n" for note in result.notes)
    unlisted = _unlisted_text(result.unlisted)
    unlisted = f"Not in the table:\n{unlisted}" if unlisted else ""
    markdown = f"# {title}\n\nScores in %.\n\n{_markdown(table)}\n{_missing_text(result.missing)}"
    markdown += f"\n{unlisted}" if unlisted else ""
    markdown += f"\nNotes:\n{notes}" if notes else ""
    (output_dir / "results.md").write_text(markdown, encoding="utf-8")
    (output_dir / "results.csv").write_text(_csv(table), encoding="utf-8")
    text = _plain(table) + _missing_text(result.missing) + unlisted
    return text + (f"Notes:\n{notes}" if notes else "")


# ------------------------------------------------------------------------------------------------ comparison


def compare_runs(runs: Sequence[tuple[str, RunResult]], column: str = "judged") -> list[list[str]]:
    """One table across runs (``column``: ``judged`` or ``rule``): a row per benchmark in any run, the pooled
    MMMU-Pro, and the average over the rows every run has (so runs are compared on the same benchmarks)."""
    if column not in ("judged", "rule"):
        raise ValueError(f"column must be 'judged' or 'rule', got {column!r}")
    labels = [label for label, _ in runs]
    names: list[str] = []
    for _, result in runs:
        names += [n for n in result.rows if n not in names]
    if any(r.pooled_mmmu_pro() is not None for _, r in runs):
        names.append(MMMU_PRO_ROW)

    def value(result: RunResult, name: str) -> float | None:
        row = result.pooled_mmmu_pro() if name == MMMU_PRO_ROW else result.rows.get(name)
        return None if row is None else getattr(row, column)

    table = [["benchmark", *labels]]
    for name in names:
        table.append([name, *(_pct(v) if (v := value(r, name)) is not None else "missing" for _, r in runs)])
    averaged = [n for n in names if n not in MMMU_PRO_PARTS and all(value(r, n) is not None for _, r in runs)]
    means = [sum(value(r, n) or 0.0 for n in averaged) / len(averaged) if averaged else float("nan") for _, r in runs]
    table.append([f"{AVERAGE_ROW} ({len(averaged)} common rows)", *(_pct(m) for m in means)])
    return table


def plot_comparison(table: list[list[str]], path: str | os.PathLike[str], title: str = "") -> None:
    """Grouped bar chart of a comparison table (one group per benchmark, one bar per run) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, rows = table[0][1:], table[1:]
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) * max(1, len(labels)) * 0.5 + 2), 4.5))
    for j, label in enumerate(labels):
        heights = [float(row[j + 1]) if row[j + 1] not in ("missing", "—") else 0.0 for row in rows]
        ax.bar([i + (j - (len(labels) - 1) / 2) * width for i in range(len(rows))], heights, width, label=label)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([row[0] for row in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_comparison(runs: Sequence[tuple[str, RunResult]], output_dir: str | os.PathLike[str]) -> str:
    """``comparison.md``, ``comparison.csv`` (judged and rule-based blocks) and ``comparison.png`` (judged);
    returns the printable text."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    judged, rule = compare_runs(runs, "judged"), compare_runs(runs, "rule")
    missing = "".join(f"- {label}: {name} ({why})\n" for label, r in runs for name, why in r.missing.items())
    missing_text = f"Missing:\n{missing}" if missing else "Missing: none.\n"
    unlisted = "".join(_unlisted_text(r.unlisted, label) for label, r in runs)
    missing_text += f"Not in the table:\n{unlisted}" if unlisted else ""
    markdown = (f"# Comparison\n\nScores in %; multiple choice by string match in both tables.\n\n## Judged\n\n"
                f"{_markdown(judged)}\n## Rule-based\n\n{_markdown(rule)}\n{missing_text}")  # fmt: skip
    (output_dir / "comparison.md").write_text(markdown, encoding="utf-8")
    (output_dir / "comparison.csv").write_text(
        _csv([["grading", *judged[0]]] + [["judged", *r] for r in judged[1:]] + [["rule", *r] for r in rule[1:]]),
        encoding="utf-8",
    )
    plot_comparison(judged, output_dir / "comparison.png", "judged accuracy")
    return f"judged (%):\n{_plain(judged)}\nrule-based (%):\n{_plain(rule)}{missing_text}"


def read_runs_file(path: str | os.PathLike[str]) -> list[tuple[str, str | None, str | None]]:
    """``label | judged dir | responses dir`` per line (``#`` comments and blank lines ignored; ``-`` for a
    folder the run does not have). Folders are relative to the runs file."""
    runs = []
    base = Path(path).parent
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = [p.strip() for p in text.split("|")]
            if len(parts) != 3 or not parts[0]:
                raise EvaluationInputError(f"{path}:{number}: expected 'label | judged dir | responses dir', "
                                           f"got {line.strip()!r}")  # fmt: skip
            label, judged, responses = parts
            folders = [str(base / p) if p and p != "-" else None for p in (judged, responses)]
            if folders == [None, None]:
                raise EvaluationInputError(f"{path}:{number}: run {label!r} names no folder")
            runs.append((label, folders[0], folders[1]))
    if not runs:
        raise EvaluationInputError(f"{path}: no runs")
    return runs


# ------------------------------------------------------------------------------------------------ shortcut


def _blind_score(blind: Any, gold: str) -> float:
    answers = blind if isinstance(blind, list) else [blind]
    right = 0
    for answer in answers:
        text = extract_boxed(answer) if isinstance(answer, str) else None
        right += text is not None and grade_answer(text, gold)
    return right / max(len(answers), 1)


def shortcut_rates(responses_dir: str | os.PathLike[str], benchmarks: Sequence[str] | None = None) -> list[list[str]]:
    """Offline language-shortcut analysis from stored blind answers: per benchmark, of the responses that have a
    blind answer (text-only, from the response's own description), the blind accuracy and the shortcut rate:
    the response is right (string match for multiple choice, the grader otherwise) while every blind answer is
    wrong, i.e. the answer did not come from what the model said it saw. Benchmarks without blind answers are
    left out."""
    table = [["benchmark", "with blind answer", "answer accuracy", "blind accuracy", "language-shortcut rate"]]
    folder = Path(responses_dir)
    for path in sorted(folder.glob("*.jsonl")):
        if benchmarks is not None and path.stem not in benchmarks:
            continue
        benchmark = get_benchmark(path.stem, extra=[path.stem])
        assert benchmark is not None
        responses = read_responses(path)
        n = right = blind_right = shortcut = 0
        for index, record in responses.records.items():
            if record.get("blind_answer") is None:
                continue
            gold = record.get("ground_truth")
            if gold is None:
                raise EvaluationInputError(f"{path}:{responses.lines[index]}: no 'ground_truth'")
            gold = str(gold)
            response = record["response"]
            if benchmark.mcq:
                correct = mcq_correct(response, gold)
            else:
                prediction = extract_answer(response)
                correct = prediction is not None and grade_answer(prediction, gold)
            blind = _blind_score(record["blind_answer"], gold)
            n += 1
            right += correct
            blind_right += blind
            shortcut += correct and blind == 0
        if n:
            table.append([path.stem, str(n), _pct(right / n), _pct(blind_right / n), _pct(shortcut / n)])
    return table


def write_shortcut(table: list[list[str]], output_dir: str | os.PathLike[str]) -> str:
    """``shortcut.md`` / ``shortcut.csv``; returns the printable text (empty when no run stored blind answers)."""
    if len(table) == 1:
        return ""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "shortcut.md").write_text(f"# Language shortcut\n\nRates in %.\n\n{_markdown(table)}",
                                            encoding="utf-8")  # fmt: skip
    (output_dir / "shortcut.csv").write_text(_csv(table), encoding="utf-8")
    return _plain(table)
