#!/usr/bin/env bash
# Evaluate a model prompted with the see-think format (<description> <think> \boxed{}) on the paper's visual
# benchmarks, greedy: the format of the Vision-SR1 runs.
# BLIND_ANSWERS=1 also runs the self-reward hop: the model answers each question again from its own description
# alone (greedy), the records get a blind_answer, and the logs the blind accuracy and the language-shortcut rate.
#
#   bash validation_examples/2-seethink_format_eval.sh            # the released Vision-SR1-7B, 8 GPUs
#   MODEL_PATH=checkpoints/vision_sr1/<run>/global_step_90/actor/huggingface \
#     EXPERIMENT=my_run_seethink BLIND_ANSWERS=1 bash validation_examples/2-seethink_format_eval.sh --force
#
# Outputs, environment and arguments: see validation_examples/common.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL_PATH="${MODEL_PATH:-LMMs-Lab-Turtle/SelfRewarded-R1-7B}"
EXPERIMENT="${EXPERIMENT:-$(basename "$MODEL_PATH")_seethink}"
FORMAT_PROMPT=train_examples/format_prompt/seethink.jinja
# shellcheck source=validation_examples/common.sh
source validation_examples/common.sh

hop=()
if [[ "${BLIND_ANSWERS:-0}" == 1 ]]; then
  hop=(algorithm.self_reward.enable=true algorithm.self_reward.temperature=0.0)
fi
evaluate_all "$VISUAL_BENCHMARKS" "${hop[@]}" "$@"
