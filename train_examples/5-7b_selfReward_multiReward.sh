#!/usr/bin/env bash
# Vision-SR1 v2 ("multi-reward policy optimisation"): answer accuracy and perception each get their own
# group-normalised GRPO advantage (weights in algorithm.reward_channels, 1:1 by default), and the blind-answer
# tokens of the second hop are trained too, with their own log-probs, KL and advantages (each hop weighted 0.5).
#
#   bash train_examples/5-7b_selfReward_multiReward.sh    # the paper's setting: 8 GPUs, Vision-SR1-47K
#   N_GPUS=4 bash train_examples/5-7b_selfReward_multiReward.sh 'algorithm.reward_channels={accuracy: 1.0, perception: 0.5}'
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-7B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_selfReward_multiReward}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

run_train train_examples/configs/vision_sr1_grpo.yaml \
  algorithm.self_reward.mode=multi_reward \
  algorithm.self_reward.train_second_hop=true \
  "$@"
