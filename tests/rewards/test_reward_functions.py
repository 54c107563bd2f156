"""Format checks and the reward functions on well-formed, malformed, empty and adversarial responses."""

from __future__ import annotations

import logging

import pytest

from verl.rewards import functions as rf
from verl.rewards.format import MAX_TRAILING_CHARS, cot_format_ok, extract_description, seethink_format_ok

DESC = "<description>A red square and two blue circles on a white background.</description>"
THINK = "<think>The circles are blue; I count them: one, two.</think>"
GOOD = f"{DESC}\n{THINK}\nThe answer is \\boxed{{2}}."
GOOD_COT = f"{THINK}\n\\boxed{{2}}"
BLIND_RIGHT = "<think>The description mentions two blue circles.</think> \\boxed{2}"
BLIND_WRONG = "<think>Probably three.</think> \\boxed{3}"


def _item(response, truth="2", blind=None, **extra):
    return {"response": response, "ground_truth": truth, "response_length": len(response or ""),
            "question": "<image>How many blue circles?", "blind_answer": blind, **extra}  # fmt: skip


# ------------------------------------------------------------------------------------------------ format checks


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (GOOD, True),
        (f"{DESC}{THINK}\\boxed{{2}}", True),  # no whitespace at all
        (f"\n\n  {DESC}\n\n{THINK}\n\n\\boxed{{2}}\n\n", True),  # whitespace and newlines around tags
        (f"{DESC}\n<think>\nstep 1\n\nstep 2\n</think>\n\\boxed{{2}}", True),
        (f"{DESC} {THINK} so \\boxed{{2}}. This is the final answer.", True),  # short trailing text
        (f"{DESC} {THINK} \\boxed{{\\frac{{1}} {{2}}}}", True),  # spaces inside the formula are fine
        (f"{DESC} {THINK} \\boxed{{2}}" + "x" * MAX_TRAILING_CHARS, True),
        (f"{DESC} {THINK} \\boxed{{2}}" + "x" * (MAX_TRAILING_CHARS + 1), False),  # long tail after the box
        (f"{DESC} {THINK} \\boxed{{2}} <think>more</think>", False),  # tags after the box
        (f"{THINK} {DESC} \\boxed{{2}}", False),  # wrong order
        (f"{THINK} \\boxed{{2}}", False),  # description missing
        (f"<description>  </description> {THINK} \\boxed{{2}}", False),  # empty description
        (f"{DESC} <think> </think> \\boxed{{2}}", False),  # empty think
        (f"{DESC} {THINK} \\boxed{{}}", False),  # empty box
        (f"{DESC} {THINK} \\boxed{{2", False),  # unclosed box
        (f"{DESC} {THINK} the answer is 2", False),  # no box
        (f"{DESC} <think>so \\boxed{{2}}</think>", False),  # box only inside the reasoning
        (f"Sure! {DESC} {THINK} \\boxed{{2}}", False),  # text before the description
        (f"{DESC} chatter {THINK} \\boxed{{2}}", False),  # text between description and think
        (f"{DESC} {DESC} {THINK} \\boxed{{2}}", False),  # repeated description
        (f"{DESC} {THINK} {THINK} \\boxed{{2}}", False),  # repeated think
        (f"<description>A red square. {THINK} \\boxed{{2}}", False),  # unclosed description
        ("", False),
        (None, False),
    ],
)
def test_seethink_format(response, expected):
    assert seethink_format_ok(response) is expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (GOOD_COT, True),
        (f"  {THINK}\n\nSo the answer is \\boxed{{2}}.\n", True),
        (f"{THINK} \\boxed{{x + 1}}", True),
        (BLIND_RIGHT, True),
        (GOOD, False),  # a description is not part of the CoT format
        ("\\boxed{2}", False),  # no think
        (f"{THINK}", False),  # no box
        ("<think></think> \\boxed{2}", False),
        (f"preamble {THINK} \\boxed{{2}}", False),
        (f"{THINK} \\boxed{{2}}" + " trailing" * 20, False),
        ("", False),
    ],
)
def test_cot_format(response, expected):
    assert cot_format_ok(response) is expected


def test_extract_description():
    assert extract_description(GOOD) == "A red square and two blue circles on a white background."
    assert extract_description("<description>\n  two  circles \n</description>") == "two  circles"  # inner kept
    assert extract_description("<description>first</description> <description>second</description>") == "first"
    assert extract_description(GOOD_COT) is None  # missing: None, never the whole response
    assert extract_description("<description>   </description> <think>x</think>") is None  # empty: None
    assert extract_description("<description>unclosed") is None
    assert extract_description("") is None
    assert extract_description(None) is None


# ------------------------------------------------------------------------------------------------ CoT / see-think


def test_visionr1_cot_reward():
    inputs = [
        _item(GOOD_COT),  # right, formatted: 0.9 * 1 + 0.1 * 1
        _item("\\boxed{2}"),  # right, no think: 0.9
        _item(f"{THINK} \\boxed{{3}}"),  # formatted, wrong: 0.1
        _item(GOOD),  # right but a see-think response: CoT format 0 → 0.9
        _item(""),  # empty
        _item(None),
        _item(f"{THINK} \\boxed{{}}"),  # empty box: no accuracy, no format
    ]
    scores = rf.visionr1_cot_reward(inputs, format_weight=0.1)
    assert [s["overall"] for s in scores] == pytest.approx([1.0, 0.9, 0.1, 0.9, 0.0, 0.0, 0.0])
    assert [s["format"] for s in scores] == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert [s["accuracy"] for s in scores] == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert all(isinstance(v, float) for s in scores for v in s.values())


def test_seethink_reward_has_no_perception():
    scores = rf.seethink_reward([_item(GOOD), _item(GOOD_COT), _item(f"{DESC} {THINK} \\boxed{{5}}")], 0.2)
    assert [s["overall"] for s in scores] == pytest.approx([1.0, 0.8, 0.2])
    assert all(set(s) == {"overall", "accuracy", "format"} for s in scores)


def test_accuracy_uses_the_last_box():
    inputs = [
        _item(f"{DESC} <think>maybe \\boxed{{2}}</think> \\boxed{{3}}"),
        _item(f"{DESC} {THINK} \\boxed{{(B) 2}}", "B"),
    ]
    assert [s["accuracy"] for s in rf.seethink_reward(inputs)] == [0.0, 1.0]


# ------------------------------------------------------------------------------------------------ self-reward


def test_self_reward_well_formed():
    (score,) = rf.self_reward([_item(GOOD, blind=BLIND_RIGHT)], format_weight=0.1)
    assert score == {
        "overall": pytest.approx(2.0),  # 0.9 * 1 + 0.1 * 1 + 1
        "accuracy": 1.0,
        "format": 1.0,
        "perception": 1.0,
        "perception_format": 1.0,
        "description_missing": 0.0,
        "description_misplaced": 0.0,
        "description_leak": 0.0,
        "leak_guarded": 0.0,
    }


def test_self_reward_components():
    inputs = [
        _item(GOOD, blind=BLIND_WRONG),  # blind answer wrong: 1.0
        _item(GOOD, blind="\\boxed{2}"),  # right but unformatted blind answer: perception 1, its format 0
        _item(f"{DESC} {THINK} \\boxed{{5}}", blind=BLIND_RIGHT),  # wrong answer, good perception: 0.1 + 1
        _item(GOOD, blind=None),  # the hop did not run: perception 0
        _item(GOOD, blind=[BLIND_RIGHT, BLIND_WRONG]),  # two blind samples: mean 0.5
        _item(GOOD, blind=[BLIND_RIGHT, None]),  # a failed sample counts 0
    ]
    scores = rf.self_reward(inputs)
    assert [s["overall"] for s in scores] == pytest.approx([1.0, 2.0, 1.1, 1.0, 1.5, 1.5])
    assert [s["perception"] for s in scores] == [0.0, 1.0, 1.0, 0.0, 0.5, 0.5]
    assert [s["perception_format"] for s in scores] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.5]
    assert all(s["description_missing"] == 0.0 for s in scores)


def test_self_reward_never_grades_the_whole_response_when_the_description_is_missing():
    # The reference implementation sent the whole response (answer included) to the second hop, so a response
    # that skipped the description still earned perception = accuracy. Here it earns 0 and is counted,
    # whatever blind answer is passed in.
    no_description = f"{THINK} \\boxed{{2}}"
    empty_description = f"<description> </description> {THINK} \\boxed{{2}}"
    scores = rf.self_reward(
        [
            _item(no_description, blind=None),
            _item(no_description, blind=BLIND_RIGHT),  # even if a caller wrongly ran the hop
            _item(empty_description, blind=None),
            _item(empty_description, blind=no_description),
        ]
    )
    for s in scores:
        assert s["perception"] == 0.0
        assert s["perception_format"] == 0.0
        assert s["description_missing"] == 1.0
        assert s["accuracy"] == 1.0 and s["format"] == 0.0
        assert s["overall"] == pytest.approx(0.9)


def test_self_reward_empty_and_malformed_responses():
    scores = rf.self_reward([_item(""), _item(None), _item("garbage </description> <think>"), _item("\\boxed{2}")])
    for s in scores:
        assert s["perception"] == 0.0 and s["format"] == 0.0 and s["description_missing"] == 1.0
    assert [s["overall"] for s in scores] == pytest.approx([0.0, 0.0, 0.0, 0.9])


def test_leak_guard_zeroes_a_description_that_states_the_answer():
    leaking = f"<description>Two blue circles, so the answer is \\boxed{{2}}.</description> {THINK} \\boxed{{2}}"
    naming = "<description>There are 2 blue circles and a red square.</description> " + f"{THINK} \\boxed{{2}}"
    clean = GOOD
    inputs = [_item(r, blind=BLIND_RIGHT) for r in (leaking, naming, clean)]
    guarded = rf.self_reward(inputs, leak_guard=True)
    # A boxed answer in the description is refused whatever leak_guard says (description_leak); leak_guard adds
    # the mention of the answer in plain words.
    assert [s["leak_guarded"] for s in guarded] == [0.0, 1.0, 0.0]
    assert [s["description_leak"] for s in guarded] == [1.0, 0.0, 0.0]
    assert [s["perception"] for s in guarded] == [0.0, 0.0, 1.0]
    assert [s["overall"] for s in guarded] == pytest.approx([1.0, 1.0, 2.0])
    unguarded = rf.self_reward(inputs)  # off by default: a faithful description may name a count
    assert [s["perception"] for s in unguarded] == [0.0, 1.0, 1.0]
    assert all(s["leak_guarded"] == 0.0 for s in unguarded)


@pytest.mark.parametrize(
    ("description", "truth", "leaks"),
    [
        ("Two circles. \\boxed{2}", "7", True),  # any box is a leak
        ("There are 2 dogs.", "2", True),
        ("There are 12 dogs.", "2", False),  # not a standalone token
        ("A ruler reads 2.5 cm.", "2", False),
        ("Label x2 on the axis.", "2", False),
        ("Scores: 2, 3 and 4.", "2", True),
        ("A red square and a blue circle.", "A", False),  # the article is not option A
        ("Option A shows a square.", "A", True),
        ("Choices: (A) square, (B) circle.", "B", True),
        ("The answer is B since ...", "B", True),
        ("Bob holds a ball.", "B", False),
        ("A reddish square.", "red", False),
        ("A Red square.", "red", True),
        ("A blue  circle sits left.", "blue circle", True),  # whitespace-flexible phrase
        ("It is 50% full.", "50%", True),
        ("It is 150% full.", "50%", False),
        ("Some text.", "", False),
        ("", "2", False),
    ],
)
def test_description_leaks(description, truth, leaks):
    assert rf.description_leaks(description, truth) is leaks


def test_adversarial_description_tricks():
    two_descriptions = f"<description>x</description> <description>y</description> {THINK} \\boxed{{2}}"
    answer_in_description_only = f"<description>\\boxed{{2}}</description> {THINK} \\boxed{{3}}"
    scores = rf.self_reward(
        [_item(two_descriptions, blind=BLIND_RIGHT), _item(answer_in_description_only, blind=BLIND_RIGHT)],
        leak_guard=True,
    )
    assert scores[0]["format"] == 0.0  # repeated tags break the format
    assert scores[1]["accuracy"] == 0.0  # the last box (3) is the answer, not the one in the description
    assert scores[1]["description_leak"] == 1.0 and scores[1]["perception"] == 0.0


# The reward hacks of issue 16: each earned the maximum overall reward before; none earns perception now.
HACKS = {
    "answer boxed in the description": "<description>Two blue circles... final answer \\boxed{2}</description> "
    "<think>so 2</think> \\boxed{2}",
    "fbox in the description": "<description>Two circles: \\fbox{2}</description> <think>so 2</think> \\boxed{2}",
    "description after the reasoning": "<think>I count two circles.</think> <description>2 is correct</description> "
    "\\boxed{2}",
    "description inside the reasoning": "<think>Two. <description>two blue circles</description></think> \\boxed{2}",
    "text before the description": "The answer is 2. <description>two blue circles</description> "
    "<think>so 2</think> \\boxed{2}",
    "think inside the description": "<description><think>it is 2</think> two circles</description> \\boxed{2}",
}


@pytest.mark.parametrize("response", list(HACKS.values()), ids=list(HACKS))
def test_each_reward_hack_earns_no_perception(response):
    (score,) = rf.self_reward([_item(response, blind=BLIND_RIGHT)])
    assert score["perception"] == 0.0
    assert score["description_leak"] + score["description_misplaced"] == 1.0
    assert score["overall"] <= 1.0  # accuracy and format only: at most (1 - w) + w
    assert extract_description(response) is None  # so the hop never sends it either


def test_an_opening_description_without_a_box_still_earns_perception():
    (score,) = rf.self_reward([_item(f"  \n{DESC}\n{THINK} \\boxed{{2}}", blind=BLIND_RIGHT)])
    assert score["perception"] == 1.0 and score["description_leak"] == score["description_misplaced"] == 0.0


@pytest.mark.parametrize(
    ("blind", "right"),
    [
        ("The answer is 2", 1.0),  # no box: the final statement is read, as validation reads it
        ("Two circles. Answer: 2.", 1.0),
        ("<answer>2</answer>", 1.0),
        ("\\boxed{3} but the answer is 2", 0.0),  # the box wins over a later statement
        ("I cannot tell", 0.0),
        (None, 0.0),
    ],
)
def test_blind_answers_are_graded_with_the_validation_fallbacks(blind, right):
    assert rf.grade_blind_answer(blind, "2") == right
    (score,) = rf.self_reward([_item(GOOD, blind=blind)])
    assert score["perception"] == right


# ------------------------------------------------------------------------------------------------ validation


def test_validation_reward_is_accuracy_only():
    inputs = [
        _item(GOOD),
        _item("Answer: 2"),  # no box: validation still reads the answer line
        _item("<answer>2</answer>"),
        _item("\\boxed{}"),
        _item("I don't know"),
        _item(""),
    ]
    scores = rf.validation_reward(inputs, format_weight=0.1)  # the weight is ignored
    assert [s["overall"] for s in scores] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert all(set(s) == {"overall", "accuracy"} for s in scores)


# ------------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("fn", [rf.visionr1_cot_reward, rf.seethink_reward, rf.self_reward, rf.validation_reward])
def test_argument_checks(fn, caplog):
    with pytest.raises(ValueError, match="format_weight"):
        fn([_item(GOOD)], format_weight=1.5)
    with pytest.raises(KeyError, match="ground_truth"):
        fn([{"response": GOOD}])
    assert fn([]) == []
    rf._warned_kwargs.discard("not_a_real_option")
    with caplog.at_level(logging.WARNING, logger="verl.rewards.functions"):
        fn([_item(GOOD)], not_a_real_option=1)
    assert "not_a_real_option" in caplog.text


def test_format_weight_zero_and_one():
    assert rf.visionr1_cot_reward([_item(f"{THINK} \\boxed{{3}}")], format_weight=0.0)[0]["overall"] == 0.0
    assert rf.visionr1_cot_reward([_item(f"{THINK} \\boxed{{3}}")], format_weight=1.0)[0]["overall"] == 1.0
