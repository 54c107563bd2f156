"""The benchmarks of the paper and how each one is graded.

Names are the response-file names written by ``validation_examples/`` (``<benchmark>.jsonl``). A benchmark is
either multiple choice, scored by string match on the option letter (or the short answer), or open-ended,
scored by the rule-based grader and then, for what the rules call wrong, by an LLM judge. ``MLLM_test`` bundles
several benchmarks; each row's own benchmark is in the gold dataset's ``file_name`` column and is reported as
``MLLM_test/<file_name>``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

__all__ = [
    "BENCHMARKS",
    "DEFAULT_BENCHMARKS",
    "MMMU_PRO_PARTS",
    "Benchmark",
    "get_benchmark",
]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: where its gold answers live and how it is scored."""

    name: str
    gold: str | None
    """default gold source (``owner/name@split`` or a local file); None when the user must give one"""
    mcq: bool = False
    """multiple choice, scored by string match (no judge needed)"""
    modality: str = "visual"
    answer_key: str = "answer"
    question_key: str = "problem"
    group_key: str | None = None
    """gold column naming each row's own benchmark, for bundles such as ``MLLM_test``"""


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("MMMU", "zli12321/MMMU@test", mcq=True),
        Benchmark("mmmu-pro-vision", "zli12321/mmmu-pro-vision@test", mcq=True),
        Benchmark("mmmu_pro_10options", "zli12321/mmmu_pro_10options@test", mcq=True),
        Benchmark("mm-vet", "zli12321/mm-vet@test"),
        Benchmark("MLLM_test", "zli12321/MLLM_test@test", group_key="file_name"),
        Benchmark("visnumbench", "zli12321/visnumbench@test", mcq=True),
        Benchmark("hallusionbench", "zli12321/hallusionbench@test", mcq=True),
        Benchmark("mmstar", "zli12321/mmstar@test"),
        Benchmark("mmlu_pro", "zli12321/mmlu_pro@test", modality="text"),
        Benchmark("SuperGPQA", "zli12321/SuperGPQA@test", modality="text"),
        Benchmark("MATH-500", "HuggingFaceH4/MATH-500@test", modality="text"),
        Benchmark("gsm8k", "zli12321/gsm8k@test", modality="text"),
    )
}
"""The paper's benchmarks, under the names the evaluation scripts give their response files."""

DEFAULT_BENCHMARKS: tuple[str, ...] = tuple(BENCHMARKS)

MMMU_PRO_PARTS: tuple[str, ...] = ("mmmu-pro-vision", "mmmu_pro_10options", "MLLM_test/mmmu-pro")
"""Rows pooled, weighted by their sample counts, into one MMMU-Pro score (the 4-option set is in MLLM_test)."""


def get_benchmark(name: str, extra: Collection[str] = (), extra_mcq: Collection[str] = ()) -> Benchmark | None:
    """The registered benchmark ``name``, or one the user declares (``extra`` open-ended, ``extra_mcq`` multiple
    choice; these have no default gold source). None for a name nobody declared, so that a stray file is
    reported instead of graded with guessed rules."""
    if name in BENCHMARKS:
        known = BENCHMARKS[name]
        return replace(known, mcq=True) if name in extra_mcq else known
    if name in extra_mcq:
        return Benchmark(name, None, mcq=True)
    if name in extra:
        return Benchmark(name, None)
    return None
