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


def _stepped_linear(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    module = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.1)
    module(torch.randn(5, 4)).square().sum().backward()
    optimizer.step()
    return module, optimizer


def test_model_only_checkpoint_resumes_weights_with_a_fresh_optimizer(tmp_path, caplog) -> None:
    from verl.utils.fsdp_utils import load_sharded, save_sharded

    saved, saved_optimizer = _stepped_linear(0)
    save_sharded(saved, None, None, str(tmp_path / "model_only"), 0, extra={"model_only": True})
    save_sharded(saved, saved_optimizer, None, str(tmp_path / "full"), 0, extra={"model_only": False})

    fresh = torch.nn.Linear(4, 3)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    with caplog.at_level("WARNING"):
        extra = load_sharded(fresh, fresh_optimizer, None, str(tmp_path / "model_only"), 0)
    assert extra["model_only"] is True
    assert "save_model_only=true (no optimizer state)" in caplog.text and "fresh optimizer" in caplog.text
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], value)
    assert len(fresh_optimizer.state) == 0, "no optimizer state was invented"

    caplog.clear()
    resumed = torch.nn.Linear(4, 3)
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=0.1)
    load_sharded(resumed, resumed_optimizer, None, str(tmp_path / "full"), 0)
    assert "fresh optimizer" not in caplog.text
    moments = [resumed_optimizer.state[p]["exp_avg"] for p in resumed.parameters()]
    for moment, p in zip(moments, saved.parameters()):
        torch.testing.assert_close(moment, saved_optimizer.state[p]["exp_avg"])
    assert os.listdir(tmp_path / "model_only" / "dcp") and os.listdir(tmp_path / "full" / "dcp")
