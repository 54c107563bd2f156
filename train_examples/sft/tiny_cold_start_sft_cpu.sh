#!/usr/bin/env bash
# Cold-start SFT in miniature on the CPU: the tiny Qwen2.5-VL learns the see-think format from a small SFT set
# built from the synthetic data (all three subsets), then saves a checkpoint and a Hugging Face model that the
# RL demo can start from (MODEL_PATH=<run>/hf_model bash train_examples/0-tiny_selfReward_cpu.sh).
#
# It runs one epoch of its 960 rows (120 steps of 8): then the greedy answers follow the format on most
# validation rows (143 of 200 on the seed shipped); a third of an epoch leaves broken boxes on every row, and
# RL from that model gets no reward to learn from.
#
#   bash train_examples/sft/tiny_cold_start_sft_cpu.sh                        # about two minutes on 2 cores
#   bash train_examples/sft/tiny_cold_start_sft_cpu.sh trainer.max_steps=10   # any override, appended
# The last line names the model folder the run wrote (it follows trainer.save_checkpoint_path and the project
# and experiment names when they are overridden).
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
# The run folder as the config resolves it: trainer.save_checkpoint_path, else checkpoints/<project>/<experiment>.
project=vision_sr1 experiment="$EXPERIMENT" run_dir="" hf_model=true
for arg in "$@"; do
  case "$arg" in
    trainer.save_checkpoint_path=*) run_dir="${arg#*=}" ;;
    trainer.project_name=*) project="${arg#*=}" ;;
    trainer.experiment_name=*) experiment="${arg#*=}" ;;
    trainer.save_hf_model=*) hf_model="${arg#*=}" ;;
  esac
done
run_dir="${run_dir:-checkpoints/$project/$experiment}"
if [[ "$hf_model" == true && -f "$run_dir/hf_model/config.json" ]]; then
  echo "model for RL: $run_dir/hf_model"
else
  echo "checkpoints: $run_dir (no Hugging Face folder: trainer.save_hf_model=$hf_model)"
fi
