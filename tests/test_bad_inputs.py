"""The bad-input corpus: every kind of broken input a user can hand us, driven through the entry point a
user runs, with the message it must produce (naming the culprit) or the counted skip it must log.

The model path, the lengths against the model, the reward functions' names and the data go through
``verl.trainer.main.main`` (``python3 -m verl.trainer.main``) in this process with Ray blocked: each must stop
before Ray starts as a config error (exit 2, one line naming the key and value to change) or log its counted
skip; none may end in a traceback (the fixture asserts it). Reward functions that misbehave at run time go
through the reward manager the trainer builds from the config (they run at step time; one raising
function also runs end to end in ``tests/trainer/test_ray_trainer.py``). Judges go through ``LLM_eval.py``'s
``llm_eval_main`` against the local test server of ``tests/evaluation/judge_server.py``. The same failures at the level of each
module (every reason a dataset row is refused, each judge retry path) are tested beside their modules:
``tests/utils/test_dataset.py``, ``tests/utils/test_config_utils.py``, ``tests/trainer/test_config.py``,
``tests/workers/test_reward_manager.py``, ``tests/evaluation/test_judge.py``,
``tests/trainer/test_self_reward.py`` (the external self-reward endpoint).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from verl.protocol import DataProto
from verl.trainer import main as trainer_main
from verl.trainer.config import PPOConfig
from verl.utils.config_utils import load_config
from verl.utils.tokenizer import get_tokenizer
from verl.workers.reward.reward_manager import RewardFunctionError, RewardManager

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
sys.path.insert(0, str(Path(__file__).parent / "evaluation"))
judge_server = importlib.import_module("judge_server")


class _ReachedRay(Exception):
    """Raised instead of starting Ray: the bad input was not caught before it."""


@pytest.fixture
def run_main(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, caplog):
    """``main(argv)`` on the tiny config; returns (what the user saw: stderr, the error and the log, the
    exception). Ray is never started."""
    import ray

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise _ReachedRay("the run got as far as starting Ray")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.chdir(REPO)

    def run(*overrides: str) -> tuple[str, BaseException]:
        argv = [
            f"config={CONFIG}",
            f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
            f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
            f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
            f"trainer.save_checkpoint_path={tmp_path / 'run'}",
            *overrides,
        ]
        caplog.clear()
        with caplog.at_level(logging.WARNING), pytest.raises((SystemExit, Exception)) as info:
            trainer_main.main(argv)
        seen = "\n".join([capsys.readouterr().err, str(info.value), caplog.text])
        # No case of the corpus may end in a traceback: each stops as a config error (exit 2) or gets to Ray.
        assert isinstance(info.value, (SystemExit, _ReachedRay)), f"ended in a traceback: {info.value!r}"
        return seen, info.value

    return run


# ----------------------------------------------------------------------------- config and model path


def test_malformed_yaml_names_the_file(run_main, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("data:\n  rollout_batch_size: [8, 16\n")
    seen, exc = run_main(f"config={bad}")
    assert isinstance(exc, SystemExit) and exc.code == 2
    assert "not valid YAML" in seen and str(bad) in seen


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("worker.rollout.temprature=0.5", ["worker.rollout.temprature", "temperature"]),  # unknown key
        ("data.rollout_batch_size=eight", ["data.rollout_batch_size", "'eight'", "int"]),  # mistyped value
        ("trainer.max_stepps=3", ["trainer.max_stepps", "max_steps"]),
        (
            "worker.actor.global_batch_size=3",  # impossible batch arithmetic
            ["data.rollout_batch_size=8", "worker.actor.global_batch_size=3"],
        ),
        ("worker.actor.model.model_path=./no_such_model", ["worker.actor.model.model_path", "no_such_model"]),
    ],
    ids=["unknown_key", "mistyped_value", "unknown_trainer_key", "batch_arithmetic", "missing_model_path"],
)
def test_config_errors_exit_2_naming_the_key(run_main, override: str, expected: list[str]) -> None:
    seen, exc = run_main(override)
    assert isinstance(exc, SystemExit) and exc.code == 2, seen
    assert "config error" in seen
    for part in expected:
        assert part in seen, (part, seen)


def _config_error(seen: str, exc: BaseException) -> str:
    """The one line the user sees (asserting the run stopped as a config error, exit 2, before Ray)."""
    assert isinstance(exc, SystemExit) and exc.code == 2, seen
    lines = seen.split("config error:\n", 1)[1].splitlines()
    return lines[0]


def test_a_folder_that_is_not_a_model_names_the_folder(run_main, tmp_path: Path) -> None:
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    line = _config_error(*run_main(f"worker.actor.model.model_path={empty}"))
    assert line.startswith(f"worker.actor.model.model_path={empty}: not a model folder (no config.json; it is empty)")
    assert "sentencepiece" not in line


def test_sft_entry_point_names_a_folder_that_is_not_a_model(tmp_path: Path, capsys, monkeypatch) -> None:
    from verl.trainer import sft

    monkeypatch.chdir(REPO)
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with pytest.raises(SystemExit) as info:
        sft.main(
            [
                f"config={REPO / 'train_examples' / 'configs' / 'sft_tiny_cpu.yaml'}",
                f"worker.actor.model.model_path={empty}",
                f"trainer.save_checkpoint_path={tmp_path / 'run'}",
            ]
        )
    assert info.value.code == 2
    line = capsys.readouterr().err.split("config error:\n", 1)[1].splitlines()[0]
    assert line.startswith(f"worker.actor.model.model_path={empty}: not a model folder"), line


def test_a_model_folder_without_a_tokenizer_says_so(run_main, tiny_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "config_only"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_dir / "qwen2_5_vl" / "config.json").read_text())
    line = _config_error(*run_main(f"worker.actor.model.model_path={folder}"))
    assert line.startswith(f"worker.actor.model.model_path={folder}: no tokenizer loads from it"), line


def test_a_model_folder_with_a_broken_config_names_it(run_main, tmp_path: Path) -> None:
    folder = tmp_path / "broken_config"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    line = _config_error(*run_main(f"worker.actor.model.model_path={folder}"))
    assert line.startswith(f"worker.actor.model.model_path={folder}: cannot read the model's config.json"), line


# ----------------------------------------------------------------------------- lengths (the tiny model: 4096)


def test_prompt_plus_response_longer_than_the_model_names_both_keys(run_main) -> None:
    line = _config_error(*run_main("data.max_prompt_length=4000", "data.max_response_length=200"))
    assert line.startswith(
        "data.max_prompt_length=4000 + data.max_response_length=200 = 4200 tokens, more than the model's context "
        "of 4096 (max_position_embeddings in "
    ), line
    assert "so they sum to at most 4096" in line


def test_engine_length_longer_than_the_model_names_the_key(run_main) -> None:
    line = _config_error(*run_main("worker.rollout.max_model_len=5000"))
    assert line.startswith("worker.rollout.max_model_len=5000 is more than the model's context of 4096"), line


def test_sequence_parallel_size_the_model_heads_do_not_divide_names_the_key(run_main) -> None:
    line = _config_error(*run_main("trainer.n_gpus_per_node=4", "worker.actor.ulysses_size=4"))
    assert line.startswith("worker.actor.ulysses_size=4 must divide the model's 2 attention heads"), line


def test_evaluation_config_on_a_short_context_model_fails_before_ray(run_main, tiny_dir: Path) -> None:
    """The evaluation scripts' config (6144 + 2048 tokens) on a 4096-token model: the reason, not Ray's wrapper."""
    seen, exc = run_main(
        f"config={REPO / 'validation_examples' / 'configs' / 'eval.yaml'}",
        f"data.val_files={tiny_dir / 'data' / 'test.parquet'}",
        "trainer.n_gpus_per_node=1",
    )
    line = _config_error(seen, exc)
    assert line.startswith("data.max_prompt_length=6144 + data.max_response_length=2048 = 8192 tokens"), line


def test_evaluation_script_reports_the_length_problem_in_seconds(tiny_dir: Path, tmp_path: Path) -> None:
    """The evaluation script of the README on the tiny model: the start-up check's line, exit 2 from the run."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "MODEL_PATH": str(tiny_dir / "qwen2_5_vl"),
        "BENCHMARKS": f"tiny={tiny_dir / 'data' / 'test.parquet'}",
        "RESPONSE_DIR": str(tmp_path / "responses"),
        "N_GPUS": "1",
        "BLIND_ANSWERS": "1",
    }
    script = REPO / "validation_examples" / "2-seethink_format_eval.sh"
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "config error:\ndata.max_prompt_length=6144 + data.max_response_length=2048 = 8192 tokens" in done.stderr
    assert "tiny: evaluation failed (exit 2)" in done.stderr
    assert "Traceback" not in done.stderr and "WorkerError" not in done.stderr


def test_evaluation_config_within_the_model_s_context_passes_the_checks(run_main, tiny_dir: Path) -> None:
    """No false alarm: the same config with lengths that fit, the second hop on (BLIND_ANSWERS=1), gets to Ray."""
    seen, exc = run_main(
        f"config={REPO / 'validation_examples' / 'configs' / 'eval.yaml'}",
        f"data.val_files={tiny_dir / 'data' / 'test.parquet'}",
        "trainer.n_gpus_per_node=1",
        "data.max_prompt_length=192",
        "data.max_response_length=48",
        "data.min_pixels=3136",
        "data.max_pixels=12544",
        "algorithm.self_reward.enable=true",
        "algorithm.self_reward.max_tokens=32",
    )
    assert isinstance(exc, _ReachedRay), seen


def test_hop_longer_than_the_response_names_the_hop_key(run_main) -> None:
    seen, exc = run_main("data.max_response_length=24")
    line = _config_error(seen, exc)
    assert line.startswith("algorithm.self_reward.max_tokens=32 is more than data.max_response_length=24"), line
    assert "set algorithm.self_reward.max_tokens=24 or less" in line
    assert "resume" not in seen and "checkpoint" not in seen


def test_hop_on_an_external_endpoint_is_not_bound_by_the_response_length(run_main) -> None:
    seen, exc = run_main(
        "data.max_response_length=24", "algorithm.self_reward.backend=external", "data.max_prompt_length=64"
    )
    assert "algorithm.self_reward.max_tokens" not in seen


def test_validation_max_tokens_longer_than_the_response_names_the_key(run_main) -> None:
    line = _config_error(*run_main("worker.rollout.val_override_config={temperature: 0.0, n: 1, max_tokens: 500}"))
    assert line.startswith("worker.rollout.val_override_config.max_tokens=500 is more than"), line


# ----------------------------------------------------------------------------- data


def _png(size: tuple[int, int] = (112, 112), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows_file(path: Path, bad: dict[str, Any] | None, good: int = 8) -> Path:
    """A parquet file of ``good`` good rows with ``bad`` inserted as row 2."""
    ok = {"problem": "<image>How many shapes?", "answer": "2", "images": [{"bytes": _png(), "path": None}]}
    rows = [dict(ok) for _ in range(good)]
    if bad is not None:
        rows.insert(2, {**ok, **bad})
    image_type = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    schema = pa.schema([("problem", pa.string()), ("answer", pa.string()), ("images", image_type)])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def _image(data: bytes) -> list[dict[str, Any]]:
    return [{"bytes": data, "path": None}]


# (id, the bad row, the reason the error must give, the counted skip's kind)
BAD_ROWS = [
    ("corrupt_image", {"images": _image(_png()[:70])}, "column 'images': image 0 cannot be read", "unreadable_image"),
    ("zero_byte_image", {"images": _image(b"")}, "column 'images': image 0 cannot be read", "unreadable_image"),
    (
        "huge_image",  # 1-bit, so cheap to make; 10000 x 9000 pixels is over PIL's decompression-bomb limit
        {"images": _image(_png((10000, 9000), mode="1"))},
        "column 'images': image 0 cannot be read: image is 10000x9000",
        "unreadable_image",
    ),
    (
        "more_image_tags_than_images",
        {"problem": "<image> left, <image> right: same?"},
        "column 'images': the prompt has 2 <image> placeholders but only 1 images",
        "placeholder_mismatch",
    ),
    (
        "image_tag_without_image",
        {"images": []},
        "column 'images': the prompt has 1 <image> but no image",
        "missing_image",
    ),
    ("empty_answer", {"answer": "  "}, "column 'answer': answer is empty", "missing_answer"),
    ("empty_prompt", {"problem": ""}, "column 'problem': prompt is empty", "missing_prompt"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the huge image, refused anyway
@pytest.mark.parametrize(("name", "bad", "reason", "kind"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_a_bad_row_names_file_row_and_column(run_main, tmp_path: Path, name, bad, reason, kind) -> None:
    path = _rows_file(tmp_path / f"{name}.parquet", bad)
    line = _config_error(*run_main(f"data.train_files={path}"))
    assert line.startswith(f"{path}: row 2, {reason}") and "data.skip_bad_rows=true" in line, line


def test_missing_column_names_the_key(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "rows.parquet", None)
    line = _config_error(*run_main(f"data.train_files={path}", f"data.val_files={path}", "data.prompt_key=question"))
    assert line.startswith(f"{path}: column 'question' (data.prompt_key) not found"), line


def test_overlong_prompt_is_an_error_or_a_counted_skip(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "long.parquet", {"problem": "<image>" + "a very long question " * 80})
    line = _config_error(*run_main(f"data.train_files={path}", "data.filter_overlong_prompts=false"))
    assert line.startswith(f"{path}: row 2: prompt is") and "longer than data.max_prompt_length=192" in line
    seen, exc = run_main(f"data.train_files={path}")  # filter_overlong_prompts=true (the default)
    assert isinstance(exc, _ReachedRay), seen
    assert "skipped 1 of 9 rows: {'overlong_prompt': 1}" in seen


def test_more_images_in_a_row_than_the_engine_takes_names_limit_images(run_main, tmp_path: Path) -> None:
    two = {"problem": "<image> left, <image> right: same?", "images": _image(_png()) * 2}
    path = _rows_file(tmp_path / "two_images.parquet", two)
    line = _config_error(*run_main(f"data.train_files={path}", "worker.rollout.limit_images=1"))
    assert line.startswith(f"worker.rollout.limit_images=1, but {path}: row 2 has 2 images"), line
    assert "set worker.rollout.limit_images=2" in line
    seen, exc = run_main(f"data.train_files={path}", "worker.rollout.limit_images=2")
    assert isinstance(exc, _ReachedRay), seen


def test_videos_without_limit_videos_name_the_key_before_ray(run_main, tiny_dir: Path) -> None:
    path = tiny_dir / "data" / "mixed.parquet"  # row 1 is the first video row
    line = _config_error(*run_main(f"data.train_files={path}"))
    assert line.startswith(f"worker.rollout.limit_videos=0, but {path}: row 1 has 1 video(s)"), line
    seen, exc = run_main(f"data.train_files={path}", "worker.rollout.limit_videos=1")
    assert isinstance(exc, _ReachedRay), seen


def test_fewer_usable_rows_than_a_batch_names_the_key(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "small.parquet", None, good=5)
    line = _config_error(*run_main(f"data.train_files={path}"))
    assert line.startswith(f"{path}: 5 usable rows, fewer than one batch of 8 (data.rollout_batch_size"), line


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_skip_bad_rows_counts_every_kind_and_goes_on(run_main, tmp_path: Path) -> None:
    ok = {"problem": "<image>How many shapes?", "answer": "2", "images": _image(_png())}
    rows = [ok] * 8 + [{**ok, **bad} for _, bad, _, _ in BAD_ROWS]
    path = tmp_path / "mixed.parquet"
    image_type = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    schema = pa.schema([("problem", pa.string()), ("answer", pa.string()), ("images", image_type)])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    seen, exc = run_main(f"data.train_files={path}", "data.skip_bad_rows=true")
    assert isinstance(exc, _ReachedRay), seen
    counts = {kind: sum(k == kind for *_, k in BAD_ROWS) for *_, kind in BAD_ROWS}
    assert counts["unreadable_image"] == 3 and len(counts) == 5
    assert f"{path}: skipped 7 of 15 rows: {counts}" in seen


# ----------------------------------------------------------------------------- reward functions

SPEC_KEY = "worker.reward.reward_function"


def test_misspelt_reward_function_is_a_config_error_with_the_nearest_name(run_main) -> None:
    spec = "verl.rewards.functions:self_rewardd"
    line = _config_error(*run_main(f"{SPEC_KEY}={spec}"))
    assert line.startswith(f"{SPEC_KEY}={spec}: "), line
    assert "did you mean" in line and "'self_reward'" in line, line


def test_misspelt_validation_reward_function_names_its_own_key(run_main) -> None:
    spec = "verl.rewards.functions:validation_rewards"
    line = _config_error(*run_main(f"worker.val_reward.reward_function={spec}"))
    assert line.startswith(f"worker.val_reward.reward_function={spec}: "), line
    assert "'validation_reward'" in line, line


def test_reward_function_in_a_missing_module_is_a_config_error(run_main) -> None:
    spec = "verl.rewards.no_such_module:score"
    line = _config_error(*run_main(f"{SPEC_KEY}={spec}"))
    assert line.startswith(f"{SPEC_KEY}={spec}: ") and "verl.rewards.no_such_module" in line.split(": ", 1)[1], line
    assert "did you mean" not in line


def test_misspelt_function_in_a_reward_file_suggests_the_file_s_names(run_main, tmp_path: Path) -> None:
    path = tmp_path / "my_reward.py"
    path.write_text("def my_score(inputs, **kw):\n    return [0.0 for _ in inputs]\n")
    line = _config_error(*run_main(f"{SPEC_KEY}={path}:my_scor"))
    assert line.startswith(f"{SPEC_KEY}={path}:my_scor: ") and "'my_score'" in line, line


def test_reward_file_that_fails_to_import_is_a_config_error(run_main, tmp_path: Path) -> None:
    path = tmp_path / "broken_reward.py"
    path.write_text("import no_such_package_here\n\ndef fn(inputs, **kw):\n    return []\n")
    line = _config_error(*run_main(f"{SPEC_KEY}={path}:fn"))
    assert line.startswith(f"{SPEC_KEY}={path}:fn: ") and "no_such_package_here" in line, line


REWARDS = {
    "raises": ("def fn(inputs, **kw):\n    raise ZeroDivisionError('oops')\n", "raised ZeroDivisionError: oops"),
    "nan": (
        "def fn(inputs, **kw):\n    return [{'overall': float('nan')} for _ in inputs]\n",
        "returned overall=nan for sample 0 (must be a finite number); response: 'red'",
    ),
    "wrong_length": ("def fn(inputs, **kw):\n    return [1.0]\n", "returned 1 results for 2 responses"),
}


@pytest.mark.parametrize("case", sorted(REWARDS))
def test_bad_reward_function_names_itself(tiny_dir: Path, tmp_path: Path, monkeypatch, case: str) -> None:
    body, expected = REWARDS[case]
    (tmp_path / "my_reward.py").write_text(body)
    monkeypatch.chdir(REPO)
    spec = f"{tmp_path / 'my_reward.py'}:fn"
    config = load_config(
        PPOConfig,
        [f"config={CONFIG}", f"worker.reward.reward_function={spec}", f"trainer.save_checkpoint_path={tmp_path}"],
    )
    tokenizer = get_tokenizer(str(tiny_dir / "qwen2_5_vl"))
    manager = RewardManager(config.worker.reward, tokenizer)
    ids = [
        tokenizer("red", add_special_tokens=False)["input_ids"],
        tokenizer("blue", add_special_tokens=False)["input_ids"],
    ]
    width = max(len(i) for i in ids)
    data = DataProto.from_dict(
        tensors={
            "responses": torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i in ids]),
            "response_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids]),
        },
        non_tensors={
            "ground_truth": np.array(["red", "red"], dtype=object),
            "raw_question": np.array(["q", "q"], dtype=object),
        },
    )
    with pytest.raises(RewardFunctionError) as info:
        manager.compute_reward(data)
    assert f"reward function {spec} {expected}" in str(info.value)


# ----------------------------------------------------------------------------- judges


def _judge_inputs(root: Path) -> tuple[Path, Path]:
    """One open-ended benchmark, two answers the rules call wrong (so the judge is asked twice)."""
    items = [("\\boxed{sem:a red automobile}", "a red car"), ("\\boxed{sem:feline}", "cat")]
    gold = [{"problem": f"<image>Question {i}?", "answer": truth, "images": []} for i, (_, truth) in enumerate(items)]
    judge_server.write_jsonl(root / "gold" / "mm-vet.jsonl", gold)
    records = [judge_server.response(i, text, truth) for i, (text, truth) in enumerate(items)]
    judge_server.write_jsonl(root / "responses" / "mm-vet.jsonl", records)
    return root / "gold", root / "responses"


def _closed_port_url() -> str:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _llm_eval(root: Path, url: str, monkeypatch, capsys) -> tuple[int, str, dict[str, Any]]:
    from verl.evaluation.cli import llm_eval_main

    gold, responses = _judge_inputs(root)
    monkeypatch.setenv("JUDGE_BASE_URL", url)
    monkeypatch.setenv("JUDGE_MODEL", "fake-judge")
    out = root / "judged"
    code = llm_eval_main(
        ["--input_dir", str(responses), "--output_dir", str(out), "--gold_dir", str(gold), "--benchmarks", "mm-vet",
         "--timeout", "0.3", "--max_retries", "1", "--backoff", "0.01"]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    captured = capsys.readouterr()
    return code, captured.out + captured.err, summary


@pytest.mark.parametrize("behaviour", ["refused", "slow", "garbage", "429"])
def test_failing_judge_is_counted_never_correct(tmp_path: Path, monkeypatch, capsys, behaviour: str) -> None:
    server = judge_server.FakeJudgeServer().start()
    try:
        server.plan = {"Question": [behaviour]}
        server.slow_seconds, server.retry_after = 1.0, "0"
        url = _closed_port_url() if behaviour == "refused" else server.url
        code, printed, summary = _llm_eval(tmp_path, url, monkeypatch, capsys)
    finally:
        server.stop()
    assert code == 0, printed
    info = summary["benchmarks"]["mm-vet"]
    assert (info["judge_errors"], info["judged_correct"]) == (2, 0), info
    assert "judge errors" in printed
    if behaviour != "refused":
        assert len(server.log) == 4  # each question asked, then retried once


def test_judge_that_rejects_the_key_stops_with_the_status(tmp_path: Path, monkeypatch, capsys) -> None:
    server = judge_server.FakeJudgeServer().start()
    try:
        server.plan = {"Question": ["401"]}
        code, printed, _ = _llm_eval(tmp_path, server.url, monkeypatch, capsys)
    finally:
        server.stop()
    assert code == 2 and "401" in printed
