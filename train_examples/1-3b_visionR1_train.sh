#!/usr/bin/env bash
# Vision-R1-style baseline: GRPO on answer accuracy with a chain-of-thought format, no perception reward.
# Format <think>...</think> \boxed{}; overall = 0.9 * accuracy + 0.1 * format (the paper's regular-training baseline).
#
#   bash train_examples/1-3b_visionR1_train.sh    # the paper's setting: 8 GPUs, Vision-SR1-47K
#   N_GPUS=4 bash train_examples/1-3b_visionR1_train.sh trainer.max_steps=10 'trainer.logger=[console,file,wandb]'
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-3B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_3b_visionR1}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

run_train train_examples/configs/vision_sr1_grpo.yaml \
  data.format_prompt=train_examples/format_prompt/cot.jinja \
  worker.reward.reward_function=verl.rewards.functions:visionr1_cot_reward \
  algorithm.self_reward.enable=false \
  "$@"
