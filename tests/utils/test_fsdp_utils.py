"""CPU thread share per rank and the peak-memory metrics the update logs."""

from __future__ import annotations

import os

import pytest
import torch

from verl.utils.fsdp_utils import CPU_THREADS_ENV, cpu_threads_per_rank, memory_metrics


def test_each_rank_gets_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CPU_THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [cpu_threads_per_rank(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_the_environment_overrides_the_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_THREADS_ENV, "3")
    assert cpu_threads_per_rank(2) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(CPU_THREADS_ENV, bad)
        with pytest.raises(ValueError, match=CPU_THREADS_ENV):
            cpu_threads_per_rank(1)


def test_memory_metrics_report_the_resident_peak_in_gib() -> None:
    """The same number the kernel gives as the high-water mark of resident memory (VmHWM, in KiB)."""
    metrics = memory_metrics(torch.device("cpu"))
    with open("/proc/self/status", encoding="utf-8") as f:
        hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert metrics["perf/cpu_max_rss_gb"][0] == pytest.approx(hwm_kib / 2**20, rel=0.05)
    assert "perf/max_memory_allocated_gb" not in metrics  # GPU peaks only on a GPU
