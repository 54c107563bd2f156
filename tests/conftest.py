"""Shared fixtures: the tiny embedded assets, generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from verl.tiny import TinySizes, generate

TEST_SIZES = TinySizes(train=96, val=24, test=24)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models of every family + the synthetic dataset (reuses VSR1_TEST_TINY_DIR when set, for speed)."""
    cached = os.environ.get("VSR1_TEST_TINY_DIR")
    out = Path(cached) if cached else tmp_path_factory.mktemp("tiny") / "assets"
    return generate(out, seed=0, sizes=TEST_SIZES)


@pytest.fixture(scope="session")
def tiny_vl(tiny_dir: Path) -> Path:
    return tiny_dir / "qwen2_5_vl"


VL_FOLDERS = ("qwen2_5_vl", "qwen3_vl")  # one tiny VL checkpoint per model family (verl.models)


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tiny_dir: Path) -> Path:
    return tiny_dir / "qwen3_vl"


@pytest.fixture(scope="session", params=VL_FOLDERS)
def any_tiny_vl(request: pytest.FixtureRequest, tiny_dir: Path) -> Path:
    """Each family's tiny VL model in turn: a test that takes it runs once per model family."""
    return tiny_dir / request.param


@pytest.fixture(scope="session")
def any_tiny_processor(any_tiny_vl: Path):
    from verl.utils.tokenizer import get_processor

    return get_processor(str(any_tiny_vl))


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
