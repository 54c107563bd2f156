"""Answer extraction: boxes, tags, answer lines and option letters."""

from __future__ import annotations

import pytest

from verl.rewards.extract import (
    Choice,
    extract_answer,
    extract_answer_line,
    extract_boxed,
    extract_choice,
    extract_tag,
    parse_choice,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}", "5"),
        ("\\boxed{1} then \\boxed{2}", "2"),  # the last box wins
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed{ x + 1 }", "x + 1"),  # inner spaces kept, outer stripped
        ("\\boxed{a  b}", "a  b"),  # never rewritten inside
        ("\\boxed{}", ""),  # empty box: empty string (there, but empty)
        ("\\boxed{   }", ""),
        ("\\fbox{7}", "7"),
        ("\\boxed {7}", "7"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not close the box
        ("\\boxed{3} and an unclosed \\boxed{4", "3"),  # an unclosed later box is ignored
        ("\\boxed{4", None),
        ("no box here", None),
        ("", None),
        (None, None),
        ("\\boxed{\\text{red}}", "\\text{red}"),
        ("$\\boxed{-2}$.", "-2"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_tag_takes_the_last_closed_pair():
    assert extract_tag("<answer> 5 </answer>", "answer") == "5"
    assert extract_tag("<answer>1</answer> <answer>2</answer>", "answer") == "2"
    assert extract_tag("<answer>\nmulti\nline\n</answer>", "answer") == "multi\nline"
    assert extract_tag("<answer></answer>", "answer") == ""
    assert extract_tag("<answer>open", "answer") is None
    assert extract_tag(None, "answer") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 12", "12"),
        ("The answer is 12.", "12"),
        ("the answer is (B)", "(B)"),
        ("Final answer: \\frac{1}{2}", "\\frac{1}{2}"),
        ("**Answer:** 3.5.", "3.5"),
        ("Answer: 3\nmore text\nAnswer: 4", "4"),
        ("no such line", None),
        ("Answer:   ", None),
    ],
)
def test_extract_answer_line(text, expected):
    assert extract_answer_line(text) == expected


def test_extract_answer_priority():
    assert extract_answer("<answer>1</answer> \\boxed{2} Answer: 3") == "2"  # box first
    assert extract_answer("<answer>1</answer> Answer: 3") == "1"  # then the tag
    assert extract_answer("so the answer is 3") == "3"  # then the line
    assert extract_answer("\\boxed{} Answer: 3") == ""  # an empty box is an (empty) answer
    assert extract_answer("nothing") is None
    assert extract_answer("") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", Choice("B", "")),
        ("b", Choice("B", "")),
        ("(B)", Choice("B", "")),
        ("(b).", Choice("B", "")),
        ("B.", Choice("B", "")),
        ("B)", Choice("B", "")),
        ("B:", Choice("B", "")),
        ("B) 12", Choice("B", "12")),
        ("B. 12 apples", Choice("B", "12 apples")),
        ("B: twelve", Choice("B", "twelve")),
        ("(B) 12", Choice("B", "12")),
        ("(B)12", Choice("B", "12")),
        ("[C] red", Choice("C", "red")),
        ("Option D", Choice("D", "")),
        ("option (d) blue", Choice("D", "blue")),
        ("a cat", None),  # not option A
        ("A cat", None),
        ("AB", None),
        ("12", None),
        ("B12", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>...</think> \\boxed{C}", "C"),
        ("\\boxed{(b) 12}", "B"),
        ("I think the answer is (D).", "D"),
        ("The answer is B", "B"),
        ("Looking at (A) and (C), I pick (C)", "C"),
        ("A.\nbecause", "A"),
        ("A cat sits on the mat", None),  # an article is not an option
        ("\\boxed{12}", None),
        ("", None),
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected
