#!/usr/bin/env bash
# Creates LLaMA-Factory-Cold-Start/.venv with the llamafactory package and the versions it pins (its own
# torch and transformers, which differ from the RL environment's, hence a separate environment).
#
#   bash LLaMA-Factory-Cold-Start/setup.sh              # about 3 minutes and 6.6 GB (CUDA torch wheels)
#   LLAMAFACTORY_VERSION=0.9.5 PYTHON=python3.11 bash LLaMA-Factory-Cold-Start/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ENV_DIR=LLaMA-Factory-Cold-Start/.venv

PYTHON="${PYTHON:-python3}"
VERSION="${LLAMAFACTORY_VERSION:-0.9.5}"
EXTRAS="${LLAMAFACTORY_EXTRAS:-deepspeed}"  # deepspeed for the ZeRO-3 config the recipes use; "" for none

if [[ ! -x "$ENV_DIR/bin/python" ]]; then
  "$PYTHON" -m venv "$ENV_DIR"
fi
spec="llamafactory==$VERSION"
[[ -n "$EXTRAS" ]] && spec="llamafactory[$EXTRAS]==$VERSION"
"$ENV_DIR/bin/python" -m pip install --isolated --upgrade pip
"$ENV_DIR/bin/python" -m pip install --isolated "$spec"
"$ENV_DIR/bin/python" -c "import llamafactory; print('llamafactory', llamafactory.__version__)"
echo "ready: $ENV_DIR/bin/llamafactory-cli"
