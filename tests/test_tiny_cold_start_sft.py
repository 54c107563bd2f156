"""``train_examples/sft/tiny_cold_start_sft_cpu.sh``: the miniature cold start teaches the see-think format (the
exported model's greedy answers follow it on most validation rows, so RL from it has rewards to learn from),
and its last line names the model folder the run really wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train_examples" / "sft" / "tiny_cold_start_sft_cpu.sh"
SEETHINK = REPO / "train_examples" / "format_prompt" / "seethink.jinja"


def _run(tmp_path: Path, *overrides: str, python: str = sys.executable, timeout: int = 1500):
    env = {
        **os.environ,
        "PYTHON": python,
        "TINY_DIR": str(tmp_path / "tiny"),
        "SFT_DATA": str(tmp_path / "sft"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *overrides], cwd="/", env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("written", [True, False], ids=["model_written", "no_model"])
def test_last_line_follows_the_overridden_run_folder(tmp_path: Path, written: bool) -> None:
    """Every step stubbed (``PYTHON=/bin/true``): only the script's own path logic runs."""
    run_dir = tmp_path / "elsewhere"
    if written:
        (run_dir / "hf_model").mkdir(parents=True)
        (run_dir / "hf_model" / "config.json").write_text("{}")
    done = _run(tmp_path, f"trainer.save_checkpoint_path={run_dir}", python="/bin/true", timeout=60)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    if written:
        assert last == f"model for RL: {run_dir}/hf_model"
    else:
        assert last == f"checkpoints: {run_dir} (no Hugging Face folder: trainer.save_hf_model=true)"


def test_last_line_follows_overridden_project_and_experiment(tmp_path: Path) -> None:
    done = _run(tmp_path, "trainer.project_name=p", "trainer.experiment_name=e", python="/bin/true", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("checkpoints: checkpoints/p/e ")


def _greedy_format_rate(model_dir: Path, val_file: Path, rows: int) -> tuple[int, int]:
    """(formatted, asked): greedy answers of the model on the first ``rows`` validation prompts, built as the RL
    run builds them (see-think format prompt, the same pixel bounds), checked by the RL format reward's test."""
    from transformers import AutoModelForImageTextToText

    from verl.rewards.format import seethink_format_ok
    from verl.utils.dataset import RLHFDataset
    from verl.utils.tokenizer import get_processor, get_tokenizer

    tokenizer, processor = get_tokenizer(str(model_dir)), get_processor(str(model_dir))
    dataset = RLHFDataset(str(val_file), tokenizer, processor, max_prompt_length=192, format_prompt=str(SEETHINK),
                          min_pixels=3136, max_pixels=12544)  # fmt: skip
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    items = [dataset[i] for i in range(min(rows, len(dataset)))]
    images = [item["multi_modal_inputs"] for item in items]
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.stack([item["input_ids"] for item in items]),  # left-padded to the same length
            attention_mask=torch.stack([item["attention_mask"] for item in items]),
            pixel_values=torch.cat([image["pixel_values"] for image in images]),
            image_grid_thw=torch.cat([image["image_grid_thw"] for image in images]),
            max_new_tokens=96,  # the RL demo's data.max_response_length
            do_sample=False,
        )
    answers = tokenizer.batch_decode(out[:, items[0]["input_ids"].shape[0] :], skip_special_tokens=True)
    return sum(seethink_format_ok(answer) for answer in answers), len(answers)


@pytest.mark.slow
def test_default_run_teaches_the_format(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = _run(tmp_path, f"trainer.save_checkpoint_path={run_dir}", "trainer.ray_num_cpus=2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert done.stdout.strip().splitlines()[-1] == f"model for RL: {run_dir}/hf_model"
    formatted, asked = _greedy_format_rate(run_dir / "hf_model", tmp_path / "tiny" / "data" / "val.parquet", rows=64)
    assert formatted >= 0.6 * asked, f"{formatted} of {asked} greedy answers have the see-think format"
