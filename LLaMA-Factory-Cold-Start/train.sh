#!/usr/bin/env bash
# Cold-start SFT with LLaMA-Factory, the paper's recipe, from the repository root's point of view.
#
#   bash LLaMA-Factory-Cold-Start/train.sh 7b                       # 8 GPUs, data in data/cold_start
#   N_GPUS=4 bash LLaMA-Factory-Cold-Start/train.sh 3b learning_rate=5e-6 output_dir=saves/try
#
# SIZE (first argument, 3b or 7b), MODEL_PATH, DATA_DIR (data/cold_start), N_GPUS (8), LLAMAFACTORY_CLI
# (LLaMA-Factory-Cold-Start/.venv/bin/llamafactory-cli), DRY_RUN=1 prints the command. Later arguments are
# key=value overrides of the recipe, passed to llamafactory-cli as they are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZE="${1:-7b}"
shift || true
case "$SIZE" in 3b | 7b) ;; *) echo "size must be 3b or 7b, got '$SIZE'" >&2; exit 2 ;; esac
RECIPE="LLaMA-Factory-Cold-Start/qwen2_5vl_${SIZE}_cold_start.yaml"
DATA_DIR="${DATA_DIR:-data/cold_start}"
N_GPUS="${N_GPUS:-8}"
CLI="${LLAMAFACTORY_CLI:-LLaMA-Factory-Cold-Start/.venv/bin/llamafactory-cli}"

cmd=("$CLI" train "$RECIPE" "dataset_dir=$DATA_DIR")
[[ -n "${MODEL_PATH:-}" ]] && cmd+=("model_name_or_path=$MODEL_PATH")
cmd+=("$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  echo "FORCE_TORCHRUN=1 NPROC_PER_NODE=$N_GPUS ${cmd[*]}"
  exit 0
fi
if [[ ! -f "$DATA_DIR/dataset_info.json" ]]; then
  echo "no $DATA_DIR/dataset_info.json: run python3 LLaMA-Factory-Cold-Start/download-sft-data.py --out $DATA_DIR" >&2
  exit 1
fi
FORCE_TORCHRUN=1 NPROC_PER_NODE="$N_GPUS" "${cmd[@]}"
