"""Loggers: JSONL rows, console progress line, unknown and missing backends."""

from __future__ import annotations

import io
import json
import sys

import pytest

from verl.utils.import_utils import MissingDependencyError
from verl.utils.tracking import ConsoleLogger, Tracking


def test_file_logger_writes_one_json_row_per_step(tmp_path) -> None:
    tracking = Tracking(["file"], "p", "e", str(tmp_path))
    tracking.log({"reward/overall": 0.5, "timing/step": 1, "bad": float("nan")}, step=1)
    tracking.log({"reward/overall": 0.75}, step=2)
    tracking.finish()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "reward/overall": 0.5, "timing/step": 1.0, "bad": None},
                    {"step": 2, "reward/overall": 0.75}]  # fmt: skip


def test_console_line_has_progress_and_headline_metrics() -> None:
    stream = io.StringIO()
    console = ConsoleLogger(total_steps=10, stream=stream)
    console.log({"reward/overall": 0.25, "response_length/mean": 31.0, "other": 1}, step=5)
    line = stream.getvalue().strip()
    assert line.startswith("[##########          ] 5/10 eta")
    assert "overall=0.25" in line and "mean=31" in line and "other" not in line


def test_unknown_backend_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"unknown trainer.logger entries \['neptune'\]"):
        Tracking(["console", "neptune"], "p", "e", str(tmp_path))


def test_missing_backend_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingDependencyError, match=r"vision-sr1\[loggers\]"):
        Tracking(["wandb"], "p", "e", str(tmp_path))


def test_console_eta_uses_the_pace_since_the_first_logged_step(monkeypatch) -> None:
    clock = iter([0.0, 100.0, 100.0, 110.0])  # created at 0; step 0 logged at 100, step 5 at 110: 2 s a step
    monkeypatch.setattr("verl.utils.tracking.time.time", lambda: next(clock))
    stream = io.StringIO()
    console = ConsoleLogger(total_steps=20, stream=stream)
    console.log({}, step=0)
    console.log({}, step=5)
    assert "5/20 eta 0m30s" in stream.getvalue().splitlines()[-1]  # 15 steps left x 2 s


def test_console_prints_one_validation_summary_line() -> None:
    stream = io.StringIO()
    console = ConsoleLogger(total_steps=10, stream=stream)
    val = {"val/overall": 0.25, "val/blind_accuracy": 0.5, "val/language_shortcut_rate": 0.125, "val/x/overall": 1}
    console.log(dict(val), step=0)  # validation before training: no progress line
    console.log({"reward/overall": 0.5, **val}, step=10)
    lines = stream.getvalue().splitlines()
    summary = "overall=0.25 blind_accuracy=0.5 language_shortcut_rate=0.125"
    assert lines[0] == f"validation at step 0: {summary}"
    assert lines[1].startswith("[####################] 10/10") and "val/" not in lines[1]
    assert lines[2] == f"validation at step 10: {summary}"
    assert len(lines) == 3
