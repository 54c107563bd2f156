"""The cold-start SFT set: its three subsets, record checks, download/conversion and a tiny synthetic copy.

The paper's cold start (Vision-SR1-Cold-9K) has three subsets, kept in LLaMA-Factory's layout so the same
folder feeds ``llamafactory-cli train`` and ``python3 -m verl.trainer.sft``::

    data_dir/
      dataset_info.json            LLaMA-Factory's index of the subsets below
      vision_see_think.json        sharegpt: messages (user with <image>, assistant) + images (paths)
      vision_reasoner.json         sharegpt, same shape
      caption_reasoners_text.json  alpaca: instruction (caption + question) / input / output, no image
      images/...                   image files, paths in the records are relative to data_dir

What each subset's assistant text must contain (in this order):

- ``vision_see_think``: ``<description>..</description> <think>..</think> \\boxed{..}``
- ``vision_reasoner`` and ``caption_reasoners_text``: ``<think>..</think> \\boxed{..}``

Every record is checked (:func:`validate_records`); a bad one is reported with its file and index and the kind
of problem, never dropped silently.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
DEFAULT_REPO_ID = "LMMs-Lab-Turtle/Vision-SR1-Cold-9K"
SEE_THINK_PATTERN = re.compile(r"<description>\s*\S.*?</description>\s*<think>\s*\S.*?</think>\s*\\boxed\{.+\}", re.S)
REASONING_PATTERN = re.compile(r"<think>\s*\S.*?</think>\s*\\boxed\{.+\}", re.S)
SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
SHAREGPT_ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "system": "system",
    "user": "user",
    "assistant": "assistant",
}


@dataclass(frozen=True)
class Subset:
    """One subset of the cold-start set: its file, LLaMA-Factory formatting and the tags its answers need."""

    name: str
    file_name: str
    formatting: str  # "sharegpt" (messages + images) or "alpaca" (instruction/input/output)
    has_images: bool
    pattern: re.Pattern[str]
    tags: str  # the expected tags, for messages


SUBSETS: dict[str, Subset] = {
    s.name: s
    for s in (
        Subset("vision_see_think", "vision_see_think.json", "sharegpt", True, SEE_THINK_PATTERN,
               "<description>..</description> <think>..</think> \\boxed{..}"),
        Subset("vision_reasoner", "vision_reasoner.json", "sharegpt", True, REASONING_PATTERN,
               "<think>..</think> \\boxed{..}"),
        Subset("caption_reasoners_text", "caption_reasoners_text.json", "alpaca", False, REASONING_PATTERN,
               "<think>..</think> \\boxed{..}"),
    )
}  # fmt: skip


class SFTDataError(ValueError):
    """Bad SFT records; the message lists each one by file, index and problem."""

    def __init__(self, problems: list[Problem], limit: int = 20) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:limit])
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        counts = dict(Counter(p.kind for p in problems))
        super().__init__(f"{len(problems)} bad SFT record(s) {counts}:\n{shown}{more}")


@dataclass(frozen=True)
class Problem:
    """What is wrong with one record."""

    file: str
    index: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: record {self.index}: {self.kind}: {self.message}"


def dataset_info() -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` for the three subsets (the checked-in copy must equal this)."""
    info: dict[str, Any] = {}
    for s in SUBSETS.values():
        if s.formatting == "sharegpt":
            info[s.name] = {
                "file_name": s.file_name,
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
                "tags": dict(SHAREGPT_TAGS),
            }
        else:
            info[s.name] = {"file_name": s.file_name}
    return info


# ----------------------------------------------------------------------------- records


def to_messages(record: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """A record in any of the accepted shapes → (messages with ``role``/``content``, images).

    Shapes: openai-style ``messages`` (role/content), sharegpt ``conversations`` (from/value, human/gpt),
    alpaca ``instruction``/``input``/``output`` (+ optional ``system``). Raises ``ValueError`` saying what is
    missing; role and content checks are :func:`message_problems`' job.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    images = record.get("images")
    images = [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]
    if "messages" in record or "conversations" in record:
        raw = record.get("messages", record.get("conversations"))
        if not isinstance(raw, (list, tuple)):
            raise ValueError("'messages' must be a list of {role, content} objects")
        messages = []
        for m in raw:
            if not isinstance(m, dict):
                raise ValueError(f"a message must be an object, got {type(m).__name__}")
            role = m.get("role", m.get("from"))
            content = m.get("content", m.get("value"))
            messages.append({"role": SHAREGPT_ROLE_ALIASES.get(role, role), "content": content})
        return messages, images
    if "instruction" in record and "output" in record:
        prompt = str(record.get("instruction") or "")
        if record.get("input"):
            prompt = f"{prompt}\n{record['input']}"
        messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
        return messages, images
    raise ValueError("no 'messages' (or 'conversations') list and no 'instruction'/'output' pair")


def message_problems(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, message) for role/content problems: an optional system turn, then user/assistant alternating,
    ending with the assistant; every content a non-empty string."""
    out: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if m["role"] not in ("system", "user", "assistant"):
            out.append(("unknown_role", f"message {i} has role {m['role']!r}; expected system, user or assistant"))
            return out
        if not isinstance(m["content"], str) or not m["content"].strip():
            out.append(("empty_content", f"message {i} ({m['role']}) has empty or non-text content"))
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    roles = [m["role"] for m in turns]
    if not turns:
        out.append(("roles_not_alternating", "no user/assistant turns"))
    elif roles != expected[: len(roles)]:
        first_bad = next(i for i, (a, b) in enumerate(zip(roles, expected)) if a != b)
        out.append(
            ("roles_not_alternating", f"roles {roles} must alternate user, assistant (turn {first_bad} is wrong)")
        )
    elif roles[-1] != "assistant":
        out.append(("roles_not_alternating", "the last turn must be the assistant's answer"))
    return out


def image_path(item: Any, base_dir: str | os.PathLike | None) -> str | None:
    """The file an image entry points at (relative paths resolve against ``base_dir``); None for bytes."""
    if isinstance(item, dict):
        if item.get("bytes"):
            return None
        item = item.get("path")
    if isinstance(item, str):
        return item if os.path.isabs(item) or base_dir is None else os.path.join(base_dir, item)
    return None


def record_problems(
    record: Any, subset: Subset | None, base_dir: str | os.PathLike | None, check_images: bool = True
) -> list[tuple[str, str]]:
    """(kind, message) for everything wrong with one record; empty when it is usable."""
    try:
        messages, images = to_messages(record)
    except ValueError as exc:
        return [("bad_record", str(exc))]
    out = message_problems(messages)
    if any(kind == "unknown_role" for kind, _ in out):
        return out
    text = [m["content"] for m in messages if isinstance(m["content"], str)]
    placeholders = sum(t.count(IMAGE_PLACEHOLDER) for t in text)
    if subset is not None and not subset.has_images and (images or placeholders):
        out.append(("unexpected_image", f"the text-only subset {subset.name} has {len(images)} image(s)"))
    elif placeholders != len(images):
        out.append(("image_count_mismatch", f"{placeholders} <image> placeholder(s) but {len(images)} image(s)"))
    elif subset is not None and subset.has_images and not images:
        out.append(("missing_image", f"subset {subset.name} needs an image, the record has none"))
    if check_images:
        for k, item in enumerate(images):
            path = image_path(item, base_dir)
            if path is not None and not os.path.isfile(path):
                out.append(("missing_image_file", f"image {k} {path!r} does not exist"))
            elif path is None and not (isinstance(item, dict) and item.get("bytes")) and not hasattr(item, "size"):
                out.append(("missing_image_file", f"image {k} is neither a path nor bytes: {item!r:.60}"))
    if subset is not None:
        for i, m in enumerate(messages):
            if m["role"] == "assistant" and isinstance(m["content"], str) and not subset.pattern.search(m["content"]):
                out.append(("missing_tags", f"assistant message {i} lacks {subset.tags} (subset {subset.name})"))
    return out


def validate_records(
    records: Iterable[Any],
    file: str,
    subset: Subset | None = None,
    base_dir: str | os.PathLike | None = None,
    check_images: bool = True,
) -> list[Problem]:
    """Every problem of every record, by ``file`` and index."""
    return [
        Problem(file, index, kind, message)
        for index, record in enumerate(records)
        for kind, message in record_problems(record, subset, base_dir, check_images)
    ]


def read_records(path: str | os.PathLike) -> list[Any]:
    """A JSON list or JSON-lines file of records; a parse error names the file (and line)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SFTDataError([Problem(str(path), line_no - 1, "bad_json", str(exc))]) from None
        return records
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SFTDataError([Problem(str(path), -1, "bad_json", str(exc))]) from None
    if not isinstance(records, list):
        raise SFTDataError([Problem(str(path), -1, "bad_json", "the file must hold a JSON list of records")])
    return records


def validate_data_dir(data_dir: str | os.PathLike, subsets: Iterable[str] | None = None) -> list[Problem]:
    """Check the subsets listed in ``data_dir/dataset_info.json`` (all of ours by default) record by record."""
    data_dir = Path(data_dir)
    info_file = data_dir / "dataset_info.json"
    if not info_file.is_file():
        return [Problem(str(info_file), -1, "missing_file", "dataset_info.json not found")]
    info = json.loads(info_file.read_text(encoding="utf-8"))
    problems: list[Problem] = []
    for name in subsets or SUBSETS:
        if name not in info:
            problems.append(Problem(str(info_file), -1, "missing_subset", f"no entry for {name!r}"))
            continue
        file = data_dir / info[name]["file_name"]
        if not file.is_file():
            problems.append(Problem(str(file), -1, "missing_file", f"the file of subset {name!r} does not exist"))
            continue
        problems += validate_records(read_records(file), str(file), SUBSETS.get(name), data_dir)
    return problems


# ----------------------------------------------------------------------------- writing / conversion


def _image_bytes(item: Any) -> tuple[bytes | None, str | None]:
    """(bytes, source path) of an image entry: PIL images are encoded as PNG."""
    if hasattr(item, "save"):
        buffer = io.BytesIO()
        item.save(buffer, format="PNG")
        return buffer.getvalue(), None
    if isinstance(item, (bytes, bytearray)):
        return bytes(item), None
    if isinstance(item, dict):
        if item.get("bytes"):
            return bytes(item["bytes"]), item.get("path")
        return None, item.get("path")
    if isinstance(item, str):
        return None, item
    raise ValueError(f"unsupported image value of type {type(item).__name__}")


def classify(record: Any) -> str:
    """The subset a record belongs to, from its content: no image → text; a description tag → see-think."""
    messages, images = to_messages(record)
    if not images:
        return "caption_reasoners_text"
    answer = " ".join(str(m["content"]) for m in messages if m["role"] == "assistant")
    return "vision_see_think" if "<description>" in answer else "vision_reasoner"


def subset_of_file(name: str) -> str | None:
    """Our subset name for a file of the release ("A-vision_see_think.json", "caption_reasoners(text)"...)."""
    lowered = name.lower()
    if "see_think" in lowered or "seethink" in lowered:
        return "vision_see_think"
    if "caption" in lowered or "text" in lowered:
        return "caption_reasoners_text"
    if "reasoner" in lowered:
        return "vision_reasoner"
    return None


def write_subset(
    records: Iterable[Any], out_dir: str | os.PathLike, subset: str, source_dir: str | os.PathLike | None = None
) -> int:
    """Write one subset in LLaMA-Factory's layout, images as files under ``images/<subset>/``; returns rows.

    Image bytes (or PIL images) are written out; image paths are copied from ``source_dir`` so the output
    folder is self-contained and its records use paths relative to it.
    """
    import shutil

    spec = SUBSETS[subset]
    out_dir = Path(out_dir)
    image_dir = out_dir / "images" / subset
    rows = []
    for index, record in enumerate(records):
        messages, images = to_messages(record)
        if spec.formatting == "alpaca":
            system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
            turns = messages[1:] if system else messages
            if len(turns) != 2:
                raise SFTDataError([Problem(subset, index, "roles_not_alternating", "alpaca needs one user turn")])
            row: dict[str, Any] = {"instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}
            if system:
                row["system"] = system
            rows.append(row)
            continue
        paths = []
        for k, item in enumerate(images):
            data, source = _image_bytes(item)
            suffix = Path(source).suffix if source and Path(source).suffix else ".png"
            target = image_dir / f"{index:06d}_{k}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if data is not None:
                target.write_bytes(data)
            else:
                src = Path(source) if os.path.isabs(source) or source_dir is None else Path(source_dir) / source
                shutil.copyfile(src, target) if src.is_file() else None  # a missing file is reported by validation
            paths.append(target.relative_to(out_dir).as_posix())
        rows.append({"messages": messages, "images": paths})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / spec.file_name).write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(rows)


def write_dataset_info(out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir) / "dataset_info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset_info(), indent=2) + "\n", encoding="utf-8")
    return path


def _iter_source_rows(source_dir: Path) -> Iterator[tuple[str, Path, Any]]:
    """(file subset or '', file, row) for every row of every .json/.jsonl/.parquet file under ``source_dir``."""
    for path in sorted(source_dir.rglob("*")):
        if path.suffix not in (".json", ".jsonl", ".parquet") or path.name == "dataset_info.json":
            continue
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows: list[Any] = pq.read_table(path).to_pylist()
        else:
            rows = read_records(path)
        for row in rows:
            yield subset_of_file(path.stem) or "", path, row


def convert_local(source_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """Convert a local copy of the cold-start set (the release's JSON files, or parquet shards of the hub
    dataset) into our layout. A row's subset comes from a ``subset`` column, else its file name, else its
    content (:func:`classify`). Returns rows per subset."""
    source_dir = Path(source_dir)
    grouped: dict[str, list[Any]] = {name: [] for name in SUBSETS}
    for file_subset, path, row in _iter_source_rows(source_dir):
        subset = (row.get("subset") if isinstance(row, dict) else None) or file_subset
        if subset not in SUBSETS:
            try:
                subset = classify(row)
            except ValueError as exc:
                raise SFTDataError([Problem(str(path), -1, "bad_record", str(exc))]) from None
        grouped[subset].append(row)
    if not any(grouped.values()):
        raise SFTDataError([Problem(str(source_dir), -1, "missing_file", "no .json/.jsonl/.parquet records found")])
    counts = {name: write_subset(rows, out_dir, name, source_dir) for name, rows in grouped.items()}
    write_dataset_info(out_dir)
    return counts


def download_cold_start(
    out_dir: str | os.PathLike, repo_id: str = DEFAULT_REPO_ID, revision: str | None = None
) -> dict[str, int]:
    """Fetch the cold-start set from the Hugging Face hub (a dataset repository) and convert it."""
    from huggingface_hub import snapshot_download

    out_dir = Path(out_dir)
    raw = snapshot_download(
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        local_dir=out_dir / "raw",
        allow_patterns=["*.json", "*.jsonl", "*.parquet", "*.png", "*.jpg", "*.jpeg", "*.webp"],
    )
    return convert_local(raw, out_dir)


# ----------------------------------------------------------------------------- the tiny synthetic copy

TEXT_INSTRUCTION = (
    "You are provided a text description of a problem and a question. Determine the answer to the question "
    "based on the text description. First provide an internal step-by-step reasoning within <think> </think> "
    "tags, then provide a single word or phrase answer in \\boxed{}."
)


def make_tiny_sft_set(
    tiny_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    rows: int | None = None,
    format_prompt: str | None = None,
    seed: int = 0,
) -> Path:
    """A miniature cold-start set from the tiny synthetic data (``verl.tiny``), all three subsets.

    Each synthetic row gives a see-think answer (its recorded description, a short reasoning, the answer), a
    reasoning-only answer on the same image, and a text-only caption+question record. ``format_prompt`` (a
    Jinja file, e.g. the RL run's see-think prompt) is rendered around the question so SFT and RL agree.
    """
    import pyarrow.parquet as pq

    from .dataset import load_format_prompt

    tiny_dir, out_dir = Path(tiny_dir), Path(out_dir)
    source = pq.read_table(tiny_dir / "data" / "train.parquet").to_pylist()
    source = source[:rows] if rows else source
    template = load_format_prompt(format_prompt)
    rng = random.Random(seed)
    see_think, reasoner, text = [], [], []
    for row in source:
        question = row["problem"].replace(IMAGE_PLACEHOLDER, "").strip()
        prompt = template.render(content=question) if template is not None else question
        answer, description = row["answer"], row["description"]
        think = rng.choice([f"From the image, the answer is {answer}.", f"I look carefully; the answer is {answer}."])
        image = {"bytes": row["images"][0]["bytes"], "path": None}
        see_think.append(
            {
                "messages": [
                    {"role": "user", "content": IMAGE_PLACEHOLDER + prompt},
                    {
                        "role": "assistant",
                        "content": f"<description>{description}</description> <think>{think}</think> "
                        f"\\boxed{{{answer}}}",
                    },
                ],
                "images": [image],
            }
        )
        reasoner.append(
            {
                "messages": [
                    {"role": "user", "content": IMAGE_PLACEHOLDER + question},
                    {"role": "assistant", "content": f"<think>{think}</think> \\boxed{{{answer}}}"},
                ],
                "images": [image],
            }
        )
        text.append(
            {
                "instruction": f"Text description: {description}\nQuestion: {question}\n{TEXT_INSTRUCTION}",
                "input": "",
                "output": f"<think>\nThe description says: {description} So the answer is {answer}.\n</think>\n"
                f"\\boxed{{{answer}}}",
            }
        )
    write_subset(see_think, out_dir, "vision_see_think")
    write_subset(reasoner, out_dir, "vision_reasoner")
    write_subset(text, out_dir, "caption_reasoners_text")
    write_dataset_info(out_dir)
    return out_dir
