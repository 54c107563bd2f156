"""Download published raw evaluation outputs (model responses and judged files) from the Hugging Face hub, to
recompute or compare their tables without generating anything:

    python Evaluation/download_precomputed_evaluation_files.py --repo_id OWNER/NAME [--local_dir Raw-Outputs]
    bash Evaluation/get_eval_result.sh runs.txt

``--repo_id`` is the dataset repository where the outputs were published; ``--allow_patterns`` limits the
download (e.g. ``"7B-Vision-SR1/*"``). A token, if the repository needs one, comes from ``$HF_TOKEN`` or
``huggingface-cli login``, never from the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def download(repo_id: str, local_dir: str, repo_type: str = "dataset", revision: str | None = None,
             allow_patterns: Sequence[str] | None = None) -> str:  # fmt: skip
    """Snapshot of ``repo_id`` into ``local_dir`` (files already there and unchanged are not fetched again)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision, local_dir=local_dir,
                             allow_patterns=list(allow_patterns) if allow_patterns else None)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo_id", required=True, help="hub repository holding the published outputs")
    parser.add_argument("--local_dir", default="Raw-Outputs", help="where to put them")
    parser.add_argument("--repo_type", default="dataset", choices=["dataset", "model"])
    parser.add_argument("--revision", help="branch, tag or commit (default: the main branch)")
    parser.add_argument("--allow_patterns", nargs="*", help="only files matching these glob patterns")
    args = parser.parse_args(argv)
    path = download(args.repo_id, args.local_dir, args.repo_type, args.revision, args.allow_patterns)
    print(f"downloaded {args.repo_id} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
