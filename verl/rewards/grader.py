"""Is a predicted answer equal to the ground truth? One function, ``grade_answer``, that never raises.

Answers in visual QA are option letters, numbers (with units, percentages, thousands separators), short
phrases, or LaTeX. Our own normalisation is kept thin; mathematical equivalence is left to ``math-verify``
(Hugging Face's grader: LaTeX → SymPy, numeric and symbolic comparison, sets, intervals, equations).

Rules, in order (after stripping ``$...$`` / ``\\(...\\)`` / a whole ``\\boxed{}``, unwrapping ``\\text{}``-like
commands, mapping the unicode minus and ``∞ π × ÷ ·`` to ASCII/LaTeX, and dropping one trailing period):

1. the same text ignoring case, surrounding punctuation and runs of whitespace → equal;
2. multiple choice: a ground truth that is an option (``B``, ``(B)``, ``B. 12``, ``(B) 12``; a lone lower-case
   letter such as ``x`` is *not* taken as an option) is matched by the same letter (``b``, ``(B) 12``, ``B:
   twelve``) or, when the ground truth carries option text, by that text; a prediction that is an option with
   text (``(B) 12``) against a plain ground truth (``12``) is graded by its text. ``a cat`` is not option A;
3. a trailing unit is split off (``5 cm``, ``60°``, ``12 apples``); if both sides have one they must agree
   (case, plural ``s`` and degree spellings aside: ``5 cm`` ≠ ``5 centimeters``), one-sided units are ignored;
4. plain numbers (``-3``, ``1,000``, ``0.50``, ``3/4``, ``1e3``, ``$5``) compare exactly as fractions; a percentage
   equals both its number and its fraction (``50%`` = ``50`` = ``0.5``);
5. otherwise, when both sides look mathematical (no words except function names such as ``sin``, ``log``),
   ``math_verify.verify`` decides (``\\frac{1}{2}`` = ``0.5``, ``\\{1,2\\}`` = ``\\{2,1\\}``, ``x=3`` = ``3``).
   Text never goes to SymPy, where ``cat`` and ``tac`` are both the product ``a*c*t``.

Time bound. math-verify bounds parsing and comparison with ``signal.alarm``, which only works in the main thread
(elsewhere it raises ``ValueError``). In the main thread, when no one else uses ``SIGALRM``, we use it as is;
anywhere else (reward threads, Ray thread pools, pytest-timeout) the comparison runs in a helper process with a
wall-clock limit, killed and restarted when it overruns. Timeouts count as "not equal" and are counted in
``grader_stats()``.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from typing import Any

from .extract import find_closing_brace, parse_choice

__all__ = ["TIMEOUT_SECONDS", "grade_answer", "grader_stats", "normalize_answer"]

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
"""Limit for each math-verify step (parsing each side, comparing); the helper process gets ``3 x`` this plus
start-up grace before it is killed."""

_STATS = {"timeouts": 0, "worker_starts": 0, "worker_kills": 0, "worker_failures": 0}


def grader_stats() -> dict[str, int]:
    """Counters since start: math-verify ``timeouts`` (graded as not equal), helper process ``worker_starts``,
    ``worker_kills`` (overran its wall-clock limit) and ``worker_failures`` (could not start or answer)."""
    return dict(_STATS)


# ------------------------------------------------------------------------------------------------ normalisation

_UNICODE = str.maketrans(
    {
        "\u2212": "-",  # minus sign
        "\u2013": "-",  # en dash
        "\u2012": "-",  # figure dash
        "\ufe63": "-",  # small hyphen-minus
        "\uff0d": "-",  # full-width hyphen-minus
        "\u00a0": " ",  # no-break space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\u221e": "\\infty ",
        "\u03c0": "\\pi ",
        "\u00d7": "\\times ",
        "\u00f7": "\\div ",
        "\u00b7": "\\cdot ",
        "\u2044": "/",  # fraction slash
        "\u00b2": "^2",
        "\u00b3": "^3",
    }
)
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_TEXT_COMMAND = re.compile(
    r"\\(?:text|textrm|textbf|textit|textnormal|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)
_LATEX_SPACE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree")
_THIN_SPACE_THOUSANDS = re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))")
_SQRT = re.compile(r"√\s*(\([^()]*\)|\{[^{}]*\}|[A-Za-z0-9.]+)")
_SIZED_DELIMITER = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_WHOLE_BOX = re.compile(r"^\\(?:boxed|fbox)\s*\{")


def normalize_answer(text: Any) -> str:
    """The thin clean-up applied to both sides before grading (see the module docstring). Spaces inside a
    formula are kept (collapsed to one), never removed."""
    if text is None:
        return ""
    s = (text if isinstance(text, str) else str(text)).translate(_UNICODE).strip()
    s = s[:-1].rstrip() if s.endswith(".") and not s.endswith("..") else s
    for _ in range(3):  # nested wrappers such as $\boxed{...}$
        before = s
        match = _WHOLE_BOX.match(s)
        if match and find_closing_brace(s, match.end() - 1) == len(s) - 1:
            s = s[match.end() : -1].strip()
        for left, right in _DELIMITERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)].strip()
                break
        if s == before:
            break
    for _ in range(3):  # \text{\textbf{x}}
        s, count = _TEXT_COMMAND.subn(r"\1", s)
        if not count:
            break
    s = _SQRT.sub(lambda m: "\\sqrt{" + m.group(1).strip("(){}") + "}", s)
    s = _THIN_SPACE_THOUSANDS.sub("", s)
    s = _LATEX_SPACE.sub(" ", s)
    s = _DEGREE.sub("°", s)
    s = _SIZED_DELIMITER.sub("", s.replace("{,}", ",").replace("\\%", "%").replace("\\$", "$"))
    s = re.sub(r"\s+", " ", s).strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def _text_key(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip(" \"'`.,;:!?")


# ------------------------------------------------------------------------------------------------ numbers and units

_UNIT_WORD = r"[A-Za-zµμΩ]+(?:\^\{?-?\d+\}?)?"
_SPLIT_UNIT = re.compile(
    rf"^(?P<expr>.*?[\d}})%])(?P<space>\s*)(?P<unit>°|{_UNIT_WORD}(?:\s*(?:/|\s)\s*{_UNIT_WORD}){{0,2}})$"
)
_NOT_UNITS = {"or", "and", "to", "nor", "plus", "minus", "times", "over", "of", "is", "are", "not", "than"}
_UNIT_ALIASES = {"degree": "°", "degrees": "°", "deg": "°", "inches": "inch", "feet": "foot"}


def _split_unit(s: str) -> tuple[str, str | None]:
    """``"5 cm"`` → ``("5", "cm")``; ``"2x"`` and ``"3 or 4"`` keep their text (a one-letter unit needs a space)."""
    match = _SPLIT_UNIT.match(s)
    if not match:
        return s, None
    unit = match.group("unit")
    words = re.findall(r"[A-Za-z]+", unit)
    if any(word.lower() in _NOT_UNITS for word in words):
        return s, None
    if unit != "°" and len(re.sub(r"[^A-Za-zµμΩ]", "", unit)) == 1 and not match.group("space"):
        return s, None
    return match.group("expr").strip(), unit


def _unit_key(unit: str) -> str:
    key = re.sub(r"\s+", " ", unit.casefold()).replace(" per ", "/").replace(" ", "")
    key = _UNIT_ALIASES.get(key, key)
    if len(key) > 2 and key.endswith("s") and not key.endswith("ss"):
        key = key[:-1]
    return key


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _number(s: str) -> tuple[Fraction, bool] | None:
    """A plain number (optionally a percentage, a ratio ``a/b`` or with a currency sign) as ``(value,
    is_percent)``; None for anything else."""
    s = s.strip().lstrip("$€£¥").strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    parts = [part.strip() for part in s.split("/")] if s.count("/") == 1 else [s]
    if not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    try:
        value = Fraction(parts[0]) / Fraction(parts[1]) if len(parts) == 2 else Fraction(parts[0])
    except (ValueError, ZeroDivisionError):
        return None
    return value, percent


def _numbers_equal(a: tuple[Fraction, bool], b: tuple[Fraction, bool]) -> bool:
    (x, x_pct), (y, y_pct) = a, b
    if x_pct == y_pct:
        return x == y
    pct, other = (x, y) if x_pct else (y, x)
    return other in (pct, pct / 100)


_FUNCTION_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "log", "ln",
    "lg", "exp", "sqrt", "pi", "infty", "inf", "lim", "max", "min", "gcd", "lcm", "mod", "det", "deg",
}  # fmt: skip


def _looks_like_math(s: str) -> bool:
    """No words left once LaTeX commands and function names are removed (single letters are variables)."""
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", s))
    return all(word.lower() in _FUNCTION_WORDS for word in words)


# ------------------------------------------------------------------------------------------------ grading


def grade_answer(prediction: Any, ground_truth: Any, timeout_seconds: int = TIMEOUT_SECONDS) -> bool:
    """True when ``prediction`` is an acceptable answer for ``ground_truth`` (rules in the module docstring).

    Never raises: ``None``, empty or malformed inputs are "not equal"; math-verify is time-bounded in any
    thread (``timeout_seconds`` per step)."""
    try:
        pred, truth = normalize_answer(prediction), normalize_answer(ground_truth)
        if not pred or not truth:
            return False
        return _grade(pred, truth, timeout_seconds)
    except Exception:  # a grader bug must not stop training; the answer just does not count
        logger.warning("grading failed for prediction %.80r vs %.80r", prediction, ground_truth, exc_info=True)
        return False


def _grade(pred: str, truth: str, timeout: int) -> bool:
    if _text_key(pred) == _text_key(truth):
        return True
    truth_choice = parse_choice(truth)
    if truth_choice is not None and re.fullmatch(r"[a-z]", truth):
        truth_choice = None  # a lone lower-case letter is a variable, not an option
    pred_choice = parse_choice(pred)
    if truth_choice is not None and pred_choice is not None:
        return truth_choice.letter == pred_choice.letter
    if truth_choice is not None:
        return bool(truth_choice.text) and _grade_plain(pred, truth_choice.text, timeout)
    if pred_choice is not None:
        return bool(pred_choice.text) and _grade_plain(pred_choice.text, truth, timeout)
    return _grade_plain(pred, truth, timeout)


def _grade_plain(pred: str, truth: str, timeout: int) -> bool:
    if _text_key(pred) == _text_key(truth):
        return True
    pred_expr, pred_unit = _split_unit(pred)
    truth_expr, truth_unit = _split_unit(truth)
    if pred_unit and truth_unit and _unit_key(pred_unit) != _unit_key(truth_unit):
        return False
    if not pred_expr or not truth_expr:
        return False
    pred_number, truth_number = _number(pred_expr), _number(truth_expr)
    if pred_number is not None and truth_number is not None:
        return _numbers_equal(pred_number, truth_number)
    if _looks_like_math(pred_expr) and _looks_like_math(truth_expr):
        degrees = "^{\\circ}"  # math-verify reads the LaTeX degree, not the sign
        return _math_equal(pred_expr.replace("°", degrees), truth_expr.replace("°", degrees), timeout)
    return False


# ------------------------------------------------------------------------------------------------ math-verify


def _math_verify_equal(pred: str, truth: str, timeout: int) -> bool:
    """math-verify's verdict, using its own ``signal.alarm`` timeouts (main thread only)."""
    from math_verify import parse, verify

    gold = parse(f"${truth}$", parsing_timeout=timeout)
    if not gold:
        return False
    answer = parse(f"${pred}$", parsing_timeout=timeout)
    if not answer:
        return False
    return bool(verify(gold, answer, timeout_seconds=timeout))


def _signal_timeouts_usable() -> bool:
    """math-verify's ``signal.alarm`` works here and disturbs no one: main thread, no foreign SIGALRM handler
    (pytest-timeout, another library) and no pending alarm."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        return False
    try:
        if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return False
        return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    except (ValueError, OSError):
        return False


def _math_equal(pred: str, truth: str, timeout: int) -> bool:
    timeout = max(1, int(timeout))
    if _signal_timeouts_usable():
        start = time.monotonic()
        equal = _math_verify_equal(pred, truth, timeout)
        if not equal and time.monotonic() - start >= timeout:
            _STATS["timeouts"] += 1  # math-verify caught its own timeout and answered False
        return equal
    return _WORKER.equal(pred, truth, timeout, wall_seconds=3 * timeout + 1)


class _Worker:
    """A helper process running ``_serve``: JSON lines ``[pred, truth, timeout]`` in, ``true``/``false`` out.

    Its main thread can use math-verify's signal timeouts; the parent also enforces a wall-clock limit and kills
    a child that overruns (e.g. stuck in C code), starting a fresh one on the next call. Calls are serialised
    by a lock; the child exits when the parent closes its stdin."""

    _START_SECONDS = 120.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if isinstance(p, str) and p))
        process = subprocess.Popen(
            [sys.executable, "-c", "from verl.rewards.grader import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        _STATS["worker_starts"] += 1
        if self._read(process, self._START_SECONDS) != "ready":
            self._kill(process)
            raise RuntimeError("the math-verify helper process did not start")
        return process

    @staticmethod
    def _read(process: subprocess.Popen[bytes], seconds: float) -> Any:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], seconds)
        if not ready:
            return None
        line = process.stdout.readline()
        return json.loads(line) if line else None

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def equal(self, pred: str, truth: str, timeout: int, wall_seconds: float) -> bool:
        with self._lock:
            try:
                if self._process is None or self._process.poll() is not None:
                    self._process = self._start()
                process = self._process
                assert process.stdin is not None
                process.stdin.write((json.dumps([pred, truth, timeout]) + "\n").encode())
                process.stdin.flush()
                answer = self._read(process, wall_seconds)
            except (OSError, RuntimeError, ValueError):
                _STATS["worker_failures"] += 1
                logger.warning("math-verify helper process failed; graded as not equal", exc_info=True)
                self.close_locked()
                return False
            if answer is None:  # overran the wall-clock limit (or died): kill, restart on the next call
                _STATS["timeouts"] += 1
                _STATS["worker_kills"] += 1
                logger.warning("math-verify took over %.0f s on %.80r vs %.80r; graded as not equal",
                               wall_seconds, pred, truth)  # fmt: skip
                self.close_locked()
                return False
            if answer == "timeout":
                _STATS["timeouts"] += 1
                return False
            return answer is True

    def close_locked(self) -> None:
        if self._process is not None:
            self._kill(self._process)
            self._process = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


_WORKER = _Worker()
atexit.register(_WORKER.close)


def _serve() -> None:
    """Helper-process loop (see ``_Worker``)."""
    logging.disable(logging.CRITICAL)  # math-verify logs every timeout; the parent counts them
    import math_verify  # noqa: F401  (import before saying ready, so start-up is not charged to a request)

    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        pred, truth, timeout = json.loads(line)
        start = time.monotonic()
        try:
            answer: Any = _math_verify_equal(pred, truth, timeout)
        except Exception:
            answer = False
        if answer is False and time.monotonic() - start >= timeout:
            answer = "timeout"
        out.write(json.dumps(answer) + "\n")
        out.flush()
