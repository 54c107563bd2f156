"""End to end on the CPU with the tiny assets: the GRPO loop with and without the self-reward hop, its
variants, the HF engine, validation only, an external hop server, and errors. Kills and resumes:
``test_kill_anywhere.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"

pytestmark = pytest.mark.slow


def _command(tiny_dir: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "verl.trainer.main",
        f"config={CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"trainer.save_checkpoint_path={run_dir}",
        "trainer.max_steps=2",
        "trainer.val_freq=2",
        "trainer.save_freq=2",
        "trainer.val_before_train=false",
        "data.val_batch_size=8",
        "data.max_response_length=48",
        "trainer.ray_num_cpus=4",
        *overrides,
    ]


def _env(**extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        VLLM_ENABLE_V1_MULTIPROCESSING="0",
        VLLM_CPU_KVCACHE_SPACE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        **extra,
    )


def _run(tiny_dir: Path, run_dir: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _command(tiny_dir, run_dir, *overrides),
        cwd=REPO,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _finite(rows: list[dict], keys: list[str]) -> None:
    for key in keys:
        values = [row[key] for row in rows if key in row]
        assert values, f"{key} was never logged"
        assert all(isinstance(v, float) and v == v for v in values), (key, values)


def test_self_reward_run_logs_finite_perception_metrics_and_artifacts(tiny_dir, tmp_path) -> None:
    proc = _run(tiny_dir, tmp_path)
    _ok(proc)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    _finite(
        rows,
        [
            "reward/overall",
            "reward/accuracy",
            "reward/format",
            "reward/perception",
            "reward/perception_format",
            "self_reward/description_missing_rate",
            "actor/pg_loss",
            "actor/kl_loss",
            "actor/grad_norm",
            "timing/gen/self_reward_hop",  # the pipelined hop (vLLM's default) runs inside the rollout
            "val/overall",
            "val/blind_accuracy",
            "val/language_shortcut_rate",
        ],
    )
    assert (tmp_path / "global_step_2" / "COMPLETE").exists()
    records = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert records and {"dataset_index", "response", "ground_truth", "scores", "blind_answer"} <= set(records[0])
    assert (tmp_path / "config.yaml").exists()


def test_without_self_reward_no_hop_runs(tiny_dir, tmp_path) -> None:
    proc = _run(
        tiny_dir,
        tmp_path,
        "algorithm.self_reward.enable=false",
        "worker.reward.reward_function=verl.rewards.functions:seethink_reward",
    )
    _ok(proc)
    rows = _metrics(tmp_path)
    assert not any(key.startswith("self_reward/") or key.endswith("self_reward_hop") for r in rows for key in r)
    _finite(rows, ["reward/overall", "reward/format", "actor/pg_loss"])


@pytest.mark.parametrize(
    "overrides",
    [
        ("algorithm.self_reward.mode=multi_reward",),
        ("algorithm.self_reward.train_second_hop=true",),
        (
            "worker.rollout.name=hf",
            "algorithm.self_reward.enable=false",
            "worker.reward.reward_function=verl.rewards.functions:seethink_reward",
        ),
        ("algorithm.self_reward.n=2", "trainer.val_generations_to_log=2"),
        (
            "algorithm.adv_estimator=remax",
            "worker.rollout.n=1",
            "algorithm.self_reward.enable=false",
            "worker.reward.reward_function=verl.rewards.functions:seethink_reward",
        ),
        ("worker.actor.model.lora.rank=4", "worker.actor.model.lora.alpha=8"),
        ("trainer.n_gpus_per_node=2",),
    ],
    ids=["multi_reward", "train_second_hop", "hf_rollout", "hop_n2", "remax", "lora", "2_ranks"],
)
def test_variants_run_with_finite_metrics(tiny_dir, tmp_path, overrides) -> None:
    proc = _run(tiny_dir, tmp_path, *overrides)
    _ok(proc)
    _finite(_metrics(tmp_path), ["reward/overall", "actor/pg_loss", "critic/advantages/mean"])


def test_v2_with_two_blind_answers_per_description_trains_both_hops(tiny_dir, tmp_path) -> None:
    """multi_reward + train_second_hop + hop n=2 (greedy) on 2 ranks: each blind answer is its own row."""
    proc = _run(
        tiny_dir,
        tmp_path,
        "algorithm.self_reward.mode=multi_reward",
        "algorithm.self_reward.train_second_hop=true",
        "algorithm.self_reward.n=2",
        "algorithm.self_reward.temperature=0",
        "trainer.n_gpus_per_node=2",
    )
    _ok(proc)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    _finite(rows, ["reward/perception", "actor/pg_loss", "actor/kl_loss", "actor/grad_norm", "val/blind_accuracy"])
    assert all(r["actor/non_finite_skipped"] == 0.0 for r in rows)
    described = [r for r in rows if r["self_reward/description_missing_rate"] < 1.0]
    assert all(r["self_reward/second_hop_trained_rows"] > 0 for r in described)


def test_val_only_writes_responses_and_no_checkpoint(tiny_dir, tmp_path) -> None:
    proc = _run(tiny_dir, tmp_path, "trainer.val_only=true")
    _ok(proc)
    records = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    indices = sorted(r["dataset_index"] for r in records)
    assert len(records) > 0 and len(set(indices)) == len(indices)
    assert not list(tmp_path.glob("global_step_*"))


class _HopServer(BaseHTTPRequestHandler):
    requests = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _HopServer.requests += 1
        data = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "\\boxed{red}"}}
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_external_hop_against_a_local_server(tiny_dir, tmp_path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HopServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = _env(SELF_REWARD_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1", SELF_REWARD_MODEL="m")
        proc = _run(tiny_dir, tmp_path, "algorithm.self_reward.backend=external", env=env)
    finally:
        server.shutdown()
    _ok(proc)
    rows = _metrics(tmp_path)
    _finite(rows, ["reward/perception", "self_reward/external_error_rate"])
    assert all(r["self_reward/external_error_rate"] == 0.0 for r in rows if "self_reward/external_error_rate" in r)


def test_online_filtering_keeps_the_groups_whose_reward_varies(tiny_dir, tmp_path) -> None:
    # Groups of n=4 rows in order: even groups score 0, 1, 0, 1 (a signal), odd groups 0 everywhere (none).
    mixed = tmp_path / "mixed_reward.py"
    mixed.write_text(
        "def score(inputs, **kw):\n    return [float((i // 4) % 2 == 0 and i % 2) for i in range(len(inputs))]\n"
    )
    proc = _run(
        tiny_dir,
        tmp_path / "run",
        f"worker.reward.reward_function={mixed}:score",
        "algorithm.self_reward.enable=false",
        "algorithm.online_filtering=true",
        "trainer.val_freq=-1",
    )
    _ok(proc)
    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["online_filtering/kept_ratio"] == 0.5 for r in rows)
    _finite(rows, ["reward/overall", "actor/pg_loss"])


def test_reward_function_that_raises_names_itself(tiny_dir, tmp_path) -> None:
    bad = tmp_path / "bad_reward.py"
    bad.write_text("def score(inputs, **kw):\n    raise ZeroDivisionError('oops')\n")
    proc = _run(
        tiny_dir, tmp_path / "run", f"worker.reward.reward_function={bad}:score", "algorithm.self_reward.enable=false"
    )
    assert proc.returncode != 0
    assert "bad_reward.py:score raised ZeroDivisionError: oops" in proc.stderr


def test_non_finite_updates_in_a_row_stop_the_run(tiny_dir, tmp_path) -> None:
    # Finite scores (the reward manager accepts them) whose advantages overflow the policy loss to inf.
    huge = tmp_path / "huge_reward.py"
    huge.write_text("def score(inputs, **kw):\n    return [3.0e38 * (-1) ** i for i in range(len(inputs))]\n")
    proc = _run(
        tiny_dir,
        tmp_path / "run",
        f"worker.reward.reward_function={huge}:score",
        "algorithm.self_reward.enable=false",
        "algorithm.norm_adv_by_std_in_grpo=false",
        "trainer.max_steps=4",
        "trainer.max_consecutive_nonfinite_steps=2",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "step 1: actor update skipped (1 mini-batch(es)): non-finite loss or grad norm" in proc.stderr
    assert "training stopped: stopped at step 2: the actor update was skipped" in proc.stderr
    assert "no complete checkpoint yet" in proc.stderr
    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2] and all(r["actor/non_finite_skipped"] == 1.0 for r in rows)
