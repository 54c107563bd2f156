"""``grade_answer``: a table of (prediction, ground truth, expected) cases, and the time bound in any thread."""

from __future__ import annotations

import contextlib
import random
import signal
import string
import threading
import time

import pytest

from verl.rewards import grader
from verl.rewards.extract import extract_boxed
from verl.rewards.grader import grade_answer, grader_stats, normalize_answer

T, F = True, False

CASES = [
    # --- identical / case / whitespace / punctuation
    ("5", "5", T),
    ("red", "red", T),
    ("Red", "red", T),
    ("RED", "red", T),
    ("  red ", "red", T),
    ("red.", "red", T),
    ("yes", "Yes", T),
    ("No", "no", T),
    ("yes", "no", F),
    ("True", "true", T),
    ("new  york", "New York", T),
    ("New\nYork", "new york", T),
    ('"blue"', "blue", T),
    ("blue!", "blue", T),
    ("bluegreen", "blue", F),
    ("blue", "blue green", F),
    ("cat", "tac", F),  # SymPy would call both a*c*t
    ("ab", "ba", F),
    ("red", "der", F),
    ("dog", "dogs", F),
    ("two", "2", F),  # number words are not numbers
    ("left", "right", F),
    ("\\text{red}", "red", T),
    ("\\textbf{Red}", "red", T),
    ("\\mathrm{circle}", "circle", T),
    ("$red$", "red", T),
    # --- integers, decimals, signs
    ("12", "120", F),
    ("120", "12", F),
    ("12", "12.0", T),
    ("2.0", "2", T),
    ("0.5", ".5", T),
    ("0.50", "0.5", T),
    ("+5", "5", T),
    ("-5", "5", F),
    ("-0", "0", T),
    ("3.14", "3.14", T),
    ("3.14", "3.1416", F),
    ("3.14", "\\pi", F),
    ("0.333", "1/3", F),
    ("1e3", "1000", T),
    ("1.5e-3", "0.0015", T),
    ("007", "7", T),
    ("100", "10", F),
    ("11", "1", F),
    # --- unicode minus and dashes
    ("\u22123", "-3", T),
    ("-3", "\u22123", T),
    ("\u20133", "-3", T),
    ("\u22123", "3", F),
    ("x\u22121", "x-1", T),
    # --- thousands separators
    ("1,000", "1000", T),
    ("1000", "1,000", T),
    ("1{,}000", "1000", T),
    ("1\\,000", "1000", T),
    ("12,345,678", "12345678", T),
    ("1,000.5", "1000.5", T),
    ("1,000", "100", F),
    ("1,2", "1.2", F),  # not a thousands separator: a pair/set, not 1.2
    # --- fractions and LaTeX
    ("0.5", "\\frac{1}{2}", T),
    ("\\frac{1}{2}", "0.5", T),
    ("\\dfrac{1}{2}", "0.5", T),
    ("\\tfrac{1}{2}", "1/2", T),
    ("\\frac12", "0.5", T),
    ("1/2", "0.5", T),
    ("2/4", "1/2", T),
    ("3/4", "0.75", T),
    ("3:4", "3/4", T),
    ("\\frac{1}{3}", "0.5", F),
    ("\\frac{2}{3}", "\\frac{4}{6}", T),
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", T),
    ("\\sqrt{2}", "\u221a2", T),
    ("\\sqrt{8}", "2\\sqrt{2}", T),
    ("\\sqrt{3}", "\\sqrt{2}", F),
    ("2\\pi", "2 \\pi", T),
    ("2\\pi", "\u03c0*2", T),
    ("\\pi", "180", F),
    ("10^{3}", "1000", T),
    ("2^{10}", "1024", T),
    ("1.5\\times 10^3", "1500", T),
    ("1.5 \u00d7 10^3", "1500", T),
    ("x^2+2x+1", "(x+1)^2", T),
    ("x^2+1", "(x+1)^2", F),
    ("x=3", "3", T),
    ("3", "x=3", T),
    ("y=2x+1", "y=1+2x", T),
    ("\\infty", "\u221e", T),
    ("-\\infty", "\\infty", F),
    ("\\{1,2\\}", "\\{2,1\\}", T),
    ("(1,2)", "(1, 2)", T),
    ("[1,2)", "[1,2]", F),
    ("1,2,3", "3,2,1", T),
    ("\\sin(\\frac{\\pi}{6})", "1/2", T),
    ("x+60^\\circ", "x+60", T),
    ("\\log_2 8", "3", T),
    ("e^{0}", "1", T),
    ("\\left(\\frac{1}{2}\\right)", "0.5", T),
    ("2x", "2", F),  # a one-letter "unit" needs a space: 2x is algebra
    ("x", "y", F),
    ("x", "X", T),
    # --- wrappers
    ("\\boxed{5}", "5", T),
    ("$\\boxed{5}$", "5", T),
    ("$5$", "5", T),
    ("$$5$$", "5", T),
    ("\\(5\\)", "5", T),
    ("\\[\\frac{1}{2}\\]", "0.5", T),
    ("\\boxed{\\frac{1}{2}}", "0.5", T),
    # --- percentages
    ("50%", "50", T),
    ("50", "50%", T),
    ("50\\%", "50", T),
    ("50%", "0.5", T),
    ("0.5", "50%", T),
    ("50%", "50 %", T),
    ("50%", "5", F),
    ("25%", "0.5", F),
    ("12.5%", "0.125", T),
    # --- units
    ("5 cm", "5", T),
    ("5", "5 cm", T),
    ("5cm", "5 cm", T),
    ("5 \\text{cm}", "5", T),
    ("5\\text{ cm}", "5 cm", T),
    ("5 cm", "5 m", F),  # both carry a unit: they must agree
    ("5 cm", "5 centimeters", F),  # documented: no unit conversion table
    ("5 meters", "5 meter", T),
    ("6 cm", "5 cm", F),
    ("12 apples", "12", T),
    ("12 apples", "13", F),
    ("5 m/s", "5", T),
    ("20 cm^2", "20", T),
    ("60^\\circ", "60", T),
    ("60^{\\circ}", "60", T),
    ("60\u00b0", "60", T),
    ("60 degrees", "60\u00b0", T),
    ("60\u00b0", "30\u00b0", F),
    ("\\frac{1}{2} cm", "0.5 cm", T),
    ("$5", "5", T),
    ("\\$5", "5", T),
    ("5 dollars", "5", T),
    ("2 or 3", "2", F),  # "or 3" is not a unit
    ("3 and 4", "3", F),
    ("4 or more", "4", F),
    # --- multiple choice
    ("B", "B", T),
    ("b", "B", T),
    ("(B)", "B", T),
    ("B.", "B", T),
    ("B)", "B", T),
    ("B", "(B)", T),
    ("(B) 12", "B", T),
    ("B) 12", "B", T),
    ("B: twelve", "B", T),
    ("B. 12", "B", T),
    ("Option B", "B", T),
    ("B", "(B) 12", T),
    ("(B) 12", "(B) 12", T),
    ("(C) 12", "(B) 12", F),  # the letter decides when both have one
    ("12", "(B) 12", T),  # the option text of the ground truth
    ("13", "(B) 12", F),
    ("(B) 12", "12", T),  # an option with the right text
    ("(B) 13", "12", F),
    ("C", "B", F),
    ("(C)", "B", F),
    ("C) 12", "B", F),
    ("A", "a cat", F),
    ("a cat", "A", F),
    ("A cat", "A", F),
    ("A", "A", T),
    ("a", "A", T),
    ("\\text{(A)}", "A", T),
    ("AB", "A", F),
    ("12", "B", F),
    ("B 12", "B", F),
    ("D", "(D) \\frac{1}{2}", T),
    ("0.5", "(D) \\frac{1}{2}", T),
    # --- empty and odd input
    ("", "5", F),
    ("5", "", F),
    ("", "", F),
    (None, "5", F),
    ("5", None, F),
    ("   ", "5", F),
    ("}{", "5", F),
    ("\\frac{", "1", F),
    ("\\boxed{}", "5", F),
    ("$$", "5", F),
    ("\\", "5", F),
    ("((((", "5", F),
    ("5", "\\frac{1}{0}", F),
    ("1/0", "1/0", T),  # identical text is equal before any arithmetic
    ("x" * 5000, "5", F),
    (5, "5", T),  # non-string input is stringified
    ("0.5", 0.5, T),
    ("7", 7, T),
]


@pytest.mark.parametrize(("prediction", "truth", "expected"), CASES)
def test_grade_table(prediction, truth, expected):
    assert grade_answer(prediction, truth) is expected


def test_table_is_large():
    assert len(CASES) >= 150


@pytest.mark.parametrize(
    ("response", "truth", "expected"),
    [
        ("\\boxed{1} no wait \\boxed{\\frac{1}{2}}", "0.5", T),  # two boxes: the last is the answer
        ("\\boxed{\\frac{1}{2}} no wait \\boxed{1}", "0.5", F),
        ("\\boxed{}", "5", F),  # empty box
        ("\\boxed{(B) 12}", "B", T),
        ("\\boxed{\u22124}", "-4", T),
        ("\\boxed{12}", "120", F),
        ("\\boxed{A}", "a cat", F),
    ],
)
def test_traps_through_extraction(response, truth, expected):
    assert grade_answer(extract_boxed(response), truth) is expected


def test_normalize_keeps_spaces_inside_formulas():
    assert normalize_answer("$x + 1$") == "x + 1"
    assert normalize_answer("\\boxed{a   b}.") == "a b"  # runs of whitespace collapse to one, never vanish
    assert normalize_answer("5\\,000") == "5000"  # a thin space between digit groups is a thousands separator
    assert normalize_answer("x\\,dx") == "x dx"
    assert normalize_answer(None) == ""


def test_fuzz_never_raises():
    rng = random.Random(0)
    alphabet = string.printable + "\\{}^_$%\u2212\u221a\u03c0\u00b0"
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert grade_answer(a, b, timeout_seconds=1) in (True, False)


def _hanging() -> tuple[str, str]:
    """An input on which SymPy runs until stopped (10 000 000!)."""
    return "10000000!", "5"


@contextlib.contextmanager
def _sigalrm_free():
    """Lend SIGALRM to the code under test (pytest-timeout may hold it), then give it back as it was."""
    handler = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, handler)
        if delay:
            signal.setitimer(signal.ITIMER_REAL, max(delay - (time.monotonic() - started), 0.001), interval)


def test_timeout_in_main_thread():
    with _sigalrm_free():
        assert grader._signal_timeouts_usable()
        before = grader_stats()
        start = time.monotonic()
        assert grade_answer(*_hanging(), timeout_seconds=1) is False
        assert time.monotonic() - start < 5
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL  # math-verify restored the handler
        after = grader_stats()
    assert after["timeouts"] == before["timeouts"] + 1
    assert after["worker_starts"] == before["worker_starts"]  # graded in-process, with math-verify's alarm


def test_a_foreign_sigalrm_user_is_left_alone():
    """With someone else's alarm pending (pytest-timeout, user code), math-verify's signal.alarm would cancel
    it; the grader must use the helper process instead and leave the alarm as it was."""
    fired: list[int] = []
    with _sigalrm_free():
        signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
        signal.setitimer(signal.ITIMER_REAL, 300)
        try:
            assert not grader._signal_timeouts_usable()
            assert grade_answer("\\frac{1}{2}", "0.5") is True
            assert grade_answer(*_hanging(), timeout_seconds=1) is False
            assert signal.getitimer(signal.ITIMER_REAL)[0] > 200  # still pending
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    assert not fired


def test_grading_works_outside_the_main_thread():
    """math-verify alone raises ValueError off the main thread; grade_answer must still grade, time-bounded."""
    results: dict[str, object] = {}

    def work() -> None:
        results["half"] = grade_answer("\\frac{1}{2}", "0.5")
        results["third"] = grade_answer("\\frac{1}{3}", "0.5")
        results["set"] = grade_answer("\\{1,2\\}", "\\{2,1\\}")
        start = time.monotonic()
        results["hang"] = grade_answer(*_hanging(), timeout_seconds=1)
        results["hang_seconds"] = time.monotonic() - start

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert results["half"] is True and results["third"] is False and results["set"] is True
    assert results["hang"] is False
    assert results["hang_seconds"] < 10


def test_helper_process_is_killed_and_replaced_when_it_overruns():
    worker = grader._Worker()
    try:
        before = grader_stats()
        start = time.monotonic()
        # the child's own limit (30 s) is above the parent's wall clock (1 s): the parent must kill it
        assert worker.equal(*_hanging(), timeout=30, wall_seconds=1.0) is False
        assert time.monotonic() - start < 10
        after = grader_stats()
        assert after["worker_kills"] == before["worker_kills"] + 1
        assert after["timeouts"] == before["timeouts"] + 1
        assert worker.equal("\\frac{2}{4}", "0.5", timeout=5, wall_seconds=60) is True  # a fresh child answers
        assert grader_stats()["worker_starts"] == after["worker_starts"] + 1
    finally:
        worker.close()


def test_concurrent_threads_share_the_helper_process():
    pairs = [("\\frac{1}{2}", "0.5", True), ("\\sqrt{4}", "2", True), ("\\frac{1}{3}", "0.5", False)] * 4
    out: list[bool] = [False] * len(pairs)

    def work(i: int) -> None:
        out[i] = grade_answer(pairs[i][0], pairs[i][1]) is pairs[i][2]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(out)
