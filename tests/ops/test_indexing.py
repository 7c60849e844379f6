"""Indexing semantics the registry sweep cannot express: views, setitem, in-place methods."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad
from ir.opdef import get_op
from ir.vjp import call_vjp

torch = pytest.importorskip("torch")


def _pair(a):
    return compgrad.from_numpy(np.array(a)), torch.from_numpy(np.array(a))


def _same(ours, theirs):
    t = theirs.detach().numpy()
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), t)


X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def test_basic_index_is_a_view_and_advanced_a_copy():
    x = compgrad.from_numpy(X.copy())
    v = x[1, :, 1:3]
    assert v._is_view_of(x)
    v[0, 0] = -1.0
    assert x[1, 0, 1].item() == -1.0
    c = x[compgrad.tensor([0, 1])]
    assert not c._is_view_of(x)
    assert x[...]._is_view_of(x)
    s = compgrad.tensor(3.0)
    assert s[...]._is_view_of(s) and s[None].shape == (1,)


SETITEM_CASES = [
    (lambda t: (1,), 5.0),
    (lambda t: (slice(None), 0), 2.5),
    (lambda t: (Ellipsis, slice(1, None, 2)), "vec2"),
    (lambda t: (t.tensor([1, 0, 1]),), "row"),
    (lambda t: (t.tensor([0, 1]), slice(None), t.tensor([1, 3])), 7.0),
    (lambda t: (slice(None), t.tensor([[0, 2]])), "scalar_t"),
    (lambda t: (t.tensor([[True, False, True], [False, True, False]]),), -3.0),
    (lambda t: (0, t.tensor([True, False, True])), "row"),
    (lambda t: (None, 1, t.tensor([2])), "lead_ones"),
    (lambda t: ([0, 1], 2), 9),
]


@pytest.mark.parametrize("case", range(len(SETITEM_CASES)))
def test_setitem_matches_torch(case):
    make, value = SETITEM_CASES[case]
    values = {"vec2": np.array([10.0, 20.0], dtype=np.float32),
              "row": np.arange(4, dtype=np.float32), "scalar_t": np.array(4.0, dtype=np.float32),
              "lead_ones": np.ones((1, 1, 1), dtype=np.float32)}
    ours, theirs = _pair(X)
    v_ours = compgrad.from_numpy(values[value]) if isinstance(value, str) else value
    v_theirs = torch.from_numpy(values[value]) if isinstance(value, str) else value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours[make(compgrad)] = v_ours
        theirs[make(torch)] = v_theirs
    _same(ours, theirs)


def test_setitem_through_a_view_writes_the_base():
    ours, theirs = _pair(X)
    ours[0][compgrad.tensor([2, 0])] = 1.0
    theirs[0][torch.tensor([2, 0])] = 1.0
    _same(ours, theirs)


def test_setitem_errors():
    x = compgrad.from_numpy(X.copy())
    with pytest.raises(RuntimeError, match="dtypes match"):
        x[compgrad.tensor([0])] = compgrad.tensor(1.0, dtype=compgrad.float64)
    x[0] = compgrad.tensor(2, dtype=compgrad.int64)  # basic indices cast, as copy_ does
    assert x[0, 0, 0].item() == 2.0
    with pytest.raises(RuntimeError, match="must match the existing size"):
        x[0, 0] = compgrad.ones(5) if hasattr(compgrad, "ones") else compgrad.tensor([1.0] * 5)
    with pytest.raises(IndexError, match="out of bounds"):
        x[0, 3] = 1.0


def test_getitem_vjp_accumulates_duplicates():
    x = compgrad.from_numpy(np.arange(4, dtype=np.float64))
    idx = compgrad.tensor([1, 1, 3, 1])
    out = x[idx]
    g = compgrad.from_numpy(np.ones(4))
    (gx, _) = call_vjp(get_op("index"), (x, idx), (out,), {"dims": (0,)}, (g,))
    np.testing.assert_array_equal(gx.numpy(), [0, 3, 0, 1])


INPLACE_CASES = [
    ("index_put_", lambda t: ((t.tensor([0, 0]),), t.ones(4)), {"accumulate": True}),
    ("index_put_", lambda t: ((t.tensor([1]), t.tensor([2])), t.tensor(5.0)), {}),
    ("scatter_", lambda t: (1, t.tensor([[3], [0], [1]]), 2.0), {}),
    ("scatter_add_", lambda t: (0, t.tensor([[0, 0, 2, 1]]), t.ones(1, 4)), {}),
    ("scatter_reduce_", lambda t: (0, t.tensor([[0, 0, 2, 1]]), t.ones(1, 4), "mean"), {}),
    ("index_add_", lambda t: (0, t.tensor([2, 2]), t.ones(2, 4)), {"alpha": 2}),
    ("index_copy_", lambda t: (1, t.tensor([3]), t.zeros(3, 1)), {}),
    ("index_fill_", lambda t: (1, t.tensor([-1, 0]), 7.0), {}),
    ("masked_fill_", lambda t: (t.tensor([True, False, False, True]), -1.0), {}),
    ("masked_scatter_", lambda t: (t.tensor([True, False, False, True]), t.arange(8.0)), {}),
]


@pytest.mark.parametrize("case", range(len(INPLACE_CASES)))
def test_inplace_methods_match_torch(case):
    if not hasattr(compgrad, "ones") or not hasattr(compgrad, "arange"):
        pytest.skip("creation ops not available yet")
    name, make, kwargs = INPLACE_CASES[case]
    ours, theirs = _pair(X[0])
    r_ours = getattr(ours, name)(*make(compgrad), **kwargs)
    r_theirs = getattr(theirs, name)(*make(torch), **kwargs)
    assert r_ours is ours
    _same(ours, theirs)
    _same(r_ours, r_theirs)


@pytest.mark.parametrize("args,kwargs", [
    ((np.array([[0], [3], [1]]), 1), {}),
    ((np.array([[0, 1, 2, 0]]),), {"dim": 0}),
    ((np.array([[2]]), 1), {}),
    ((np.array([[0, 11]]),), {}),
])
def test_take_along_dim_matches_torch(args, kwargs):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    ours = compgrad.take_along_dim(compgrad.from_numpy(x), compgrad.from_numpy(args[0]),
                                   *args[1:], **kwargs)
    theirs = torch.take_along_dim(torch.from_numpy(x), torch.from_numpy(args[0]), *args[1:],
                                  **kwargs)
    _same(ours, theirs)


def test_take_along_dim_errors():
    x = compgrad.from_numpy(X[0].copy())
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        compgrad.take_along_dim(x, compgrad.tensor([0, 1]), 1)
    with pytest.raises(RuntimeError, match="dtype of indices should be Long"):
        compgrad.take_along_dim(x, compgrad.tensor([[0.0]]), 1)


def test_select_scatter_matches_torch():
    src = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    ours = compgrad.select_scatter(compgrad.from_numpy(X[0].copy()), compgrad.from_numpy(src),
                                   1, -1)
    theirs = torch.select_scatter(torch.from_numpy(X[0].copy()), torch.from_numpy(src), 1, -1)
    _same(ours, theirs)


def test_nonzero_as_tuple_and_argwhere():
    m = np.array([[0, 1, 0], [2, 0, 3]])
    ours, theirs = _pair(m)
    for a, b in zip(compgrad.nonzero(ours, as_tuple=True), torch.nonzero(theirs, as_tuple=True)):
        _same(a, b)
    _same(compgrad.argwhere(ours), torch.argwhere(theirs))
    _same(ours.nonzero(), theirs.nonzero())
