"""Reductions. ``sum`` is the pattern: dims normalised to a sorted tuple
attribute, ``keepdim`` and ``dtype`` attributes, a VJP that broadcasts back."""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, check_dtype_arg, register, reject_out, type_of
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, normalize_dims

__all__ = ["sum"]
METHODS = ("sum", "sum_to_size")
INTERNAL = ("reduced_shape", "unreduce")


def reduced_shape(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool):
    """The shape after reducing ``dims`` (normalised) of ``shape``."""
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def unreduce(g, input_shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool):
    """Broadcast a reduction's gradient ``g`` back to ``input_shape``."""
    from ir.ops.movement import expand, reshape
    if not keepdim and dims:
        g = reshape(g, reduced_shape(input_shape, dims, True))
    return expand(g, input_shape)


def _sum_rule(types, dim, keepdim, dtype):
    (t,) = types
    if dtype is None:
        dtype = dtypes.int64 if t.dtype.category != dtypes.CATEGORY_FLOAT else t.dtype
    return TensorType(reduced_shape(t.shape, dim, keepdim), dtype, t.device)


def _sum_impl(a, dim, keepdim, dtype):
    if dtype is None and a.dtype.kind in "biu":
        dtype = dtypes.int64
    return np.sum(a, axis=dim, keepdims=keepdim, dtype=None if dtype is None else dtype.np_dtype)


def _sum_vjp(ctx, g):
    (x,) = ctx.inputs
    return (unreduce(g, type_of(x).shape, ctx.attrs["dim"], ctx.attrs["keepdim"]),)


def _sum_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4),), {"dim": 1})
    yield Sample((arr(2, 3, 4),), {"dim": (0, 2), "keepdim": True})
    yield Sample((noncontig(3, 4),), {"dim": -1})
    yield Sample((arr(),), {"dim": 0})
    yield Sample((arr(0, 3),), {"dim": 0})
    yield Sample((arr(3, 4),), {"dtype": dtypes.float64})
    yield Sample((ints(3, 4),), {"dim": 0}, grad=False)
    yield Sample((bools(5),), grad=False)
    yield ErrorSample((arr(3, 4),), {"dim": 2}, IndexError, "Dimension out of range")
    yield ErrorSample((arr(3, 4),), {"dim": (0, 0)}, RuntimeError, "appears multiple times")


SUM = register(OpDef("sum", OpKind.REDUCTION, _sum_rule, _sum_impl, _sum_vjp, _sum_samples))


def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):  # noqa: A001 - PyTorch's name
    """Sum over ``dim`` (an int, a tuple, or None for all dims)."""
    reject_out(out)
    t = type_of(input)
    dims = normalize_dims(dim, t.ndim)
    if dim is not None and not isinstance(dim, int) and len(tuple(dim)) == 0:
        dims = tuple(range(t.ndim))  # PyTorch: an empty dim list reduces everything
    return apply(SUM, input, dim=dims, keepdim=bool(keepdim), dtype=check_dtype_arg(dtype))


def sum_to_size(g, shape: tuple[int, ...]):
    """Sum a broadcast gradient ``g`` down to ``shape`` (the inverse of broadcasting)."""
    gshape = type_of(g).shape
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    dims = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if dims:
        g = apply(SUM, g, dim=dims, keepdim=True, dtype=None)
    if type_of(g).shape != shape:
        from ir.ops.movement import reshape
        g = reshape(g, shape)
    return g
