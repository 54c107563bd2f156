# Shared by the evaluation scripts in validation_examples/, sourced after they cd to the repository root and
# set MODEL_PATH, EXPERIMENT and FORMAT_PROMPT. Each benchmark is one greedy validation-only run of
# verl.trainer.main (validation_examples/configs/eval.yaml) writing
#   <RESPONSE_DIR>/<EXPERIMENT>/<benchmark>.jsonl   one record per question: dataset_index, prompt, response,
#                                                   ground_truth, scores, blind_answer
#   <RESPONSE_DIR>/<EXPERIMENT>/<benchmark>.done    written after a successful run: the benchmark is skipped
#                                                   next time (--force runs it again)
#   <RESPONSE_DIR>/<EXPERIMENT>/logs/<benchmark>/   the run's config.yaml and metrics.jsonl (val/ accuracy)
#
# Environment:
#   MODEL_PATH      hub id or local folder of the model to evaluate (each script sets its own default)
#   EXPERIMENT      name of the output folder (default: the model folder's name and the prompt format)
#   BENCHMARKS      space-separated "name=spec" or "spec" entries replacing the script's list, where spec is
#                   owner/dataset@split or a local file/folder: BENCHMARKS="mmstar=zli12321/mmstar@test"
#   RESPONSE_DIR    root of the outputs (validation_responses)
#   N_GPUS, NNODES  GPUs per node (8) and nodes (1)
#   PYTHON, DRY_RUN as in train_examples/common.sh (DRY_RUN=1 prints each command, runs nothing)
# Arguments: --force (re-run finished benchmarks) and config overrides (key.sub=value), which win.
# shellcheck shell=bash

# The interpreter, the environment and print_command are shared with the training scripts.
# shellcheck source=train_examples/common.sh
source train_examples/common.sh

FORMAT_PROMPT="${FORMAT_PROMPT:?the script sets FORMAT_PROMPT before sourcing common.sh}"
RESPONSE_DIR="${RESPONSE_DIR:-validation_responses}"

# The paper's benchmarks (SPEC section 2) as prepared on the hub by the Vision-SR1 authors. MLLM_test bundles
# RealWorldQA, MathVerse, MATH-Vision, MathVista, MMMU-Pro (4 options) and CLEVR counting; each row's
# benchmark is in its file_name column (join on dataset_index).
# shellcheck disable=SC2034  # used by the scripts that source this file
VISUAL_BENCHMARKS="MMMU=zli12321/MMMU@test
mmmu-pro-vision=zli12321/mmmu-pro-vision@test
mmmu_pro_10options=zli12321/mmmu_pro_10options@test
mm-vet=zli12321/mm-vet@test
MLLM_test=zli12321/MLLM_test@test
visnumbench=zli12321/visnumbench@test
hallusionbench=zli12321/hallusionbench@test
mmstar=zli12321/mmstar@test"

# Text-only reasoning, to check that visual RL keeps the language model's skills.
# shellcheck disable=SC2034
TEXT_BENCHMARKS="mmlu_pro=zli12321/mmlu_pro@test
SuperGPQA=zli12321/SuperGPQA@test
MATH-500=HuggingFaceH4/MATH-500@test
gsm8k=zli12321/gsm8k@test"

# A benchmark's default name: the dataset or file name without the split and a data-file suffix.
benchmark_name() {
  local name="${1%@*}"
  name="${name%/}"
  name="${name##*/}"
  for suffix in .parquet .jsonl .json .arrow; do
    name="${name%"$suffix"}"
  done
  printf '%s\n' "$name"
}

# evaluate_all DEFAULT_BENCHMARKS [--force] [overrides...]: evaluate MODEL_PATH on each benchmark in turn.
# A failed benchmark does not stop the others; the exit status is 1 if any failed.
evaluate_all() {
  local default_list="$1"
  shift
  local force=0 overrides=() arg
  for arg in "$@"; do
    case "$arg" in
      --force) force=1 ;;
      --*)
        echo "unknown option $arg (the only option is --force; other arguments are key=value overrides)" >&2
        return 2
        ;;
      *) overrides+=("$arg") ;;
    esac
  done

  local entries=() entry name spec out_dir="$RESPONSE_DIR/$EXPERIMENT" failed=()
  read -r -d '' -a entries <<<"${BENCHMARKS:-$default_list}" || true
  if [[ ${#entries[@]} -eq 0 ]]; then
    echo "BENCHMARKS is empty: nothing to evaluate" >&2
    return 2
  fi
  for entry in "${entries[@]}"; do
    if [[ "$entry" == *=* ]]; then
      name="${entry%%=*}"
      spec="${entry#*=}"
    else
      spec="$entry"
      name="$(benchmark_name "$spec")"
    fi
    if [[ ! "$name" =~ ^[A-Za-z0-9._-]+$ || -z "$spec" ]]; then
      echo "bad BENCHMARKS entry '$entry': expected name=spec with a name of letters, digits, '.', '_', '-'" >&2
      return 2
    fi
    local jsonl="$out_dir/$name.jsonl" marker="$out_dir/$name.done"
    if [[ $force == 0 && -f "$marker" && -f "$jsonl" ]]; then
      if ! grep -qxF "model=$MODEL_PATH" "$marker"; then
        echo "$name: $jsonl holds another model's responses ($(grep '^model=' "$marker")); set EXPERIMENT to" \
          "another folder or pass --force to overwrite" >&2
        failed+=("$name")
        continue
      fi
      echo ">>> $name: done ($jsonl); --force runs it again"
      continue
    fi

    local cmd=(
      "$PY" -m verl.trainer.main
      config=validation_examples/configs/eval.yaml
      "worker.actor.model.model_path=$MODEL_PATH"
      "data.val_files=$spec"
      "data.format_prompt=$FORMAT_PROMPT"
      "trainer.n_gpus_per_node=$N_GPUS"
      "trainer.nnodes=$NNODES"
      "trainer.experiment_name=${EXPERIMENT}_$name"
      "trainer.save_checkpoint_path=$out_dir/logs/$name"
      "trainer.response_path=$jsonl"
      trainer.val_only=true
      "${overrides[@]}"
    )
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
      print_command "${cmd[@]}"
      continue
    fi
    echo ">>> $name: evaluating $MODEL_PATH on $spec" >&2
    echo "+ $(print_command "${cmd[@]}")" >&2
    mkdir -p "$out_dir"
    rm -f "$jsonl" "$marker" # the trainer appends to the response file: no leftovers of an interrupted run
    if "${cmd[@]}"; then
      printf 'model=%s\nbenchmark=%s\nrecords=%s\nfinished=%s\n' \
        "$MODEL_PATH" "$spec" "$(wc -l <"$jsonl" | tr -d ' ')" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker"
    else
      echo "$name: evaluation failed (exit $?)" >&2
      failed+=("$name")
    fi
  done
  if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]}" >&2
    return 1
  fi
  if [[ "${DRY_RUN:-0}" != 1 ]]; then
    echo "responses: $out_dir"
  fi
}
