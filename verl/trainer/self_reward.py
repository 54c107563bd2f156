r"""The self-reward hop (Vision-SR1, arXiv 2508.19652): can the policy answer from its own description alone?

The paper's idea in three steps. A response is ``<description>...</description> <think>...</think> \boxed{}``.

1. The description that *opens* the response (before ``<think>``, holding no boxed answer) is cut out; a
   response without one is never sent (no perception reward: sending its whole text, answer included, or a
   description written after the reasoning would reward skipping the look at the image);
2. it goes back, with the question stripped of its image placeholders, to a text-only model (the *current
   policy* on the same rollout engine, by default) in a chat prompt built with the run's chat template;
3. the blind answer, graded against the ground truth (``verl.rewards.grade_blind_answer``), is the perception
   reward: a description that lets a blind reader answer carried what the image shows.

In the paper's later version (v2) the blind answers are trained too: :meth:`SelfRewardHop.update_batch` adds
one row per blind answer, with its own grade, log-probs, KL and advantage, and per-row loss weights so that
the update minimises ``(1 - h) * L_first + h * L_second`` (``h = second_hop_weight``), each hop's loss
averaged over its own tokens.

Nothing here needs Ray. Generation goes through one callable, ``generate(prompt_ids, sampling)``, returning
the texts (``n`` per prompt, prompt-major) or a :class:`Generation` that also carries the engine's token
batch (needed to train the second hop)::

    >>> from verl.trainer.self_reward import Sampling, SelfRewardHop
    >>> answer = lambda prompt_ids, sampling: ["<think>two</think> \\boxed{2}"] * len(prompt_ids)
    >>> hop = SelfRewardHop(tokenizer, Sampling(n=1, max_tokens=32, temperature=1.0, top_p=1.0), generate=answer)
    >>> good = "<description>Two circles.</description> <think>so 2</think> \\boxed{2}"
    >>> hack = "<think>2</think> <description>\\boxed{2}</description>"  # after the reasoning: not sent
    >>> hop.run([good, hack], ["<image>How many?"] * 2, ["2", "2"]).grades
    [[1.0], None]
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..protocol import DataProto
from ..rewards.format import check_description
from ..rewards.functions import description_leaks, grade_blind_answer
from ..utils.dataset import strip_image_placeholders
from ..workers.rollout.base import build_output, placeholder_token_ids
from . import core_algos

logger = logging.getLogger(__name__)

DESCRIPTION_END = "</description>"
"""Where the pipelined hop splits the rollout: a description is complete once this is written."""

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


@dataclass(frozen=True)
class Sampling:
    """How the blind answers are sampled: ``n`` per description, up to ``max_tokens`` each; ``temperature``
    0 is greedy."""

    n: int
    max_tokens: int
    temperature: float
    top_p: float


@dataclass
class Generation:
    """What a ``generate`` callable returns: ``texts`` (``n`` per prompt, prompt-major) and, from the rollout
    engine, ``sequences``: the token batch of those rows (prompts, responses, masks, positions) that training
    the second hop needs."""

    texts: list[str]
    sequences: DataProto | None = None


Generate = Callable[[list[list[int]], Sampling], "Generation | list[str]"]


class LogProbWorkers(Protocol):
    """The two worker-group calls that score the second hop's rows (the actor/rollout/ref group)."""

    def compute_log_probs(self, data: DataProto) -> DataProto: ...

    def compute_ref_log_probs(self, data: DataProto) -> DataProto: ...


@dataclass
class HopResult:
    """What the hop produced for a batch of responses (per-response lists, one entry per response)."""

    descriptions: list[str | None]
    """the description sent to the blind reader; None where none qualified"""
    blind_answers: list[str | list[str] | None]
    """the blind answer (a list of ``n`` when the hop samples several); None where no description qualified"""
    grades: list[list[float] | None]
    """1.0/0.0 per blind answer (``grade_blind_answer``); None where there is no blind answer"""
    sequences: DataProto | None = None
    """the engine's token rows of the blind answers, ``n`` per answered response, in response order"""
    sources: list[int] = field(default_factory=list)
    """for each row of ``sequences``, the index of the response whose description it answered"""
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    split: dict[str, float] = field(default_factory=dict)
    """the pipelined hop's shape (``self_reward/split/``, its ``*_seconds`` under ``timing/split/``): each half's
    engine seconds and the first half's lengths (the tokens up to ``</description>``), which bound how many engine
    steps the halves take"""

    def metrics(self) -> dict[str, float]:
        """``self_reward/<count>_rate`` per response, the split's shape, and the hop's time."""
        n = max(len(self.descriptions), 1)
        out = {f"self_reward/{k}_rate": v / n for k, v in self.counts.items()}
        # Seconds go under timing/ with the other clocks, so metrics compared across runs leave them out.
        out.update(
            {f"{'timing' if k.endswith('_seconds') else 'self_reward'}/split/{k}": v for k, v in self.split.items()}
        )
        out["timing/self_reward_hop"] = self.seconds
        return out

    def blind_right(self) -> list[bool]:
        """Whether the blind reader got each response's question right: the majority (more than half) of its
        blind answers graded right; False where there was no blind answer (no description = no visual
        evidence)."""
        return [bool(g) and sum(g) * 2 > len(g) for g in self.grades]

    def column(self) -> np.ndarray:
        """The ``blind_answer`` column the reward function reads."""
        column = np.empty(len(self.blind_answers), dtype=object)
        for i, answer in enumerate(self.blind_answers):  # element-wise: answers may be lists (hop n > 1)
            column[i] = answer
        return column


class SelfRewardHop:
    """Runs the second hop for a batch of responses and, in v2, builds the rows that train it.

    ``generate`` (``prompt_ids, sampling -> texts | Generation``) or ``external`` (an :class:`ExternalHop`)
    answers. ``chat_template`` is the run's (``data.override_chat_template``; None = the tokenizer's).
    ``leak_guard`` also withholds a description that names the answer in plain words
    (``verl.rewards.description_leaks``)."""

    def __init__(
        self,
        tokenizer: Any,
        sampling: Sampling,
        generate: Generate | None = None,
        external: ExternalHop | None = None,
        chat_template: str | None = None,
        leak_guard: bool = False,
    ) -> None:
        if (generate is None) == (external is None):
            raise ValueError("SelfRewardHop needs exactly one of generate (the policy) or external (an endpoint)")
        self.tokenizer, self.sampling = tokenizer, sampling
        self.generate, self.external = generate, external
        self.chat_template, self.leak_guard = chat_template, leak_guard

    @classmethod
    def from_config(
        cls,
        config: Any,
        tokenizer: Any,
        generate_sequences: Callable[[DataProto], DataProto],
        multimodal: bool,
        chat_template: str | None = None,
    ) -> SelfRewardHop:
        """The hop of ``algorithm.self_reward`` (``config``): the policy through the rollout engine's
        ``generate_sequences`` (``multimodal``: the model takes M-RoPE positions), or the external endpoint
        when ``backend=external``."""
        sampling = Sampling(config.n, config.max_tokens, config.temperature, config.top_p)
        options = {"chat_template": chat_template, "leak_guard": config.leak_guard}
        if config.backend == "external":
            external = ExternalHop(config.external, config.max_tokens, config.temperature, config.top_p)
            return cls(tokenizer, sampling, external=external, **options)
        return cls(tokenizer, sampling, generate=PolicyGenerate(generate_sequences, tokenizer, multimodal), **options)

    # ------------------------------------------------------------------ first hop -> blind answers

    def prompt_ids(self, description: str, question: str) -> list[int]:
        """Token ids of the blind prompt, through the run's chat template."""
        text = self.tokenizer.apply_chat_template(
            build_blind_messages(description, question),
            add_generation_prompt=True,
            tokenize=False,
            chat_template=self.chat_template,
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def select(self, responses: Sequence[str], ground_truths: Sequence[Any]) -> tuple[list[str | None], Counter[str]]:
        """The description each response sends to the blind reader (None: none qualified), and why not."""
        counts: Counter[str] = Counter(description_missing=0, description_misplaced=0, description_leak=0)
        descriptions: list[str | None] = []
        for response, truth in zip(responses, ground_truths, strict=True):
            check = check_description(response)
            text = check.text
            if check.status != "ok":
                counts[f"description_{check.status}"] += 1
            elif self.leak_guard and description_leaks(text, truth):
                counts["leak_guarded"] += 1
                text = None
            descriptions.append(text)
        return descriptions, counts

    def run(self, responses: Sequence[str], questions: Sequence[str], ground_truths: Sequence[Any]) -> HopResult:
        """Blind answers (and their grades) for ``responses``, in one batched generation."""
        start = time.perf_counter()
        descriptions, counts = self.select(responses, ground_truths)
        todo = [i for i, d in enumerate(descriptions) if d is not None]
        texts, sequences = self._answer([(descriptions[i], questions[i]) for i in todo])
        if self.external is not None:
            counts["external_error"] = sum(t is None for t in texts)
        result = self._result(descriptions, todo, texts, sequences, ground_truths)
        result.counts, result.seconds = dict(counts), time.perf_counter() - start
        return result

    def _result(
        self,
        descriptions: list[str | None],
        todo: list[int],
        texts: list[Any],
        sequences: DataProto | None,
        ground_truths: Sequence[Any],
    ) -> HopResult:
        """Answers and grades per response from the blind ``texts`` (``n`` per answered response in ``todo``)."""
        n = self.sampling.n
        if len(texts) != len(todo) * n:
            raise RuntimeError(
                f"the self-reward hop asked for {len(todo) * n} blind answers ({len(todo)} descriptions x n={n}) "
                f"and got {len(texts)}"
            )
        answers: list[str | list[str] | None] = [None] * len(descriptions)
        grades: list[list[float] | None] = [None] * len(descriptions)
        for k, i in enumerate(todo):
            own = list(texts[k * n : (k + 1) * n])
            answers[i] = own[0] if n == 1 else own
            grades[i] = [grade_blind_answer(t, ground_truths[i]) for t in own]
        return HopResult(
            descriptions=descriptions,
            blind_answers=answers,
            grades=grades,
            sequences=sequences,
            sources=[i for i in todo for _ in range(n)],
        )

    # ------------------------------------------------------------------ the pipelined hop

    @property
    def can_pipeline(self) -> bool:
        """Whether the blind answers can run inside the rollout: only when the policy answers."""
        return isinstance(self.generate, PolicyGenerate)

    def rollout(
        self,
        prompts: DataProto,
        questions: Sequence[str],
        ground_truths: Sequence[Any],
        generate_sequences: Callable[[DataProto], DataProto],
        continue_sequences: Callable[[DataProto], DataProto],
    ) -> tuple[DataProto, HopResult]:
        """The rollout of ``prompts`` with the hop inside it (``questions``/``ground_truths``: one per prompt).

        The rollout is split at :data:`DESCRIPTION_END`: the first call stops each response there (or where it
        ends); the second finishes every response from its own token ids, with the same sampling, and in the
        same engine batches decodes one blind answer per description that qualified (:meth:`select`). So the
        blind answers cost no engine steps of their own, and each response is distributed as in one call. The
        first ``</description>`` ends the description that :func:`check_description` reads, so the description
        cut from the first half is the one the whole response holds; the counts are taken from the whole
        responses. Returns the rollout (the layout of ``generate_sequences``) and the same :class:`HopResult` as
        :meth:`run`; ``seconds`` is the hop's own work, its generation being inside the rollout's."""
        assert isinstance(self.generate, PolicyGenerate), "the pipelined hop needs the policy backend"
        first = copy.copy(prompts)
        first.meta_info = {**prompts.meta_info, "stop": [DESCRIPTION_END]}
        partial = generate_sequences(first)
        start = time.perf_counter()
        per_prompt = len(partial) // len(prompts)
        questions = [str(questions[r // per_prompt]) for r in range(len(partial))]
        truths = [ground_truths[r // per_prompt] for r in range(len(partial))]
        descriptions, _ = self.select(decode_responses(partial, self.tokenizer), truths)
        todo = [i for i, d in enumerate(descriptions) if d is not None]
        hop_prompts = np.empty(len(partial), dtype=object)
        for i in todo:
            hop_prompts[i] = self.prompt_ids(descriptions[i], questions[i])
        partial.non_tensor_batch["extra_prompt_ids"] = hop_prompts
        first_meta = partial.meta_info
        s = self.sampling
        partial.meta_info = {
            **prompts.meta_info,
            "extra_sampling": {"n": s.n, "max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p},
        }
        seconds = time.perf_counter() - start
        out = continue_sequences(partial)
        start = time.perf_counter()
        extra = out.non_tensor_batch.pop("extra_token_ids")
        whole, counts = self.select(decode_responses(out, self.tokenizer), truths)
        if whole != descriptions:
            logger.warning("the split rollout's descriptions differ from the whole responses' (sent: the first)")
        sequences = None
        if todo:
            sequences = build_output(
                text_prompt_batch(
                    [hop_prompts[i] for i in todo], self.tokenizer.pad_token_id, self.generate.multimodal
                ),
                [tokens for i in todo for tokens in extra[i]],
                s.n,
                s.max_tokens,
                self.tokenizer.pad_token_id,
                set(),  # the engine stopped each answer at its end already
                forbidden_token_ids=placeholder_token_ids(self.tokenizer),
            )
        texts = decode_responses(sequences, self.tokenizer) if sequences is not None else []
        result = self._result(descriptions, todo, texts, sequences, truths)
        result.counts = dict(counts)
        result.seconds = seconds + time.perf_counter() - start
        first_lengths = partial.batch["response_mask"].sum(-1).float()
        result.split = {
            "first_half_seconds": float(first_meta.get("timing/generate", 0.0)),
            "second_half_seconds": float(out.meta_info.get("timing/generate", 0.0)),
            "first_half_tokens_mean": float(first_lengths.mean()),
            "first_half_tokens_max": float(first_lengths.max()),
            "continued_rate": float(partial.batch["stopped_at_stop_string"].float().mean())
            if "stopped_at_stop_string" in partial.batch
            else 0.0,
        }
        for key in ("timing/generate", "timing/weight_sync", "cut_at_placeholder"):
            out.meta_info[key] = first_meta.get(key, 0) + out.meta_info.get(key, 0)
        return out, result

    def _answer(self, prompts: list[tuple[str, str]]) -> tuple[list[Any], DataProto | None]:
        if not prompts:
            return [], None
        if self.external is not None:
            messages = [build_blind_messages(d, q) for d, q in prompts]
            return self.external.answer(messages, self.sampling.n), None
        assert self.generate is not None
        out = self.generate([self.prompt_ids(d, q) for d, q in prompts], self.sampling)
        if isinstance(out, Generation):
            return list(out.texts), out.sequences
        return list(out), None

    def annotate(self, batch: DataProto) -> HopResult:
        """Run the hop on a rollout batch (its decoded responses, ``raw_question`` and ``ground_truth``) and store
        the ``blind_answer`` column the reward function reads."""
        result = self.run(
            decode_responses(batch, self.tokenizer),
            [str(q) for q in batch.non_tensor_batch["raw_question"]],
            list(batch.non_tensor_batch["ground_truth"]),
        )
        batch.non_tensor_batch["blind_answer"] = result.column()
        return result

    # ------------------------------------------------------------------ v2: training the second hop

    def update_batch(
        self,
        batch: DataProto,
        hop: HopResult,
        workers: LogProbWorkers,
        second_hop_weight: float,
        world_size: int,
        mini_batches: int,
        loss_avg_mode: str,
        norm_adv_by_std: bool = True,
    ) -> DataProto:
        """The actor's update batch: ``batch`` (the first hop, advantages computed) plus one row per blind
        answer, with

        - its own advantage: its grade GRPO-normalised among the blind answers to the same prompt;
        - its own old (and reference) log-probs, at the hop's temperature, which the ``temperature`` column
          keeps for the update (greedy hops, temperature 0, are scored at temperature 1);
        - a ``loss_weight`` per row (:func:`hop_loss_weights`) so that each of the ``mini_batches`` updates
          minimises ``(1 - h) * L_first + h * L_second``, each hop's loss (and KL) aggregated over its own tokens
          (``loss_avg_mode``); padding rows weigh 0;
        - rows laid out so that every rank and every mini-batch holds its share of both hops (``meta_info``
          ``mini_batch_rows`` tells the actor the size of a mini-batch on one rank).
        """
        if hop.sequences is None or not hop.sources:
            return batch
        main_rows = len(batch)
        if main_rows % (world_size * mini_batches):
            raise ValueError(
                f"{main_rows} first-hop rows do not split into {world_size} ranks x {mini_batches} mini-batches"
            )
        layout = ("prompts", "responses", "input_ids", "attention_mask", "position_ids", "response_mask")
        seqs = hop.sequences.select(
            batch_keys=[k for k in layout if k in hop.sequences.batch], non_tensor_batch_keys=[]
        )
        grades = torch.tensor([g for i in sorted(set(hop.sources)) for g in (hop.grades[i] or [])])
        if len(grades) != len(seqs):
            raise RuntimeError(f"{len(seqs)} second-hop rows for {len(grades)} graded blind answers")
        uid = batch.non_tensor_batch["uid"][np.asarray(hop.sources)]
        hop_temperature = self.sampling.temperature
        seqs.batch["temperature"] = torch.full((len(seqs),), float(hop_temperature))
        seqs.meta_info["temperature"] = hop_temperature
        seqs = seqs.union(
            workers.compute_log_probs(seqs).select(batch_keys=["old_log_probs"], non_tensor_batch_keys=[])
        )
        if "ref_log_probs" in batch.batch:
            seqs = seqs.union(workers.compute_ref_log_probs(seqs))
        mask = seqs.batch["response_mask"]
        scores = torch.zeros_like(mask, dtype=torch.float32)
        scores[torch.arange(len(seqs)), (mask.sum(-1) - 1).clamp(min=0)] = grades.float()
        seqs.batch["advantages"], seqs.batch["returns"] = core_algos.compute_advantage(
            "grpo", token_level_rewards=scores, response_mask=mask, index=uid, norm_adv_by_std=norm_adv_by_std
        )
        main = batch.select(batch_keys=[k for k in seqs.batch if k in batch.batch], non_tensor_batch_keys=[])
        if "temperature" not in main.batch:
            rollout_temperature = float(batch.meta_info.get("temperature", 1.0))
            main.batch["temperature"] = torch.full((main_rows,), rollout_temperature)
        seqs = seqs.select(batch_keys=list(main.batch.keys()), non_tensor_batch_keys=[])
        hop_rows = len(seqs)
        seqs, _ = seqs.pad_to_divisor(world_size * mini_batches)
        main, seqs = main.pad_to_match(seqs), seqs.pad_to_match(main)
        weights = hop_loss_weights(
            main.batch["response_mask"].sum(-1),
            seqs.batch["response_mask"].sum(-1),
            hop_rows,
            world_size,
            mini_batches,
            second_hop_weight,
            loss_avg_mode,
        )
        if "multi_modal_inputs" in batch.non_tensor_batch:
            main.non_tensor_batch["multi_modal_inputs"] = batch.non_tensor_batch["multi_modal_inputs"]
            seqs.non_tensor_batch["multi_modal_inputs"] = np.array([None] * len(seqs), dtype=object)
        both = DataProto.concat([main, seqs])
        both.batch["loss_weight"] = weights
        both.reorder(torch.tensor(spread_order(main_rows, len(seqs), world_size, mini_batches)))
        both.meta_info = dict(batch.meta_info)
        both.meta_info.update(mini_batch_rows=len(both) // (world_size * mini_batches), second_hop_rows=hop_rows)
        return both


def hop_loss_weights(
    main_tokens: torch.Tensor,
    hop_tokens: torch.Tensor,
    hop_rows: int,
    world_size: int,
    mini_batches: int,
    second_hop_weight: float,
    loss_avg_mode: str,
) -> torch.Tensor:
    """Per-row loss weights for ``concat([first-hop rows, second-hop rows])`` (the second hop's padding rows,
    from index ``hop_rows`` on, weigh 0).

    Both hops are split the same way, rank-major then mini-batch (:func:`spread_order`); within global
    mini-batch ``j`` a first-hop row weighs ``(1 - h) / N1_j`` and a second-hop row ``h / N2_j``, where ``N`` is
    the hop's token count in that mini-batch for ``token-mean`` and its row count for the sequence modes. The
    actor's weighted loss ``sum_r w_r * l_r / sum_r w_r * n_r`` (``n_r`` = tokens, or 1) is then exactly
    ``(1 - h) * L_first + h * L_second``. A hop absent from a mini-batch weighs 0 there."""
    hop_real = torch.arange(len(hop_tokens)) < hop_rows
    if loss_avg_mode in ("token-mean", "token"):
        main_size, hop_size = main_tokens.double(), hop_tokens.double() * hop_real
    else:
        main_size, hop_size = torch.ones(len(main_tokens), dtype=torch.float64), hop_real.double()

    def per_row(share: float, size: torch.Tensor) -> torch.Tensor:
        blocks = size.view(world_size, mini_batches, -1)
        totals = blocks.sum(dim=(0, 2), keepdim=True)  # per global mini-batch
        weight = torch.where(totals > 0, share / totals.clamp(min=1e-12), torch.zeros_like(totals))
        return weight.expand_as(blocks).reshape(-1)

    main_weights = per_row(1.0 - second_hop_weight, main_size)
    hop_weights = per_row(second_hop_weight, hop_size) * hop_real
    return torch.cat([main_weights, hop_weights]).float()


def spread_order(main_rows: int, hop_rows: int, world_size: int, mini_batches: int) -> list[int]:
    """Row order of ``concat([first hop, second hop])`` whose contiguous rank chunks hold, mini-batch after
    mini-batch, that mini-batch's first-hop rows then its second-hop rows (both hops cut in ``world_size x
    mini_batches`` equal blocks, rank-major)."""
    main_block = main_rows // (world_size * mini_batches)
    hop_block = hop_rows // (world_size * mini_batches)
    order: list[int] = []
    for block in range(world_size * mini_batches):
        order.extend(range(block * main_block, (block + 1) * main_block))
        order.extend(range(main_rows + block * hop_block, main_rows + (block + 1) * hop_block))
    return order


def decode_responses(batch: DataProto, tokenizer: Any) -> list[str]:
    """The response texts of a rollout batch (valid tokens only, special tokens dropped)."""
    lengths = batch.batch["response_mask"].sum(-1).tolist()
    return [
        tokenizer.decode(batch.batch["responses"][i, : int(n)], skip_special_tokens=True) for i, n in enumerate(lengths)
    ]


def text_prompt_batch(prompt_ids: list[list[int]], pad_id: int, multimodal: bool) -> DataProto:
    """A left-padded, text-only prompt batch (what the hop sends to the rollout engine)."""
    length = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, ids in enumerate(prompt_ids):
        input_ids[i, length - len(ids) :] = torch.tensor(ids)
        attention_mask[i, length - len(ids) :] = 1
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0) * attention_mask
    if multimodal:  # text tokens advance all three M-RoPE axes together
        positions = positions.unsqueeze(1).expand(-1, 3, -1).clone()
    raw = np.empty(len(prompt_ids), dtype=object)
    raw[:] = [list(p) for p in prompt_ids]
    return DataProto.from_dict(
        tensors={"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions},
        non_tensors={"raw_prompt_ids": raw},
    )


class PolicyGenerate:
    """The ``generate`` callable of the policy backend: the rollout engine's ``generate_sequences`` on text-only
    prompts, returning the texts and the token rows."""

    def __init__(self, generate_sequences: Callable[[DataProto], DataProto], tokenizer: Any, multimodal: bool) -> None:
        self.generate_sequences, self.tokenizer, self.multimodal = generate_sequences, tokenizer, multimodal

    def __call__(self, prompt_ids: list[list[int]], sampling: Sampling) -> Generation:
        prompts = text_prompt_batch(prompt_ids, self.tokenizer.pad_token_id, self.multimodal)
        prompts.meta_info.update(
            n=sampling.n, max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p
        )
        out = self.generate_sequences(prompts)
        return Generation(texts=decode_responses(out, self.tokenizer), sequences=out)


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

    def answer(self, messages: Sequence[list[dict[str, str]]], n: int = 1) -> list[str | None]:
        """``n`` answers per chat (prompt-major), ``concurrency`` requests at a time; None where one failed."""
        requests = [m for m in messages for _ in range(n)]
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            answers = list(pool.map(self._one, requests))
        self.errors += sum(a is None for a in answers)
        return answers
