#!/usr/bin/env bash
# Example Slurm batch script: one Ray cluster across the allocated nodes, then one experiment script on it.
#
#   sbatch --nodes=2 scripts/slurm_multinode.sh
#   EXPERIMENT_SCRIPT=train_examples/2-3b_selfReward_train.sh sbatch --nodes=4 scripts/slurm_multinode.sh trainer.max_steps=100
#
# The first allocated node runs the Ray head and this script (the trainer process); every other node joins with
# `ray start --address`. The experiment script then runs with RAY_ADDRESS, NNODES (the allocated nodes) and
# N_GPUS (GPUS_PER_NODE). Arguments are config overrides passed on to the experiment script.
# Submit from the repository root, on storage that every node mounts at the same path: the checkpoints go to
# checkpoints/ in it (unless trainer.save_checkpoint_path says otherwise) and the trainer stops at start-up when a
# node does not see that folder. The project's environment (.venv, or PYTHON and RAY) must exist on every node.
# Adapt the #SBATCH lines (partition, account, GPUs, time) to your site.
#
#SBATCH --job-name=vision-sr1
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "${BASH_SOURCE[0]}")/..}"

EXPERIMENT_SCRIPT="${EXPERIMENT_SCRIPT:-train_examples/2-7b_selfReward_train.sh}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
CPUS_PER_NODE="${SLURM_CPUS_PER_TASK:-64}"
RAY_PORT="${RAY_PORT:-6379}"
if [[ -x .venv/bin/python ]]; then
  PY="${PYTHON:-.venv/bin/python}"
  RAY="${RAY:-.venv/bin/ray}"
else
  PY="${PYTHON:-python3}"
  RAY="${RAY:-ray}"
fi
export PYTHON="$PY"  # the experiment script's interpreter too

mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_node="${nodes[0]}"
head_ip="$(srun --nodes=1 --ntasks=1 --overlap -w "$head_node" hostname --ip-address | awk '{print $1}')"
export RAY_ADDRESS="$head_ip:$RAY_PORT"
echo "Ray head on $head_node ($RAY_ADDRESS), ${#nodes[@]} node(s): ${nodes[*]}"

# Each `ray start --block` stays in the foreground of its job step, so the nodes leave the cluster when the job ends.
srun --nodes=1 --ntasks=1 --overlap -w "$head_node" \
  "$RAY" start --head --node-ip-address="$head_ip" --port="$RAY_PORT" \
  --num-gpus="$GPUS_PER_NODE" --num-cpus="$CPUS_PER_NODE" --block &
sleep "${RAY_HEAD_WAIT_S:-10}"  # the head's GCS up before the others join
for node in "${nodes[@]:1}"; do
  srun --nodes=1 --ntasks=1 --overlap -w "$node" \
    "$RAY" start --address="$RAY_ADDRESS" --num-gpus="$GPUS_PER_NODE" --num-cpus="$CPUS_PER_NODE" --block &
done

# Wait until every node has joined: the trainer refuses a cluster with fewer nodes than trainer.nnodes.
for _ in $(seq 120); do
  alive="$("$PY" -c 'import ray; ray.init(logging_level="ERROR"); print(sum(n["Alive"] for n in ray.nodes()))' \
    2>/dev/null || echo 0)"
  [[ "$alive" -ge "${#nodes[@]}" ]] && break
  sleep 5
done
echo "Ray nodes alive: $alive of ${#nodes[@]}"

# VLLM_*, VSR1_*, HF_*, WANDB_* and PYTHONPATH set here reach the workers on every node.
status=0
NNODES="${#nodes[@]}" N_GPUS="$GPUS_PER_NODE" bash "$EXPERIMENT_SCRIPT" "$@" || status=$?
"$RAY" stop --force >/dev/null 2>&1 || true
exit "$status"
