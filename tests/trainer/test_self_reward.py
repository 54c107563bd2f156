"""The self-reward hop without Ray: prompt building, batching, description checks, grades, the v2 update batch
(layout, per-row loss weights, temperatures) and the external endpoint."""

from __future__ import annotations

import doctest
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch

from verl.protocol import DataProto
from verl.trainer import core_algos, self_reward
from verl.trainer.self_reward import (
    BLIND_INSTRUCTION,
    ExternalHop,
    Generation,
    Sampling,
    SelfRewardHop,
    hop_loss_weights,
    spread_order,
)

RESPONSES = [
    "<description>Three red circles on white.</description> <think>count</think> \\boxed{3}",
    "<think>no description</think> \\boxed{3}",
    "<description>   </description> <think>empty</think> \\boxed{2}",
    "<description>A blue square.</description><think>colour</think>\\boxed{blue}",
]
QUESTIONS = ["<image>How many circles?", "<image>How many?", "<image>How many?", "<image>What colour?"]
TRUTHS = ["3", "3", "2", "blue"]
ONE = Sampling(n=1, max_tokens=16, temperature=1.0, top_p=1.0)


def test_docstring_example_runs(tiny_tokenizer) -> None:
    failures, tried = doctest.testmod(self_reward, extraglobs={"tokenizer": tiny_tokenizer}, report=True)
    assert tried >= 6 and failures == 0


def test_hop_sends_only_descriptions_in_one_batched_call(tiny_tokenizer) -> None:
    calls = []

    def generate(prompt_ids: list[list[int]], sampling: Sampling) -> list[str]:
        calls.append((prompt_ids, sampling))
        return [f"<think>ok</think> \\boxed{{{i}}}" for i in range(len(prompt_ids))]

    result = SelfRewardHop(tiny_tokenizer, ONE, generate=generate).run(RESPONSES, QUESTIONS, TRUTHS)
    assert len(calls) == 1 and len(calls[0][0]) == 2, "one batched call with the two real descriptions"
    assert calls[0][1] == ONE
    assert result.blind_answers == ["<think>ok</think> \\boxed{0}", None, None, "<think>ok</think> \\boxed{1}"]
    assert result.grades == [[0.0], None, None, [0.0]]
    assert result.sources == [0, 3]
    assert result.counts == {"description_missing": 2, "description_misplaced": 0, "description_leak": 0}
    assert result.metrics()["self_reward/description_missing_rate"] == 0.5
    assert all(isinstance(ids, list) and all(isinstance(t, int) for t in ids) for ids in calls[0][0])
    prompt = tiny_tokenizer.decode(calls[0][0][0])
    assert "Three red circles on white." in prompt and "Question: How many circles?" in prompt
    assert "<image>" not in prompt and "<|image_pad|>" not in prompt and "\\boxed{3}" not in prompt
    assert BLIND_INSTRUCTION.split(".")[0] in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_hop_checks_the_number_of_answers(tiny_tokenizer) -> None:
    with pytest.raises(RuntimeError, match="asked for 2 blind answers .* and got 1"):
        SelfRewardHop(tiny_tokenizer, ONE, generate=lambda ids, sampling: ["x"]).run(RESPONSES, QUESTIONS, TRUTHS)


def test_hop_uses_the_runs_chat_template(tiny_tokenizer) -> None:
    seen = []
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}[answer]"
    hop = SelfRewardHop(tiny_tokenizer, ONE, generate=lambda ids, s: seen.extend(ids) or ["x"] * len(ids),
                        chat_template=template)  # fmt: skip
    hop.run(RESPONSES[:1], QUESTIONS[:1], TRUTHS[:1])
    text = tiny_tokenizer.decode(seen[0])
    assert text.startswith("[user] You cannot see the image") and text.endswith("[answer]")


def test_each_hack_gets_no_blind_answer_and_is_counted(tiny_tokenizer) -> None:
    hacks = [
        "<description>two circles, final answer \\boxed{2}</description> <think>so 2</think> \\boxed{2}",
        "<think>two</think> <description>2 is correct</description> \\boxed{2}",
        "<think>x <description>two circles</description></think> \\boxed{2}",
    ]
    calls = []
    hop = SelfRewardHop(tiny_tokenizer, ONE, generate=lambda ids, s: calls.append(ids) or [])
    result = hop.run(hacks, ["How many?"] * 3, ["2"] * 3)
    assert calls == [] and result.blind_answers == [None, None, None]
    assert result.counts == {"description_missing": 0, "description_misplaced": 2, "description_leak": 1}
    assert result.metrics()["self_reward/description_leak_rate"] == pytest.approx(1 / 3)


def test_leak_guard_withholds_a_description_naming_the_answer(tiny_tokenizer) -> None:
    naming = "<description>There are 3 red circles.</description> <think>count</think> \\boxed{3}"
    answer = lambda ids, s: ["\\boxed{3}"] * len(ids)  # noqa: E731
    guarded = SelfRewardHop(tiny_tokenizer, ONE, generate=answer, leak_guard=True).run([naming], ["?"], ["3"])
    assert guarded.blind_answers == [None] and guarded.counts["leak_guarded"] == 1
    plain = SelfRewardHop(tiny_tokenizer, ONE, generate=answer).run([naming], ["?"], ["3"])
    assert plain.grades == [[1.0]]


def test_hop_n_gives_every_blind_answer_its_own_grade_and_a_majority_verdict(tiny_tokenizer) -> None:
    three = Sampling(n=3, max_tokens=16, temperature=1.0, top_p=1.0)
    texts = ["The answer is 3", "\\boxed{4}", "\\boxed{3}", "\\boxed{blue}", "no idea", "\\boxed{red}"]
    result = SelfRewardHop(tiny_tokenizer, three, generate=lambda ids, s: texts).run(RESPONSES, QUESTIONS, TRUTHS)
    assert result.blind_answers[0] == texts[:3] and result.blind_answers[3] == texts[3:]
    assert result.grades == [[1.0, 0.0, 1.0], None, None, [1.0, 0.0, 0.0]]
    assert result.sources == [0, 0, 0, 3, 3, 3]
    # right when more than half of its blind answers are right; no description = wrong
    assert result.blind_right() == [True, False, False, False]


# ------------------------------------------------------------------------------------------------ v2 update batch


def test_hop_loss_weights_by_hand() -> None:
    # 2 ranks x 1 mini-batch; first hop: 4 rows of 3, 1, 2, 2 tokens (8); second hop: 3 real rows of 1, 2, 1
    # tokens (4) plus one padding row. h = 0.25: first-hop rows weigh 0.75 / 8, second-hop rows 0.25 / 4.
    weights = hop_loss_weights(torch.tensor([3, 1, 2, 2]), torch.tensor([1, 2, 1, 5]), 3, 2, 1, 0.25, "token-mean")
    expected = [0.75 / 8] * 4 + [0.25 / 4] * 3 + [0.0]
    assert weights.tolist() == pytest.approx(expected)
    rows = hop_loss_weights(
        torch.tensor([3, 1, 2, 2]), torch.tensor([1, 2, 1, 5]), 3, 2, 1, 0.25, "seq-mean-token-mean"
    )
    assert rows.tolist() == pytest.approx([0.75 / 4] * 4 + [0.25 / 3] * 3 + [0.0])
    # two mini-batches: each is normalised on its own (rank-major blocks: mini-batch 0 = rows 0 and 2)
    two = hop_loss_weights(torch.tensor([3, 1, 2, 2]), torch.tensor([1, 2, 1, 1]), 4, 2, 2, 0.5, "token-mean")
    assert two.tolist() == pytest.approx([0.5 / 5, 0.5 / 3, 0.5 / 5, 0.5 / 3, 0.5 / 2, 0.5 / 3, 0.5 / 2, 0.5 / 3])


def test_spread_order_puts_both_hops_on_every_rank_and_mini_batch() -> None:
    # 4 first-hop rows (0-3), 4 second-hop rows (4-7), 2 ranks x 1 mini-batch
    assert spread_order(4, 4, 2, 1) == [0, 1, 4, 5, 2, 3, 6, 7]
    assert spread_order(4, 4, 2, 2) == [0, 4, 1, 5, 2, 6, 3, 7]  # rank 0: mini-batch 0 then 1


def test_v2_weighted_loss_over_two_ranks_equals_the_formula() -> None:
    """Per-row weights, aggregated rank by rank and averaged (what FSDP's gradient mean does), give exactly
    (1 - h) * token-mean(first hop) + h * token-mean(second hop), whatever the token counts."""
    torch.manual_seed(0)
    first_tokens, hop_tokens, h = torch.tensor([5, 1, 3, 7]), torch.tensor([2, 9, 4, 3]), 0.5
    width = 10
    first_mask = (torch.arange(width)[None] < first_tokens[:, None]).float()
    hop_mask = (torch.arange(width)[None] < hop_tokens[:, None]).float()
    first_loss, hop_loss = torch.rand(4, width) + 0.5, 3 * torch.rand(4, width)
    expected = (1 - h) * (first_loss * first_mask).sum() / first_mask.sum() + h * (
        hop_loss * hop_mask
    ).sum() / hop_mask.sum()
    weights = hop_loss_weights(first_tokens, hop_tokens, 4, 2, 1, h, "token-mean")
    order = torch.tensor(spread_order(4, 4, 2, 1))
    loss, mask, w = torch.cat([first_loss, hop_loss])[order], torch.cat([first_mask, hop_mask])[order], weights[order]
    totals = [
        core_algos.loss_weight_total(mask[r * 4 : (r + 1) * 4], "token-mean", w[r * 4 : (r + 1) * 4]) for r in (0, 1)
    ]
    share = (totals[0] + totals[1]) / 2  # the all-reduced total over the 2 ranks
    per_rank = [
        core_algos.aggregate_loss(loss[r * 4 : (r + 1) * 4], mask[r * 4 : (r + 1) * 4], "token-mean",
                                  row_weights=w[r * 4 : (r + 1) * 4], weight_total=share)
        for r in (0, 1)
    ]  # fmt: skip
    assert float(sum(per_rank) / 2) == pytest.approx(float(expected), rel=1e-5)
    # one token mean over both hops (16 vs 18 tokens) would weight the hops by their token counts instead
    plain = torch.cat([first_loss * first_mask, hop_loss * hop_mask]).sum() / (first_mask.sum() + hop_mask.sum())
    assert float(plain) != pytest.approx(float(expected), rel=1e-3)


class _FakeWorkers:
    """Log-probs as a function of the temperature the rows carry, so the test sees which one was used."""

    def __init__(self) -> None:
        self.calls: list[DataProto] = []

    def compute_log_probs(self, data: DataProto) -> DataProto:
        self.calls.append(data)
        value = -data.batch["temperature"][:, None].expand_as(data.batch["response_mask"]).float()
        return DataProto.from_dict(tensors={"old_log_probs": value * data.batch["response_mask"],
                                            "entropies": torch.zeros_like(value)})  # fmt: skip

    def compute_ref_log_probs(self, data: DataProto) -> DataProto:
        return DataProto.from_dict(tensors={"ref_log_probs": torch.zeros(data.batch["response_mask"].shape)})


def _rollout_rows(prompt_len: int, lengths: list[int], width: int) -> dict[str, torch.Tensor]:
    rows = len(lengths)
    prompts = torch.ones(rows, prompt_len, dtype=torch.long)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    responses = 7 * mask
    input_ids = torch.cat([prompts, responses], dim=1)
    attention = (input_ids != 0).long()
    return {"prompts": prompts, "responses": responses, "response_mask": mask, "input_ids": input_ids,
            "attention_mask": attention, "position_ids": attention.cumsum(-1)}  # fmt: skip


def test_update_batch_trains_each_blind_answer_as_its_own_row(tiny_tokenizer) -> None:
    import numpy as np

    two = Sampling(n=2, max_tokens=8, temperature=0.0, top_p=1.0)  # greedy hop
    texts = ["\\boxed{3}", "\\boxed{4}", "\\boxed{blue}", "\\boxed{blue}"]
    sequences = DataProto.from_dict(tensors=_rollout_rows(3, [2, 4, 1, 3], 4))
    hop = SelfRewardHop(tiny_tokenizer, two, generate=lambda ids, s: Generation(texts, sequences))
    result = hop.run(RESPONSES, QUESTIONS, TRUTHS)
    main = DataProto.from_dict(
        tensors={**_rollout_rows(5, [6, 2, 3, 1], 6), "advantages": torch.ones(4, 6), "returns": torch.ones(4, 6),
                 "old_log_probs": torch.zeros(4, 6), "ref_log_probs": torch.zeros(4, 6)},
        non_tensors={"uid": np.array(["a", "a", "b", "b"], dtype=object)},
        meta_info={"temperature": 0.7},
    )  # fmt: skip
    workers = _FakeWorkers()
    out = hop.update_batch(main, result, workers, 0.5, world_size=2, mini_batches=1, loss_avg_mode="token-mean")
    assert out.meta_info["second_hop_rows"] == 4 and out.meta_info["mini_batch_rows"] == 4
    # rank 0 = first-hop rows 0, 1 and blind answers 0, 1; rank 1 = first-hop rows 2, 3 and blind answers 2, 3
    assert out.batch["temperature"].tolist() == pytest.approx([0.7, 0.7, 0.0, 0.0, 0.7, 0.7, 0.0, 0.0])
    assert out.batch["loss_weight"].tolist() == pytest.approx(
        [0.5 / 12] * 2 + [0.5 / 10] * 2 + [0.5 / 12] * 2 + [0.5 / 10] * 2
    )
    # the old log-probs of the blind answers were taken at the hop's temperature (the rows carry it)
    assert workers.calls[0].batch["temperature"].tolist() == [0.0] * 4
    # own grades 1, 0 (prompt "a": blind answers 0 and 1) and 1, 1 (prompt "b"): advantages +c, -c and 0, 0
    hop_adv = out.batch["advantages"][[2, 3, 6, 7]]
    first = hop_adv[:, 0]
    assert first[0] > 0 and first[1] == pytest.approx(-float(first[0])) and first[2:].tolist() == [0.0, 0.0]
    assert out.batch["input_ids"].shape[1] == 5 + 6 and out.batch["responses"].shape[1] == 6


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


def _run_external(hop: ExternalHop, tokenizer=None):
    return SelfRewardHop(tokenizer, ONE, external=hop).run(RESPONSES, QUESTIONS, TRUTHS)


def test_external_hop_answers_and_retries_429(server, monkeypatch) -> None:
    monkeypatch.setattr("verl.trainer.self_reward.time.sleep", lambda s: None)
    _Handler.script[:] = ["429"]
    hop = ExternalHop(_external(), max_tokens=32, temperature=0.0)
    result = _run_external(hop)
    assert result.blind_answers == ["\\boxed{3}", None, None, "\\boxed{blue}"]
    assert result.grades == [[1.0], None, None, [1.0]]
    assert result.counts == {
        "description_missing": 2,
        "description_misplaced": 0,
        "description_leak": 0,
        "external_error": 0,
    }
    assert len(_Handler.log) == 3  # two prompts, one of them retried after the 429
    assert all(req["model"] == "judge-model" and req["max_tokens"] == 32 for req in _Handler.log)


def test_external_hop_counts_failures_after_retries(server, monkeypatch) -> None:
    monkeypatch.setattr("verl.trainer.self_reward.time.sleep", lambda s: None)
    _Handler.script[:] = ["500", "garbage", "500", "garbage"]
    hop = ExternalHop(_external(max_retries=1), max_tokens=8, temperature=0.0)
    result = _run_external(hop)
    assert result.blind_answers[1] is None and result.counts["external_error"] == 2
    assert hop.errors == 2


def test_external_hop_needs_its_environment(monkeypatch) -> None:
    monkeypatch.delenv("SR_URL", raising=False)
    with pytest.raises(ValueError, match=r"\$SR_URL"):
        ExternalHop(_external(), max_tokens=8, temperature=0.0)


# ---------------------------------------------------------------------------------------------- the pipelined hop


class _ScriptedEngine:
    """A deterministic ("greedy") engine with the rollout interface, stop strings and continuation: rollout
    prompt ``Q<i>`` always answers ``SCRIPT[i]``; a blind prompt answers ``\\boxed{<first word of the
    description>}``. It records the requests of every call."""

    SCRIPT = [
        "<description>three red circles</description> <think>count them</think> \\boxed{3}",
        "<think>no description at all</think> \\boxed{3}",
        "<description>blue \\boxed{blue}</description> then \\boxed{blue}",  # leak: no blind answer
        "<description>blue square</description>",  # ends right after its description: only the EOS is left
    ]

    def __init__(self, tokenizer, max_tokens: int = 40) -> None:
        from verl.workers.rollout.base import eos_token_ids

        self.tokenizer, self.max_tokens, self.calls = tokenizer, max_tokens, []
        self.eos = eos_token_ids(tokenizer)
        self.end, self.pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _complete(self, prompt: list[int]) -> list[int]:
        text = self.tokenizer.decode(prompt)
        if "Description:" in text:
            word = text.split("Description:")[1].split()[0]
            return self._ids(f"<think>so</think> \\boxed{{{word}}}") + [self.end]
        return self._ids(self.SCRIPT[int(text.split("Q")[-1])]) + [self.end]

    def _cut(self, tokens: list[int], stop: list[str], budget: int) -> tuple[list[int], bool]:
        tokens = tokens[:budget]
        for k in range(1, len(tokens) + 1):
            if any(s in self.tokenizer.decode(tokens[:k]) for s in stop):
                return tokens[:k], k < budget and tokens[k - 1] != self.end
        return tokens, False

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        from verl.workers.rollout.base import build_output

        n, budget = prompts.meta_info.get("n", 2), prompts.meta_info.get("max_tokens", self.max_tokens)
        stop = list(prompts.meta_info.get("stop") or [])
        self.calls.append(("generate", len(prompts) * n, stop))
        cut = [self._cut(self._complete(list(p)), stop, budget) for p in prompts.non_tensor_batch["raw_prompt_ids"]]
        out = build_output(prompts, [t for t, _ in cut for _ in range(n)], n, budget, self.pad, self.eos)
        if stop:
            out.batch["stopped_at_stop_string"] = torch.tensor([s for _, s in cut for _ in range(n)])
        return out

    def continue_sequences(self, partial: DataProto) -> DataProto:
        import numpy as np

        from verl.workers.rollout.base import build_output, continuation_plan

        plan = continuation_plan(partial)
        for i in plan.to_continue:
            whole = self._complete(list(partial.non_tensor_batch["raw_prompt_ids"][i]))
            assert whole[: len(plan.generated[i])] == plan.generated[i], "continues from its own tokens"
            plan.generated[i] = whole[: self.max_tokens]
        extra = partial.meta_info["extra_sampling"]
        answers = np.empty(len(partial), dtype=object)
        asked = [i for i, p in enumerate(partial.non_tensor_batch["extra_prompt_ids"]) if p is not None]
        for i in asked:
            answer = self._complete(list(partial.non_tensor_batch["extra_prompt_ids"][i]))[: extra["max_tokens"]]
            answers[i] = [answer] * extra["n"]
        self.calls.append(("continue", len(plan.to_continue), len(asked)))
        out = build_output(plan.prompts, plan.generated, 1, self.max_tokens, self.pad, self.eos)
        out.non_tensor_batch["extra_token_ids"] = answers
        return out


def _question_batch(tokenizer) -> tuple[DataProto, list[str], list[str]]:
    import numpy as np

    from verl.trainer.self_reward import text_prompt_batch

    ids = [tokenizer(f"Q{i}", add_special_tokens=False)["input_ids"] for i in range(4)]
    prompts = text_prompt_batch(ids, tokenizer.pad_token_id, multimodal=True)
    questions = ["<image>How many circles?", "<image>How many?", "<image>What colour?", "<image>What colour?"]
    truths = ["three", "3", "blue", "blue"]
    prompts.non_tensor_batch["raw_question"] = np.array(questions, dtype=object)
    prompts.non_tensor_batch["ground_truth"] = np.array(truths, dtype=object)
    return prompts, questions, truths


@pytest.mark.parametrize("hop_n", [1, 2])
def test_pipelined_hop_gives_the_sequential_hops_rollout_and_blind_answers(tiny_tokenizer, hop_n) -> None:
    from verl.trainer.self_reward import PolicyGenerate

    sampling = Sampling(n=hop_n, max_tokens=16, temperature=0.0, top_p=1.0)
    prompts, questions, truths = _question_batch(tiny_tokenizer)
    gen = prompts.select(
        batch_keys=["input_ids", "attention_mask", "position_ids"], non_tensor_batch_keys=["raw_prompt_ids"]
    )

    seq_engine = _ScriptedEngine(tiny_tokenizer)
    sequential = SelfRewardHop(
        tiny_tokenizer, sampling, generate=PolicyGenerate(seq_engine.generate_sequences, tiny_tokenizer, True)
    )
    rollout = seq_engine.generate_sequences(gen)
    batch = prompts.repeat(2, interleave=True)
    for key in ("input_ids", "attention_mask", "position_ids"):
        batch.batch.pop(key)
    batch = batch.union(rollout)
    expected = sequential.annotate(batch)

    engine = _ScriptedEngine(tiny_tokenizer)
    pipelined = SelfRewardHop(
        tiny_tokenizer, sampling, generate=PolicyGenerate(engine.generate_sequences, tiny_tokenizer, True)
    )
    assert pipelined.can_pipeline
    out, result = pipelined.rollout(gen, questions, truths, engine.generate_sequences, engine.continue_sequences)

    # one rollout call stopped at </description>, then one call for the rest and every blind answer: prompts 0, 2
    # and 3 closed a description (prompt 3's continuation is only its EOS), prompt 1 ended; blind answers only
    # for prompts 0 and 3 (rows 0, 1, 6, 7): prompt 2's description holds the answer
    assert engine.calls == [("generate", 8, ["</description>"]), ("continue", 6, 4)]
    for key in ("prompts", "responses", "input_ids", "attention_mask", "position_ids", "response_mask"):
        assert torch.equal(out.batch[key], rollout.batch[key]), key
    assert "extra_token_ids" not in out.non_tensor_batch
    assert result.blind_answers == expected.blind_answers
    assert result.blind_answers[0] == (
        ["<think>so</think> \\boxed{three}"] * hop_n if hop_n > 1 else "<think>so</think> \\boxed{three}"
    )
    assert result.grades == expected.grades == [[1.0] * hop_n] * 2 + [None] * 4 + [[1.0] * hop_n] * 2
    assert result.descriptions == expected.descriptions
    assert result.sources == expected.sources == [i for i in (0, 1, 6, 7) for _ in range(hop_n)]
    # responses without a closed description (1: none; 2: a leak) get no hop, and are counted as in the sequential
    assert (
        result.counts
        == expected.counts
        == {"description_missing": 2, "description_misplaced": 0, "description_leak": 2}
    )
    for key in ("prompts", "responses", "input_ids", "attention_mask", "position_ids", "response_mask"):
        assert torch.equal(result.sequences.batch[key], expected.sequences.batch[key]), key


def test_pipelined_hop_without_any_description_answers_nothing(tiny_tokenizer) -> None:
    from verl.trainer.self_reward import PolicyGenerate

    engine = _ScriptedEngine(tiny_tokenizer)
    hop = SelfRewardHop(tiny_tokenizer, ONE, generate=PolicyGenerate(engine.generate_sequences, tiny_tokenizer, True))
    prompts, questions, truths = _question_batch(tiny_tokenizer)
    gen = prompts[[1]].select(
        batch_keys=["input_ids", "attention_mask", "position_ids"], non_tensor_batch_keys=["raw_prompt_ids"]
    )
    out, result = hop.rollout(gen, questions[1:2], truths[1:2], engine.generate_sequences, engine.continue_sequences)
    assert engine.calls[-1] == ("continue", 0, 0) and result.sequences is None and result.blind_answers == [None, None]
    assert len(out) == 2 and result.counts["description_missing"] == 2


def test_external_hop_cannot_pipeline(tiny_tokenizer) -> None:
    assert not SelfRewardHop(tiny_tokenizer, ONE, generate=lambda ids, s: ["x"] * len(ids)).can_pipeline
