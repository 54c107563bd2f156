"""Prompt datasets for RL: rows of (question with ``<image>`` placeholders, answer, images) → model inputs.

``data.train_files`` / ``data.val_files`` accept

- ``owner/name@split`` — a Hugging Face hub dataset (``datasets.load_dataset(owner/name, split=split)``);
- a local ``.parquet`` / ``.json`` / ``.jsonl`` / ``.arrow`` file;
- a local folder: a ``save_to_disk`` dataset, or a folder of such files (``folder@split`` picks
  ``folder/split.*``).

Videos (``data.video_key``, ``<video>`` placeholders) are a file path (relative to ``image_dir``) or a list of
frames (images as above), decoded with ``qwen-vl-utils`` (decord backend) and sampled at ``video_fps`` within
the pixel bounds; a file yields frames at that rate, a frame list is taken as already sampled at it.

Each row is checked once, when the dataset is built: a row with a missing column, a prompt with ``<image>``
but no image, an unreadable image or more placeholders than images raises an error naming the file, the
row and the column, unless ``skip_bad_rows`` is set, in which case it is skipped and counted
(``dataset.skipped``). Prompts longer than ``max_prompt_length`` tokens (images included) are skipped and
counted when ``filter_overlong_prompts`` is set, and are an error otherwise.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..models.family import family_of_processor
from ..protocol import collate_fn

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
# The processor outputs a forward needs per row (Qwen2.5-VL adds second_per_grid_ts for videos).
MULTI_MODAL_INPUT_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                          "second_per_grid_ts")  # fmt: skip
_LOCAL_SUFFIXES = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


class DatasetError(ValueError):
    """A dataset file or row that cannot be used; the message names the file, row and column."""


# ----------------------------------------------------------------------------- loading


def _split_spec(spec: str) -> tuple[str, str | None]:
    if "@" in spec:
        path, split = spec.rsplit("@", 1)
        return path, split
    return spec, None


def load_rows(spec: str) -> Any:
    """Open ``spec`` (see module docstring) as a ``datasets.Dataset`` without decoding images."""
    import datasets

    path, split = _split_spec(spec)
    if os.path.isfile(path):
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in _LOCAL_SUFFIXES:
            raise DatasetError(f"{spec}: unsupported file type {suffix!r}; use one of {sorted(_LOCAL_SUFFIXES)}")
        dataset = datasets.load_dataset(_LOCAL_SUFFIXES[suffix], data_files=path, split="train")
    elif os.path.isdir(path):
        if os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(
            os.path.join(path, "dataset_dict.json")
        ):
            dataset = datasets.load_from_disk(path)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[split or "train"]
        else:
            files = sorted(f for f in os.listdir(path) if os.path.splitext(f)[1].lower() in _LOCAL_SUFFIXES)
            if split is not None:
                files = [f for f in files if os.path.splitext(f)[0] == split or f.startswith(f"{split}-")]
            if not files:
                raise DatasetError(
                    f"{spec}: no .parquet/.json/.jsonl/.arrow files" + (f" for split {split!r}" * bool(split))
                )
            kinds = {_LOCAL_SUFFIXES[os.path.splitext(f)[1].lower()] for f in files}
            if len(kinds) > 1:
                raise DatasetError(f"{spec}: mixed file types {sorted(kinds)}; keep one kind per folder")
            data_files = [os.path.join(path, f) for f in files]
            dataset = datasets.load_dataset(kinds.pop(), data_files=data_files, split="train")
    elif path.count("/") == 1 and not path.startswith((".", "/")):
        dataset = datasets.load_dataset(path, split=split or "train")
    else:
        raise DatasetError(f"{spec}: no such file or folder, and not a hub id of the form owner/name@split")
    # Decode images ourselves: a corrupt image must name its row, not fail inside datasets.
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, (datasets.Sequence, list)):
            inner = feature.feature if isinstance(feature, datasets.Sequence) else feature[0]
            if isinstance(inner, datasets.Image):
                dataset = dataset.cast_column(name, datasets.Sequence(datasets.Image(decode=False)))
    return dataset


# ----------------------------------------------------------------------------- images


def load_image(item: Any, image_dir: str | None = None) -> Image.Image:
    """Bytes, a ``{"bytes", "path"}`` dict, a path (relative to ``image_dir``) or a PIL image → RGB PIL image."""
    if isinstance(item, Image.Image):
        image = item
    elif isinstance(item, (bytes, bytearray)):
        image = Image.open(io.BytesIO(item))
    elif isinstance(item, dict):
        if item.get("bytes"):
            image = Image.open(io.BytesIO(item["bytes"]))
        elif item.get("path"):
            return load_image(item["path"], image_dir)
        else:
            raise ValueError("image dict has neither 'bytes' nor 'path'")
    elif isinstance(item, str):
        path = os.path.join(image_dir, item) if image_dir and not os.path.isabs(item) else item
        image = Image.open(path)
    else:
        raise ValueError(f"unsupported image value of type {type(item).__name__}")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:  # refuse before decoding: it would take width*height*3 bytes
        raise ValueError(
            f"image is {image.width}x{image.height} = {image.width * image.height} pixels, over the "
            f"{limit} that are decoded (PIL.Image.MAX_IMAGE_PIXELS); downscale it"
        )
    image.load()  # decode now so that truncated/corrupt files fail here
    return image.convert("RGB") if image.mode != "RGB" else image


def resize_to_pixel_bounds(image: Image.Image, min_pixels: int | None, max_pixels: int | None) -> Image.Image:
    """Scale (keeping the aspect ratio) so that width*height lies within [min_pixels, max_pixels]."""
    pixels = image.width * image.height
    if max_pixels and pixels > max_pixels:
        factor = math.sqrt(max_pixels / pixels)
    elif min_pixels and pixels < min_pixels:
        factor = math.sqrt(min_pixels / pixels)
    else:
        return image
    width, height = max(1, int(image.width * factor)), max(1, int(image.height * factor))
    return image.resize((width, height), Image.Resampling.BICUBIC)


@dataclass
class Video:
    """Sampled frames of one video, resized within the pixel bounds: ``frames`` (T, C, H, W) whole numbers in
    [0, 255]; ``metadata`` (source fps, the indices of the sampled frames, total frames) for the processor's
    timestamps; ``sample_fps``, the rate the frames stand for."""

    frames: torch.Tensor
    metadata: dict[str, Any]
    sample_fps: float


def load_video(
    item: Any,
    fps: float,
    image_dir: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    patch_size: int = 14,
) -> Video:
    """A video file path or a list of frames → frames sampled at ``fps`` (qwen-vl-utils, decord backend).

    Raises ValueError for a missing or unreadable file, no frames, or an unsupported value."""
    from qwen_vl_utils import fetch_video

    bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    if isinstance(item, dict) and item.get("path") and not item.get("bytes"):
        item = item["path"]
    if isinstance(item, str):
        path = os.path.join(image_dir, item) if image_dir and not os.path.isabs(item) else item
        if not os.path.isfile(path):
            raise ValueError(f"video file {path!r} not found")
        element = {"video": path, "fps": fps, **bounds}
    elif isinstance(item, (list, tuple, np.ndarray)):
        if len(item) == 0:
            raise ValueError("the frame list is empty")
        frames = [load_image(frame, image_dir) for frame in item]
        element = {"video": frames, "sample_fps": fps, **bounds}
    else:
        raise ValueError(f"unsupported video value of type {type(item).__name__} (a path or a list of frames)")
    try:
        (frames, metadata), sample_fps = fetch_video(
            element, image_patch_size=patch_size, return_video_sample_fps=True, return_video_metadata=True
        )
    except Exception as exc:  # the decoders raise many types for corrupt or empty files
        where = f"video file {element['video']!r}" if isinstance(item, str) else "the frame list"
        raise ValueError(f"{where} cannot be decoded: {exc}") from exc
    if frames.shape[0] == 0:
        raise ValueError("the video has no frames")
    metadata = {k: metadata[k] for k in ("fps", "frames_indices", "total_num_frames")}
    # Whole pixel values: the rollout engines get these frames as uint8, and must see the same pixels.
    return Video(frames=frames.round().clamp(0, 255), metadata=metadata, sample_fps=float(sample_fps))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray):
        return list(value)
    return [value]


# ----------------------------------------------------------------------------- prompts


def build_messages(question: str, num_images: int, num_videos: int = 0) -> list[dict[str, Any]]:
    """A one-turn user message; ``<image>`` / ``<video>`` placeholders become image / video parts in place.

    Images and videos without a placeholder are put before the text (the usual convention of VQA data).
    """
    pieces = re.split(f"({IMAGE_PLACEHOLDER}|{VIDEO_PLACEHOLDER})", question)
    missing_images = num_images - pieces.count(IMAGE_PLACEHOLDER)
    missing_videos = num_videos - pieces.count(VIDEO_PLACEHOLDER)
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(max(missing_images, 0))]
    content += [{"type": "video"} for _ in range(max(missing_videos, 0))]
    for piece in pieces:
        if piece == IMAGE_PLACEHOLDER:
            content.append({"type": "image"})
        elif piece == VIDEO_PLACEHOLDER:
            content.append({"type": "video"})
        elif piece.strip():
            content.append({"type": "text", "text": piece})
    return [{"role": "user", "content": content}]


def strip_image_placeholders(question: str) -> str:
    """The question as text alone (used by the self-reward hop, which never sees the image)."""
    return re.sub(r"\s*<(image|video)>\s*", " ", question).strip()


def load_format_prompt(path_or_template: str | None) -> Any | None:
    """A Jinja template (file path or inline text) rendered with ``content=<question>``."""
    if not path_or_template:
        return None
    from jinja2 import Template

    if os.path.isfile(path_or_template):
        with open(path_or_template, encoding="utf-8") as f:
            return Template(f.read())
    if path_or_template.endswith(".jinja"):
        raise DatasetError(f"data.format_prompt: template file {path_or_template!r} does not exist")
    return Template(path_or_template)


# ----------------------------------------------------------------------------- dataset


@dataclass
class _Row:
    """A checked row: where it came from and what it holds."""

    index: int
    question: str
    answer: str
    images: list[Any]
    data_source: str
    videos: list[Video] = field(default_factory=list)


class RLHFDataset(torch.utils.data.Dataset):
    """Prompts for rollout, with everything the trainer and the self-reward need.

    Each item is a dict with ``input_ids``/``attention_mask`` (left-padded to ``max_prompt_length``),
    ``position_ids`` ((3, L) M-RoPE ids for VL models, (L,) otherwise), ``raw_prompt_ids`` (unpadded, for
    vLLM), ``multi_modal_data`` (``{"images": [PIL]}`` after the pixel bounds, for the rollout engine),
    ``multi_modal_inputs`` (the processor's ``pixel_values``/``image_grid_thw``, for the actor), ``ground_truth``,
    ``raw_question`` (the question as in the file, before the format prompt), ``data_source`` and
    ``dataset_index`` (the row's index in its file, stable across filtering and shuffling).
    """

    def __init__(
        self,
        data_path: str,
        tokenizer: Any,
        processor: Any | None,
        prompt_key: str = "problem",
        answer_key: str = "answer",
        image_key: str = "images",
        video_key: str = "videos",
        video_fps: float = 2.0,
        image_dir: str | None = None,
        max_prompt_length: int = 1024,
        format_prompt: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        filter_overlong_prompts: bool = True,
        skip_bad_rows: bool = False,
        override_chat_template: str | None = None,
    ) -> None:
        self.data_path = data_path
        self.tokenizer = tokenizer
        self.processor = processor
        self.prompt_key, self.answer_key, self.image_key = prompt_key, answer_key, image_key
        self.video_key, self.video_fps = video_key, video_fps
        self.image_dir = image_dir
        self.max_prompt_length = max_prompt_length
        self.format_prompt = load_format_prompt(format_prompt)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        if override_chat_template and os.path.isfile(override_chat_template):
            with open(override_chat_template, encoding="utf-8") as f:
                override_chat_template = f.read()
        self.chat_template = override_chat_template
        self.skipped: Counter[str] = Counter()
        self.tokens_per_second = _tokens_per_second(processor)

        table = load_rows(data_path)
        columns = set(table.column_names)
        for key, name in ((prompt_key, "data.prompt_key"), (answer_key, "data.answer_key")):
            if key not in columns:
                raise DatasetError(f"{data_path}: column {key!r} ({name}) not found; columns are {sorted(columns)}")
        self._has_images = image_key in columns
        self._has_videos = video_key in columns
        for present, key, kind in ((self._has_images, image_key, "image"), (self._has_videos, video_key, "video")):
            if present and processor is None:
                raise DatasetError(
                    f"{data_path}: rows have {kind}s (column {key!r}) but the model has no {kind} processor; "
                    "use a vision-language model or drop the column"
                )

        self.rows: list[_Row] = []
        for index, raw in enumerate(table):
            try:
                row = self._check_row(index, raw)
                if self.prompt_length(row) > max_prompt_length:
                    if not filter_overlong_prompts:
                        raise DatasetError(
                            f"{data_path}: row {index}: prompt is {self.prompt_length(row)} tokens, longer than "
                            f"data.max_prompt_length={max_prompt_length}; raise the limit or set "
                            "data.filter_overlong_prompts=true"
                        )
                    self.skipped["overlong_prompt"] += 1
                    continue
            except _BadRow as bad:
                if not skip_bad_rows:
                    raise DatasetError(
                        f"{data_path}: row {index}, column {bad.column!r}: {bad.reason} "
                        "(set data.skip_bad_rows=true to skip such rows)"
                    ) from bad.__cause__
                self.skipped[bad.kind] += 1
                continue
            self.rows.append(row)
        if self.skipped:
            logger.warning("%s: skipped %s of %d rows: %s", data_path, sum(self.skipped.values()), len(table),
                           dict(self.skipped))  # fmt: skip
        if not self.rows:
            raise DatasetError(f"{data_path}: no usable rows (skipped: {dict(self.skipped)})")

    # -- checks

    def _check_row(self, index: int, raw: dict[str, Any]) -> _Row:
        question = raw.get(self.prompt_key)
        if not isinstance(question, str) or not question.strip():
            raise _BadRow("missing_prompt", self.prompt_key, f"prompt is empty or not a string ({question!r:.40})")
        answer = raw.get(self.answer_key)
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise _BadRow("missing_answer", self.answer_key, "answer is empty")
        images = _as_list(raw.get(self.image_key)) if self._has_images else []
        placeholders = question.count(IMAGE_PLACEHOLDER)
        if placeholders and not images:
            raise _BadRow("missing_image", self.image_key, f"the prompt has {placeholders} <image> but no image")
        if placeholders > len(images):
            raise _BadRow(
                "placeholder_mismatch",
                self.image_key,
                f"the prompt has {placeholders} <image> placeholders but only {len(images)} images",
            )
        decoded = []
        for i, item in enumerate(images):
            try:
                decoded.append(resize_to_pixel_bounds(load_image(item, self.image_dir), self.min_pixels,
                                                      self.max_pixels))  # fmt: skip
            except Exception as exc:  # PIL raises many types for corrupt data
                raise _BadRow("unreadable_image", self.image_key, f"image {i} cannot be read: {exc}") from exc
        videos = _as_list(raw.get(self.video_key)) if self._has_videos else []
        video_placeholders = question.count(VIDEO_PLACEHOLDER)
        if video_placeholders > len(videos):
            raise _BadRow(
                "missing_video",
                self.video_key,
                f"the prompt has {video_placeholders} <video> placeholders but only {len(videos)} videos",
            )
        patch = getattr(getattr(self.processor, "image_processor", None), "patch_size", 14)
        loaded = []
        for i, item in enumerate(videos):
            try:
                loaded.append(load_video(item, self.video_fps, self.image_dir, self.min_pixels, self.max_pixels,
                                         patch))  # fmt: skip
            except Exception as exc:
                raise _BadRow("unreadable_video", self.video_key, f"video {i} cannot be read: {exc}") from exc
        source = raw.get("data_source") or os.path.basename(_split_spec(self.data_path)[0])
        return _Row(index=index, question=question, answer=str(answer), images=decoded, data_source=str(source),
                    videos=loaded)  # fmt: skip

    # -- rendering

    def _prompt_text(self, row: _Row) -> str:
        question = self.format_prompt.render(content=row.question) if self.format_prompt else row.question
        messages = build_messages(question, len(row.images), len(row.videos))
        if self.processor is not None:
            return self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, chat_template=self.chat_template
            )
        text_messages = [{"role": "user", "content": strip_image_placeholders(question)}]
        return self.tokenizer.apply_chat_template(
            text_messages, add_generation_prompt=True, tokenize=False, chat_template=self.chat_template
        )

    def _encode(self, row: _Row) -> dict[str, Any]:
        prompt = self._prompt_text(row)
        if row.images or row.videos:
            kwargs: dict[str, Any] = {"images": row.images or None}
            if row.videos:  # already sampled and resized by load_video: the processor only patches them
                kwargs.update(
                    videos=[v.frames for v in row.videos],
                    video_metadata=[v.metadata for v in row.videos],
                    do_sample_frames=False,
                    do_resize=False,
                    fps=row.videos[0].sample_fps,
                )
            inputs = self.processor(text=[prompt], add_special_tokens=False, return_tensors="pt", **kwargs)
        else:
            inputs = self.tokenizer([prompt], add_special_tokens=False, return_tensors="pt")
        return dict(inputs)

    def prompt_length(self, row: _Row) -> int:
        """Prompt tokens including the image tokens (computed from the image sizes, cheaply)."""
        text = self._prompt_text(row)
        if row.videos:  # video tokens and Qwen3-VL's timestamps: encode for real
            return len(self._encode(row)["input_ids"][0])
        length = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if row.images:
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

            ip = self.processor.image_processor
            factor = ip.patch_size * ip.merge_size
            size = getattr(ip, "size", None) or {}
            lo = size.get("shortest_edge", getattr(ip, "min_pixels", None))
            hi = size.get("longest_edge", getattr(ip, "max_pixels", None))
            for image in row.images:
                h, w = smart_resize(image.height, image.width, factor=factor, min_pixels=lo, max_pixels=hi)
                length += (h // factor) * (w // factor) - 1  # the placeholder token expands to this many
        return length

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self.rows[item]
        inputs = self._encode(row)
        input_ids, attention_mask = inputs["input_ids"][0], inputs["attention_mask"][0]
        if row.images or row.videos:
            position_ids = family_of_processor(self.processor).position_ids(
                self.processor,
                input_ids,
                attention_mask,
                image_grid_thw=inputs.get("image_grid_thw"),
                video_grid_thw=inputs.get("video_grid_thw"),
                second_per_grid_ts=inputs.get("second_per_grid_ts"),
                tokens_per_second=self.tokens_per_second,
            )
        elif self.processor is not None:
            position_ids = torch.arange(len(input_ids)).unsqueeze(0).expand(3, -1).clone()
        else:
            position_ids = torch.arange(len(input_ids))
        raw_prompt_ids = input_ids.tolist()
        if self.processor is not None and (row.images or row.videos):
            # vLLM expands the image/video placeholders itself: give it the unexpanded prompt.
            raw_prompt_ids = self.tokenizer(self._prompt_text(row), add_special_tokens=False)["input_ids"]
        pad = self.max_prompt_length - len(input_ids)
        if pad < 0:  # only reachable with filter_overlong_prompts=False, which errors at load time
            raise DatasetError(f"{self.data_path}: row {row.index}: prompt longer than data.max_prompt_length")
        pad_id = self.tokenizer.pad_token_id
        return {
            "input_ids": torch.cat([torch.full((pad,), pad_id, dtype=input_ids.dtype), input_ids]),
            "attention_mask": torch.cat([torch.zeros(pad, dtype=attention_mask.dtype), attention_mask]),
            "position_ids": torch.cat(
                [torch.zeros(*position_ids.shape[:-1], pad, dtype=torch.long), position_ids], dim=-1
            ),  # fmt: skip
            "raw_prompt_ids": raw_prompt_ids,
            "multi_modal_data": self._multi_modal_data(row),
            "multi_modal_inputs": {k: inputs[k] for k in MULTI_MODAL_INPUT_KEYS if k in inputs} or None,
            "ground_truth": row.answer,
            "raw_question": row.question,
            "data_source": row.data_source,
            "dataset_index": row.index,
        }

    @staticmethod
    def _multi_modal_data(row: _Row) -> dict[str, Any] | None:
        """What the rollout engines need: PIL images, and videos as (frames (T, H, W, C) uint8, metadata)."""
        data: dict[str, Any] = {}
        if row.images:
            data["images"] = row.images
        if row.videos:
            data["videos"] = [
                (v.frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy(),
                 {**v.metadata, "sample_fps": v.sample_fps})
                for v in row.videos
            ]  # fmt: skip
        return data or None


def _tokens_per_second(processor: Any | None) -> float:
    """The model's ``vision_config.tokens_per_second`` (how far apart Qwen2.5-VL puts video frames in
    position), read from the folder the processor came from; 2.0, the released checkpoints' value, when
    the config has none."""
    path = getattr(getattr(processor, "tokenizer", None), "name_or_path", None)
    if not path:
        return 2.0
    from transformers import AutoConfig

    try:
        vision = getattr(AutoConfig.from_pretrained(path), "vision_config", None)
    except (OSError, ValueError):
        return 2.0
    return float(getattr(vision, "tokens_per_second", None) or 2.0)


class _BadRow(Exception):
    def __init__(self, kind: str, column: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.column, self.reason = kind, column, reason


# ----------------------------------------------------------------------------- loader


class ResumableDataLoader:
    """Batches of a dataset in a seeded order per epoch, with a resumable position.

    ``state_dict()`` records (epoch, batches consumed in the epoch); a loader given that state continues
    with exactly the batch that would have come next, so a resumed run sees the same data in the same order.
    The last incomplete batch of an epoch is dropped (RL steps need full batches).
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 1,
        num_workers: int = 0,
        drop_last: bool = True,
        collate: Any = collate_fn,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"the dataset has {len(dataset)} rows, fewer than one batch of {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.num_workers, self.drop_last, self.collate = num_workers, drop_last, collate
        self.epoch, self.batch_in_epoch = 0, 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.dataset)))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.dataset), generator=generator).tolist()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yields the remaining batches of the current epoch, then advances the epoch."""
        order = self._order(self.epoch)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        remaining = batches[self.batch_in_epoch :]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=remaining, num_workers=self.num_workers, collate_fn=self.collate
        )
        for batch in loader:
            self.batch_in_epoch += 1
            yield batch
        self.epoch += 1
        self.batch_in_epoch = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"loader state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.epoch, self.batch_in_epoch = int(state["epoch"]), int(state["batch_in_epoch"])
