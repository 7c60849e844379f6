"""Linear algebra: the matmul family (matmul, mm, bmm, mv, dot, outer, addmm, addmv,
baddbmm). einsum and tensordot are in ``contract.py``, norms in ``norms.py``.

matmul-like ops are kind MATMUL and, like PyTorch's kernels, require operands of
one dtype; bool is refused with PyTorch's NotImplementedError. The references
use ``np.matmul`` (BLAS) and compute float16 in float32. VJPs are written with
the same ops plus a matrix transpose.
"""

from __future__ import annotations

import math

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    common_device,
    is_array,
    is_scalar,
    register,
    reject_out,
    type_of,
)
from ir.ops.elementwise import mul
from ir.ops.movement import reshape
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, broadcast_shapes, shape_str

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "vdot", "outer", "ger", "addmm", "addmv",
           "baddbmm"]
METHODS = ("matmul", "mm", "bmm", "mv", "dot", "vdot", "outer", "ger", "addmm", "addmv",
           "baddbmm")
INPLACE = ("addmm", "addmv", "baddbmm")
INTERNAL = ("matrix_transpose",)

# PyTorch names dtypes by their C++ types in some messages
_CPP = {"float16": "c10::Half", "float32": "float", "float64": "double", "int8": "signed char",
        "int16": "short int", "int32": "int", "int64": "long int", "uint8": "unsigned char",
        "bool": "bool"}


def _compute_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dt == np.float16 else dt


def _np_matmul(a, b):
    dt = _compute_dtype(a.dtype)
    return blas_matmul(a.astype(dt, copy=False), b.astype(dt, copy=False))


# --- the layout swap ---------------------------------------------------------------------
# OpenBLAS is slow on a product of few rows whose right factor is a transposed matrix:
# Linear's forward, ``x @ weight.T`` at a small batch (packing the transposed weight
# dominates when there are few rows to amortise it over). Its transpose, ``weight @ x.T``,
# is fast: [32,784] @ [784,512] takes 264 us directly and 184 us swapped and copied back
# to row-major (two BLAS threads; codegen/products.py has the full table). Below about
# 32k elements in the right factor the copy costs more than the swap gains.

SWAP_MAX_ROWS = 64          # products of at most this many rows may be swapped
SWAP_MIN_FACTOR = 1 << 15   # ... when the right factor has at least this many elements


def swap_may_pay(rows: int, inner: int, cols: int) -> bool:
    """Whether a ``[rows, inner] @ [inner, cols]`` product is computed as its transpose
    when its right factor is a transposed matrix (:func:`is_transposed_matrix`): few rows,
    fewer than its columns, and a right factor big enough for the swap to pay."""
    return rows <= SWAP_MAX_ROWS and rows < cols and inner * cols >= SWAP_MIN_FACTOR


def is_transposed_matrix(x) -> bool:
    """Whether ``x`` is an array holding a matrix column-major (and not also row-major):
    the transpose of a row-major one, such as ``weight.T``."""
    if not is_array(x) or x.ndim != 2:
        return False
    flags = x.flags
    return flags.f_contiguous and not flags.c_contiguous


def blas_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b)`` of operands of one dtype; a 2-D product that the layout swap
    speeds up (:func:`swap_may_pay`) is computed as ``(b.T @ a.T).T`` and copied back to
    row-major, so every result is a new row-major array. (BLAS may round the swapped
    product differently in the last bit: the same dot products, blocked in another
    order. Compiled programs swap on the same rule, so on the same BLAS thread count
    they give eager's bits.)"""
    if a.ndim == 2 and b.ndim == 2 and swap_may_pay(a.shape[0], a.shape[1], b.shape[1]) \
            and type(a) is np.ndarray and type(b) is np.ndarray and is_transposed_matrix(b):
        return swapped_matmul_into(np.empty((a.shape[0], b.shape[1]), a.dtype), a, b)
    return np.matmul(a, b)


def swapped_matmul_into(out: np.ndarray, a: np.ndarray, b: np.ndarray,
                        scratch: np.ndarray | None = None) -> np.ndarray:
    """``out[...] = a @ b`` computed as its transpose, ``b.T @ a.T`` (views: BLAS gets the
    transpose flags), into ``scratch`` (``[N, M]``; a new array if None), then copied into
    the row-major ``out``: the layout swap, as the reference and the compiled step runner
    both compute it. Returns ``out``."""
    np.copyto(out, np.matmul(b.T, a.T, out=scratch).T)
    return out


def _require_tensor(x, fn: str, arg: str, pos: int):
    if is_scalar(x) or x is None:
        raise TypeError(f"{fn}(): argument '{arg}' (position {pos}) must be Tensor, not "
                        f"{type(x).__name__}")


def _check_operands(fn: str, out, operands: dict) -> None:
    """PyTorch's checks of ``fn``'s tensor arguments: no ``out=``, and each of
    ``operands`` (argument name -> value, in positional order) a Tensor."""
    reject_out(out)
    for pos, (arg, x) in enumerate(operands.items(), 1):
        _require_tensor(x, fn, arg, pos)


def _apply_product(op: OpDef, fn: str, out, operands: dict):
    """The public function ``fn`` of a product op: its arguments checked
    (``_check_operands``), then ``op`` applied to ``operands`` in order."""
    _check_operands(fn, out, operands)
    return apply(op, *operands.values())


def _no_bool(dtype, kernel: str):
    if dtype is dtypes.bool_:
        raise NotImplementedError(f'"{kernel}" not implemented for \'Bool\'')


def matrix_transpose(x):
    """``x`` with its last two dims swapped (``x.mT``), for VJP rules."""
    from ir import ops
    transpose = getattr(ops, "transpose", None)
    if transpose is not None:
        return transpose(x, -2, -1)
    from ir.ops.contract import einsum
    return einsum("...ij->...ji", x)


# --- matmul ------------------------------------------------------------------------------

def _mm_dtype_check(a, b):
    if a.dtype is not b.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: "
                           f"{_CPP[a.dtype.name]} != {_CPP[b.dtype.name]}")


def _mm_shape_check(n, k, k2, m):
    if k != k2:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({n}x{k} and {k2}x{m})")


def _mv_checks(a, b, rows, cols):
    if a.dtype is not b.dtype:
        big = dtypes.promote_types(a.dtype, b.dtype).torch_name
        raise RuntimeError("addmv input tensors must have the same dtype, but got "
                           f"{big}, {a.dtype.torch_name}, and {b.dtype.torch_name}")
    _no_bool(a.dtype, "addmv_impl_cpu")
    if cols != b.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{cols}), "
                           f"vec ({b.shape[0]})")


def _dot_checks(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.dtype is not b.dtype:
        raise RuntimeError("dot : expected both vectors to have same dtype, but found "
                           f"{a.dtype.torch_name} and {b.dtype.torch_name}")
    if a.shape[0] != b.shape[0]:
        n, m = a.shape[0], b.shape[0]
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to "
                           "have the same number of elements, but got "
                           f"{n} and {m} elements respectively")
    _no_bool(a.dtype, "dot")


def _bmm_shape_check(batch, k, batch2, k2):
    if (batch, k) != (batch2, k2):
        raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{batch}, {k}] but got: [{batch2}, {k2}].")


def _matmul_rule(types):
    device = common_device(types)
    a, b = types
    da, db = a.ndim, b.ndim
    if da == 0 or db == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                           f"{da}D and {db}D")
    if da == 1 and db == 1:
        _dot_checks(a, b)
        shape = ()
    elif da >= 2 and db == 1:
        rows = math.prod(a.shape[:-1])
        _mv_checks(a, b, rows, a.shape[-1])
        shape = a.shape[:-1]
    elif db == 2 and da in (1, 2) or (da >= 3 and db == 2):
        _mm_dtype_check(a, b)
        n = math.prod(a.shape[:-1]) if da >= 2 else 1
        _mm_shape_check(n, a.shape[-1], b.shape[0], b.shape[1])
        _no_bool(a.dtype, "addmm_impl_cpu_")
        shape = a.shape[:-1] + b.shape[1:]
    else:  # batched, with broadcasting of the batch dims
        if a.dtype is not b.dtype:
            raise RuntimeError(f"expected scalar type {a.dtype.torch_name} but found "
                               f"{b.dtype.torch_name}")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        nb = math.prod(batch)
        _bmm_shape_check(nb, a.shape[-1], nb, b.shape[-2])
        _no_bool(a.dtype, "bmm")
        shape = batch + (a.shape[-2:-1] if da >= 2 else ()) + b.shape[-1:]
    return TensorType(tuple(shape), a.dtype, device)


def _matmul_impl(a, b):
    return _np_matmul(a, b)


def _matmul_vjp(ctx, g):
    need = ctx.needs_input_grad
    ta, tb = ctx.input_types
    # each operand's value is read only for the other's gradient
    if ta.ndim == 1 and tb.ndim == 1:
        return (mul(g, ctx.inputs[1]) if need[0] else None,
                mul(g, ctx.inputs[0]) if need[1] else None)
    gshape = type_of(g).shape
    G = g
    if ta.ndim == 1:
        G = reshape(G, gshape[:-1] + (1,) + gshape[-1:])
    if tb.ndim == 1:
        G = reshape(G, type_of(G).shape + (1,))
    ga = gb = None
    if need[0]:
        b = ctx.inputs[1]
        B = b if tb.ndim >= 2 else reshape(b, (tb.shape[0], 1))
        ga = matmul(G, matrix_transpose(B))
        if ta.ndim == 1:
            ga = reshape(ga, type_of(ga).shape[:-2] + type_of(ga).shape[-1:])
    if need[1]:
        a = ctx.inputs[0]
        A = a if ta.ndim >= 2 else reshape(a, (1, ta.shape[0]))
        if ta.ndim == 2 and tb.ndim == 2:
            gb = _right_factor_grad(matmul, A, G, ctx.inputs, 1)
        else:
            gb = matmul(matrix_transpose(A), G)
        if tb.ndim == 1:
            gb = reshape(gb, type_of(gb).shape[:-1])
    return ga, gb


def _right_factor_grad(product, a, g, inputs, j: int):
    """The gradient of ``b = inputs[j]`` in the matrix product ``a @ b``: ``a^T g``.

    When ``b`` is a transposed view (Linear's ``weight.t()``) it is computed as
    ``(g^T a)^T``, which has ``b``'s layout, so the weight's own gradient comes out
    row-major and is stored as ``.grad`` without a copy (PyTorch's
    ``mm_mat2_backward`` makes the same choice)."""
    if _stored_transposed(inputs, j):
        return matrix_transpose(product(matrix_transpose(g), a))
    return product(matrix_transpose(a), g)


def _stored_transposed(inputs, i: int) -> bool:
    """Whether saved input ``i`` is a column-major matrix in memory (eager autograd
    knows; a symbolic graph has no layout, and says no)."""
    stored_array = getattr(inputs, "stored_array", None)
    return stored_array is not None and is_transposed_matrix(stored_array(i))


def _matmul_samples():
    yield Sample((arr(3), arr(3, seed=1)), note="dot")
    yield Sample((arr(2, 3), arr(3, seed=1)), note="mv")
    yield Sample((arr(3), arr(3, 4, seed=1)), note="vector @ matrix")
    yield Sample((arr(2, 3), arr(3, 4, seed=1)))
    yield Sample((noncontig(2, 3), noncontig(3, 4, seed=1)), note="non-contiguous")
    yield Sample((arr(2, 2, 3), arr(3, 4, seed=1)), note="folded N-D @ 2-D")
    yield Sample((arr(2, 2, 3), arr(3, seed=1)), note="folded N-D @ 1-D")
    yield Sample((arr(3), arr(2, 3, 4, seed=1)), note="1-D @ N-D")
    yield Sample((arr(2, 3), arr(2, 3, 4, seed=1)), note="2-D @ N-D")
    yield Sample((arr(2, 1, 2, 3), arr(3, 3, 4, seed=1)), note="batch broadcasting")
    yield Sample((arr(2, 3, 4, dtype=np.float64), arr(2, 4, 2, dtype=np.float64, seed=1)))
    yield Sample((arr(0, 3), arr(3, 2, seed=1)), note="empty")
    yield Sample((arr(2, 0), arr(0, 3, seed=1)), note="empty contraction")
    yield Sample((ints(2, 3), ints(3, 2, seed=1)), grad=False)
    yield Sample((ints(4), ints(4, seed=1)), grad=False)
    yield Sample((arr(2, 3, dtype=np.float16), arr(3, 4, dtype=np.float16, seed=1)),
                 grad=False, rtol=1e-2, atol=1e-2)
    yield ErrorSample((arr(), arr(3)), {}, RuntimeError, "need to be at least 1D, but they are "
                      "0D and 1D")
    yield ErrorSample((arr(2, 3), arr(4, 5)), {}, RuntimeError,
                      "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")
    yield ErrorSample((arr(2, 3), arr(4)), {}, RuntimeError,
                      "size mismatch, got input (2), mat (2x3), vec (4)")
    yield ErrorSample((arr(3), arr(4)), {}, RuntimeError, "inconsistent tensor size")
    yield ErrorSample((arr(2, 2, 3), arr(2, 4, 5)), {}, RuntimeError,
                      "Expected size for first two dimensions of batch2 tensor to be: [2, 3]")
    yield ErrorSample((arr(2, 2, 3), arr(3, 3, 5)), {}, RuntimeError, "must match the size")
    yield ErrorSample((arr(2, 3), arr(3, 4, dtype=np.float64)), {}, RuntimeError,
                      "expected m1 and m2 to have the same dtype, but got: float != double")
    yield ErrorSample((bools(2, 3), bools(3, 2)), {}, NotImplementedError, "Bool")
    yield ErrorSample((arr(2, 3), 2.0), {}, TypeError, "must be Tensor")


def _matmul_direct(types: tuple):
    # operands in their compute dtype: blas_matmul, as _np_matmul calls it
    a, b = types
    return blas_matmul if a.dtype is b.dtype and a.dtype is not dtypes.float16 else None


MATMUL = register(OpDef("matmul", OpKind.MATMUL, _matmul_rule, _matmul_impl, _matmul_vjp,
                        _matmul_samples, fresh_result=True, direct=_matmul_direct))


def matmul(input, other, *, out=None):
    """Matrix product with NumPy/PyTorch semantics for every rank combination."""
    return _apply_product(MATMUL, "matmul", out, {"input": input, "other": other})


# --- mm / bmm ----------------------------------------------------------------------------

def _mm_rule(types):
    device = common_device(types)
    a, b = types
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    _mm_dtype_check(a, b)
    _mm_shape_check(a.shape[0], a.shape[1], b.shape[0], b.shape[1])
    _no_bool(a.dtype, "addmm_impl_cpu_")
    return TensorType((a.shape[0], b.shape[1]), a.dtype, device)


def _mm_vjp(ctx, g):
    return _mm_grads(g, ctx, 0)


def _mm_samples():
    yield Sample((arr(2, 3), arr(3, 4, seed=1)))
    yield Sample((noncontig(2, 3), arr(3, 4, seed=1)))
    yield Sample((arr(0, 3), arr(3, 4, seed=1)))
    yield Sample((ints(2, 3), ints(3, 4, seed=1)), grad=False)
    yield ErrorSample((arr(2, 3), arr(4, 5)), {}, RuntimeError,
                      "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")
    yield ErrorSample((arr(2, 3), arr(3)), {}, RuntimeError, "mat2 must be a matrix")
    yield ErrorSample((arr(3), arr(3, 3)), {}, RuntimeError, "self must be a matrix")
    yield ErrorSample((arr(2, 3), arr(3, 4, dtype=np.float64)), {}, RuntimeError,
                      "expected m1 and m2 to have the same dtype")
    yield ErrorSample((bools(3, 3), bools(3, 3)), {}, NotImplementedError, "Bool")


MM = register(OpDef("mm", OpKind.MATMUL, _mm_rule, _matmul_impl, _mm_vjp, _mm_samples,
                        fresh_result=True, direct=_matmul_direct))


def mm(input, mat2, *, out=None):
    """Product of two matrices (no broadcasting)."""
    return _apply_product(MM, "mm", out, {"input": input, "mat2": mat2})


def _bmm_rule(types):
    device = common_device(types)
    a, b = types
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected scalar type {a.dtype.torch_name} but found "
                           f"{b.dtype.torch_name}")
    _bmm_shape_check(a.shape[0], a.shape[2], b.shape[0], b.shape[1])
    _no_bool(a.dtype, "bmm")
    return TensorType((a.shape[0], a.shape[1], b.shape[2]), a.dtype, device)


def _bmm_vjp(ctx, g):
    return _bmm_grads(g, ctx, 0)


def _bmm_samples():
    yield Sample((arr(2, 3, 4), arr(2, 4, 5, seed=1)))
    yield Sample((noncontig(2, 3, 4), arr(2, 4, 5, seed=1)))
    yield Sample((arr(0, 3, 4), arr(0, 4, 5, seed=1)))
    yield Sample((ints(2, 3, 4), ints(2, 4, 5, seed=1)), grad=False)
    yield ErrorSample((arr(3, 4), arr(3, 4)), {}, RuntimeError, "batch1 must be a 3D tensor")
    yield ErrorSample((arr(2, 3, 4), arr(2, 4)), {}, RuntimeError, "batch2 must be a 3D tensor")
    yield ErrorSample((arr(2, 3, 4), arr(3, 4, 5)), {}, RuntimeError,
                      "Expected size for first two dimensions of batch2 tensor to be: [2, 4] "
                      "but got: [3, 4].")
    yield ErrorSample((arr(2, 3, 4), arr(2, 4, 5, dtype=np.float64)), {}, RuntimeError,
                      "expected scalar type Float but found Double")


BMM = register(OpDef("bmm", OpKind.MATMUL, _bmm_rule, _matmul_impl, _bmm_vjp, _bmm_samples,
                        fresh_result=True, direct=_matmul_direct))


def bmm(input, mat2, *, out=None):
    """Batched product of ``[b, n, k]`` and ``[b, k, m]`` tensors."""
    return _apply_product(BMM, "bmm", out, {"input": input, "mat2": mat2})


# --- mv / dot / outer --------------------------------------------------------------------

def _mv_rule(types):
    device = common_device(types)
    a, b = types
    if a.ndim != 2 or b.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {a.ndim}, {b.ndim}")
    _mv_checks(a, b, a.shape[0], a.shape[1])
    return TensorType((a.shape[0],), a.dtype, device)


def _mv_vjp(ctx, g):
    return _mv_grads(g, ctx, 0)


def _mv_samples():
    yield Sample((arr(2, 3), arr(3, seed=1)))
    yield Sample((noncontig(2, 3), noncontig(3, seed=1)))
    yield Sample((arr(0, 3), arr(3, seed=1)))
    yield Sample((ints(2, 3), ints(3, seed=1)), grad=False)
    yield ErrorSample((arr(2, 3), arr(5)), {}, RuntimeError,
                      "size mismatch, got input (2), mat (2x3), vec (5)")
    yield ErrorSample((arr(2, 3), arr(3, 1)), {}, RuntimeError,
                      "vector + matrix @ vector expected, got 1, 2, 2")
    yield ErrorSample((arr(2, 3), arr(3, dtype=np.float64)), {}, RuntimeError,
                      "addmv input tensors must have the same dtype")


MV = register(OpDef("mv", OpKind.MATMUL, _mv_rule, _matmul_impl, _mv_vjp, _mv_samples,
                        fresh_result=True, direct=_matmul_direct))


def mv(input, vec, *, out=None):
    """Matrix-vector product."""
    return _apply_product(MV, "mv", out, {"input": input, "vec": vec})


def _dot_rule(types):
    device = common_device(types)
    a, b = types
    _dot_checks(a, b)
    return TensorType((), a.dtype, device)


def _dot_impl(a, b):
    dt = _compute_dtype(a.dtype)
    out = np.dot(a.astype(dt, copy=False), b.astype(dt, copy=False))
    return out if is_array(out) else np.asarray(out)   # NumPy gives a scalar


def _dot_vjp(ctx, g):
    need = ctx.needs_input_grad
    return (mul(g, ctx.inputs[1]) if need[0] else None,
            mul(g, ctx.inputs[0]) if need[1] else None)


def _dot_samples():
    yield Sample((arr(3), arr(3, seed=1)))
    yield Sample((noncontig(4), arr(4, seed=1)))
    yield Sample((arr(0), arr(0, seed=1)))
    yield Sample((ints(5), ints(5, seed=1)), grad=False)
    yield ErrorSample((arr(2, 2), arr(2, 2)), {}, RuntimeError,
                      "1D tensors expected, but got 2D and 2D tensors")
    yield ErrorSample((arr(3), arr(3, dtype=np.float64)), {}, RuntimeError,
                      "dot : expected both vectors to have same dtype, but found Float and Double")
    yield ErrorSample((arr(3), arr(4)), {}, RuntimeError, "inconsistent tensor size")
    yield ErrorSample((bools(3), bools(3)), {}, NotImplementedError, "Bool")


DOT = register(OpDef("dot", OpKind.MATMUL, _dot_rule, _dot_impl, _dot_vjp, _dot_samples))


def dot(input, tensor, *, out=None):
    """Inner product of two 1-D tensors of one dtype."""
    return _apply_product(DOT, "dot", out, {"input": input, "tensor": tensor})


def vdot(input, other, *, out=None):
    """``dot`` with the first argument conjugated (the same as ``dot`` for real tensors)."""
    return _apply_product(DOT, "vdot", out, {"input": input, "other": other})


def _outer_rule(types):
    device = common_device(types)
    a, b = types
    if a.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument self, but got {a.ndim}-D")
    if b.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument vec2, but got {b.ndim}-D")
    dtype = dtypes.result_type(a, b)
    return TensorType((a.shape[0], b.shape[0]), dtype, device)


def _outer_impl(a, b):
    return np.multiply.outer(a, b)


def _outer_vjp(ctx, g):
    from ir.ops.reduce import sum as sum_
    need = ctx.needs_input_grad
    n = ctx.input_types[0].shape[0]
    return (sum_(mul(g, ctx.inputs[1]), 1) if need[0] else None,
            sum_(mul(g, reshape(ctx.inputs[0], (n, 1))), 0) if need[1] else None)


def _outer_samples():
    yield Sample((arr(3), arr(4, seed=1)))
    yield Sample((noncontig(3), arr(2, seed=1)))
    yield Sample((arr(0), arr(2, seed=1)))
    yield Sample((arr(3), arr(2, dtype=np.float64, seed=1)), note="promotes")
    yield Sample((ints(3), arr(2, seed=1)), grad=False)
    yield Sample((bools(3), bools(2, seed=1)), grad=False)
    yield ErrorSample((arr(2, 2), arr(2)), {}, RuntimeError,
                      "outer: Expected 1-D argument self, but got 2-D")


OUTER = register(OpDef("outer", OpKind.MATMUL, _outer_rule, _outer_impl, _outer_vjp,
                       _outer_samples))


def outer(input, vec2, *, out=None):
    """Outer product of two vectors (types promote, as for ``mul``)."""
    return _apply_product(OUTER, "outer", out, {"input": input, "vec2": vec2})


ger = outer


# --- addmm / addmv / baddbmm -------------------------------------------------------------

def _expand_check(t, target):
    """PyTorch's expand error when ``t`` does not broadcast to ``target``."""
    shape = t.shape
    if len(shape) > len(target):
        raise RuntimeError(
            f"expand({t.dtype.torch_name}Type{{{shape_str(shape)}}}, size={shape_str(target)}): "
            f"the number of sizes provided ({len(target)}) must be greater or equal to the "
            f"number of dimensions in the tensor ({len(shape)})")
    lead = len(target) - len(shape)
    for i, s in enumerate(shape):
        if s != 1 and s != target[lead + i]:
            raise RuntimeError(
                f"The expanded size of the tensor ({target[lead + i]}) must match the existing "
                f"size ({s}) at non-singleton dimension {lead + i}.  Target sizes: "
                f"{shape_str(target)}.  Tensor sizes: {shape_str(shape)}")


def _addmm_rule(types, beta, alpha):
    device = common_device(types)
    c, a, b = types
    if a.ndim != 2:
        raise RuntimeError(f"mat1 must be a matrix, got {a.ndim}-D tensor")
    if b.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix, got {b.ndim}-D tensor")
    if c.dtype is not a.dtype:
        raise RuntimeError("self and mat2 must have the same dtype, but got "
                           f"{c.dtype.torch_name} and {a.dtype.torch_name}")
    _mm_dtype_check(a, b)
    _mm_shape_check(a.shape[0], a.shape[1], b.shape[0], b.shape[1])
    target = (a.shape[0], b.shape[1])
    _expand_check(c, target)
    _no_bool(a.dtype, "addmm_impl_cpu_")
    return TensorType(target, a.dtype, device)


def _addmv_rule(types, beta, alpha):
    device = common_device(types)
    c, a, b = types
    if a.ndim != 2 or b.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {c.ndim}, {a.ndim}, "
                           f"{b.ndim}")
    if not (c.dtype is a.dtype is b.dtype):
        raise RuntimeError("addmv input tensors must have the same dtype, but got "
                           f"{c.dtype.torch_name}, {a.dtype.torch_name}, and {b.dtype.torch_name}")
    _no_bool(a.dtype, "addmv_impl_cpu")
    if c.ndim > 1 or (c.numel != 1 and c.shape != (a.shape[0],)) or a.shape[1] != b.shape[0]:
        size = "x".join(str(s) for s in c.shape) if c.ndim else ""
        raise RuntimeError(f"size mismatch, got input ({size}), mat "
                           f"({a.shape[0]}x{a.shape[1]}), vec ({b.shape[0]})")
    return TensorType((a.shape[0],), a.dtype, device)


def _baddbmm_rule(types, beta, alpha):
    device = common_device(types)
    c, a, b = types
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    target = (a.shape[0], a.shape[1], b.shape[2])
    _expand_check(c, target)
    if not (c.dtype is a.dtype is b.dtype):
        raise RuntimeError(f"Input dtypes must be the same, got: input {_CPP[c.dtype.name]}, "
                           f"batch1: {_CPP[a.dtype.name]}, batch2: {_CPP[b.dtype.name]}")
    _bmm_shape_check(a.shape[0], a.shape[2], b.shape[0], b.shape[1])
    _no_bool(a.dtype, "baddbmm")
    return TensorType(target, a.dtype, device)


def _addmm_impl(c, a, b, beta, alpha):
    prod = _np_matmul(a, b)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:  # PyTorch ignores input (NaNs included) when beta is 0
        return prod
    cc = c.astype(prod.dtype, copy=False)
    # into the product's own new array (c broadcasts to its shape): no second result
    return np.add(prod, cc if beta == 1 else cc * beta, out=prod)


def _addmm_like_vjp(product, gbase):
    def vjp(ctx, g):
        beta, alpha = ctx.attrs["beta"], ctx.attrs["alpha"]
        gg = g if alpha == 1 else mul(g, alpha)
        ga, gb = gbase(gg, ctx, 1)
        gc = g if beta == 1 else mul(g, beta)
        return gc, ga, gb

    vjp.__name__ = f"_{product}_vjp"
    return vjp


# the gradients of the product of inputs ``i`` and ``i + 1``: each operand's value is read
# only for the other's gradient
def _mm_grads(g, ctx, i):
    need = ctx.needs_input_grad
    return (mm(g, matrix_transpose(ctx.inputs[i + 1])) if need[i] else None,
            _right_factor_grad(mm, ctx.inputs[i], g, ctx.inputs, i + 1) if need[i + 1]
            else None)


def _mv_grads(g, ctx, i):
    need = ctx.needs_input_grad
    return (outer(g, ctx.inputs[i + 1]) if need[i] else None,
            mv(matrix_transpose(ctx.inputs[i]), g) if need[i + 1] else None)


def _bmm_grads(g, ctx, i):
    need = ctx.needs_input_grad
    return (bmm(g, matrix_transpose(ctx.inputs[i + 1])) if need[i] else None,
            bmm(matrix_transpose(ctx.inputs[i]), g) if need[i + 1] else None)


def _addmm_samples():
    yield Sample((arr(2, 4), arr(2, 3, seed=1), arr(3, 4, seed=2)))
    yield Sample((arr(4), arr(2, 3, seed=1), arr(3, 4, seed=2)), note="broadcast bias")
    yield Sample((arr(2, 1), noncontig(2, 3, seed=1), arr(3, 4, seed=2)),
                 {"beta": 0.5, "alpha": 2.0})
    yield Sample((arr(), arr(2, 3, seed=1), arr(3, 4, seed=2)), {"beta": 0})
    yield Sample((ints(2, 2), ints(2, 3, seed=1), ints(3, 2, seed=2)), {"alpha": 2}, grad=False)
    yield ErrorSample((arr(2, 2), arr(3), arr(3, 2)), {}, RuntimeError,
                      "mat1 must be a matrix, got 1-D tensor")
    yield ErrorSample((arr(2, 3), arr(2, 3), arr(4, 3)), {}, RuntimeError,
                      "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x3)")
    yield ErrorSample((arr(4), arr(2, 3), arr(3, 3)), {}, RuntimeError,
                      "The expanded size of the tensor (3) must match the existing size (4)")
    yield ErrorSample((arr(2, 2), arr(2, 3, dtype=np.float64), arr(3, 2, dtype=np.float64)),
                      {}, RuntimeError, "self and mat2 must have the same dtype")


def _addmv_samples():
    yield Sample((arr(2), arr(2, 3, seed=1), arr(3, seed=2)))
    yield Sample((arr(1), noncontig(2, 3, seed=1), arr(3, seed=2)), {"beta": 0.5, "alpha": 3})
    yield Sample((arr(), arr(2, 3, seed=1), arr(3, seed=2)))
    yield Sample((ints(2), ints(2, 3, seed=1), ints(3, seed=2)), grad=False)
    yield ErrorSample((arr(3), arr(2, 3), arr(3)), {}, RuntimeError,
                      "size mismatch, got input (3), mat (2x3), vec (3)")
    yield ErrorSample((arr(2), arr(2, 3, dtype=np.float64), arr(3, dtype=np.float64)), {},
                      RuntimeError, "addmv input tensors must have the same dtype")


def _baddbmm_samples():
    yield Sample((arr(2, 3, 4), arr(2, 3, 5, seed=1), arr(2, 5, 4, seed=2)))
    yield Sample((arr(4), noncontig(2, 3, 5, seed=1), arr(2, 5, 4, seed=2)),
                 {"beta": 0.5, "alpha": -1.5})
    yield Sample((arr(3, 1), arr(2, 3, 5, seed=1), arr(2, 5, 4, seed=2)), {"beta": 0})
    yield Sample((ints(2, 3, 4), ints(2, 3, 5, seed=1), ints(2, 5, 4, seed=2)), grad=False)
    yield ErrorSample((arr(2, 2), arr(2, 2, 3), arr(2, 4, 2)), {}, RuntimeError,
                      "Expected size for first two dimensions of batch2 tensor to be: [2, 3]")
    yield ErrorSample((arr(3, 2), arr(2, 2, 3), arr(2, 3, 2)), {}, RuntimeError,
                      "The expanded size of the tensor (2) must match the existing size (3)")
    yield ErrorSample((arr(2, 2), arr(2, 2, 3, dtype=np.float64),
                       arr(2, 3, 2, dtype=np.float64)), {}, RuntimeError,
                      "Input dtypes must be the same, got: input float, batch1: double")


ADDMM = register(OpDef("addmm", OpKind.MATMUL, _addmm_rule, _addmm_impl,
                       _addmm_like_vjp("addmm", _mm_grads), _addmm_samples))
ADDMV = register(OpDef("addmv", OpKind.MATMUL, _addmv_rule, _addmm_impl,
                       _addmm_like_vjp("addmv", _mv_grads), _addmv_samples))
BADDBMM = register(OpDef("baddbmm", OpKind.MATMUL, _baddbmm_rule, _addmm_impl,
                         _addmm_like_vjp("baddbmm", _bmm_grads), _baddbmm_samples))


def _check_coefficients(fn, input, beta, alpha):
    for name, v in (("beta", beta), ("alpha", alpha)):
        if not (is_scalar(v)):
            raise TypeError(f"{fn}(): argument '{name}' must be Number, not {type(v).__name__}")
    if type_of(input).dtype is dtypes.bool_ and not all(
            isinstance(v, (bool, np.bool_)) or v in (0, 1) for v in (beta, alpha)):
        raise RuntimeError("Boolean beta only supported for Boolean results.")
    return (beta.item() if isinstance(beta, np.generic) else beta,
            alpha.item() if isinstance(alpha, np.generic) else alpha)


def _apply_scaled_product(op: OpDef, fn: str, out, operands: dict, beta, alpha):
    """The public function ``fn`` of a ``beta * input + alpha * product`` op (addmm, addmv,
    baddbmm): its tensor arguments checked (``_check_operands``), then ``beta`` and
    ``alpha`` (``_check_coefficients``), then ``op`` applied to ``operands`` in order."""
    _check_operands(fn, out, operands)
    beta, alpha = _check_coefficients(fn, operands["input"], beta, alpha)
    return apply(op, *operands.values(), beta=beta, alpha=alpha)


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat1 @ mat2)`` (input broadcasts; ignored when beta is 0)."""
    return _apply_scaled_product(ADDMM, "addmm", out,
                                 {"input": input, "mat1": mat1, "mat2": mat2}, beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat @ vec)``."""
    return _apply_scaled_product(ADDMV, "addmv", out,
                                 {"input": input, "mat": mat, "vec": vec}, beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    return _apply_scaled_product(BADDBMM, "baddbmm", out,
                                 {"input": input, "batch1": batch1, "batch2": batch2}, beta, alpha)
