"""Tests for verl.protocol (DataProto, TensorBatch, collate_fn, padding helpers)."""

import pickle

import numpy as np
import pytest
import torch

from verl.protocol import (
    DataProto,
    DataProtoItem,
    TensorBatch,
    collate_fn,
    pad_dataproto_to_divisor,
    unpad_dataproto,
)


def obj(*values):
    """A 1-D object array holding exactly ``values`` (never 2-D)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def make(n=4, meta=None):
    """Rows i = 0..n-1: ids=[10i, 10i+1], mask=[i], uid='u{i}', gt=[i, i] (a list per row)."""
    ids = torch.tensor([[10 * i, 10 * i + 1] for i in range(n)], dtype=torch.long).reshape(n, 2)
    mask = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    return DataProto.from_dict(
        tensors={"ids": ids, "mask": mask},
        non_tensors={"uid": [f"u{i}" for i in range(n)], "gt": [[i, i] for i in range(n)]},
        meta_info=dict(meta or {"temperature": 1.0}),
    )


def uids(data):
    return list(data.non_tensor_batch["uid"])


def ids0(data):
    """First column of ids divided by 10, i.e. the original row numbers."""
    return (data.batch["ids"][:, 0] // 10).tolist()


def assert_same(a, b):
    assert len(a) == len(b)
    assert (a.batch is None) == (b.batch is None)
    if a.batch is not None:
        assert list(a.batch.keys()) == list(b.batch.keys())
        for k in a.batch:
            assert a.batch[k].dtype == b.batch[k].dtype
            assert torch.equal(a.batch[k], b.batch[k]), k
    assert list(a.non_tensor_batch) == list(b.non_tensor_batch)
    for k, v in a.non_tensor_batch.items():
        assert v.dtype == b.non_tensor_batch[k].dtype
        assert v.shape == b.non_tensor_batch[k].shape
        assert v.tolist() == b.non_tensor_batch[k].tolist(), k
    assert a.meta_info == b.meta_info


# ----------------------------------------------------------------------------------------------------------------------
# construction
# ----------------------------------------------------------------------------------------------------------------------
def test_from_dict_basic():
    data = make(3)
    assert len(data) == 3
    assert isinstance(data.batch, TensorBatch)
    assert isinstance(data.batch, dict)
    assert data.batch.batch_size == torch.Size([3])
    assert data.batch.batch_size[0] == 3
    assert data.batch.num_rows == 3
    assert sorted(data.batch.keys()) == ["ids", "mask"]
    assert data.batch["ids"].tolist() == [[0, 1], [10, 11], [20, 21]]
    assert data.non_tensor_batch["uid"].dtype == object
    assert uids(data) == ["u0", "u1", "u2"]
    assert data.meta_info == {"temperature": 1.0}


def test_from_dict_tensor_length_mismatch_names_key():
    with pytest.raises(ValueError, match=r"'b'.*3.*'a'.*4"):
        DataProto.from_dict(tensors={"a": torch.zeros(4, 2), "b": torch.zeros(3)})


def test_from_dict_non_tensor_length_mismatch_names_key():
    with pytest.raises(ValueError, match=r"non_tensor_batch\['uid'\] has length 3, but the batch size is 4"):
        DataProto.from_dict(tensors={"a": torch.zeros(4)}, non_tensors={"uid": ["a", "b", "c"]})


def test_non_tensor_only_length_mismatch_names_both_keys():
    with pytest.raises(ValueError, match=r"'y'.*length 2.*'x'.*length 3"):
        DataProto.from_dict(non_tensors={"x": [1, 2, 3], "y": [1, 2]})


def test_object_arrays_of_equal_length_lists_stay_1d():
    rows = [[1, 2], [3, 4], [5, 6]]
    data = DataProto.from_dict(non_tensors={"gt": rows, "d": [{"a": 1}, {"a": 2}, {"a": 3}]})
    gt = data.non_tensor_batch["gt"]
    assert gt.shape == (3,)
    assert gt.dtype == object
    assert gt[1] == [3, 4]
    assert isinstance(gt[1], list)
    assert data.non_tensor_batch["d"].shape == (3,)
    assert data.non_tensor_batch["d"][2] == {"a": 3}
    assert len(data) == 3
    assert data.batch is None


def test_object_array_of_numpy_arrays_stays_1d():
    data = DataProto.from_dict(non_tensors={"img": [np.zeros((2, 2)), np.ones((2, 2))]})
    img = data.non_tensor_batch["img"]
    assert img.shape == (2,)
    assert np.array_equal(img[1], np.ones((2, 2)))


def test_numpy_array_non_tensor_kept_as_is():
    arr = np.array([3, 1, 2])
    data = DataProto.from_dict(non_tensors={"idx": arr})
    assert data.non_tensor_batch["idx"] is arr


def test_bad_non_tensor_values_raise():
    with pytest.raises(TypeError, match="'s'"):
        DataProto.from_dict(non_tensors={"s": "abc"})
    with pytest.raises(TypeError, match="'t'"):
        DataProto.from_dict(non_tensors={"t": torch.zeros(3)})
    with pytest.raises(ValueError, match="'z'"):
        DataProto.from_dict(non_tensors={"z": np.array(5)})
    with pytest.raises(ValueError, match="'scalar'"):
        DataProto.from_dict(tensors={"scalar": torch.tensor(1.0)})


def test_from_single_dict_routes_values():
    data = DataProto.from_single_dict(
        {"ids": torch.arange(6).reshape(3, 2), "prompt": ["a", "b", "c"], "idx": np.array([7, 8, 9])},
        meta_info={"k": 1},
    )
    assert list(data.batch.keys()) == ["ids"]
    assert sorted(data.non_tensor_batch) == ["idx", "prompt"]
    assert data.non_tensor_batch["prompt"].tolist() == ["a", "b", "c"]
    assert data.meta_info == {"k": 1}


def test_len_variants_and_empty():
    assert len(DataProto()) == 0
    assert DataProto().batch is None
    assert len(DataProto.from_dict(non_tensors={"x": ["a", "b"]})) == 2
    assert DataProto.from_dict(tensors={}).batch is None
    assert len(DataProto(batch={"a": torch.zeros(5, 3)})) == 5
    assert isinstance(DataProto(batch={"a": torch.zeros(5, 3)}).batch, TensorBatch)


def test_check_consistency_after_manual_edit():
    data = make(3)
    data.non_tensor_batch["bad"] = obj(1, 2)
    with pytest.raises(ValueError, match=r"'bad'.*2.*3"):
        data.check_consistency()
    data.non_tensor_batch["bad"] = [1, 2, 3]
    with pytest.raises(TypeError, match="'bad'"):
        data.check_consistency()


# ----------------------------------------------------------------------------------------------------------------------
# TensorBatch
# ----------------------------------------------------------------------------------------------------------------------
def test_tensor_batch_setitem_checks_shape():
    data = make(3)
    data.batch["new"] = torch.ones(3, 5)
    assert data.batch["new"].shape == (3, 5)
    with pytest.raises(ValueError, match=r"'bad'.*leading dimension 2.*batch size is 3"):
        data.batch["bad"] = torch.ones(2)
    with pytest.raises(ValueError, match="'bad2'"):
        data.batch.update({"bad2": torch.ones(4)})
    with pytest.raises(ValueError, match="'bad3'"):
        data.batch |= {"bad3": torch.ones(1)}
    with pytest.raises(TypeError, match="'bad4'"):
        data.batch["bad4"] = [1, 2, 3]
    assert "bad" not in data.batch and "bad2" not in data.batch and "bad3" not in data.batch


def test_tensor_batch_indexing_and_methods():
    tb = TensorBatch({"a": torch.tensor([1, 2, 3, 4]), "b": torch.tensor([[0], [1], [2], [3]])})
    assert tb.batch_size == torch.Size([4])
    assert tb[1:3]["a"].tolist() == [2, 3]
    assert tb[1:3].num_rows == 2
    assert tb[torch.tensor([3, 0])]["b"].tolist() == [[3], [0]]
    assert tb[np.array([2])]["a"].tolist() == [3]
    assert tb[[0, 0, 1]]["a"].tolist() == [1, 1, 2]
    assert tb[[]].num_rows == 0
    row = tb[-1]
    assert isinstance(row, dict) and row["a"].item() == 4 and row["b"].tolist() == [3]
    assert list(tb.select("b").keys()) == ["b"]
    with pytest.raises(KeyError, match="'zz'"):
        tb.select("zz")
    moved = tb.to("cpu")
    assert isinstance(moved, TensorBatch) and moved.device == torch.device("cpu")
    cloned = tb.clone()
    cloned["a"][0] = 100
    assert tb["a"][0].item() == 1
    empty = TensorBatch(batch_size=3)
    assert len(empty) == 0 and empty.num_rows == 3
    assert dict(**tb).keys() == {"a", "b"}


def test_tensor_batch_pickle_keeps_batch_size():
    tb = TensorBatch(batch_size=7)
    back = pickle.loads(pickle.dumps(tb))
    assert isinstance(back, TensorBatch) and back.num_rows == 7
    tb2 = TensorBatch({"x": torch.arange(6).reshape(3, 2)})
    back2 = pickle.loads(pickle.dumps(tb2))
    assert back2.num_rows == 3 and back2["x"].tolist() == [[0, 1], [2, 3], [4, 5]]


# ----------------------------------------------------------------------------------------------------------------------
# indexing
# ----------------------------------------------------------------------------------------------------------------------
def test_index_int_gives_item():
    data = make(4)
    item = data[2]
    assert isinstance(item, DataProtoItem)
    assert item.batch["ids"].tolist() == [20, 21]
    assert item.batch["mask"].tolist() == [2.0]
    assert item.non_tensor_batch == {"uid": "u2", "gt": [2, 2]}
    assert item.meta_info == {"temperature": 1.0}
    assert data[-1].non_tensor_batch["uid"] == "u3"
    assert data[np.int64(1)].non_tensor_batch["uid"] == "u1"
    assert data[torch.tensor(0)].non_tensor_batch["uid"] == "u0"
    with pytest.raises(IndexError):
        data[4]
    with pytest.raises(IndexError):
        data[-5]


def test_index_slice_is_a_view():
    data = make(4)
    part = data[1:3]
    assert isinstance(part, DataProto)
    assert ids0(part) == [1, 2]
    assert uids(part) == ["u1", "u2"]
    assert part.non_tensor_batch["gt"].tolist() == [[1, 1], [2, 2]]
    part.batch["ids"][0, 0] = -1
    assert data.batch["ids"][1, 0].item() == -1
    part.meta_info["new"] = 1
    assert "new" not in data.meta_info
    assert uids(data[::2]) == ["u0", "u2"]
    assert uids(data[::-1]) == ["u3", "u2", "u1", "u0"]


@pytest.mark.parametrize(
    "index",
    [torch.tensor([3, 0, 3]), np.array([3, 0, 3]), [3, 0, 3], [-1, 0, -1], torch.tensor([3, 0, 3], dtype=torch.int32)],
)
def test_index_by_indices(index):
    data = make(4)
    part = data[index]
    assert ids0(part) == [3, 0, 3]
    assert uids(part) == ["u3", "u0", "u3"]
    assert part.non_tensor_batch["gt"].shape == (3,)
    assert part.non_tensor_batch["gt"].tolist() == [[3, 3], [0, 0], [3, 3]]
    assert part.batch["mask"].tolist() == [[3.0], [0.0], [3.0]]


def test_index_by_bool_mask():
    data = make(4)
    for mask in (torch.tensor([True, False, True, False]), np.array([True, False, True, False])):
        assert uids(data[mask]) == ["u0", "u2"]
        assert ids0(data[mask]) == [0, 2]
    with pytest.raises(IndexError, match="mask"):
        data[torch.tensor([True, False])]


def test_index_errors():
    data = make(4)
    with pytest.raises(IndexError, match="out of range"):
        data[[0, 4]]
    with pytest.raises(TypeError, match=r"data.batch\['ids'\]"):
        data["ids"]
    assert len(data[[]]) == 0
    assert data[[]].non_tensor_batch["uid"].shape == (0,)


def test_iter_gives_items():
    assert [item.non_tensor_batch["uid"] for item in make(3)] == ["u0", "u1", "u2"]


# ----------------------------------------------------------------------------------------------------------------------
# select / pop / rename
# ----------------------------------------------------------------------------------------------------------------------
def test_select():
    data = make(3, meta={"a": 1, "b": 2})
    sub = data.select(batch_keys=["ids"], non_tensor_batch_keys=["uid"], meta_info_keys=["b"])
    assert list(sub.batch.keys()) == ["ids"]
    assert list(sub.non_tensor_batch) == ["uid"]
    assert sub.meta_info == {"b": 2}
    assert sub.batch["ids"] is data.batch["ids"]
    assert sorted(data.batch.keys()) == ["ids", "mask"]  # untouched
    everything = data.select()
    assert sorted(everything.batch.keys()) == ["ids", "mask"]
    assert sorted(everything.non_tensor_batch) == ["gt", "uid"]
    assert everything.meta_info == {"a": 1, "b": 2}
    only_meta = data.select(batch_keys=[], non_tensor_batch_keys=[])
    assert len(only_meta) == 3 and len(only_meta.batch) == 0
    with pytest.raises(KeyError, match="'nope'"):
        data.select(batch_keys=["nope"])
    with pytest.raises(KeyError, match="'nope'"):
        data.select(non_tensor_batch_keys=["nope"])


def test_select_deepcopy():
    data = make(3)
    deep = data.select(batch_keys=["ids"], non_tensor_batch_keys=["gt"], deepcopy=True)
    deep.batch["ids"][0, 0] = 999
    deep.non_tensor_batch["gt"][0].append(5)
    assert data.batch["ids"][0, 0].item() == 0
    assert data.non_tensor_batch["gt"][0] == [0, 0]
    shallow = data.select(non_tensor_batch_keys=["gt"])
    shallow.batch["ids"][0, 0] = 7
    assert data.batch["ids"][0, 0].item() == 7


def test_pop_removes_from_self():
    data = make(3, meta={"a": 1, "b": 2})
    popped = data.pop(batch_keys=["mask"], non_tensor_batch_keys=["gt"], meta_info_keys=["a"])
    assert list(popped.batch.keys()) == ["mask"]
    assert popped.batch["mask"].tolist() == [[0.0], [1.0], [2.0]]
    assert popped.non_tensor_batch["gt"].tolist() == [[0, 0], [1, 1], [2, 2]]
    assert popped.meta_info == {"a": 1}
    assert list(data.batch.keys()) == ["ids"]
    assert list(data.non_tensor_batch) == ["uid"]
    assert data.meta_info == {"b": 2}
    assert len(data) == 3 and len(popped) == 3


def test_pop_none_pops_nothing_and_bad_key_leaves_self_intact():
    data = make(3)
    popped = data.pop()
    assert len(popped.batch) == 0 and popped.non_tensor_batch == {} and popped.meta_info == {}
    assert sorted(data.batch.keys()) == ["ids", "mask"]
    with pytest.raises(KeyError, match="'nope'"):
        data.pop(batch_keys=["ids"], non_tensor_batch_keys=["nope"])
    assert sorted(data.batch.keys()) == ["ids", "mask"]
    everything = data.pop(batch_keys=["ids", "mask"], non_tensor_batch_keys=["uid", "gt"])
    assert len(data) == 3  # an empty TensorBatch keeps the length
    assert len(everything) == 3


def test_rename():
    data = make(3)
    original_ids = data.batch["ids"]
    assert data.rename("ids", "input_ids") is data
    assert sorted(data.batch.keys()) == ["input_ids", "mask"]
    assert data.batch["input_ids"] is original_ids
    data.rename(["uid", "mask"], ["group", "attention_mask"])
    assert sorted(data.non_tensor_batch) == ["group", "gt"]
    assert sorted(data.batch.keys()) == ["attention_mask", "input_ids"]
    assert data.non_tensor_batch["group"].tolist() == ["u0", "u1", "u2"]
    # swap
    data.rename(["input_ids", "attention_mask"], ["attention_mask", "input_ids"])
    assert data.batch["attention_mask"] is original_ids
    with pytest.raises(KeyError, match="'missing'"):
        data.rename("missing", "x")
    with pytest.raises(ValueError, match="gt"):
        data.rename("group", "gt")
    with pytest.raises(ValueError, match="as many"):
        data.rename(["gt"], ["a", "b"])


# ----------------------------------------------------------------------------------------------------------------------
# union
# ----------------------------------------------------------------------------------------------------------------------
def test_union_merges():
    a = DataProto.from_dict(
        tensors={"x": torch.tensor([1, 2])}, non_tensors={"uid": ["a", "b"]}, meta_info={"m": 1, "shared": [1, 2]}
    )
    b = DataProto.from_dict(
        tensors={"x": torch.tensor([1, 2]), "y": torch.tensor([3.0, 4.0])},
        non_tensors={"uid": ["a", "b"], "gt": [[1], [2]]},
        meta_info={"n": 2, "shared": [1, 2]},
    )
    out = a.union(b)
    assert out is a
    assert sorted(a.batch.keys()) == ["x", "y"]
    assert a.batch["y"].tolist() == [3.0, 4.0]
    assert a.non_tensor_batch["gt"].tolist() == [[1], [2]]
    assert a.meta_info == {"m": 1, "shared": [1, 2], "n": 2}


def test_union_into_no_batch_and_meta_only():
    a = DataProto.from_dict(non_tensors={"uid": ["a", "b"]})
    a.union(DataProto.from_dict(tensors={"x": torch.tensor([5, 6])}))
    assert a.batch["x"].tolist() == [5, 6]
    a.union(DataProto(meta_info={"k": "v"}))  # no rows at all: only meta is merged
    assert a.meta_info == {"k": "v"}
    assert len(a) == 2


def test_union_conflicts_name_the_key():
    base = DataProto.from_dict(tensors={"x": torch.tensor([1, 2])}, non_tensors={"uid": ["a", "b"]}, meta_info={"m": 1})
    with pytest.raises(ValueError, match="'x'"):
        base.union(DataProto.from_dict(tensors={"x": torch.tensor([1, 3])}))
    with pytest.raises(ValueError, match="'x'"):
        base.union(DataProto.from_dict(tensors={"x": torch.tensor([1.0, 2.0])}))  # same values, other dtype
    with pytest.raises(ValueError, match="'uid'"):
        base.union(DataProto.from_dict(non_tensors={"uid": ["a", "c"]}))
    with pytest.raises(ValueError, match="'m'"):
        base.union(DataProto.from_dict(tensors={"x": torch.tensor([1, 2])}, meta_info={"m": 2}))
    with pytest.raises(ValueError, match="different lengths: 2 and 3"):
        base.union(DataProto.from_dict(tensors={"z": torch.tensor([1, 2, 3])}))


def test_union_object_arrays_with_nested_values():
    a = DataProto.from_dict(non_tensors={"gt": [[1, 2], [3, 4]], "img": [np.zeros(2), np.ones(2)]})
    a.union(DataProto.from_dict(non_tensors={"gt": [[1, 2], [3, 4]], "img": [np.zeros(2), np.ones(2)]}))
    with pytest.raises(ValueError, match="'img'"):
        a.union(DataProto.from_dict(non_tensors={"img": [np.zeros(2), np.zeros(2)]}))


# ----------------------------------------------------------------------------------------------------------------------
# concat / chunk / split
# ----------------------------------------------------------------------------------------------------------------------
def test_concat():
    a = make(2, meta={"m": 1, "timing": 0.5})
    b = make(3, meta={"m": 1, "timing": 0.7, "extra": "x"})
    out = DataProto.concat([a, b])
    assert len(out) == 5
    assert out.batch["ids"].tolist() == [[0, 1], [10, 11], [0, 1], [10, 11], [20, 21]]
    assert out.batch["mask"].tolist() == [[0.0], [1.0], [0.0], [1.0], [2.0]]
    assert uids(out) == ["u0", "u1", "u0", "u1", "u2"]
    assert out.non_tensor_batch["gt"].shape == (5,)
    assert out.non_tensor_batch["gt"].tolist() == [[0, 0], [1, 1], [0, 0], [1, 1], [2, 2]]
    assert out.meta_info == {"m": 1, "timing": 0.5, "extra": "x"}  # default policy "first"


def test_concat_strict_meta_and_key_checks():
    a = make(2, meta={"m": 1})
    b = make(2, meta={"m": 2})
    with pytest.raises(ValueError, match="'m'"):
        DataProto.concat([a, b], meta_info_policy="strict")
    assert DataProto.concat([a, make(2, meta={"m": 1})], meta_info_policy="strict").meta_info == {"m": 1}
    with pytest.raises(ValueError, match="meta_info_policy"):
        DataProto.concat([a], meta_info_policy="last")
    with pytest.raises(ValueError, match="batch keys"):
        DataProto.concat([a, a.select(batch_keys=["ids"])])
    with pytest.raises(ValueError, match="non_tensor_batch keys"):
        DataProto.concat([a, a.select(non_tensor_batch_keys=["uid"])])
    with pytest.raises(ValueError, match="at least one"):
        DataProto.concat([])


def test_concat_non_tensor_only():
    a = DataProto.from_dict(non_tensors={"x": [[1], [2]]})
    b = DataProto.from_dict(non_tensors={"x": [[3]]})
    out = DataProto.concat([a, b])
    assert out.batch is None
    assert out.non_tensor_batch["x"].tolist() == [[1], [2], [3]]


def test_chunk_exact_values():
    data = make(6)
    chunks = data.chunk(3)
    assert len(chunks) == 3
    assert [ids0(c) for c in chunks] == [[0, 1], [2, 3], [4, 5]]
    assert [uids(c) for c in chunks] == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]]
    assert [c.non_tensor_batch["gt"].tolist() for c in chunks] == [
        [[0, 0], [1, 1]],
        [[2, 2], [3, 3]],
        [[4, 4], [5, 5]],
    ]
    assert all(c.meta_info == {"temperature": 1.0} for c in chunks)
    chunks[0].meta_info["only_here"] = True
    assert "only_here" not in chunks[1].meta_info
    assert "only_here" not in data.meta_info
    del chunks[0].meta_info["only_here"]
    assert_same(DataProto.concat(chunks), data)


def test_chunk_indivisible_raises():
    with pytest.raises(ValueError, match=r"5 rows into 2.*pad_to_divisor\(2\)"):
        make(5).chunk(2)
    with pytest.raises(ValueError):
        make(4).chunk(0)


def test_split_with_remainder():
    data = make(5)
    pieces = data.split(2)
    assert [ids0(p) for p in pieces] == [[0, 1], [2, 3], [4]]
    assert [uids(p) for p in pieces] == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert [ids0(p) for p in data.split(5)] == [[0, 1, 2, 3, 4]]
    assert [ids0(p) for p in data.split(10)] == [[0, 1, 2, 3, 4]]
    assert_same(DataProto.concat(pieces), data)
    empty = data[0:0]
    assert [len(p) for p in empty.split(3)] == [0]
    with pytest.raises(ValueError):
        data.split(0)


# ----------------------------------------------------------------------------------------------------------------------
# padding
# ----------------------------------------------------------------------------------------------------------------------
def test_pad_larger_than_batch_and_unpad():
    data = make(3)
    padded, pad = data.pad_to_divisor(8)
    assert pad == 5
    assert len(padded) == 8
    assert ids0(padded) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert uids(padded) == ["u0", "u1", "u2", "u0", "u1", "u2", "u0", "u1"]
    assert padded.non_tensor_batch["gt"].shape == (8,)
    assert padded.meta_info == data.meta_info
    restored = padded.unpad(pad)
    assert_same(restored, data)
    assert restored.batch["ids"].tolist() == [[0, 1], [10, 11], [20, 21]]


def test_pad_small_and_no_pad():
    data = make(5)
    padded, pad = pad_dataproto_to_divisor(data, 4)
    assert pad == 3
    assert ids0(padded) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert_same(unpad_dataproto(padded, pad), data)
    same, zero = data.pad_to_divisor(5)
    assert same is data and zero == 0
    assert data.unpad(0) is data
    with pytest.raises(ValueError):
        data.unpad(6)
    with pytest.raises(ValueError):
        data.pad_to_divisor(0)


def test_padding_rows_carry_weight_zero():
    data = make(3)
    padded, pad = data.pad_to_divisor(4)
    marked = padded.with_padding_weight(len(data))
    assert marked.batch["loss_weight"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert "loss_weight" not in padded.batch  # a new batch: the original padding is untouched
    marked.batch["loss_weight"][0] = 0.25
    again = marked.with_padding_weight(2)
    assert again.batch["loss_weight"].tolist() == [0.25, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        data.with_padding_weight(4)


def test_pad_then_chunk_then_concat_then_unpad():
    data = make(5)
    padded, pad = data.pad_to_divisor(4)
    out = DataProto.concat(padded.chunk(4)).unpad(pad)
    assert_same(out, data)


# ----------------------------------------------------------------------------------------------------------------------
# repeat / reorder
# ----------------------------------------------------------------------------------------------------------------------
def test_repeat_interleave():
    data = make(2)
    out = data.repeat(3, interleave=True)
    assert out.batch["ids"].tolist() == [[0, 1], [0, 1], [0, 1], [10, 11], [10, 11], [10, 11]]
    assert out.batch["mask"].tolist() == [[0.0], [0.0], [0.0], [1.0], [1.0], [1.0]]
    assert uids(out) == ["u0", "u0", "u0", "u1", "u1", "u1"]
    assert out.non_tensor_batch["gt"].shape == (6,)
    assert out.non_tensor_batch["gt"].tolist() == [[0, 0]] * 3 + [[1, 1]] * 3
    assert out.meta_info == data.meta_info


def test_repeat_tiled():
    data = make(2)
    out = data.repeat(3, interleave=False)
    assert out.batch["ids"].tolist() == [[0, 1], [10, 11], [0, 1], [10, 11], [0, 1], [10, 11]]
    assert uids(out) == ["u0", "u1", "u0", "u1", "u0", "u1"]
    assert out.non_tensor_batch["gt"].tolist() == [[0, 0], [1, 1]] * 3
    assert_same(data.repeat(1), data)
    with pytest.raises(ValueError):
        data.repeat(0)


def test_repeat_non_tensor_only():
    data = DataProto.from_dict(non_tensors={"x": ["a", "b"]})
    assert data.repeat(2).non_tensor_batch["x"].tolist() == ["a", "a", "b", "b"]
    assert data.repeat(2, interleave=False).non_tensor_batch["x"].tolist() == ["a", "b", "a", "b"]


@pytest.mark.parametrize("indices", [torch.tensor([2, 0, 3, 1]), [2, 0, 3, 1], np.array([2, 0, 3, 1])])
def test_reorder_in_place(indices):
    data = make(4)
    assert data.reorder(indices) is data
    assert ids0(data) == [2, 0, 3, 1]
    assert uids(data) == ["u2", "u0", "u3", "u1"]
    assert data.non_tensor_batch["gt"].tolist() == [[2, 2], [0, 0], [3, 3], [1, 1]]
    assert data.batch["mask"].tolist() == [[2.0], [0.0], [3.0], [1.0]]


# ----------------------------------------------------------------------------------------------------------------------
# copies, device, repr
# ----------------------------------------------------------------------------------------------------------------------
def test_copy_and_clone_semantics():
    data = make(2, meta={"lst": [1]})
    shallow = data.copy()
    shallow.batch["new"] = torch.zeros(2)
    assert "new" not in data.batch
    shallow.batch["ids"][0, 0] = 42
    assert data.batch["ids"][0, 0].item() == 42
    deep = data.clone()
    deep.batch["ids"][0, 0] = 0
    deep.meta_info["lst"].append(2)
    deep.non_tensor_batch["gt"][1].append(9)
    assert data.batch["ids"][0, 0].item() == 42
    assert data.meta_info == {"lst": [1]}
    assert data.non_tensor_batch["gt"][1] == [1, 1]


def test_to_device_in_place():
    data = make(2)
    assert data.to("cpu") is data
    assert data.batch.device == torch.device("cpu")
    assert DataProto.from_dict(non_tensors={"x": [1]}).to("cpu").batch is None


def test_repr():
    text = repr(make(3))
    assert "len=3" in text
    assert "'ids': (3, 2) torch.int64" in text
    assert "'uid': (3,) object" in text
    assert "temperature" in text


# ----------------------------------------------------------------------------------------------------------------------
# serialisation
# ----------------------------------------------------------------------------------------------------------------------
def test_pickle_round_trip():
    data = make(3, meta={"m": {"nested": [1, 2]}})
    data.non_tensor_batch["img"] = obj(np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 2.0))
    back = pickle.loads(pickle.dumps(data))
    assert isinstance(back.batch, TensorBatch)
    assert_same(back.select(non_tensor_batch_keys=["uid", "gt"]), data.select(non_tensor_batch_keys=["uid", "gt"]))
    assert np.array_equal(back.non_tensor_batch["img"][2], np.full((2, 2), 2.0))
    back.batch["extra"] = torch.ones(3)  # still shape-checked after unpickling
    with pytest.raises(ValueError):
        back.batch["bad"] = torch.ones(2)


def test_pickle_of_slice_is_small():
    big = DataProto.from_dict(
        tensors={"x": torch.arange(400_000, dtype=torch.float32).reshape(1000, 400)},
        non_tensors={"uid": [str(i) for i in range(1000)]},
    )
    full_size = len(pickle.dumps(big))
    assert full_size > 1_600_000
    piece = big[10:12]
    assert piece.batch["x"].untyped_storage().nbytes() == 1_600_000  # a view into the big storage
    blob = pickle.dumps(piece)
    assert len(blob) < 10_000
    back = pickle.loads(blob)
    assert back.batch["x"].tolist() == big.batch["x"][10:12].tolist()
    assert uids(back) == ["10", "11"]
    # a non-contiguous column slice is compacted as well
    column = DataProto.from_dict(tensors={"x": big.batch["x"][:, :2]})
    assert len(pickle.dumps(column)) < 20_000
    assert pickle.loads(pickle.dumps(column)).batch["x"].tolist() == big.batch["x"][:, :2].tolist()
    # chunks sent to workers are small too
    assert all(len(pickle.dumps(c)) < full_size // 3 for c in big.chunk(4))


def test_save_and_load(tmp_path):
    data = make(3, meta={"m": 1})
    path = tmp_path / "sub" / "batch.pkl"
    data.save_to_disk(path)
    loaded = DataProto.load_from_disk(path)
    assert_same(loaded, data)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"not": "a DataProto"}))
    with pytest.raises(TypeError, match="DataProto"):
        DataProto.load_from_disk(other)


# ----------------------------------------------------------------------------------------------------------------------
# collate_fn
# ----------------------------------------------------------------------------------------------------------------------
def test_collate_fn():
    rows = [
        {"ids": torch.tensor([1, 2]), "prompt": "p0", "gt": [0, 0], "images": ["img0a", "img0b"]},
        {"ids": torch.tensor([3, 4]), "prompt": "p1", "gt": [1, 1], "images": ["img1a", "img1b"]},
        {"ids": torch.tensor([5, 6]), "prompt": "p2", "gt": [2, 2], "images": ["img2a", "img2b"]},
    ]
    out = collate_fn(rows)
    assert out["ids"].tolist() == [[1, 2], [3, 4], [5, 6]]
    assert out["prompt"].dtype == object and out["prompt"].tolist() == ["p0", "p1", "p2"]
    assert out["gt"].shape == (3,) and out["gt"][1] == [1, 1]
    assert out["images"].shape == (3,) and out["images"][2] == ["img2a", "img2b"]
    data = DataProto.from_single_dict(out)
    assert len(data) == 3
    assert list(data.batch.keys()) == ["ids"]
    assert sorted(data.non_tensor_batch) == ["gt", "images", "prompt"]
    assert data[1].non_tensor_batch["images"] == ["img1a", "img1b"]


def test_collate_fn_errors():
    with pytest.raises(ValueError):
        collate_fn([])
    with pytest.raises(KeyError, match="row 1"):
        collate_fn([{"a": 1}, {"b": 2}])
    with pytest.raises(TypeError, match="'a'"):
        collate_fn([{"a": torch.zeros(1)}, {"a": 1}])
    with pytest.raises(ValueError, match="'a'"):
        collate_fn([{"a": torch.zeros(1)}, {"a": torch.zeros(2)}])
