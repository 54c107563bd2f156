"""A hand-made run: gold files and shuffled response files whose right-answer counts are worked out by hand.

The fake judge says correct exactly when the answer it is shown starts with ``sem:`` (see ``judge_server``).

| benchmark              | n | rule-based right                  | judged right (rules or judge)     | judge errors |
| ---------------------- | - | --------------------------------- | --------------------------------- | ------------ |
| mm-vet                 | 6 | 0 (12), 4 (0.75 = 3/4)            | + 1 (sem:), 3 (no box, sem: tail) | 5 (rambling) |
| MLLM_test/mathverse    | 2 | 0                                 | 0                                 |              |
| MLLM_test/realWorldQA  | 1 | 2                                 | 2                                 |              |
| MLLM_test/mmmu-pro     | 1 | 3 (B)                             | 3                                 |              |
| MMMU (string match)    | 4 | 0 (B), 1 (answer is (C)), 3 ((D)) | same                              |              |
| mmmu-pro-vision        | 2 | 0                                 | same                              |              |
| hallusionbench         | 2 | 0 (Yes = yes)                     | same                              |              |

gsm8k has responses but is not judged; the other benchmarks of the paper have no files at all.
"""

from __future__ import annotations

import random
from pathlib import Path

from judge_server import response, write_jsonl

from verl.evaluation.judge import Judge, JudgeCache, OpenAIBackend

JUDGE_KEY_RAMBLING = "Question 5 of mm-vet"

# (response text, gold) per dataset_index
MM_VET = [
    ("<think>count</think> \\boxed{12}", "12"),
    ("\\boxed{sem:red automobile}", "a red car"),
    ("\\boxed{8}", "7"),
    ("sem: a cat, I think", "cat"),
    ("\\boxed{0.75}", "3/4"),
    ("\\boxed{sem:navy}", "blue"),
]
MLLM = [  # (response, gold, file_name)
    ("\\boxed{5}", "5", "mathverse"),
    ("\\boxed{6}", "9", "mathverse"),
    ("\\boxed{left}", "left", "realWorldQA"),
    ("\\boxed{B}", "B", "mmmu-pro"),
]
MMMU = [("\\boxed{B}", "B"), ("The answer is (C).", "C"), ("\\boxed{A}", "D"), ("\\boxed{(D) 12}", "D")]
MMMU_PRO_VISION = [("\\boxed{A}", "A"), ("\\boxed{C}", "B")]
HALLUSION = [("\\boxed{Yes}", "yes"), ("\\boxed{no}", "yes")]
GSM8K = [("\\boxed{4}", "4")]

EXPECTED_JUDGE_CALLS = 4 + 1  # mm-vet 1, 2, 3, 5 and MLLM_test 1
JUDGED = ["mm-vet", "MLLM_test", "MMMU", "mmmu-pro-vision", "hallusionbench"]
"""the benchmarks LLM_eval grades in these tests (gsm8k is left unjudged on purpose)"""


def make_judge(cache: Path, backend=None, concurrency: int = 4) -> Judge:
    """A judge on the fake server (found through the environment) with a short backoff."""
    return Judge(backend or OpenAIBackend(timeout=2), JudgeCache(cache), concurrency=concurrency, backoff=0.01)


def _question(benchmark: str, index: int) -> str:
    return f"<image>Question {index} of {benchmark}?"


def build(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/gold/<benchmark>.jsonl`` and shuffled ``root/responses/<benchmark>.jsonl``; returns both
    folders."""
    gold_dir, responses_dir = root / "gold", root / "responses"
    rng = random.Random(seed)
    sets = {"mm-vet": MM_VET, "MMMU": MMMU, "mmmu-pro-vision": MMMU_PRO_VISION, "hallusionbench": HALLUSION,
            "gsm8k": GSM8K}  # fmt: skip
    for name, items in sets.items():
        gold = [{"problem": _question(name, i), "answer": truth, "images": []} for i, (_, truth) in enumerate(items)]
        write_jsonl(gold_dir / f"{name}.jsonl", gold)
        records = [response(i, text, truth, prompt=_question(name, i)) for i, (text, truth) in enumerate(items)]
        rng.shuffle(records)
        write_jsonl(responses_dir / f"{name}.jsonl", records)
    gold = [{"problem": _question("MLLM_test", i), "answer": t, "file_name": f} for i, (_, t, f) in enumerate(MLLM)]
    write_jsonl(gold_dir / "MLLM_test.jsonl", gold)
    records = [response(i, text, truth, prompt=_question("MLLM_test", i)) for i, (text, truth, _) in enumerate(MLLM)]
    rng.shuffle(records)
    write_jsonl(responses_dir / "MLLM_test.jsonl", records)
    return gold_dir, responses_dir
