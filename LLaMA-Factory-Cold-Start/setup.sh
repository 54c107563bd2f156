#!/usr/bin/env bash
# Creates LLaMA-Factory-Cold-Start/.venv with the llamafactory package and the versions it pins (its own
# torch and transformers, which differ from the RL environment's, hence a separate environment).
#
#   bash LLaMA-Factory-Cold-Start/setup.sh              # about 3 minutes and 6.6 GB (CUDA torch wheels)
#   LLAMAFACTORY_VERSION=0.9.5 PYTHON=python3.11 bash LLaMA-Factory-Cold-Start/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
VERSION="${LLAMAFACTORY_VERSION:-0.9.5}"
EXTRAS="${LLAMAFACTORY_EXTRAS:-deepspeed}"  # deepspeed for the ZeRO-3 config the recipes use; "" for none

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
spec="llamafactory==$VERSION"
[[ -n "$EXTRAS" ]] && spec="llamafactory[$EXTRAS]==$VERSION"
.venv/bin/python -m pip install --isolated --upgrade pip
.venv/bin/python -m pip install --isolated "$spec"
.venv/bin/python -c "import llamafactory; print('llamafactory', llamafactory.__version__, 'ready in', '$(pwd)/.venv')"
