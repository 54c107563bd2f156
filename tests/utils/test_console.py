"""The quiet console: repeated library warnings once, chatter to the log, our lines and real errors in full."""

from __future__ import annotations

import io
import sys

from verl.utils.console import ConsoleFilter, FilteredStream, quiet_console

THREADS = (
    "\x1b[36m(FSDPWorker pid={pid})\x1b[0m (MainProcess pid={pid}) WARNING 12-03 07:32:{sec:02d} [cpu_worker.py:171] "
    "CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, ignore it."
)
LOAD = (
    "(FSDPWorker pid=7) (MainProcess pid=7) WARNING 12-03 07:32:48 [utils.py:333] Attempted to load weight "
    "layers.{i}.mlp.down_proj.weight with dtype torch.float32 into parameter with dtype torch.bfloat16"
)
INFO = "(FSDPWorker pid=7) (MainProcess pid=7) INFO 12-03 07:32:48 [inplace.py:113] Reloading weights took 0.02 s"
TRACEBACK = [
    "(FSDPWorker pid=7) Traceback (most recent call last):",
    '(FSDPWorker pid=7)   File "dp_actor.py", line 12, in update_policy',
    "(FSDPWorker pid=7) RuntimeError: shapes do not match",
]


def _through(lines: list[str]) -> tuple[list[str], list[str]]:
    console, log = io.StringIO(), io.StringIO()
    stream = FilteredStream(console, log, ConsoleFilter())
    stream.write("\n".join(lines) + "\n")
    return console.getvalue().splitlines(), log.getvalue().splitlines()


def test_a_repeated_engine_warning_reaches_the_console_once_and_the_log_every_time() -> None:
    lines = [THREADS.format(pid=7 + i % 2, sec=i % 60) for i in range(2000)]
    console, log = _through(lines)
    assert len(console) == 1 and "torch.set_num_threads" in console[0]
    assert len(log) == 2000 and "\x1b" not in log[0]


def test_one_call_site_is_one_console_line_whatever_its_arguments() -> None:
    console, log = _through([LOAD.format(i=i) for i in range(24)])
    assert len(console) == 1 and len(log) == 24


def test_library_info_and_progress_bars_go_to_the_log_only() -> None:
    lines = [
        INFO,
        "(FSDPWorker pid=7) Loading weights: 100%|##########| 24/24 [00:00<00:00, 900.1it/s]",
        "(FSDPWorker pid=7) Loading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00, 35.44it/s]",
        "Generating train split: 96 examples [00:00, 37093.80 examples/s]",
        "2026-12-03 07:30:01,234\tINFO worker.py:1917 -- Started a local Ray instance.",
        "(FSDPWorker pid=7) [rank0]:I1203 07:56:54.646000 1297 torch/distributed/x.py:10] store ready",
        "\x1b[36m(FSDPWorker pid=7)\x1b[0m ",
    ]
    console, log = _through(lines)
    assert console == [] and len(log) == len(lines)


def test_torch_cpp_warnings_show_once_per_call_site() -> None:
    numa = "(FSDPWorker pid={pid}) [rank0]:[W1203 07:57:01.360111169 utils.cpp:68] Warning: NUMA binding: MEMBIND"
    cuda = "(FSDPWorker pid=7) [rank0]:W1203 07:56:54.646000 1297 torch/utils/cpp_extension.py:178] No CUDA runtime"
    console, _ = _through([numa.format(pid=7), cuda, numa.format(pid=8), cuda])
    assert console == [numa.format(pid=7), cuda]


def test_the_source_line_under_a_python_warning_follows_it() -> None:
    warning = "(FSDPWorker pid=7) /venv/peft/tuners_utils.py:1090: UserWarning: no modules were excluded"
    source = "(FSDPWorker pid=7)   warnings.warn("
    console, log = _through([warning, source, warning, source, "  indented line of ours"])
    assert console == [warning, source, "  indented line of ours"] and len(log) == 5


def test_our_lines_tracebacks_and_errors_reach_the_console_in_full() -> None:
    progress = "[#####               ] 5/20 eta 0m30s overall=0.25 accuracy=0.2"
    ours = "2026-12-03 07:30:01,234 INFO verl.trainer.ray_trainer: resumed from /run/global_step_2 at step 2"
    error = "(FSDPWorker pid=7) (MainProcess pid=7) ERROR 12-03 07:32:48 [core.py:9] engine died"
    lines = [progress, ours, *TRACEBACK, error, error]
    console, _ = _through(lines)
    assert [line for line in console] == lines


def test_distinct_python_warnings_each_show_once() -> None:
    first = "/venv/lib/transformers/x.py:10: FutureWarning: `a` is deprecated"
    second = "/venv/lib/torch/y.py:99: UserWarning: TypedStorage is deprecated"
    console, log = _through([first, second, first, second])
    assert console == [first, second] and len(log) == 4


def test_quiet_console_restores_the_streams_and_says_where_the_rest_went(tmp_path, capsys) -> None:
    path = tmp_path / "run" / "run.log"
    before = sys.stdout
    with quiet_console(str(path)) as console:
        print(THREADS.format(pid=1, sec=1))
        print(THREADS.format(pid=1, sec=2))
        print("step 1 done", file=sys.stderr)
        console.log_only("data:\n  seed: 1")
    assert sys.stdout is before
    out, err = capsys.readouterr()
    assert out.count("torch.set_num_threads") == 1
    assert (
        "step 1 done" in err
        and f"1 library log line(s) (info, progress bars, repeated warnings) are only in {path}" in err
    )
    assert "seed: 1" not in out + err
    log = path.read_text()
    assert log.count("torch.set_num_threads") == 2 and "seed: 1" in log


def test_disabled_leaves_the_streams_alone(tmp_path) -> None:
    before = sys.stdout
    with quiet_console(str(tmp_path / "run.log"), enabled=False):
        assert sys.stdout is before
    assert not (tmp_path / "run.log").exists()


def test_the_filtered_stream_answers_like_the_terminal() -> None:
    console = io.StringIO()
    stream = FilteredStream(console, io.StringIO(), ConsoleFilter())
    stream.writelines(["a\n", "b\n"])
    assert console.getvalue() == "a\nb\n" and stream.isatty() is False and stream.getvalue() == "a\nb\n"


def test_logging_handlers_made_before_the_filter_go_through_it(tmp_path, monkeypatch) -> None:
    import logging

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(sys.stderr)  # as logging.basicConfig in run_cli: made before the swap
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with quiet_console(str(tmp_path / "run.log")):
            logging.getLogger("verl.trainer.loop").info("resumed from global_step_2")
            logging.getLogger("somelib.loader").info("loading file vocab.json")  # a library that propagates
        assert handler.stream is terminal  # handed back when the block ends
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    log = (tmp_path / "run.log").read_text()
    assert "resumed from global_step_2" in log and "loading file vocab.json" in log
    assert "resumed from global_step_2" in terminal.getvalue()
    assert "loading file vocab.json" not in terminal.getvalue()
