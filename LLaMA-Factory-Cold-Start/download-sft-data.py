#!/usr/bin/env python3
"""Fetch the cold-start SFT set (Vision-SR1-Cold-9K) or convert a local copy, then check every record.

    python3 LLaMA-Factory-Cold-Start/download-sft-data.py --out data/cold_start              # from the hub
    python3 LLaMA-Factory-Cold-Start/download-sft-data.py --from-local path/to/copy --out data/cold_start
    python3 LLaMA-Factory-Cold-Start/download-sft-data.py --check data/cold_start            # only check

The output folder is in LLaMA-Factory's layout (dataset_info.json, one JSON file per subset, images/) and is
what both `llamafactory-cli train` (dataset_dir) and `python3 -m verl.trainer.sft` (data.train_files) read.
Exit status 1 when any record is bad; each is printed with its file, index and problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from verl.utils.sft_data import DEFAULT_REPO_ID, SFTDataError, convert_local, download_cold_start, validate_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--repo-id", default=DEFAULT_REPO_ID, help="hub dataset id (default: %(default)s)")
    source.add_argument("--from-local", type=Path, help="convert this local copy instead of downloading")
    source.add_argument("--check", type=Path, help="only check an existing data folder")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit)")
    parser.add_argument("--out", type=Path, default=Path("data/cold_start"), help="output folder (%(default)s)")
    args = parser.parse_args(argv)

    try:
        if args.check is not None:
            folder = args.check
        elif args.from_local is not None:
            counts = convert_local(args.from_local, args.out)
            folder = args.out
            print(f"converted {args.from_local} into {folder}: {counts}")
        else:
            counts = download_cold_start(args.out, repo_id=args.repo_id, revision=args.revision)
            folder = args.out
            print(f"downloaded {args.repo_id} into {folder}: {counts}")
        problems = validate_data_dir(folder)
    except SFTDataError as exc:
        print(exc, file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    bad = len({(p.file, p.index) for p in problems})
    print(f"{folder}: {bad} bad records")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
