"""The LLM judge: asks whether a model's answer matches the gold answer, for answers the rule-based grader
called wrong.

Backends share one interface, ``generate(prompt) -> str`` plus a ``model`` name (part of the cache key):

- ``openai``: any OpenAI-compatible chat endpoint (OpenAI, ``vllm serve``, others), through the ``openai``
  client. Endpoint, model and key come from environment variables (``$JUDGE_BASE_URL``, ``$JUDGE_MODEL``,
  ``$JUDGE_API_KEY`` by default), never from files or the command line.
- ``gemini``: Google's Gemini through ``google-genai`` (``$GEMINI_API_KEY`` or ``$GOOGLE_API_KEY``).
- ``module:function`` (or ``path/to/file.py:function``): the user's own callable from prompt to reply text.

``Judge`` adds what makes thousands of calls trustworthy: a thread pool, retries with exponential backoff and
jitter, rate limits (a 429 pauses every thread until its ``Retry-After``), and an append-only on-disk cache
keyed by (benchmark, dataset_index, hash of question/gold/response/prompt version, judge model), written one
line per reply as it arrives, so an interrupted evaluation resumes without asking twice.

Verdicts are parsed strictly: the reply must carry exactly one ``<verdict>correct</verdict>`` or
``<verdict>incorrect</verdict>``. Anything else, and any call that still fails after its retries, is a
``judge_error``: counted, reported, never correct.
"""

from __future__ import annotations

import email.utils
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ..utils.import_utils import require

__all__ = [
    "CORRECT",
    "INCORRECT",
    "JUDGE_ERROR",
    "PROMPT_VERSION",
    "FunctionBackend",
    "GeminiBackend",
    "Judge",
    "JudgeBackend",
    "JudgeCache",
    "JudgeConfigError",
    "JudgeRequest",
    "JudgeResult",
    "OpenAIBackend",
    "build_judge_prompt",
    "make_backend",
    "parse_verdict",
]

logger = logging.getLogger(__name__)

CORRECT, INCORRECT, JUDGE_ERROR = "correct", "incorrect", "judge_error"
PROMPT_VERSION = "v1"
"""Changes whenever the judge prompt's wording changes, so that cached verdicts of another prompt are not reused."""

_PROMPT = """You are grading one answer to a benchmark question. Compare the model's final answer with the \
reference answer and decide whether they mean the same thing.

Question:
{question}

Reference answer:
{gold}

Model's answer:
{answer}

Rules:
- Judge only the final answer, not the reasoning that led to it.
- Count equivalent forms as the same: 0.5 and 1/2, "B" and "(B) 12" when option B is 12, "3 cm" and "3", \
different wording with the same meaning.
- An answer that hedges between several options, is partly right, or answers a different question is incorrect.
- If the model gave no answer, it is incorrect.

Give at most two sentences of justification, then end with exactly one of these two lines:
<verdict>correct</verdict>
<verdict>incorrect</verdict>"""

_MAX_ANSWER_CHARS = 2000


def build_judge_prompt(question: str, gold: str, answer: str) -> str:
    """The judge prompt (our own wording); ``answer`` is the extracted final answer, or the end of the response
    when none could be extracted."""
    if len(answer) > _MAX_ANSWER_CHARS:
        answer = "..." + answer[-_MAX_ANSWER_CHARS:]
    return _PROMPT.format(question=question.strip() or "(not available)", gold=gold.strip(), answer=answer.strip())


_VERDICT = re.compile(r"<verdict>\s*(.*?)\s*</verdict>", re.IGNORECASE | re.DOTALL)


def parse_verdict(reply: str | None) -> str:
    """``correct`` or ``incorrect`` when the reply holds exactly one verdict tag with one of those words;
    ``judge_error`` for everything else (no tag, two tags, other words, an empty reply)."""
    if not reply:
        return JUDGE_ERROR
    found = _VERDICT.findall(reply)
    if len(found) != 1:
        return JUDGE_ERROR
    word = found[0].strip().lower()
    return word if word in (CORRECT, INCORRECT) else JUDGE_ERROR


# ------------------------------------------------------------------------------------------------ backends


class JudgeBackend(Protocol):
    """What the judge needs from a model: a name (for the cache) and a reply to one prompt."""

    model: str

    def generate(self, prompt: str) -> str: ...


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (missing endpoint or key, rejected credentials, unknown model): stop the run
    instead of recording thousands of identical failures."""


class MalformedReplyError(RuntimeError):
    """The endpoint answered, but not with a usable text reply."""


class OpenAIBackend:
    """An OpenAI-compatible chat-completions endpoint. Retries are the ``Judge``'s (the client's own are off),
    so that every attempt is counted and 429s pause all threads."""

    def __init__(
        self,
        timeout: float = 60.0,
        max_tokens: int = 512,
        base_url_env: str = "JUDGE_BASE_URL",
        model_env: str = "JUDGE_MODEL",
        api_key_env: str = "JUDGE_API_KEY",
    ) -> None:
        openai = require("openai")
        base_url, model = os.environ.get(base_url_env), os.environ.get(model_env)
        api_key = os.environ.get(api_key_env) or os.environ.get("OPENAI_API_KEY")
        if not model:
            raise JudgeConfigError(f"the openai judge needs the model name in ${model_env}")
        if not base_url and not api_key:
            raise JudgeConfigError(
                f"the openai judge needs ${base_url_env} (endpoint, e.g. http://localhost:8000/v1 for vllm serve) "
                f"or ${api_key_env} (key for api.openai.com)"
            )
        self.model = model
        self.max_tokens = max_tokens
        self.client = openai.OpenAI(base_url=base_url or None, api_key=api_key or "EMPTY", timeout=timeout,
                                    max_retries=0)  # fmt: skip

    def generate(self, prompt: str) -> str:
        reply = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=self.max_tokens,
        )
        choices = getattr(reply, "choices", None)
        content = choices[0].message.content if choices else None
        if not isinstance(content, str):
            raise MalformedReplyError(f"reply without text content: {str(reply)[:200]}")
        return content


class GeminiBackend:
    """Gemini through ``google-genai`` (extra ``judge``); the key from ``$GEMINI_API_KEY`` or ``$GOOGLE_API_KEY``,
    the model from ``$JUDGE_MODEL`` (e.g. ``gemini-2.5-flash``, the paper's judge)."""

    def __init__(
        self, timeout: float = 60.0, max_tokens: int = 512, model_env: str = "JUDGE_MODEL",
        api_key_env: str = "GEMINI_API_KEY", base_url_env: str = "JUDGE_BASE_URL",
    ) -> None:  # fmt: skip
        genai = require("google.genai")
        types = importlib.import_module("google.genai.types")
        api_key = os.environ.get(api_key_env) or os.environ.get("GOOGLE_API_KEY")
        model = os.environ.get(model_env)
        if not api_key or not model:
            raise JudgeConfigError(f"the gemini judge needs ${api_key_env} (or $GOOGLE_API_KEY) and ${model_env}")
        options: dict[str, Any] = {"timeout": int(timeout * 1000)}  # milliseconds
        if os.environ.get(base_url_env):
            options["base_url"] = os.environ[base_url_env]
        self.model = model
        self._types = types
        self._config = types.GenerateContentConfig(temperature=0.0, max_output_tokens=max_tokens)
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**options))

    def generate(self, prompt: str) -> str:
        reply = self.client.models.generate_content(model=self.model, contents=prompt, config=self._config)
        text = getattr(reply, "text", None)
        if not isinstance(text, str):
            raise MalformedReplyError("reply without text (blocked or empty candidates)")
        return text


class FunctionBackend:
    """A user's function ``prompt -> reply`` named ``package.module:function`` or ``path/to/file.py:function``
    (loading it runs its code: point it only at code you trust). It must bound its own time per call."""

    def __init__(self, spec: str) -> None:
        target, sep, name = spec.rpartition(":")
        if not sep or not target or not name:
            raise JudgeConfigError(f"judge backend {spec!r}: expected 'module:function' or 'file.py:function'")
        if target.endswith(".py"):
            if not os.path.isfile(target):
                raise JudgeConfigError(f"judge backend {spec!r}: no such file {target!r}")
            module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        function = getattr(module, name, None)
        if not callable(function):
            raise JudgeConfigError(f"judge backend {spec!r}: {name!r} is not a function of {target!r}")
        self.model = spec
        self._function: Callable[[str], str] = function

    def generate(self, prompt: str) -> str:
        reply = self._function(prompt)
        if not isinstance(reply, str):
            raise MalformedReplyError(f"{self.model} returned {type(reply).__name__}, not str")
        return reply


def make_backend(name: str, timeout: float = 60.0, max_tokens: int = 512) -> JudgeBackend:
    """``openai``, ``gemini`` or a ``module:function`` spec (see the module docstring)."""
    if name == "openai":
        return OpenAIBackend(timeout=timeout, max_tokens=max_tokens)
    if name == "gemini":
        return GeminiBackend(timeout=timeout, max_tokens=max_tokens)
    if ":" in name:
        return FunctionBackend(name)
    raise JudgeConfigError(f"unknown judge backend {name!r}: use openai, gemini or module:function")


# ------------------------------------------------------------------------------------------------ cache


@dataclass(frozen=True)
class JudgeRequest:
    """One question for the judge. ``key`` identifies it in the cache."""

    benchmark: str
    dataset_index: int
    prompt: str

    @property
    def prompt_hash(self) -> str:
        """Hash of everything the verdict depends on besides the model: question, gold, answer, wording."""
        return hashlib.sha256(f"{PROMPT_VERSION}\n{self.prompt}".encode()).hexdigest()[:32]


def _cache_key(benchmark: str, index: int, prompt_hash: str, model: str) -> str:
    return json.dumps([benchmark, index, prompt_hash, model])


class JudgeCache:
    """Append-only JSONL of judge replies. Each reply is written (and flushed) as soon as it arrives; a torn last
    line from an interrupted run is ignored. Only replies are stored: failed calls are asked again next time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._replies: dict[str, str] = {}
        self.torn_lines = 0
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        key = _cache_key(entry["benchmark"], entry["dataset_index"], entry["prompt_hash"],
                                         entry["judge_model"])  # fmt: skip
                        self._replies[key] = entry["reply"]
                    except (ValueError, KeyError, TypeError):
                        self.torn_lines += 1
                        logger.warning("%s:%d: unreadable cache line ignored (interrupted write?)", self.path, number)

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, request: JudgeRequest, model: str) -> str | None:
        return self._replies.get(_cache_key(request.benchmark, request.dataset_index, request.prompt_hash, model))

    def put(self, request: JudgeRequest, model: str, reply: str) -> None:
        entry = {
            "benchmark": request.benchmark,
            "dataset_index": request.dataset_index,
            "prompt_hash": request.prompt_hash,
            "judge_model": model,
            "reply": reply,
            "time": time.time(),
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
            self._replies[_cache_key(request.benchmark, request.dataset_index, request.prompt_hash, model)] = reply


# ------------------------------------------------------------------------------------------------ the judge


@dataclass
class JudgeResult:
    """The judge's answer to one request: ``verdict`` is correct / incorrect / judge_error."""

    verdict: str
    reply: str | None
    cached: bool = False
    attempts: int = 0
    error: str | None = None


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), if the error carries one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


_FATAL_STATUS = {401, 403, 404}


class Judge:
    """Runs a backend over many requests: cache first, then ``concurrency`` threads, each call retried up to
    ``max_retries`` times (timeouts, connection errors, 429, 5xx, malformed replies) with exponential backoff
    from ``backoff`` seconds (doubling, capped at ``max_backoff``, with jitter). A 429's ``Retry-After`` pauses
    every thread (capped at ``max_retry_after``). 401/403/404 stop the run (``JudgeConfigError``): every call
    would fail the same way. ``counts`` tallies calls, retries, rate limits, cache hits and failures."""

    def __init__(
        self,
        backend: JudgeBackend,
        cache: JudgeCache | None = None,
        concurrency: int = 8,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
    ) -> None:
        if concurrency < 1 or max_retries < 0 or backoff < 0:
            raise ValueError("concurrency must be >= 1, max_retries and backoff >= 0")
        self.backend, self.cache = backend, cache
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff, self.max_backoff, self.max_retry_after = backoff, max_backoff, max_retry_after
        self.counts = {"calls": 0, "retries": 0, "rate_limited": 0, "cache_hits": 0, "failed": 0}
        self._lock = threading.Lock()
        self._pause_until = 0.0

    @property
    def model(self) -> str:
        return self.backend.model

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _wait_for_rate_limit(self) -> None:
        while True:
            with self._lock:
                delay = self._pause_until - time.monotonic()
            if delay <= 0:
                return
            time.sleep(delay)

    def _call(self, prompt: str) -> tuple[str | None, int, str | None]:
        """Reply text (or None), attempts made, and the last error."""
        delay, error = self.backoff, None
        for attempt in range(self.max_retries + 1):
            self._wait_for_rate_limit()
            self._count("calls")
            try:
                return self.backend.generate(prompt), attempt + 1, None
            except Exception as exc:  # network, HTTP status, malformed reply, the user's function
                status = _status_of(exc)
                if status in _FATAL_STATUS:
                    raise JudgeConfigError(f"the judge endpoint refused the request ({status}): {exc}") from exc
                error = f"{type(exc).__name__}: {exc}"[:300]
                if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
                    break  # a bad request stays bad
                if attempt == self.max_retries:
                    break
                wait = delay * (1 + 0.25 * random.random())
                if status == 429:
                    self._count("rate_limited")
                    after = _retry_after(exc)
                    if after is not None:
                        wait = min(after, self.max_retry_after)
                        with self._lock:
                            self._pause_until = max(self._pause_until, time.monotonic() + wait)
                self._count("retries")
                time.sleep(wait)
                delay = min(delay * 2, self.max_backoff)
        return None, self.max_retries + 1, error

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        """The verdict for one request (cached reply if there is one)."""
        if self.cache is not None:
            cached = self.cache.get(request, self.model)
            if cached is not None:
                self._count("cache_hits")
                return JudgeResult(parse_verdict(cached), cached, cached=True)
        reply, attempts, error = self._call(request.prompt)
        if reply is None:
            self._count("failed")
            logger.warning("judge failed on %s #%d after %d attempts: %s", request.benchmark, request.dataset_index,
                           attempts, error)  # fmt: skip
            return JudgeResult(JUDGE_ERROR, None, attempts=attempts, error=error)
        if self.cache is not None:
            self.cache.put(request, self.model, reply)
        return JudgeResult(parse_verdict(reply), reply, attempts=attempts)

    def judge_many(self, requests: Sequence[JudgeRequest], desc: str = "judge") -> list[JudgeResult]:
        """Verdicts for ``requests`` in order; cached ones are answered first, the rest by the thread pool.
        An interrupt (or a ``JudgeConfigError``) stops the pool; replies received so far stay in the cache."""
        results: list[JudgeResult | None] = [None] * len(requests)
        todo: list[int] = []
        for i, request in enumerate(requests):
            cached = self.cache.get(request, self.model) if self.cache is not None else None
            if cached is not None:
                self._count("cache_hits")
                results[i] = JudgeResult(parse_verdict(cached), cached, cached=True)
            else:
                todo.append(i)
        if todo:
            pool = ThreadPoolExecutor(max_workers=self.concurrency)
            try:
                futures = {pool.submit(self.judge_one, requests[i]): i for i in todo}
                with tqdm(total=len(todo), desc=desc, unit="call", disable=None, file=sys.stderr) as bar:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.update(1)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return [r for r in results if r is not None]
