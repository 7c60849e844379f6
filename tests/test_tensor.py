"""The Tensor's own behaviour: storage and views, conversions, in-place rules, devices."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import compgrad
from compgrad import Tensor


def test_shape_size_dims():
    t = compgrad.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, compgrad.Size)
    assert repr(t.shape) == "compgrad.Size([2, 3, 4])"
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.dim() == t.ndim == 3 and t.numel() == 24 and t.shape.numel() == 24
    assert t.stride() == (12, 4, 1) and t.stride(0) == 12 and t.is_contiguous()
    assert t.dtype is compgrad.float32 and t.device == compgrad.device("cpu")
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.size(3)


def test_dtype_conversions_and_aliases():
    t = compgrad.tensor([1.7, -2.2])
    assert t.long().tolist() == [1, -2] and t.long().dtype is compgrad.int64
    assert t.int().dtype is compgrad.int32 and t.double().dtype is compgrad.float64
    assert t.half().dtype is compgrad.float16 and t.bool().tolist() == [True, True]
    assert t.float() is t
    assert t.to(compgrad.float64).dtype is compgrad.float64
    assert t.to(compgrad.tensor([1])).dtype is compgrad.int64
    assert compgrad.float is compgrad.float32 and compgrad.long is compgrad.int64
    assert compgrad.double is compgrad.float64 and compgrad.half is compgrad.float16
    assert compgrad.bool is compgrad.bool_
    assert t.to(copy=True) is not t


def test_python_conversions():
    t = compgrad.tensor([[1.5]])
    assert float(t) == 1.5 and int(t) == 1 and t.item() == 1.5 and bool(t)
    assert f"{compgrad.tensor(2.5):.2f}" == "2.50"
    assert [1, 2, 3][compgrad.tensor(1)] == 2
    with pytest.raises(TypeError):
        [1, 2][compgrad.tensor(1.0)]
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(compgrad.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        compgrad.tensor([1.0, 2.0]).item()
    assert len(compgrad.zeros(4, 2)) == 4
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(compgrad.tensor(1.0))
    rows = list(compgrad.tensor([[1, 2], [3, 4]]))
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]
    assert 3 in compgrad.tensor([1, 2, 3]) and 5 not in compgrad.tensor([1, 2, 3])


def test_numpy_and_from_numpy_share_memory():
    a = np.zeros(3, dtype=np.float32)
    t = compgrad.from_numpy(a)
    t.add_(1)
    assert a.tolist() == [1, 1, 1]
    a[0] = 5
    assert t[0].item() == 5
    n = t.numpy()
    n[1] = 7
    assert t.tolist() == [5, 7, 1]
    assert np.asarray(t) is n or np.shares_memory(np.asarray(t), a)
    with pytest.raises(TypeError, match="can't convert np.ndarray of type"):
        compgrad.from_numpy(np.zeros(2, dtype=np.complex64))


def test_tensor_copies_and_infers_dtype():
    a = np.zeros(3)
    t = compgrad.tensor(a)
    t.add_(1)
    assert a.tolist() == [0, 0, 0] and t.dtype is compgrad.float64
    assert compgrad.tensor([1, 2]).dtype is compgrad.int64
    assert compgrad.tensor([1, 2.0]).dtype is compgrad.float32
    assert compgrad.tensor([True]).dtype is compgrad.bool_
    assert compgrad.tensor(3.0).shape == () and compgrad.tensor([]).shape == (0,)
    assert compgrad.tensor([compgrad.tensor(1.0), compgrad.tensor(2.0)]).tolist() == [1, 2]
    with pytest.raises(ValueError, match="expected sequence of length 2 at dim 1"):
        compgrad.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="Could not infer dtype"):
        compgrad.tensor("abc")
    assert Tensor([1, 2]).dtype is compgrad.float32 and Tensor(2, 3).shape == (2, 3)


def test_views_share_storage_with_base():
    base = compgrad.zeros(3, 4)
    base[1].fill_(1)              # basic index: a view
    assert base.sum().item() == 4
    base.t()[0].add_(10)          # transpose view of the base, then a row of it
    assert base[:, 0].tolist() == [10, 11, 10]
    flat = base.view(-1)          # reshape-view
    flat[0] = -1
    assert base[0, 0].item() == -1
    v = base[::2, 1:]
    assert not v.is_contiguous() and v.stride() == (8, 1)
    v.zero_()
    assert base[2].tolist() == [10, 0, 0, 0]
    e = compgrad.tensor([1.0, 2.0]).expand(3, 2)
    assert e.stride() == (0, 1)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e.add_(1)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        base.t().view(-1)
    assert base.t().reshape(-1).shape == (12,)
    assert base.t().contiguous().is_contiguous()


def test_views_share_version_counter():
    base = compgrad.zeros(4)
    view = base[1:3]
    before = base._version_value
    view.add_(1)
    assert base._version_value == view._version_value == before + 1


def test_failing_inplace_op_changes_nothing():
    t = compgrad.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Long"):
        t.mul_(1.5)
    assert t.tolist() == [1, 2, 3]
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the "
                                           r"broadcast shape \[2, 3\]"):
        t.add_(compgrad.ones(2, 3, dtype=compgrad.int64))
    assert t.tolist() == [1, 2, 3] and t._version_value == 0
    f = compgrad.tensor([1.0, 2.0], dtype=compgrad.float16)
    f.add_(compgrad.tensor([0.5, 0.5]))   # float32 result cast back to float16: allowed
    assert f.dtype is compgrad.float16 and f.tolist() == [1.5, 2.5]


def test_inplace_operators_keep_identity():
    t = compgrad.ones(2)
    u = t
    t += 1
    t *= compgrad.tensor([2.0, 3.0])
    assert u is t and t.tolist() == [4.0, 6.0]


def test_operators_with_scalars_both_sides():
    t = compgrad.tensor([1.0, 2.0])
    assert (2 - t).tolist() == [1.0, 0.0] and (2 / t).tolist() == [2.0, 1.0]
    assert (t ** 2).tolist() == [1.0, 4.0] and (2 ** t).tolist() == [2.0, 4.0]
    assert (-t).tolist() == [-1.0, -2.0] and abs(-t).tolist() == [1.0, 2.0]
    assert (t == 1).tolist() == [True, False] and (1 < t).tolist() == [False, True]
    assert (np.float64(2.0) * t).dtype is compgrad.float32
    assert (t @ t).item() == 5.0
    assert (t != None) is True  # noqa: E711 - PyTorch's behaviour for None
    i = compgrad.tensor([5, 6])
    assert (i // 4).tolist() == [1, 1] and (i % 4).tolist() == [1, 2]
    assert (i & 3).tolist() == [1, 2] and (~compgrad.tensor([True])).tolist() == [False]


def test_cuda_request_without_gpu_is_a_clear_error():
    if compgrad.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="cuda"):
        compgrad.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        compgrad.ones(2).to("cuda")
    assert compgrad.ones(2).cpu().device.type == "cpu"
    assert str(compgrad.device("cuda:1")) == "cuda:1"
    assert repr(compgrad.device("cpu")) == "device(type='cpu')"


def test_requires_grad_rules():
    t = compgrad.tensor([1.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        compgrad.tensor([1], requires_grad=True)
    with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires"):
        t.numpy()
    assert t.detach().numpy().tolist() == [1.0]


def test_pickle_and_deepcopy_round_trip():
    t = compgrad.tensor([[1.0, 2.0]], requires_grad=True)
    for other in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t)):
        assert other.tolist() == t.tolist() and other.requires_grad
        assert not np.shares_memory(other._data, t._data)
