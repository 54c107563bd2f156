"""Export an actor checkpoint as a Hugging Face model folder that transformers and vLLM load.

    python3 scripts/model_merger.py --local_dir checkpoints/vision_sr1/demo/global_step_30/actor \\
        [--target_dir DIR] [--dtype bf16|fp16|fp32] [--export_adapter] [--hf_upload_path owner/name]

Reads the sharded checkpoint (any world size, FSDP1 or FSDP2) on one process, merges LoRA adapters into the
base weights, and writes safetensors shards, config.json, generation_config.json and the processor files to
``--target_dir`` (default ``<local_dir>/huggingface``). The logic lives in ``verl/utils/model_merger.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local_dir", required=True, help="the actor checkpoint: .../global_step_N/actor")
    parser.add_argument("--target_dir", default=None, help="output folder (default: <local_dir>/huggingface)")
    parser.add_argument(
        "--dtype",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="dtype of the written weights (default: the dtype the base model was published in)",
    )
    parser.add_argument(
        "--export_adapter",
        action="store_true",
        help="LoRA runs: also write the adapter alone (peft format) to <target_dir>/lora_adapter",
    )
    parser.add_argument("--max_shard_size", default="5GB", help="largest safetensors file (default: 5GB)")
    parser.add_argument(
        "--hf_upload_path", default=None, help="also upload the folder to this hub model repo (owner/name)"
    )
    parser.add_argument("--public", action="store_true", help="create the hub repo public (default: private)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    # Run from a checkout without installing: the package next to this script is the one to use.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from verl.utils.model_merger import CheckpointError, merge_checkpoint, upload_to_hub

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = merge_checkpoint(
            args.local_dir,
            target_dir=args.target_dir,
            dtype=args.dtype,
            export_lora_adapter=args.export_adapter,
            max_shard_size=args.max_shard_size,
        )
    except CheckpointError as exc:
        raise SystemExit(f"model_merger: {exc}") from None
    print(f"wrote {target}")
    if args.hf_upload_path:
        url = upload_to_hub(target, args.hf_upload_path, private=not args.public)
        print(f"uploaded to {url}")
    return target


if __name__ == "__main__":
    main()
