"""Fixtures of the evaluation tests: a running fake judge server (see ``judge_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from judge_server import FakeJudgeServer


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJudgeServer]:
    """A running fake judge; the openai backend finds it through the environment."""
    server = FakeJudgeServer().start()
    monkeypatch.setenv("JUDGE_BASE_URL", server.url)
    monkeypatch.setenv("JUDGE_MODEL", "fake-judge")
    monkeypatch.setenv("JUDGE_API_KEY", "test-key")
    try:
        yield server
    finally:
        server.stop()
