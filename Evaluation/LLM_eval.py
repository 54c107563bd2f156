"""Grade response files with the rule-based grader and an LLM judge (see README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's verl, not another install

from verl.evaluation.cli import llm_eval_main

if __name__ == "__main__":
    sys.exit(llm_eval_main())
