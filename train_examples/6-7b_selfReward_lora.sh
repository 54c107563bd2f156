#!/usr/bin/env bash
# Vision-SR1 (self-reward, v1) with LoRA adapters on the language model instead of full fine-tuning: rank 64
# on every linear layer outside the vision tower (vLLM cannot load vision-tower LoRA), learning rate 1e-5.
# Needs far less GPU memory for the optimizer states than the full fine-tuning runs.
#
#   bash train_examples/6-7b_selfReward_lora.sh    # 8 GPUs, Vision-SR1-47K
#   N_GPUS=2 bash train_examples/6-7b_selfReward_lora.sh worker.actor.model.lora.rank=32
#
# MODEL_PATH, EXPERIMENT, TRAIN_FILES, VAL_FILES, N_GPUS, NNODES, DRY_RUN: see train_examples/common.sh;
# arguments are config overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/Qwen-2.5VL-7B-Cold-Start}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_selfReward_lora}"
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

run_train train_examples/configs/vision_sr1_grpo.yaml \
  worker.actor.model.lora.rank=64 \
  worker.actor.model.lora.alpha=64 \
  worker.actor.model.lora.target_modules=all-linear \
  'worker.actor.model.lora.exclude_modules=.*visual.*' \
  worker.actor.optim.lr=1.0e-5 \
  "$@"
