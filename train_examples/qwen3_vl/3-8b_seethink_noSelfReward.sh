#!/usr/bin/env bash
# The paper's run "seethink_noSelfReward" on Qwen3-VL-8B-Instruct: the recipe, keys and defaults of
# train_examples/3-7b_seethink_noSelfReward.sh, run with another MODEL_PATH and EXPERIMENT.
# Qwen3-VL-4B-Instruct: MODEL_PATH=Qwen/Qwen3-VL-4B-Instruct.
#
#   bash train_examples/qwen3_vl/3-8b_seethink_noSelfReward.sh
#   N_GPUS=4 bash train_examples/qwen3_vl/3-8b_seethink_noSelfReward.sh trainer.max_steps=10
#
# Environment and arguments: as train_examples/3-7b_seethink_noSelfReward.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-VL-8B-Instruct}"
export EXPERIMENT="${EXPERIMENT:-qwen3_vl_8b_seethink_noSelfReward}"
exec bash train_examples/3-7b_seethink_noSelfReward.sh "$@"
