"""default_collate / default_convert outputs (structure and dtypes) against torch."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import compgrad
from compgrad.utils.data import default_collate, default_convert
from tests.utils._common import norm

torch = pytest.importorskip("torch")
from torch.utils.data import default_collate as t_collate  # noqa: E402
from torch.utils.data import default_convert as t_convert  # noqa: E402

Point = collections.namedtuple("Point", ["x", "y"])


def _to(lib, value):
    """Build the same sample with `lib`'s tensors (from a spec using numpy arrays tagged
    ("tensor", array))."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "tensor":
        return compgrad.from_numpy(value[1].copy()) if lib == "c" else torch.from_numpy(
            value[1].copy())
    if isinstance(value, Point):
        return Point(*(_to(lib, v) for v in value))
    if isinstance(value, tuple):
        return tuple(_to(lib, v) for v in value)
    if isinstance(value, list):
        return [_to(lib, v) for v in value]
    if isinstance(value, dict):
        return {k: _to(lib, v) for k, v in value.items()}
    return value


def _t(*shape, dtype=np.float32):
    return ("tensor", np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape))


BATCHES = {
    "tensors": [_t(2, 3), _t(2, 3)],
    "int_tensors": [_t(4, dtype=np.int64), _t(4, dtype=np.int64)],
    "scalar_tensors": [_t(), _t()],
    "numpy_arrays": [np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32)],
    "numpy_int_arrays": [np.arange(3, dtype=np.int32), np.arange(3, dtype=np.int32)],
    "numpy_scalars": [np.float64(1.5), np.float64(2.5)],
    "numpy_int_scalars": [np.int16(1), np.int16(2)],
    "numpy_bools": [np.bool_(True), np.bool_(False)],
    "floats": [1.0, 2.5, 3.0],
    "ints": [1, 2, 3],
    "bools": [True, False],
    "strings": ["a", "bc"],
    "bytes": [b"a", b"b"],
    "tuples": [(_t(2), 1, "x"), (_t(2), 2, "y")],
    "lists": [[1.0, 2], [3.0, 4]],
    "dicts": [{"img": _t(2, 2), "label": 3}, {"img": _t(2, 2), "label": 4}],
    "namedtuples": [Point(_t(2), 1.0), Point(_t(2), 2.0)],
    "nested": [{"a": (1, [2.0, "s"]), "b": Point(3, True)},
               {"a": (4, [5.0, "t"]), "b": Point(6, False)}],
}


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_default_collate_matches_torch(kind):
    ours = default_collate(_to("c", BATCHES[kind]))
    theirs = t_collate(_to("t", BATCHES[kind]))
    assert norm(ours) == norm(theirs)


def test_collate_types_of_results():
    assert isinstance(default_collate([_to("c", _t(2))] * 3), compgrad.Tensor)
    assert default_collate([1.0, 2.0]).dtype == compgrad.float64
    assert default_collate([1, 2]).dtype == compgrad.int64
    assert default_collate([True, False]).dtype == compgrad.bool_
    out = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(out, Point)
    assert isinstance(default_collate([(1, 2), (3, 4)]), list)  # tuples transpose to lists


def test_collate_errors():
    for collate in (default_collate, t_collate):
        with pytest.raises(RuntimeError, match="each element in list of batch should be of "
                                               "equal size"):
            collate([[1, 2], [3]])
        with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
            collate([object(), object()])
        with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
            collate([np.array(["a"]), np.array(["b"])])


CONVERT = {
    "numpy": np.arange(3, dtype=np.int32),
    "numpy_scalar": np.float32(2.0),
    "tensor": _t(3),
    "tuple": (np.zeros(2), 1, "s"),
    "dict": {"a": np.ones(2), "b": [np.int64(3)]},
    "namedtuple": Point(np.ones(1), 2),
    "string_array": np.array(["a", "b"]),
    "plain": 3.5,
}


@pytest.mark.parametrize("kind", sorted(CONVERT))
def test_default_convert_matches_torch(kind):
    assert norm(default_convert(_to("c", CONVERT[kind]))) == norm(
        t_convert(_to("t", CONVERT[kind])))
