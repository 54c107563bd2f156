"""The benchmark harness's own logic (the measurements themselves run with ``make bench``, never in tests)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.peer import loader_order
from verl.utils.dataset import ResumableDataLoader


def test_trl_gets_the_rows_in_our_loader_order(tiny_dir: Path) -> None:
    train = tiny_dir / "data" / "train.parquet"
    ours = ResumableDataLoader(list(range(96)), batch_size=8, shuffle=True, seed=1)._order(0)
    assert loader_order(train, steps=3, batch=8, seed=1) == ours[:24]
    assert loader_order(train, steps=3, batch=8, seed=2) != ours[:24]


def test_rewriting_one_section_keeps_the_others_and_the_notes(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(bench_main, "OUT", out)
    points = [
        {"engine": engine, "n": 1, "length": 32, "tokens": 256, "tokens_per_s": rate}
        for engine, rate in (("vllm", 3000.0), ("hf", 1500.0))
    ]
    bench_main.write({"rollout": points}, {"rollout": 1.0})
    out.write_text(out.read_text() + f"\n{bench_main.NOTES}\n\nhand-written analysis\n")
    scaling = [
        {"prompts": 4, "max_response_length": 48, "step": 0.5, "gen": 0.2, "update": 0.1,
         "response_length": 48.0, "peak_rss_gb": 2.5}
    ]  # fmt: skip
    bench_main.write({"scaling": scaling}, {"scaling": 2.0})
    text = out.read_text()
    assert "| 1 | 32 | 3000 | 1500 | 2.0× |" in text, "the rollout table survives a scaling rerun"
    assert "| 4 | 48 | 48 | 0.50 |" in text
    assert text.rstrip().endswith("hand-written analysis")
    assert "Not run yet: `python -m bench peer`" in text


def test_unknown_benchmark_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_main.main(["nonsense"])
    assert "unknown benchmark" in capsys.readouterr().err


def test_memory_bench_before_and_after_compute_the_same_log_probs_and_update() -> None:
    """The kept old computation ("before") and the current one score the same batch alike, padded and
    padding-free, so the memory table compares like with like."""
    import copy

    import torch

    from bench import memory
    from verl.workers.actor.dp_actor import DataParallelActor

    model = memory.tiny_model(vocab=300)
    data = memory.make_batch(8, vocab=300)
    legacy = memory.legacy_actor_class()
    for padding_free in (False, True):
        config = memory._actor_config(padding_free)
        old = legacy(config, model).compute_log_prob(data, with_entropy=True)
        new = DataParallelActor(config, model).compute_log_prob(data, with_entropy=True)
        for key in ("log_probs", "entropies"):
            torch.testing.assert_close(new.batch[key], old.batch[key], atol=1e-5, rtol=1e-5)
        updated = {}
        for name, actor_class in (("old", legacy), ("new", DataParallelActor)):
            clone = copy.deepcopy(model)
            actor_class(config, clone, torch.optim.SGD(clone.parameters(), lr=0.1)).update_policy(data)
            updated[name] = dict(clone.named_parameters())
        for key, value in updated["old"].items():
            torch.testing.assert_close(updated["new"][key], value, atol=1e-6, rtol=1e-5)


def test_memory_section_lists_every_case_and_the_logit_size() -> None:
    from bench.memory import cases

    listed = cases((512, 2048), batch_rows=(2, 8))
    # length sweep: 2 R x 2 calls x 2 paths x 2 versions; batch sweep adds B=8 (B=2 at R=512 is shared)
    assert len(listed) == 2 * 2 * 2 * 2 + 4
    assert all("skipped" in c for c in listed if c["version"] == "before" and c["rows"] * c["response"] > 2048)
    assert all("skipped" not in c for c in listed if c["version"] == "after")
    results = [{**c, "added_gb": 0.5} if "skipped" not in c else c for c in listed]
    sweeps = {"length": {"date": "2026-12-03", "wall_s": 1566.0}, "batch": {"date": "2026-12-03", "wall_s": 300.0}}
    text = bench_main.memory_section(
        {"rows": 2, "prompt": 64, "vocab": 151_936, "batch_response": 512, "sweeps": sweeps, "cases": results}
    )
    # 2 rows x 2048 tokens x 151,936 x 4 bytes = 2.49 GB
    assert "| update | 2048 | 2.49 | not run | 0.50 | not run | 0.50 |" in text
    assert "| log_probs | 512 | 0.62 | 0.50 | 0.50 | 0.50 | 0.50 |" in text
    # the batch table: B = 2 and 8 at R = 512 (8 x 512 x 151,936 x 4 bytes = 2.49 GB)
    assert "B from 2 to 8 at R = 512" in text
    assert "| log_probs | 2 | 0.62 | 0.50 | 0.50 | 0.50 | 0.50 |" in text
    assert "| log_probs | 8 | 2.49 | not run | 0.50 | not run | 0.50 |" in text
    assert "batch sweep 2026-12-03, 300 s; length sweep 2026-12-03, 1566 s" in text
    sweeps["batch"] = sweeps["length"]
    text = bench_main.memory_section(
        {"rows": 2, "prompt": 64, "vocab": 151_936, "batch_response": 512, "sweeps": sweeps, "cases": results}
    )
    assert "measured:" not in text, "sweeps measured in one run are dated by the section's stamp alone"


def test_memory_run_keeps_the_cases_of_the_other_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning one sweep replaces its cases and keeps the others', including results written before cases
    had a number of rows."""
    from bench import memory

    old = {"response": 1024, "path": "padded", "version": "after", "op": "update", "added_gb": 1.7}
    shared = {"response": 512, "path": "padded", "version": "after", "op": "log_probs", "added_gb": 9.9}
    previous = {"cases": [old, shared], "sweeps": {"length": {"date": "2026-12-01", "wall_s": 10.0}}}
    listed = memory.cases(batch_rows=(2, 4), sweeps=("batch",))
    monkeypatch.setattr(memory, "cases", lambda *args: [c for c in listed if c["version"] == "after"])

    def fake_run(command, **kwargs):
        case = json.loads(command[-1])
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps({**case, "added_gb": 0.6}), stderr="")

    monkeypatch.setattr(memory.subprocess, "run", fake_run)
    result = memory.run(sweeps=("batch",), previous=previous)
    by = {memory.case_key(c): c["added_gb"] for c in result["cases"]}
    assert by[("update", 2, 1024, "padded", "after")] == 1.7, "the length sweep's case is kept"
    assert by[("log_probs", 2, 512, "padded", "after")] == 0.6, "the shared case is the new measurement"
    assert by[("log_probs", 4, 512, "padding-free", "after")] == 0.6
    assert len(result["cases"]) == 5
    assert set(result["sweeps"]) == {"length", "batch"} and result["sweeps"]["length"]["wall_s"] == 10.0


def test_hop_section_reports_each_variant_against_hop_off_at_its_shape() -> None:
    from bench.peer import HOP_SHAPES, hop_section

    def run(step: float, **metrics: float) -> dict:
        timing = {"step": step, "gen": step / 2, "gen/generate": step / 3, "update_actor": 0.1}
        return {"step": step, "timing": timing, "metrics_last": metrics, "response_length": 40.0}

    short, long = HOP_SHAPES
    split = {"self_reward/split/first_half_tokens_mean": 9.4, "self_reward/split/first_half_tokens_max": 21.0}
    r = {
        f"off@{short}": run(1.0), f"sequential@{short}": run(1.3), f"pipelined@{short}": run(1.04, **split),
        f"off@{long}": run(2.0), f"sequential@{long}": run(2.5), f"pipelined@{long}": run(2.2, **split),
    }  # fmt: skip
    r["rounds"] = {key: [res["step"]] for key, res in r.items()}
    r["ratios"] = {k: r[k]["step"] / r[f"off@{k.split('@')[1]}"]["step"] for k in r["rounds"] if "off" not in k}
    text = hop_section(r)
    assert f"| {short} | pipelined | 1.04 | 1.04× |" in text and "| 9 / 21 |" in text
    assert f"| {long} | sequential | 2.50 | 1.25× |" in text
    assert f"{long} tokens: **1.10×** (sequential 1.25×)" in text and "NOT met" in text


def _peer_large_case(length: int, ours_gen: float, ours_step: float) -> dict:
    ours_timing = {"gen": ours_gen, "reward": 0.1, "old": 0.0, "ref": 0.5, "adv": 0.1, "update_actor": 1.0}
    ours_timing.update({"gen/generate": ours_gen - 0.4, "gen/weight_sync": 0.4})
    return {
        "max_response_length": length,
        "ours": {"step": ours_step, "timing": ours_timing, "steps": 2, "response_length": 256.0},
        "trl": {
            "step": 12.4,
            "timing": {"gen": 8.0, "reward": 0.1, "log_probs_and_adv": 1.0, "update": 3.0},
            "steps": 2,
            "response_length": 256.0,
            "version": "1.16.0",
        },
        "ratio_vs_trl": ours_step / 12.4,
        "same_rows": True,
        "rounds": {"ours": [ours_step], "trl": [12.4]},
        "load_average": [(1.5, 2.0, 2.0), (1.7, 2.0, 2.0), (1.6, 2.0, 2.0)],
    }


def test_peer_large_section_splits_both_steps_and_names_the_slow_phases() -> None:
    from bench import peer_large

    result = {
        "parameters": 43_122_368,
        "vocab": 151_936,
        "text": peer_large.TEXT,
        "step": {**bench_main.STEP, "prompts_per_step": 2, "n": 4},
        "cases": [_peer_large_case(256, ours_gen=2.0, ours_step=4.0), _peer_large_case(512, 7.0, 10.0)],
    }
    text = bench_main.SECTIONS["peer-large"][1](result)
    # ours: other = 4.0 - (2.0 + 0.1 + 0.6 + 1.0) = 0.3; 8 rows x 256 tokens / 2.0 s = 1024 tokens/s
    assert "| 256 | ours (vLLM-CPU rollout) | 4.00 | 2.00 | 0.10 | 0.60 | 1.00 | 0.30 | 1024 | 256 |" in text
    # TRL: other = 12.4 - 12.1 = 0.30; 2048 tokens / 8.0 s = 256 tokens/s
    assert "| 256 | TRL GRPOTrainer (HF generate) | 12.40 | 8.00 | 0.10 | 1.00 | 3.00 | 0.30 | 256 | 256 |" in text
    # 4.0 / 12.4 = 0.32; rollout 2/8 = 0.25, log-probs 0.6/1.0, update 1/3 = 0.33
    assert "| 256 | ours / TRL | 0.32× | 0.25× | 1.00× | 0.60× | 0.33× | 1.00× | | |" in text
    # met as a whole, and the phase that is not under half of TRL's is named all the same
    assert (
        "**256 tokens: ours / TRL = 0.32×** (target ≤ 0.5×: met; phases above 0.5× of TRL's: log-probs 0.60×)" in text
    )
    # 10 / 12.4 = 0.81, not met: the rollout (7/8 = 0.88) and log-probs (0.60) are above half of TRL's
    assert "**512 tokens: ours / TRL = 0.81×** (target ≤ 0.5×: NOT met; phases above 0.5× of TRL's: " in text
    assert "rollout 0.88×, log-probs 0.60×)" in text
    # engine: 2.0 - 0.4 = 1.6 s for 2048 tokens = 1280 tokens/s
    assert "Our rollout: the engine's generate call 1.60 s (1280 tokens/s) + weight sync 0.40 s." in text
    assert "1.5, 1.7, 1.6" in text, "the load average of the run is recorded"
    assert "43.1 M parameters" in text and "151,936 tokens" in text
    assert "Median of 2 steps after warm-up" in text and "Steps per side" not in text


def test_peer_large_section_says_how_many_steps_each_length_measured() -> None:
    from bench import peer_large

    short = _peer_large_case(256, ours_gen=2.0, ours_step=4.0)
    long = _peer_large_case(512, 7.0, 10.0)
    long["ours"]["steps"] = long["trl"]["steps"] = 1
    result = {
        "parameters": 43_122_368,
        "vocab": 151_936,
        "text": peer_large.TEXT,
        "step": {**bench_main.STEP, "prompts_per_step": 2, "n": 4},
        "cases": [short, long],
    }
    text = peer_large.section(result)
    assert "Median of the steps after warm-up (how many at each length: below)" in text
    assert "Same rows: yes. Steps per side: 2 after warm-up." in text
    assert "Same rows: yes. Steps per side: 1 after warm-up." in text


def test_peer_large_tokenizer_fills_the_vocabulary_and_moves_special_tokens_last() -> None:
    from bench.peer_large import _move_ids, extend_tokenizer

    tokenizer = {
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
        "added_tokens": [{"id": 2, "content": "<|endoftext|>"}, {"id": 3, "content": "<|image_pad|>"}],
    }
    extended, moved = extend_tokenizer(tokenizer, vocab=7)
    assert extended["model"]["vocab"] == {"a": 0, "b": 1, "Ġsyn0": 2, "Ġsyn1": 3, "Ġsyn2": 4}
    assert [t["id"] for t in extended["added_tokens"]] == [5, 6] and moved == {2: 5, 3: 6}
    assert tokenizer["added_tokens"][0]["id"] == 2, "the input is left as it was"
    config = {"image_token_id": 3, "text_config": {"eos_token_id": [2, 3], "vocab_size": 4}}
    _move_ids(config, moved)
    assert config == {"image_token_id": 6, "text_config": {"eos_token_id": [5, 6], "vocab_size": 4}}
    with pytest.raises(ValueError, match="more than 3"):
        extend_tokenizer(tokenizer, vocab=3)


def test_head_recompute_times_both_variants_and_the_kept_one_skips_the_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.utils.checkpoint

    from bench import head_recompute

    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)
    result = head_recompute.run(length=8, rounds=1, threads=1, vocab=300)
    assert [len(result["seconds"][k]) for k in ("recompute", "kept")] == [1, 1]
    # the warm-up update and the timed one with the recompute go through the checkpoint; the kept one does not
    assert len(calls) == 2
