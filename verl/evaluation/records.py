"""Response files and gold answers, joined by ``dataset_index`` (never by line order).

A response file (``<benchmark>.jsonl``, written by validation) has one JSON object per line with at least
``dataset_index`` and ``response``; ``ground_truth``, ``prompt``, ``blind_answer`` and ``step`` are used when
present. Gold answers come from the benchmark's dataset (hub ``owner/name@split`` or a local file), whose row
``i`` is ``dataset_index == i``: the loader numbers rows the same way.

Bad input stops with an error naming the file and line (``--skip_bad_lines`` turns these into counted skips):
a line that is not JSON, a record without ``dataset_index`` or ``response``, an index the gold dataset does not
have, or the same index twice in one validation step. A file holding several validation steps (a training
run's response file) keeps each index's record from the latest step, and says so.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EvaluationInputError",
    "GoldItem",
    "ResponseFile",
    "find_gold_file",
    "join_gold",
    "load_gold",
    "read_jsonl",
    "read_responses",
]

logger = logging.getLogger(__name__)

_GOLD_SUFFIXES = (".parquet", ".jsonl", ".json")


class EvaluationInputError(ValueError):
    """A response, gold or judged file that cannot be used; the message names the file (and line)."""


def read_jsonl(path: str | os.PathLike[str], skip_bad_lines: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; a line that is not a JSON object raises naming the file
    and line, or is skipped with a warning when ``skip_bad_lines``."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
                if not isinstance(value, dict):
                    raise ValueError(f"expected a JSON object, got {type(value).__name__}")
            except ValueError as exc:
                message = f"{path}:{number}: not a JSON object ({exc})"
                if not skip_bad_lines:
                    raise EvaluationInputError(message) from exc
                logger.warning("skipped %s", message)
                yield number, {"__bad__": message}
                continue
            yield number, value


@dataclass
class ResponseFile:
    """One benchmark's responses, by ``dataset_index``."""

    path: Path
    benchmark: str
    records: dict[int, dict[str, Any]]
    lines: dict[int, int]
    """line number of each kept record, for messages"""
    skipped: Counter[str] = field(default_factory=Counter)
    """lines skipped by reason (bad lines with ``skip_bad_lines``, records of earlier validation steps)"""


def _index_of(record: dict[str, Any]) -> int:
    if "dataset_index" not in record:
        raise ValueError(f"no 'dataset_index' (keys: {sorted(record)})")
    index = record["dataset_index"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"'dataset_index' must be a non-negative integer, got {index!r}")
    return index


def read_responses(path: str | os.PathLike[str], skip_bad_lines: bool = False) -> ResponseFile:
    """Read a ``<benchmark>.jsonl`` response file keyed by ``dataset_index`` (rules in the module docstring)."""
    path = Path(path)
    out = ResponseFile(path=path, benchmark=path.stem, records={}, lines={})
    steps: dict[int, Any] = {}
    for number, record in read_jsonl(path, skip_bad_lines):
        if "__bad__" in record:
            out.skipped["bad_json"] += 1
            continue
        try:
            index = _index_of(record)
            if not isinstance(record.get("response"), str):
                raise ValueError(f"'response' must be a string, got {type(record.get('response')).__name__}")
        except ValueError as exc:
            if not skip_bad_lines:
                raise EvaluationInputError(f"{path}:{number}: {exc}") from None
            logger.warning("skipped %s:%d: %s", path, number, exc)
            out.skipped["bad_record"] += 1
            continue
        step = record.get("step")
        if index in out.records:
            if step == steps[index]:
                raise EvaluationInputError(
                    f"{path}:{number}: dataset_index {index} already appeared on line {out.lines[index]}"
                    + (f" in the same validation step {step}" if step is not None else "")
                    + "; a response file must hold one response per question"
                )
            if step is not None and steps[index] is not None and step < steps[index]:
                out.skipped["earlier_step"] += 1
                continue
            out.skipped["earlier_step"] += 1
        out.records[index], out.lines[index], steps[index] = record, number, step
    if out.skipped["earlier_step"]:
        logger.warning("%s holds several validation steps; kept each question's latest (%d older records dropped)",
                       path, out.skipped["earlier_step"])  # fmt: skip
    return out


@dataclass(frozen=True)
class GoldItem:
    """The gold answer of one benchmark row, its question (for the judge) and its sub-benchmark (bundles)."""

    answer: str
    question: str | None = None
    group: str | None = None


def find_gold_file(gold_dir: str | os.PathLike[str], benchmark: str) -> str | None:
    """``<gold_dir>/<benchmark>.{parquet,jsonl,json}`` if one exists."""
    for suffix in _GOLD_SUFFIXES:
        candidate = Path(gold_dir) / f"{benchmark}{suffix}"
        if candidate.is_file():
            return str(candidate)
    return None


def load_gold(
    spec: str, answer_key: str = "answer", question_key: str = "problem", group_key: str | None = None
) -> dict[int, GoldItem]:
    """Gold answers of ``spec`` (``owner/name@split``, a local parquet/json/jsonl file or a dataset folder)
    keyed by row position, which is the ``dataset_index`` the validation loader gives each row."""
    from ..utils.dataset import DatasetError, load_rows  # torch and datasets load only when gold is needed

    try:
        table = load_rows(spec)
    except DatasetError as exc:
        raise EvaluationInputError(str(exc)) from None
    except Exception as exc:  # hub unreachable, unknown dataset, unreadable file: name the source
        raise EvaluationInputError(f"{spec}: could not load the gold answers ({type(exc).__name__}: {exc})") from exc
    columns = set(table.column_names)
    if answer_key not in columns:
        raise EvaluationInputError(f"{spec}: gold column {answer_key!r} not found; columns are {sorted(columns)}")
    if group_key is not None and group_key not in columns:
        raise EvaluationInputError(
            f"{spec}: column {group_key!r} (each row's benchmark) not found; columns are {sorted(columns)}"
        )
    wanted = [c for c in (answer_key, question_key, group_key) if c is not None and c in columns]
    table = table.select_columns(wanted)  # images are never read
    answers = table[answer_key]
    questions = table[question_key] if question_key in columns else [None] * len(answers)
    groups = table[group_key] if group_key is not None else [None] * len(answers)
    gold: dict[int, GoldItem] = {}
    for index, (answer, question, group) in enumerate(zip(answers, questions, groups)):
        gold[index] = GoldItem(
            answer="" if answer is None else str(answer),
            question=None if question is None else str(question),
            group=None if group is None else str(group),
        )
    return gold


def _same_answer(a: Any, b: Any) -> bool:
    return " ".join(str(a).split()) == " ".join(str(b).split())


@dataclass
class Joined:
    """Responses paired with their gold rows."""

    pairs: list[tuple[int, dict[str, Any], GoldItem]]
    """``(dataset_index, response record, gold)`` sorted by index"""
    mismatches: list[tuple[int, str, str]]
    """``(dataset_index, ground_truth in the response file, gold answer)`` where they differ"""
    unanswered: int
    """gold rows without a response (e.g. prompts the loader filtered as too long)"""
    skipped: Counter[str]


def join_gold(responses: ResponseFile, gold: Mapping[int, GoldItem], skip_bad_lines: bool = False) -> Joined:
    """Pair each response with the gold row of its ``dataset_index``. An index the gold does not have means the
    wrong gold source (or a corrupt file): an error naming the line, or a counted skip with ``skip_bad_lines``.
    Ground truths stored in the response file are checked against the gold; disagreements are returned."""
    pairs, mismatches = [], []
    skipped = Counter(responses.skipped)
    for index in sorted(responses.records):
        record = responses.records[index]
        item = gold.get(index)
        if item is None:
            message = (
                f"{responses.path}:{responses.lines[index]}: dataset_index {index} is not a row of the gold "
                f"dataset ({len(gold)} rows); is this the right benchmark?"
            )
            if not skip_bad_lines:
                raise EvaluationInputError(message)
            logger.warning("skipped %s", message)
            skipped["index_not_in_gold"] += 1
            continue
        stored = record.get("ground_truth")
        if stored is not None and not _same_answer(stored, item.answer):
            mismatches.append((index, str(stored), item.answer))
        pairs.append((index, record, item))
    if mismatches:
        shown = "; ".join(f"index {i}: file {s!r} vs gold {g!r}" for i, s, g in mismatches[:3])
        logger.warning("%s: %d ground truths differ from the gold answers (gold is used): %s",
                       responses.path, len(mismatches), shown)  # fmt: skip
    unanswered = len(set(gold) - set(responses.records))
    return Joined(pairs=pairs, mismatches=mismatches, unanswered=unanswered, skipped=skipped)
