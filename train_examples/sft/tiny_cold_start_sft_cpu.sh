#!/usr/bin/env bash
# Cold-start SFT in miniature on the CPU: the tiny Qwen2.5-VL learns the see-think format from a small SFT set
# built from the synthetic data (all three subsets), then saves a checkpoint and a Hugging Face model that the
# RL demo can start from (MODEL_PATH=<run>/hf_model bash train_examples/0-tiny_selfReward_cpu.sh).
#
#   bash train_examples/sft/tiny_cold_start_sft_cpu.sh                        # about a minute on 2 cores
#   bash train_examples/sft/tiny_cold_start_sft_cpu.sh trainer.max_steps=10   # any override, appended
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PY="${PYTHON:-.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
TINY_DIR="${TINY_DIR:-assets/tiny}"
SFT_DATA="${SFT_DATA:-$TINY_DIR/sft}"
N_GPUS="${N_GPUS:-1}"  # CPU ranks
EXPERIMENT="${EXPERIMENT:-tiny_cold_start_sft_cpu}"
export TOKENIZERS_PARALLELISM=false

"$PY" -m verl.tiny --out "$TINY_DIR"
if [[ ! -f "$SFT_DATA/dataset_info.json" ]]; then
  "$PY" -c 'import sys; from verl.utils.sft_data import make_tiny_sft_set as m; m(sys.argv[1], sys.argv[2], rows=320, format_prompt=sys.argv[3])' \
    "$TINY_DIR" "$SFT_DATA" train_examples/format_prompt/seethink.jinja
fi
"$PY" LLaMA-Factory-Cold-Start/download-sft-data.py --check "$SFT_DATA"

"$PY" -m verl.trainer.sft \
  config=train_examples/configs/sft_tiny_cpu.yaml \
  worker.actor.model.model_path="$TINY_DIR/qwen2_5_vl" \
  data.train_files="$SFT_DATA" \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.experiment_name="$EXPERIMENT" \
  "$@"
echo "model for RL: checkpoints/vision_sr1/$EXPERIMENT/hf_model"
