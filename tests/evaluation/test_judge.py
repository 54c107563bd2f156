"""The judge against a real HTTP server: strict verdicts, retries, timeouts, 429s, malformed replies, cache."""

from __future__ import annotations

import json
import time

import pytest
from judge_server import FakeJudgeServer

from verl.evaluation.judge import (
    CORRECT,
    INCORRECT,
    JUDGE_ERROR,
    FunctionBackend,
    Judge,
    JudgeCache,
    JudgeConfigError,
    JudgeRequest,
    OpenAIBackend,
    build_judge_prompt,
    make_backend,
    parse_verdict,
)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("fine\n<verdict>correct</verdict>", CORRECT),
        ("<verdict> Incorrect </verdict>", INCORRECT),
        ("The answer is correct.", JUDGE_ERROR),  # no tag: the reference counted this as correct
        ("not incorrect at all", JUDGE_ERROR),
        ("<verdict>correct</verdict> or <verdict>incorrect</verdict>", JUDGE_ERROR),
        ("<verdict>mostly correct</verdict>", JUDGE_ERROR),
        ("<verdict>correct", JUDGE_ERROR),
        ("", JUDGE_ERROR),
        (None, JUDGE_ERROR),
    ],
)
def test_parse_verdict_is_strict(reply: str | None, verdict: str) -> None:
    assert parse_verdict(reply) == verdict


def _request(index: int, answer: str) -> JudgeRequest:
    return JudgeRequest("bench", index, build_judge_prompt(f"Question {index}?", "gold", answer))


def _judge(timeout: float = 2.0, **kwargs) -> Judge:
    options = {"concurrency": 4, "max_retries": 2, "backoff": 0.01, **kwargs}
    return Judge(OpenAIBackend(timeout=timeout), **options)


def test_verdicts_from_the_server(judge_server: FakeJudgeServer) -> None:
    judge = _judge()
    results = judge.judge_many([_request(0, "sem:yes"), _request(1, "no"), _request(2, "sem:also")])
    assert [r.verdict for r in results] == [CORRECT, INCORRECT, CORRECT]
    assert len(judge_server.log) == 3
    assert {entry["model"] for entry in judge_server.log} == {"fake-judge"}


def test_rate_limit_honours_retry_after(judge_server: FakeJudgeServer) -> None:
    judge_server.plan = {"Question 0?": ["429", "ok"]}
    judge_server.retry_after = "1"
    start = time.monotonic()
    result = _judge().judge_one(_request(0, "sem:x"))
    assert result.verdict == CORRECT
    times = [entry["time"] for entry in judge_server.log]
    assert len(times) == 2 and times[1] - times[0] >= 0.95  # waited Retry-After, not the 0.01 s backoff
    assert time.monotonic() - start < 5


def test_slow_reply_times_out_then_retries(judge_server: FakeJudgeServer) -> None:
    judge_server.plan = {"Question 0?": ["slow", "ok"]}
    judge_server.slow_seconds = 1.0
    judge = _judge(timeout=0.3)
    result = judge.judge_one(_request(0, "sem:x"))
    assert result.verdict == CORRECT and result.attempts == 2
    assert judge.counts["retries"] == 1


@pytest.mark.parametrize("behaviour", ["slow", "garbage", "nochoices", "500", "rambling"])
def test_failures_are_judge_errors(judge_server: FakeJudgeServer, behaviour: str) -> None:
    judge_server.plan = {"Question 0?": [behaviour]}
    judge_server.slow_seconds = 0.6
    judge = _judge(timeout=0.2, max_retries=1)
    results = judge.judge_many([_request(0, "sem:x"), _request(1, "sem:y")])
    assert results[0].verdict == JUDGE_ERROR
    assert results[1].verdict == CORRECT
    expected_calls = 1 if behaviour == "rambling" else 2  # a reply without a verdict is not retried
    assert sum("Question 0?" in p for p in judge_server.prompts()) == expected_calls


def test_rejected_credentials_stop_the_run(judge_server: FakeJudgeServer) -> None:
    judge_server.plan = {"Question": ["401"]}
    with pytest.raises(JudgeConfigError, match="401"):
        _judge().judge_many([_request(0, "x")])


def test_missing_configuration_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_MODEL", raising=False)
    with pytest.raises(JudgeConfigError, match="JUDGE_MODEL"):
        make_backend("openai")
    with pytest.raises(JudgeConfigError, match="unknown judge backend"):
        make_backend("no-such-backend")


def test_cache_answers_without_calls_and_survives_a_torn_line(judge_server: FakeJudgeServer, tmp_path) -> None:
    path = tmp_path / "cache.jsonl"
    first = Judge(OpenAIBackend(timeout=2), JudgeCache(path), backoff=0.01)
    first.judge_many([_request(0, "sem:x"), _request(1, "no")])
    assert len(judge_server.log) == 2
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"benchmark": "bench", "dataset_in')  # an interrupted write
    second = Judge(OpenAIBackend(timeout=2), JudgeCache(path), backoff=0.01)
    assert second.cache is not None and second.cache.torn_lines == 1
    results = second.judge_many([_request(0, "sem:x"), _request(1, "no"), _request(2, "sem:z")])
    assert [r.verdict for r in results] == [CORRECT, INCORRECT, CORRECT]
    assert [r.cached for r in results] == [True, True, False]
    assert len(judge_server.log) == 3  # only the new request reached the server
    # a changed answer (or gold, or model) is a different key
    third = Judge(OpenAIBackend(timeout=2), JudgeCache(path), backoff=0.01)
    assert third.judge_many([_request(0, "other")])[0].cached is False
    entries = [json.loads(line) for line in path.read_text().splitlines()[:2]]
    assert {e["judge_model"] for e in entries} == {"fake-judge"}


def test_failed_calls_are_not_cached(judge_server: FakeJudgeServer, tmp_path) -> None:
    judge_server.plan = {"Question 0?": ["500"]}
    judge = Judge(OpenAIBackend(timeout=2), JudgeCache(tmp_path / "c.jsonl"), max_retries=0)
    assert judge.judge_one(_request(0, "sem:x")).verdict == JUDGE_ERROR
    judge_server.plan = {}
    again = Judge(OpenAIBackend(timeout=2), JudgeCache(tmp_path / "c.jsonl"), max_retries=0)
    assert again.judge_one(_request(0, "sem:x")).verdict == CORRECT


def test_function_backend(tmp_path) -> None:
    module = tmp_path / "my_judge.py"
    module.write_text("def generate(prompt):\n    return '<verdict>correct</verdict>' if 'sem:' in prompt else 'hm'\n")
    backend = FunctionBackend(f"{module}:generate")
    judge = Judge(backend, max_retries=0)
    assert [r.verdict for r in judge.judge_many([_request(0, "sem:a"), _request(1, "b")])] == [CORRECT, JUDGE_ERROR]
    with pytest.raises(JudgeConfigError, match="not a function"):
        FunctionBackend(f"{module}:missing")
