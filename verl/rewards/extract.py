"""Pull the final answer out of a model response.

Conventions: ``None`` means "not there" (no box, no tag, no answer line); an empty string means "there but
empty" (``\\boxed{}``, ``<answer> </answer>``). Extraction never rewrites what is inside (spaces in formulas
stay as written); only the surrounding whitespace is stripped.
"""

from __future__ import annotations

import re

__all__ = [
    "Choice",
    "extract_answer",
    "extract_answer_line",
    "extract_boxed",
    "extract_choice",
    "extract_tag",
    "find_closing_brace",
    "parse_choice",
]

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")


def find_closing_brace(text: str, open_pos: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_pos`` (escaped ``\\{``/``\\}`` ignored), or None."""
    depth = 0
    i = open_pos
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str | None) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces included.

    ``"... \\boxed{1} ... \\boxed{\\frac{1}{2}}"`` gives ``"\\frac{1}{2}"``; ``\\boxed{}`` gives ``""``; no box,
    or only an unclosed one, gives None."""
    if not text:
        return None
    found: str | None = None
    for match in _BOX_START.finditer(text):
        end = find_closing_brace(text, match.end() - 1)
        if end is not None:
            found = text[match.end() : end].strip()
    return found


def extract_tag(text: str | None, tag: str) -> str | None:
    """Content of the last ``<tag>...</tag>`` pair (stripped); None when there is no closed pair."""
    if not text:
        return None
    matches = re.findall(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, flags=re.DOTALL)
    return matches[-1].strip() if matches else None


_ANSWER_LINE = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:)\s*:?\s*(?P<answer>[^\n]+)",
    flags=re.IGNORECASE,
)


def extract_answer_line(text: str | None) -> str | None:
    """The answer stated on the last "Answer: X" / "The answer is X" / "Final answer: X" line (trailing period
    and markdown emphasis removed); None when there is no such line."""
    if not text:
        return None
    matches = list(_ANSWER_LINE.finditer(text))
    if not matches:
        return None
    answer = matches[-1].group("answer").strip().strip("*").strip()
    if answer.endswith("."):
        answer = answer[:-1].rstrip()
    return answer or None


def extract_answer(text: str | None) -> str | None:
    """The final answer, looked for in order: the last ``\\boxed{}``, the last ``<answer>...</answer>``, the last
    "Answer: X" line. The first kind found wins, even when empty (an empty box is an empty answer)."""
    for found in (extract_boxed(text), extract_tag(text, "answer"), extract_answer_line(text)):
        if found is not None:
            return found
    return None


class Choice:
    """A multiple-choice answer: the option ``letter`` (upper case) and the option text after it, if any."""

    __slots__ = ("letter", "text")

    def __init__(self, letter: str, text: str) -> None:
        self.letter = letter.upper()
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and (self.letter, self.text) == (other.letter, other.text)

    def __repr__(self) -> str:
        return f"Choice({self.letter!r}, {self.text!r})"


_CHOICE_PATTERNS = (
    re.compile(r"^(?:option|choice)\s*\(?([A-Za-z])\)?(?:\s*[.:)]?\s+(.*)|[.:)]?)$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\(([A-Za-z])\)(?:\s*[.:]?\s*(.*))?$", re.DOTALL),  # (B) / (B) 12 / (b).
    re.compile(r"^\[([A-Za-z])\](?:\s*[.:]?\s*(.*))?$", re.DOTALL),  # [B] 12
    re.compile(r"^([A-Za-z])[.:)](?:\s+(.*))?$", re.DOTALL),  # B. / B) 12 / B: 12
    re.compile(r"^([A-Za-z])$"),  # B
)


def parse_choice(text: str | None) -> Choice | None:
    """Read ``text`` as a whole multiple-choice answer: ``B``, ``(B)``, ``B.``, ``B) 12``, ``B: 12``,
    ``(B) 12``, ``[B]``, ``Option B``. Lower-case letters count (``(b)``), but a letter must be delimited: ``a
    cat`` is not option A. None when the text is not of that shape."""
    if not text:
        return None
    text = text.strip()
    for pattern in _CHOICE_PATTERNS:
        match = pattern.match(text)
        if match:
            rest = match.group(2) if match.lastindex and match.lastindex >= 2 else None
            return Choice(match.group(1), (rest or "").strip())
    return None


_CHOICE_IN_TEXT = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\(?([A-Z])\)?(?![A-Za-z])|\(([A-Z])\)|^\s*([A-Z])[.:)](?:\s|$)",
    flags=re.MULTILINE,
)


def extract_choice(text: str | None) -> str | None:
    """The option letter a free-form response commits to (upper case): its boxed/tagged answer when that is a
    choice, else the last "answer is (B)" / "(B)" / line-initial "B." mention. None when no letter is found."""
    if not text:
        return None
    answer = extract_answer(text)
    choice = parse_choice(answer) if answer else None
    if choice is not None:
        return choice.letter
    matches = list(_CHOICE_IN_TEXT.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    return next(group for group in last.groups() if group).upper()
