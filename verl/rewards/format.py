"""Format checks for the two output formats, and the description extractor used by the self-reward hop.

- chain of thought (Vision-R1 style): ``<think>reasoning</think> ... \\boxed{answer}``;
- see-think (Vision-SR1): ``<description>...</description> <think>...</think> ... \\boxed{answer}``.

A response has the format when its parts come in that order, each part non-empty, with:
whitespace (any amount, newlines included) before the first tag and between ``</description>`` and
``<think>``; any text without tags between ``</think>`` and the box ("The answer is \\boxed{5}"); and at most
``MAX_TRAILING_CHARS`` characters of tag-free text after the box (a closing period or a short remark).
Each tag appears exactly once. The reference implementation's strict full match, which gave format 0 for any
trailing character, is deliberately not reproduced. The response text is only matched, never rewritten.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .extract import find_closing_brace

__all__ = [
    "MAX_TRAILING_CHARS",
    "DescriptionCheck",
    "check_description",
    "cot_format_ok",
    "extract_description",
    "seethink_format_ok",
]

MAX_TRAILING_CHARS = 64
"""Tag-free text allowed after the final ``\\boxed{}`` (e.g. "." or "This is the final answer.")."""

_TAG = re.compile(r"</?\s*(?:think|description|answer)\s*>", re.IGNORECASE)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _ends_with_boxed_answer(tail: str) -> bool:
    """``tail`` (the text after ``</think>``) holds no tags and ends with a non-empty box followed by at most
    ``MAX_TRAILING_CHARS`` characters."""
    if _TAG.search(tail):
        return False
    starts = list(_BOX_START.finditer(tail))
    if not starts:
        return False
    last = starts[-1]
    end = find_closing_brace(tail, last.end() - 1)
    if end is None or not tail[last.end() : end].strip():
        return False
    return len(tail[end + 1 :].strip()) <= MAX_TRAILING_CHARS


def _single_block(text: str, tag: str) -> tuple[int, int, str] | None:
    """(start, end, content) of the only ``<tag>...</tag>`` in ``text``; None if absent, repeated or unclosed."""
    opens = list(re.finditer(rf"<{tag}>", text))
    closes = list(re.finditer(rf"</{tag}>", text))
    if len(opens) != 1 or len(closes) != 1 or closes[0].start() < opens[0].end():
        return None
    return opens[0].start(), closes[0].end(), text[opens[0].end() : closes[0].start()]


def cot_format_ok(response: str | None) -> bool:
    """``<think>non-empty</think> ... \\boxed{non-empty}`` in that order (rules in the module docstring)."""
    if not response or "<description>" in response or "</description>" in response:
        return False
    think = _single_block(response, "think")
    if think is None or not think[2].strip() or response[: think[0]].strip():
        return False
    return _ends_with_boxed_answer(response[think[1] :])


def seethink_format_ok(response: str | None) -> bool:
    """``<description>non-empty</description> <think>non-empty</think> ... \\boxed{non-empty}`` in that order."""
    if not response:
        return False
    description = _single_block(response, "description")
    think = _single_block(response, "think")
    if description is None or think is None:
        return False
    if not description[2].strip() or not think[2].strip():
        return False
    if think[0] < description[1] or response[: description[0]].strip() or response[description[1] : think[0]].strip():
        return False  # something other than whitespace before the description or between the parts (or wrong order)
    return _ends_with_boxed_answer(response[think[1] :])


class DescriptionCheck(NamedTuple):
    """Whether a response's description may earn the perception reward, and why not.

    ``status`` is ``ok`` (``text`` is the description), ``missing`` (no closed, non-empty description),
    ``misplaced`` (a description exists but does not open the response, or holds ``<think>``: it came after or
    inside the reasoning) or ``leak`` (the opening description holds a ``\\boxed{}``/``\\fbox{}``: the answer
    copied into it)."""

    text: str | None
    status: str


def check_description(response: str | None) -> DescriptionCheck:
    """The description that opens ``response`` (before ``<think>``) and holds no boxed answer.

    Only such a description earns perception: otherwise the cheapest way to the maximum reward is to write the
    answer into the description, or to describe the image after having reasoned to the answer."""
    if not response:
        return DescriptionCheck(None, "missing")
    match = re.search(r"<description>(.*?)</description>", response, flags=re.DOTALL)
    if match is None or not match.group(1).strip():
        return DescriptionCheck(None, "missing")
    text = match.group(1).strip()
    if response[: match.start()].strip() or re.search(r"</?\s*think\s*>", text, flags=re.IGNORECASE):
        return DescriptionCheck(None, "misplaced")
    if _BOX_START.search(text):
        return DescriptionCheck(None, "leak")
    return DescriptionCheck(text, "ok")


def extract_description(response: str | None) -> str | None:
    """Text of the description that may earn perception (``check_description``), stripped; None when there is
    none, it is empty, misplaced or holds a boxed answer. Never the whole response: a response without a
    usable description gets no perception reward."""
    return check_description(response).text
