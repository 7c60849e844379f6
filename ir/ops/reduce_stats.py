"""Statistical and logical reductions: var, std, var_mean, std_mean, logsumexp, norm,
nansum, nanmean, all, any, count_nonzero.

Split from ``reduce`` (same conventions: dims as a sorted tuple attribute,
``keepdim``, VJPs that broadcast back with ``unreduce``). ``norm`` is
``torch.norm``: a thin wrapper over ``linalg_vector_norm``/``linalg_matrix_norm``
exactly as PyTorch's own ``torch.norm`` is.
"""

from __future__ import annotations

import builtins
import warnings

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    float_result_dtype,
    register,
    reject_out,
    type_of,
)
from ir.ops.reduce import _count, mean, reduce_dims, reduced_shape, unreduce
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, normalize_dims

__all__ = ["var", "std", "var_mean", "std_mean", "logsumexp", "norm", "nansum", "nanmean",
           "all", "any", "count_nonzero"]
METHODS = ("var", "std", "logsumexp", "norm", "nansum", "nanmean", "all", "any",
           "count_nonzero")


# --- var / std / var_mean / std_mean ----------------------------------------------------

def _moments_rule(name, outputs):
    def rule(types, dim, correction, keepdim):
        (t,) = types
        if t.dtype.category != dtypes.CATEGORY_FLOAT:
            raise RuntimeError("std and var only support floating point and complex dtypes")
        out = TensorType(reduced_shape(t.shape, dim, keepdim), t.dtype, t.device)
        return out if outputs == 1 else (out, out)
    rule.__name__ = f"_{name}_rule"
    return rule


def _var_np(a, dim, correction, keepdim):
    n = _count(a.shape, dim)
    with np.errstate(all="ignore"):
        m = np.sum(a, axis=dim, keepdims=True) / n if n else np.sum(a, axis=dim, keepdims=True)
        if not n:
            m = m / 0.0
        ss = np.sum((a - m) ** 2, axis=dim, keepdims=keepdim)
        var = ss / builtins.max(0, n - correction)
    return var, (m if keepdim or not dim else np.squeeze(m, dim))


def _var_impl(a, dim, correction, keepdim):
    return _var_np(a, dim, correction, keepdim)[0]


def _std_impl(a, dim, correction, keepdim):
    return np.sqrt(_var_np(a, dim, correction, keepdim)[0])


def _var_mean_impl(a, dim, correction, keepdim):
    return _var_np(a, dim, correction, keepdim)


def _std_mean_impl(a, dim, correction, keepdim):
    var, m = _var_np(a, dim, correction, keepdim)
    return np.sqrt(var), m


def _centered_grad(ctx, g, scale_by_std):
    """d var/dx = 2 (x - mean) / (N - correction); for std, also divided by 2 std."""
    from ir.ops.elementwise import div, mul, sub
    (x,) = ctx.inputs
    shape = ctx.input_types[0].shape
    dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
    dof = _count(shape, dims) - ctx.attrs["correction"]
    factor = (1.0 if scale_by_std else 2.0) / dof if dof else float("inf")
    if scale_by_std:
        # PyTorch masks the gradient to 0 where std == 0 (constant slices) instead of 0/0
        from ir.ops.compare import eq, where
        std = ctx.outputs[0]
        g = where(eq(std, 0), 0.0, div(g, std))
    centered = sub(x, mean(x, dims, True))
    return mul(mul(unreduce(g, shape, dims, keepdim), centered), factor)


def _mean_grad(ctx, g):
    from ir.ops.elementwise import mul
    shape = ctx.input_types[0].shape
    dims = ctx.attrs["dim"]
    n = _count(shape, dims)
    g = unreduce(g, shape, dims, ctx.attrs["keepdim"])
    return mul(g, 1.0 / n) if n else g


def _var_vjp(ctx, g):
    return (_centered_grad(ctx, g, False),)


def _std_vjp(ctx, g):
    return (_centered_grad(ctx, g, True),)


def _moments_mean_vjp(scale_by_std):
    def vjp(ctx, gv, gm):
        from ir.ops.elementwise import add
        parts = []
        if gv is not None:
            parts.append(_centered_grad(ctx, gv, scale_by_std))
        if gm is not None:
            parts.append(_mean_grad(ctx, gm))
        if not parts:
            return (None,)
        return (parts[0] if len(parts) == 1 else add(parts[0], parts[1]),)
    vjp.__name__ = "_std_mean_vjp" if scale_by_std else "_var_mean_vjp"
    return vjp


def _moments_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(3, 4),), {"dim": 0, "unbiased": False})
    yield Sample((arr(3, 4), 1, True, True), note="legacy (dim, unbiased, keepdim)")
    yield Sample((arr(3, 4), False), note="legacy (unbiased)")
    yield Sample((arr(2, 3, 4),), {"dim": (0, -1), "correction": 0, "keepdim": True})
    yield Sample((arr(2, 3, 4),), {"dim": 1, "correction": 2})
    yield Sample((noncontig(3, 4),), {"dim": -2})
    yield Sample((arr(3, 4, dtype=np.float64),), {"dim": ()}, grad=False,
                 note="PyTorch's backward treats dim=() as no reduction (its forward reduces all)")
    yield Sample((arr(3, 4, dtype=np.float64),), {"dim": (0, 1)})
    yield Sample((arr(0, 3),), {"dim": 1}, grad=False)
    yield ErrorSample((ints(3, 4),), {}, RuntimeError, "only support floating point")
    yield ErrorSample((arr(3, 4),), {"dim": (0, 0)}, RuntimeError, "appears multiple times")


VAR = register(OpDef("var", OpKind.REDUCTION, _moments_rule("var", 1), _var_impl, _var_vjp,
                     _moments_samples))
STD = register(OpDef("std", OpKind.REDUCTION, _moments_rule("std", 1), _std_impl, _std_vjp,
                     _moments_samples))
VAR_MEAN = register(OpDef("var_mean", OpKind.REDUCTION, _moments_rule("var_mean", 2),
                          _var_mean_impl, _moments_mean_vjp(False), _moments_samples,
                          num_outputs=2))
STD_MEAN = register(OpDef("std_mean", OpKind.REDUCTION, _moments_rule("std_mean", 2),
                          _std_mean_impl, _moments_mean_vjp(True), _moments_samples,
                          num_outputs=2))


def _moments(op, input, dim, unbiased, keepdim, correction):
    if isinstance(dim, bool):  # var(input, unbiased)
        if unbiased is not None:
            raise TypeError("var(): received an invalid combination of arguments: unbiased "
                            "given twice")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError("Cannot specify both unbiased and correction")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    t = type_of(input)
    dims = reduce_dims(dim, t.ndim)
    if _count(t.shape, dims) - correction <= 0:
        warnings.warn(f"{op.name}(): degrees of freedom is <= 0. Correction should be strictly "
                      "less than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)
    return apply(op, input, dim=dims, correction=correction, keepdim=bool(keepdim))


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """Variance over ``dim`` with ``correction`` (default 1; ``unbiased=False`` means 0)."""
    reject_out(out)
    return _moments(VAR, input, dim, unbiased, keepdim, correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """Standard deviation over ``dim`` with ``correction`` (default 1)."""
    reject_out(out)
    return _moments(STD, input, dim, unbiased, keepdim, correction)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """``(var, mean)`` over ``dim``."""
    reject_out(out)
    return tuple(_moments(VAR_MEAN, input, dim, unbiased, keepdim, correction))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """``(std, mean)`` over ``dim``."""
    reject_out(out)
    return tuple(_moments(STD_MEAN, input, dim, unbiased, keepdim, correction))


# --- logsumexp ---------------------------------------------------------------------------

def _lse_rule(types, dim, keepdim):
    (t,) = types
    return TensorType(reduced_shape(t.shape, dim, keepdim), float_result_dtype(t.dtype),
                      t.device)


def _lse_impl(a, dim, keepdim):
    if a.dtype.kind != "f":
        a = a.astype(dtypes.default_float_dtype().np_dtype)
    with np.errstate(all="ignore"):
        if a.size == 0 or builtins.any(a.shape[d] == 0 for d in dim):
            return np.log(np.sum(np.exp(a), axis=dim, keepdims=keepdim))
        m = np.max(a, axis=dim, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(a - m), axis=dim, keepdims=True)) + m
    return out if keepdim or not dim else np.squeeze(out, dim)


def _lse_vjp(ctx, g):
    from ir.ops.elementwise import exp, mul, sub
    (x,) = ctx.inputs
    shape = ctx.input_types[0].shape
    dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
    out = unreduce(ctx.output, shape, dims, keepdim)
    return (mul(unreduce(g, shape, dims, keepdim), exp(sub(x, out))),)


def _lse_samples():
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(2, 3, 4), (0, 2), True))
    yield Sample((noncontig(3, 4),), {"dim": -2})
    yield Sample((arr(3, 4, low=50.0, high=90.0), 1), note="large values stay finite")
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 0), grad=False, note="empty gives -inf")
    yield Sample((arr(0, 3), 1))
    yield Sample((ints(3, 4), 1), grad=False)
    yield Sample((np.array([[np.inf, 1.0], [-np.inf, -np.inf]], dtype=np.float32), 1),
                 grad=False)
    yield ErrorSample((arr(3, 4), 2), {}, IndexError, "Dimension out of range")


LOGSUMEXP = register(OpDef("logsumexp", OpKind.REDUCTION, _lse_rule, _lse_impl, _lse_vjp,
                           _lse_samples))


def logsumexp(input, dim, keepdim=False, *, out=None):
    """``log(sum(exp(input)))`` over ``dim``, computed stably (ints give float)."""
    reject_out(out)
    return apply(LOGSUMEXP, input, dim=reduce_dims(dim, type_of(input).ndim),
                 keepdim=bool(keepdim))


# --- norm (torch.norm) -------------------------------------------------------------------

def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """``torch.norm``: ``p='fro'`` (2-norm over up to two dims), a number (vector p-norm,
    inf/-inf included) or ``'nuc'``, over ``dim`` (all dims when None)."""
    from ir import ops
    reject_out(out)
    dims = [dim] if isinstance(dim, int) and not isinstance(dim, bool) else dim
    if isinstance(p, str):
        if p == "fro" and (dims is None or len(tuple(dims)) <= 2):
            return ops.linalg_vector_norm(input, 2, dims, keepdim, dtype=dtype)
        if dims is None:
            dims = list(range(type_of(input).ndim))
        return ops.linalg_matrix_norm(input, p, tuple(dims), keepdim, dtype=dtype)
    return ops.linalg_vector_norm(input, 2.0 if p is None else p, dims, keepdim, dtype=dtype)


# --- nansum / nanmean (thin wrappers: NaN replaced by zero, then sum / mean) -------------

def _zero_nans(input):
    from ir import ops
    if type_of(input).dtype.category != dtypes.CATEGORY_FLOAT:
        return input
    return ops.where(ops.isnan(input), 0.0, input)


def nansum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Sum over ``dim`` treating NaN as zero."""
    from ir.ops.reduce import sum as sum_
    reject_out(out)
    return sum_(_zero_nans(input), dim, keepdim, dtype=dtype)


def nanmean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Mean over ``dim`` of the non-NaN elements."""
    from ir import ops
    from ir.ops.reduce import sum as sum_
    reject_out(out)
    t = type_of(input)
    if t.dtype.category != dtypes.CATEGORY_FLOAT and dtype is None:
        raise RuntimeError("nanmean(): expected input to have floating point or complex dtype "
                           f"but got {t.dtype.torch_name}")
    total = sum_(_zero_nans(input), dim, keepdim, dtype=dtype)
    count = sum_(ops.logical_not(ops.isnan(input)), dim, keepdim)
    return ops.div(total, count)


# --- all / any / count_nonzero ----------------------------------------------------------

def _logical_rule(types, dim, keepdim):
    (t,) = types
    out = dtypes.uint8 if t.dtype is dtypes.uint8 else dtypes.bool_
    return TensorType(reduced_shape(t.shape, dim, keepdim), out, t.device)


def _all_impl(a, dim, keepdim):
    return np.all(a, axis=dim, keepdims=keepdim)


def _any_impl(a, dim, keepdim):
    return np.any(a, axis=dim, keepdims=keepdim)


def _logical_samples():
    yield Sample((bools(3, 4),), grad=False)
    yield Sample((bools(3, 4), 1), grad=False)
    yield Sample((bools(2, 3, 4),), {"dim": (0, 2), "keepdim": True}, grad=False)
    yield Sample((np.array([[1.0, 0.0], [2.0, 3.0]], dtype=np.float32),), {"dim": -1},
                 grad=False)
    yield Sample((ints(3, 4, low=0, high=2),), {"dim": 0}, grad=False)
    yield Sample((np.array([1, 2, 0], dtype=np.uint8),), grad=False, note="uint8 stays uint8")
    yield Sample((arr(0, 3),), {"dim": 0}, grad=False)
    yield Sample((np.array(True),), grad=False)
    yield Sample((bools(3, 4), ()), grad=False, note="an empty dim list reduces nothing")
    yield ErrorSample((bools(3),), {"dim": 1}, IndexError, "Dimension out of range")


ALL = register(OpDef("all", OpKind.REDUCTION, _logical_rule, _all_impl, None, _logical_samples,
                     differentiable=False))
ANY = register(OpDef("any", OpKind.REDUCTION, _logical_rule, _any_impl, None, _logical_samples,
                     differentiable=False))


def _logical(op, input, dim, keepdim):
    t = type_of(input)
    # unlike sum, an empty dim list reduces nothing here (PyTorch's behaviour)
    dims = tuple(range(t.ndim)) if dim is None else normalize_dims(dim, t.ndim)
    return apply(op, input, dim=dims, keepdim=bool(keepdim))


def all(input, dim=None, keepdim=False, *, out=None):  # noqa: A001
    """Whether all elements over ``dim`` are nonzero (bool; uint8 for uint8 input)."""
    reject_out(out)
    return _logical(ALL, input, dim, keepdim)


def any(input, dim=None, keepdim=False, *, out=None):  # noqa: A001
    """Whether any element over ``dim`` is nonzero (bool; uint8 for uint8 input)."""
    reject_out(out)
    return _logical(ANY, input, dim, keepdim)


def _count_rule(types, dim):
    (t,) = types
    return TensorType(reduced_shape(t.shape, dim, False), dtypes.int64, t.device)


def _count_impl(a, dim):
    return np.count_nonzero(a, axis=dim)


def _count_samples():
    yield Sample((ints(3, 4, low=-1, high=1),), grad=False)
    yield Sample((ints(3, 4, low=-1, high=1), 1), grad=False)
    yield Sample((np.array([[0.0, 1.5], [0.0, 0.0]], dtype=np.float32),), {"dim": (0, 1)},
                 grad=False)
    yield Sample((bools(2, 3, 4),), {"dim": -1}, grad=False)
    yield Sample((arr(0, 3),), {"dim": 0}, grad=False)
    yield ErrorSample((bools(3, 4),), {"dim": (0, 0)}, RuntimeError, "appears multiple times")


COUNT_NONZERO = register(OpDef("count_nonzero", OpKind.REDUCTION, _count_rule, _count_impl,
                               None, _count_samples, differentiable=False))


def count_nonzero(input, dim=None):
    """The number of nonzero elements over ``dim`` (int64)."""
    t = type_of(input)
    return apply(COUNT_NONZERO, input, dim=reduce_dims(dim, t.ndim))
