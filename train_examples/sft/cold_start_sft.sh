#!/usr/bin/env bash
# Native cold-start SFT (python3 -m verl.trainer.sft), the paper's recipe (train_examples/configs/cold_start_sft.yaml:
# 3 epochs, lr 1e-5, cosine, warmup 0.1, bf16 mixed precision, vision tower and projector frozen, 4092 tokens,
# images up to 262144 pixels, 128 examples per step) on Vision-SR1-Cold-9K in LLaMA-Factory's layout.
#
#   python3 LLaMA-Factory-Cold-Start/download-sft-data.py --out data/cold_start     # once
#   bash train_examples/sft/cold_start_sft.sh 7b                                     # 8 GPUs
#   N_GPUS=4 bash train_examples/sft/cold_start_sft.sh 3b worker.actor.micro_batch_size_per_device_for_update=1
#
# SIZE (first argument: 3b or 7b), MODEL_PATH (Qwen/Qwen2.5-VL-<SIZE>-Instruct), TRAIN_FILES (data/cold_start),
# N_GPUS (8), NNODES (1), EXPERIMENT (qwen2_5_vl_<size>_cold_start), PYTHON, DRY_RUN=1 prints the command.
# Later arguments are config overrides. The run ends with checkpoints/vision_sr1/<EXPERIMENT>/hf_model, the
# MODEL_PATH for the RL scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SIZE="${1:-7b}"
shift || true
case "$SIZE" in
  3b) default_model=Qwen/Qwen2.5-VL-3B-Instruct ;;
  7b) default_model=Qwen/Qwen2.5-VL-7B-Instruct ;;
  *) echo "size must be 3b or 7b, got '$SIZE'" >&2; exit 2 ;;
esac
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
MODEL_PATH="${MODEL_PATH:-$default_model}"
TRAIN_FILES="${TRAIN_FILES:-data/cold_start}"
N_GPUS="${N_GPUS:-8}"
NNODES="${NNODES:-1}"
EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_${SIZE}_cold_start}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

cmd=(
  "$PY" -m verl.trainer.sft
  config=train_examples/configs/cold_start_sft.yaml
  "worker.actor.model.model_path=$MODEL_PATH"
  "data.train_files=$TRAIN_FILES"
  "trainer.n_gpus_per_node=$N_GPUS"
  "trainer.nnodes=$NNODES"
  "trainer.experiment_name=$EXPERIMENT"
  "$@"
)
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q ' "${cmd[@]}" | sed 's/ $//'
  printf '\n'
  exit 0
fi
"${cmd[@]}"
