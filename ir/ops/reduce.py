"""Reductions. ``sum`` is the pattern: dims normalised to a sorted tuple
attribute, ``keepdim`` and ``dtype`` attributes, a VJP that broadcasts back.

Also here: mean, prod, amax/amin, max/min (three forms), argmax/argmin,
aminmax. Statistics and logical reductions (var, std, logsumexp, norm,
nansum, nanmean, all, any, count_nonzero) live in ``reduce_stats``.

Value-selecting reductions split the gradient the way PyTorch does: ``amax``
and the no-dim ``max`` share it evenly among tied elements (``_tie_weights``),
``max(dim)`` sends it to the returned index (``sort._scatter_along_dim``).
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
    check_dtype_arg,
    common_device,
    is_array,
    is_scalar,
    register,
    reject_out,
    type_of,
)
from ir.ops.elementwise import mul
from ir.ops.movement import expand, reshape
from ir.samples import arr, bools, distinct, ints, noncontig
from ir.types import TensorType, normalize_dim, normalize_dims

__all__ = ["sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "aminmax"]
METHODS = ("sum", "sum_to_size", "mean", "prod", "amax", "amin", "max", "min", "argmax",
           "argmin", "aminmax")
INTERNAL = ("reduced_shape", "unreduce", "reduce_dims", "keepdim_shape", "_tie_weights",
            "_prod_others")

# PyTorch's named-tuple results (torch.return_types.max, ...): fields and tuple unpacking
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])
aminmax_result = namedtuple("aminmax", ["min", "max"])


def reduced_shape(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool):
    """The shape after reducing ``dims`` (normalised) of ``shape``."""
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def unreduce(g, input_shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool):
    """Broadcast a reduction's gradient ``g`` back to ``input_shape``."""
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
    # np.add.reduce is what np.sum runs for an ndarray, without its Python wrapper; a
    # full reduction's NumPy scalar becomes a 0-d array (eager wraps an array inline)
    r = np.add.reduce(a, axis=dim, keepdims=keepdim,
                      dtype=None if dtype is None else dtype.np_dtype)
    return np.asarray(r) if isinstance(r, np.generic) else r   # (CuPy's: 0-d arrays)


def _sum_vjp(ctx, g):
    return (unreduce(g, ctx.input_types[0].shape, ctx.attrs["dim"], ctx.attrs["keepdim"]),)


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


SUM = register(OpDef("sum", OpKind.REDUCTION, _sum_rule, _sum_impl, _sum_vjp, _sum_samples,
                     fresh_result=True))


def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):  # noqa: A001 - PyTorch's name
    """Sum over ``dim`` (an int, a tuple, or None for all dims)."""
    reject_out(out)
    return apply(SUM, input, dim=reduce_dims(dim, type_of(input).ndim), keepdim=bool(keepdim),
                 dtype=check_dtype_arg(dtype))


def sum_to_size(g, shape: tuple[int, ...]):
    """Sum a broadcast gradient ``g`` down to ``shape`` (the inverse of broadcasting)."""
    gshape = type_of(g).shape
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    kept = tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if not kept:  # only leading dims to drop: one sum gives the shape
        return apply(SUM, g, dim=tuple(range(lead)), keepdim=False, dtype=None)
    g = apply(SUM, g, dim=tuple(range(lead)) + kept, keepdim=True, dtype=None)
    if type_of(g).shape != shape:
        g = reshape(g, shape)
    return g


# --- shared helpers ----------------------------------------------------------------------

def reduce_dims(dim, ndim: int) -> tuple[int, ...]:
    """Normalise a reduction's ``dim`` (None, an int, a sequence; an empty one means all)."""
    dims = normalize_dims(dim, ndim)
    if dim is not None and not isinstance(dim, int) and len(tuple(dim)) == 0:
        dims = tuple(range(ndim))  # PyTorch: an empty dim list reduces everything
    return dims


def keepdim_shape(shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    return reduced_shape(shape, dims, True)


def _keep(g, input_shape, dims, keepdim):
    """``g`` (a reduction's output) reshaped so it has the input's rank (size 1 at ``dims``)."""
    if keepdim or not dims:
        return g
    return reshape(g, keepdim_shape(input_shape, dims))


def _check_nonempty(name: str, shape, dims) -> None:
    for d in dims:
        if shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _check_dim_given(name: str, t: TensorType) -> None:
    if t.numel == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                           "== 0. Specify the reduction dim with the 'dim' argument.")


def _int_dim(name: str, dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) and not hasattr(dim, "__index__"):
        raise TypeError(f"{name}(): argument 'dim' must be int, not {type(dim).__name__}")
    return dim.__index__()


# --- mean --------------------------------------------------------------------------------

def _mean_rule(types, dim, keepdim, dtype):
    (t,) = types
    out = dtype if dtype is not None else t.dtype
    if out.category != dtypes.CATEGORY_FLOAT:
        what = "Optional dtype" if dtype is not None else "Input dtype"
        raise RuntimeError("mean(): could not infer output dtype. " + what + " must be either "
                           f"a floating point or complex dtype. Got: {out.torch_name}")
    return TensorType(reduced_shape(t.shape, dim, keepdim), out, t.device)


def _mean_impl(a, dim, keepdim, dtype):
    # (callers ignore NumPy's floating-point errors: ir.fperr)
    if dtype is not None:
        a = a.astype(dtype.np_dtype)
    n = _count(a.shape, dim)
    if n == 0:
        s = np.sum(a, axis=dim, keepdims=keepdim)
        return s / 0.0 if np.size(s) else s
    # np.mean's arithmetic without its Python wrapper: the sum (float16 accumulated in
    # float32), divided in the sum's dtype, float16 rounded back at the end
    half = a.dtype == np.float16
    s = np.add.reduce(a, axis=dim, keepdims=keepdim, dtype=np.float32 if half else None)
    r = np.true_divide(s, n)
    return r.astype(np.float16) if half else r


def _count(shape, dims) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _mean_vjp(ctx, g):
    shape = ctx.input_types[0].shape
    n = _count(shape, ctx.attrs["dim"])
    g = unreduce(g, shape, ctx.attrs["dim"], ctx.attrs["keepdim"])
    return (mul(g, 1.0 / n) if n else g,)


def _mean_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4),), {"dim": 1})
    yield Sample((arr(2, 3, 4),), {"dim": (0, -1), "keepdim": True})
    yield Sample((noncontig(3, 4),), {"dim": -2})
    yield Sample((arr(),),)
    yield Sample((arr(),), {"dim": 0, "keepdim": True})
    yield Sample((arr(0, 3),), {"dim": 1}, note="empty along a kept dim")
    yield Sample((arr(0, 3),), {"dim": 0}, grad=False, note="mean over nothing is nan")
    yield Sample((arr(3, 4),), {"dtype": dtypes.float64})
    yield Sample((ints(3, 4),), {"dim": 0, "dtype": dtypes.float32}, grad=False)
    yield Sample((arr(2, 3, dtype=np.float64),), {"dim": ()})
    yield ErrorSample((ints(3),), {}, RuntimeError, "could not infer output dtype")
    yield ErrorSample((bools(3),), {}, RuntimeError, "Got: Bool")
    yield ErrorSample((arr(3, 4),), {"dim": 2}, IndexError, "Dimension out of range")


MEAN = register(OpDef("mean", OpKind.REDUCTION, _mean_rule, _mean_impl, _mean_vjp,
                      _mean_samples))


def mean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Arithmetic mean over ``dim`` (float inputs, or an explicit float ``dtype``)."""
    reject_out(out)
    dims = reduce_dims(dim, type_of(input).ndim)
    return apply(MEAN, input, dim=dims, keepdim=bool(keepdim), dtype=check_dtype_arg(dtype))


# --- prod --------------------------------------------------------------------------------

def _prod_impl(a, dim, keepdim, dtype):
    if dtype is None and a.dtype.kind in "biu":
        dtype = dtypes.int64
    return np.prod(a, axis=dim, keepdims=keepdim, dtype=None if dtype is None else dtype.np_dtype)


def _prod_vjp(ctx, g):
    # d prod / d x_i = the product of the other elements, computed without dividing by x_i,
    # so inputs with zeros get PyTorch's gradient (of every order: see reduce_grad).
    shape = ctx.input_types[0].shape
    dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
    return (mul(unreduce(g, shape, dims, keepdim), _prod_others(ctx.inputs[0], dims)),)


def _prod_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4),), {"dim": 1})
    yield Sample((arr(2, 3, 4),), {"dim": -1, "keepdim": True})
    yield Sample((noncontig(3, 4),), {"dim": 0})
    yield Sample((arr(),),)
    yield Sample((arr(),), {"dim": -1})
    yield Sample((arr(0, 3),), {"dim": 0})
    yield Sample((np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0], [1.0, 2.0, -1.0]],
                           dtype=np.float32),), {"dim": 1}, note="zeros: gradient without 1/x")
    yield Sample((np.array([0.5, 0.0, 2.0, -1.5], dtype=np.float64),), note="one zero")
    yield Sample((arr(3, 4),), {"dim": 1, "dtype": dtypes.float64})
    yield Sample((ints(3, 4, low=-3, high=3),), {"dim": 0}, grad=False)
    yield Sample((bools(5),), grad=False)
    yield ErrorSample((arr(3, 4),), {"dim": 2}, IndexError, "Dimension out of range")


PROD = register(OpDef("prod", OpKind.REDUCTION, _sum_rule, _prod_impl, _prod_vjp,
                      _prod_samples))


def prod(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Product over one ``dim`` (an int) or over all elements (``dim=None``)."""
    reject_out(out)
    t = type_of(input)
    if dim is None:
        dims = tuple(range(t.ndim))
        keepdim = False
    else:
        dims = normalize_dims(_int_dim("prod", dim), t.ndim)
    return apply(PROD, input, dim=dims, keepdim=bool(keepdim), dtype=check_dtype_arg(dtype))


def _others_rule(types, dim):
    (t,) = types
    return TensorType(t.shape, t.dtype, t.device)


def _prod_others_impl(a, dim):
    """For each element, the product of the other elements of its slice over ``dim``."""
    if not dim or a.size == 0:
        return np.ones_like(a)
    rest = [i for i in range(a.ndim) if i not in dim]
    moved = np.transpose(a, rest + list(dim))
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    ones = np.ones_like(flat, shape=flat.shape[:-1] + (1,))
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    out = (left * right).reshape(moved.shape)
    return np.transpose(out, tuple(np.argsort(rest + list(dim)).tolist()))


def _prod_others_vjp(ctx, h):
    # d P_i / d x_k = prod of the slice without x_i and x_k (k != i), computed without
    # dividing (reduce_grad), so every order of prod's derivative is exact at zeros
    from ir.ops.reduce_grad import _prod_others_grad
    return (_prod_others_grad(ctx.inputs[0], h, dim=ctx.attrs["dim"]),)


def _prod_others_samples():
    yield Sample((arr(3, 4, low=0.5, high=2.0), (1,)), torch=False, note="internal op")
    yield Sample((arr(2, 3, 4, low=0.5, high=2.0), (0, 2)), torch=False, note="internal op")
    yield Sample((arr(3, low=0.5, high=2.0), ()), torch=False, note="internal op")


PROD_OTHERS = register(OpDef("_prod_others", OpKind.REDUCTION, _others_rule, _prod_others_impl,
                             _prod_others_vjp, _prod_others_samples,
                             public="_ops._prod_others"))


def _prod_others(input, dim):
    """Internal (prod's VJP): the product of the other elements of each slice over ``dim``."""
    return apply(PROD_OTHERS, input, dim=tuple(dim))


# --- ties: evenly split gradients --------------------------------------------------------

def _tie_rule(types, dim, keepdim):
    x, _ = types
    return TensorType(x.shape, x.dtype, common_device(types))


def _tie_impl(x, out, dim, keepdim):
    o = out if is_array(out) else np.asarray(out)
    if not keepdim and dim:
        o = o.reshape(keepdim_shape(x.shape, dim))
    mask = (x == o) | (np.isnan(x) & np.isnan(o))
    count = np.sum(mask, axis=dim, keepdims=True)
    with np.errstate(all="ignore"):
        return mask / count


def _tie_vjp(ctx, g):
    return None, None


def _tie_samples():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    yield Sample((x, np.array([3.0, 2.0], dtype=np.float32), (1,), False), grad=False,
                 torch=False, note="internal op")
    yield Sample((x, np.array(3.0, dtype=np.float32), (0, 1), False), grad=False, torch=False,
                 note="internal op")


TIE_WEIGHTS = register(OpDef("_tie_weights", OpKind.REDUCTION, _tie_rule, _tie_impl, _tie_vjp,
                             _tie_samples, public="_ops._tie_weights", differentiable=False))


def _tie_weights(input, result, dim, keepdim):
    """Internal: 1/count where ``input`` equals the reduced ``result`` (NaN matches NaN), else 0."""
    return apply(TIE_WEIGHTS, input, result, dim=tuple(dim), keepdim=bool(keepdim))


def _even_vjp(ctx, g):
    """Gradient of a value-selecting reduction, shared evenly among ties (amax, max())."""
    x = ctx.inputs[0]
    shape = ctx.input_types[0].shape
    dims = ctx.attrs.get("dim", tuple(range(len(shape))))
    keepdim = ctx.attrs.get("keepdim", False)
    return (mul(unreduce(g, shape, dims, keepdim), _tie_weights(x, ctx.output, dims, keepdim)),)


# --- amax / amin, and max()/min() without dim -------------------------------------------

def _extreme_rule(name):
    def rule(types, dim, keepdim):
        (t,) = types
        _check_nonempty(name, t.shape, dim)
        return TensorType(reduced_shape(t.shape, dim, keepdim), t.dtype, t.device)
    rule.__name__ = f"_{name}_rule"
    return rule


def _amax_impl(a, dim, keepdim):
    return np.max(a, axis=dim, keepdims=keepdim)  # NaN propagates, as in PyTorch


def _amin_impl(a, dim, keepdim):
    return np.min(a, axis=dim, keepdims=keepdim)


def _amax_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4),), {"dim": 1})
    yield Sample((arr(2, 3, 4),), {"dim": (0, -1), "keepdim": True})
    yield Sample((noncontig(3, 4),), {"dim": -2})
    yield Sample((arr(),),)
    yield Sample((arr(),), {"dim": 0, "keepdim": True})
    yield Sample((arr(0, 3),), {"dim": 1})
    yield Sample((np.array([[1.0, 3.0, 3.0], [2.0, 0.5, 2.0]], dtype=np.float64),), {"dim": 1},
                 note="ties share the gradient evenly")
    yield Sample((ints(3, 4),), {"dim": 0}, grad=False)
    yield Sample((bools(3, 4),), {"dim": 1}, grad=False)
    yield ErrorSample((arr(0, 3),), {"dim": 0}, IndexError, "Expected reduction dim 0 to have")
    yield ErrorSample((arr(0, 3),), {}, RuntimeError, "Expected reduction dim to be specified")
    yield ErrorSample((arr(3, 4),), {"dim": (1, 1)}, RuntimeError, "appears multiple times")


AMAX = register(OpDef("amax", OpKind.REDUCTION, _extreme_rule("amax"), _amax_impl, _even_vjp,
                      _amax_samples))
AMIN = register(OpDef("amin", OpKind.REDUCTION, _extreme_rule("amin"), _amin_impl, _even_vjp,
                      _amax_samples))


def _amax_amin(op, name, input, dim, keepdim):
    t = type_of(input)
    if dim is None or (not isinstance(dim, int) and len(tuple(dim)) == 0):
        _check_dim_given(name, t)
    return apply(op, input, dim=reduce_dims(dim, t.ndim), keepdim=bool(keepdim))


def amax(input, dim=(), keepdim=False, *, out=None):
    """Maximum over ``dim`` (all dims when empty); ties share the gradient evenly."""
    reject_out(out)
    return _amax_amin(AMAX, "amax", input, dim, keepdim)


def amin(input, dim=(), keepdim=False, *, out=None):
    """Minimum over ``dim`` (all dims when empty); ties share the gradient evenly."""
    reject_out(out)
    return _amax_amin(AMIN, "amin", input, dim, keepdim)


def _all_rule(name):
    def rule(types):
        (t,) = types
        _check_dim_given(name, t)
        return TensorType((), t.dtype, t.device)
    rule.__name__ = f"_{name}_all_rule"
    return rule


def _max_all_impl(a):
    return np.max(a)


def _min_all_impl(a):
    return np.min(a)


def _max_all_samples():
    yield Sample((arr(3, 4),))
    yield Sample((noncontig(3, 4),))
    yield Sample((arr(),))
    yield Sample((np.array([1.0, 3.0, 3.0, -3.0], dtype=np.float64),), note="ties")
    yield Sample((ints(3, 4),), grad=False)
    yield Sample((bools(4),), grad=False)
    yield ErrorSample((arr(0, 3),), {}, RuntimeError, "Expected reduction dim to be specified")


MAX_ALL = register(OpDef("max_all", OpKind.REDUCTION, _all_rule("max"), _max_all_impl, _even_vjp,
                         _max_all_samples, public="max"))
MIN_ALL = register(OpDef("min_all", OpKind.REDUCTION, _all_rule("min"), _min_all_impl, _even_vjp,
                         _max_all_samples, public="min"))


# --- max / min with dim: (values, indices) ------------------------------------------------

def _select_rule(name):
    def rule(types, dim, keepdim):
        (t,) = types
        dims = (dim,) if t.ndim else ()
        _check_nonempty(name, t.shape, dims)
        shape = reduced_shape(t.shape, dims, keepdim)
        return TensorType(shape, t.dtype, t.device), TensorType(shape, dtypes.int64, t.device)
    rule.__name__ = f"_{name}_dim_rule"
    return rule


def _select(a, idx_fn, dim, keepdim):
    if a.ndim == 0:
        return a.copy(), np.zeros_like(a, dtype=np.int64)
    idx = np.expand_dims(idx_fn(a, axis=dim), dim)
    values = np.take_along_axis(a, idx, axis=dim)
    if not keepdim:
        idx, values = np.squeeze(idx, dim), np.squeeze(values, dim)
    return values, idx


def _max_dim_impl(a, dim, keepdim):
    return _select(a, np.argmax, dim, keepdim)  # first index; NaN counts as the maximum


def _min_dim_impl(a, dim, keepdim):
    return _select(a, np.argmin, dim, keepdim)


def select_vjp(ctx, g, _gi=None):
    """Gradient of a (values, indices) reduction over ``dim``: ``g`` goes to the indices."""
    from ir.ops.sort import _scatter_along_dim
    if g is None:
        return (None,)
    shape = ctx.input_types[0].shape
    dim, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
    dims = (dim,) if shape else ()
    idx = ctx.outputs[1]
    g, idx = _keep(g, shape, dims, keepdim), _keep(idx, shape, dims, keepdim)
    return (_scatter_along_dim(g, idx, dim, shape[dim] if shape else 1),)


def _max_dim_samples():
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(3, 4),), {"dim": 0, "keepdim": True})
    yield Sample((arr(2, 3, 4), -2))
    yield Sample((noncontig(3, 4), -1, True))
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 1))
    yield Sample((distinct(3, 4, dtype=np.int64), 1), grad=False)
    yield Sample((np.array([[1, 3, 3, 2]], dtype=np.int32), 1), grad=False,
                 note="ties give the first index")
    yield Sample((bools(3, 4), 0), grad=False)
    yield Sample((np.array([1.0, np.nan, 2.0], dtype=np.float32), 0), grad=False,
                 note="NaN is selected")
    yield ErrorSample((arr(0, 3), 0), {}, IndexError, "Expected reduction dim 0 to have")
    yield ErrorSample((arr(3, 4), 2), {}, IndexError, "Dimension out of range")
    yield ErrorSample((arr(3, 4), 1.5), {}, TypeError, "")


MAX_DIM = register(OpDef("max", OpKind.REDUCTION, _select_rule("max"), _max_dim_impl,
                         select_vjp, _max_dim_samples, num_outputs=2))
MIN_DIM = register(OpDef("min", OpKind.REDUCTION, _select_rule("min"), _min_dim_impl,
                         select_vjp, _max_dim_samples, num_outputs=2))


def _is_tensor_like(x) -> bool:
    if x is None or is_scalar(x) or isinstance(x, (tuple, list, str)):
        return False
    try:
        type_of(x)
    except TypeError:
        return False
    return True


def _max_min(name, all_op, dim_op, input, dim, keepdim, other, out):
    from ir import ops
    reject_out(out)
    pairwise = "maximum" if name == "max" else "minimum"
    if other is not None:
        return getattr(ops, pairwise)(input, other)
    if dim is None:
        return apply(all_op, input)
    if _is_tensor_like(dim):
        return getattr(ops, pairwise)(input, dim)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}() received an invalid combination of arguments - got "
                        f"(Tensor, {type(dim).__name__}), but expected (Tensor input), "
                        "(Tensor input, Tensor other) or (Tensor input, int dim, bool keepdim)")
    t = type_of(input)
    values, indices = apply(dim_op, input, dim=normalize_dim(int(dim), t.ndim),
                            keepdim=bool(keepdim))
    cls = max_result if name == "max" else min_result
    return cls(values, indices)


def max(input, dim=None, keepdim=False, *, other=None, out=None):  # noqa: A001
    """``max(input)`` -> 0-d maximum; ``max(input, dim, keepdim)`` -> (values, indices);
    ``max(input, other)`` -> elementwise ``maximum``."""
    return _max_min("max", MAX_ALL, MAX_DIM, input, dim, keepdim, other, out)


def min(input, dim=None, keepdim=False, *, other=None, out=None):  # noqa: A001
    """``min(input)`` -> 0-d minimum; ``min(input, dim, keepdim)`` -> (values, indices);
    ``min(input, other)`` -> elementwise ``minimum``."""
    return _max_min("min", MIN_ALL, MIN_DIM, input, dim, keepdim, other, out)


def aminmax(input, *, dim=None, keepdim=False):
    """(min, max) over ``dim`` (all elements when None), as ``torch.aminmax``."""
    t = type_of(input)
    if dim is None:
        _check_dim_given("aminmax", t)
        dims, keepdim_ = tuple(range(t.ndim)), bool(keepdim)
    else:
        dims, keepdim_ = normalize_dims(_int_dim("aminmax", dim), t.ndim), bool(keepdim)
    for d in dims:
        if t.shape[d] == 0:
            raise IndexError("aminmax(): Expected reduction dim " + str(d) + " to have "
                             "non-zero size.")
    return aminmax_result(apply(AMIN, input, dim=dims, keepdim=keepdim_),
                          apply(AMAX, input, dim=dims, keepdim=keepdim_))


# --- argmax / argmin ---------------------------------------------------------------------

def _arg_rule(name):
    def rule(types, dim, keepdim):
        (t,) = types
        if t.dtype is dtypes.bool_:
            raise RuntimeError(f"{name}(): does not support bool input")
        if dim is None:
            if t.numel == 0:
                raise IndexError(f"{name}(): Expected reduction dim to be specified for "
                                 "input.numel() == 0.")
            shape = (1,) * t.ndim if keepdim else ()
        else:
            dims = (dim,) if t.ndim else ()
            _check_nonempty(name, t.shape, dims)
            shape = reduced_shape(t.shape, dims, keepdim)
        return TensorType(shape, dtypes.int64, t.device)
    rule.__name__ = f"_{name}_rule"
    return rule


def _arg_impl(fn):
    def impl(a, dim, keepdim):
        if dim is None:
            idx = fn(a)
            if keepdim:
                return np.reshape(idx, (1,) * a.ndim)
            return idx if is_array(idx) else np.asarray(idx)   # NumPy gives a scalar
        if a.ndim == 0:
            return np.zeros_like(a, dtype=np.int64)
        return fn(a, axis=dim, keepdims=keepdim)
    impl.__name__ = f"_{fn.__name__}_impl"
    return impl


def _argmax_samples():
    yield Sample((distinct(3, 4),), grad=False)
    yield Sample((distinct(3, 4), 1), grad=False)
    yield Sample((distinct(3, 4),), {"dim": 0, "keepdim": True}, grad=False)
    yield Sample((distinct(3, 4),), {"keepdim": True}, grad=False, note="dim=None keeps ones")
    yield Sample((noncontig(3, 4), -1), grad=False)
    yield Sample((arr(), 0), grad=False)
    yield Sample((arr(0, 3), 1), grad=False)
    yield Sample((np.array([1, 3, 3, 2], dtype=np.int64),), grad=False, note="first of ties")
    yield ErrorSample((arr(0, 3),), {}, IndexError, "Expected reduction dim to be specified")
    yield ErrorSample((arr(0, 3), 0), {}, IndexError, "Expected reduction dim 0 to have")
    yield ErrorSample((bools(3),), {}, RuntimeError, "does not support bool")
    yield ErrorSample((arr(3, 4),), {"dim": (0,)}, TypeError, "must be int")


ARGMAX = register(OpDef("argmax", OpKind.REDUCTION, _arg_rule("argmax"), _arg_impl(np.argmax),
                        None, _argmax_samples, differentiable=False))
ARGMIN = register(OpDef("argmin", OpKind.REDUCTION, _arg_rule("argmin"), _arg_impl(np.argmin),
                        None, _argmax_samples, differentiable=False))


def _arg(op, name, input, dim, keepdim):
    t = type_of(input)
    if dim is not None:
        dim = normalize_dim(_int_dim(name, dim), t.ndim)
    return apply(op, input, dim=dim, keepdim=bool(keepdim))


def argmax(input, dim=None, keepdim=False, *, out=None):
    """Index of the maximum over ``dim`` (of the flattened input when None)."""
    reject_out(out)
    return _arg(ARGMAX, "argmax", input, dim, keepdim)


def argmin(input, dim=None, keepdim=False, *, out=None):
    """Index of the minimum over ``dim`` (of the flattened input when None)."""
    reject_out(out)
    return _arg(ARGMIN, "argmin", input, dim, keepdim)
