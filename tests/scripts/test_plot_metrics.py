"""plot_metrics turns a metrics.jsonl into a PNG; bad files give a clear error."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_metrics.py"


def _run(*args: str) -> None:
    old = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = old


def test_writes_a_png(tmp_path, capsys) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": s, "reward/overall": s / 10, "response_length/mean": 20 + s, "val/overall": 0.1} for s in range(1, 6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _run(str(path))
    png = tmp_path / "metrics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_rejects_a_file_that_is_not_jsonl(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("step,reward\n1,0.5\n")
    with pytest.raises(SystemExit, match="metrics.jsonl:1: not JSON"):
        _run(str(path))
