"""Sorting and order statistics: sort, argsort, topk, kthvalue, median, mode, unique.

Value-returning ops give PyTorch's named tuples (``.values``/``.indices``);
their VJPs send the gradient back to the returned indices with the internal
``_scatter_along_dim`` primitive (whose adjoint is ``_gather_along_dim``).
Sorting is stable, with NaN ordered above every number as in PyTorch, so
indices of ties are those of a stable sort (PyTorch's CPU ``kthvalue`` and
``median`` use a selection algorithm whose tie-breaking may differ).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    arange_like,
    asarray_like,
    common_device,
    index_grid,
    is_array,
    register,
    reject_out,
    type_of,
    ufunc_at,
)
from ir.samples import arr, bools, distinct, ints, noncontig
from ir.types import TensorType, normalize_dim, shape_str

__all__ = ["sort", "argsort", "topk", "kthvalue", "median", "mode", "unique"]
METHODS = ("sort", "argsort", "topk", "kthvalue", "median", "mode", "unique")
INTERNAL = ("_gather_along_dim", "_scatter_along_dim", "_unique_count")

sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])
mode_result = namedtuple("mode", ["values", "indices"])


def _wrapped_dim(input, dim, out) -> int:
    """The first steps of the public value-and-index ops (sort, topk, kthvalue, mode):
    ``out=`` refused, then ``dim`` wrapped to ``input``'s rank (IndexError when out of
    range)."""
    reject_out(out)
    return normalize_dim(dim, type_of(input).ndim)


# --- gather / scatter along a dim (internal: the VJPs of the value-selecting ops) --------

def _gather_rule(types, dim):
    x, index = types
    if index.dtype is not dtypes.int64:
        raise RuntimeError("gather(): Expected dtype int64 for index")
    if x.ndim != index.ndim and not (x.ndim == 0 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    return TensorType(index.shape, x.dtype, common_device(types))


def _gather_impl(x, index, dim):
    if x.ndim == 0:
        return np.broadcast_to(x, index.shape).copy()
    return np.take_along_axis(x, index, axis=dim)


def _gather_vjp(ctx, h):
    index = ctx.inputs[1]
    shape = ctx.input_types[0].shape
    return _scatter_along_dim(h, index, ctx.attrs["dim"], shape[ctx.attrs["dim"]] if shape
                              else 1), None


def _gather_samples():
    idx = np.array([[2, 0, 1, 0], [1, 1, 2, 0]], dtype=np.int64)
    yield Sample((arr(2, 3), idx, 1), torch=False, note="internal op")
    yield Sample((noncontig(3, 4), idx[:, :4] % 3, 0), torch=False, note="internal op")
    yield Sample((arr(), np.array(0), 0), torch=False, note="internal op")


GATHER = register(OpDef("_gather_along_dim", OpKind.INDEXING, _gather_rule, _gather_impl,
                        _gather_vjp, _gather_samples, public="_ops._gather_along_dim"))


def _gather_along_dim(input, index, dim):
    """Internal: ``input`` taken at ``index`` along ``dim`` (``torch.take_along_dim``)."""
    return apply(GATHER, input, index, dim=int(dim))


def _scatter_rule(types, dim, size):
    g, index = types
    if index.dtype is not dtypes.int64:
        raise RuntimeError("scatter(): Expected dtype int64 for index")
    if g.shape != index.shape:
        raise RuntimeError(f"scatter(): index of shape {shape_str(index.shape)} does not match "
                           f"the source of shape {shape_str(g.shape)}")
    if g.ndim == 0:
        return TensorType((), g.dtype, common_device(types))
    shape = g.shape[:dim] + (size,) + g.shape[dim + 1:]
    return TensorType(shape, g.dtype, common_device(types))


def _scatter_impl(g, index, dim, size):
    if g.ndim == 0:
        return g.copy()
    shape = g.shape[:dim] + (size,) + g.shape[dim + 1:]
    out = np.zeros_like(g, shape=shape)
    grid = index_grid(index.shape, index)
    grid[dim] = index
    ufunc_at(np.add, out, tuple(grid), g)
    return out


def _scatter_vjp(ctx, h):
    return _gather_along_dim(h, ctx.inputs[1], ctx.attrs["dim"]), None


def _scatter_samples():
    idx = np.array([[2, 0, 1, 0], [1, 1, 2, 0]], dtype=np.int64)
    yield Sample((arr(2, 4), idx, 1, 3), torch=False, note="internal op; repeats accumulate")
    yield Sample((arr(2, 4), idx, 1, 5), torch=False, note="internal op")
    yield Sample((arr(), np.array(0), 0, 1), torch=False, note="internal op")


SCATTER = register(OpDef("_scatter_along_dim", OpKind.INDEXING, _scatter_rule, _scatter_impl,
                         _scatter_vjp, _scatter_samples, public="_ops._scatter_along_dim"))


def _scatter_along_dim(src, index, dim, size):
    """Internal: zeros with ``dim`` of length ``size`` plus ``src`` added at ``index``."""
    return apply(SCATTER, src, index, dim=int(dim), size=int(size))


# --- sort / argsort ----------------------------------------------------------------------

def _sort_indices(a, dim, descending):
    """Stable sort order along ``dim``; NaN above every number."""
    if not descending:
        return np.argsort(a, axis=dim, kind="stable")
    n = a.shape[dim]
    flipped = np.flip(a, axis=dim)
    return np.flip(n - 1 - np.argsort(flipped, axis=dim, kind="stable"), axis=dim)


def _sort_rule(types, dim, descending):
    (t,) = types
    return TensorType(t.shape, t.dtype, t.device), TensorType(t.shape, dtypes.int64, t.device)


def _sort_impl(a, dim, descending):
    if a.ndim == 0:
        return a.copy(), np.zeros_like(a, dtype=np.int64)
    idx = _sort_indices(a, dim, descending)
    return np.take_along_axis(a, idx, axis=dim), idx


def _sort_vjp(ctx, g, _gi=None):
    if g is None:
        return (None,)
    shape = ctx.input_types[0].shape
    dim = ctx.attrs["dim"]
    return (_scatter_along_dim(g, ctx.outputs[1], dim, shape[dim] if shape else 1),)


def _sort_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4), 0))
    yield Sample((arr(3, 4),), {"dim": -2, "descending": True})
    yield Sample((noncontig(3, 4),), {"descending": True, "stable": True})
    yield Sample((arr(),))
    yield Sample((arr(0, 3),))
    yield Sample((ints(2, 6, low=0, high=2),), {"stable": True}, grad=False, note="ties")
    yield Sample((ints(2, 6, low=0, high=2),), {"descending": True, "stable": True}, grad=False)
    yield Sample((bools(7),), grad=False)
    yield Sample((np.array([1.0, np.nan, -2.0, np.nan], dtype=np.float32),), {"descending": True},
                 grad=False, note="NaN sorts above numbers")
    yield Sample((np.array([1.0, np.nan, -2.0], dtype=np.float32),), grad=False)
    yield ErrorSample((arr(3, 4), 2), {}, IndexError, "Dimension out of range")


SORT = register(OpDef("sort", OpKind.OPAQUE, _sort_rule, _sort_impl, _sort_vjp, _sort_samples,
                      num_outputs=2))


def sort(input, dim=-1, descending=False, *, stable=False, out=None):
    """Sorted values and their indices along ``dim`` (always stable here)."""
    dim = _wrapped_dim(input, dim, out)
    values, indices = apply(SORT, input, dim=dim, descending=bool(descending))
    return sort_result(values, indices)


def _argsort_rule(types, dim, descending):
    (t,) = types
    return TensorType(t.shape, dtypes.int64, t.device)


def _argsort_impl(a, dim, descending):
    if a.ndim == 0:
        return np.zeros_like(a, dtype=np.int64)
    return _sort_indices(a, dim, descending)


def _argsort_samples():
    yield Sample((arr(3, 4),), grad=False)
    yield Sample((arr(3, 4), 0, True), grad=False)
    yield Sample((ints(2, 6, low=0, high=2),), {"stable": True}, grad=False)
    yield Sample((ints(2, 6, low=0, high=2),), {"descending": True, "stable": True, "dim": 1},
                 grad=False)
    yield Sample((arr(),), grad=False)
    yield Sample((arr(0, 2),), {"dim": 0}, grad=False)


ARGSORT = register(OpDef("argsort", OpKind.OPAQUE, _argsort_rule, _argsort_impl, None,
                         _argsort_samples, differentiable=False))


def argsort(input, dim=-1, descending=False, *, stable=False):
    """The indices that sort ``input`` along ``dim``."""
    t = type_of(input)
    return apply(ARGSORT, input, dim=normalize_dim(dim, t.ndim), descending=bool(descending))


# --- topk --------------------------------------------------------------------------------

def _topk_rule(types, k, dim, largest):
    (t,) = types
    n = t.shape[dim] if t.ndim else 1
    if k < 0 or k > n:
        raise RuntimeError("selected index k out of range")
    if t.dtype is dtypes.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    shape = t.shape[:dim] + (k,) + t.shape[dim + 1:] if t.ndim else ()
    return TensorType(shape, t.dtype, t.device), TensorType(shape, dtypes.int64, t.device)


def _topk_impl(a, k, dim, largest):
    if a.ndim == 0:
        return a.copy(), np.zeros_like(a, dtype=np.int64)
    idx = np.take(_sort_indices(a, dim, largest), arange_like(k, a), axis=dim)
    return np.take_along_axis(a, idx, axis=dim), idx


def _topk_samples():
    yield Sample((distinct(3, 5), 2))
    yield Sample((distinct(3, 5), 2), {"dim": 0, "largest": False})
    yield Sample((noncontig(4, 3), 3, -2))
    yield Sample((distinct(6), 6))
    yield Sample((distinct(6), 0))
    yield Sample((arr(), 1))
    yield Sample((distinct(2, 5, dtype=np.int64), 3), grad=False)
    yield Sample((distinct(7), 3), {"sorted": False}, torch=False,
                 note="PyTorch leaves the order of unsorted results unspecified")
    yield Sample((np.array([1.0, np.nan, 2.0], dtype=np.float32), 2), grad=False,
                 note="NaN counts as the largest")
    yield ErrorSample((arr(2, 3), 4), {}, RuntimeError, "k out of range")
    yield ErrorSample((arr(2, 3), -1), {}, RuntimeError, "k out of range")
    yield ErrorSample((bools(3), 1), {}, RuntimeError, "bool")


TOPK = register(OpDef("topk", OpKind.OPAQUE, _topk_rule, _topk_impl, _sort_vjp, _topk_samples,
                      num_outputs=2))


def topk(input, k, dim=-1, largest=True, sorted=True, *, out=None):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices.

    Results always come sorted; ``sorted=False`` permits that in PyTorch too."""
    dim = _wrapped_dim(input, dim, out)
    values, indices = apply(TOPK, input, k=int(k), dim=dim, largest=bool(largest))
    return topk_result(values, indices)


# --- kthvalue / median / mode ------------------------------------------------------------

def _select_types(t, dim, keepdim):
    from ir.ops.reduce import reduced_shape
    shape = reduced_shape(t.shape, (dim,) if t.ndim else (), keepdim)
    return TensorType(shape, t.dtype, t.device), TensorType(shape, dtypes.int64, t.device)


def _pick(a, pos, dim, keepdim):
    """Values and indices at sorted position ``pos`` (an int or an array) along ``dim``."""
    if a.ndim == 0:
        return a.copy(), np.zeros_like(a, dtype=np.int64)
    order = _sort_indices(a, dim, False)
    shape = order.shape[:dim] + (1,) + order.shape[dim + 1:]
    if is_array(pos):
        pos = np.broadcast_to(np.expand_dims(pos, dim) if pos.ndim else pos, shape)
    else:   # an int: made next to the data (a broadcast host int would not be)
        pos = np.full_like(order, pos, shape=shape)
    idx = np.take_along_axis(order, pos, axis=dim)
    values = np.take_along_axis(a, idx, axis=dim)
    if not keepdim:
        values, idx = np.squeeze(values, dim), np.squeeze(idx, dim)
    return values, idx


def _kthvalue_rule(types, k, dim, keepdim):
    (t,) = types
    n = t.shape[dim] if t.ndim else 1
    if k < 1 or k > n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    return _select_types(t, dim, keepdim)


def _kthvalue_impl(a, k, dim, keepdim):
    return _pick(a, k - 1, dim, keepdim)


def _select_vjp(ctx, g, _gi=None):
    from ir.ops.reduce import select_vjp
    return select_vjp(ctx, g)


def _kthvalue_samples():
    yield Sample((distinct(3, 5), 2))
    yield Sample((distinct(3, 5), 3, 0, True))
    yield Sample((noncontig(4, 3), 1), {"dim": -2})
    yield Sample((arr(), 1))
    yield Sample((arr(0, 3), 2), {"dim": 1})
    yield Sample((distinct(2, 5, dtype=np.int64), 5), grad=False)
    yield Sample((np.array([2, 1, 2, 1, 2]), 4), grad=False, torch=False,
                 note="ties: stable-sort index; PyTorch's selection algorithm may pick another")
    yield Sample((np.array([1.0, np.nan, 2.0], dtype=np.float32), 3), grad=False)
    yield ErrorSample((arr(2, 3), 4), {}, RuntimeError, "k out of range")
    yield ErrorSample((arr(2, 3), 0, 1), {}, RuntimeError, "k out of range")


KTHVALUE = register(OpDef("kthvalue", OpKind.REDUCTION, _kthvalue_rule, _kthvalue_impl,
                          _select_vjp, _kthvalue_samples, num_outputs=2))


def kthvalue(input, k, dim=-1, keepdim=False, *, out=None):
    """The ``k``-th smallest element along ``dim`` (1-based) and its index."""
    dim = _wrapped_dim(input, dim, out)
    values, indices = apply(KTHVALUE, input, k=int(k), dim=dim, keepdim=bool(keepdim))
    return kthvalue_result(values, indices)


def _median_check(name, t):
    if t.dtype is dtypes.bool_:
        raise NotImplementedError(f'"{name}_cpu" not implemented for \'Bool\'')


def _median_rule(types, dim, keepdim):
    (t,) = types
    _median_check("median", t)
    if t.ndim and t.shape[dim] == 0:
        raise IndexError(f"median(): Expected reduction dim {dim} to have non-zero size.")
    return _select_types(t, dim, keepdim)


def _median_impl(a, dim, keepdim):
    if a.ndim == 0:
        return _pick(a, 0, dim, keepdim)
    n = a.shape[dim]
    if a.dtype.kind == "f":
        nans = np.sum(np.isnan(a), axis=dim)
        pos = np.where(nans > 0, n - nans, (n - 1) // 2)  # a NaN anywhere gives NaN
    else:
        pos = (n - 1) // 2
    return _pick(a, pos, dim, keepdim)


def _median_samples():
    yield Sample((distinct(3, 5), 1))
    yield Sample((distinct(3, 4), 1, True), note="even count: the lower median")
    yield Sample((noncontig(4, 3),), {"dim": 0})
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 1))
    yield Sample((distinct(2, 5, dtype=np.int64), -1), grad=False)
    yield Sample((np.array([[1.0, np.nan, 2.0], [3.0, 1.0, 2.0]], dtype=np.float32), 1),
                 grad=False, note="NaN propagates")
    yield ErrorSample((arr(2, 0), 1), {}, IndexError, "Expected reduction dim 1 to have")


MEDIAN = register(OpDef("median", OpKind.REDUCTION, _median_rule, _median_impl, _select_vjp,
                        _median_samples, num_outputs=2))


def _median_all_rule(types):
    (t,) = types
    _median_check("median", t)
    return TensorType((), t.dtype, t.device)


def _median_all_impl(a):
    flat = np.sort(a.reshape(-1), kind="stable")
    if flat.size == 0:
        return np.full_like(flat, np.nan, shape=(), dtype=np.float64)
    if flat.dtype.kind == "f" and np.isnan(flat[-1]):
        return np.full_like(flat, np.nan, shape=())
    return flat[(flat.size - 1) // 2]


def _median_all_vjp(ctx, g):
    from ir.ops.reduce import _even_vjp
    return _even_vjp(ctx, g)


def _median_all_samples():
    yield Sample((distinct(3, 5),))
    yield Sample((distinct(4),), note="even count: the lower median")
    yield Sample((noncontig(3, 4),))
    yield Sample((arr(),))
    yield Sample((arr(0),), grad=False, note="empty gives NaN")
    yield Sample((np.array([1.0, 2.0, 2.0, 5.0], dtype=np.float64),), note="ties share")
    yield Sample((ints(7),), grad=False)
    yield Sample((np.array([1.0, np.nan, 2.0], dtype=np.float32),), grad=False)
    yield ErrorSample((bools(3),), {}, NotImplementedError, "Bool")


MEDIAN_ALL = register(OpDef("median_all", OpKind.REDUCTION, _median_all_rule, _median_all_impl,
                            _median_all_vjp, _median_all_samples, public="median"))


def median(input, dim=None, keepdim=False, *, out=None):
    """``median(input)``: the lower median of all elements (0-d);
    ``median(input, dim, keepdim)``: (values, indices) along ``dim``."""
    reject_out(out)
    t = type_of(input)
    if dim is None:
        return apply(MEDIAN_ALL, input)
    dim = normalize_dim(dim, t.ndim)
    values, indices = apply(MEDIAN, input, dim=dim, keepdim=bool(keepdim))
    return median_result(values, indices)


def _mode_rule(types, dim, keepdim):
    (t,) = types
    if t.ndim and t.shape[dim] == 0:
        raise IndexError(f"mode(): Expected reduction dim {dim} to have non-zero size.")
    return _select_types(t, dim, keepdim)


def _mode_impl(a, dim, keepdim):
    if a.ndim == 0:
        return a.copy(), np.zeros_like(a, dtype=np.int64)
    moved = np.moveaxis(a, dim, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    values, idx = _row_modes(flat)
    shape = moved.shape[:-1]
    values, idx = values.reshape(shape), idx.reshape(shape)
    if keepdim:
        values, idx = np.expand_dims(values, dim), np.expand_dims(idx, dim)
    return values, idx


def _row_modes(flat):
    """Per row of ``flat`` (R, n > 0): the smallest of the most frequent values (NaNs
    count as one value, as ``np.unique`` has them) and the index of its last occurrence,
    as PyTorch's mode. Vectorised over rows (sort, runs of equal values, a bincount), so
    it runs as whole-array kernels on any device."""
    rows, n = flat.shape
    s = np.sort(flat, axis=1)
    new = np.ones_like(s, dtype=np.bool_)   # where a run of equal sorted values starts
    new[:, 1:] = _differ(s[:, 1:], s[:, :-1])
    run = np.cumsum(new, axis=1) - 1        # each element's run, numbered in its row
    key = (run + arange_like(rows, flat, np.int64)[:, None] * n).reshape(-1)
    counts = np.bincount(key, minlength=rows * n).reshape(rows, n)
    best = np.argmax(counts, axis=1)        # the first longest run: the smallest value
    first = np.argmax(run == best[:, None], axis=1)
    values = np.take_along_axis(s, first[:, None], axis=1)[:, 0]
    hit = ~_differ(flat, values[:, None])[:, ::-1]
    return values, n - 1 - np.argmax(hit, axis=1).astype(np.int64)


def _differ(a, b):
    """``a != b`` with NaN equal to NaN."""
    if a.dtype.kind != "f":
        return a != b
    return (a != b) & ~(np.isnan(a) & np.isnan(b))


def _mode_samples():
    yield Sample((distinct(3, 5),))
    yield Sample((distinct(3, 5), 0, True))
    yield Sample((noncontig(4, 3),), {"dim": -2})
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 1))
    yield Sample((np.array([[1, 2, 2, 3, 3], [3, 1, 3, 1, 2]]),), grad=False,
                 note="smallest most frequent value, last index")
    yield Sample((ints(3, 8, low=0, high=3),), {"dim": 1}, grad=False)
    yield Sample((np.array([True, False, False]),), grad=False)
    yield ErrorSample((arr(2, 0), 1), {}, IndexError, "Expected reduction dim 1 to have")


MODE = register(OpDef("mode", OpKind.REDUCTION, _mode_rule, _mode_impl, _select_vjp,
                      _mode_samples, num_outputs=2))


def mode(input, dim=-1, keepdim=False, *, out=None):
    """The most frequent value along ``dim`` (the smallest among equals) and its last index."""
    dim = _wrapped_dim(input, dim, out)
    values, indices = apply(MODE, input, dim=dim, keepdim=bool(keepdim))
    return mode_result(values, indices)


# --- unique ------------------------------------------------------------------------------

def _unique_rule(types, dim, num_unique):
    (t,) = types
    k = num_unique
    i64 = dtypes.int64
    if dim is None:
        return (TensorType((k,), t.dtype, t.device), TensorType(t.shape, i64, t.device),
                TensorType((k,), i64, t.device))
    shape = t.shape[:dim] + (k,) + t.shape[dim + 1:]
    return (TensorType(shape, t.dtype, t.device), TensorType((t.shape[dim],), i64, t.device),
            TensorType((k,), i64, t.device))


def _unique_np(a, dim):
    if dim is None:
        values, inverse, counts = np.unique(a.reshape(-1), return_inverse=True,
                                            return_counts=True)
        return values, inverse.reshape(a.shape), counts
    values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=dim)
    return values, inverse.reshape(-1), counts


def _unique_impl(a, dim, num_unique):
    values, inverse, counts = _unique_np(a, dim)
    if len(counts) != num_unique:
        raise RuntimeError(f"unique: the input now has {len(counts)} distinct values, the "
                           f"recorded program expected {num_unique}")
    return values, inverse, counts


def _unique_samples():
    yield Sample((np.array([3, 1, 3, 2]),), grad=False)
    yield Sample((np.array([3, 1, 3, 2]),), {"return_inverse": True, "return_counts": True},
                 grad=False)
    yield Sample((ints(3, 4, low=0, high=3),), {"return_inverse": True}, grad=False)
    yield Sample((np.array([2.5, -1.0, 2.5], dtype=np.float32),), {"sorted": False,
                                                                    "return_counts": True},
                 grad=False)
    yield Sample((np.array([[1, 2], [1, 2], [0, 1]]),), {"dim": 0, "return_counts": True},
                 grad=False)
    yield Sample((np.array([[1, 2], [1, 2], [0, 1]]),), {"dim": 1, "return_inverse": True},
                 grad=False)
    yield Sample((np.array(2.0, dtype=np.float32),), grad=False)
    yield Sample((bools(6),), grad=False)
    yield Sample((arr(0),), {"return_counts": True}, grad=False)


UNIQUE = register(OpDef("unique", OpKind.OPAQUE, _unique_rule, _unique_impl, None,
                        _unique_samples, differentiable=False, num_outputs=3))


def _unique_count_rule(types, dim):
    (t,) = types
    return TensorType((), dtypes.int64, t.device)


def _unique_count_impl(a, dim):
    return asarray_like(len(_unique_np(a, dim)[2]), a, np.int64)


def _unique_count_samples():
    note = "internal op (unique's output length)"
    yield Sample((np.array([3, 1, 3, 2]), None), grad=False, torch=False, note=note)
    yield Sample((np.array([[1, 2], [1, 2], [0, 1]]), 0), grad=False, torch=False, note=note)
    yield Sample((arr(0), None), grad=False, torch=False, note=note)


UNIQUE_COUNT = register(OpDef("_unique_count", OpKind.OPAQUE, _unique_count_rule,
                              _unique_count_impl, None, _unique_count_samples,
                              differentiable=False, public="_ops._unique_count"))


def _unique_count(input, dim=None):
    """Internal: the number of distinct elements (or slices along ``dim``) of ``input``, as
    a 0-d int64 tensor on its device (``unique`` reads it to size its outputs)."""
    return apply(UNIQUE_COUNT, input, dim=dim)


def unique(input, sorted=True, return_inverse=False, return_counts=False,  # noqa: A002
           dim=None):
    """The distinct elements (or slices along ``dim``), always sorted, as ``torch.unique``.

    The output's length depends on the values, so it is read here (like ``.item()``) and
    recorded as an attribute of the op."""
    t = type_of(input)
    if dim is not None:
        dim = normalize_dim(dim, t.ndim)
    if dim is not None and t.ndim == 0:
        dim = None
    # counted where the data is (a CUDA tensor refuses np.asarray); one int is read back
    num_unique = int(_unique_count(input, dim).item())
    values, inverse, counts = apply(UNIQUE, input, dim=dim, num_unique=num_unique)
    if return_inverse and return_counts:
        return values, inverse, counts
    if return_inverse:
        return values, inverse
    if return_counts:
        return values, counts
    return values
