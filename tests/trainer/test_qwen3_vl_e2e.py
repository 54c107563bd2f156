"""Qwen3-VL end to end on the CPU with the tiny assets, in one shared run on the dataset mixing image, video
and text-only rows: self-rewarded GRPO with vLLM rollout, LoRA and padding-free FSDP training for two steps,
a checkpoint, a resumed third step equal to an uninterrupted run's, and the model merger's export loaded back
by transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from state_equality import assert_same_state, checkpoint_state

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"

pytestmark = pytest.mark.slow


def _train(tiny_dir: Path, run_dir: Path, max_steps: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "verl.trainer.main", f"config={CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen3_vl'}",
        f"data.train_files={tiny_dir / 'data' / 'mixed.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'mixed.parquet'}", "worker.rollout.limit_videos=1",
        f"trainer.save_checkpoint_path={run_dir}",
        f"trainer.max_steps={max_steps}", "trainer.save_freq=2", "trainer.val_freq=2", "trainer.val_before_train=false",
        "data.rollout_batch_size=4", "data.val_batch_size=8", "data.max_response_length=32", "worker.rollout.n=2",
        "worker.actor.global_batch_size=4", "worker.actor.padding_free=true",
        "worker.actor.model.lora.rank=4", "worker.actor.model.lora.alpha=8", "trainer.ray_num_cpus=4",
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_qwen3_vl_trains_resumes_and_merges(tiny_dir, tmp_path, cpu_run_env) -> None:
    run_dir = tmp_path / "run"
    _ok(_train(tiny_dir, run_dir, 2, cpu_run_env))
    assert (run_dir / "global_step_2" / "actor").is_dir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "actor/pg_loss" in r]
    assert [r["step"] for r in train] == [1, 2]
    for key in ("actor/pg_loss", "actor/grad_norm", "self_reward/description_missing_rate"):
        values = [r[key] for r in train if key in r]
        assert values and all(v == v for v in values), (key, values)
    assert any(k.startswith("val/") for r in rows for k in r), "validation at step 2 logged nothing"
    records = [json.loads(line) for line in (run_dir / "responses.jsonl").read_text().splitlines()]
    kinds = {("image", "video", "text")[r["dataset_index"] % 3] for r in records}  # see verl.tiny.make_mixed_rows
    assert kinds == {"image", "video", "text"}, kinds

    proc = _train(tiny_dir, run_dir, 3, cpu_run_env)  # resumes from global_step_2
    _ok(proc)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "actor/pg_loss" in r] == [1, 2, 3], "the resumed run must do step 3 only"

    # the resumed step 3 equals the same step of an uninterrupted run: data order, rewards, loss, checkpoint
    reference_dir = tmp_path / "reference"
    _ok(_train(tiny_dir, reference_dir, 3, cpu_run_env))
    reference = [json.loads(line) for line in (reference_dir / "metrics.jsonl").read_text().splitlines()]
    ours, theirs = ([r for r in rs if r["step"] == 3 and "actor/pg_loss" in r][0] for rs in (rows, reference))
    for key in ("data/dataset_index_digest", "reward/overall", "actor/pg_loss", "response_length/mean"):
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    assert_same_state(
        checkpoint_state(run_dir / "global_step_3", tmp_path),
        checkpoint_state(reference_dir / "global_step_3", tmp_path),
        "global_step_3",
    )

    target = tmp_path / "hf"
    latest = (run_dir / "latest_checkpointed_iteration.txt").read_text().strip()
    assert latest == "3"
    merge = [sys.executable, str(REPO / "scripts" / "model_merger.py"), "--local_dir",
             str(run_dir / f"global_step_{latest}" / "actor"), "--target_dir", str(target)]  # fmt: skip
    _ok(subprocess.run(merge, cwd=REPO, env=cpu_run_env, capture_output=True, text=True, timeout=300))
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(target)
    processor = AutoProcessor.from_pretrained(target)
    assert model.config.model_type == "qwen3_vl" and type(processor).__name__ == "Qwen3VLProcessor"
    assert not any("lora" in name for name, _ in model.named_parameters()), "adapters must be merged in"
