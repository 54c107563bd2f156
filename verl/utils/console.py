"""A quiet console for training runs: our progress lines and real errors on the terminal, library chatter in
the run folder's ``run.log``.

The rollout engine and the libraries under it log from every worker process, and Ray forwards each line to
the driver's terminal: a 30-step CPU run printed thousands of lines, most of them one vLLM warning
("CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding") repeated at every
generate call. While :func:`quiet_console` is active, every line written to ``sys.stdout``/``sys.stderr``
(the driver's own and the workers' forwarded ones) goes into ``run.log`` in full, and the terminal gets:

- every line that is not a library log record: our progress and validation lines, prints, tracebacks;
- library records at ERROR/CRITICAL level, always;
- library records at WARNING level (vLLM's, Python's ``warnings``, torch's C++ ones, other loggers'), the first
  time each call site (``[file.py:line]``, or the logger name and message) warns; its repeats go to the log
  only;
- no library INFO/DEBUG records, no progress bars and no blank lines from workers (log only).

On exit one line says how many lines went only to the log, and where it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Ray's prefix on a worker's forwarded line: "(FSDPWorker pid=123)" or "(pid=123, ip=10.0.0.1)".
_RAY_PREFIX = re.compile(r"^\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\) ?")
# vLLM: "(MainProcess pid=12) WARNING 12-03 07:32:48 [utils.py:333] message"
_VLLM_RECORD = re.compile(
    r"^(?:\([\w.]+ pid=\d+\)\s*)?(DEBUG|INFO|WARNING|ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[([^\]]+)\]"
)
# Python logging with a timestamp (ours, Ray's, transformers'): "2026-12-03 07:32:48,123 INFO name: message"
# or Ray's "2026-12-03 07:32:48,123\tINFO worker.py:1917 -- message".
_PY_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\S+?)(?::| --)\s"
)
# warnings.warn's output: "/path/to/file.py:123: UserWarning: message", then the source line, indented.
_PY_WARNING = re.compile(r"^(\S+\.py:\d+): (\w*Warning): ")
# torch's C++ (glog-style) records: "[rank0]:W1203 07:56:54.646000 1297 torch/x.py:178] message" or
# "[rank0]:[W1203 07:57:01.360111169 utils.cpp:68] Warning: message".
_GLOG_RECORD = re.compile(r"^(?:\[rank\d+\]:)?\[?([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+(?: +\d+)? ([^\]\s]+:\d+)\]")
_GLOG_LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
# tqdm-style bars ("45%|####", "96 examples [00:00, 37093.80 examples/s]") and vLLM's ("100% Completed | 1/1").
_PROGRESS_BAR = re.compile(r"\d+%\||\d+% Completed \||\[\d\d:\d\d(?:<[^\]]*)?, [^\]]*/s\]")
OWN_LOGGERS = ("verl", "__main__")


class ConsoleFilter:
    """Decides, line by line, whether a line also goes to the terminal (see the module docstring)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.log_only = 0
        self._continuation: bool | None = None  # the decision for the line after a Python warning
        self._lock = threading.Lock()

    def shows(self, line: str) -> bool:
        """True when ``line`` (one line, without its newline) should reach the terminal."""
        plain = _ANSI.sub("", line)
        raw = _RAY_PREFIX.sub("", plain)
        text = raw.strip()
        continuation, self._continuation = self._continuation, None
        if not text:  # a blank line forwarded from a worker is a library's; ours are kept
            return self._hide() if raw != plain else True
        if continuation is not None and raw.startswith("  "):  # the source line under a Python warning
            return continuation or self._hide()
        level, site = self._record(text)
        if level is None:
            return self._hide() if _PROGRESS_BAR.search(text) else True
        if level in ("ERROR", "CRITICAL"):
            return True
        if level in ("DEBUG", "INFO"):
            return self._hide()
        with self._lock:
            first = site not in self.seen
            self.seen.add(site)
        if _PY_WARNING.match(text):
            self._continuation = first
        return first or self._hide()

    def _hide(self) -> bool:
        with self._lock:
            self.log_only += 1
        return False

    @staticmethod
    def _record(text: str) -> tuple[str | None, str]:
        """(level, call site) of a library log record; (None, "") for anything else, including our own
        logger's records."""
        if match := _VLLM_RECORD.match(text):
            return match.group(1), match.group(2)
        if match := _PY_RECORD.match(text):
            name = match.group(2)
            if name.split(".")[0] in OWN_LOGGERS:
                return None, ""
            return match.group(1), name + ":" + re.sub(r"\d+", "N", text[match.end() :])[:80]
        if match := _PY_WARNING.match(text):
            return "WARNING", match.group(1)
        if match := _GLOG_RECORD.match(text):
            return _GLOG_LEVELS[match.group(1)], match.group(2)
        return None, ""


class FilteredStream:
    """A text stream that writes every complete line to ``log`` and, when the filter allows, to ``console``."""

    def __init__(self, console: TextIO, log: TextIO, line_filter: ConsoleFilter) -> None:
        self.console, self.log, self.filter = console, log, line_filter
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if not self.log.closed:
            self.log.write(_ANSI.sub("", line) + "\n")
        if self.filter.shows(line.split("\r")[-1]):
            self.console.write(line + "\n")

    def flush(self) -> None:
        with self._lock:  # an unfinished line waits for its newline
            self.console.flush()
            if not self.log.closed:
                self.log.flush()

    def close_partial(self) -> None:
        with self._lock:
            if self._partial:
                self._emit(self._partial)
                self._partial = ""

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding, buffer...: the terminal's
        return getattr(self.console, name)


class QuietConsole:
    """What :func:`quiet_console` yields: the line filter, and a way to write text to the log file alone."""

    def __init__(self, line_filter: ConsoleFilter, log: TextIO | None) -> None:
        self.filter, self._log = line_filter, log

    def log_only(self, text: str) -> None:
        """Write ``text`` to ``run.log`` without showing it (printed instead when the filter is off)."""
        if self._log is None:
            print(text, flush=True)
        else:
            self._log.write(text.rstrip("\n") + "\n")
            self._log.flush()


@contextlib.contextmanager
def quiet_console(log_path: str, enabled: bool = True) -> Iterator[QuietConsole]:
    """Filter ``sys.stdout``/``sys.stderr`` as the module docstring says while the block runs; every line also
    goes to ``log_path`` (appended). ``enabled=False`` (e.g. ``VSR1_VERBOSE=1``) leaves the streams alone."""
    line_filter = ConsoleFilter()
    if not enabled:
        yield QuietConsole(line_filter, None)
        return
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115  (closed below, after the streams are restored)
    saved = sys.stdout, sys.stderr
    streams = FilteredStream(saved[0], log, line_filter), FilteredStream(saved[1], log, line_filter)
    sys.stdout, sys.stderr = streams
    # logging's handlers hold the stream they were made with (run_cli's basicConfig ran before the swap): point
    # them at the filtered streams too, so the driver's own records reach run.log and library chatter is sorted.
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler) and h.stream in saved]
    originals = [h.stream for h in handlers]
    for handler, original in zip(handlers, originals):
        handler.setStream(streams[saved.index(original)])
    try:
        yield QuietConsole(line_filter, log)
    finally:
        for handler, original in zip(handlers, originals):
            handler.setStream(original)
        for stream in streams:
            stream.close_partial()
            stream.flush()
        sys.stdout, sys.stderr = saved
        log.close()
        if line_filter.log_only:
            print(
                f"{line_filter.log_only} library log line(s) (info, progress bars, repeated warnings) are only in "
                f"{log_path}",
                file=sys.stderr,
                flush=True,
            )


def verbose() -> bool:
    """``VSR1_VERBOSE=1`` turns the filter off: every line reaches the terminal, as before."""
    return os.environ.get("VSR1_VERBOSE", "") not in ("", "0", "false")
