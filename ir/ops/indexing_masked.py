"""Ops whose result size depends on values: nonzero, argwhere, masked_select; and the
other masked ops (masked_fill, masked_scatter).

``nonzero`` and ``masked_select`` read the number of selected elements once in the
public function (a value read, which forces a pending graph) and carry it as an
attribute, so their type rules stay pure.
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    common_device,
    is_array,
    register,
    reject_out,
    type_of,
)
from ir.ops.indexing import GETITEM, index_put_basic, read_count, zeros_of
from ir.samples import arr, bools, noncontig
from ir.types import TensorType, broadcast_shapes

__all__ = ["nonzero", "argwhere", "masked_fill", "masked_select", "masked_scatter"]
METHODS = tuple(__all__)
INPLACE = ("masked_fill", "masked_scatter")
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()


# --- nonzero / argwhere ------------------------------------------------------------------

def _nonzero_rule(types, count):
    (t,) = types
    return TensorType((count, t.ndim), dtypes.int64, t.device)


def _nonzero_impl(a, count):
    out = np.argwhere(a)
    if out.shape[0] != count:
        raise AssertionError(f"nonzero: counted {count} nonzero elements, found {out.shape[0]}")
    return out


def _nonzero_samples():
    yield Sample((arr(3, 4, dtype=np.int64, low=-1, high=1),), grad=False)
    yield Sample((bools(2, 3, 4),), grad=False)
    yield Sample((arr(5),), grad=False)
    yield Sample((arr(),), grad=False)
    yield Sample((np.zeros(()),), grad=False)
    yield Sample((arr(0, 3),), grad=False)
    yield Sample((bools(3, 4, seed=1),), {"as_tuple": True}, grad=False)
    yield Sample((arr(),), {"as_tuple": True}, grad=False)


NONZERO = register(OpDef("nonzero", OpKind.INDEXING, _nonzero_rule, _nonzero_impl, None,
                         _nonzero_samples, differentiable=False))


def nonzero(input, *, out=None, as_tuple=False):
    """Indices of the nonzero elements: an ``[n, ndim]`` int64 tensor, or with
    ``as_tuple=True`` one 1-D tensor per dim."""
    reject_out(out)
    t = type_of(input)
    if as_tuple and t.ndim == 0:
        from ir.ops.movement import reshape
        input = reshape(input, (1,))
        t = type_of(input)
    res = apply(NONZERO, input, count=read_count(input))
    if not as_tuple:
        return res
    return tuple(apply(GETITEM, res, spec=(("s", 0, type_of(res).shape[0], 1), k))
                 for k in range(t.ndim))


def argwhere(input):
    """``nonzero(input)``: the indices of the nonzero elements as an ``[n, ndim]`` tensor."""
    return nonzero(input)


# --- masked ops ---------------------------------------------------------------------------

def _check_mask(m, what):
    if m.dtype is not dtypes.bool_:
        raise RuntimeError(f"{what} only supports boolean masks, but got mask with dtype "
                           f"{_dtype_word(m.dtype)}")


def _dtype_word(d):
    return {dtypes.int64: "long int", dtypes.uint8: "unsigned char"}.get(d, d.torch_name)


def _masked_fill_rule(types):
    device = common_device(types)
    t, m, v = types
    _check_mask(m, "masked_fill_")
    if v.ndim != 0:
        raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {v.ndim} dimension(s).")
    return TensorType(broadcast_shapes(t.shape, m.shape), t.dtype, device)


def _masked_fill_impl(a, m, v):
    # a number is cast as C casts (np.asarray(...).astype wraps; a NumPy scalar would not)
    v = v.astype(a.dtype) if is_array(v) else np.asarray(v).astype(a.dtype)[()]
    return np.where(m, v, a)


def _masked_fill_vjp(ctx, g):
    from ir.ops.elementwise import mul, to_dtype
    from ir.ops.reduce import sum as sum_
    m = ctx.inputs[1]
    gv = sum_(mul(g, to_dtype(m, type_of(g).dtype))) if ctx.needs_input_grad[2] else None
    return masked_fill(g, m, 0), None, gv


def _masked_fill_samples():
    yield Sample((arr(3, 4), bools(3, 4), 1.5))
    yield Sample((arr(3, 4), bools(4), arr(seed=1)), note="mask broadcast, 0-d tensor value")
    yield Sample((arr(4), bools(2, 1, seed=2), -1.0), note="mask broadcasts input")
    yield Sample((noncontig(3, 4), bools(3, 4, seed=3), arr(dtype=np.float64, seed=1)))
    yield Sample((arr(0, 4), bools(4), 2.0))
    yield Sample((arr(3, dtype=np.int64), bools(3), 2.7), grad=False)
    yield ErrorSample((arr(3), arr(3, dtype=np.int64), 1.0), {}, RuntimeError, "boolean masks")
    yield ErrorSample((arr(3), bools(3), arr(1)), {}, RuntimeError, "0-dimensional value")


MASKED_FILL = register(OpDef("masked_fill", OpKind.INDEXING, _masked_fill_rule,
                             _masked_fill_impl, _masked_fill_vjp, _masked_fill_samples))


def masked_fill(input, mask, value):
    """``input`` with ``value`` where ``mask`` is True (mask broadcasts)."""
    return apply(MASKED_FILL, input, mask, value)


def _masked_select_rule(types, count):
    device = common_device(types)
    t, m = types
    if m.dtype is not dtypes.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    broadcast_shapes(t.shape, m.shape)
    return TensorType((count,), t.dtype, device)


def _masked_select_impl(a, m, count):
    a, m = np.broadcast_arrays(a, m)
    return a[m]   # boolean indexing copies


def _masked_select_vjp(ctx, g):
    xt, mt = ctx.input_types
    shape = broadcast_shapes(xt.shape, mt.shape)
    return apply(MASKED_SCATTER, zeros_of(shape, g), ctx.inputs[1], g), None


def _masked_select_samples():
    yield Sample((arr(3, 4), bools(3, 4)))
    yield Sample((arr(3, 4), bools(4, seed=1)))
    yield Sample((arr(4), bools(2, 1, seed=2)), note="mask broadcasts input")
    yield Sample((noncontig(3, 4), bools(3, 4, seed=3)))
    yield Sample((arr(), np.array(True)))
    yield Sample((arr(3, dtype=np.int64), bools(3)), grad=False)
    yield ErrorSample((arr(3), arr(3, dtype=np.int64)), {}, RuntimeError,
                      "expected BoolTensor for mask")


MASKED_SELECT = register(OpDef("masked_select", OpKind.INDEXING, _masked_select_rule,
                               _masked_select_impl, _masked_select_vjp, _masked_select_samples))


def masked_select(input, mask, *, out=None):
    """The elements of ``input`` where ``mask`` is True, as a 1-D tensor (both broadcast)."""
    reject_out(out)
    t, m = type_of(input), type_of(mask)
    if m.dtype is not dtypes.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shapes(t.shape, m.shape)
    if m.shape != shape:
        from ir.ops.movement import expand
        count = read_count(expand(mask, shape))
    else:
        count = read_count(mask)
    return apply(MASKED_SELECT, input, mask, count=count)


def _masked_scatter_rule(types):
    device = common_device(types)
    t, m, s = types
    if m.dtype is not dtypes.bool_:
        raise RuntimeError("masked_scatter_ only supports boolean masks, but got mask with "
                           f"dtype {m.dtype.torch_name}")
    if s.dtype is not t.dtype:
        raise RuntimeError("masked_scatter: expected self and source to have same dtypes but "
                           f"got{t.dtype.torch_name} and {s.dtype.torch_name}")
    return TensorType(broadcast_shapes(t.shape, m.shape), t.dtype, device)


def _masked_scatter_impl(a, m, s):
    a, m = np.broadcast_arrays(a, m)
    n = int(np.count_nonzero(m))
    if n > s.size:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    out = a.copy(order="K")
    out[m] = s.ravel()[:n]
    return out


def _masked_scatter_vjp(ctx, g):
    from ir.ops.movement import reshape
    m = ctx.inputs[1]
    st = ctx.input_types[2]
    shape = type_of(g).shape
    if ctx.input_types[1].shape != shape:
        from ir.ops.movement import expand
        m = expand(m, shape)
    picked = masked_select(g, m)
    n = type_of(picked).shape[0]
    flat = index_put_basic(zeros_of((st.numel,), g), picked, (("s", 0, n, 1),))
    return masked_fill(g, m, 0), None, reshape(flat, st.shape)


def _masked_scatter_samples():
    yield Sample((arr(3, 4), bools(3, 4), arr(3, 5, seed=1)))
    yield Sample((arr(3, 4), bools(4, seed=1), arr(12, seed=1)))
    yield Sample((arr(4), bools(2, 1, seed=2), arr(8, seed=1)), note="mask broadcasts input")
    yield Sample((noncontig(3, 4), bools(3, 4, seed=3), noncontig(4, 3, seed=1)))
    yield Sample((arr(3, dtype=np.int64), bools(3), arr(3, dtype=np.int64)), grad=False)
    yield ErrorSample((arr(3), np.ones(3, dtype=bool), arr(2)), {}, RuntimeError,
                      "Number of elements of source")
    yield ErrorSample((arr(3), bools(3), arr(3, dtype=np.int64)), {}, RuntimeError,
                      "same dtypes")
    yield ErrorSample((arr(3), arr(3, dtype=np.int64), arr(3)), {}, RuntimeError,
                      "boolean masks")


MASKED_SCATTER = register(OpDef("masked_scatter", OpKind.INDEXING, _masked_scatter_rule,
                                _masked_scatter_impl, _masked_scatter_vjp,
                                _masked_scatter_samples))


def masked_scatter(input, mask, source):
    """``input`` with the positions where ``mask`` is True filled from ``source`` in order."""
    return apply(MASKED_SCATTER, input, mask, source)
