"""The miniature paper's own arithmetic: the shortcut split, the shortcut rate, description length and the table
(the training runs themselves go with ``make paper``, never in tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.paper import (
    description_words,
    shortcut_answer,
    shortcut_rate,
    shortcut_rows,
    spread,
    summarize_run,
    table,
    verdict,
)

Q = "<image>Which circle is larger, the {} one or the {} one? Answer with the colour."


def test_the_split_carries_the_wording_prior_at_the_asked_strength() -> None:
    rows = shortcut_rows(20, seed=3, shortcut_share=0.9)
    follows = [row["answer"] == shortcut_answer(row["problem"]) for row in rows]
    assert sum(follows) == 18 and len(rows) == 20
    assert sum(r["answer"] == shortcut_answer(r["problem"]) for r in shortcut_rows(20, 4, 0.1)) == 2
    assert shortcut_answer(Q.format("red", "blue")) == "red"
    with pytest.raises(ValueError, match="not a shortcut question"):
        shortcut_answer("What colour is the circle?")


def _record(first: str, second: str, truth: str, answered: str, description: str = "a b c", step: int = 0) -> dict:
    response = f"<description>{description}</description> <think>so</think> \\boxed{{{answered}}}"
    return {"prompt": Q.format(first, second), "ground_truth": truth, "response": response, "step": step}


def test_shortcut_rate_counts_only_rows_whose_wording_misleads() -> None:
    records = [
        _record("red", "blue", "red", "red"),  # wording right: not counted
        _record("red", "blue", "blue", "red"),  # misled, took the shortcut
        _record("green", "blue", "blue", "blue"),  # misled, looked
        _record("green", "red", "red", "yellow"),  # misled, wrong but not the shortcut
    ]
    assert shortcut_rate(records) == pytest.approx(1 / 3)
    assert math.isnan(shortcut_rate(records[:1]))


def test_description_words_and_spread() -> None:
    records = [_record("red", "blue", "red", "red", "one two three four"), {"response": "\\boxed{red}"}]
    assert description_words(records) == pytest.approx(2.0)  # 4 words and 0 for the missing description
    assert spread([0.2, 0.4]) == pytest.approx((0.3, math.sqrt(0.02)))
    assert spread([0.5]) == (0.5, 0.0)


def _runs(blind: list[float], short: list[float]) -> list[dict[str, float]]:
    keys = ("accuracy", "blind_accuracy", "shortcut_rate", "description_words")
    return [
        {
            **{f"start/{k}": 0.1 for k in keys},
            **{f"end/{k}": 0.5 for k in keys},
            "end/blind_accuracy": b,
            "end/shortcut_rate": s,
        }  # fmt: skip
        for b, s in zip(blind, short)
    ]


def test_table_and_verdict_say_what_the_numbers_say() -> None:
    results = {
        "see-think GRPO, no self-reward": _runs([0.2, 0.4], [0.6, 0.6]),
        "self-reward v1 (sum)": _runs([0.5, 0.5], [0.4, 0.4]),
    }
    text = table(results)
    assert "| self-reward v1 (sum) | 2 | 0.50 ± 0.00 (0.10) | 0.50 ± 0.00 (0.10) | 0.40 ± 0.00 (0.10) |" in text
    assert "| see-think GRPO, no self-reward | 2 | 0.50 ± 0.00 (0.10) | 0.30 ± 0.14 (0.10) |" in text
    assert "blind accuracy +0.20, language-shortcut rate -0.20" in verdict(results)
    assert "holds here" in verdict(results)
    results["self-reward v1 (sum)"] = _runs([0.1, 0.1], [0.4, 0.4])
    assert "does NOT hold" in verdict(results)
    assert verdict({"self-reward v1 (sum)": results["self-reward v1 (sum)"]}).startswith("Not decided")
    silent = {
        name: [{**r, "end/accuracy": 0.0, "end/blind_accuracy": 0.0} for r in runs] for name, runs in results.items()
    }
    assert verdict(silent).startswith("Not decided: no run")


def test_a_run_is_summarised_from_its_first_and_last_validation(tmp_path: Path) -> None:
    metrics = [
        {"step": 0, "val/overall": 0.25, "val/blind_accuracy": 0.5},
        {"step": 1, "reward/overall": 1.0},
        {"step": 2, "val/overall": 0.75, "val/blind_accuracy": 1.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    records = [
        _record("red", "blue", "blue", "red", step=0),
        _record("red", "blue", "blue", "blue", "x y", step=2),
    ]
    (tmp_path / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = summarize_run(tmp_path)
    assert summary["start/accuracy"] == 0.25 and summary["end/blind_accuracy"] == 1.0
    assert summary["start/shortcut_rate"] == 1.0 and summary["end/shortcut_rate"] == 0.0
    assert summary["start/description_words"] == 3.0 and summary["end/description_words"] == 2.0


def test_the_section_names_the_setup_the_load_and_the_verdict() -> None:
    from bench.__main__ import paper_section

    results = {"self-reward v1 (sum)": _runs([0.5], [0.4])}
    r = {
        "warm_start_steps": 50,
        "seeds": [1],
        "steps": 20,
        "wall_s": {"v1": [100.0, 130.0]},
        "load_average": [3.0, 9.5],
    }
    text = paper_section({**r, "table": table(results), "verdict": verdict(results)})
    assert (
        "trains 20 steps" in text
        and "(50 supervised steps)" in text
        and "seeds 1," in text
        and "100–130 s each" in text
    )
    assert "load average was 3.0–9.5" in text
    assert table(results) in text and "**Not decided" in text
