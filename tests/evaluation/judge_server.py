"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the judge tests, and data helpers.

The server answers ``POST /v1/chat/completions`` (and Gemini's ``POST .../models/<model>:generateContent``). Each request is logged (``server.log``: the prompt and what
was done). What it does with a prompt is looked up in ``server.plan``: the first key found in the prompt gives a
list of behaviours consumed one request at a time (the last one repeats):

- ``ok``: a reply from ``server.decide(prompt)`` (default: ``<verdict>correct</verdict>`` when the model's
  answer starts with ``sem:``, else incorrect);
- ``slow``: wait ``server.slow_seconds`` first (beyond the client's timeout), then reply as ``ok``;
- ``429``: HTTP 429 with ``Retry-After: server.retry_after``;
- ``500``: HTTP 500;
- ``garbage``: HTTP 200 with a body that is not JSON;
- ``nochoices``: HTTP 200 with JSON lacking ``choices``;
- ``rambling``: a reply without a verdict tag;
- ``401``: HTTP 401.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_ANSWER = re.compile(r"Model's answer:\n(.*?)\n\nRules:", re.DOTALL)


def model_answer(prompt: str) -> str:
    match = _ANSWER.search(prompt)
    return match.group(1).strip() if match else ""


def default_decide(prompt: str) -> str:
    verdict = "correct" if model_answer(prompt).startswith("sem:") else "incorrect"
    return f"The answers {'agree' if verdict == 'correct' else 'differ'}.\n<verdict>{verdict}</verdict>"


class FakeJudgeServer:
    def __init__(self) -> None:
        self.plan: dict[str, list[str]] = {}
        self.decide: Callable[[str], str] = default_decide
        self.slow_seconds = 1.0
        self.retry_after = "0"
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                gemini = self.path.endswith(":generateContent")
                if gemini:
                    prompt = body["contents"][-1]["parts"][0]["text"]
                else:
                    prompt = body["messages"][-1]["content"] if self.path.endswith("/chat/completions") else ""
                behaviour = server._next(prompt)
                with server._lock:
                    server.log.append({"path": self.path, "prompt": prompt, "behaviour": behaviour,
                                       "model": body.get("model"), "time": time.monotonic()})  # fmt: skip
                if behaviour in ("429", "500", "401"):
                    payload = json.dumps({"error": {"message": f"fake {behaviour}"}}).encode()
                    self.send_response(int(behaviour))
                    if behaviour == "429":
                        self.send_header("Retry-After", server.retry_after)
                    self._send(payload)
                    return
                if behaviour == "slow":
                    time.sleep(server.slow_seconds)
                if behaviour == "garbage":
                    self.send_response(200)
                    self._send(b"<html>upstream proxy error</html>", "text/html")
                    return
                if behaviour == "nochoices":
                    self.send_response(200)
                    self._send(json.dumps({"id": "x", "object": "chat.completion"}).encode())
                    return
                text = "I think it is fine." if behaviour == "rambling" else server.decide(prompt)
                if gemini:
                    parts = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
                    self.send_response(200)
                    self._send(json.dumps({"candidates": [parts]}).encode())
                    return
                reply = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "judge"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                try:
                    self.send_response(200)
                    self._send(json.dumps(reply).encode())
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _send(self, payload: bytes, content_type: str = "application/json") -> None:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _next(self, prompt: str) -> str:
        with self._lock:
            for key, steps in self.plan.items():
                if key in prompt:
                    return steps.pop(0) if len(steps) > 1 else steps[0]
        return "ok"

    def prompts(self) -> list[str]:
        with self._lock:
            return [entry["prompt"] for entry in self.log]

    def start(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def response(index: int, text: str, truth: str, blind: Any = None, prompt: str | None = None) -> dict[str, Any]:
    """A validation record as the trainer writes it."""
    return {"step": 0, "dataset_index": index, "data_source": "test", "prompt": prompt or f"<image>Question {index}?",
            "response": text, "ground_truth": truth, "scores": {"overall": 0.0}, "blind_answer": blind}  # fmt: skip
