"""The bad-input corpus: every kind of broken input a user can hand us, driven through the entry point a
user runs, with the message it must produce (naming the culprit) or the counted skip it must log.

Config, model path and data go through ``verl.trainer.main.main`` (``python3 -m verl.trainer.main``) in this
process with Ray blocked: each must fail (or log its skip) before Ray starts. Reward functions go through the
reward manager the trainer builds from the config (they run at step time; one raising function also runs end
to end in ``tests/trainer/test_ray_trainer.py``). Judges go through ``LLM_eval.py``'s ``llm_eval_main``
against the local test server of ``tests/evaluation/judge_server.py``. The same failures at the level of each
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
import socket
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


def test_a_folder_that_is_not_a_model_names_the_folder(run_main, tmp_path: Path) -> None:
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    seen, exc = run_main(f"worker.actor.model.model_path={empty}")
    assert not isinstance(exc, _ReachedRay)
    assert f"cannot load a tokenizer from {str(empty)!r}" in seen


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
    seen, exc = run_main(f"data.train_files={path}")
    assert not isinstance(exc, _ReachedRay)
    assert f"{path}: row 2, {reason}" in seen and "data.skip_bad_rows=true" in seen


def test_missing_column_names_the_key(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "rows.parquet", None)
    seen, exc = run_main(f"data.train_files={path}", f"data.val_files={path}", "data.prompt_key=question")
    assert not isinstance(exc, _ReachedRay)
    assert "column 'question' (data.prompt_key) not found" in seen and str(path) in seen


def test_overlong_prompt_is_an_error_or_a_counted_skip(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "long.parquet", {"problem": "<image>" + "a very long question " * 80})
    seen, exc = run_main(f"data.train_files={path}", "data.filter_overlong_prompts=false")
    assert not isinstance(exc, _ReachedRay)
    assert f"{path}: row 2: prompt is" in seen and "longer than data.max_prompt_length=192" in seen
    seen, exc = run_main(f"data.train_files={path}")  # filter_overlong_prompts=true (the default)
    assert isinstance(exc, _ReachedRay), seen
    assert "skipped 1 of 9 rows: {'overlong_prompt': 1}" in seen


def test_fewer_usable_rows_than_a_batch_names_the_key(run_main, tmp_path: Path) -> None:
    path = _rows_file(tmp_path / "small.parquet", None, good=5)
    seen, exc = run_main(f"data.train_files={path}")
    assert not isinstance(exc, _ReachedRay)
    assert f"{path}: 5 usable rows, fewer than one batch of 8 (data.rollout_batch_size" in seen


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
