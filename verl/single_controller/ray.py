"""Ray back end: resource pools (placement groups) and worker groups (one Ray actor per rank).

A :class:`RayResourcePool` reserves the processes of a job, one placement group per node with one bundle per process;
with several nodes each group is pinned to a Ray node of its own (by the node's ``ray.io/node-id`` label), so node
``i``'s ranks share one machine and no two nodes' ranks do.
A :class:`RayWorkerGroup` starts one actor of a :class:`~verl.single_controller.worker.Worker` subclass in every
bundle and binds the class's ``@register``-ed methods onto itself, so the driver writes ``wg.compute(data)`` and the
call is dispatched to the ranks and collected according to the method's :class:`~.decorator.Dispatch` mode.

Several groups may share a pool (a critic group beside the actor group): with ``max_colocate_count=k`` each actor asks
for ``1/k`` of its bundle's GPU and CPUs, so up to ``k`` groups fit on the same devices.
"""

from __future__ import annotations

import functools
import logging
import pickle
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from .decorator import Dispatch, MethodSpec, collect, dispatch, registered_methods
from .worker import Worker

__all__ = [
    "ClusterError",
    "RayResourcePool",
    "RayWorkerGroup",
    "RemoteException",
    "WorkerError",
    "WorkerGroupFuture",
]

logger = logging.getLogger(__name__)

# Argument types small enough that Ray inlines them in every task; anything else is put in the object store once per
# broadcast call instead of once per rank.
_INLINE_TYPES = (type(None), bool, int, float, str)

# How long shutdown waits for killed actors to be reported dead.
_SHUTDOWN_WAIT_S = 10.0
# How long a failed call waits for the other ranks to finish, to name a rank that died rather than one that only
# lost its connection to it (see _dead_peer).
_PEER_DEATH_GRACE_S = 5.0
# How long the error for a dead rank of a multi-node group waits for Ray to report whether its node died too.
_NODE_DEATH_WAIT_S = 3.0


# The label every Ray node carries with its own id: a bundle selecting it is placed on that node and no other.
NODE_ID_LABEL = "ray.io/node-id"


class ClusterError(RuntimeError):
    """The Ray cluster cannot hold the pool: fewer alive nodes with the per-node resources than the pool has
    nodes. The message lists what was asked and what each node has."""


class WorkerError(RuntimeError):
    """A worker failed during a group call; the message's first line names the worker class, the method, the
    rank and the exception raised inside the worker (its type and message), the worker's traceback follows.

    ``cause`` is the original Ray error (also chained as ``__cause__``); ``group`` the group's name prefix;
    ``cause_type`` the qualified name of the exception raised in the worker (or of Ray's error when the process
    died), ``cause_message`` its message, ``cause_types`` the names of its class and bases (``ValueError`` for
    pydantic's ``ValidationError``) and ``remote_traceback`` the worker's traceback ("" when the process died).
    ``node`` names the rank's Ray node (its IP and id prefix) when the group spans several nodes, "" otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        worker_class: str,
        method: str,
        rank: int,
        cause: BaseException,
        group: str = "",
        cause_type: str = "",
        cause_message: str | None = None,
        cause_types: Sequence[str] = (),
        remote_traceback: str = "",
        node: str = "",
    ) -> None:
        super().__init__(message)
        self.worker_class, self.method, self.rank, self.cause = worker_class, method, rank, cause
        self.node = node  # "node <ip> (id <id prefix>)" when the group spans several nodes, else ""
        self.group = group  # the group's name prefix, e.g. "actor" or "critic"
        self.cause_type, self.cause_message = cause_type, cause_message
        self.cause_types, self.remote_traceback = tuple(cause_types), remote_traceback


class RemoteException(Exception):
    """An exception raised inside a worker that cannot be pickled (pydantic's ``ValidationError`` from vLLM's
    config, ...), carried to the driver as text: its type's qualified name, its message, the names of its class
    and bases, and its traceback. Without it Ray would only say that the exception "isn't serializable"."""

    def __init__(self, type_name: str, message: str, type_names: Sequence[str] = (), traceback_text: str = "") -> None:
        super().__init__(type_name, message, tuple(type_names), traceback_text)
        self.type_name, self.message = type_name, message
        self.type_names, self.traceback_text = tuple(type_names), traceback_text

    @classmethod
    def from_exception(cls, exc: BaseException) -> RemoteException:
        import traceback

        return cls(
            _qualified_name(type(exc)),
            str(exc),
            [klass.__name__ for klass in type(exc).__mro__],
            "".join(traceback.format_exception(exc)),
        )

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


def _qualified_name(klass: type) -> str:
    return klass.__qualname__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"


def _travels(exc: BaseException) -> bool:
    """Whether ``exc`` survives the trip to the driver (Ray pickles it with cloudpickle)."""
    try:
        pickle.dumps(exc)
        ray.cloudpickle.loads(ray.cloudpickle.dumps(exc))
    except Exception:
        return False
    return True


def _portable_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` raising, in place of an exception that cannot travel to the driver, its text version."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if _travels(exc):
                raise
            raise RemoteException.from_exception(exc) from None

    return call


def _with_portable_errors(worker_cls: type[Worker], names: Sequence[str]) -> type[Worker]:
    """A subclass of ``worker_cls`` (same name) whose methods ``names`` raise :class:`RemoteException` for an
    exception that cannot be pickled, so that its type and message reach the driver."""
    namespace: dict[str, Any] = {name: _portable_errors(getattr(worker_cls, name)) for name in names}
    namespace["__doc__"] = worker_cls.__doc__
    namespace["_vsr1_node_id"] = _node_id_of_actor
    return type(worker_cls.__name__, (worker_cls,), namespace)


def _node_id_of_actor(self: Any) -> str:
    """The id of the Ray node the actor runs on, as the actor itself sees it (the group's start-up call)."""
    return ray.get_runtime_context().get_node_id()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _exception_in_traceback(text: str) -> tuple[str, str] | None:
    """``(type, message)`` of the exception a formatted traceback ends with (what follows its last frame)."""
    lines = _ANSI.sub("", text).rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    if not frames:
        return None
    i = frames[-1] + 1
    while i < len(lines) and lines[i].startswith("    "):  # the frame's source line and its carets
        i += 1
    if i >= len(lines):
        return None
    type_name, _, first = lines[i].partition(": ")
    return type_name.strip(), "\n".join([first, *lines[i + 1 :]]).strip()


def _one_line(text: str, limit: int = 2000) -> str:
    """A multi-line message (pydantic's, say) on one line, its lines joined with " | "."""
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _death_summary(text: str) -> str:
    """Why Ray says a worker process died: its first sentence and the exit detail, without the hints."""
    text = _ANSI.sub("", text)
    first = text.strip().split("\n", 1)[0].strip()
    detail = re.search(r"Worker exit detail: (.*?)(?:\.\s|$)", text, re.S)
    return first + (f" (worker exit detail: {_one_line(detail.group(1), 300)})" if detail else "")


@dataclass(frozen=True)
class _Slot:
    """Where one rank runs: a bundle of a placement group, and the rank's place on that node."""

    placement_group: PlacementGroup
    bundle_index: int
    local_rank: int
    local_world_size: int


class RayResourcePool:
    """The processes of a job: ``process_on_nodes[i]`` processes on node ``i``, one placement group per node.

    Args:
        process_on_nodes: processes per node, e.g. ``[8] * nnodes``. On a GPU pool each process owns one GPU; on a CPU
            pool the numbers are simply ranks (``n_gpus_per_node`` in the config means ranks there).
        use_gpu: bundles of ``{"CPU": cpus_per_process, "GPU": 1}`` when true, ``{"CPU": cpus_per_process}`` otherwise.
        max_colocate_count: how many worker groups may share the bundles at once; each of their actors requests
            ``1/max_colocate_count`` of its bundle's GPU and CPUs. 1 (default) when one worker class holds every
            colocated role.
        cpus_per_process: logical CPUs reserved per process (Ray also sets ``OMP_NUM_THREADS`` from the actor's
            share, at least 1).
        name_prefix: prefix of the placement groups' names (a random one by default).
        ready_timeout_s: how long to wait for the cluster to grant the placement groups before giving up with an
            error that lists what was asked and what is free.

    The placement groups are created when the first group starts and removed when the last group on the pool shuts
    down (or by :meth:`remove`). Each is ``STRICT_PACK``: a node's processes share that node. With several nodes each
    group is pinned to a distinct alive Ray node that has the node's resources in total (:class:`ClusterError` at
    once when the cluster has too few such nodes), so two nodes' ranks never share a machine.
    """

    def __init__(
        self,
        process_on_nodes: Sequence[int],
        use_gpu: bool = True,
        max_colocate_count: int = 1,
        cpus_per_process: float = 1.0,
        name_prefix: str | None = None,
        ready_timeout_s: float = 600.0,
    ) -> None:
        self.process_on_nodes = [int(n) for n in process_on_nodes]
        if not self.process_on_nodes or any(n < 1 for n in self.process_on_nodes):
            raise ValueError(
                f"process_on_nodes needs at least one node and >= 1 process per node, got {process_on_nodes}"
            )
        if max_colocate_count < 1:
            raise ValueError(f"max_colocate_count must be >= 1, got {max_colocate_count}")
        if cpus_per_process <= 0:
            raise ValueError(f"cpus_per_process must be > 0, got {cpus_per_process}")
        self.use_gpu = bool(use_gpu)
        self.max_colocate_count = int(max_colocate_count)
        self.cpus_per_process = float(cpus_per_process)
        self.name_prefix = name_prefix or f"vsr1_pool_{uuid.uuid4().hex[:8]}"
        self.ready_timeout_s = ready_timeout_s
        self._placement_groups: list[PlacementGroup] = []
        self._groups: dict[int, str] = {}  # id(worker group) -> its name prefix
        self._ports_given: set[tuple[str, int]] = set()
        self._node_ids: list[str] = []

    @property
    def world_size(self) -> int:
        """Total number of processes (ranks) in the pool."""
        return sum(self.process_on_nodes)

    def bundle(self) -> dict[str, float]:
        """The resources reserved for one process."""
        return {"CPU": self.cpus_per_process, "GPU": 1.0} if self.use_gpu else {"CPU": self.cpus_per_process}

    def actor_resources(self) -> dict[str, float]:
        """``num_cpus`` / ``num_gpus`` of one actor: its share of a bundle."""
        return {
            "num_cpus": self.cpus_per_process / self.max_colocate_count,
            "num_gpus": 1.0 / self.max_colocate_count if self.use_gpu else 0.0,
        }

    def node_bundle(self, processes: int) -> dict[str, float]:
        """The resources ``processes`` ranks reserve on one node together."""
        return {key: value * processes for key, value in self.bundle().items()}

    def _choose_nodes(self) -> list[str] | None:
        """The Ray node id each of the pool's nodes is pinned to, or None for a one-node pool (Ray picks the node).

        Raises :class:`ClusterError` when fewer alive nodes than the pool's nodes hold the per-node resources in
        total: with a cluster that is too small the placement groups would only wait for ``ready_timeout_s``.
        Among the nodes that fit, those where the resources are free right now come first.
        """
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        try:
            free = ray._private.state.state.available_resources_per_node()
        except Exception:  # a private API: without it, order by the totals
            free = {}

        def fits(resources: dict[str, float], processes: int) -> bool:
            return all(resources.get(key, 0.0) >= value for key, value in self.node_bundle(processes).items())

        chosen: list[str] = []
        for processes in self.process_on_nodes:
            candidates = [n for n in nodes if n["NodeID"] not in chosen and fits(n["Resources"], processes)]
            candidates.sort(key=lambda n: fits(free.get(n["NodeID"], {}), processes), reverse=True)
            if not candidates:
                raise ClusterError(self._too_small_message(nodes))
            chosen.append(candidates[0]["NodeID"])
        return chosen if len(self.process_on_nodes) > 1 else None

    def _too_small_message(self, nodes: list[dict[str, Any]]) -> str:
        wanted = ", ".join(f"{self.node_bundle(n)}" for n in self.process_on_nodes)
        have = "; ".join(
            f"{node['NodeManagerAddress']} (node {node['NodeID'][:8]}): "
            + ", ".join(f"{key}={value:g}" for key, value in sorted(node["Resources"].items()) if key in ("CPU", "GPU"))
            for node in nodes
        )
        return (
            f"the Ray cluster cannot hold {len(self.process_on_nodes)} node(s) of {self.process_on_nodes} process(es) "
            f"on distinct nodes: each needs {wanted} in total; the cluster has {len(nodes)} alive node(s): "
            f"{have or 'none'}. Start Ray on more nodes (ray start --address=<head>:6379 on each) or ask for fewer "
            "nodes or processes per node"
        )

    def placement_groups(self) -> list[PlacementGroup]:
        """The pool's placement groups (one per node, each on its own Ray node), created and waited for on first
        use."""
        if not self._placement_groups:
            targets = self._choose_nodes()
            groups = []
            for i, n in enumerate(self.process_on_nodes):
                selector = None if targets is None else [{NODE_ID_LABEL: targets[i]}] * n
                groups.append(
                    placement_group(
                        [self.bundle()] * n,
                        strategy="STRICT_PACK",
                        name=f"{self.name_prefix}_node{i}",
                        bundle_label_selector=selector,
                    )
                )
            try:
                ray.get([pg.ready() for pg in groups], timeout=self.ready_timeout_s)
            except GetTimeoutError:
                for pg in groups:
                    remove_placement_group(pg)
                raise RuntimeError(
                    f"the cluster did not grant {len(groups)} placement group(s) of {self.process_on_nodes} bundles "
                    f"{self.bundle()} (STRICT_PACK per node, each on its own node) within "
                    f"{self.ready_timeout_s:.0f}s; free resources: {ray.available_resources()}"
                ) from None
            self._placement_groups = groups
            self._node_ids = [ray.util.placement_group_table(pg)["bundles_to_node_id"][0] for pg in groups]
        return list(self._placement_groups)

    @property
    def node_ids(self) -> list[str]:
        """The Ray node id of each of the pool's nodes, in node order (the placement groups are made if needed)."""
        self.placement_groups()
        return list(self._node_ids)

    def node_names(self) -> list[str]:
        """Each of the pool's nodes as messages name it (``node <ip> (id <prefix>)``), in node order."""
        address = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes()}
        return [_node_name(address.get(node_id, "?"), node_id) for node_id in self.node_ids]

    def run_on_each_node(self, fn: Callable[..., Any], *args: Any, nodes: Sequence[int] | None = None) -> list[Any]:
        """``fn(*args)`` in a zero-resource task on each of the pool's nodes (or on the nodes ``nodes`` lists, by
        index), inside the node's placement group; the results in that order."""
        groups = self.placement_groups()
        task = ray.remote(num_cpus=0)(fn)
        refs = [
            task.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(groups[i], placement_group_bundle_index=0)
            ).remote(*args)
            for i in (range(len(groups)) if nodes is None else nodes)
        ]
        return ray.get(refs)

    def slots(self) -> list[_Slot]:
        """Where each rank runs, in rank order: node by node, bundle by bundle."""
        return [
            _Slot(pg, index, local_rank=index, local_world_size=n)
            for pg, n in zip(self.placement_groups(), self.process_on_nodes)
            for index in range(n)
        ]

    def remove(self) -> None:
        """Remove the placement groups now; actors still running in them are killed."""
        for pg in self._placement_groups:
            remove_placement_group(pg)
        self._placement_groups, self._node_ids = [], []
        self._ports_given.clear()

    def _join(self, group: RayWorkerGroup, name: str) -> None:
        if len(self._groups) >= self.max_colocate_count:
            raise ValueError(
                f"resource pool {self.name_prefix} already holds {len(self._groups)} worker group(s) "
                f"({sorted(self._groups.values())}) and max_colocate_count={self.max_colocate_count}; create the pool "
                "with a larger max_colocate_count to colocate more groups"
            )
        self._groups[id(group)] = name

    def _leave(self, group: RayWorkerGroup) -> None:
        if self._groups.pop(id(group), None) is not None and not self._groups:
            self.remove()

    def _master_address(self, slot: _Slot) -> tuple[str, int]:
        """The IP of ``slot``'s node and a port that is free there (and not handed to another group of this pool)."""
        for _ in range(20):
            address = _probe_node(slot)
            if address not in self._ports_given:
                self._ports_given.add(address)
                return address
        raise RuntimeError(f"could not find a free port on node {address[0]} that this pool has not handed out")


def _probe_node(slot: _Slot) -> tuple[str, int]:
    """Ask a zero-resource task on ``slot``'s node for the node's IP and a free port."""

    # Defined here so that cloudpickle ships the function by value: the probe process imports only socket and ray.
    def probe() -> tuple[str, int]:
        import random
        import socket

        import ray

        # A port below the kernel's ephemeral range: one picked by bind(0) is free now, but the outgoing
        # connections of Ray and the tests draw from that same range and can take it before the store binds.
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                ephemeral_low = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            ephemeral_low = 32768
        candidates = [random.randrange(20000, ephemeral_low) for _ in range(50)] if ephemeral_low > 20000 else []
        for port in [*candidates, 0]:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("", port))
                except OSError:
                    continue
                return ray.util.get_node_ip_address(), int(sock.getsockname()[1])
        raise OSError("no free port on this node")

    strategy = PlacementGroupSchedulingStrategy(slot.placement_group, placement_group_bundle_index=slot.bundle_index)
    return ray.get(ray.remote(num_cpus=0)(probe).options(scheduling_strategy=strategy).remote())


class WorkerGroupFuture:
    """The pending result of a group call made with ``blocking=False``: :meth:`get` waits and collects."""

    def __init__(
        self, group: RayWorkerGroup, method: str, refs: list[ray.ObjectRef], collect_fn: Callable[[list], Any]
    ) -> None:
        self._group, self._method, self._refs, self._collect = group, method, refs, collect_fn

    @property
    def refs(self) -> list[ray.ObjectRef]:
        """One object ref per rank, in rank order (for ``ray.wait``)."""
        return list(self._refs)

    def done(self) -> bool:
        """Whether every rank has finished (successfully or not)."""
        ready, _ = ray.wait(self._refs, num_returns=len(self._refs), timeout=0)
        return len(ready) == len(self._refs)

    def get(self, timeout_s: float | None = None) -> Any:
        """Wait for every rank and return the collected value; a failing rank raises :class:`WorkerError`."""
        return self._collect(self._group._gather(self._method, self._refs, timeout_s))


class RayWorkerGroup:
    """``world_size`` Ray actors of ``worker_cls``, one per bundle of ``resource_pool``, driven as one object.

    Every ``@register``-ed method of ``worker_cls`` becomes a method of the group with the same name: it dispatches the
    arguments to the ranks per its mode, waits (``blocking=True``) and returns the collected value, or returns a
    :class:`WorkerGroupFuture` (``blocking=False``). Other methods are not exposed (:meth:`execute_all` calls any
    method by name on every rank).

    ``*args`` and ``**kwargs`` go to ``worker_cls.__init__`` on every rank. Each actor gets the environment variables
    ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (rank 0's node
    and a port free there), so ``Worker.init_distributed`` can rendezvous; on a CPU pool also
    ``CUDA_VISIBLE_DEVICES=""``. The actors are named ``f"{name_prefix}_{rank}"`` in the driver's namespace.

    The constructor returns when every actor has finished ``__init__``; an actor whose ``__init__`` raises makes it
    raise :class:`WorkerError` (after killing the others).
    """

    def __init__(
        self,
        resource_pool: RayResourcePool,
        worker_cls: type[Worker],
        *args: Any,
        name_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(worker_cls, type) and issubclass(worker_cls, Worker)):
            raise TypeError(f"worker_cls must be a subclass of Worker, got {worker_cls!r}")
        self._pool = resource_pool
        self._worker_cls = worker_cls
        self._methods = registered_methods(worker_cls)
        clashes = sorted(name for name in self._methods if hasattr(RayWorkerGroup, name))
        if clashes:
            raise ValueError(
                f"{worker_cls.__name__} registers {clashes}, which RayWorkerGroup itself defines; rename them"
            )
        self.name_prefix = name_prefix or f"{worker_cls.__name__}_{uuid.uuid4().hex[:8]}"
        self._workers: list[ray.actor.ActorHandle] = []
        self._worker_names: list[str] = []
        self._rank_nodes: list[tuple[str, str]] = []  # (node IP, node id) per rank
        self._master: tuple[str, int] | None = None
        resource_pool._join(self, self.name_prefix)
        self._alive = True
        try:
            self._start(args, kwargs)
        except BaseException:
            self.shutdown()
            raise
        for name, spec in self._methods.items():
            setattr(self, name, self._bound_method(name, spec))

    # ------------------------------------------------------------------ start-up

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        slots = self._pool.slots()
        self._master = self._pool._master_address(slots[0])
        remote_cls = ray.remote(_with_portable_errors(self._worker_cls, list(self._methods)))
        resources = self._pool.actor_resources()
        for rank, slot in enumerate(slots):
            env = {
                "RANK": str(rank),
                "WORLD_SIZE": str(len(slots)),
                "LOCAL_RANK": str(slot.local_rank),
                "LOCAL_WORLD_SIZE": str(slot.local_world_size),
                "MASTER_ADDR": self._master[0],
                "MASTER_PORT": str(self._master[1]),
            }
            if not self._pool.use_gpu:
                env["CUDA_VISIBLE_DEVICES"] = ""
            name = f"{self.name_prefix}_{rank}"
            strategy = PlacementGroupSchedulingStrategy(
                slot.placement_group, placement_group_bundle_index=slot.bundle_index
            )
            options = dict(name=name, scheduling_strategy=strategy, runtime_env={"env_vars": env}, **resources)
            self._workers.append(remote_cls.options(**options).remote(*args, **kwargs))
            self._worker_names.append(name)
        # Each actor says where it runs once its __init__ is done (a failing __init__ raises here).
        node_ids = self._gather("__init__", [worker._vsr1_node_id.remote() for worker in self._workers], None)
        address = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes()}
        self._rank_nodes = [(address.get(node_id, "?"), node_id) for node_id in node_ids]
        if self.spans_nodes:
            logger.info(
                "%s ranks by node: %s",
                self.name_prefix,
                "; ".join(f"rank {rank} on {_node_name(*node)}" for rank, node in enumerate(self._rank_nodes)),
            )

    def _bound_method(self, name: str, spec: MethodSpec) -> Callable[..., Any]:
        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, spec.dispatch_mode, spec.blocking, args, kwargs)

        worker_method = getattr(self._worker_cls, name)
        method.__name__ = name
        method.__qualname__ = f"{type(self).__name__}[{self._worker_cls.__name__}].{name}"
        method.__doc__ = worker_method.__doc__
        return method

    # ------------------------------------------------------------------ calls

    @property
    def world_size(self) -> int:
        """Number of ranks (actors)."""
        return len(self._workers)

    @property
    def workers(self) -> list[ray.actor.ActorHandle]:
        """The actor handles, in rank order."""
        return list(self._workers)

    @property
    def worker_names(self) -> list[str]:
        """The actors' names, in rank order."""
        return list(self._worker_names)

    @property
    def master_address(self) -> tuple[str, int]:
        """``(MASTER_ADDR, MASTER_PORT)`` handed to the ranks."""
        return self._master

    @property
    def resource_pool(self) -> RayResourcePool:
        """The pool the group's actors run in."""
        return self._pool

    @property
    def rank_nodes(self) -> list[tuple[str, str]]:
        """``(node IP, Ray node id)`` of each rank, in rank order, as each actor reported it at start-up."""
        return list(self._rank_nodes)

    @property
    def spans_nodes(self) -> bool:
        """Whether the ranks run on more than one Ray node."""
        return len({node_id for _, node_id in self._rank_nodes}) > 1

    @property
    def worker_class(self) -> type[Worker]:
        return self._worker_cls

    def execute_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call ``method`` (registered or not) on every rank with the same arguments; the results in rank order."""
        return self.execute_all_async(method, *args, **kwargs).get()

    def execute_all_async(self, method: str, *args: Any, **kwargs: Any) -> WorkerGroupFuture:
        """Like :meth:`execute_all` but returns a :class:`WorkerGroupFuture` at once."""
        if not callable(getattr(self._worker_cls, method, None)):
            raise AttributeError(f"{self._worker_cls.__name__} has no method {method!r}")
        return self._call(method, Dispatch.ONE_TO_ALL, False, args, kwargs)

    def _call(self, method: str, mode: Dispatch, blocking: bool, args: tuple, kwargs: dict) -> Any:
        if not self._alive:
            raise RuntimeError(f"worker group {self.name_prefix} was shut down; cannot call {method}")
        if mode in (Dispatch.ONE_TO_ALL, Dispatch.RANK_ZERO) and self.world_size > 1:
            args = tuple(_put_once(value) for value in args)
            kwargs = {key: _put_once(value) for key, value in kwargs.items()}
        call = dispatch(mode, self.world_size, args, kwargs)
        refs = [
            getattr(worker, method).remote(*rank_args, **rank_kwargs)
            for worker, rank_args, rank_kwargs in zip(self._workers, call.args, call.kwargs)
        ]
        future = WorkerGroupFuture(self, method, refs, lambda results: collect(mode, results, call))
        return future.get() if blocking else future

    def _gather(self, method: str, refs: list[ray.ObjectRef], timeout_s: float | None) -> list[Any]:
        """The ranks' results in rank order; the first rank to fail raises at once, even while others still run."""
        rank_of = {ref: rank for rank, ref in enumerate(refs)}
        values: list[Any] = [None] * len(refs)
        pending = list(refs)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, pending = ray.wait(pending, num_returns=1, timeout=remaining)
            if not ready:
                late = sorted(rank_of[ref] for ref in pending)
                raise TimeoutError(
                    f"{self._worker_cls.__name__}.{method}: rank(s) {late} did not answer within {timeout_s}s"
                )
            rank = rank_of[ready[0]]
            try:
                values[rank] = ray.get(ready[0])
            except RayError as err:
                if not isinstance(err, RayActorError) and pending:
                    rank, err = _dead_peer(pending, rank_of) or (rank, err)
                raise self._worker_error(method, rank, err) from err
        return values

    def _worker_error(self, method: str, rank: int, err: RayError) -> WorkerError:
        """The error for ``rank`` failing in ``method``: its first line carries the exception raised inside the
        worker (type and message), not Ray's wrapper; the worker's traceback follows."""
        cls = self._worker_cls.__name__
        node = _node_name(*self._rank_nodes[rank]) if self.spans_nodes and rank < len(self._rank_nodes) else ""
        where = f"rank {rank} of {self.world_size} (actor {self._worker_names[rank]}" + (f", {node})" if node else ")")
        cause_type, cause_message, cause_types, remote_traceback = _describe_ray_error(err)
        if node and isinstance(err, RayActorError) and _node_left(self._rank_nodes[rank][1]):
            cause_message = f"{cause_message} ({node} left the cluster)"
        if isinstance(err, RayTaskError):
            head = f"{cls}.{method} raised on {where}: {cause_type}: {_one_line(cause_message)}"
        elif isinstance(err, ActorDiedError):
            head = f"{cls} {where} died during {method}: {cause_type}: {_one_line(cause_message)}"
        elif isinstance(err, RayActorError):
            head = f"{cls} {where} became unreachable during {method}: {cause_type}: {_one_line(cause_message)}"
        else:
            head = f"{cls}.{method} failed on {where}: {cause_type}: {_one_line(cause_message)}"
        message = head + (f"\n\nworker traceback:\n{remote_traceback.rstrip()}" if remote_traceback else "")
        return WorkerError(
            message,
            worker_class=cls,
            method=method,
            rank=rank,
            cause=err,
            group=self.name_prefix,
            cause_type=cause_type,
            cause_message=cause_message,
            cause_types=cause_types,
            remote_traceback=remote_traceback,
            node=node,
        )

    def __getattr__(self, name: str) -> Any:
        worker_cls = self.__dict__.get("_worker_cls")
        if worker_cls is not None and not name.startswith("__") and hasattr(worker_cls, name):
            raise AttributeError(
                f"{worker_cls.__name__}.{name} is not registered: mark it with @register(dispatch_mode=...) to call it "
                "through the worker group (or use execute_all)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """Kill the actors and wait until Ray reports them dead; the pool's placement groups are removed when this
        was the last group on it. Idempotent."""
        if not self.__dict__.get("_alive", False):
            return
        self._alive = False
        workers, self._workers = self._workers, []
        for worker in workers:
            ray.kill(worker, no_restart=True)
        _wait_dead(workers, self._worker_names)
        self._pool._leave(self)

    def __enter__(self) -> RayWorkerGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _node_left(node_id: str, wait_s: float = _NODE_DEATH_WAIT_S) -> bool:
    """Whether Ray reports the node dead (or gone), waiting up to ``wait_s`` for the report to arrive: an actor's
    death is seen before its node's."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = {node["NodeID"]: node.get("Alive", False) for node in ray.nodes()}
        if not alive.get(node_id, False):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _node_name(ip: str, node_id: str) -> str:
    """A node as messages name it: its IP and the first 8 hex digits of its Ray node id."""
    return f"node {ip} (id {node_id[:8]})"


def _describe_ray_error(err: RayError) -> tuple[str, str, tuple[str, ...], str]:
    """``(type, message, class and base names, worker traceback)`` of the exception behind a Ray error."""
    if isinstance(err, RayTaskError):
        cause = err.cause
        # ray.get raises a subclass of both RayTaskError and the cause's type, without ``traceback_str``; its text
        # is Ray's header line and the worker's traceback.
        traceback_text = err.__dict__.get("traceback_str") or _ANSI.sub("", str(err))
        if isinstance(cause, RemoteException):
            return cause.type_name, cause.message, cause.type_names, cause.traceback_text
        if type(cause) is RayError and "isn't serializable" in str(cause):  # raised outside a wrapped method
            found = _exception_in_traceback(traceback_text)
            if found is not None:
                return found[0], found[1], (found[0].rsplit(".", 1)[-1],), traceback_text
        names = tuple(klass.__name__ for klass in type(cause).__mro__)
        return _qualified_name(type(cause)), str(cause), names, traceback_text
    if isinstance(err, ActorDiedError) and getattr(err, "actor_init_failed", False):
        text = getattr(err, "error_msg", "") or str(err)
        found = _exception_in_traceback(text)
        if found is not None:  # __init__ raised: Ray keeps only its traceback, as text
            return found[0], found[1], (found[0].rsplit(".", 1)[-1],), _ANSI.sub("", text)
    names = tuple(klass.__name__ for klass in type(err).__mro__)
    return type(err).__name__, _death_summary(str(err)), names, ""


def _dead_peer(pending: list[ray.ObjectRef], rank_of: dict[ray.ObjectRef, int]) -> tuple[int, RayError] | None:
    """A rank among ``pending`` whose process (or node) died, waiting up to ``_PEER_DEATH_GRACE_S`` for it.

    When a rank's process or its whole node dies, the ranks it shares a collective with fail at once with a
    connection error of their own, usually before Ray reports the death: the dead rank is the cause worth naming.
    """
    ready, _ = ray.wait(pending, num_returns=len(pending), timeout=_PEER_DEATH_GRACE_S)
    for ref in ready:
        try:
            ray.get(ref)
        except RayActorError as err:
            return rank_of[ref], err
        except RayError:
            continue
    return None


def _put_once(value: Any) -> Any:
    """Object-store ref for a large broadcast argument (Ray resolves top-level refs), the value itself otherwise."""
    if isinstance(value, (*_INLINE_TYPES, ray.ObjectRef)):
        return value
    return ray.put(value)


def _wait_dead(workers: list[ray.actor.ActorHandle], names: list[str]) -> None:
    """Wait (briefly) until every killed actor is reported dead, so that Ray's state agrees with the caller."""
    deadline = time.monotonic() + _SHUTDOWN_WAIT_S
    for worker, name in zip(workers, names):
        while True:
            try:
                ray.get(worker.__ray_ready__.remote(), timeout=max(0.0, deadline - time.monotonic()))
            except RayActorError:
                break
            except GetTimeoutError:
                logger.warning("actor %s was killed but is not reported dead after %.0fs", name, _SHUTDOWN_WAIT_S)
                return
            if time.monotonic() > deadline:
                logger.warning("actor %s was killed but still answers after %.0fs", name, _SHUTDOWN_WAIT_S)
                return
            time.sleep(0.05)
