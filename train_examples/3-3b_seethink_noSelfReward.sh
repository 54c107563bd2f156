#!/usr/bin/env bash
# Ablation: the see-think format without the self-reward (no second hop, no perception reward).
# Format <description> <think> \boxed{}; overall = 0.9 * accuracy + 0.1 * format.
#
#   bash train_examples/3-3b_seethink_noSelfReward.sh    # the paper's setting: 8 GPUs, Vision-SR1-47K
#   N_GPUS=4 bash train_examples/3-3b_seethink_noSelfReward.sh trainer.max_steps=10 'trainer.logger=[console,file,wandb]'
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-3B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_3b_seethink_noSelfReward}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

run_train train_examples/configs/vision_sr1_grpo.yaml \
  worker.reward.reward_function=verl.rewards.functions:seethink_reward \
  algorithm.self_reward.enable=false \
  "$@"
