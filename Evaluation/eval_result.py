"""Old name of eval.py, kept so existing commands keep working; same arguments."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's verl, not another install

from verl.evaluation.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
