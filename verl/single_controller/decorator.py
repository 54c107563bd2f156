"""How one call on a worker group becomes one call per rank, and how the answers become one value.

A worker method marked with :func:`register` is exposed on every worker group built from its class. Its
:class:`Dispatch` mode says how the driver's arguments are handed to the ranks (:func:`dispatch`) and how the
per-rank results are merged into what the driver sees (:func:`collect`). Both are pure functions, so the rules can be
tested without Ray; :mod:`verl.single_controller.ray` only moves the pieces between processes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from ..protocol import DataProto

__all__ = ["DispatchedCall", "Dispatch", "MethodSpec", "collect", "dispatch", "register", "registered_methods"]

F = TypeVar("F", bound=Callable[..., Any])

_SPEC_ATTR = "__vsr1_method_spec__"


class Dispatch(Enum):
    """How a registered method's arguments reach the ranks and how the results come back."""

    ONE_TO_ALL = "one_to_all"
    """Every rank gets the same arguments; the driver gets the list of every rank's result, in rank order."""

    RANK_ZERO = "rank_zero"
    """Every rank runs the call (collective methods need all of them); the driver gets rank 0's result."""

    DP_COMPUTE_PROTO = "dp_compute_proto"
    """Each DataProto argument is split into ``world_size`` equal chunks (padded first when the batch does not divide,
    with copies of rows from the start whose ``loss_weight`` is 0, so no row is trained twice) and rank ``i`` gets
    chunk ``i``; other arguments go to every rank unchanged. DataProto results are concatenated in rank order and the
    rows produced for the padding are dropped; the ``metrics`` of their ``meta_info`` (name -> list of values) are
    concatenated over the ranks, in rank order, so the driver reduces every rank's values and not only rank 0's. When no
    rank returns a DataProto the driver gets the per-rank list (``None`` when every rank returned ``None``)."""

    ALL_TO_ALL = "all_to_all"
    """Every argument is a list with one item per rank; rank ``i`` gets item ``i``. The driver gets the list of
    results in rank order."""


@dataclass(frozen=True)
class MethodSpec:
    """What :func:`register` records on a worker method."""

    dispatch_mode: Dispatch
    blocking: bool = True
    """``True``: the group call waits and returns the collected value; ``False``: it returns a future at once."""


def register(dispatch_mode: Dispatch = Dispatch.ONE_TO_ALL, blocking: bool = True) -> Callable[[F], F]:
    """Mark a :class:`~verl.single_controller.worker.Worker` method as callable from the driver through a group.

    Only registered methods are bound onto a worker group; everything else stays private to the worker process.

    Example::

        class MyWorker(Worker):
            @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
            def compute(self, data: DataProto) -> DataProto: ...
    """
    if not isinstance(dispatch_mode, Dispatch):
        raise TypeError(
            f"dispatch_mode must be a Dispatch member, got {dispatch_mode!r}; write @register(dispatch_mode=...)"
        )
    spec = MethodSpec(dispatch_mode=dispatch_mode, blocking=bool(blocking))

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@register decorates methods, got {type(func).__name__}")
        setattr(func, _SPEC_ATTR, spec)
        return func

    return decorator


def registered_methods(cls: type) -> dict[str, MethodSpec]:
    """The registered methods of ``cls`` (inherited ones included), by name.

    An override that is not decorated itself is not registered: registration belongs to the function, not the name.
    """
    methods = {}
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name)
        spec = getattr(getattr(attr, "__func__", attr), _SPEC_ATTR, None)
        if isinstance(spec, MethodSpec):
            methods[name] = spec
    return methods


@dataclass
class DispatchedCall:
    """The per-rank arguments of one call, plus what :func:`collect` needs to undo the split."""

    args: list[tuple[Any, ...]]
    kwargs: list[dict[str, Any]]
    pad_size: int = 0
    """Rows appended to every DataProto argument so that it divides by the world size (DP_COMPUTE_PROTO)."""
    padded_length: int = 0
    """Length of the DataProto arguments after padding (DP_COMPUTE_PROTO)."""


def dispatch(mode: Dispatch, world_size: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DispatchedCall:
    """Turn the driver's ``(args, kwargs)`` into one ``(args, kwargs)`` per rank according to ``mode``."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if mode in (Dispatch.ONE_TO_ALL, Dispatch.RANK_ZERO):
        return DispatchedCall(args=[tuple(args)] * world_size, kwargs=[dict(kwargs) for _ in range(world_size)])
    if mode is Dispatch.ALL_TO_ALL:
        return _dispatch_all_to_all(world_size, args, kwargs)
    if mode is Dispatch.DP_COMPUTE_PROTO:
        return _dispatch_dp_proto(world_size, args, kwargs)
    raise ValueError(f"unknown dispatch mode {mode!r}")


def _dispatch_all_to_all(world_size: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DispatchedCall:
    named = [(f"argument {i}", value) for i, value in enumerate(args)] + [(repr(k), v) for k, v in kwargs.items()]
    for what, value in named:
        if not isinstance(value, list | tuple) or len(value) != world_size:
            length = f"of length {len(value)}" if isinstance(value, list | tuple) else type(value).__name__
            raise ValueError(
                f"ALL_TO_ALL needs every argument to be a list with one item per rank ({world_size}); "
                f"{what} is {length}"
            )
    return DispatchedCall(
        args=[tuple(value[rank] for value in args) for rank in range(world_size)],
        kwargs=[{key: value[rank] for key, value in kwargs.items()} for rank in range(world_size)],
    )


def _dispatch_dp_proto(world_size: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DispatchedCall:
    lengths = {len(value) for value in (*args, *kwargs.values()) if isinstance(value, DataProto)}
    if not lengths:
        raise TypeError("DP_COMPUTE_PROTO needs at least one DataProto argument to split across the ranks")
    if len(lengths) > 1:
        raise ValueError(f"DP_COMPUTE_PROTO needs all DataProto arguments to have the same length, got {lengths}")
    pad_size = 0

    def split(value: Any) -> list[Any]:
        nonlocal pad_size
        if not isinstance(value, DataProto):
            return [value] * world_size
        padded, pad_size = value.pad_to_divisor(world_size)
        if pad_size:
            padded = padded.with_padding_weight(len(value))
        return padded.chunk(world_size)

    split_args = [split(value) for value in args]
    split_kwargs = {key: split(value) for key, value in kwargs.items()}
    return DispatchedCall(
        args=[tuple(chunks[rank] for chunks in split_args) for rank in range(world_size)],
        kwargs=[{key: chunks[rank] for key, chunks in split_kwargs.items()} for rank in range(world_size)],
        pad_size=pad_size,
        padded_length=lengths.pop() + pad_size,
    )


def collect(mode: Dispatch, results: list[Any], call: DispatchedCall) -> Any:
    """Merge the per-rank ``results`` (in rank order) into the value the driver sees, according to ``mode``."""
    if mode in (Dispatch.ONE_TO_ALL, Dispatch.ALL_TO_ALL):
        return list(results)
    if mode is Dispatch.RANK_ZERO:
        return results[0]
    if mode is Dispatch.DP_COMPUTE_PROTO:
        return _collect_dp_proto(results, call)
    raise ValueError(f"unknown dispatch mode {mode!r}")


def _collect_dp_proto(results: list[Any], call: DispatchedCall) -> Any:
    n_protos = sum(isinstance(result, DataProto) for result in results)
    if n_protos == 0:
        return None if all(result is None for result in results) else list(results)
    if n_protos != len(results):
        kinds = [type(result).__name__ for result in results]
        raise TypeError(f"DP_COMPUTE_PROTO results must all be DataProto or none of them, got {kinds}")
    output = DataProto.concat(results)
    merged = merge_rank_metrics([result.meta_info.get("metrics") for result in results])
    if merged is not None:
        output.meta_info["metrics"] = merged
    if call.pad_size == 0:
        return output
    # Each rank returned ``ratio`` rows per input row (0 for metrics-only results, n for n samples per prompt);
    # the padding rows were the last input rows, so their outputs are the last ``pad_size * ratio`` rows.
    if len(output) % call.padded_length != 0:
        raise ValueError(
            f"cannot remove the {call.pad_size} padding rows: the ranks returned {len(output)} rows in all for "
            f"{call.padded_length} padded input rows; return the same number of rows per input row on every rank, "
            "or pass a batch that divides by the world size"
        )
    return output.unpad(call.pad_size * (len(output) // call.padded_length))


def merge_rank_metrics(per_rank: list[Any]) -> dict[str, Any] | None:
    """One metrics dict from every rank's (rank order): the value lists of a name are concatenated; a scalar (a
    value the ranks agree on, such as a learning rate) is rank 0's. None when no rank reported metrics."""
    dicts = [m for m in per_rank if isinstance(m, dict)]
    if not dicts:
        return None
    merged: dict[str, Any] = {}
    for metrics in dicts:
        for key, value in metrics.items():
            if isinstance(value, list | tuple):
                merged.setdefault(key, []).extend(value)
            else:
                merged.setdefault(key, value)
    return merged
