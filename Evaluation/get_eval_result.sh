#!/usr/bin/env bash
# One comparison table across runs, plus a bar chart.
#
#   bash Evaluation/get_eval_result.sh RUNS_FILE [OUTPUT_DIR] [eval.py options...]
#
# RUNS_FILE has one run per line, "label | judged dir | responses dir" ("-" for a folder the run lacks,
# '#' starts a comment; folders are relative to the runs file), for example:
#   7B-Vision-SR1 | judged/7B-Vision-SR1 | validation_responses/7B-Vision-SR1
# Writes OUTPUT_DIR/comparison.{md,csv,png} and one results.{md,csv} per run (default OUTPUT_DIR:
# comparison/ beside the runs file). PYTHON picks the interpreter (default .venv/bin/python, else python3).
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
runs_file="$1"
shift
if [[ ! -f "$runs_file" ]]; then
  echo "runs file not found: $runs_file" >&2
  exit 2
fi
output_args=()
if [[ $# -gt 0 && "$1" != -* ]]; then
  output_args=(--output_dir "$1")
  shift
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
exec "$PYTHON" "$root/Evaluation/eval.py" --runs "$runs_file" "${output_args[@]}" "$@"
