#!/usr/bin/env bash
# Evaluate a model prompted with the chain-of-thought format (<think>...</think> \boxed{}) on the paper's
# visual benchmarks, greedy: the format of the Vision-R1-style runs and of base models.
#
#   bash validation_examples/1-cot_format_eval.sh                 # Qwen2.5-VL-7B-Instruct, 8 GPUs
#   MODEL_PATH=checkpoints/vision_sr1/<run>/global_step_90/actor/huggingface \
#     EXPERIMENT=my_run_cot BENCHMARKS="mmstar=zli12321/mmstar@test" bash validation_examples/1-cot_format_eval.sh
#
# Outputs, environment and arguments: see validation_examples/common.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}"
EXPERIMENT="${EXPERIMENT:-$(basename "$MODEL_PATH")_cot}"
FORMAT_PROMPT=train_examples/format_prompt/cot.jinja
# shellcheck source=validation_examples/common.sh
source validation_examples/common.sh

evaluate_all "$VISUAL_BENCHMARKS" "$@"
