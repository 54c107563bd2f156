#!/usr/bin/env bash
# Self-rewarded GRPO on the embedded tiny Qwen2.5-VL and synthetic visual questions, on the CPU.
# Generates the tiny assets if absent, trains, validates, checkpoints, plots the metrics and exports the
# newest checkpoint as a Hugging Face folder (scripts/model_merger.py).
#
#   bash train_examples/0-tiny_selfReward_cpu.sh                       # the demo
#   bash train_examples/0-tiny_selfReward_cpu.sh trainer.max_steps=2   # any override, appended
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
TINY_DIR="${TINY_DIR:-assets/tiny}"
N_GPUS="${N_GPUS:-1}"  # CPU ranks
EXPERIMENT="${EXPERIMENT:-tiny_selfReward_cpu}"

# The random tiny model first gets a short supervised warm start on its own synthetic data (the paper's
# cold start in miniature), so that the demo's rewards have something to move. A model given through
# MODEL_PATH (for example assets/tiny/qwen3_vl) is trained as it is.
WARM_START_STEPS="${WARM_START_STEPS:-300}"
[[ -n "${MODEL_PATH:-}" ]] && WARM_START_STEPS=0
"$PY" -m verl.tiny --out "$TINY_DIR" --warm-start-steps "$WARM_START_STEPS" \
  --format-prompt train_examples/format_prompt/seethink.jinja
MODEL_PATH="${MODEL_PATH:-$TINY_DIR/qwen2_5_vl_warm}"

export VLLM_ENABLE_V1_MULTIPROCESSING=0
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export TOKENIZERS_PARALLELISM=false

"$PY" -m verl.trainer.main \
  config=train_examples/configs/tiny_selfReward_cpu.yaml \
  worker.actor.model.model_path="$MODEL_PATH" \
  data.train_files="$TINY_DIR/data/train.parquet" \
  data.val_files="$TINY_DIR/data/val.parquet" \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.experiment_name="$EXPERIMENT" \
  "$@"

RUN_DIR="checkpoints/vision_sr1/$EXPERIMENT"
for arg in "$@"; do
  case "$arg" in trainer.save_checkpoint_path=*) RUN_DIR="${arg#*=}" ;; esac
done
if [[ -f "$RUN_DIR/metrics.jsonl" ]]; then
  "$PY" scripts/plot_metrics.py "$RUN_DIR/metrics.jsonl"
fi
echo "run folder:   $RUN_DIR"
echo "metrics:      $RUN_DIR/metrics.jsonl (plot: $RUN_DIR/metrics.png)"
echo "responses:    $RUN_DIR/responses.jsonl"
shopt -s nullglob
checkpoints=("$RUN_DIR"/global_step_*)
echo "checkpoints:  ${checkpoints[*]:-none}"
if [[ -f "$RUN_DIR/latest_checkpointed_iteration.txt" ]]; then
  STEP="$(cat "$RUN_DIR/latest_checkpointed_iteration.txt")"
  "$PY" scripts/model_merger.py --local_dir "$RUN_DIR/global_step_$STEP/actor" --target_dir "$RUN_DIR/huggingface" \
    > /dev/null
  echo "merged model: $RUN_DIR/huggingface (transformers and vLLM load it)"
fi
