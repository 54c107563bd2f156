"""Shared fixtures: the tiny embedded assets, generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from verl.tiny import TinySizes, generate

TEST_SIZES = TinySizes(train=96, val=24, test=24)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL + Qwen2 + synthetic dataset (reuses VSR1_TEST_TINY_DIR when set, for speed)."""
    cached = os.environ.get("VSR1_TEST_TINY_DIR")
    out = Path(cached) if cached else tmp_path_factory.mktemp("tiny") / "assets"
    return generate(out, seed=0, sizes=TEST_SIZES)


@pytest.fixture(scope="session")
def tiny_vl(tiny_dir: Path) -> Path:
    return tiny_dir / "qwen2_5_vl"


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_vl: Path):
    from verl.utils.tokenizer import get_tokenizer

    return get_tokenizer(str(tiny_vl))


@pytest.fixture(scope="session")
def tiny_processor(tiny_vl: Path):
    from verl.utils.tokenizer import get_processor

    return get_processor(str(tiny_vl))


@pytest.fixture(scope="session")
def cpu_run_env() -> dict[str, str]:
    """The environment of an entry point run in a subprocess on the CPU: in-process vLLM with a small KV cache,
    quiet tokenizers, unbuffered output."""
    return dict(
        os.environ,
        VLLM_ENABLE_V1_MULTIPROCESSING="0",
        VLLM_CPU_KVCACHE_SPACE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
