"""The framework raises rewards: each estimator, both rollout engines, LoRA, padding-free and images.

Every case trains a tiny embedded model from its random initialisation for ``STEPS`` steps with a fixed
seed on a reward it can learn (``learning_reward.word_start_rate``: the share of response tokens that start
a word, about 0.2 for the untrained policy) and asserts that the mean reward of the last five steps is at
least ``MARGIN`` above that of the first five. The negative control runs the first case again with the
learning rate at 0, through the command line, and asserts that the reward does not rise (what makes the
others rise is the update) and that the console stayed quiet: one line per step, each engine warning once.

A sign error in an advantage or a loss, a weight sync that stops, or an update that never reaches the
weights each makes these tests fail (with the policy-gradient sign flipped, every case's reward falls).

The cases run in this pytest process against one Ray instance (started by the first case, stopped at the
end of the module), so each pays only for its own workers and rollout engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parent / "learning_config.yaml"
REWARD = Path(__file__).resolve().parent / "learning_reward.py"
STEPS = 20
WINDOW = 5
MARGIN = 0.3

pytestmark = pytest.mark.slow

ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}

# case id -> (model, overrides). "text" trains the tiny Qwen2 on the synthetic questions without their images;
# "vl" the tiny Qwen2.5-VL on the questions with their images; "text_wide_logits" the tiny Qwen2 with its
# final norm scaled by 4 (see ``wide_logits_model``).
CASES = {
    "grpo_vllm_images": ("vl", ()),
    "rloo_padding_free": ("text", ("algorithm.adv_estimator=rloo", "worker.actor.padding_free=true")),
    "reinforce_plus_plus_hf_rollout": (
        "text",
        ("algorithm.adv_estimator=reinforce_plus_plus", "worker.rollout.name=hf"),
    ),
    "gae_critic": (
        "text",
        (
            "algorithm.adv_estimator=gae",
            "worker.critic.global_batch_size=8",
            "worker.critic.micro_batch_size_per_device_for_update=32",
            "worker.critic.micro_batch_size_per_device_for_experience=32",
            "worker.critic.fsdp.torch_dtype=fp32",
            "worker.critic.fsdp.mp_param_dtype=fp32",
            "worker.critic.optim.lr=1e-3",
        ),
    ),
    "grpo_lora": (
        "text_wide_logits",
        ("worker.actor.model.lora.rank=8", "worker.actor.model.lora.alpha=16", "worker.actor.optim.lr=2e-2"),
    ),
}


@pytest.fixture(scope="module")
def ray_once() -> Iterator[None]:
    """The rollout engine's environment for the workers, and one Ray instance shut down after the module."""
    saved = {key: os.environ.get(key) for key in ENGINE_ENV}
    os.environ.update(ENGINE_ENV)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def text_train_file(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic training questions without their images, for the text-only model."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(tiny_dir / "data" / "train.parquet").to_pylist()
    text_rows = [{"problem": row["problem"].replace("<image>", ""), "answer": row["answer"]} for row in rows]
    path = tmp_path_factory.mktemp("learning") / "text_train.parquet"
    pq.write_table(pa.Table.from_pylist(text_rows), path)
    return path


@pytest.fixture(scope="module")
def wide_logits_model(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 with its final norm's weight times 4: LoRA's base model.

    A random initialisation's tied embeddings (std 0.02) keep every logit within about +-0.5, and adapters on
    the linear layers can only turn the hidden state, not lengthen it: they cannot move the output
    distribution far. A trained model's logits span several units; scaling the final norm gives the random
    one that range, so the adapters have something to steer. Full fine-tuning needs no such help (it grows
    the embeddings)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source = tiny_dir / "qwen2_text"
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(4.0)
    path = tmp_path_factory.mktemp("learning") / "qwen2_text_wide_logits"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    GenerationConfig.from_pretrained(source).save_pretrained(path)
    return path


def _arguments(tiny_dir: Path, text_train_file: Path | None, run_dir: Path, model: str) -> list[str]:
    """The command-line arguments of one case before its own overrides."""
    if model == "vl":
        model_args = [
            f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
            f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
            "data.min_pixels=3136",
            "data.max_pixels=12544",
        ]
    else:
        model_args = [
            f"worker.actor.model.model_path={tiny_dir / 'qwen2_text'}",
            f"worker.critic.model.model_path={tiny_dir / 'qwen2_text'}",
            f"data.train_files={text_train_file}",
        ]
    return [
        f"config={CONFIG}",
        f"worker.reward.reward_function={REWARD}:word_start_rate",
        f"trainer.save_checkpoint_path={run_dir}",
        f"trainer.max_steps={STEPS}",
        *model_args,
    ]


def _train(tiny_dir: Path, text_train_file: Path, run_dir: Path, model: str, *overrides: str) -> Path:
    """Train one case in this process; returns its run folder."""
    from verl.trainer.main import run

    run([*_arguments(tiny_dir, text_train_file, run_dir, model), *overrides])
    return run_dir


def _rewards(run_dir: Path) -> list[float]:
    """``reward/overall`` per step of a finished run."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    return [row["reward/overall"] for row in rows]


def _rise(rewards: list[float]) -> float:
    """Mean reward of the last ``WINDOW`` steps minus that of the first ``WINDOW``."""
    return sum(rewards[-WINDOW:]) / WINDOW - sum(rewards[:WINDOW]) / WINDOW


@pytest.mark.parametrize("case", list(CASES))
def test_reward_rises(
    case: str, ray_once: None, tiny_dir: Path, text_train_file: Path, tmp_path: Path, request
) -> None:
    model, overrides = CASES[case]
    if model == "text_wide_logits":
        overrides = (f"worker.actor.model.model_path={request.getfixturevalue('wide_logits_model')}", *overrides)
    rewards = _rewards(_train(tiny_dir, text_train_file, tmp_path, model, *overrides))
    rise = _rise(rewards)
    assert rise >= MARGIN, f"{case}: reward rose by {rise:.3f} < {MARGIN}; per step: {[round(r, 3) for r in rewards]}"


def test_without_updates_the_reward_stays_and_the_console_is_quiet(tiny_dir: Path, tmp_path: Path) -> None:
    """The negative control of ``grpo_vllm_images`` (lr 0), run as a user runs it: the command line."""
    model, overrides = CASES["grpo_vllm_images"]
    command = [sys.executable, "-m", "verl.trainer.main", *_arguments(tiny_dir, None, tmp_path, model)]
    command += [*overrides, "worker.actor.optim.lr=0", "trainer.logger=[console,file]"]
    proc = subprocess.run(
        command, cwd=REPO, env=dict(os.environ, **ENGINE_ENV), capture_output=True, text=True, timeout=900
    )
    console = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 0, "\n".join(console[-60:])
    rewards = _rewards(tmp_path)
    rise = _rise(rewards)
    assert abs(rise) < 0.1, f"with lr=0 the reward moved by {rise:.3f}; per step: {[round(r, 3) for r in rewards]}"

    progress = [line for line in console if re.match(rf"\[[# ]{{20}}\] \d+/{STEPS} eta ", line)]
    assert len(progress) == STEPS
    assert sum("torch.set_num_threads" in line for line in console) <= 1
    assert len(console) < STEPS + 40, "\n".join(console)
    assert (tmp_path / "run.log").read_text().count("torch.set_num_threads") > 1  # repeated, and kept in the log
