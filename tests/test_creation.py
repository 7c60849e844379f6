"""Factories (compgrad.factories) against PyTorch: signatures, dtypes, values, errors."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import factories as F
from tests.oracle import assert_same

torch = pytest.importorskip("torch")


def _both(name, *args, **kwargs):
    ours = getattr(F, name)(*args, **kwargs)
    targs = tuple(getattr(torch, a.name) if isinstance(a, compgrad.dtype) else a for a in args)
    tkw = {k: (getattr(torch, v.name) if isinstance(v, compgrad.dtype) else v)
           for k, v in kwargs.items()}
    theirs = getattr(torch, name)(*targs, **tkw)
    return ours, theirs


@pytest.mark.parametrize("call", [
    ("zeros", (2, 3), {}), ("zeros", ((2, 3),), {}), ("zeros", ([2, 3],), {}),
    ("zeros", (), {"size": (2, 3)}), ("zeros", ((),), {}), ("ones", (4,), {}),
    ("ones", (2, 2), {"dtype": compgrad.int32}), ("empty", (3, 0), {}),
    ("full", ((2, 3), 1.5), {}), ("full", ((2,), 7), {}), ("full", ((2,), True), {}),
    ("full", ((2,), 2.7), {"dtype": compgrad.int64}),
    ("full", ([3], -1), {"dtype": compgrad.uint8}),
    ("arange", (5,), {}), ("arange", (1, 4, 0.5), {}), ("arange", (10, 0, -3), {}),
    ("arange", (), {"start": 2, "end": 5}), ("arange", (0, 10**10 + 3, 10**10), {}),
    ("linspace", (0, 1, 4), {}), ("linspace", (-2, 2, 5), {"dtype": compgrad.float64}),
    ("logspace", (0, 3, 4), {}), ("logspace", (0, 3, 4), {"base": 2.0}),
    ("eye", (3,), {}), ("eye", (2, 3), {"dtype": compgrad.bool}),
    ("scalar_tensor", (3,), {}), ("scalar_tensor", (True,), {"dtype": compgrad.bool}),
])
def test_values_match_torch(call):
    name, args, kwargs = call
    ours, theirs = _both(name, *args, **kwargs)
    assert_same(ours, theirs, where=name)
    assert ours.is_leaf and not ours.requires_grad


def test_like_functions_keep_dtype():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    cx, tx = compgrad.from_numpy(x.copy()), torch.from_numpy(x.copy())
    for name in ("zeros_like", "ones_like", "empty_like"):
        ours, theirs = getattr(F, name)(cx), getattr(torch, name)(tx)
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
        assert tuple(ours.shape) == tuple(theirs.shape)
    assert_same(F.full_like(cx, 2.7), torch.full_like(tx, 2.7))
    assert_same(F.ones_like(cx, dtype=compgrad.float64), torch.ones_like(tx, dtype=torch.float64))
    with pytest.raises(TypeError):
        F.zeros_like([1, 2])


def test_requires_grad():
    t = F.zeros(2, 3, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    assert F.ones_like(t).requires_grad is False
    assert F.full_like(t, 2.0, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        F.zeros(2, dtype=compgrad.int64, requires_grad=True)
    with pytest.raises(RuntimeError):
        torch.zeros(2, dtype=torch.int64, requires_grad=True)


@pytest.mark.parametrize("call,exc", [
    (lambda m: m.zeros(-1, 2), RuntimeError),
    (lambda m: m.zeros(2.0), TypeError),
    (lambda m: m.zeros(), TypeError),
    (lambda m: m.full((2,), 300, dtype=m.uint8), RuntimeError),
    (lambda m: m.full((2,), float("nan"), dtype=m.int32), RuntimeError),
    (lambda m: m.arange(0, 10, 0), RuntimeError),
    (lambda m: m.arange(10, 0), RuntimeError),
    (lambda m: m.arange(0, 1, 0.3, dtype=m.int64), ValueError),
    (lambda m: m.arange(5, dtype=m.bool), NotImplementedError),
    (lambda m: m.linspace(0, 1, -1), RuntimeError),
    (lambda m: m.eye(-1), RuntimeError),
    (lambda m: m.eye(2.5), TypeError),
])
def test_errors_match_torch(call, exc):
    with pytest.raises(exc):
        call(compgrad)
    with pytest.raises(exc):
        call(torch)


def test_cuda_device_checked():
    if compgrad.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="cuda"):
        F.zeros(2, device="cuda")
    assert F.zeros(2, device="cpu").device.type == "cpu"


def test_out_and_layout():
    with pytest.raises(TypeError):
        F.zeros(2, out=F.zeros(2))
    assert F.zeros(2, layout=None, pin_memory=False).shape == (2,)
    with pytest.raises(RuntimeError):
        F.zeros(2, layout="sparse_coo")


def test_tensor_fill_and_new_full():
    t = compgrad.from_numpy(np.arange(4, dtype=np.int64))
    t.fill_(2.7)
    assert t.tolist() == [2, 2, 2, 2]
    n = t.new_full((2, 2), 1.5)
    assert n.dtype is compgrad.int64 and n.tolist() == [[1, 1], [1, 1]]
    z = compgrad.from_numpy(np.ones(3, np.float32)).new_zeros(2, 3)
    assert z.dtype is compgrad.float32 and z.shape == (2, 3)


def test_range_is_inclusive():
    with pytest.warns(UserWarning):
        ours = F.range(1, 2, 0.25)
    with pytest.warns(UserWarning):
        theirs = torch.range(1, 2, 0.25)
    assert_same(ours, theirs)


def test_arange_float_values_match_torch():
    for args in [(0, 1, 0.1), (-3, 3, 0.7), (0.5, 10.25, 0.75), (1, 0, -0.1)]:
        assert_same(F.arange(*args), torch.arange(*args), where=str(args))
        assert_same(F.arange(*args, dtype=compgrad.float64),
                    torch.arange(*args, dtype=torch.float64), where=str(args))


def test_top_level_exports():
    for name in F.__all__:
        assert getattr(compgrad, name) is getattr(F, name)
        assert hasattr(torch, name)
