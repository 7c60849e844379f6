"""Scans: cumsum, cumprod, logcumsumexp (and in-place ``Tensor.cumsum_``/``cumprod_``).

``cumsum``'s VJP is the reverse cumulative sum, an internal op
(``_reverse_cumsum``) whose own VJP is ``cumsum``, so derivatives of any order
stay within these two ops. ``logcumsumexp``'s VJP is written with them;
``cumprod``'s uses the zero-safe internal ops of ``reduce_grad`` (no division
by the input, so derivatives of every order are exact at zeros, as in PyTorch).
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    check_dtype_arg,
    float_result_dtype,
    register,
    reject_out,
    type_of,
)
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, normalize_dim

__all__ = ["cumsum", "cumprod", "logcumsumexp"]
METHODS = ("cumsum", "cumprod", "logcumsumexp")
INPLACE = ("cumsum", "cumprod")
INTERNAL = ("_reverse_cumsum",)


def _scan_rule(types, dim, dtype):
    (t,) = types
    if dtype is None:
        dtype = dtypes.int64 if t.dtype.category != dtypes.CATEGORY_FLOAT else t.dtype
    return TensorType(t.shape, dtype, t.device)


def _scan_dtype(a, dtype):
    if dtype is None and a.dtype.kind in "biu":
        return np.dtype(np.int64)
    return a.dtype if dtype is None else dtype.np_dtype


def _scan_impl(np_scan):
    """The reference of a scan: ``np_scan`` (``np.cumsum``, ``np.cumprod``) along ``dim``
    in the scan's accumulation dtype (``_scan_dtype``); a 0-d input is only cast."""
    def impl(a, dim, dtype):
        dt = _scan_dtype(a, dtype)
        if a.ndim == 0:
            return a.astype(dt)
        return np_scan(a.astype(dt, copy=False), axis=dim)

    impl.__name__ = f"_{np_scan.__name__}_impl"
    return impl


def _apply_scan(op: OpDef, input, dim, dtype, out):
    """The public function of the scan ``op`` (``cumsum``, ``cumprod``): no ``out=``,
    ``dim`` wrapped to ``input``'s rank, ``dtype`` checked."""
    reject_out(out)
    t = type_of(input)
    return apply(op, input, dim=normalize_dim(dim, t.ndim), dtype=check_dtype_arg(dtype))


def _cumsum_vjp(ctx, g):
    return (_reverse_cumsum(g, ctx.attrs["dim"]),)


def _scan_samples():
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(3, 4),), {"dim": 0})
    yield Sample((arr(2, 3, 4), -2))
    yield Sample((noncontig(3, 4), -1))
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 0))
    yield Sample((arr(3, 4), 1), {"dtype": dtypes.float64})
    yield Sample((ints(3, 4, low=-3, high=3), 0), grad=False)
    yield Sample((ints(3, 4, low=-3, high=3), 1), {"dtype": dtypes.float32}, grad=False)
    yield Sample((bools(5), 0), grad=False)
    yield ErrorSample((arr(3, 4), 2), {}, IndexError, "Dimension out of range")


CUMSUM = register(OpDef("cumsum", OpKind.OPAQUE, _scan_rule, _scan_impl(np.cumsum),
                        _cumsum_vjp, _scan_samples))


def cumsum(input, dim, *, dtype=None, out=None):
    """Cumulative sum along ``dim`` (integers and bools accumulate in int64)."""
    return _apply_scan(CUMSUM, input, dim, dtype, out)


def _cumprod_vjp(ctx, g):
    # grad_k = sum_{i >= k} g_i prod_{j <= i, j != k} x_j, computed without dividing by x
    # (reduce_grad), so derivatives of every order are exact at zeros
    from ir.ops.reduce_grad import _cumprod_grad
    return (_cumprod_grad(ctx.inputs[0], g, dim=ctx.attrs["dim"]),)


def _cumprod_samples():
    yield Sample((arr(3, 4, low=0.5, high=1.5), 1))
    yield Sample((arr(3, 4, low=-1.5, high=-0.5), 0))
    yield Sample((noncontig(3, 4, low=0.5, high=2.0), -1))
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 1))
    yield Sample((arr(3, 4, low=0.5, high=1.5), 1), {"dtype": dtypes.float64})
    yield Sample((ints(3, 4, low=-3, high=3), 0), grad=False)
    yield Sample((bools(5), 0), grad=False)
    yield Sample((np.array([1.5, 0.0, 2.0], dtype=np.float32), 0), note="one zero")
    yield Sample((np.array([2.0, 0.0, 3.0, 0.0, 5.0], dtype=np.float64), 0), note="two zeros")
    yield Sample((np.array([[2.0, 0.0, 3.0], [0.0, 1.5, -1.0], [0.0, 0.0, 2.0],
                            [1.0, -2.0, 0.5]], dtype=np.float32), 0), note="zeros, dim 0")
    yield Sample((np.array([[2.0, 0.0, 3.0], [0.0, 1.5, -1.0], [0.0, 0.0, 2.0],
                            [1.0, -2.0, 0.5]], dtype=np.float32), 1), note="zeros, dim 1")
    yield ErrorSample((arr(3, 4), -3), {}, IndexError, "Dimension out of range")


CUMPROD = register(OpDef("cumprod", OpKind.OPAQUE, _scan_rule, _scan_impl(np.cumprod),
                         _cumprod_vjp, _cumprod_samples))


def cumprod(input, dim, *, dtype=None, out=None):
    """Cumulative product along ``dim`` (integers and bools accumulate in int64)."""
    return _apply_scan(CUMPROD, input, dim, dtype, out)


# --- the reverse cumulative sum (cumsum's adjoint) ----------------------------------------

def _rcumsum_rule(types, dim):
    (t,) = types
    return TensorType(t.shape, t.dtype, t.device)


def _rcumsum_impl(a, dim):
    if a.ndim == 0:
        return a.copy()
    return np.flip(np.cumsum(np.flip(a, axis=dim), axis=dim), axis=dim)


def _rcumsum_vjp(ctx, g):
    return (cumsum(g, ctx.attrs["dim"]),)


def _rcumsum_samples():
    yield Sample((arr(3, 4), 1), torch=False, note="internal op")
    yield Sample((noncontig(3, 4), 0), torch=False, note="internal op")
    yield Sample((arr(), 0), torch=False, note="internal op")


RCUMSUM = register(OpDef("_reverse_cumsum", OpKind.OPAQUE, _rcumsum_rule, _rcumsum_impl,
                         _rcumsum_vjp, _rcumsum_samples, public="_ops._reverse_cumsum"))


def _reverse_cumsum(input, dim):
    """Internal: ``out[i] = sum(input[i:])`` along ``dim`` (the VJP of ``cumsum``)."""
    return apply(RCUMSUM, input, dim=int(dim))


# --- logcumsumexp ------------------------------------------------------------------------

def _lcse_rule(types, dim):
    (t,) = types
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f'"logcumsumexp_out_cpu" not implemented for '
                                  f"'{t.dtype.torch_name}'")
    return TensorType(t.shape, float_result_dtype(t.dtype), t.device)


def _lcse_impl(a, dim):
    if a.ndim == 0:
        return a.copy()
    with np.errstate(all="ignore"):
        if type(a) is np.ndarray:
            return np.logaddexp.accumulate(a, axis=dim)
        return _logaddexp_scan(a, dim)


def _logaddexp_scan(a, dim: int):
    """``np.logaddexp.accumulate`` for a device array: CuPy's ufuncs have no
    ``accumulate`` beyond add and multiply, so a Hillis-Steele scan (log2(n) whole-array
    ``logaddexp`` passes, the right-hand side computed before it is written) makes the
    same prefix combinations in another association order (float tolerance)."""
    out = a.copy()
    n = a.shape[dim]
    lead = (slice(None),) * dim
    shift = 1
    while shift < n:
        out[lead + (slice(shift, None),)] = np.logaddexp(out[lead + (slice(shift, None),)],
                                                         out[lead + (slice(None, n - shift),)])
        shift *= 2
    return out


def _lcse_vjp(ctx, g):
    # grad_j = sum_{i >= j} g_i exp(x_j - out_i) = exp(x_j) * rcumsum(g * exp(-out)); not
    # rescaled, so it overflows for inputs beyond the float range of exp (about 88 in f32)
    from ir.ops.elementwise import exp, mul, neg
    (x,) = ctx.inputs
    return (mul(exp(x), _reverse_cumsum(mul(g, exp(neg(ctx.output))), ctx.attrs["dim"])),)


def _lcse_samples():
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(3, 4, dtype=np.float64), 0))
    yield Sample((noncontig(3, 4), -1))
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 1))
    yield ErrorSample((ints(3), 0), {}, NotImplementedError, "not implemented for 'Long'")


LOGCUMSUMEXP = register(OpDef("logcumsumexp", OpKind.OPAQUE, _lcse_rule, _lcse_impl, _lcse_vjp,
                              _lcse_samples))


def logcumsumexp(input, dim, *, out=None):
    """``log(cumsum(exp(input)))`` along ``dim``, computed stably."""
    reject_out(out)
    t = type_of(input)
    return apply(LOGCUMSUMEXP, input, dim=normalize_dim(dim, t.ndim))
