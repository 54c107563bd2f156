"""How the driver talks to the workers: Ray worker groups whose calls are dispatched and collected per method.

* :mod:`.decorator`: :class:`Dispatch` modes and :func:`register`, which marks the worker methods a group exposes;
* :mod:`.worker`: :class:`Worker`, the base class of every rank (rank, device, ``torch.distributed``);
* :mod:`.ray`: :class:`RayResourcePool` (placement groups) and :class:`RayWorkerGroup` (one actor per rank).
"""

from .decorator import Dispatch, MethodSpec, register, registered_methods
from .ray import ClusterError, RayResourcePool, RayWorkerGroup, WorkerError, WorkerGroupFuture
from .worker import Worker, find_free_port

__all__ = [
    "ClusterError",
    "Dispatch",
    "MethodSpec",
    "RayResourcePool",
    "RayWorkerGroup",
    "Worker",
    "WorkerError",
    "WorkerGroupFuture",
    "find_free_port",
    "register",
    "registered_methods",
]
