"""Worker groups on a local Ray cluster (CPU, 2 ranks): dispatch modes, torch.distributed, errors, colocation."""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from verl.protocol import DataProto
from verl.single_controller import (
    Dispatch,
    RayResourcePool,
    RayWorkerGroup,
    Worker,
    WorkerError,
    WorkerGroupFuture,
    register,
    registered_methods,
)
from verl.single_controller.decorator import collect, dispatch

ray = pytest.importorskip("ray")


class EchoWorker(Worker):
    """Answers with its rank so the tests can see which rank got what."""

    def __init__(self, offset: int = 0) -> None:
        super().__init__()
        self.offset = offset
        self.seen_uids: list[list[str]] = []

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def info(self) -> dict:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "local_rank": self.local_rank,
            "device": str(self.device),
            "master": self.master_address,
            "pid": os.getpid(),
            "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def add(self, x: int, extra: list | None = None) -> int:
        return 100 * self.rank + x + self.offset + sum(extra or [])

    @register(dispatch_mode=Dispatch.RANK_ZERO)
    def whoami(self) -> str:
        return f"rank{self.rank}"

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def tag_rows(self, data: DataProto, scale: float = 1.0) -> DataProto:
        self.seen_uids.append(list(data.non_tensor_batch["uid"]))
        return DataProto.from_dict(
            tensors={"y": data.batch["x"] * scale, "rank": torch.full((len(data),), self.rank)},
            non_tensors={"uid": data.non_tensor_batch["uid"]},
            meta_info={"rank": self.rank},
        )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def metrics_only(self, data: DataProto) -> DataProto:
        return DataProto(meta_info={"metrics": {"rows": [len(data)]}})

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def seen(self) -> list[list[str]]:
        return self.seen_uids

    @register(dispatch_mode=Dispatch.ALL_TO_ALL)
    def scale(self, x: int, factor: int) -> int:
        return x * factor + self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def all_reduce(self) -> tuple[float, str]:
        self.init_distributed()
        tensor = torch.tensor([float(self.rank + 1)])
        dist.all_reduce(tensor)
        return tensor.item(), dist.get_backend()

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def fail_on(self, rank: int) -> int:
        if self.rank == rank:
            raise ValueError(f"boom from rank {self.rank}")
        return self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL, blocking=False)
    def square(self, x: int) -> int:
        return x * x + self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_on(self, rank: int) -> int:
        if self.rank == rank:
            os._exit(1)
        return self.rank

    def hidden(self) -> str:
        return "not exposed"


class ModelWorker(Worker):
    """Fails the way vLLM's engine does on a bad length: a pydantic ValidationError holding an unpicklable value."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self) -> None:
        import threading

        import pydantic

        pydantic.TypeAdapter(int).validate_python(threading.Lock())  # the error keeps the lock: not picklable

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def step(self) -> None:
        raise RuntimeError("NCCL timeout on the all-gather")

    def unregistered_init(self) -> None:  # reached through execute_all only: not wrapped, Ray's fallback text
        self.init_model()


class FailingInitWorker(Worker):
    def __init__(self) -> None:
        super().__init__()
        if self.rank == 1:
            raise RuntimeError("cannot start rank 1")


def _cpu_pool(**kwargs) -> RayResourcePool:
    return RayResourcePool([2], use_gpu=False, cpus_per_process=0.5, **kwargs)


def _batch(n: int) -> DataProto:
    return DataProto.from_dict(
        tensors={"x": torch.arange(n, dtype=torch.float32)},
        non_tensors={"uid": [f"u{i}" for i in range(n)]},
    )


@pytest.fixture(scope="module")
def ray_session():
    # The worker classes live in this test module, which Ray's worker processes cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        namespace="vsr1_test_single_controller",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def group(ray_session):
    wg = RayWorkerGroup(_cpu_pool(), EchoWorker, 7, name_prefix="echo")
    yield wg
    wg.shutdown()


# ---------------------------------------------------------------------------------------------- without Ray


def test_registered_methods_and_pure_dispatch():
    methods = registered_methods(EchoWorker)
    assert methods["tag_rows"].dispatch_mode is Dispatch.DP_COMPUTE_PROTO
    assert methods["square"].blocking is False
    assert "hidden" not in methods and "init_distributed" not in methods

    call = dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (_batch(5),), {"scale": 2.0})
    assert call.pad_size == 1 and call.padded_length == 6
    assert [list(a[0].non_tensor_batch["uid"]) for a in call.args] == [["u0", "u1", "u2"], ["u3", "u4", "u0"]]
    assert [kw["scale"] for kw in call.kwargs] == [2.0, 2.0]
    # two output rows per input row: the two rows made for the padding row are dropped
    outputs = [a[0].repeat(2) for a in call.args]
    assert len(collect(Dispatch.DP_COMPUTE_PROTO, outputs, call)) == 10

    # the padding row is a copy of row 0 for its shape only: it carries loss weight 0, the real rows 1
    assert [a[0].batch["loss_weight"].tolist() for a in call.args] == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    weighted = _batch(3)
    weighted.batch["loss_weight"] = torch.tensor([0.5, 2.0, 3.0])
    call = dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (weighted,), {})
    assert [a[0].batch["loss_weight"].tolist() for a in call.args] == [[0.5, 2.0], [3.0, 0.0]]
    assert "loss_weight" not in dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (_batch(4),), {}).args[0][0].batch

    with pytest.raises(ValueError, match="one item per rank"):
        dispatch(Dispatch.ALL_TO_ALL, 2, ([1, 2, 3],), {})
    with pytest.raises(TypeError, match="DataProto argument"):
        dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (1,), {})
    with pytest.raises(TypeError, match="Dispatch member"):
        register(dispatch_mode="one_to_all")


def test_collect_merges_every_ranks_metrics():
    call = dispatch(Dispatch.DP_COMPUTE_PROTO, 2, (_batch(4),), {})
    results = [
        DataProto(meta_info={"metrics": {"actor/pg_loss": [1.0, 2.0], "actor/lr": 0.1}}),
        DataProto(meta_info={"metrics": {"actor/pg_loss": [3.0], "actor/lr": 0.1}}),
    ]
    merged = collect(Dispatch.DP_COMPUTE_PROTO, results, call).meta_info["metrics"]
    assert merged == {"actor/pg_loss": [1.0, 2.0, 3.0], "actor/lr": 0.1}


# ---------------------------------------------------------------------------------------------- with Ray


def test_ranks_and_environment(group):
    assert group.world_size == 2
    infos = group.info()
    assert [i["rank"] for i in infos] == [0, 1]
    assert all(i["world_size"] == 2 and i["device"] == "cpu" for i in infos)
    assert [i["local_rank"] for i in infos] == [0, 1]
    assert {i["master"] for i in infos} == {group.master_address}
    assert all(i["cuda_visible"] == "" for i in infos)
    assert len({i["pid"] for i in infos}) == 2


def test_one_to_all_and_rank_zero(group):
    assert group.add(1) == [8, 108]
    assert group.add(1, extra=[10, 20]) == [38, 138]  # a list goes through the object store once
    assert group.whoami() == "rank0"
    assert group.execute_all("hidden") == ["not exposed", "not exposed"]


def test_unregistered_method_is_not_exposed(group):
    with pytest.raises(AttributeError, match="not registered"):
        group.hidden()
    with pytest.raises(AttributeError, match="no method"):
        group.execute_all("missing")


def test_dp_compute_proto_pads_and_restores_order(group):
    before = group.seen()
    data = _batch(5)
    out = group.tag_rows(data, scale=3.0)
    assert len(out) == 5
    assert list(out.non_tensor_batch["uid"]) == [f"u{i}" for i in range(5)]
    assert torch.equal(out.batch["y"], torch.arange(5, dtype=torch.float32) * 3)
    assert out.batch["rank"].tolist() == [0, 0, 0, 1, 1]
    seen = [s[len(b) :] for s, b in zip(group.seen(), before)]
    assert seen == [[["u0", "u1", "u2"]], [["u3", "u4", "u0"]]]  # rank 1 got the padding row

    even = group.tag_rows(_batch(4))
    assert even.batch["rank"].tolist() == [0, 0, 1, 1]
    metrics = group.metrics_only(data)  # metrics-only results have no rows to unpad
    # every rank's metrics reach the driver (rank order), not only rank 0's
    assert len(metrics) == 0 and metrics.meta_info["metrics"] == {"rows": [3, 3]}


def test_all_to_all(group):
    assert group.scale([1, 2], factor=[10, 100]) == [10, 201]
    with pytest.raises(ValueError, match="one item per rank"):
        group.scale([1, 2, 3], factor=[1, 1, 1])


def test_non_blocking_returns_future(group):
    future = group.square(3)
    assert isinstance(future, WorkerGroupFuture)
    assert future.get(timeout_s=60) == [9, 10]
    assert future.done()


def test_torch_distributed_all_reduce(group):
    assert group.all_reduce() == [(3.0, "gloo"), (3.0, "gloo")]
    assert group.all_reduce() == [(3.0, "gloo"), (3.0, "gloo")]  # init_distributed is idempotent


def test_worker_exception_names_class_method_rank(group):
    with pytest.raises(WorkerError, match=r"EchoWorker\.fail_on raised on rank 1 of 2") as info:
        group.fail_on(1)
    assert "ValueError: boom from rank 1" in str(info.value)
    assert (info.value.worker_class, info.value.method, info.value.rank) == ("EchoWorker", "fail_on", 1)
    assert group.fail_on(5) == [0, 1]  # the group still works


def test_failing_init_raises_and_cleans_up(ray_session):
    pool = _cpu_pool()
    with pytest.raises(WorkerError, match=r"FailingInitWorker rank 1 of 2 .* died during __init__") as info:
        RayWorkerGroup(pool, FailingInitWorker, name_prefix="failing_init")
    first_line = str(info.value).split("\n", 1)[0]
    assert first_line.endswith("died during __init__: RuntimeError: cannot start rank 1")
    assert (info.value.cause_type, info.value.cause_message) == ("RuntimeError", "cannot start rank 1")
    assert not [name for name in ray.util.list_named_actors() if name.startswith("failing_init")]


def test_an_unpicklable_worker_exception_arrives_as_its_type_and_message(ray_session):
    with RayWorkerGroup(_cpu_pool(), ModelWorker, name_prefix="unpicklable") as wg, pytest.raises(WorkerError) as info:
        wg.init_model()
    error = info.value
    first_line = str(error).split("\n", 1)[0]
    assert first_line.startswith("ModelWorker.init_model raised on rank ")
    assert "pydantic_core._pydantic_core.ValidationError: 1 validation error for int | Input should be" in first_line
    assert "isn't serializable" not in str(error)
    assert error.cause_type == "pydantic_core._pydantic_core.ValidationError"
    assert "ValueError" in error.cause_types  # pydantic's ValidationError is a ValueError: a config-type error
    assert "validate_python" in error.remote_traceback and "worker traceback:" in str(error)

    with RayWorkerGroup(_cpu_pool(), ModelWorker, name_prefix="unwrapped") as wg, pytest.raises(WorkerError) as info:
        wg.execute_all("unregistered_init")  # Ray's "isn't serializable" text: the cause is read from the traceback
    assert info.value.cause_type == "pydantic_core._pydantic_core.ValidationError"
    assert info.value.cause_message.startswith("1 validation error for int\n  Input should be a valid integer")
    assert "isn't serializable" not in str(info.value).split("\n", 1)[0]


def test_a_worker_failure_reaches_the_user_as_its_cause_with_the_right_advice(ray_session, tmp_path):
    """Through the training loop: a failure while the model starts says to fix the cause (a rerun would repeat
    it), a runtime failure after a checkpoint says to rerun and resume."""
    from verl.trainer import TrainingAborted
    from verl.trainer.config import PPOConfig
    from verl.trainer.loop import TrainingLoop
    from verl.utils import checkpoint as ckpt
    from verl.utils.config_utils import load_config

    class Loop(TrainingLoop):
        def _start_workers(self) -> None:
            self.group = RayWorkerGroup(_cpu_pool(), ModelWorker, name_prefix="loop_model")
            self.group.init_model()

        def _checkpoint_groups(self) -> dict:
            return {"actor": getattr(self, "group", None)}

    loop = Loop(load_config(PPOConfig, [f"trainer.save_checkpoint_path={tmp_path}", "trainer.logger=[file]"]))
    ckpt.partial_dir(tmp_path, 1)
    ckpt.finalize(tmp_path, 1, {"global_step": 1})
    try:
        with pytest.raises(TrainingAborted) as info:
            loop.init_workers()
        head, advice = str(info.value).split("\n")[:2]
        assert re.match(r"the loop_model worker \(rank [01]\) failed during init_model at step 0 \(phase init_wo", head)
        assert "pydantic_core._pydantic_core.ValidationError: 1 validation error for int" in head
        assert advice.startswith("a rerun of the same command would fail the same way: fix the setting")
        assert "Rerun the same command to resume" not in str(info.value)

        loop.global_step, loop.phase = 3, "update_actor"
        with pytest.raises(TrainingAborted) as info:
            try:
                loop.group.step()
            except WorkerError as exc:
                raise loop._worker_failure(exc) from exc
        head, advice = str(info.value).split("\n")[:2]
        assert head.endswith(
            "failed during step at step 3 (phase update_actor): RuntimeError: NCCL timeout on the all-gather"
        )
        assert advice == (
            f"last complete checkpoint: {tmp_path / 'global_step_1'}, intact. Rerun the same command to resume from "
            "it (trainer.resume_mode=auto)"
        )
    finally:
        loop.shutdown()


def test_dead_actor_reports_rank(ray_session):
    with RayWorkerGroup(_cpu_pool(), EchoWorker, name_prefix="dying") as wg:
        died = r"EchoWorker rank 1 of 2 \(actor dying_1\) died during exit_on"
        with pytest.raises(WorkerError, match=died):
            wg.exit_on(1)


def test_two_groups_share_a_pool(ray_session):
    pool = _cpu_pool(max_colocate_count=2)
    assert pool.actor_resources() == {"num_cpus": 0.25, "num_gpus": 0.0}
    with (
        RayWorkerGroup(pool, EchoWorker, 0, name_prefix="colo_actor") as actor_group,
        RayWorkerGroup(pool, EchoWorker, 1000, name_prefix="colo_critic") as critic_group,
    ):
        assert len(pool.placement_groups()) == 1
        assert actor_group.add(1) == [1, 101]
        assert critic_group.add(1) == [1001, 1101]
        assert actor_group.master_address != critic_group.master_address
        # separate process groups per worker group
        assert actor_group.all_reduce() == critic_group.all_reduce() == [(3.0, "gloo"), (3.0, "gloo")]
        with pytest.raises(ValueError, match="max_colocate_count=2"):
            RayWorkerGroup(pool, EchoWorker, name_prefix="colo_third")
    assert not pool._placement_groups  # removed with the last group


def test_shutdown_leaves_no_actors(ray_session):
    pool = _cpu_pool()
    wg = RayWorkerGroup(pool, EchoWorker, name_prefix="to_shut")
    assert sorted(n for n in ray.util.list_named_actors() if n.startswith("to_shut")) == ["to_shut_0", "to_shut_1"]
    (pg,) = pool.placement_groups()
    wg.shutdown()
    wg.shutdown()  # idempotent
    assert not [n for n in ray.util.list_named_actors() if n.startswith("to_shut")]
    deadline = time.monotonic() + 10
    while ray.util.placement_group_table(pg)["state"] != "REMOVED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.util.placement_group_table(pg)["state"] == "REMOVED"
    with pytest.raises(RuntimeError, match="shut down"):
        wg.add(1)
    assert np.isclose(ray.available_resources().get("CPU", 0.0) % 0.5, 0.0)
