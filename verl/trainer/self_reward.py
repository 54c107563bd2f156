"""The self-reward hop: can the policy answer from its own description, without the image?

After rollout, each response's ``<description>`` is given back to a text-only model (the *same current
policy* on the same rollout engine, by default) together with the question stripped of its image
placeholders. The blind answer is graded against the ground truth by the reward function: that is the
perception reward. A response without a (non-empty) description gets no blind answer, hence perception 0,
and is counted: its whole text, answer included, is never sent (that would reward skipping the
description).

Everything here is usable without Ray: ``run_hop`` takes a ``generate`` callable from prompt token ids to
texts. The trainer passes one that calls the rollout worker group with ``n=1``, a short ``max_tokens`` and no
images; the ``external`` backend sends the prompts to an OpenAI-compatible endpoint instead.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..rewards.format import check_description, extract_description
from ..utils.dataset import strip_image_placeholders

logger = logging.getLogger(__name__)

BLIND_INSTRUCTION = (
    "You cannot see the image. Below is a description of it, followed by a question about it. "
    "Answer the question using only the description. Reason briefly inside <think> </think>, "
    "then give the final short answer in \\boxed{}."
)


def build_blind_messages(description: str, question: str) -> list[dict[str, str]]:
    """The text-only chat prompt for one blind answer."""
    text = (
        f"{BLIND_INSTRUCTION}\n\nDescription: {description.strip()}\n\nQuestion: {strip_image_placeholders(question)}"
    )
    return [{"role": "user", "content": text}]


@dataclass
class HopResult:
    """What the hop produced for a batch of responses (one entry per response)."""

    descriptions: list[str | None]
    blind_answers: list[str | list[str] | None]
    prompt_ids: list[list[int] | None] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        n = max(len(self.descriptions), 1)
        out = {f"self_reward/{k}_rate": v / n for k, v in self.counts.items()}
        out["timing/self_reward_hop"] = self.seconds
        return out


def run_hop(
    responses: Sequence[str],
    questions: Sequence[str],
    generate: Callable[[list[list[int]]], list[str] | list[list[str]]],
    tokenizer: Any,
) -> HopResult:
    """Blind answers for ``responses`` via ``generate`` (prompt token ids → texts, or lists of texts when the
    hop samples several per description), batched in one call."""
    start = time.perf_counter()
    checks = [check_description(r) for r in responses]
    descriptions = [c.text for c in checks]
    todo = [i for i, d in enumerate(descriptions) if d]
    prompt_ids: list[list[int] | None] = [None] * len(responses)
    for i in todo:
        text = tokenizer.apply_chat_template(
            build_blind_messages(descriptions[i], questions[i]), add_generation_prompt=True, tokenize=False
        )
        prompt_ids[i] = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    answers: list[str | list[str] | None] = [None] * len(responses)
    if todo:
        texts = generate([prompt_ids[i] for i in todo])
        if len(texts) != len(todo):
            raise RuntimeError(f"the self-reward hop asked for {len(todo)} blind answers and got {len(texts)}")
        for i, text in zip(todo, texts):
            answers[i] = text
    missing = len(responses) - len(todo)
    return HopResult(
        descriptions=descriptions,
        blind_answers=answers,
        prompt_ids=prompt_ids,
        counts={
            "description_missing": missing - sum(c.status in ("leak", "misplaced") for c in checks),
            "description_leak": sum(c.status == "leak" for c in checks),
            "description_misplaced": sum(c.status == "misplaced" for c in checks),
        },
        seconds=time.perf_counter() - start,
    )


class ExternalHop:
    """Blind answers from an OpenAI-compatible chat endpoint (the LLM-judge variant of the hop).

    Endpoint, model and key come from the environment variables named in the config section
    (``algorithm.self_reward.external``), never from files. Requests run ``concurrency`` at a time, each with
    ``timeout`` seconds and up to ``max_retries`` retries with exponential backoff (429, 5xx, timeouts and
    connection errors are retried). A prompt that still fails gets no blind answer (perception 0) and is
    counted in ``errors``.
    """

    def __init__(self, external_config: Any, max_tokens: int, temperature: float, top_p: float = 1.0) -> None:
        from ..utils.import_utils import require

        openai = require("openai")
        env = os.environ
        base_url = env.get(external_config.base_url_env)
        model = env.get(external_config.model_env)
        if not base_url or not model:
            raise ValueError(
                f"the external self-reward hop needs ${external_config.base_url_env} (endpoint) and "
                f"${external_config.model_env} (model name) in the environment"
            )
        self.model, self.config = model, external_config
        self.max_tokens, self.temperature, self.top_p = max_tokens, temperature, top_p
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=env.get(external_config.api_key_env) or "EMPTY",
            timeout=external_config.timeout,
            max_retries=0,  # retries are ours, so they are counted and backed off uniformly
        )
        self.errors = 0

    def _one(self, messages: list[dict[str, str]]) -> str | None:
        delay = 1.0
        for attempt in range(self.config.max_retries + 1):
            try:
                reply = self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    top_p=self.top_p,
                )
                content = reply.choices[0].message.content
                if not isinstance(content, str):
                    raise ValueError("reply without text content")
                return content
            except Exception as exc:  # network, HTTP status, malformed reply
                status = getattr(exc, "status_code", None)
                retryable = status is None or status == 429 or status >= 500
                if attempt == self.config.max_retries or not retryable:
                    logger.warning("external self-reward hop failed after %d attempts: %s", attempt + 1, exc)
                    return None
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay = min(delay * 2, 30.0)
        return None

    def answer(self, descriptions: Sequence[str], questions: Sequence[str]) -> list[str | None]:
        messages = [build_blind_messages(d, q) for d, q in zip(descriptions, questions)]
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            answers = list(pool.map(self._one, messages))
        self.errors += sum(a is None for a in answers)
        return answers


def run_external_hop(responses: Sequence[str], questions: Sequence[str], hop: ExternalHop) -> HopResult:
    """Like ``run_hop`` but the blind answers come from ``hop`` (an external model)."""
    start = time.perf_counter()
    descriptions = [extract_description(r) for r in responses]
    todo = [i for i, d in enumerate(descriptions) if d]
    answers: list[str | None] = [None] * len(responses)
    before = hop.errors
    for i, text in zip(todo, hop.answer([descriptions[i] for i in todo], [questions[i] for i in todo])):
        answers[i] = text
    return HopResult(
        descriptions=descriptions,
        blind_answers=answers,
        counts={"description_missing": len(responses) - len(todo), "external_error": hop.errors - before},
        seconds=time.perf_counter() - start,
    )
