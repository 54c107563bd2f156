#!/usr/bin/env bash
# Evaluate a vision-language model on text-only reasoning benchmarks (MMLU-Pro, SuperGPQA, MATH-500, GSM8K)
# with the chain-of-thought format, greedy: does visual RL keep the language model's skills?
#
#   bash validation_examples/3-text_cot_eval.sh                   # Qwen2.5-VL-7B-Instruct, 8 GPUs
#   MODEL_PATH=LMMs-Lab-Turtle/SelfRewarded-R1-7B bash validation_examples/3-text_cot_eval.sh data.val_batch_size=1024
#
# Outputs, environment and arguments: see validation_examples/common.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}"
EXPERIMENT="${EXPERIMENT:-$(basename "$MODEL_PATH")_text_cot}"
FORMAT_PROMPT=train_examples/format_prompt/cot.jinja
# shellcheck source=validation_examples/common.sh
source validation_examples/common.sh

evaluate_all "$TEXT_BENCHMARKS" "$@"
