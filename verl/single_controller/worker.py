"""The base class of every process a worker group starts: its rank, its device and its process group.

A worker group starts one process per rank and describes the rank through environment variables, the same ones
``torchrun`` sets, so a :class:`Worker` also runs under ``torchrun`` or alone (rank 0 of 1):

* ``RANK`` / ``WORLD_SIZE``: global rank and number of ranks (default 0 / 1);
* ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE``: rank and number of ranks on this node (default 0 / 1);
* ``MASTER_ADDR`` / ``MASTER_PORT``: where rank 0 listens for the ``torch.distributed`` rendezvous.

Devices: on a GPU pool Ray gives each actor its own GPU by setting ``CUDA_VISIBLE_DEVICES`` to that GPU alone, so the
device is ``cuda:0``; under ``torchrun`` every GPU is visible and the device is ``cuda:LOCAL_RANK``. On a CPU pool the
group hides the GPUs (``CUDA_VISIBLE_DEVICES=""``), so the device is ``cpu``.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["Worker", "find_free_port"]


def find_free_port() -> int:
    """A TCP port that is free on this machine right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from exc


class Worker:
    """One rank of a worker group. Subclass it and mark the driver-facing methods with ``@register``.

    ``__init__`` only reads the environment; nothing touches CUDA or the network until :meth:`init_distributed` (or
    :attr:`device`) is used, so subclasses decide when the expensive set-up happens (usually in an ``init_model``
    method called through the group).
    """

    def __init__(self) -> None:
        self._rank = _env_int("RANK", 0)
        self._world_size = _env_int("WORLD_SIZE", 1)
        self._local_rank = _env_int("LOCAL_RANK", 0)
        self._local_world_size = _env_int("LOCAL_WORLD_SIZE", 1)
        self._master_addr = os.environ.get("MASTER_ADDR") or None
        self._master_port = _env_int("MASTER_PORT", None)
        self._device: torch.device | None = None
        if not 0 <= self._rank < self._world_size:
            raise ValueError(f"RANK={self._rank} is not in [0, WORLD_SIZE={self._world_size})")
        if not 0 <= self._local_rank < self._local_world_size:
            raise ValueError(f"LOCAL_RANK={self._local_rank} is not in [0, LOCAL_WORLD_SIZE={self._local_world_size})")

    @property
    def rank(self) -> int:
        """Global rank, ``0 <= rank < world_size``."""
        return self._rank

    @property
    def world_size(self) -> int:
        """Number of ranks in the group."""
        return self._world_size

    @property
    def local_rank(self) -> int:
        """Rank among this node's processes of the group."""
        return self._local_rank

    @property
    def local_world_size(self) -> int:
        """Number of the group's processes on this node."""
        return self._local_world_size

    @property
    def master_address(self) -> tuple[str | None, int | None]:
        """``(MASTER_ADDR, MASTER_PORT)`` of the rendezvous; ``(None, None)`` when running alone without them."""
        return self._master_addr, self._master_port

    @property
    def device(self) -> torch.device:
        """``cuda:i`` when a GPU is visible (``i = 0`` when only one is, else ``LOCAL_RANK``), ``cpu`` otherwise."""
        if self._device is None:
            if torch.cuda.is_available():
                count = torch.cuda.device_count()
                self._device = torch.device("cuda", 0 if count == 1 else self._local_rank % count)
            else:
                self._device = torch.device("cpu")
        return self._device

    def init_distributed(self, backend: str | None = None, timeout_s: float = 1800.0) -> None:
        """Join the group's ``torch.distributed`` process group (``nccl`` on CUDA, ``gloo`` otherwise).

        Idempotent. Every rank must call it (it is a rendezvous), so call it from a method dispatched to all ranks.
        A worker running alone without ``MASTER_ADDR``/``MASTER_PORT`` rendezvous with itself on a free local port
        (and exports the two variables, for libraries that read them).
        """
        if dist.is_initialized():
            if dist.get_rank() != self._rank or dist.get_world_size() != self._world_size:
                raise RuntimeError(
                    f"torch.distributed is already initialised as rank {dist.get_rank()} of {dist.get_world_size()}, "
                    f"but this worker is rank {self._rank} of {self._world_size}"
                )
            return
        addr, port = self._master_addr, self._master_port
        if addr is None or port is None:
            if self._world_size > 1:
                raise RuntimeError(
                    f"rank {self._rank} of {self._world_size} needs MASTER_ADDR and MASTER_PORT to join the process "
                    "group; a worker group sets them, torchrun too"
                )
            addr, port = "127.0.0.1", find_free_port()
            os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = addr, str(port)
            self._master_addr, self._master_port = addr, port
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        host = f"[{addr}]" if ":" in addr else addr
        dist.init_process_group(
            backend=backend,
            init_method=f"tcp://{host}:{port}",
            rank=self._rank,
            world_size=self._world_size,
            timeout=timedelta(seconds=timeout_s),
        )
