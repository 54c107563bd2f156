"""Chat records with images → token ids with labels on the assistant's tokens only, for supervised fine-tuning.

Records are the cold-start set's (see :mod:`verl.utils.sft_data`): openai-style ``messages`` with ``<image>``
placeholders in user turns and an ``images`` list, sharegpt ``conversations``, or alpaca
``instruction``/``output``. The conversation is rendered with the model's chat template one turn at a time;
each assistant turn's content and its end-of-turn token are trained on, everything else (system prompt, user
turns, image tokens, the ``<|im_start|>assistant`` header) gets label -100.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.family import family_of_processor
from ..protocol import DataProto
from .dataset import DatasetError, load_image, load_rows, resize_to_pixel_bounds
from .sft_data import IMAGE_PLACEHOLDER, SUBSETS, Problem, SFTDataError, read_records, record_problems, to_messages

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
IMAGE_PAD = "<|image_pad|>"


def _chat_content(message: dict[str, Any]) -> Any:
    """A user turn with ``<image>`` placeholders becomes a list of image/text parts (the template's input)."""
    content = message["content"]
    if message["role"] != "user" or IMAGE_PLACEHOLDER not in content:
        return content
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(content.split(IMAGE_PLACEHOLDER)):
        if i > 0:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def render_pieces(
    messages: list[dict[str, Any]], tokenizer: Any, processor: Any | None = None, chat_template: str | None = None
) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, trained) pieces; concatenated they equal the full render.

    Needs a chat template that renders a conversation prefix as a prefix of the whole (Qwen's does); each
    assistant turn's content up to and including the end-of-turn token is ``trained``.
    """
    chat = [{"role": m["role"], "content": _chat_content(m)} for m in messages]
    renderer = processor if processor is not None else tokenizer

    def render(upto: int, generation_prompt: bool) -> str:
        if upto == 0:
            return ""
        return renderer.apply_chat_template(
            chat[:upto], add_generation_prompt=generation_prompt, tokenize=False, chat_template=chat_template
        )

    eos = tokenizer.eos_token or ""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head, full = render(i, True), render(i + 1, False)
        if not head.startswith(done) or not full.startswith(head):
            raise ValueError(
                "the chat template does not render a conversation prefix as a prefix of the whole; the assistant "
                "tokens cannot be located (use a Qwen-style template via data.override_chat_template)"
            )
        body = full[len(head) :]
        cut = body.find(eos) + len(eos) if eos and eos in body else len(body)
        pieces += [(head[len(done) :], False), (body[:cut], True), (body[cut:], False)]
        done = full
    return [(text, trained) for text, trained in pieces if text]


def encode_conversation(
    messages: list[dict[str, Any]],
    images: list[Any],
    tokenizer: Any,
    processor: Any | None = None,
    chat_template: str | None = None,
) -> dict[str, Any]:
    """``input_ids`` and ``labels`` (-100 outside assistant turns) plus the image inputs and M-RoPE positions.

    Each ``<|image_pad|>`` is expanded to its image's token count (from the processed grid) before the
    pieces are tokenized, so the ids equal what the processor itself would produce.
    """
    pieces = render_pieces(messages, tokenizer, processor, chat_template)
    mm_inputs = None
    if images:
        if processor is None:
            raise ValueError("the record has images but the model has no image processor (a text-only model?)")
        mm_inputs = dict(processor.image_processor(images=images, return_tensors="pt"))
        mm_inputs = {k: mm_inputs[k] for k in ("pixel_values", "image_grid_thw")}
        merge = processor.image_processor.merge_size
        counts = [int(g.prod()) // merge**2 for g in mm_inputs["image_grid_thw"]]
        expanded: list[tuple[str, bool]] = []
        for text, trained in pieces:
            parts = text.split(IMAGE_PAD)
            out = parts[0]
            for part in parts[1:]:
                if not counts:
                    raise ValueError("more image placeholders in the rendered text than images")
                out += IMAGE_PAD * counts.pop(0) + part
            expanded.append((out, trained))
        if counts:
            raise ValueError(f"{len(counts)} image(s) have no placeholder in the rendered text")
        pieces = expanded
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces:
        piece_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece_ids
        labels += piece_ids if trained else [IGNORE_INDEX] * len(piece_ids)
    input_ids = torch.tensor(ids, dtype=torch.long)
    if processor is not None:
        position_ids = family_of_processor(processor).position_ids(
            processor, input_ids, image_grid_thw=mm_inputs["image_grid_thw"] if mm_inputs else None
        )
    else:
        position_ids = torch.arange(len(ids))
    return {
        "input_ids": input_ids,
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": position_ids,
        "multi_modal_inputs": mm_inputs,
    }


def _sources(spec: str, subsets: list[str] | None) -> list[tuple[str, Any, str | None, str]]:
    """(file label, records, subset name, image base folder) for each part of a comma-separated ``spec``."""
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        path = Path(part.split("@")[0]) if "@" in part and not os.path.exists(part) else Path(part)
        if path.is_dir() and (path / "dataset_info.json").is_file():
            import json

            info = json.loads((path / "dataset_info.json").read_text(encoding="utf-8"))
            names = subsets or [name for name in SUBSETS if name in info]
            for name in names:
                if name not in info:
                    raise DatasetError(f"{path}: dataset_info.json has no subset {name!r} (has {sorted(info)})")
                file = path / info[name]["file_name"]
                out.append((str(file), read_records(file), name, str(path)))
        elif path.is_file() and path.suffix in (".json", ".jsonl"):
            out.append((str(path), read_records(path), None, str(path.parent)))
        else:  # parquet, arrow, save_to_disk folders and hub ids go through the RL loader
            rows = load_rows(part)
            base = str(path.parent) if path.exists() else None
            out.append((part, [dict(r) for r in rows], None, base))
    if not out:
        raise DatasetError(f"no SFT data in {spec!r}")
    return out


class SFTDataset(torch.utils.data.Dataset):
    """Supervised examples from one or more files, folders or hub datasets (``data.train_files``).

    Every record is checked when the dataset is built (roles, placeholders vs images, image files, and the
    subset's tags for a LLaMA-Factory data folder); bad ones raise :class:`SFTDataError` naming each file and
    index, or with ``skip_bad_rows`` are dropped and counted. Sequences longer than ``cutoff_len`` lose the
    tail of their answer; one whose image tokens would be cut is an error.
    """

    def __init__(
        self,
        files: str,
        tokenizer: Any,
        processor: Any | None = None,
        cutoff_len: int = 4092,
        min_pixels: int | None = None,
        max_pixels: int | None = 262144,
        image_dir: str | None = None,
        subsets: list[str] | None = None,
        skip_bad_rows: bool = False,
        chat_template: str | None = None,
    ) -> None:
        self.tokenizer, self.processor = tokenizer, processor
        self.cutoff_len, self.min_pixels, self.max_pixels = cutoff_len, min_pixels, max_pixels
        self.chat_template = chat_template
        self.examples: list[tuple[str, int, list[dict[str, Any]], list[Any], str | None]] = []
        self.skipped: Counter[str] = Counter()
        problems: list[Problem] = []
        for label, records, subset, base in _sources(files, subsets):
            base = image_dir or base
            for index, record in enumerate(records):
                found = record_problems(record, SUBSETS.get(subset) if subset else None, base)
                if found:
                    problems += [Problem(label, index, kind, message) for kind, message in found]
                    continue
                messages, images = to_messages(record)
                self.examples.append((label, index, messages, images, base))
        if problems and not skip_bad_rows:
            raise SFTDataError(problems)
        for p in problems:
            self.skipped[p.kind] += 1
        if problems:
            logger.warning("SFT data: skipped %d bad record(s): %s", len({(p.file, p.index) for p in problems}),
                           dict(self.skipped))  # fmt: skip
        if not self.examples:
            raise DatasetError(f"{files}: no usable SFT records")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, item: int) -> dict[str, Any]:
        label, index, messages, images, base = self.examples[item]
        try:
            decoded = [resize_to_pixel_bounds(load_image(x, base), self.min_pixels, self.max_pixels) for x in images]
            encoded = encode_conversation(messages, decoded, self.tokenizer, self.processor, self.chat_template)
        except Exception as exc:
            raise DatasetError(f"{label}: record {index}: cannot be encoded: {exc}") from exc
        ids = encoded["input_ids"]
        if len(ids) > self.cutoff_len:
            image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
            image_positions = (ids == image_id).nonzero()
            if len(image_positions) and int(image_positions[-1]) >= self.cutoff_len:
                raise DatasetError(
                    f"{label}: record {index}: {len(ids)} tokens and its image tokens reach past data.cutoff_len="
                    f"{self.cutoff_len}; raise data.cutoff_len or lower data.max_pixels"
                )
            for key in ("input_ids", "labels"):
                encoded[key] = encoded[key][: self.cutoff_len]
            encoded["position_ids"] = encoded["position_ids"][..., : self.cutoff_len]
        encoded["source"] = f"{label}#{index}"
        return encoded


def sft_collate(rows: list[dict[str, Any]], pad_token_id: int) -> DataProto:
    """Right-pad a list of encoded examples into one batch (labels padded with -100)."""
    length = max(len(r["input_ids"]) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, length), pad_token_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, length), dtype=torch.long)
    pos_shape = rows[0]["position_ids"].shape[:-1]
    position_ids = torch.zeros((n, *pos_shape, length), dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        input_ids[i, :k], labels[i, :k], attention_mask[i, :k] = r["input_ids"], r["labels"], 1
        position_ids[i, ..., :k] = r["position_ids"]
    mm = np.empty(n, dtype=object)
    mm[:] = [r["multi_modal_inputs"] for r in rows]
    source = np.array([r["source"] for r in rows], dtype=object)
    return DataProto.from_dict(
        tensors={"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                 "labels": labels},
        non_tensors={"multi_modal_inputs": mm, "source": source},
    )  # fmt: skip
