"""The Gemini backend against the local test server (google-genai is in the dev extra, so CI runs it)."""

from __future__ import annotations

import pytest
from judge_server import FakeJudgeServer

from verl.evaluation.judge import (
    CORRECT,
    INCORRECT,
    JUDGE_ERROR,
    GeminiBackend,
    Judge,
    JudgeRequest,
    build_judge_prompt,
)


@pytest.fixture
def gemini_env(judge_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch) -> FakeJudgeServer:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("JUDGE_BASE_URL", judge_server.url.removesuffix("/v1"))
    return judge_server


def _request(index: int, answer: str) -> JudgeRequest:
    return JudgeRequest("bench", index, build_judge_prompt(f"Question {index}?", "gold", answer))


def test_gemini_verdicts_retries_and_errors(gemini_env: FakeJudgeServer) -> None:
    gemini_env.plan = {"Question 1?": ["429", "ok"], "Question 2?": ["rambling"]}
    judge = Judge(GeminiBackend(timeout=2), max_retries=2, backoff=0.01)
    results = judge.judge_many([_request(0, "sem:a"), _request(1, "b"), _request(2, "sem:c")])
    assert [r.verdict for r in results] == [CORRECT, INCORRECT, JUDGE_ERROR]
    assert all(entry["path"].endswith("models/fake-judge:generateContent") for entry in gemini_env.log)
    assert len(gemini_env.log) == 4 and judge.counts["rate_limited"] == 1
