#!/usr/bin/env bash
# Vision-SR1: self-rewarded GRPO (paper v1), the method of the paper.
# Format <description> <think> \boxed{}; the policy answers blind from its own description and
# overall = 0.9 * accuracy + 0.1 * format + perception.
#
#   bash train_examples/2-3b_selfReward_train.sh    # the paper's setting: 8 GPUs, Vision-SR1-47K
#   N_GPUS=4 bash train_examples/2-3b_selfReward_train.sh trainer.max_steps=10 'trainer.logger=[console,file,wandb]'
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-3B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_3b_selfReward}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

run_train train_examples/configs/vision_sr1_grpo.yaml "$@"
