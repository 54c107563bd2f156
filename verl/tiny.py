"""The embedded default: tiny random Qwen2.5-VL and Qwen3-VL, tiny Qwen2 and Qwen3, and a synthetic visual QA
dataset.

Nothing here downloads anything. Everything is generated deterministically from ``--seed`` so that the
demo, the tests and the benchmarks run on any machine::

    python -m verl.tiny --out assets/tiny            # writes the folder below (skips when complete)

    assets/tiny/
      qwen2_5_vl/      tiny Qwen2.5-VL (+ processor, tokenizer, chat template); loads like a hub checkpoint
      qwen2_text/      tiny text-only Qwen2 sharing the tokenizer
      qwen3_vl/        tiny Qwen3-VL (interleaved M-RoPE, DeepStack, 16 px patches), same tokenizer and template
      qwen3_text/      tiny text-only Qwen3
      data/{train,val,test}.parquet   Vision-SR1-47K schema: problem (with <image>), answer, images
      data/mixed.parquet  24 rows mixing image, video ("which way does the dot move?", frame lists in a
                          ``videos`` column) and text-only questions
      MANIFEST.json    seed, sizes and library versions; written last, so its presence means "complete"

The dataset's questions cannot be answered without looking at the image (counting, colour, shape,
relative size, relative position, a drawn digit, and a multiple-choice count); answers are short.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL style chat template: string content or a list of {"type": "image"|"video"|"text"} parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 60, 180),
    "orange": (240, 130, 20),
}
SHAPES = ("circle", "square", "triangle")
IMAGE_SIZE = 112  # 8x8 patches of 14 px -> 16 image tokens after the 2x2 merge
# Seven-segment layout: which segments (a..g) light up for each digit; no font files needed.
SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}
GENERATOR_VERSION = 3  # bump when the generated files change, so existing folders are regenerated
# Bump when the warm start's training changes, so folders it wrote before are trained again. 2: image tokens get
# M-RoPE positions (the processor's mm_token_type_ids), as in every other path, not text positions.
WARM_START_VERSION = 2
QUESTION_KINDS = ("count", "colour", "shape", "size", "position", "digit", "count_mc")


@dataclass(frozen=True)
class TinySizes:
    """Sizes of the generated assets (defaults: the demo's)."""

    train: int = 2000
    val: int = 200
    test: int = 200
    vocab_size: int = 2048


# ----------------------------------------------------------------------------- images


def _draw_shape(draw: Any, shape: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)


def _draw_digit(draw: Any, digit: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    x, y = origin
    w, h, t = 30, 56, 6  # segment length, digit height, stroke
    half = h // 2
    segs = {
        "a": (x, y, x + w, y + t),
        "b": (x + w - t, y, x + w, y + half),
        "c": (x + w - t, y + half, x + w, y + h),
        "d": (x, y + h - t, x + w, y + h),
        "e": (x, y + half, x + t, y + h),
        "f": (x, y, x + t, y + half),
        "g": (x, y + half - t // 2, x + w, y + half + t // 2),
    }
    for name in SEGMENTS[digit]:
        draw.rectangle(segs[name], fill=colour)


def _non_overlapping_boxes(rng: random.Random, count: int, size_range: tuple[int, int]) -> list[tuple[int, ...]]:
    boxes: list[tuple[int, ...]] = []
    while len(boxes) < count:
        size = rng.randint(*size_range)
        x0, y0 = rng.randint(2, IMAGE_SIZE - size - 2), rng.randint(2, IMAGE_SIZE - size - 2)
        box = (x0, y0, x0 + size, y0 + size)
        if all(box[2] < b[0] - 2 or b[2] < box[0] - 2 or box[3] < b[1] - 2 or b[3] < box[1] - 2 for b in boxes):
            boxes.append(box)
    return boxes


def make_example(rng: random.Random, kind: str) -> tuple[str, str, bytes, str]:
    """One (problem, answer, png_bytes, description) of the given question kind; the description says what
    is drawn, enough to answer (the target of the warm start and of a good ``<description>``)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colour_names = list(COLOURS)

    if kind in ("count", "count_mc"):
        shape, colour = rng.choice(SHAPES), rng.choice(colour_names)
        count = rng.randint(1, 5)
        distractors = rng.randint(0, 2)
        others = [s for s in SHAPES if s != shape]
        boxes = _non_overlapping_boxes(rng, count + distractors, (14, 22))
        for i, box in enumerate(boxes):
            _draw_shape(draw, shape if i < count else rng.choice(others), box, COLOURS[colour])
        description = f"There {'is' if count == 1 else 'are'} {count} {colour} {shape}{'s' if count > 1 else ''}" + (
            f" and {distractors} other {colour} shape{'s' if distractors > 1 else ''}." if distractors else "."
        )
        if kind == "count":
            problem, answer = f"How many {shape}s are in the image?", str(count)
        else:
            options = sorted({count, *rng.sample(range(1, 7), 3)})[:4]
            while len(options) < 4:
                options.append(max(options) + 1)
            letters = "ABCD"
            listing = " ".join(f"{letters[i]}. {opt}" for i, opt in enumerate(options))
            problem = f"How many {shape}s can you see? Options: {listing}"
            answer = letters[options.index(count)]
    elif kind == "colour":
        shape, colour = rng.choice(SHAPES), rng.choice(colour_names)
        (box,) = _non_overlapping_boxes(rng, 1, (30, 60))
        _draw_shape(draw, shape, box, COLOURS[colour])
        problem, answer = f"What colour is the {shape} in the image?", colour
        description = f"There is one {colour} {shape}."
    elif kind == "shape":
        shape, colour = rng.choice(SHAPES), rng.choice(colour_names)
        (box,) = _non_overlapping_boxes(rng, 1, (30, 60))
        _draw_shape(draw, shape, box, COLOURS[colour])
        problem, answer = f"What shape is the {colour} object in the image?", shape
        description = f"There is one {colour} {shape}."
    elif kind == "size":
        c1, c2 = rng.sample(colour_names, 2)
        big, small = rng.randint(40, 50), rng.randint(14, 22)
        sizes = (big, small) if rng.random() < 0.5 else (small, big)
        shape = rng.choice(SHAPES)
        _draw_shape(draw, shape, (4, 30, 4 + sizes[0], 30 + sizes[0]), COLOURS[c1])
        _draw_shape(draw, shape, (60, 30, 60 + sizes[1], 30 + sizes[1]), COLOURS[c2])
        problem = f"Which {shape} is larger, the {c1} one or the {c2} one? Answer with the colour."
        answer = c1 if sizes[0] > sizes[1] else c2
        left_size, right_size = ("big", "small") if sizes[0] > sizes[1] else ("small", "big")
        description = f"A {left_size} {c1} {shape} on the left and a {right_size} {c2} {shape} on the right."
    elif kind == "position":
        c1, c2 = rng.sample(colour_names, 2)
        s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
        left_first = rng.random() < 0.5
        xa, xb = (6, 66) if left_first else (66, 6)
        ya, yb = rng.randint(6, 66), rng.randint(6, 66)
        _draw_shape(draw, s1, (xa, ya, xa + 36, ya + 36), COLOURS[c1])
        _draw_shape(draw, s2, (xb, yb, xb + 36, yb + 36), COLOURS[c2])
        problem = f"Is the {c1} {s1} to the left or to the right of the {c2} {s2}?"
        answer = "left" if left_first else "right"
        left, right = (f"{c1} {s1}", f"{c2} {s2}") if left_first else (f"{c2} {s2}", f"{c1} {s1}")
        description = f"A {left} on the left and a {right} on the right."
    elif kind == "digit":
        digit, colour = str(rng.randint(0, 9)), rng.choice(colour_names)
        _draw_digit(draw, digit, (rng.randint(8, 70), rng.randint(8, 48)), COLOURS[colour])
        problem, answer = "What digit is drawn in the image?", digit
        description = f"The digit {digit} is drawn in {colour}."
    else:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {QUESTION_KINDS}")

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return "<image>" + problem, answer, buffer.getvalue(), description


def make_rows(num_rows: int, seed: int) -> list[dict[str, Any]]:
    """Rows in the Vision-SR1-47K schema, question kinds in a balanced, shuffled order."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        kind = QUESTION_KINDS[i % len(QUESTION_KINDS)]
        problem, answer, png, description = make_example(rng, kind)
        rows.append(
            {
                "problem": problem,
                "answer": answer,
                "images": [{"bytes": png, "path": None}],
                "data_source": f"synthetic_{kind}",
                "description": description,
            }
        )
    rng.shuffle(rows)
    return rows


# ----------------------------------------------------------------------------- videos and mixed rows

VIDEO_SIZE, VIDEO_FRAMES = 64, 4  # 4 frames of 64x64: 2 temporal patches of 4 tokens each on the tiny models
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def make_video_example(rng: random.Random) -> tuple[str, str, list[bytes], str]:
    """(problem, answer, png frames, description): a dot moving in one direction across the frames."""
    from PIL import Image, ImageDraw

    direction = rng.choice(list(DIRECTIONS))
    colour = rng.choice(list(COLOURS))
    dx, dy = DIRECTIONS[direction]
    step, radius = 10, 6
    x0 = VIDEO_SIZE // 2 - dx * step * (VIDEO_FRAMES - 1) // 2 + rng.randint(-4, 4)
    y0 = VIDEO_SIZE // 2 - dy * step * (VIDEO_FRAMES - 1) // 2 + rng.randint(-4, 4)
    frames = []
    for t in range(VIDEO_FRAMES):
        image = Image.new("RGB", (VIDEO_SIZE, VIDEO_SIZE), (255, 255, 255))
        x, y = x0 + dx * step * t, y0 + dy * step * t
        ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLOURS[colour])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        frames.append(buffer.getvalue())
    problem = "<video>Which way does the dot move? Answer left, right, up or down."
    return problem, direction, frames, f"A {colour} dot moves {direction}."


def make_mixed_rows(num_rows: int, seed: int) -> list[dict[str, Any]]:
    """Rows mixing the three input kinds in turn: an image question, a video question (frames as a list of
    PNGs in the ``videos`` column) and a text-only sum; the schema of ``write_parquet(..., videos=True)``."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        row: dict[str, Any] = {"images": [], "videos": []}
        if i % 3 == 0:
            kind = QUESTION_KINDS[(i // 3) % len(QUESTION_KINDS)]
            problem, answer, png, description = make_example(rng, kind)
            row["images"] = [{"bytes": png, "path": None}]
        elif i % 3 == 1:
            kind = "video_direction"
            problem, answer, frames, description = make_video_example(rng)
            row["videos"] = [[{"bytes": f, "path": None} for f in frames]]
        else:
            kind = "text_sum"
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            problem, answer, description = f"What is {a} + {b}?", str(a + b), f"{a} plus {b}."
        row.update(problem=problem, answer=answer, data_source=f"synthetic_{kind}", description=description)
        rows.append(row)
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path, videos: bool = False) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("problem", pa.string()),
            ("answer", pa.string()),
            ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
            ("data_source", pa.string()),
            ("description", pa.string()),
        ]
        + (
            [("videos", pa.list_(pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))))]
            if videos
            else []
        )
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


# ----------------------------------------------------------------------------- tokenizer


def _tokenizer_corpus(rows: list[dict[str, Any]], seed: int) -> list[str]:
    """Text the BPE is trained on: questions, answers, the output format and its tags."""
    rng = random.Random(seed + 1)
    lines = [r["problem"] for r in rows] + [r["answer"] for r in rows]
    words = list(COLOURS) + list(SHAPES) + [str(d) for d in range(10)] + ["left", "right", "larger", "smaller"]
    for _ in range(2000):
        a, b, c = rng.sample(words, 3)
        lines.append(
            f"<description>The image shows a {a} {b} next to {c}.</description> "
            f"<think>I look at the {a} {b}. Counting gives {c}, so the answer is {b}.</think> \\boxed{{{c}}}"
        )
    lines += [
        "You are a helpful assistant.",
        "First describe the image inside <description> </description>, then reason step by step inside "
        "<think> </think>, and put the final short answer in \\boxed{}.",
        "Answer the question using only the description of the image. Think inside <think> </think> and give "
        "the final answer in \\boxed{}.",
        "Options: A. B. C. D. The answer is (A) (B) (C) (D). Answer: yes no",
    ]
    return lines


def build_tokenizer(rows: list[dict[str, Any]], seed: int, vocab_size: int) -> Any:
    """A byte-level BPE trained here, wrapped as a transformers ``Qwen2Tokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(rows, seed), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    return tokenizer


# ----------------------------------------------------------------------------- models


def build_models(tokenizer: Any, seed: int, out: Path) -> dict[str, int]:
    """Write every model family's tiny checkpoints (see ``verl.models``) into ``out/<folder>``, each with the
    shared tokenizer (and its family's processor for a VL model); returns the parameter count per folder."""
    from .models.family import families

    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    counts = {}
    for family in families().values():
        for builder in family.tiny_builders:
            model = builder.build_model(tokenizer, token_ids, seed)
            model.save_pretrained(out / builder.folder)
            if builder.build_processor is not None:
                builder.build_processor(tokenizer, CHAT_TEMPLATE).save_pretrained(out / builder.folder)
            else:
                tokenizer.save_pretrained(out / builder.folder)
            counts[builder.folder] = sum(p.numel() for p in model.parameters())
    return counts


# ----------------------------------------------------------------------------- entry points


def is_complete(out: str | Path) -> bool:
    """True when ``out`` holds a finished generation (its MANIFEST.json is written last)."""
    return (Path(out) / "MANIFEST.json").is_file()


def generate(out: str | Path, seed: int = 0, sizes: TinySizes = TinySizes(), force: bool = False) -> Path:
    """Write the tiny models and dataset into ``out``; returns the folder. Idempotent unless ``force``."""
    import numpy as np
    import tokenizers
    import torch
    import transformers

    out = Path(out).resolve()
    if is_complete(out) and not force:
        manifest = json.loads((out / "MANIFEST.json").read_text())
        same = manifest.get("seed") == seed and manifest.get("sizes") == sizes.__dict__
        if same and manifest.get("generator_version") == GENERATOR_VERSION:
            return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)

    split_rows = {
        "train": make_rows(sizes.train, seed),
        "val": make_rows(sizes.val, seed + 1_000_003),
        "test": make_rows(sizes.test, seed + 2_000_003),
    }
    for split, rows in split_rows.items():
        write_parquet(rows, tmp / "data" / f"{split}.parquet")
    write_parquet(make_mixed_rows(24, seed + 3_000_003), tmp / "data" / "mixed.parquet", videos=True)

    np.random.seed(seed)
    tokenizer = build_tokenizer(split_rows["train"], seed, sizes.vocab_size)
    parameters = build_models(tokenizer, seed, tmp)

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes.__dict__,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "question_kinds": list(QUESTION_KINDS),
        "parameters": parameters,
    }
    (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(out)
    return out


def _warm_start_examples(row: dict[str, Any], template: Any | None) -> list[tuple[list[dict[str, Any]], str, bool]]:
    """(user messages, assistant target, has_image) pairs: the see-think answer with the image, and the
    text-only blind answer from the description (what the self-reward hop asks)."""
    from .trainer.self_reward import build_blind_messages

    question = row["problem"].replace("<image>", "").strip()
    text = template.render(content=question) if template is not None else question
    answer, description = row["answer"], row["description"]
    think = f"From the description, the answer is {answer}."
    seethink = f"<description>{description}</description> <think>{think}</think> \\boxed{{{answer}}}"
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    blind = f"<think>{think}</think> \\boxed{{{answer}}}"
    return [(user, seethink, True), (build_blind_messages(description, row["problem"]), blind, False)]


def warm_start(
    out: str | Path, steps: int, seed: int = 0, format_prompt: str | None = None, batch_size: int = 16, lr: float = 2e-3
) -> Path:
    """Supervised warm start of the tiny VL model on its own synthetic data (a miniature of the paper's
    cold-start SFT), written to ``qwen2_5_vl_warm/``: the demo then starts from a policy that follows the
    see-think format and sometimes answers right, so its rewards can move."""
    import io as _io

    import pyarrow.parquet as pq
    import torch
    from jinja2 import Template
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(out).resolve()
    target = out / "qwen2_5_vl_warm"
    report = target / "WARM_START.json"
    if report.is_file() and json.loads(report.read_text()).get("version") == WARM_START_VERSION:
        return target
    processor = AutoProcessor.from_pretrained(out / "qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(out / "qwen2_5_vl", dtype=torch.float32)
    template = Template(Path(format_prompt).read_text()) if format_prompt else None
    rows = pq.read_table(out / "data" / "train.parquet").to_pylist()
    examples = [ex + (row,) for row in rows for ex in _warm_start_examples(row, template)]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    first_loss = None
    for _ in range(steps):
        texts, images, prompt_lengths = [], [], []
        for messages, answer, has_image, row in rng.sample(examples, batch_size):
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            image = [Image.open(_io.BytesIO(row["images"][0]["bytes"])).convert("RGB")] if has_image else None
            prompt_ids = processor(text=[prompt], images=image, return_tensors="pt")["input_ids"][0]
            prompt_lengths.append(len(prompt_ids))
            texts.append(prompt + answer + "<|im_end|>\n")
            images += image or []
        processor.tokenizer.padding_side = "right"
        inputs = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        labels = inputs["input_ids"].clone()
        labels[inputs["attention_mask"] == 0] = -100
        for i, n in enumerate(prompt_lengths):
            labels[i, :n] = -100
        loss = model(**inputs, labels=labels).loss
        first_loss = loss.item() if first_loss is None else first_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tmp = target.with_name(target.name + ".partial")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "WARM_START.json").write_text(
        json.dumps(
            {
                "version": WARM_START_VERSION,
                "steps": steps,
                "seed": seed,
                "first_loss": first_loss,
                "final_loss": loss.item(),
            }
        )
        + "\n"
    )
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m verl.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="assets/tiny", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=TinySizes.train, help="train rows")
    parser.add_argument("--val", type=int, default=TinySizes.val, help="validation rows")
    parser.add_argument("--test", type=int, default=TinySizes.test, help="test rows")
    parser.add_argument("--force", action="store_true", help="regenerate even when the folder is complete")
    parser.add_argument(
        "--warm-start-steps",
        type=int,
        default=0,
        help="also write qwen2_5_vl_warm/, the VL model after this many supervised steps",
    )
    parser.add_argument("--format-prompt", help="Jinja format prompt the warm start puts after each question")
    args = parser.parse_args(argv)
    sizes = TinySizes(train=args.train, val=args.val, test=args.test)
    out = generate(args.out, seed=args.seed, sizes=sizes, force=args.force)
    if args.warm_start_steps > 0:
        warm_start(out, args.warm_start_steps, seed=args.seed, format_prompt=args.format_prompt)
    print(f"tiny assets ready in {out}")


if __name__ == "__main__":
    main()
