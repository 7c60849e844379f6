"""Gather/scatter along a dim: gather, scatter, scatter_add, scatter_reduce,
index_select, index_add, index_copy, index_fill, take, take_along_dim.

Index tensors are op inputs (never differentiated); index values are checked
in the reference kernels, before anything is computed, with PyTorch's messages.
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.dispatch import is_scalar
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    common_device,
    index_grid,
    is_array,
    register,
    reject_out,
    type_of,
    ufunc_at,
)
from ir.ops.indexing import (
    index_constant,
    index_put_basic,
    index_put_tensor,
    zeros_of,
)
from ir.samples import arr, noncontig
from ir.types import TensorType, broadcast_shapes, normalize_dim, shape_str

__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add",
           "index_copy", "index_fill", "take", "take_along_dim"]
METHODS = tuple(__all__)
INPLACE = ("scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_fill")
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

_I64 = (dtypes.int64,)
_I32_64 = (dtypes.int64, dtypes.int32)
_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _nd(shape):
    """Shape as PyTorch's scatter/gather kernels see it: 0-d counts as 1-d."""
    return tuple(shape) if shape else (1,)


def _check_range(i, n, dim, *, neg=False, prefix="", err=RuntimeError):
    bad = (i >= n) | (i < (-n if neg else 0))
    if bad.any():
        raise err(f"{prefix}index {int(i[bad].ravel()[0])} is out of bounds for dimension "
                  f"{dim} with size {n}")


def _pad_to(g, shape):
    """``g`` (a leading block) placed into zeros of ``shape``."""
    gs = type_of(g).shape
    if tuple(gs) == tuple(shape):
        return g
    return index_put_basic(zeros_of(shape, g), g, tuple(("s", 0, s, 1) for s in gs))


# --- gather ------------------------------------------------------------------------------

def _gather_rule(types, dim):
    device = common_device(types)
    t, i = types
    if i.dtype not in _I32_64:
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    ts, is_ = _nd(t.shape), _nd(i.shape)
    if len(ts) != len(is_):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for d in range(len(ts)):
        if d != dim and is_[d] > ts[d]:
            raise RuntimeError(f"Size does not match at dimension {d} expected index "
                               f"{shape_str(i.shape)} to be no larger than self "
                               f"{shape_str(t.shape)} apart from dimension {dim}")
    return TensorType(i.shape, t.dtype, device)


def _gather_impl(a, i, dim):
    a2, i2 = a.reshape(_nd(a.shape)), i.reshape(_nd(i.shape)).astype(np.int64)
    _check_range(i2, a2.shape[dim], dim)
    if i2.size == 0:
        return np.zeros_like(a, shape=i.shape)
    block = a2[tuple(slice(0, s) if d != dim else slice(None) for d, s in enumerate(i2.shape))]
    return np.take_along_axis(block, i2, axis=dim).reshape(i.shape)


def _gather_vjp(ctx, g):
    shape = ctx.input_types[0].shape
    return scatter_add(zeros_of(shape, g), ctx.attrs["dim"], ctx.inputs[1], g), None


def _gather_samples():
    yield Sample((arr(3, 4), 1, np.array([[0, 3], [1, 1], [2, 0]])), note="duplicates")
    yield Sample((arr(3, 4), 0, np.array([[2, 0, 1, 1]])))
    yield Sample((noncontig(3, 4), -1, np.array([[0], [3]], dtype=np.int32)))
    yield Sample((arr(2, 3, 4), 1, np.zeros((2, 2, 3), dtype=np.int64)), note="smaller index")
    yield Sample((arr(), 0, np.array(0)))
    yield Sample((arr(3, 4), 1, np.zeros((3, 0), dtype=np.int64)))
    yield Sample((arr(3, 4, dtype=np.int64), 0, np.array([[1, 2]])), grad=False)
    yield Sample((arr(3, 4), 1, np.array([[0, 1]])), {"sparse_grad": False})
    yield ErrorSample((arr(3, 4), 0, np.array([[7]])), {}, RuntimeError,
                      "index 7 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), 0, np.array([[-1]])), {}, RuntimeError, "out of bounds")
    yield ErrorSample((arr(3, 4), 0, np.array([0])), {}, RuntimeError, "same number of dim")
    yield ErrorSample((arr(3, 4), 0, np.array([[0.0]])), {}, RuntimeError, "int32/int64")
    yield ErrorSample((arr(3, 4), 0, np.zeros((1, 5), dtype=np.int64)), {}, RuntimeError,
                      "Size does not match at dimension 1")
    yield ErrorSample((arr(3, 4), 2, np.array([[0]])), {}, IndexError, "Dimension out of range")


GATHER = register(OpDef("gather", OpKind.INDEXING, _gather_rule, _gather_impl, _gather_vjp,
                        _gather_samples))


def gather(input, dim, index, *, sparse_grad=False, out=None):
    """Values of ``input`` along ``dim`` at ``index`` (``out[i][j] = input[index[i][j]][j]``
    for ``dim=0``)."""
    reject_out(out)
    return apply(GATHER, input, index, dim=normalize_dim(dim, type_of(input).ndim))


# --- scatter / scatter_add / scatter_reduce -----------------------------------------------

def _scatter_check(t, i, s, dim, name, index_dtypes=_I32_64):
    if i.dtype not in index_dtypes:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if s is not None and not s.weak and s.dtype is not t.dtype:
        raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
    ts, is_ = _nd(t.shape), _nd(i.shape)
    if len(ts) != len(is_):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    ss = None if s is None or s.weak else _nd(s.shape)
    if ss is not None and len(ss) != len(is_) and i.numel:
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    for d in range(len(ts)):
        if (d != dim and is_[d] > ts[d]) or (ss is not None and is_[d] > ss[d]):
            tail = "" if ss is None else f" and to be no larger size than src {shape_str(s.shape)}"
            raise RuntimeError(f"Expected index {shape_str(i.shape)} to be no larger than self "
                               f"{shape_str(t.shape)} apart from dimension {dim}{tail}")


def _scatter_rule(types, dim, reduce):
    device = common_device(types)
    t, i, s = types
    _scatter_check(t, i, s, dim, "scatter")
    return TensorType(t.shape, t.dtype, device)


def _scatter_where(out, i, dim):
    """(out viewed as >=1-d, NumPy index tuple for the scatter, index shape)."""
    o2 = out.reshape(_nd(out.shape))
    i2 = i.reshape(_nd(i.shape)).astype(np.int64)
    _check_range(i2, o2.shape[dim], dim)
    grid = index_grid(i2.shape, i2)
    grid[dim] = i2
    return o2, tuple(grid), i2.shape


def _src_block(s, shape, out):
    """The leading ``shape`` block of the source ``s`` (an array or a number), in
    ``out``'s dtype and on its device."""
    if is_array(s):
        s2 = s.reshape(_nd(s.shape))
        return s2[tuple(slice(0, n) for n in shape)].astype(out.dtype, copy=False)
    return np.full_like(out, s, shape=shape)


def _scatter_impl(a, i, s, dim, reduce):
    out = a.copy(order="K")
    o2, where, shape = _scatter_where(out, i, dim)
    block = _src_block(s, shape, out)
    if reduce is None:
        o2[where] = block
    elif reduce in ("add", "sum"):
        ufunc_at(np.add, o2, where, block)
    else:
        ufunc_at(np.multiply, o2, where, block)
    return out


def _scatter_vjp(ctx, g):
    i, st = ctx.inputs[1], ctx.input_types[2]
    dim, reduce = ctx.attrs["dim"], ctx.attrs["reduce"]
    if reduce is not None:
        raise RuntimeError("the derivative for 'scatter' with reduce is not implemented (nor "
                           "in PyTorch); use scatter_add or scatter_reduce")
    gs = _pad_to(gather(g, dim, i), st.shape) if ctx.needs_input_grad[2] else None
    return scatter(g, dim, i, 0), None, gs


def _scatter_samples():
    i = np.array([[0, 1, 2, 0], [2, 0, 1, 1]])  # no duplicate targets within a column
    yield Sample((arr(3, 4), 0, i, arr(2, 4, seed=1)))
    yield Sample((arr(3, 4), 1, np.array([[3], [0], [1]]), arr(3, 5, seed=1)),
                 grad=False, note="src larger than index")
    yield Sample((arr(3, 4), 1, np.array([[3], [0], [1]]), arr(3, 5, seed=1)), torch=False,
                 note="PyTorch's own backward fails when src is larger than index")
    yield Sample((noncontig(3, 4), -1, np.array([[2, 0]], dtype=np.int32), 1.5),
                 note="scalar src")
    yield Sample((arr(3, 4), 0, i), {"value": -2.0})
    yield Sample((arr(), 0, np.array(0), arr(seed=1)))
    yield Sample((arr(3, 4), 0, np.array([[0, 0], [0, 0]]), arr(2, 2, seed=1)),
                 {"reduce": "add"}, grad=False)
    yield Sample((arr(3, 4), 0, i, 2.0), {"reduce": "multiply"}, grad=False)
    yield Sample((arr(3, 4, dtype=np.int64), 0, i, 7), grad=False)
    yield ErrorSample((arr(3, 4), 0, np.array([[7]]), 1.0), {}, RuntimeError,
                      "index 7 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), 0, np.array([[0]]), arr(1, 1, dtype=np.int64)), {},
                      RuntimeError, "Expected self.dtype to be equal to src.dtype")
    yield ErrorSample((arr(3, 4), 0, np.array([[0, 1]]), arr(1, 1)), {}, RuntimeError,
                      "to be no larger size than src")
    yield ErrorSample((arr(3, 4), 0, np.array([[0]]), arr(1, 1)), {"reduce": "mean"},
                      RuntimeError, "reduce argument must be either add or multiply")


SCATTER = register(OpDef("scatter", OpKind.INDEXING, _scatter_rule, _scatter_impl, _scatter_vjp,
                         _scatter_samples))


def scatter(input, dim, index, src=None, value=None, *, reduce=None, out=None):
    """``input`` with values from ``src`` (a tensor or a scalar ``value``) written along ``dim``
    at ``index``; ``reduce`` 'add' or 'multiply' combines instead of overwriting."""
    reject_out(out)
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing required argument 'src' or 'value'")
    if reduce is not None and reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    d = normalize_dim(dim, type_of(input).ndim)
    return apply(SCATTER, input, index, src, dim=d, reduce=reduce)


def _scatter_add_rule(types, dim):
    device = common_device(types)
    t, i, s = types
    _scatter_check(t, i, s, dim, "scatter_add")
    return TensorType(t.shape, t.dtype, device)


def _scatter_add_impl(a, i, s, dim):
    return _scatter_impl(a, i, s, dim, "add")


def _scatter_add_vjp(ctx, g):
    i, st = ctx.inputs[1], ctx.input_types[2]
    return g, None, _pad_to(gather(g, ctx.attrs["dim"], i), st.shape)


def _scatter_add_samples():
    yield Sample((arr(3, 4), 0, np.array([[0, 1, 2, 0], [0, 0, 1, 2]]), arr(2, 4, seed=1)),
                 note="duplicates accumulate")
    yield Sample((arr(3, 4), 1, np.array([[3], [0], [3]]), arr(3, 2, seed=1)), grad=False)
    yield Sample((noncontig(4, 3), -1, np.array([[2, 2]]), noncontig(2, 3, seed=1)), torch=False,
                 note="src larger than index: PyTorch's own backward fails")
    yield Sample((noncontig(4, 3), -1, np.array([[2, 2]]), noncontig(1, 2, seed=1)))
    yield Sample((arr(), 0, np.array(0), arr(seed=1)))
    yield Sample((arr(3, 4, dtype=np.int64), 0, np.array([[1, 1]]),
                  arr(1, 2, dtype=np.int64, seed=1)), grad=False)
    yield ErrorSample((arr(3, 4), 1, np.array([[4]]), arr(1, 1)), {}, RuntimeError,
                      "index 4 is out of bounds for dimension 1 with size 4")


SCATTER_ADD = register(OpDef("scatter_add", OpKind.INDEXING, _scatter_add_rule,
                             _scatter_add_impl, _scatter_add_vjp, _scatter_add_samples))


def scatter_add(input, dim, index, src):
    """``input`` with ``src`` added along ``dim`` at ``index`` (duplicates accumulate)."""
    return apply(SCATTER_ADD, input, index, src, dim=normalize_dim(dim, type_of(input).ndim))


def _scatter_reduce_rule(types, dim, reduce, include_self):
    device = common_device(types)
    t, i, s = types
    _scatter_check(t, i, s, dim, "scatter_reduce")
    return TensorType(t.shape, t.dtype, device)


def _identity(reduce, dtype):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if reduce == "amax" else np.inf
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is None:
        return reduce == "amin"
    return info.min if reduce == "amax" else info.max


def _scatter_reduce_impl(a, i, s, dim, reduce, include_self):
    out = a.copy(order="K")
    o2, where, shape = _scatter_where(out, i, dim)
    block = _src_block(s, shape, out)
    if not include_self:
        o2[where] = _identity(reduce, out.dtype)
    fn = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
          "amin": np.minimum}[reduce]
    ufunc_at(fn, o2, where, block)
    if reduce == "mean":
        # int32 counts: CUDA's atomic add has no int64 (a count of one target fits)
        count = np.zeros_like(o2, dtype=np.int32)
        ufunc_at(np.add, count, where, 1)
        hit = count > 0
        n = count + (1 if include_self else 0)
        if out.dtype.kind == "f":
            o2[hit] = o2[hit] / n[hit]
        else:
            o2[hit] = np.floor_divide(o2[hit], n[hit])
    return out


def _scatter_reduce_vjp(ctx, g):
    from ir.ops.elementwise import div
    i = ctx.inputs[1]
    dim, reduce, incl = ctx.attrs["dim"], ctx.attrs["reduce"], ctx.attrs["include_self"]
    sshape = ctx.input_types[2].shape
    if reduce == "sum":
        gx = g if incl else scatter(g, dim, i, 0)
        return gx, None, _pad_to(gather(g, dim, i), sshape)
    if reduce == "mean":
        gt = type_of(g)
        ones_x = index_constant((1,), ctx.input_types[0].shape, gt.dtype, gt.device)
        ones_s = index_constant((1,), sshape, gt.dtype, gt.device)
        count = scatter_reduce(ones_x, dim, i, ones_s, "sum", include_self=incl)
        gn = div(g, count)
        gx = gn if incl else scatter(g, dim, i, 0)
        return gx, None, _pad_to(gather(gn, dim, i), sshape)
    raise RuntimeError(f"the derivative of scatter_reduce with reduce='{reduce}' is not "
                       "implemented in compgrad (only 'sum' and 'mean')")


def _scatter_reduce_samples():
    i = np.array([[0, 1, 2, 0], [0, 0, 1, 2]])
    for reduce in ("sum", "mean"):
        for incl in (True, False):
            yield Sample((arr(3, 4), 0, i, arr(2, 4, seed=1), reduce), {"include_self": incl})
    yield Sample((noncontig(4, 3), 1, np.array([[2, 2], [0, 1]]), arr(2, 3, seed=1), "mean"),
                 torch=False, note="src larger than index: PyTorch's own backward fails")
    yield Sample((noncontig(4, 3), 1, np.array([[2, 2], [0, 1]]), arr(2, 2, seed=1), "mean"))
    for reduce in ("prod", "amax", "amin", "max"):
        for incl in (True, False):
            yield Sample((arr(3, 4), 0, i, arr(2, 4, seed=1), reduce), {"include_self": incl},
                         grad=False)
    yield Sample((arr(3, 4, dtype=np.int64), 0, i, arr(2, 4, dtype=np.int64, seed=1), "amax"),
                 grad=False)
    yield Sample((arr(3, 4, dtype=np.int64, low=-9, high=9), 0, i,
                  arr(2, 4, dtype=np.int64, seed=1, low=-9, high=9), "sum"),
                 {"include_self": False}, grad=False)
    yield ErrorSample((arr(3, 4), 0, np.array([[0]]), arr(1, 1), "add"), {}, RuntimeError,
                      "reduce argument must be either sum, prod, mean, amax or amin, got add")
    yield ErrorSample((arr(3, 4), 0, np.array([[3]]), arr(1, 1), "sum"), {}, RuntimeError,
                      "out of bounds", torch=False)  # PyTorch's CPU kernel does not check


SCATTER_REDUCE = register(OpDef("scatter_reduce", OpKind.INDEXING, _scatter_reduce_rule,
                                _scatter_reduce_impl, _scatter_reduce_vjp,
                                _scatter_reduce_samples))


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True, out=None):
    """``input`` with ``src`` reduced into it along ``dim`` at ``index``: ``reduce`` is 'sum',
    'prod', 'mean', 'amax' or 'amin'; ``include_self`` counts ``input``'s own values."""
    reject_out(out)
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)  # PyTorch's legacy spellings
    if reduce not in _REDUCTIONS:
        raise RuntimeError("reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    if is_scalar(src):
        raise TypeError(f"scatter_reduce(): argument 'src' (position 4) must be Tensor, not "
                        f"{type(src).__name__}")
    return apply(SCATTER_REDUCE, input, index, src, dim=normalize_dim(dim, type_of(input).ndim),
                 reduce=reduce, include_self=bool(include_self))


# --- index_select / index_add / index_copy / index_fill -----------------------------------

def _replace(shape, dim, n):
    if not shape:
        return ()
    return tuple(shape[:dim]) + (n,) + tuple(shape[dim + 1:])


def _index_select_rule(types, dim):
    device = common_device(types)
    t, i = types
    if i.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if i.dtype not in _I32_64:
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    return TensorType(_replace(t.shape, dim, i.numel), t.dtype, device)


def _index_select_impl(a, i, dim):
    a2 = a.reshape(_nd(a.shape))
    i = i.reshape(-1).astype(np.int64, copy=False)
    if ((i < 0) | (i >= a2.shape[dim])).any():
        raise IndexError("index out of range in self")
    return np.take(a2, i, axis=dim).reshape(_replace(a.shape, dim, i.size))


def _index_select_vjp(ctx, g):
    shape = ctx.input_types[0].shape
    return index_add(zeros_of(shape, g), ctx.attrs["dim"], ctx.inputs[1], g), None


def _index_select_samples():
    yield Sample((arr(4, 3), 0, np.array([3, 0, 3])), note="duplicates")
    yield Sample((noncontig(4, 3), -1, np.array([2, 1], dtype=np.int32)))
    yield Sample((arr(4, 3), 1, np.array(2)), note="0-d index")
    yield Sample((arr(), 0, np.array([0])))
    yield Sample((arr(4, 3), 0, np.zeros(0, dtype=np.int64)))
    yield Sample((arr(4, 3, dtype=np.int64), 0, np.array([1])), grad=False)
    yield ErrorSample((arr(4, 3), 0, np.array([4])), {}, IndexError, "index out of range in self")
    yield ErrorSample((arr(4, 3), 0, np.array([-1])), {}, IndexError, "index out of range")
    yield ErrorSample((arr(4, 3), 0, np.array([[0]])), {}, IndexError, "supposed to be a vector")
    yield ErrorSample((arr(4, 3), 0, np.array([0.0])), {}, RuntimeError, "int32 or int64")


INDEX_SELECT = register(OpDef("index_select", OpKind.INDEXING, _index_select_rule,
                              _index_select_impl, _index_select_vjp, _index_select_samples))


def index_select(input, dim, index, *, out=None):
    """The slices of ``input`` along ``dim`` at the positions in the 1-D ``index``."""
    reject_out(out)
    return apply(INDEX_SELECT, input, index, dim=normalize_dim(dim, type_of(input).ndim))


def _check_source(t, i, s, dim, name):
    if i.ndim > 1:
        raise IndexError(f"{name}(): Index is supposed to be a vector")
    n = i.numel
    ss, ts = _nd(s.shape), _nd(t.shape)
    if len(ss) != len(ts) or any(a != b for d, (a, b) in enumerate(zip(ss, ts)) if d != dim):
        raise RuntimeError("source tensor shape must match self tensor shape, excluding the "
                           f"specified dimension. Got self.shape = {shape_str(t.shape)} "
                           f"source.shape = {shape_str(s.shape)}")
    if ss[dim] != n:
        raise IndexError(f"{name}(): Number of indices ({n}) should be equal to "
                         f"source.size(dim) ({ss[dim]})")


def _index_add_rule(types, dim):
    device = common_device(types)
    t, i, s = types
    if i.dtype not in _I32_64:
        raise RuntimeError("index_add_(): Expected dtype int32/int64 for index but got: "
                           f"{i.dtype.torch_name}")
    if s.dtype is not t.dtype:
        raise RuntimeError(f"index_add_(): self ({t.dtype.torch_name}) and source "
                           f"({s.dtype.torch_name}) must have the same scalar type")
    _check_source(t, i, s, dim, "index_add_")
    return TensorType(t.shape, t.dtype, device)


def _dim_where(a2, i, dim):
    where = [slice(None)] * a2.ndim
    where[dim] = i
    return tuple(where)


def _index_add_impl(a, i, s, dim):
    out = a.copy(order="K")
    o2 = out.reshape(_nd(out.shape))
    i = i.reshape(-1).astype(np.int64)
    _check_range(i, o2.shape[dim], dim)
    ufunc_at(np.add, o2, _dim_where(o2, i, dim), s.reshape(_replace(_nd(out.shape), dim, i.size)))
    return out


def _index_add_vjp(ctx, g):
    i = ctx.inputs[1]
    return g, None, index_select(g, ctx.attrs["dim"], i)


def _index_add_samples():
    yield Sample((arr(4, 3), 0, np.array([3, 0, 3]), arr(3, 3, seed=1)), note="duplicates")
    yield Sample((noncontig(4, 3), 1, np.array([2], dtype=np.int32), arr(4, 1, seed=1)),
                 {"alpha": 2.5})
    yield Sample((arr(), 0, np.array([0]), arr(seed=1)))
    yield Sample((arr(4, 3, dtype=np.int64), 0, np.array([1]), arr(1, 3, dtype=np.int64)),
                 {"alpha": 3}, grad=False)
    yield ErrorSample((arr(3, 4), 0, np.array([7]), arr(1, 4)), {}, RuntimeError,
                      "index 7 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), 0, np.array([0]), arr(1, 1)), {}, RuntimeError,
                      "source tensor shape must match self tensor shape")
    yield ErrorSample((arr(3, 4), 0, np.array([0]), arr(1, 4, dtype=np.int64)), {},
                      RuntimeError, "must have the same scalar type")


INDEX_ADD = register(OpDef("index_add", OpKind.INDEXING, _index_add_rule, _index_add_impl,
                           _index_add_vjp, _index_add_samples))


def index_add(input, dim, index, source, *, alpha=1, out=None):
    """``input`` with ``alpha * source`` added at the positions ``index`` along ``dim``."""
    reject_out(out)
    if alpha != 1:
        from ir.ops.elementwise import mul
        source = mul(source, alpha)
    return apply(INDEX_ADD, input, index, source, dim=normalize_dim(dim, type_of(input).ndim))


def _index_copy_rule(types, dim):
    device = common_device(types)
    t, i, s = types
    if i.dtype is not dtypes.int64:
        raise RuntimeError("index_copy_(): Expected a long tensor for index, but got "
                           f"{i.dtype.torch_name}")
    if s.dtype is not t.dtype:
        raise RuntimeError("index_copy_(): self and source expected to have the same dtype, but "
                           f"got (self) {t.dtype.torch_name} and (source) {s.dtype.torch_name}")
    if i.ndim > 1:
        raise IndexError("index_copy_(): Index should have dimension 1 or 0")
    ss, ts = _nd(s.shape), _nd(t.shape)
    if len(ss) == len(ts):
        for d, (a, b) in enumerate(zip(ts, ss)):
            if d != dim and a != b:
                raise RuntimeError(
                    "index_copy_(): Source/destination tensor must have same slice shapes. "
                    f"Destination slice shape: {a} at dimension {d} and source slice shape: "
                    f"{b} at dimension {d}.")
    else:
        raise RuntimeError("index_copy_(): When source and destination are not scalars, their "
                           "dimensionality must match.")
    if ss[dim] != i.numel:
        raise IndexError(f"index_copy_(): Number of indices ({i.numel}) should be equal to "
                         f"source.size(dim) ({ss[dim]})")
    return TensorType(t.shape, t.dtype, device)


def _index_copy_impl(a, i, s, dim):
    out = a.copy(order="K")
    o2 = out.reshape(_nd(out.shape))
    i = i.reshape(-1)
    _check_range(i, o2.shape[dim], dim, prefix="index_copy_(): ", err=IndexError)
    o2[_dim_where(o2, i, dim)] = s.reshape(_replace(_nd(out.shape), dim, i.size))
    return out


def _index_copy_vjp(ctx, g):
    i = ctx.inputs[1]
    dim = ctx.attrs["dim"]
    return index_fill(g, dim, i, 0), None, index_select(g, dim, i)


def _index_copy_samples():
    yield Sample((arr(4, 3), 0, np.array([3, 0]), arr(2, 3, seed=1)))
    yield Sample((noncontig(4, 3), -1, np.array([2]), arr(4, 1, seed=1)))
    yield Sample((arr(), 0, np.array(0), arr(seed=1)))
    yield Sample((arr(4, 3, dtype=np.int64), 0, np.array([1]), arr(1, 3, dtype=np.int64)),
                 grad=False)
    yield ErrorSample((arr(3, 4), 0, np.array([7]), arr(1, 4)), {}, IndexError,
                      "index_copy_(): index 7 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), 0, np.array([0]), arr(1, 3)), {}, RuntimeError,
                      "must have same slice shapes")
    yield ErrorSample((arr(3, 4), 0, np.array([0, 1]), arr(1, 4)), {}, IndexError,
                      "Number of indices (2) should be equal to source.size(dim) (1)")
    yield ErrorSample((arr(3, 4), 0, np.array([0], dtype=np.int32), arr(1, 4)), {},
                      RuntimeError, "Expected a long tensor for index")


INDEX_COPY = register(OpDef("index_copy", OpKind.INDEXING, _index_copy_rule, _index_copy_impl,
                            _index_copy_vjp, _index_copy_samples))


def index_copy(input, dim, index, source):
    """``input`` with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
    return apply(INDEX_COPY, input, index, source, dim=normalize_dim(dim, type_of(input).ndim))


def _index_fill_rule(types, dim):
    device = common_device(types)
    t, i, v = types
    if i.dtype is not dtypes.int64:
        raise IndexError("index_fill_(): Expected dtype int64 for index.")
    if i.ndim > 1:
        raise RuntimeError("Index has to be a vector/scalar")
    if v.ndim != 0:
        raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {v.ndim} dimension(s).")
    return TensorType(t.shape, t.dtype, device)


def _index_fill_impl(a, i, v, dim):
    out = a.copy(order="K")
    o2 = out.reshape(_nd(out.shape))
    i = i.reshape(-1)
    _check_range(i, o2.shape[dim], dim, neg=True, err=IndexError)
    # a number is cast as C casts (np.asarray(...).astype wraps; a NumPy scalar would not)
    value = v.astype(out.dtype) if is_array(v) else np.asarray(v).astype(out.dtype)[()]
    o2[_dim_where(o2, i, dim)] = value
    return out


def _index_fill_vjp(ctx, g):
    from ir.ops.elementwise import sub
    from ir.ops.reduce import sum as sum_
    filled = index_fill(g, ctx.attrs["dim"], ctx.inputs[1], 0)
    gv = sum_(sub(g, filled)) if ctx.needs_input_grad[2] else None
    return filled, None, gv


def _index_fill_samples():
    yield Sample((arr(4, 3), 0, np.array([3, 0, 3]), 1.5), note="duplicates")
    yield Sample((noncontig(4, 3), -1, np.array([-1]), arr(seed=1)), grad=False,
                 note="negative index (PyTorch's backward fails on it)")
    yield Sample((noncontig(4, 3), -1, np.array([2]), arr(seed=1)), note="0-d tensor value")
    yield Sample((arr(4, 3), 1, np.array(1), arr(dtype=np.float64, seed=1)))
    yield Sample((arr(), 0, np.array([0]), -1.0))
    yield Sample((arr(4, 3, dtype=np.int64), 0, np.array([1]), 2.7), grad=False)
    yield ErrorSample((arr(3, 4), 0, np.array([7]), 1.0), {}, IndexError,
                      "index 7 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), 0, np.array([0]), arr(1)), {}, RuntimeError,
                      "0-dimensional value tensor")
    yield ErrorSample((arr(3, 4), 0, np.array([[0]]), 1.0), {}, RuntimeError,
                      "Index has to be a vector/scalar")
    yield ErrorSample((arr(3, 4), 0, np.array([0.0]), 1.0), {}, IndexError,
                      "Expected dtype int64 for index")


INDEX_FILL = register(OpDef("index_fill", OpKind.INDEXING, _index_fill_rule, _index_fill_impl,
                            _index_fill_vjp, _index_fill_samples))


def index_fill(input, dim, index, value):
    """``input`` with the slices at ``index`` along ``dim`` set to ``value`` (a scalar or a
    0-d tensor)."""
    return apply(INDEX_FILL, input, index, value, dim=normalize_dim(dim, type_of(input).ndim))


# --- take / take_along_dim ----------------------------------------------------------------

def _take_rule(types):
    device = common_device(types)
    t, i = types
    if i.dtype is not dtypes.int64:
        raise RuntimeError(f"take(): Expected a long tensor for index, but got "
                           f"{i.dtype.torch_name}")
    return TensorType(i.shape, t.dtype, device)


def _take_impl(a, i):
    n = a.size
    bad = (i >= n) | (i < -n)
    if bad.any():
        raise IndexError(f"out of range: tried to access index {int(i[bad].ravel()[0])} on a "
                         f"tensor of {n} elements.")
    return np.take(a.reshape(-1), i)


def _take_vjp(ctx, g):
    from ir.ops.movement import reshape
    xt = ctx.input_types[0]
    flat = index_put_tensor(zeros_of((xt.numel,), g), g, (ctx.inputs[1],), (0,),
                            accumulate=True)
    return reshape(flat, xt.shape), None


def _take_samples():
    yield Sample((arr(3, 4), np.array([[0, 11], [-1, 0]])), note="negative, duplicates")
    yield Sample((noncontig(3, 4), np.array([5])))
    yield Sample((arr(), np.array(0)))
    yield Sample((arr(3, 4), np.zeros((0, 2), dtype=np.int64)))
    yield Sample((arr(3, 4, dtype=np.int64), np.array([1, 2])), grad=False)
    yield ErrorSample((arr(3, 4), np.array([12])), {}, IndexError,
                      "out of range: tried to access index 12 on a tensor of 12 elements.")
    yield ErrorSample((arr(3, 4), np.array([1], dtype=np.int32)), {}, RuntimeError,
                      "Expected a long tensor for index")


TAKE = register(OpDef("take", OpKind.INDEXING, _take_rule, _take_impl, _take_vjp,
                      _take_samples))


def take(input, index):
    """The elements of ``input`` (read as 1-D) at ``index``; the result has ``index``'s shape."""
    return apply(TAKE, input, index)


def take_along_dim(input, indices, dim=None, *, out=None):
    """``gather`` with broadcasting of ``input`` and ``indices`` (all dims but ``dim``); with
    ``dim=None`` both are flattened."""
    from ir.ops.movement import expand, reshape
    reject_out(out)
    t, i = type_of(input), type_of(indices)
    if i.dtype is not dtypes.int64:
        raise RuntimeError("torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{i.dtype.torch_name}")
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(indices, (-1,)))
    if t.ndim != i.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {t.ndim} dimensions for input, and "
                           f"{i.ndim} dimensions for indices")
    d = normalize_dim(dim, t.ndim)
    if t.ndim == 0:
        return gather(input, d, indices)
    common = broadcast_shapes(_replace(t.shape, d, 1), _replace(i.shape, d, 1))
    xs, is_ = _replace(common, d, t.shape[d]), _replace(common, d, i.shape[d])
    if xs != t.shape:
        input = expand(input, xs)
    if is_ != i.shape:
        indices = expand(indices, is_)
    return gather(input, d, indices)
