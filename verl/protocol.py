"""The batch container that flows between the driver and the workers.

A :class:`DataProto` holds three things about one batch of ``N`` samples:

* ``batch`` -- a :class:`TensorBatch` (a ``dict[str, torch.Tensor]`` whose tensors all have ``N`` rows), or ``None``
  when the batch has no tensors;
* ``non_tensor_batch`` -- ``dict[str, np.ndarray]`` of length-``N`` numpy arrays, usually ``dtype=object`` (raw
  prompts, lists of PIL images, ground truths, ``uid`` strings, ...);
* ``meta_info`` -- a free-form ``dict`` that describes the batch as a whole (temperatures, timing, metrics...).

Row-wise operations (indexing, ``chunk``, ``split``, ``repeat``, ``concat``, padding) act on ``batch`` and
``non_tensor_batch`` together and never touch the values of ``meta_info``.

Copy semantics:

* indexing with a slice (and therefore ``chunk``/``split``/``unpad``) returns tensor *views*; indexing with an index
  tensor / array / list returns copies (torch and numpy advanced indexing);
* every method that returns a new :class:`DataProto` gives it a new ``meta_info`` dict (a shallow copy), so adding a
  key to one chunk's ``meta_info`` never shows up in another;
* :meth:`DataProto.copy` is shallow (new dicts, same tensors/arrays), :meth:`DataProto.clone` is deep.
"""

from __future__ import annotations

import copy as _copy
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "DataProto",
    "DataProtoItem",
    "TensorBatch",
    "collate_fn",
    "pad_dataproto_to_divisor",
    "unpad_dataproto",
]

# Anything accepted as a row index by ``DataProto.__getitem__`` / ``TensorBatch.__getitem__``.
RowIndex = int | slice | torch.Tensor | np.ndarray | Sequence[int] | range


# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------
def _leading_dim(key: str, tensor: Any) -> int:
    """Return ``tensor.shape[0]``, checking that ``tensor`` is a tensor with at least one dimension."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"batch[{key!r}] must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() == 0:
        raise ValueError(f"batch[{key!r}] is a 0-d tensor; batch tensors need a leading batch dimension")
    return int(tensor.shape[0])


def _to_object_array(key: str, value: Any) -> np.ndarray:
    """Turn a per-sample sequence into a 1-D numpy object array (numpy arrays are kept as they are).

    Elements are stored one by one, so a list of equal-length lists stays 1-D (``np.array`` would make it 2-D).
    """
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            raise ValueError(f"non_tensor_batch[{key!r}] is a 0-d array; it needs one entry per sample")
        return value
    if isinstance(value, torch.Tensor):
        raise TypeError(f"non_tensor_batch[{key!r}] is a torch.Tensor; put tensors in `batch` / `tensors` instead")
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | range):
        raise TypeError(
            f"non_tensor_batch[{key!r}] must be a numpy array or a list with one entry per sample, "
            f"got {type(value).__name__}"
        )
    array = np.empty(len(value), dtype=object)
    for i, item in enumerate(value):
        array[i] = item
    return array


def _normalize_index(index: Any, length: int) -> slice | np.ndarray:
    """Turn a row index (slice / int tensor / bool mask / numpy array / list / range) into a slice or an int64 array."""
    if isinstance(index, slice):
        if index.step is not None and index.step < 0:  # torch has no negative-step views: use an index array
            return np.arange(*index.indices(length), dtype=np.int64)
        return index
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    elif isinstance(index, range | list | tuple):
        index = np.asarray(index) if len(index) else np.zeros(0, dtype=np.int64)
    if not isinstance(index, np.ndarray):
        raise TypeError(f"cannot index rows with {type(index).__name__}")
    if index.ndim != 1:
        raise IndexError(f"row index must be 1-D, got shape {tuple(index.shape)}")
    if index.dtype == np.bool_:
        if index.shape[0] != length:
            raise IndexError(f"boolean mask has length {index.shape[0]} but the batch has {length} rows")
        return np.flatnonzero(index).astype(np.int64)
    if not np.issubdtype(index.dtype, np.integer):
        raise IndexError(f"row index must hold integers or booleans, got dtype {index.dtype}")
    index = index.astype(np.int64, copy=False)
    if index.size and (index.max() >= length or index.min() < -length):
        raise IndexError(f"row index out of range for a batch of {length} rows")
    return np.where(index < 0, index + length, index)


def _index_length(index: slice | np.ndarray, length: int) -> int:
    if isinstance(index, slice):
        return len(range(*index.indices(length)))
    return int(index.shape[0])


def _is_int_index(index: Any) -> bool:
    if isinstance(index, bool | np.bool_):
        return False
    if isinstance(index, int | np.integer):
        return True
    return isinstance(index, torch.Tensor) and index.dim() == 0 and not index.dtype.is_floating_point


def _values_equal(a: Any, b: Any) -> bool:
    """Structural equality that works for tensors, numpy (object) arrays, containers and plain values."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        if a.dtype == object or b.dtype == object:
            return all(_values_equal(x, y) for x, y in zip(a.flat, b.flat))
        try:
            return bool(np.array_equal(a, b, equal_nan=True))
        except TypeError:  # equal_nan is not defined for e.g. string arrays
            return bool(np.array_equal(a, b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    result = a == b
    if isinstance(result, np.ndarray | torch.Tensor):
        return bool(result.all())
    return bool(result)


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` if it owns exactly its storage, else a compact contiguous copy (for pickling)."""
    if tensor.layout != torch.strided:
        return tensor
    needed = tensor.numel() * tensor.element_size()
    if tensor.is_contiguous() and tensor.storage_offset() == 0 and tensor.untyped_storage().nbytes() == needed:
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {value.dtype} {value.device}"
    if isinstance(value, np.ndarray):
        return f"{tuple(value.shape)} {value.dtype}"
    return type(value).__name__


# ----------------------------------------------------------------------------------------------------------------------
# TensorBatch
# ----------------------------------------------------------------------------------------------------------------------
class TensorBatch(dict[str, torch.Tensor]):
    """A ``dict[str, torch.Tensor]`` whose tensors all share the leading (batch) dimension.

    It is a real ``dict`` (``model(**batch)``, ``batch.keys()``, ``"x" in batch`` all work) that also knows its batch
    size, so an empty ``TensorBatch`` still has a length. Assignment checks the leading dimension. Indexing with a
    string returns the tensor; indexing with a slice / index tensor / numpy array / list of ints returns a new
    ``TensorBatch`` with those rows; indexing with an int returns a plain ``dict`` of per-sample views.

    ``batch_size`` is a ``torch.Size`` of one element (like ``tensordict.TensorDict``), so code written against
    verl's ``data.batch.batch_size[0]`` keeps working; :attr:`num_rows` gives the same number as an ``int``.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None, batch_size: int | None = None) -> None:
        """Build from a mapping; ``batch_size`` defaults to the first tensor's leading dimension (0 when empty)."""
        super().__init__()
        tensors = dict(tensors) if tensors is not None else {}
        if batch_size is None:
            batch_size = _leading_dim(next(iter(tensors)), next(iter(tensors.values()))) if tensors else 0
        if int(batch_size) < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        self._num_rows = int(batch_size)
        for key, value in tensors.items():
            self[key] = value

    # -- size -----------------------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> torch.Size:
        """``torch.Size([N])`` (tensordict-compatible)."""
        return torch.Size([self._num_rows])

    @property
    def num_rows(self) -> int:
        """Number of rows ``N``."""
        return self._num_rows

    @property
    def device(self) -> torch.device | None:
        """Device of the tensors if they all live on one device, else ``None``."""
        devices = {t.device for t in self.values()}
        return devices.pop() if len(devices) == 1 else None

    # -- dict interface with shape checks ------------------------------------------------------------------------
    def __setitem__(self, key: str, value: torch.Tensor) -> None:
        """Store ``value`` under ``key``; its leading dimension must equal the batch size."""
        if not isinstance(key, str):
            raise TypeError(f"TensorBatch keys must be str, got {type(key).__name__}")
        rows = _leading_dim(key, value)
        if rows != self._num_rows:
            raise ValueError(f"batch[{key!r}] has leading dimension {rows}, but the batch size is {self._num_rows}")
        super().__setitem__(key, value)

    def __getitem__(self, key: Any) -> Any:
        """``batch["x"]`` -> tensor; ``batch[int]`` -> dict of row views; other row indices -> ``TensorBatch``."""
        if isinstance(key, str):
            return super().__getitem__(key)
        if _is_int_index(key):
            i = int(key)
            if not -self._num_rows <= i < self._num_rows:
                raise IndexError(f"row {i} out of range for a batch of {self._num_rows} rows")
            return {k: v[i] for k, v in self.items()}
        return self._take(_normalize_index(key, self._num_rows))

    def _take(self, index: slice | np.ndarray) -> TensorBatch:
        rows = _index_length(index, self._num_rows)
        if isinstance(index, slice):
            return TensorBatch({k: v[index] for k, v in self.items()}, rows)
        torch_index = torch.from_numpy(index)
        return TensorBatch({k: v[torch_index.to(v.device)] for k, v in self.items()}, rows)

    def update(self, other: Any = (), /, **kwargs: torch.Tensor) -> None:
        """``dict.update`` with the same shape check as ``__setitem__``."""
        for key, value in dict(other, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: torch.Tensor | None = None) -> torch.Tensor:
        """``dict.setdefault`` with the shape check."""
        if key not in self:
            self[key] = default
        return super().__getitem__(key)

    def __ior__(self, other: Any) -> TensorBatch:
        self.update(other)
        return self

    def __or__(self, other: Any) -> TensorBatch:
        merged = self.copy()
        merged.update(other)
        return merged

    def copy(self) -> TensorBatch:
        """Shallow copy: a new ``TensorBatch`` holding the same tensors."""
        return TensorBatch(self, self._num_rows)

    def __reduce__(self) -> tuple:
        return (TensorBatch, ({k: _compact(v) for k, v in self.items()}, self._num_rows))

    # -- tensor operations ----------------------------------------------------------------------------------------
    def to(self, device: torch.device | str, non_blocking: bool = False) -> TensorBatch:
        """Return a new ``TensorBatch`` with every tensor moved to ``device``."""
        return TensorBatch({k: v.to(device, non_blocking=non_blocking) for k, v in self.items()}, self._num_rows)

    def select(self, *keys: str) -> TensorBatch:
        """Return a new ``TensorBatch`` with only ``keys`` (same tensors)."""
        missing = [k for k in keys if k not in self]
        if missing:
            raise KeyError(f"keys {missing} not in batch (available: {sorted(self.keys())})")
        return TensorBatch({k: super(TensorBatch, self).__getitem__(k) for k in keys}, self._num_rows)

    def clone(self) -> TensorBatch:
        """Deep copy of every tensor."""
        return TensorBatch({k: v.clone() for k, v in self.items()}, self._num_rows)

    def contiguous(self) -> TensorBatch:
        """Return a ``TensorBatch`` of contiguous tensors."""
        return TensorBatch({k: v.contiguous() for k, v in self.items()}, self._num_rows)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k!r}: {_describe(v)}" for k, v in self.items())
        return f"TensorBatch(batch_size={self._num_rows}, {{{fields}}})"


# ----------------------------------------------------------------------------------------------------------------------
# DataProto
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class DataProtoItem:
    """One sample of a :class:`DataProto`: per-sample tensor views, per-sample objects, and the shared meta_info."""

    batch: dict[str, torch.Tensor] | None = None
    non_tensor_batch: dict[str, Any] = field(default_factory=dict)
    meta_info: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class DataProto:
    """A batch of samples: tensors (``batch``), per-sample python objects (``non_tensor_batch``) and ``meta_info``.

    ``batch`` may be given as a plain dict; it is turned into a :class:`TensorBatch`. Lists in ``non_tensor_batch``
    are turned into 1-D object arrays. Lengths are checked on construction (:meth:`check_consistency`).
    """

    batch: TensorBatch | None = None
    non_tensor_batch: dict[str, np.ndarray] = field(default_factory=dict)
    meta_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch is not None and not isinstance(self.batch, TensorBatch):
            if not isinstance(self.batch, Mapping):
                raise TypeError(f"batch must be a TensorBatch, a dict of tensors or None, got {type(self.batch)}")
            self.batch = DataProto._tensor_batch_from_dict(dict(self.batch))
        self.non_tensor_batch = {k: _to_object_array(k, v) for k, v in (self.non_tensor_batch or {}).items()}
        if self.meta_info is None:
            self.meta_info = {}
        if not isinstance(self.meta_info, dict):
            raise TypeError(f"meta_info must be a dict, got {type(self.meta_info).__name__}")
        self.check_consistency()

    @staticmethod
    def _tensor_batch_from_dict(tensors: dict[str, torch.Tensor]) -> TensorBatch | None:
        """Build a ``TensorBatch``, reporting which key disagrees with the first one's batch size."""
        if not tensors:
            return None
        first_key = next(iter(tensors))
        rows = _leading_dim(first_key, tensors[first_key])
        for key, value in tensors.items():
            other = _leading_dim(key, value)
            if other != rows:
                raise ValueError(
                    f"tensor {key!r} has batch dimension {other}, but tensor {first_key!r} has {rows}; "
                    "all tensors must share the leading dimension"
                )
        return TensorBatch(tensors, rows)

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        tensors: Mapping[str, torch.Tensor] | None = None,
        non_tensors: Mapping[str, np.ndarray | Sequence[Any]] | None = None,
        meta_info: dict[str, Any] | None = None,
    ) -> DataProto:
        """Build from separate dicts of tensors and per-sample objects. ``batch`` is ``None`` without tensors."""
        batch = cls._tensor_batch_from_dict(dict(tensors or {}))
        return cls(batch=batch, non_tensor_batch=dict(non_tensors or {}), meta_info=dict(meta_info or {}))

    @classmethod
    def from_single_dict(cls, data: Mapping[str, Any], meta_info: dict[str, Any] | None = None) -> DataProto:
        """Build from one dict, routing ``torch.Tensor`` values to ``batch`` and everything else to non-tensors."""
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        non_tensors = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
        return cls.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=meta_info)

    # -- size / validation ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batch size of the tensors, else the length of the non-tensor arrays, else 0."""
        if self.batch is not None:
            return self.batch.num_rows
        for value in self.non_tensor_batch.values():
            return len(value)
        return 0

    def _has_rows(self) -> bool:
        """Whether this DataProto carries any row data (a batch, even empty, or non-tensor arrays)."""
        return self.batch is not None or bool(self.non_tensor_batch)

    def check_consistency(self) -> None:
        """Check that all tensors and non-tensor arrays have the same length; errors name the offending key."""
        reference_key, reference_len = None, None
        if self.batch is not None:
            if not isinstance(self.batch, TensorBatch):
                raise TypeError(f"batch must be a TensorBatch, got {type(self.batch).__name__}")
            reference_key, reference_len = "batch size", self.batch.num_rows
            for key, value in self.batch.items():
                rows = _leading_dim(key, value)
                if rows != reference_len:
                    raise ValueError(f"batch[{key!r}] has length {rows}, but the batch size is {reference_len}")
        for key, value in self.non_tensor_batch.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"non_tensor_batch[{key!r}] must be a numpy array, got {type(value).__name__}")
            if value.ndim == 0:
                raise ValueError(f"non_tensor_batch[{key!r}] is a 0-d array; it needs one entry per sample")
            if reference_len is None:
                reference_key, reference_len = f"non_tensor_batch[{key!r}]", len(value)
            elif len(value) != reference_len:
                where = "the batch size is" if reference_key == "batch size" else f"{reference_key} has length"
                raise ValueError(f"non_tensor_batch[{key!r}] has length {len(value)}, but {where} {reference_len}")

    # -- indexing -------------------------------------------------------------------------------------------------
    def __getitem__(self, index: RowIndex) -> DataProto | DataProtoItem:
        """``data[i]`` -> :class:`DataProtoItem`; ``data[slice | index tensor | np array | list]`` -> ``DataProto``."""
        if isinstance(index, str):
            raise TypeError(
                f"DataProto rows are indexed by position; use data.batch[{index!r}] or "
                f"data.non_tensor_batch[{index!r}] to get a column"
            )
        length = len(self)
        if _is_int_index(index):
            i = int(index)
            if not -length <= i < length:
                raise IndexError(f"row {i} out of range for a DataProto of {length} rows")
            return DataProtoItem(
                batch=self.batch[i] if self.batch is not None else None,
                non_tensor_batch={k: v[i] for k, v in self.non_tensor_batch.items()},
                meta_info=self.meta_info,
            )
        return self._take(_normalize_index(index, length))

    def _take(self, index: slice | np.ndarray) -> DataProto:
        batch = self.batch._take(index) if self.batch is not None else None
        non_tensor_batch = {k: v[index] for k, v in self.non_tensor_batch.items()}
        return DataProto(batch=batch, non_tensor_batch=non_tensor_batch, meta_info=dict(self.meta_info))

    def __iter__(self) -> Iterator[DataProtoItem]:
        """Iterate over the samples as :class:`DataProtoItem`."""
        for i in range(len(self)):
            yield self[i]

    # -- key selection --------------------------------------------------------------------------------------------
    def select(
        self,
        batch_keys: Sequence[str] | None = None,
        non_tensor_batch_keys: Sequence[str] | None = None,
        meta_info_keys: Sequence[str] | None = None,
        deepcopy: bool = False,
    ) -> DataProto:
        """Return a new DataProto with a subset of the keys (``None`` = all keys of that kind).

        Without ``deepcopy`` the tensors and arrays are shared with ``self`` (only the dicts are new).
        """
        if batch_keys is None:
            batch = self.batch.copy() if self.batch is not None else None
        else:
            batch_keys = [batch_keys] if isinstance(batch_keys, str) else list(batch_keys)
            if self.batch is None:
                if batch_keys:
                    raise KeyError(f"batch keys {batch_keys} requested but this DataProto has no tensor batch")
                batch = None
            else:
                batch = self.batch.select(*batch_keys)
        non_tensor_batch = self._pick(self.non_tensor_batch, non_tensor_batch_keys, "non_tensor_batch")
        meta_info = self._pick(self.meta_info, meta_info_keys, "meta_info")
        if deepcopy:
            batch = batch.clone() if batch is not None else None
            non_tensor_batch = _copy.deepcopy(non_tensor_batch)
            meta_info = _copy.deepcopy(meta_info)
        return DataProto(batch=batch, non_tensor_batch=non_tensor_batch, meta_info=meta_info)

    @staticmethod
    def _pick(source: dict[str, Any], keys: Sequence[str] | None, what: str) -> dict[str, Any]:
        if keys is None:
            return dict(source)
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if k not in source]
        if missing:
            raise KeyError(f"keys {missing} not in {what} (available: {sorted(source)})")
        return {k: source[k] for k in keys}

    def pop(
        self,
        batch_keys: Sequence[str] | None = None,
        non_tensor_batch_keys: Sequence[str] | None = None,
        meta_info_keys: Sequence[str] | None = None,
    ) -> DataProto:
        """Remove the given keys from ``self`` and return them as a new DataProto (``None`` = pop none of that kind).

        If ``self`` has a tensor batch, both ``self`` and the result keep a (possibly empty) ``TensorBatch``, so
        their length is preserved even when all tensors are popped.
        """
        batch_keys = [batch_keys] if isinstance(batch_keys, str) else list(batch_keys or [])
        non_tensor_batch_keys = (
            [non_tensor_batch_keys] if isinstance(non_tensor_batch_keys, str) else list(non_tensor_batch_keys or [])
        )
        meta_info_keys = [meta_info_keys] if isinstance(meta_info_keys, str) else list(meta_info_keys or [])
        # validate everything first so that a bad key leaves self untouched
        if batch_keys and self.batch is None:
            raise KeyError(f"batch keys {batch_keys} requested but this DataProto has no tensor batch")
        for keys, source, what in (
            (batch_keys, self.batch or {}, "batch"),
            (non_tensor_batch_keys, self.non_tensor_batch, "non_tensor_batch"),
            (meta_info_keys, self.meta_info, "meta_info"),
        ):
            missing = [k for k in keys if k not in source]
            if missing:
                raise KeyError(f"keys {missing} not in {what} (available: {sorted(source)})")
        batch = None
        if self.batch is not None:
            batch = TensorBatch({k: self.batch.pop(k) for k in batch_keys}, self.batch.num_rows)
        non_tensor_batch = {k: self.non_tensor_batch.pop(k) for k in non_tensor_batch_keys}
        meta_info = {k: self.meta_info.pop(k) for k in meta_info_keys}
        return DataProto(batch=batch, non_tensor_batch=non_tensor_batch, meta_info=meta_info)

    def rename(self, old_keys: str | Sequence[str], new_keys: str | Sequence[str]) -> DataProto:
        """Rename tensor or non-tensor keys in place (each old key is looked up in ``batch``, then in non-tensors).

        Renames happen simultaneously, so swapping two keys works. Returns ``self``.
        """
        old_keys = [old_keys] if isinstance(old_keys, str) else list(old_keys)
        new_keys = [new_keys] if isinstance(new_keys, str) else list(new_keys)
        if len(old_keys) != len(new_keys):
            raise ValueError(f"rename needs as many new keys as old keys, got {len(old_keys)} and {len(new_keys)}")
        if len(set(new_keys)) != len(new_keys):
            raise ValueError(f"new keys {new_keys} contain duplicates")
        batch = self.batch if self.batch is not None else {}
        for old in old_keys:
            if old not in batch and old not in self.non_tensor_batch:
                raise KeyError(f"key {old!r} not found in batch or non_tensor_batch")
        remaining = (set(batch) | set(self.non_tensor_batch)) - set(old_keys)
        clashes = [k for k in new_keys if k in remaining]
        if clashes:
            raise ValueError(f"cannot rename to {clashes}: key already exists")
        popped = []
        for old in old_keys:
            in_batch = old in batch
            popped.append((in_batch, batch.pop(old) if in_batch else self.non_tensor_batch.pop(old)))
        for new, (in_batch, value) in zip(new_keys, popped):
            if in_batch:
                self.batch[new] = value
            else:
                self.non_tensor_batch[new] = value
        return self

    # -- combining ------------------------------------------------------------------------------------------------
    def union(self, other: DataProto) -> DataProto:
        """Merge ``other``'s keys into ``self`` in place and return ``self``.

        A key present in both must hold equal values (tensors: same shape, dtype and values; object arrays:
        element-wise equal; meta_info: ``==``), otherwise ``ValueError`` names the key. Both must have the same length,
        unless one of them carries no rows at all (only ``meta_info``).
        """
        if self._has_rows() and other._has_rows() and len(self) != len(other):
            raise ValueError(f"cannot union DataProtos of different lengths: {len(self)} and {len(other)}")
        if other.batch is not None:
            if self.batch is None:
                self.batch = other.batch.copy()
            else:
                for key, value in other.batch.items():
                    if key in self.batch:
                        if not _values_equal(self.batch[key], value):
                            raise ValueError(f"union conflict on batch key {key!r}: the tensors differ")
                    else:
                        self.batch[key] = value
        for key, value in other.non_tensor_batch.items():
            if key in self.non_tensor_batch:
                if not _values_equal(self.non_tensor_batch[key], value):
                    raise ValueError(f"union conflict on non_tensor_batch key {key!r}: the arrays differ")
            else:
                self.non_tensor_batch[key] = value
        for key, value in other.meta_info.items():
            if key in self.meta_info:
                if not _values_equal(self.meta_info[key], value):
                    raise ValueError(f"union conflict on meta_info key {key!r}: {self.meta_info[key]!r} != {value!r}")
            else:
                self.meta_info[key] = value
        self.check_consistency()
        return self

    @staticmethod
    def concat(items: Sequence[DataProto], meta_info_policy: Literal["first", "strict"] = "first") -> DataProto:
        """Concatenate DataProtos row-wise. All items must have the same tensor and non-tensor keys.

        ``meta_info`` is the union of the items' meta_info; when a key appears in several items:

        * ``"first"`` (default): the first item's value wins and later values are ignored. This is the friendly
          choice for per-worker timing / metrics dicts that legitimately differ between workers.
        * ``"strict"``: differing values raise ``ValueError`` naming the key.
        """
        if meta_info_policy not in ("first", "strict"):
            raise ValueError(f"meta_info_policy must be 'first' or 'strict', got {meta_info_policy!r}")
        items = list(items)
        if not items:
            raise ValueError("DataProto.concat needs at least one item")
        first = items[0]
        first_batch_keys = set(first.batch.keys()) if first.batch is not None else None
        first_non_tensor_keys = set(first.non_tensor_batch)
        for i, item in enumerate(items[1:], start=1):
            item_batch_keys = set(item.batch.keys()) if item.batch is not None else None
            if item_batch_keys != first_batch_keys:
                raise ValueError(
                    f"cannot concat: item {i} has batch keys "
                    f"{sorted(item_batch_keys) if item_batch_keys is not None else None} but item 0 has "
                    f"{sorted(first_batch_keys) if first_batch_keys is not None else None}"
                )
            if set(item.non_tensor_batch) != first_non_tensor_keys:
                raise ValueError(
                    f"cannot concat: item {i} has non_tensor_batch keys {sorted(item.non_tensor_batch)} "
                    f"but item 0 has {sorted(first_non_tensor_keys)}"
                )
        batch = None
        if first.batch is not None:
            batch = TensorBatch(
                {k: torch.cat([item.batch[k] for item in items], dim=0) for k in first.batch},
                sum(item.batch.num_rows for item in items),
            )
        non_tensor_batch = {
            k: np.concatenate([item.non_tensor_batch[k] for item in items], axis=0) for k in first.non_tensor_batch
        }
        meta_info: dict[str, Any] = {}
        for item in items:
            for key, value in item.meta_info.items():
                if key not in meta_info:
                    meta_info[key] = value
                elif meta_info_policy == "strict" and not _values_equal(meta_info[key], value):
                    raise ValueError(f"cannot concat: meta_info[{key!r}] differs between items")
        return DataProto(batch=batch, non_tensor_batch=non_tensor_batch, meta_info=meta_info)

    # -- splitting ------------------------------------------------------------------------------------------------
    def chunk(self, chunks: int) -> list[DataProto]:
        """Split into ``chunks`` equal parts (views). Raises if ``len(self)`` is not divisible by ``chunks``."""
        if chunks <= 0:
            raise ValueError(f"chunks must be positive, got {chunks}")
        length = len(self)
        if length % chunks != 0:
            raise ValueError(
                f"cannot chunk a DataProto of {length} rows into {chunks} equal parts; "
                f"pad it first with data.pad_to_divisor({chunks}) (or pad_dataproto_to_divisor) and unpad afterwards"
            )
        size = length // chunks
        return [self[i * size : (i + 1) * size] for i in range(chunks)]

    def split(self, split_size: int) -> list[DataProto]:
        """Split into pieces of ``split_size`` rows (views); the last piece may be smaller.

        An empty DataProto gives one empty piece, so ``DataProto.concat(data.split(n))`` always rebuilds ``data``.
        """
        if split_size <= 0:
            raise ValueError(f"split_size must be positive, got {split_size}")
        length = len(self)
        if length == 0:
            return [self[0:0]]
        return [self[start : start + split_size] for start in range(0, length, split_size)]

    # -- padding --------------------------------------------------------------------------------------------------
    def pad_to_divisor(self, size_divisor: int) -> tuple[DataProto, int]:
        """Pad by repeating rows from the start (cyclically) so that the length divides by ``size_divisor``.

        Returns ``(padded, pad_size)``; ``padded`` is ``self`` when no padding is needed. The pad may be longer than
        the batch (e.g. 3 rows padded to 8 repeat rows 0,1,2,0,1).
        """
        if size_divisor <= 0:
            raise ValueError(f"size_divisor must be positive, got {size_divisor}")
        length = len(self)
        if length % size_divisor == 0:
            return self, 0
        pad_size = size_divisor - length % size_divisor
        indices = np.concatenate([np.arange(length), np.arange(pad_size) % length]).astype(np.int64)
        return self._take(indices), pad_size

    def with_padding_weight(self, real_rows: int, key: str = "loss_weight") -> DataProto:
        """A shallow copy whose ``key`` column marks the rows after ``real_rows`` as padding (weight 0); the real
        rows keep their weight (1 where there was none). The actor leaves zero-weight rows out of the loss and
        its metrics, so padding a batch to the world size never trains a row twice."""
        if self.batch is None:
            return self
        if not 0 <= real_rows <= len(self):
            raise ValueError(f"real_rows must be in [0, {len(self)}], got {real_rows}")
        out = self.copy()
        weight = out.batch[key].clone().float() if key in out.batch else torch.ones(len(self))
        weight[real_rows:] = 0.0
        out.batch[key] = weight
        return out

    def pad_to_match(self, other: DataProto) -> DataProto:
        """Pad the prompt width (on the left) and the response width (on the right) to at least ``other``'s, so
        that rollout batches of different widths (a first hop and its second hop) concatenate.

        ``input_ids``/``attention_mask``/``position_ids`` (prompt ++ response) grow on both sides, ``prompts`` on
        the left, 2-D response-wide tensors (``responses``, masks, log-probs, advantages) on the right, with 0;
        per-row (1-D) tensors are left alone. Returns ``self`` when nothing grows."""
        b, o = self.batch, other.batch
        if b is None or o is None:
            raise ValueError("pad_to_match needs tensors on both sides")
        prompt = b["input_ids"].shape[-1] - b["responses"].shape[-1]
        response = b["responses"].shape[-1]
        left = max(o["input_ids"].shape[-1] - o["responses"].shape[-1] - prompt, 0)
        right = max(o["responses"].shape[-1] - response, 0)
        if not left and not right:
            return self
        tensors = {}
        for key, value in b.items():
            if key in ("input_ids", "attention_mask", "position_ids"):
                tensors[key] = torch.nn.functional.pad(value, (left, right))
            elif key == "prompts":
                tensors[key] = torch.nn.functional.pad(value, (left, 0))
            elif value.dim() >= 2:
                tensors[key] = torch.nn.functional.pad(value, (0, right))
            else:
                tensors[key] = value
        return DataProto.from_dict(
            tensors=tensors, non_tensors=dict(self.non_tensor_batch), meta_info=dict(self.meta_info)
        )

    def unpad(self, pad_size: int) -> DataProto:
        """Remove the last ``pad_size`` rows (``pad_size == 0`` returns ``self``)."""
        if pad_size < 0 or pad_size > len(self):
            raise ValueError(f"pad_size must be in [0, {len(self)}], got {pad_size}")
        if pad_size == 0:
            return self
        return self[: len(self) - pad_size]

    # -- reordering -----------------------------------------------------------------------------------------------
    def repeat(self, repeat_times: int = 2, interleave: bool = True) -> DataProto:
        """Repeat every row: ``interleave=True`` gives ``[a, a, b, b]``, ``False`` gives ``[a, b, a, b]``."""
        if repeat_times < 1:
            raise ValueError(f"repeat_times must be >= 1, got {repeat_times}")
        rows = np.arange(len(self), dtype=np.int64)
        indices = np.repeat(rows, repeat_times) if interleave else np.tile(rows, repeat_times)
        return self._take(indices)

    def reorder(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> DataProto:
        """Reorder the rows in place so that row ``i`` becomes old row ``indices[i]``; returns ``self``."""
        taken = self._take(_normalize_index(indices, len(self)))
        self.batch, self.non_tensor_batch = taken.batch, taken.non_tensor_batch
        return self

    # -- copies / devices -----------------------------------------------------------------------------------------
    def to(self, device: torch.device | str, non_blocking: bool = False) -> DataProto:
        """Move the tensors to ``device`` in place and return ``self``."""
        if self.batch is not None:
            self.batch = self.batch.to(device, non_blocking=non_blocking)
        return self

    def copy(self) -> DataProto:
        """Shallow copy: new dicts holding the same tensors, arrays and meta values."""
        return self.select()

    def clone(self) -> DataProto:
        """Deep copy: cloned tensors, deep-copied non-tensor arrays and meta_info."""
        return self.select(deepcopy=True)

    # -- serialisation --------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickle state; tensors that are views into a larger storage are compacted so only their data is sent."""
        batch = None
        if self.batch is not None:
            batch = {"num_rows": self.batch.num_rows, "tensors": {k: _compact(v) for k, v in self.batch.items()}}
        return {"batch": batch, "non_tensor_batch": self.non_tensor_batch, "meta_info": self.meta_info}

    def __setstate__(self, state: dict[str, Any]) -> None:
        batch = state["batch"]
        self.batch = TensorBatch(batch["tensors"], batch["num_rows"]) if batch is not None else None
        self.non_tensor_batch = state["non_tensor_batch"]
        self.meta_info = state["meta_info"]

    def save_to_disk(self, path: str | os.PathLike) -> None:
        """Pickle to ``path`` (parent directories are created)."""
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load_from_disk(path: str | os.PathLike) -> DataProto:
        """Load a DataProto written by :meth:`save_to_disk` (uses pickle: only load files you trust)."""
        with open(os.fspath(path), "rb") as f:
            data = pickle.load(f)
        if not isinstance(data, DataProto):
            raise TypeError(f"{os.fspath(path)} does not hold a DataProto but a {type(data).__name__}")
        return data

    def __repr__(self) -> str:
        batch = (
            "None"
            if self.batch is None
            else "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in self.batch.items()) + "}"
        )
        non_tensor = "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in self.non_tensor_batch.items()) + "}"
        return f"DataProto(len={len(self)}, batch={batch}, non_tensor_batch={non_tensor}, meta_info_keys={list(self.meta_info)})"


# ----------------------------------------------------------------------------------------------------------------------
# free functions
# ----------------------------------------------------------------------------------------------------------------------
def pad_dataproto_to_divisor(data: DataProto, size_divisor: int) -> tuple[DataProto, int]:
    """Alias of :meth:`DataProto.pad_to_divisor` (verl API)."""
    return data.pad_to_divisor(size_divisor)


def unpad_dataproto(data: DataProto, pad_size: int) -> DataProto:
    """Alias of :meth:`DataProto.unpad` (verl API)."""
    return data.unpad(pad_size)


def collate_fn(features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate dataset rows for a torch ``DataLoader``: tensors are stacked, everything else becomes a 1-D object array.

    The result can be passed to :meth:`DataProto.from_single_dict`. Every row must have the same keys, and a key must
    hold tensors in all rows or in none.
    """
    features = list(features)
    if not features:
        raise ValueError("collate_fn needs at least one row")
    keys = list(features[0])
    for i, row in enumerate(features):
        if set(row) != set(keys):
            raise KeyError(f"row {i} has keys {sorted(row)} but row 0 has {sorted(keys)}")
    out: dict[str, Any] = {}
    for key in keys:
        values = [row[key] for row in features]
        n_tensors = sum(isinstance(v, torch.Tensor) for v in values)
        if n_tensors == len(values):
            try:
                out[key] = torch.stack(values, dim=0)
            except RuntimeError as e:
                raise ValueError(f"cannot stack the tensors of key {key!r}: {e}") from e
        elif n_tensors == 0:
            out[key] = _to_object_array(key, values)
        else:
            raise TypeError(f"key {key!r} holds tensors in some rows and other values in others")
    return out
