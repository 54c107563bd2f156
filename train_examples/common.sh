# Shared by the experiment scripts in train_examples/, sourced after they cd to the repository root and set
# their defaults of MODEL_PATH and EXPERIMENT.
#
# Environment (every variable has the paper's default; set it to run elsewhere):
#   MODEL_PATH   hub id or local folder of the starting model (each script sets its own default)
#   EXPERIMENT   run name: checkpoints go to checkpoints/<project>/<EXPERIMENT> (each script sets its own default)
#   TRAIN_FILES  training data, owner/dataset@split or a local file/folder (LMMs-Lab-Turtle/Vision-SR1-47K@train)
#   VAL_FILES    validation data (zli12321/mmstar@test)
#   N_GPUS       GPUs per node (8)
#   NNODES       nodes; more than 1 needs a Ray cluster, see RAY_ADDRESS below (1)
#   PYTHON       interpreter (.venv/bin/python if present, else python3)
#   DRY_RUN=1    print the command instead of running it
#   RAY_ADDRESS  join this Ray cluster (the head node's <ip>:6379) instead of starting a local one
# Arguments after the script name are config overrides (key.sub=value) and win over everything else.
# shellcheck shell=bash

if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
else
  PY=python3
fi

MODEL_PATH="${MODEL_PATH:?the script sets a default MODEL_PATH before sourcing common.sh}"
EXPERIMENT="${EXPERIMENT:?the script sets a default EXPERIMENT before sourcing common.sh}"
TRAIN_FILES="${TRAIN_FILES:-LMMs-Lab-Turtle/Vision-SR1-47K@train}"
VAL_FILES="${VAL_FILES:-zli12321/mmstar@test}"
N_GPUS="${N_GPUS:-8}"
NNODES="${NNODES:-1}"

export PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
# In-process vLLM engine, as the rollout worker drives it (see verl/workers/rollout/).
export VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"

# Print a command shell-quoted on one line, so it can be pasted back into a shell.
print_command() {
  printf '%q ' "$@" | sed 's/ $//'
  printf '\n'
}

# run_train CONFIG [overrides...]: python3 -m verl.trainer.main with the config file, the model, data,
# cluster shape and run name from the environment, then the given overrides (script's, then the user's).
run_train() {
  local config="$1"
  shift
  local cmd=(
    "$PY" -m verl.trainer.main
    "config=$config"
    "worker.actor.model.model_path=$MODEL_PATH"
    "data.train_files=$TRAIN_FILES"
    "data.val_files=$VAL_FILES"
    "trainer.n_gpus_per_node=$N_GPUS"
    "trainer.nnodes=$NNODES"
    "trainer.experiment_name=$EXPERIMENT"
    "$@"
  )
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    print_command "${cmd[@]}"
    return 0
  fi
  echo "+ $(print_command "${cmd[@]}")" >&2
  "${cmd[@]}"
}
