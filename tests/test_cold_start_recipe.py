"""The LLaMA-Factory cold-start recipes: the paper's hyperparameters in both YAMLs, the scripts' dry runs, and
(when a llamafactory environment exists) the YAMLs parsed by llamafactory's own argument parser.

llamafactory pins its own torch/transformers, so it lives in ``LLaMA-Factory-Cold-Start/.venv`` (made by
``LLaMA-Factory-Cold-Start/setup.sh``: about 3 minutes and 6.6 GB) or the interpreter in
``$LLAMAFACTORY_PYTHON``; CI does not build it, and the parser test is skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "LLaMA-Factory-Cold-Start"
RECIPES = sorted(FOLDER.glob("qwen2_5vl_*_cold_start.yaml"))
PAPER = {
    "learning_rate": 1.0e-5,
    "num_train_epochs": 3.0,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "bf16": True,
    "cutoff_len": 4092,
    "image_max_pixels": 262144,
    "freeze_vision_tower": True,
    "freeze_multi_modal_projector": True,
    "finetuning_type": "full",
    "template": "qwen2_vl",
}


def _llamafactory_python() -> str | None:
    candidate = os.environ.get("LLAMAFACTORY_PYTHON") or str(FOLDER / ".venv" / "bin" / "python")
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def test_two_recipes_with_the_paper_hyperparameters() -> None:
    assert [p.name for p in RECIPES] == ["qwen2_5vl_3b_cold_start.yaml", "qwen2_5vl_7b_cold_start.yaml"]
    info = json.loads((FOLDER / "dataset_info.json").read_text())
    for recipe in RECIPES:
        args = yaml.safe_load(recipe.read_text())
        assert {k: args[k] for k in PAPER} == PAPER, recipe.name
        assert args["dataset"].split(",") == list(info), recipe.name
        assert (REPO / args["deepspeed"]).is_file()
        size = recipe.name.split("_")[2].upper()
        assert args["model_name_or_path"] == f"Qwen/Qwen2.5-VL-{size}-Instruct"
        assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] * 8 == 128


def test_train_script_dry_run_prints_the_command() -> None:
    env = dict(os.environ, DRY_RUN="1", N_GPUS="4")
    out = subprocess.run(["bash", str(FOLDER / "train.sh"), "3b", "learning_rate=5e-6"], capture_output=True,
                         text=True, env=env, check=True).stdout  # fmt: skip
    assert out.strip() == (
        "FORCE_TORCHRUN=1 NPROC_PER_NODE=4 LLaMA-Factory-Cold-Start/.venv/bin/llamafactory-cli train "
        "LLaMA-Factory-Cold-Start/qwen2_5vl_3b_cold_start.yaml dataset_dir=data/cold_start learning_rate=5e-6"
    )


PARSE = """
import json, sys, yaml
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.template import TEMPLATES
from llamafactory.hparams.parser import _parse_train_args
args = yaml.safe_load(open(sys.argv[1]))
args["bf16"] = False           # TrainingArguments refuses bf16 without a GPU; its value is checked by the caller
args.pop("deepspeed")          # needs the deepspeed package, an extra; the file is checked by the caller
model, data, training, finetuning, _ = _parse_train_args(args)
datasets = get_dataset_list(data.dataset, sys.argv[2])
print(json.dumps({
    "learning_rate": training.learning_rate, "num_train_epochs": training.num_train_epochs,
    "lr_scheduler_type": str(getattr(training.lr_scheduler_type, "value", training.lr_scheduler_type)),
    "warmup_ratio": training.warmup_ratio, "cutoff_len": data.cutoff_len, "image_max_pixels": model.image_max_pixels,
    "freeze_vision_tower": finetuning.freeze_vision_tower, "template_known": data.template in TEMPLATES,
    "freeze_multi_modal_projector": finetuning.freeze_multi_modal_projector,
    "datasets": [[d.dataset_name, d.formatting, d.load_from] for d in datasets],
}))
"""


@pytest.mark.skipif(
    _llamafactory_python() is None,
    reason="no llamafactory environment (bash LLaMA-Factory-Cold-Start/setup.sh, ~3 min and 6.6 GB, or set "
    "LLAMAFACTORY_PYTHON); CI does not build it",
)
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_with_llamafactory(recipe: Path) -> None:
    proc = subprocess.run([_llamafactory_python(), "-c", PARSE, str(recipe), str(FOLDER)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_ratio", "cutoff_len",
                "image_max_pixels", "freeze_vision_tower", "freeze_multi_modal_projector"):  # fmt: skip
        assert parsed[key] == PAPER[key], key
    assert parsed["template_known"]
    assert parsed["datasets"] == [
        ["vision_see_think.json", "sharegpt", "file"],
        ["vision_reasoner.json", "sharegpt", "file"],
        ["caption_reasoners_text.json", "alpaca", "file"],
    ]
