"""Property tests (hypothesis) for broadcasting and type promotion against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compgrad
from ir import dtypes
from ir.types import broadcast_shapes

torch = pytest.importorskip("torch")

DTYPES = list(dtypes.ALL_DTYPES)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

shapes = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)


def _torch_dtype(d):
    return getattr(torch, d.name)


@SETTINGS
@given(shapes, shapes)
def test_broadcast_shapes_match_torch(a, b):
    try:
        expected = tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        with pytest.raises(RuntimeError, match="must match the size"):
            broadcast_shapes(a, b)
        return
    assert broadcast_shapes(a, b) == expected


@SETTINGS
@given(st.sampled_from(DTYPES), st.sampled_from(DTYPES))
def test_promote_types_matches_torch(a, b):
    assert dtypes.promote_types(a, b).name == \
        str(torch.promote_types(_torch_dtype(a), _torch_dtype(b))).replace("torch.", "")


operand = st.one_of(
    st.tuples(st.just("tensor"), st.sampled_from(DTYPES), st.sampled_from([(), (2,), (1, 2)])),
    st.tuples(st.just("scalar"), st.sampled_from([True, 3, 2.5]), st.just(None)),
)


def _make(kind, value, shape, lib):
    if kind == "scalar":
        return value
    arr = np.ones(shape, dtype=value.np_dtype)
    return compgrad.from_numpy(arr) if lib == "compgrad" else torch.from_numpy(arr)


@SETTINGS
@given(operand, operand)
def test_result_type_and_add_dtype_match_torch(x, y):
    if x[0] == "scalar" and y[0] == "scalar":
        return
    ours = [_make(*x, "compgrad"), _make(*y, "compgrad")]
    theirs = [_make(*x, "torch"), _make(*y, "torch")]
    expected = str(torch.result_type(*theirs)).replace("torch.", "")
    assert compgrad.result_type(*ours).name == expected
    if expected == "bool":
        return  # torch.add on bools is logical or; compared by the op sweep
    assert compgrad.add(*ours).dtype.name == str(torch.add(*theirs).dtype).replace("torch.", "")
    assert (ours[0] * ours[1]).dtype.name == str((theirs[0] * theirs[1]).dtype).replace(
        "torch.", "")


@SETTINGS
@given(shapes, shapes, st.sampled_from([np.float32, np.int64, np.float64]))
def test_add_broadcasts_like_torch(a, b, dt):
    xa, xb = np.ones(a, dtype=dt), np.full(b, 2, dtype=dt)
    try:
        expected = torch.from_numpy(xa) + torch.from_numpy(xb)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="must match the size"):
            compgrad.from_numpy(xa) + compgrad.from_numpy(xb)
        return
    got = compgrad.from_numpy(xa) + compgrad.from_numpy(xb)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_weak_scalar_rules_from_the_issue():
    i = compgrad.tensor([1, 2])
    f = compgrad.tensor([1.0, 2.0])
    assert (i * 2.5).dtype is compgrad.float32
    assert (f * compgrad.tensor(2.0, dtype=compgrad.float64)).dtype is compgrad.float32
    assert (i / i).dtype is compgrad.float32
    assert (i * compgrad.tensor(2.5, dtype=compgrad.float64)).dtype is compgrad.float64
    assert (compgrad.tensor([1], dtype=compgrad.int8) + 1).dtype is compgrad.int8
    assert (compgrad.tensor([True]) + 1).dtype is compgrad.int64
