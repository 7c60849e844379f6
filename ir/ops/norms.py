"""Norms: ``linalg.vector_norm`` (a REDUCTION primitive), ``linalg.matrix_norm`` and
``linalg.norm`` (which dispatch to vector or matrix norms as PyTorch does).

Matrix norms needing singular values (``'nuc'``, 2, -2) raise NotImplementedError.
"""

from __future__ import annotations

import math

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, check_dtype_arg, register, reject_out, type_of
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, normalize_dims

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INTERNAL = ("linalg_vector_norm", "linalg_norm", "linalg_matrix_norm")
LINALG = {"norm": "linalg_norm", "vector_norm": "linalg_vector_norm",
          "matrix_norm": "linalg_matrix_norm"}


def _ord_str(ord) -> str:
    if math.isinf(ord):
        return "inf" if ord > 0 else "-inf"
    return str(int(ord)) if float(ord).is_integer() else repr(float(ord))


def _vnorm_rule(types, ord, dim, keepdim, dtype):
    (t,) = types
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {t.dtype.torch_name}")
    if dtype is not None:
        if dtype.category != dtypes.CATEGORY_FLOAT:
            raise RuntimeError("linalg.vector_norm: dtype should be floating point or complex, "
                               f"but got {dtype.torch_name}")
        if dtype.itemsize < t.dtype.itemsize:
            raise RuntimeError(f"linalg.vector_norm: the dtype of the input ({t.dtype.torch_name}) "
                               "should be convertible without narrowing to the specified dtype "
                               f"({dtype.torch_name})")
    if ord < 0 or math.isinf(ord):
        for d in dim:
            if t.shape[d] == 0:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {_ord_str(ord)} norm "
                                   f"on the dimension {d}because this dimension is empty and "
                                   "the operation does not have an identity")
    shape = tuple(1 if i in dim else s for i, s in enumerate(t.shape)) if keepdim else \
        tuple(s for i, s in enumerate(t.shape) if i not in dim)
    return TensorType(shape, dtype or t.dtype, t.device)


def _vnorm_impl(x, ord, dim, keepdim, dtype):
    dt = (dtype.np_dtype if dtype is not None else x.dtype)
    dt = np.float32 if dt == np.float16 else dt
    a = np.abs(x.astype(dt))
    with np.errstate(all="ignore"):
        if ord == math.inf:
            return np.max(a, axis=dim, keepdims=keepdim)
        if ord == -math.inf:
            return np.min(a, axis=dim, keepdims=keepdim)
        if ord == 0:
            return np.sum(a != 0, axis=dim, keepdims=keepdim).astype(dt)
        if ord == 1:
            return np.sum(a, axis=dim, keepdims=keepdim)
        if ord == 2:
            return np.sqrt(np.sum(a * a, axis=dim, keepdims=keepdim))
        return np.power(np.sum(np.power(a, ord), axis=dim, keepdims=keepdim), 1.0 / ord)


def _vnorm_vjp(ctx, g):
    from ir import ops
    (x,) = ctx.inputs
    y = ctx.output
    ord, dim, keepdim = ctx.attrs["ord"], ctx.attrs["dim"], ctx.attrs["keepdim"]
    xshape = ctx.input_types[0].shape
    if not keepdim:
        kshape = tuple(1 if i in dim else s for i, s in enumerate(xshape))
        g = ops.reshape(g, kshape)
        y = ops.reshape(y, kshape)
    if ord == 0:
        return (ops.mul(x, 0),)
    if ord == 1:
        return (ops.mul(ops.sign(x), g),)
    zero = ops.eq(y, 0)
    if ord == 2:
        scale = ops.where(zero, 0.0, ops.div(g, y))
        return (ops.mul(x, scale),)
    if math.isinf(ord):
        mask = ops.eq(ops.abs(x), y)
        count = ops.sum(mask, dim, keepdim=True)
        return (ops.mul(ops.sign(x), ops.mul(ops.div(g, count), mask)),)
    ax = ops.abs(x)
    if ord < 1:
        scaled = ops.mul(ops.sign(x), ops.where(ops.eq(x, 0), 0.0, ops.pow(ax, ord - 1)))
        return (ops.mul(ops.mul(scaled, g), ops.pow(y, 1 - ord)),)
    scale = ops.where(zero, 0.0, ops.div(g, ops.pow(y, ord - 1)))
    if ord < 2:
        return (ops.mul(ops.mul(ops.sign(x), ops.pow(ax, ord - 1)), scale),)
    return (ops.mul(ops.mul(x, ops.pow(ax, ord - 2)), scale),)


def _vnorm_samples():
    yield Sample((arr(3, 4),))
    yield Sample((arr(3, 4),), {"dim": 1})
    yield Sample((noncontig(3, 4),), {"ord": 1, "dim": 0, "keepdim": True})
    yield Sample((arr(2, 3, 4),), {"ord": 3, "dim": (0, 2)})
    yield Sample((arr(2, 3, 4),), {"ord": 1.5, "dim": -1})
    yield Sample((arr(2, 3, 4),), {"ord": 0.5, "dim": -1})
    yield Sample((arr(2, 3, 4),), {"ord": -2.0, "dim": -1})
    yield Sample((arr(3, 4),), {"ord": math.inf, "dim": 1})
    yield Sample((arr(3, 4),), {"ord": -math.inf})
    yield Sample((arr(3, 4),), {"ord": 0}, grad=False)
    yield Sample((arr(),),)
    yield Sample((arr(0, 3),), {"dim": 0})
    yield Sample((arr(3, 4),), {"dtype": dtypes.float64})
    yield Sample((arr(3, 4),), {"dim": ()}, note="empty dim list: every dim")
    yield ErrorSample((ints(4),), {}, RuntimeError, "Expected a floating point or complex tensor")
    yield ErrorSample((arr(4, dtype=np.float64),), {"dtype": dtypes.float32}, RuntimeError,
                      "should be convertible without narrowing")
    yield ErrorSample((arr(0, 3),), {"ord": math.inf}, RuntimeError,
                      "cannot compute the inf norm")
    yield ErrorSample((arr(3, 4),), {"dim": 2}, IndexError, "Dimension out of range")


VECTOR_NORM = register(OpDef("linalg_vector_norm", OpKind.REDUCTION, _vnorm_rule, _vnorm_impl,
                             _vnorm_vjp, _vnorm_samples, public="linalg.vector_norm"))


def linalg_vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """The ``ord``-norm of ``x`` over ``dim`` (all dims when None or empty)."""
    reject_out(out)
    if isinstance(ord, str) or isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise TypeError("linalg_vector_norm(): argument 'ord' must be Number, not "
                        f"{type(ord).__name__}")
    t = type_of(x)
    if dim is None or (not isinstance(dim, int) and len(tuple(dim)) == 0):
        dims = tuple(range(t.ndim))
    else:
        dims = normalize_dims(dim, t.ndim)
    if (ord < 0 or math.isinf(ord)) and dim is None and t.numel == 0:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {_ord_str(ord)} norm on an "
                           "empty tensor because the operation does not have an identity")
    return apply(VECTOR_NORM, x, ord=float(ord), dim=dims, keepdim=bool(keepdim),
                 dtype=check_dtype_arg(dtype))


def linalg_matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    """Matrix norms: ``'fro'``, 1, -1, inf, -inf (``'nuc'``, 2, -2 need an SVD: not
    implemented)."""
    from ir import ops
    reject_out(out)
    t = type_of(A)
    if t.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 "
                           "dimensions.")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if len(dims) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                           f"{' '.join(str(d) for d in dims)}")
    d0, d1 = normalize_dims(dims[0], t.ndim)[0], normalize_dims(dims[1], t.ndim)[0]
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dims[0]}, "
                           f"{dims[1]})")
    if ord == "fro":
        return linalg_vector_norm(A, 2, (d0, d1), keepdim, dtype=dtype)
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(f"linalg.matrix_norm: ord={ord!r} needs singular values, "
                                  "which compgrad does not implement yet")
    if isinstance(ord, str) or ord not in (1, -1, math.inf, -math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    if math.isinf(ord):
        d0, d1 = d1, d0
    col = linalg_vector_norm(A, 1, d0, keepdim=True, dtype=dtype)
    red = ops.amax if ord > 0 else ops.amin
    res = red(col, d1, keepdim=True)
    if not keepdim:
        shape = type_of(res).shape
        res = ops.reshape(res, tuple(s for i, s in enumerate(shape) if i not in (d0, d1)))
    return res


def linalg_norm(A, ord=None, dim=None, keepdim=False, *, out=None, dtype=None):
    """``torch.linalg.norm``: a vector norm or a matrix norm, chosen by ``ord`` and ``dim``."""
    reject_out(out)
    t = type_of(A)
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) not in (1, 2):
            raise RuntimeError("linalg.norm: If dim is specified, it must be of length 1 or 2. "
                               f"Got [{', '.join(str(d) for d in dims)}]")
    else:
        dims = None
    if ord is None:
        return linalg_vector_norm(A, 2, dims, keepdim, dtype=dtype)
    if dims is None:
        if t.ndim not in (1, 2):
            raise RuntimeError("linalg.norm: If dim is not specified but ord is, the input must "
                               f"be 1D or 2D. Got {t.ndim}D.")
        dims = tuple(range(t.ndim))
    if len(dims) == 1 and not isinstance(ord, str):
        return linalg_vector_norm(A, ord, dims, keepdim, dtype=dtype)
    return linalg_matrix_norm(A, ord, dims, keepdim, dtype=dtype)
