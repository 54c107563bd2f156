"""The self-reward hop without Ray: prompt building, batching, missing descriptions, external endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from verl.trainer.self_reward import BLIND_INSTRUCTION, ExternalHop, run_external_hop, run_hop

RESPONSES = [
    "<description>Three red circles on white.</description> <think>count</think> \\boxed{3}",
    "<think>no description</think> \\boxed{3}",
    "<description>   </description> <think>empty</think> \\boxed{2}",
    "<description>A blue square.</description><think>colour</think>\\boxed{blue}",
]
QUESTIONS = ["<image>How many circles?", "<image>How many?", "<image>How many?", "<image>What colour?"]


def test_hop_sends_only_descriptions_in_one_batched_call(tiny_tokenizer) -> None:
    calls = []

    def generate(prompt_ids: list[list[int]]) -> list[str]:
        calls.append(prompt_ids)
        return [f"<think>ok</think> \\boxed{{{i}}}" for i in range(len(prompt_ids))]

    result = run_hop(RESPONSES, QUESTIONS, generate, tiny_tokenizer)
    assert len(calls) == 1 and len(calls[0]) == 2, "one batched call with the two real descriptions"
    assert result.blind_answers == ["<think>ok</think> \\boxed{0}", None, None, "<think>ok</think> \\boxed{1}"]
    assert result.counts == {"description_missing": 2, "description_leak": 0, "description_misplaced": 0}
    assert result.metrics()["self_reward/description_missing_rate"] == 0.5
    assert all(isinstance(ids, list) and all(isinstance(t, int) for t in ids) for ids in calls[0])
    prompt = tiny_tokenizer.decode(calls[0][0])
    assert "Three red circles on white." in prompt and "Question: How many circles?" in prompt
    assert "<image>" not in prompt and "<|image_pad|>" not in prompt and "\\boxed{3}" not in prompt
    assert BLIND_INSTRUCTION.split(".")[0] in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_hop_checks_the_number_of_answers(tiny_tokenizer) -> None:
    with pytest.raises(RuntimeError, match="asked for 2 blind answers and got 1"):
        run_hop(RESPONSES, QUESTIONS, lambda ids: ["x"], tiny_tokenizer)


class _Handler(BaseHTTPRequestHandler):
    script: list[str] = []  # per request: "ok", "429", "500", "garbage"
    log: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.log.append(body)
        action = _Handler.script.pop(0) if _Handler.script else "ok"
        if action in ("429", "500"):
            self.send_response(int(action))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        content = body["messages"][0]["content"]
        answer = "\\boxed{3}" if "circles" in content else "\\boxed{blue}"
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
        }
        data = b"not json" if action == "garbage" else json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(monkeypatch):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.log.clear()
    monkeypatch.setenv("SR_URL", f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    monkeypatch.setenv("SR_MODEL", "judge-model")
    yield httpd
    httpd.shutdown()


def _external(max_retries: int = 2) -> SimpleNamespace:
    return SimpleNamespace(
        base_url_env="SR_URL",
        model_env="SR_MODEL",
        api_key_env="SR_KEY",
        concurrency=2,
        timeout=5.0,
        max_retries=max_retries,
    )


def test_external_hop_answers_and_retries_429(server, monkeypatch) -> None:
    monkeypatch.setattr("verl.trainer.self_reward.time.sleep", lambda s: None)
    _Handler.script[:] = ["429"]
    hop = ExternalHop(_external(), max_tokens=32, temperature=0.0)
    result = run_external_hop(RESPONSES, QUESTIONS, hop)
    assert result.blind_answers == ["\\boxed{3}", None, None, "\\boxed{blue}"]
    assert result.counts == {"description_missing": 2, "external_error": 0}
    assert len(_Handler.log) == 3  # two prompts, one of them retried after the 429
    assert all(req["model"] == "judge-model" and req["max_tokens"] == 32 for req in _Handler.log)


def test_external_hop_counts_failures_after_retries(server, monkeypatch) -> None:
    monkeypatch.setattr("verl.trainer.self_reward.time.sleep", lambda s: None)
    _Handler.script[:] = ["500", "garbage", "500", "garbage"]
    hop = ExternalHop(_external(max_retries=1), max_tokens=8, temperature=0.0)
    result = run_external_hop(RESPONSES, QUESTIONS, hop)
    assert result.blind_answers[1] is None and result.counts["external_error"] == 2
    assert hop.errors == 2


def test_external_hop_needs_its_environment(monkeypatch) -> None:
    monkeypatch.delenv("SR_URL", raising=False)
    with pytest.raises(ValueError, match=r"\$SR_URL"):
        ExternalHop(_external(), max_tokens=8, temperature=0.0)
