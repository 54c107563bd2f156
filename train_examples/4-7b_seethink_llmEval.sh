#!/usr/bin/env bash
# External-judge variant: the blind answer to each description comes from an external LLM, not the policy.
# Needs an OpenAI-compatible endpoint, e.g. `vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000` on another machine:
#   SELF_REWARD_BASE_URL=http://<host>:8000/v1 SELF_REWARD_MODEL=Qwen/Qwen2.5-7B-Instruct [SELF_REWARD_API_KEY=...]
#
#   bash train_examples/4-7b_seethink_llmEval.sh    # the paper's setting: 8 GPUs, Vision-SR1-47K
#   N_GPUS=4 bash train_examples/4-7b_seethink_llmEval.sh trainer.max_steps=10 'trainer.logger=[console,file,wandb]'
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-7B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_seethink_llmEval}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

if [[ "${DRY_RUN:-0}" != 1 ]]; then
  : "${SELF_REWARD_BASE_URL:?set SELF_REWARD_BASE_URL to the judge endpoint, e.g. http://<host>:8000/v1}"
  : "${SELF_REWARD_MODEL:?set SELF_REWARD_MODEL to the model name the endpoint serves}"
fi

run_train train_examples/configs/vision_sr1_grpo.yaml \
  algorithm.self_reward.backend=external \
  "$@"
