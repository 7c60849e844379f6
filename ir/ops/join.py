"""Joining and splitting: cat, stack, hstack, vstack, dstack, column_stack, split, chunk,
unbind, tensor_split, hsplit, vsplit, dsplit.

``cat`` and ``stack`` take their tensors as variadic inputs (``apply(CAT, *tensors)``);
``split`` and ``unbind`` are multi-output view ops whose outputs alias the input.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ir import dtypes
from ir.dispatch import is_scalar
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    as_int_tuple,
    common_device,
    promote,
    register,
    reject_out,
    type_of,
)
from ir.ops.movement import narrow, reshape, unsqueeze
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, normalize_dim, shape_str

__all__ = ["cat", "concat", "concatenate", "stack", "hstack", "vstack", "row_stack", "dstack",
           "column_stack", "split", "chunk", "unbind", "tensor_split", "hsplit", "vsplit",
           "dsplit"]
METHODS = ("split", "chunk", "unbind", "tensor_split", "hsplit", "vsplit", "dsplit")
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()


def _tensor_list(tensors, name: str) -> list:
    """The tensors of a ``cat``-style argument (a list or tuple of tensors)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of Tensors, "
                        f"not {type(tensors).__name__}")
    for i, x in enumerate(tensors):
        if x is None or is_scalar(x) or isinstance(x, (list, tuple, str)):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(x).__name__}")
    return list(tensors)


def _zeros_along(ref, dim: int, size: int):
    """Zeros shaped like ``ref`` but with ``size`` entries in dim ``dim`` (for VJPs)."""
    from ir.ops.rearrange import pad_dim
    return pad_dim(narrow(ref, dim, 0, 0), dim, 0, size)


# --- cat ---------------------------------------------------------------------------------

def _skipped(t: TensorType) -> bool:
    return t.shape == (0,)  # PyTorch still skips legacy empty 1-d tensors in cat


def _cat_rule(types, dim):
    if not types:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(types):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated")
    dtype, device = promote(types), common_device(types)
    kept = [(i, t) for i, t in enumerate(types) if not _skipped(t)]
    if not kept:
        return TensorType((0,), dtype, device)
    first = kept[0][1]
    shape = list(first.shape)
    for i, t in kept[1:]:
        if t.ndim != first.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} "
                               f"and {t.ndim}")
        for d in range(t.ndim):
            if d != dim and t.shape[d] != first.shape[d]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {dim}. Expected size "
                    f"{first.shape[d]} but got size {t.shape[d]} for tensor number {i} in the "
                    "list.")
        shape[dim] += t.shape[dim]
    return TensorType(tuple(shape), dtype, device)


def _cat_impl(*arrays, dim):
    dtype = promote(tuple(TensorType(a.shape, _dtype_of(a)) for a in arrays)).np_dtype
    kept = [a.astype(dtype, copy=False) for a in arrays if a.shape != (0,)]
    if not kept:
        return np.zeros_like(arrays[0], shape=(0,), dtype=dtype)
    return np.concatenate(kept, axis=dim)


def _dtype_of(a: np.ndarray):
    return dtypes.from_numpy_dtype(a.dtype)


def _cat_vjp(ctx, g):
    dim = ctx.attrs["dim"]
    grads, offset = [], 0
    for t, wanted in zip(ctx.input_types, ctx.needs_input_grad):
        if _skipped(t) or not wanted:
            offset += 0 if _skipped(t) else t.shape[dim]
            grads.append(None)
            continue
        grads.append(narrow(g, dim, offset, t.shape[dim]))
        offset += t.shape[dim]
    return tuple(grads)


def _cat_samples():
    yield Sample(([arr(2, 3), arr(4, 3, seed=1)],))
    yield Sample(([arr(2, 3), arr(2, 1, seed=1), arr(2, 2, seed=2)],), {"dim": 1})
    yield Sample(((noncontig(3, 2), arr(3, 2, seed=1)),), {"dim": -1})
    yield Sample(([arr(2, 3), arr(0, 3, seed=1)],))
    yield Sample(([arr(0), arr(2, 3, seed=1)],), {"dim": 1}, note="legacy empty is skipped")
    yield Sample(([arr(2, 3), arr(2, 3, dtype=np.float64, seed=1)],))
    yield Sample(([ints(2, 3), arr(1, 3, seed=1)],), grad=False)
    yield Sample(([ints(3), bools(2)],), grad=False)
    yield Sample(([arr(3)],))
    yield ErrorSample(([arr(2, 2), arr(3, 3, seed=1)],), {"dim": 1}, RuntimeError,
                      "Sizes of tensors must match except in dimension 1. Expected size 2 but "
                      "got size 3 for tensor number 1 in the list.")
    yield ErrorSample(([],), {}, ValueError, "expected a non-empty list of Tensors")
    yield ErrorSample(([arr(), arr()],), {}, RuntimeError, "zero-dimensional")
    yield ErrorSample(([arr(2, 3), arr(2, 3, 1)],), {}, RuntimeError, "same number of dim")
    yield ErrorSample(([arr(2, 3), arr(2, 3)],), {"dim": 2}, IndexError, "out of range")


CAT = register(OpDef("cat", OpKind.MOVEMENT, _cat_rule, _cat_impl, _cat_vjp, _cat_samples))


def cat(tensors, dim=0, *, out=None):
    """Concatenate ``tensors`` along ``dim`` (types promoted; 1-d empty tensors skipped)."""
    reject_out(out)
    tensors = _tensor_list(tensors, "cat")
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    types = [type_of(x) for x in tensors]
    ref = next((t for t in types if not _skipped(t)), types[0])
    d = normalize_dim(dim, ref.ndim) if ref.ndim else dim
    return apply(CAT, *tensors, dim=d)


def concat(tensors, dim=0, *, out=None):
    """Alias of :func:`cat`."""
    return cat(tensors, dim, out=out)


def concatenate(tensors, axis=0, out=None, *, dim=None):
    """Alias of :func:`cat` (NumPy's name; ``axis`` or ``dim``)."""
    return cat(tensors, axis if dim is None else dim, out=out)


# --- stack -------------------------------------------------------------------------------

def _stack_rule(types, dim):
    if not types:
        raise RuntimeError("stack expects a non-empty TensorList")
    first = types[0]
    for i, t in enumerate(types[1:], 1):
        if t.shape != first.shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{shape_str(first.shape)} at entry 0 and {shape_str(t.shape)} "
                               f"at entry {i}")
    shape = first.shape[:dim] + (len(types),) + first.shape[dim:]
    return TensorType(shape, promote(types), common_device(types))


def _stack_impl(*arrays, dim):
    dtype = promote(tuple(TensorType(a.shape, _dtype_of(a)) for a in arrays)).np_dtype
    return np.stack([a.astype(dtype, copy=False) for a in arrays], axis=dim)


def _stack_vjp(ctx, g):
    return unbind(g, ctx.attrs["dim"])


def _stack_samples():
    yield Sample(([arr(2, 3), arr(2, 3, seed=1)],))
    yield Sample(([arr(2, 3), arr(2, 3, seed=1), arr(2, 3, seed=2)],), {"dim": 2})
    yield Sample(((noncontig(3, 2), arr(3, 2, seed=1)),), {"dim": -1})
    yield Sample(([arr(), arr(seed=1)],))
    yield Sample(([arr(0, 2), arr(0, 2, seed=1)],), {"dim": 1})
    yield Sample(([arr(3), arr(3, dtype=np.float64, seed=1)],))
    yield Sample(([ints(3), bools(3)],), grad=False)
    yield ErrorSample(([arr(2), arr(3, seed=1)],), {}, RuntimeError,
                      "stack expects each tensor to be equal size, but got [2] at entry 0 and "
                      "[3] at entry 1")
    yield ErrorSample(([],), {}, RuntimeError, "non-empty TensorList")
    yield ErrorSample(([arr(2), arr(2)],), {"dim": 2}, IndexError, "out of range")


STACK = register(OpDef("stack", OpKind.MOVEMENT, _stack_rule, _stack_impl, _stack_vjp,
                       _stack_samples))


def stack(tensors, dim=0, *, out=None):
    """Join equally shaped ``tensors`` along a new dim ``dim``."""
    reject_out(out)
    tensors = _tensor_list(tensors, "stack")
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    d = normalize_dim(dim, type_of(tensors[0]).ndim + 1)
    return apply(STACK, *tensors, dim=d)


def _atleast(x, n: int):
    """``atleast_1d/2d/3d``: 0-d -> (1,)*n; 1-d (k,) -> (1, k) or (1, k, 1); 2-d -> (a, b, 1)."""
    shape = type_of(x).shape
    if len(shape) >= n:
        return x
    if len(shape) == 0:
        return reshape(x, (1,) * n)
    if len(shape) == 1:
        return reshape(x, ((1,) + shape + (1,))[:n])
    return reshape(x, shape + (1,))


def _nonempty(tensors, name: str) -> list:
    tensors = _tensor_list(tensors, name)
    if not tensors:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return tensors


def hstack(tensors, *, out=None):
    """Concatenate column-wise (along dim 1; dim 0 for 1-d inputs)."""
    tensors = [_atleast(x, 1) for x in _nonempty(tensors, "hstack")]
    return cat(tensors, 0 if type_of(tensors[0]).ndim == 1 else 1, out=out)


def vstack(tensors, *, out=None):
    """Concatenate row-wise (1-d inputs become rows)."""
    return cat([_atleast(x, 2) for x in _nonempty(tensors, "vstack")], 0, out=out)


row_stack = vstack


def dstack(tensors, *, out=None):
    """Concatenate depth-wise (along dim 2, after making the inputs at least 3-d)."""
    return cat([_atleast(x, 3) for x in _nonempty(tensors, "dstack")], 2, out=out)


def column_stack(tensors, *, out=None):
    """Stack 0-d and 1-d inputs as columns, then concatenate along dim 1."""
    cols = []
    for x in _nonempty(tensors, "column_stack"):
        shape = type_of(x).shape
        cols.append(reshape(x, (math.prod(shape), 1)) if len(shape) <= 1 else x)
    return cat(cols, 1, out=out)


# --- split / unbind ----------------------------------------------------------------------

def _split_rule(types, sizes, dim):
    (t,) = types
    return tuple(TensorType(t.shape[:dim] + (s,) + t.shape[dim + 1:], t.dtype, t.device)
                 for s in sizes)


def _split_impl(a, sizes, dim):
    out, start = [], 0
    for s in sizes:
        out.append(a[(slice(None),) * dim + (slice(start, start + s),)])
        start += s
    return tuple(out)


def _split_vjp(ctx, *grads):
    sizes, dim = ctx.attrs["sizes"], ctx.attrs["dim"]
    ref = next((g for g in grads if g is not None), None)
    if ref is None:
        return (None,)
    parts = [g if g is not None else _zeros_along(ref, dim, s) for g, s in zip(grads, sizes)]
    return (cat(parts, dim) if len(parts) > 1 else parts[0],)


def _split_samples():
    yield Sample((arr(5, 3), 2))
    yield Sample((arr(5, 3), [1, 4]))
    yield Sample((arr(2, 6), (3, 1, 2)), {"dim": 1})
    yield Sample((noncontig(4, 3), 3), {"dim": -2})
    yield Sample((arr(0, 3), 2))
    yield Sample((arr(4), 4))
    yield Sample((ints(5), [2, 3]), grad=False)
    yield ErrorSample((arr(2, 4), [1, 2]), {"dim": 1}, RuntimeError,
                      "expects split_sizes to sum exactly to 4")
    yield ErrorSample((arr(2, 4), 0), {"dim": 1}, RuntimeError, "can only be 0")
    yield ErrorSample((arr(2, 4), -1), {"dim": 1}, RuntimeError, "non-negative")
    yield ErrorSample((arr(), 1), {}, RuntimeError, "at least a 1-dimensional")


SPLIT = register(OpDef("split", OpKind.MOVEMENT, _split_rule, _split_impl, _split_vjp,
                       _split_samples, is_view=True, num_outputs=-1))


def _split_sizes(n: int, split_size: int) -> tuple[int, ...]:
    if split_size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got "
                           f"split_size={split_size}")
    if split_size == 0:
        if n != 0:
            raise RuntimeError("split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {n}")
        return (0,)
    count = max(-(-n // split_size), 1)
    return (split_size,) * (count - 1) + (n - split_size * (count - 1),)


def split(tensor, split_size_or_sections, dim=0):
    """Views of consecutive pieces along ``dim``: of ``split_size`` entries each (the last
    may be smaller), or of the listed sizes."""
    t = type_of(tensor)
    if t.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = normalize_dim(dim, t.ndim)
    n = t.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = as_int_tuple(split_size_or_sections, "split_sizes")
        if any(s < 0 for s in sizes):
            raise RuntimeError("split_with_sizes expects split_sizes have only non-negative "
                               f"entries, but got split_sizes={list(sizes)}")
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={list(sizes)}")
    else:
        sizes = _split_sizes(n, operator.index(split_size_or_sections))
    return apply(SPLIT, tensor, sizes=sizes, dim=d)


def chunk(input, chunks, dim=0):
    """Split into at most ``chunks`` views of equal size (the last may be smaller)."""
    t = type_of(input)
    chunks = operator.index(chunks)
    if t.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = normalize_dim(dim, t.ndim)
    n = t.shape[d]
    if n == 0:
        return apply(SPLIT, input, sizes=(0,) * chunks, dim=d)
    return apply(SPLIT, input, sizes=_split_sizes(n, -(-n // chunks)), dim=d)


def _unbind_rule(types, dim):
    (t,) = types
    one = TensorType(t.shape[:dim] + t.shape[dim + 1:], t.dtype, t.device)
    return (one,) * t.shape[dim]


def _unbind_impl(a, dim):
    return tuple(np.squeeze(a[(slice(None),) * dim + (slice(i, i + 1),)], axis=dim)
                 for i in range(a.shape[dim]))


def _unbind_vjp(ctx, *grads):
    dim = ctx.attrs["dim"]
    ref = next((g for g in grads if g is not None), None)
    if ref is None:
        return (None,)
    if all(g is not None for g in grads):
        return (stack(list(grads), dim),)
    zero = _zeros_along(unsqueeze(ref, dim), dim, 1)
    return (cat([unsqueeze(g, dim) if g is not None else zero for g in grads], dim),)


def _unbind_samples():
    yield Sample((arr(3, 2),))
    yield Sample((arr(2, 3, 4), 1))
    yield Sample((noncontig(3, 2), -1))
    yield Sample((arr(3),))
    yield Sample((arr(2, 0),), {"dim": 1})
    yield Sample((ints(2, 2),), grad=False)
    yield ErrorSample((arr(),), {}, IndexError, "no dimensions")


UNBIND = register(OpDef("unbind", OpKind.MOVEMENT, _unbind_rule, _unbind_impl, _unbind_vjp,
                        _unbind_samples, is_view=True, num_outputs=-1))


def unbind(input, dim=0):
    """Views of every entry along ``dim``, with that dim removed."""
    t = type_of(input)
    if t.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    return apply(UNBIND, input, dim=normalize_dim(dim, t.ndim))


# --- tensor_split and the h/v/d splits ---------------------------------------------------

def _index_values(x):
    """The ints held by a tensor argument (tensor_split accepts tensors for its indices)."""
    t = type_of(x)
    if t.dtype.category != dtypes.CATEGORY_INT:
        raise RuntimeError("tensor_split expected tensor_indices_or_sections to have integer "
                           f"dtype, but got {t.dtype.torch_name}")
    if t.ndim > 1:
        raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a "
                           f"zero-dimensional or one-dimensional tensor, but got a tensor with "
                           f"{t.ndim} dims")
    values = x.tolist()   # a copy to the host (np.asarray would refuse a device tensor)
    return values if t.ndim == 1 else int(values)


def tensor_split(input, indices_or_sections, dim=0):
    """Views: ``n`` near-equal pieces (the first ``size % n`` one longer), or the pieces
    between the given indices."""
    t = type_of(input)
    if t.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    d = normalize_dim(dim, t.ndim)
    n = t.shape[d]
    spec = indices_or_sections
    if not isinstance(spec, (int, list, tuple)) and not is_scalar(spec):
        spec = _index_values(spec)
    if isinstance(spec, (list, tuple)):
        bounds = [operator.index(i) for i in spec]
        pieces, prev = [], 0
        for i in bounds + [n]:
            i = i + n if i < 0 else i
            start, end = min(max(prev, 0), n), min(max(i, 0), n)
            pieces.append(narrow(input, d, start, max(end - start, 0)))
            prev = i
        return tuple(pieces)
    sections = operator.index(spec)
    if sections <= 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
    base, extra = divmod(n, sections)
    sizes = tuple(base + 1 if i < extra else base for i in range(sections))
    return apply(SPLIT, input, sizes=sizes, dim=d)


def _dir_split(name: str, input, spec, dim: int, min_dims: int):
    t = type_of(input)
    if t.ndim < min_dims:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_dims} dimension, "
                           f"but got a tensor with {t.ndim} dimensions!")
    if isinstance(spec, int) and not isinstance(spec, bool):
        n = t.shape[dim]
        if spec == 0 or n % spec:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the "
                               f"size of the dimension {n} is not divisible by the split_size "
                               f"{spec}!")
    return tensor_split(input, spec, dim)


def hsplit(input, indices_or_sections):
    """Split along dim 1 (dim 0 for 1-d inputs); an int must divide the size."""
    nd = type_of(input).ndim
    return _dir_split("hsplit", input, indices_or_sections, 1 if nd > 1 else 0, 1)


def vsplit(input, indices_or_sections):
    """Split along dim 0 of an at least 2-d input."""
    return _dir_split("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input, indices_or_sections):
    """Split along dim 2 of an at least 3-d input."""
    return _dir_split("dsplit", input, indices_or_sections, 2, 3)
