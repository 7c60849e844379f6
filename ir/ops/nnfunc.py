"""nn.functional math: softmax, log_softmax, linear, one_hot, normalize, cosine_similarity,
pairwise_distance, embedding, dropout.

softmax, log_softmax, one_hot and embedding are primitives; the rest are
compositions of ops (so their gradients come from those ops). ``dropout``
here takes an explicit generator; ``compgrad.nn.functional`` wraps it with the
default generator and PyTorch's signature.
"""

from __future__ import annotations

import warnings

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    arange_like,
    check_dtype_arg,
    common_device,
    is_scalar,
    register,
    reject_out,
    type_of,
)
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, broadcast_shapes, normalize_dim

__all__ = ["softmax", "log_softmax"]
METHODS = ("softmax", "log_softmax")
INPLACE: tuple[str, ...] = ()
FUNCTIONAL = ("softmax", "log_softmax", "linear", "one_hot", "normalize", "cosine_similarity",
              "pairwise_distance", "embedding")
INTERNAL = ("dropout",)


# --- softmax / log_softmax ---------------------------------------------------------------

def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_rule_for(kernel: str):
    def rule(types, dim, dtype):
        (t,) = types
        if dtype is None and t.dtype.category != dtypes.CATEGORY_FLOAT:
            last = "lastdim_" if dim == t.ndim - 1 or t.ndim == 0 else ""
            raise NotImplementedError(f'"{kernel}_{last}kernel_impl" not implemented for '
                                      f"'{t.dtype.torch_name}'")
        return TensorType(t.shape, dtype or t.dtype, t.device)

    rule.__name__ = f"_{kernel}_rule"
    return rule


def _softmax_prepare(x, dim, dtype):
    dt = dtype.np_dtype if dtype is not None else x.dtype
    dt = np.dtype(np.float32) if dt == np.float16 else dt
    x = x.astype(dt)
    if x.ndim == 0:
        x = x.reshape(1)
        dim = 0
    return x, dim


def _softmax_impl(x, dim, dtype):
    shape = x.shape
    x, dim = _softmax_prepare(x, dim, dtype)
    if x.size == 0:
        return x.reshape(shape)
    # (NumPy's floating-point errors are ignored by every caller of a reference: ir.fperr)
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return (e / np.sum(e, axis=dim, keepdims=True)).reshape(shape)


def _log_softmax_impl(x, dim, dtype):
    shape = x.shape
    x, dim = _softmax_prepare(x, dim, dtype)
    if x.size == 0:
        return x.reshape(shape)
    s = x - np.max(x, axis=dim, keepdims=True)   # (errors ignored by the caller: ir.fperr)
    return (s - np.log(np.sum(np.exp(s), axis=dim, keepdims=True))).reshape(shape)


def _softmax_vjp(ctx, g):
    from ir.ops.elementwise import mul, sub
    from ir.ops.reduce import sum as sum_
    y = ctx.output
    dims = () if type_of(y).ndim == 0 else (ctx.attrs["dim"],)
    return (mul(y, sub(g, sum_(mul(g, y), dims, keepdim=True))),)


def _log_softmax_vjp(ctx, g):
    from ir.ops.elementwise import exp, mul, sub
    from ir.ops.reduce import sum as sum_
    y = ctx.output
    dims = () if type_of(y).ndim == 0 else (ctx.attrs["dim"],)
    return (sub(g, mul(exp(y), sum_(g, dims, keepdim=True))),)


def _softmax_samples():
    yield Sample((arr(3, 4), 1))
    yield Sample((arr(3, 4), 0))
    yield Sample((noncontig(2, 3, 4), -1))
    yield Sample((arr(2, 3, 4, low=-30, high=30), 1), note="large logits (stability)")
    yield Sample((arr(), 0))
    yield Sample((arr(0, 3), 0))
    yield Sample((arr(3, 4),), {"dim": 1, "dtype": dtypes.float64})
    yield Sample((arr(3, 4, dtype=np.float16), 1), grad=False)
    yield Sample((ints(3, 4), 1), {"dtype": dtypes.float32}, grad=False)
    yield ErrorSample((ints(3, 4), 1), {}, NotImplementedError, "not implemented for 'Long'")
    yield ErrorSample((arr(3, 4), 2), {}, IndexError, "Dimension out of range")


SOFTMAX = register(OpDef("softmax", OpKind.OPAQUE, _softmax_rule_for("softmax"), _softmax_impl,
                         _softmax_vjp, _softmax_samples, public="nn.functional.softmax"))
LOG_SOFTMAX = register(OpDef("log_softmax", OpKind.OPAQUE, _softmax_rule_for("log_softmax"),
                             _log_softmax_impl, _log_softmax_vjp, _softmax_samples,
                             public="nn.functional.log_softmax"))


def _softmax_args(name, input, dim, stacklevel, dtype):
    t = type_of(input)
    if dim is None:
        dim = _get_softmax_dim(name, t.ndim, stacklevel + 1)
    dim = normalize_dim(dim, t.ndim)
    return dim, check_dtype_arg(dtype)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed stably; ``dtype`` casts first)."""
    dim, dtype = _softmax_args("softmax", input, dim, _stacklevel, dtype)
    return apply(SOFTMAX, input, dim=dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably."""
    dim, dtype = _softmax_args("log_softmax", input, dim, _stacklevel, dtype)
    return apply(LOG_SOFTMAX, input, dim=dim, dtype=dtype)


# --- one_hot -----------------------------------------------------------------------------

def _one_hot_rule(types, num_classes, ignore_index):
    (t,) = types
    if t.dtype is not dtypes.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    return TensorType(t.shape + (num_classes,), dtypes.int64, t.device)


def _one_hot_impl(x, num_classes, ignore_index):
    if x.size:
        if x.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if x.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    out = (x[..., None] == arange_like(num_classes, x)).astype(np.int64)
    if ignore_index is not None:
        out[x == ignore_index] = 0
    return out


def _one_hot_samples():
    yield Sample((np.array([0, 2, 1]),), grad=False)
    yield Sample((np.array([[0, 2], [1, 1]]), 5), grad=False)
    yield Sample((np.array(2), 3), grad=False)
    yield Sample((np.zeros(0, dtype=np.int64), 3), grad=False)
    yield ErrorSample((np.array([0, 2], dtype=np.int32), 5), {}, RuntimeError,
                      "one_hot is only applicable to index tensor of type LongTensor.")
    yield ErrorSample((np.array([0, -2, 1]), 5), {}, RuntimeError,
                      "Class values must be non-negative.")
    yield ErrorSample((np.array([0, 7, 1]), 5), {}, RuntimeError,
                      "Class values must be smaller than num_classes.")
    yield ErrorSample((np.zeros(0, dtype=np.int64),), {}, RuntimeError,
                      "Can not infer total number of classes from empty tensor.")


ONE_HOT = register(OpDef("one_hot", OpKind.INDEXING, _one_hot_rule, _one_hot_impl, None,
                         _one_hot_samples, public="nn.functional.one_hot",
                         differentiable=False))


def one_hot(tensor, num_classes=-1):
    """int64 one-hot encoding with ``num_classes`` (inferred from the maximum when -1)."""
    from ir import ops
    t = type_of(tensor)
    if t.dtype is not dtypes.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    num_classes = int(num_classes)
    if num_classes == -1:
        if t.numel == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        if int(ops.amin(tensor)) < 0:  # reads values: the class count decides the shape
            raise RuntimeError("Class values must be non-negative.")
        num_classes = int(ops.amax(tensor)) + 1
    elif num_classes < 0:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return apply(ONE_HOT, tensor, num_classes=num_classes, ignore_index=None)


# --- embedding ---------------------------------------------------------------------------

def _embedding_rule(types, padding_idx):
    device = common_device(types)
    idx, w = types
    if idx.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got torch."
                           f"{idx.dtype.torch_name}Tensor instead (while checking arguments "
                           "for embedding)")
    if w.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    return TensorType(idx.shape + (w.shape[1],), w.dtype, device)


def _embedding_impl(idx, w, padding_idx):
    if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
        raise IndexError("index out of range in self")
    return w[idx]


def _embedding_vjp(ctx, g):
    from ir.ops.contract import einsum
    from ir.ops.elementwise import to_dtype
    idx = ctx.inputs[0]   # the weight's value is not needed
    n = ctx.input_types[1].shape[0]
    hot = apply(ONE_HOT, to_dtype(idx, dtypes.int64), num_classes=n,
                ignore_index=ctx.attrs["padding_idx"])
    return None, einsum("...n,...d->nd", to_dtype(hot, type_of(g).dtype), g)


def _embedding_samples():
    yield Sample((np.array([1, 2, 1]), arr(4, 3)))
    # padding rows take no gradient although the forward reads them: no finite-difference check
    # (tests/ops/test_linalg.py compares these gradients with PyTorch)
    yield Sample((np.array([[0, 3], [3, 3]]), noncontig(4, 3)), {"padding_idx": 3}, grad=False)
    yield Sample((np.array([1, 0], dtype=np.int32), arr(4, 3)), {"padding_idx": -4}, grad=False)
    yield Sample((np.array([1, 0, 1], dtype=np.int32), arr(4, 3)))
    yield Sample((np.array(2), arr(4, 3)))
    yield Sample((np.zeros((0, 2), dtype=np.int64), arr(4, 3)))
    yield Sample((np.array([1, 2]), ints(4, 3)), grad=False)
    yield ErrorSample((np.array([1.0, 2.0]), arr(3, 4)), {}, RuntimeError,
                      "Expected tensor for argument #1 'indices'")
    yield ErrorSample((np.array([1, 5]), arr(3, 4)), {}, IndexError, "index out of range")
    yield ErrorSample((np.array([1, 2]), arr(3, 4)), {"padding_idx": 5}, AssertionError,
                      "Padding_idx must be within num_embeddings")
    yield ErrorSample((np.array([1, 2]), arr(3)), {}, RuntimeError, "'weight' must be 2-D")


EMBEDDING = register(OpDef("embedding", OpKind.INDEXING, _embedding_rule, _embedding_impl,
                           _embedding_vjp, _embedding_samples,
                           public="nn.functional.embedding"))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by ``input``; the ``padding_idx`` row takes no gradient.

    ``max_norm`` (in-place renormalisation of ``weight``), ``scale_grad_by_freq`` and
    ``sparse`` gradients are not supported (NotImplementedError).
    """
    if max_norm is not None:
        raise NotImplementedError("embedding(max_norm=...) is not supported by compgrad")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    wt = type_of(weight)
    if padding_idx is not None:
        n = wt.shape[0] if wt.ndim else 0
        if padding_idx > 0:
            if padding_idx >= n:
                raise AssertionError("Padding_idx must be within num_embeddings")
        elif padding_idx < 0:
            if padding_idx < -n:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = n + padding_idx
        padding_idx = int(padding_idx)
    return apply(EMBEDDING, input, weight, padding_idx=padding_idx)


# --- linear ------------------------------------------------------------------------------

def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` (weight is ``[out_features, in_features]``)."""
    from ir.ops.elementwise import add
    from ir.ops.linalg import addmm, matmul, matrix_transpose
    ti, tw = type_of(input), type_of(weight)
    wt = matrix_transpose(weight) if tw.ndim == 2 else weight
    if bias is not None and ti.ndim == 2 and tw.ndim == 2:
        return addmm(bias, input, wt)
    out = matmul(input, wt)
    return out if bias is None else add(out, bias)


# --- normalize / cosine_similarity / pairwise_distance -----------------------------------

def _clamp_min(x, eps):
    from ir import ops
    return ops.where(ops.lt(x, eps), eps, x)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``input / max(||input||_p, eps)`` along ``dim``."""
    from ir.ops.elementwise import div
    from ir.ops.norms import linalg_vector_norm
    reject_out(out)
    denom = _clamp_min(linalg_vector_norm(input, p, dim, keepdim=True), eps)
    return div(input, denom)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast)."""
    from ir import ops
    from ir.ops.norms import linalg_vector_norm
    t1, t2 = type_of(x1), type_of(x2)
    common = dtypes.result_type(t1, t2)
    if common.category != dtypes.CATEGORY_FLOAT:
        raise RuntimeError("expected common dtype to be floating point, yet common dtype is "
                           f"{common.torch_name}")
    if t1.dtype.category != dtypes.CATEGORY_FLOAT:
        x1 = ops.to_dtype(x1, common)
    if t2.dtype.category != dtypes.CATEGORY_FLOAT:
        x2 = ops.to_dtype(x2, common)
    shape = broadcast_shapes(t1.shape, t2.shape)
    if t1.shape != shape:
        x1 = ops.expand(x1, shape)
    if t2.shape != shape:
        x2 = ops.expand(x2, shape)
    n1 = _clamp_min(linalg_vector_norm(x1, 2, dim, keepdim=True), eps)
    n2 = _clamp_min(linalg_vector_norm(x2, 2, dim, keepdim=True), eps)
    return ops.sum(ops.mul(ops.div(x1, n1), ops.div(x2, n2)), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``||x1 - x2 + eps||_p`` over the last dim."""
    from ir import ops
    from ir.ops.norms import linalg_vector_norm
    ndim = max(type_of(x1).ndim, type_of(x2).ndim)
    diff = ops.add(ops.sub(x1, x2), eps)
    return linalg_vector_norm(diff, p, ndim - 1 if ndim else None, keepdim=keepdim)


# --- dropout -----------------------------------------------------------------------------

def dropout(input, p=0.5, training=True, *, generator):
    """Zero elements with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    ``generator`` is anything with ``next_key()``; the mask comes from
    ``bernoulli`` (so the same seed gives the same mask eagerly and compiled).
    """
    from ir import ops
    if is_scalar(input) or input is None:
        raise TypeError(f"dropout(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    t = type_of(input)
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{t.dtype.torch_name}")
    if p == 1:
        return ops.mul(input, 0.0)
    mask = ops.bernoulli(input, generator, p=1.0 - p)
    return ops.mul(ops.mul(input, mask), 1.0 / (1.0 - p))
