"""Movement and view ops. ``reshape`` and ``expand`` are the pattern: view
ops set ``is_view=True`` and return NumPy views, so eager tensors share
storage with their base exactly where PyTorch's do."""

from __future__ import annotations

import math
import operator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, as_int_tuple, register, type_of
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, infer_size, normalize_dim, normalize_dims, shape_str

__all__ = ["reshape", "broadcast_to", "flatten", "unflatten", "squeeze", "unsqueeze", "permute",
           "transpose", "swapaxes", "swapdims", "t", "movedim", "moveaxis", "narrow", "select",
           "diagonal"]
METHODS = ("broadcast_to", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose",
           "swapaxes", "swapdims", "t", "movedim", "moveaxis", "narrow", "select", "diagonal",
           "unfold")
INTERNAL = ("view", "expand", "diagonal_view")


def _reshape_rule(types, shape):
    (t,) = types
    return TensorType(shape, t.dtype, t.device)


def _reshape_impl(a, shape):
    return a.reshape(shape)  # a view where NumPy (and PyTorch) can make one


def _reshape_vjp(ctx, g):
    return (reshape(g, ctx.input_types[0].shape),)


def _reshape_samples():
    yield Sample((arr(3, 4), (4, 3)))
    yield Sample((arr(3, 4), (-1,)))
    yield Sample((noncontig(3, 4), (2, -1)))
    yield Sample((arr(), (1, 1)))
    yield Sample((arr(0, 4), (4, 0)))
    yield ErrorSample((arr(3, 4), (5, -1)), {}, RuntimeError, "is invalid for input")
    yield ErrorSample((arr(3, 4), (-1, -1)), {}, RuntimeError, "only one dimension")


RESHAPE = register(OpDef("reshape", OpKind.MOVEMENT, _reshape_rule, _reshape_impl,
                         _reshape_vjp, _reshape_samples, is_view=True))


def reshape(input, shape):
    """The same data with a new shape: a view when the strides allow, else a copy."""
    t = type_of(input)
    target = infer_size(as_int_tuple(shape, "shape"), t.numel)
    return apply(RESHAPE, input, shape=target)


def _view_impl(a, shape):
    try:
        return np.reshape(a, shape, copy=False)
    except ValueError:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        ) from None


def _view_samples():
    yield Sample((arr(3, 4), (2, 6)), torch=False)
    yield Sample((arr(2, 3, 4), (6, -1)), torch=False)


VIEW = register(OpDef("view", OpKind.MOVEMENT, _reshape_rule, _view_impl, _reshape_vjp,
                      _view_samples, public="Tensor.view", is_view=True))


def view(input, shape):
    """A view with a new shape; RuntimeError when the strides do not allow one."""
    t = type_of(input)
    return apply(VIEW, input, shape=infer_size(as_int_tuple(shape, "shape"), t.numel))


def _expand_rule(types, shape):
    (t,) = types
    return TensorType(shape, t.dtype, t.device)


def _expand_impl(a, shape):
    """A read-only view with zero strides, like PyTorch's."""
    if type(a) is np.ndarray and a.flags.c_contiguous and a.size:
        # the view made directly over ``a``'s memory: np.broadcast_to's Python costs
        # ~2.4 us, ten times this, and every reduction's VJP expands its gradient
        lead = len(shape) - a.ndim
        strides = (0,) * lead + tuple(
            0 if size == 1 else stride for size, stride in zip(a.shape, a.strides))
        view = np.ndarray(shape, a.dtype, a, 0, strides)
        view.flags.writeable = False
        return view
    return np.broadcast_to(a, shape)


def _expand_vjp(ctx, g):
    return (g,)  # call_vjp sums the gradient back to the input's shape


def _expand_samples():
    yield Sample((arr(3, 1), (3, 4)))
    yield Sample((arr(4), (2, 3, 4)))
    yield Sample((arr(3, 1), (-1, 5)))
    yield Sample((arr(), (2,)))
    yield ErrorSample((arr(3, 2), (3, 4)), {}, RuntimeError, "must match the existing")
    yield ErrorSample((arr(3, 2), (2,)), {}, RuntimeError, "number of sizes provided")


EXPAND = register(OpDef("expand", OpKind.MOVEMENT, _expand_rule, _expand_impl, _expand_vjp,
                        _expand_samples, public="Tensor.expand", is_view=True))


def expand(input, size):
    """A broadcast view of ``input`` to ``size`` (``-1`` keeps a dim)."""
    t = type_of(input)
    size = as_int_tuple(size, "size")
    if len(size) < t.ndim:
        raise RuntimeError(
            f"expand({t.dtype.torch_name}Type{{{shape_str(t.shape)}}}, size={shape_str(size)}): "
            "the number of sizes provided (" + str(len(size)) + ") must be greater or equal to "
            "the number of dimensions in the tensor (" + str(t.ndim) + ")")
    lead = len(size) - t.ndim
    out = []
    for i, s in enumerate(size):
        if i < lead:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    "non-existing dimension " + str(i))
            out.append(s)
            continue
        cur = t.shape[i - lead]
        if s == -1:
            out.append(cur)
        elif cur == s or cur == 1:
            out.append(s)
        else:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                f"non-singleton dimension {i}.  Target sizes: {shape_str(size)}.  Tensor sizes: "
                f"{shape_str(t.shape)}")
    out = tuple(out)
    return apply(EXPAND, input, shape=out)


def broadcast_to(input, size):
    """``input`` broadcast to ``size`` (an alias of ``expand``)."""
    return expand(input, size)


# --- reshape wrappers: flatten, unflatten, squeeze, unsqueeze ----------------------------

def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one: a view when the strides allow."""
    t = type_of(input)
    if t.ndim == 0:
        return reshape(input, (1,))
    start, end = normalize_dim(start_dim, t.ndim), normalize_dim(end_dim, t.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if start == end:
        return input
    merged = math.prod(t.shape[start:end + 1])
    return reshape(input, t.shape[:start] + (merged,) + t.shape[end + 1:])


def unflatten(input, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one of them may be -1): always a view."""
    t = type_of(input)
    d = normalize_dim(dim, t.ndim)
    sizes = as_int_tuple(sizes, "sizes")
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = t.shape[d] if t.ndim else 1
    if sizes.count(-1) > 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    known = math.prod(s for s in sizes if s != -1)
    if (-1 in sizes and (known == 0 or n % known)) or (-1 not in sizes and known != n):
        raise RuntimeError(f"unflatten: Provided sizes {shape_str(sizes)} don't multiply up to "
                           f"the size of dim {dim} ({n}) in the input tensor")
    sizes = infer_size(sizes, n)
    return reshape(input, t.shape[:d] + sizes + t.shape[d + 1:])


def squeeze(input, dim=None, *more_dims):
    """Drop dims of size 1 (all of them, or those among ``dim``): always a view."""
    t = type_of(input)
    if more_dims:  # Tensor.squeeze(0, 1)
        dim = (dim,) + more_dims
    dims = set(normalize_dims(dim, t.ndim))
    shape = tuple(s for i, s in enumerate(t.shape) if not (i in dims and s == 1))
    return reshape(input, shape)


def unsqueeze(input, dim):
    """Insert a dim of size 1 at ``dim`` (in ``-ndim-1..ndim``): always a view."""
    t = type_of(input)
    d = normalize_dim(dim, t.ndim + 1)
    return reshape(input, t.shape[:d] + (1,) + t.shape[d:])


# --- permute and its wrappers ------------------------------------------------------------

def _permute_rule(types, dims):
    (t,) = types
    return TensorType(tuple(t.shape[d] for d in dims), t.dtype, t.device)


def _permute_impl(a, dims):
    return a.transpose(dims)   # (the method: np.transpose adds a Python wrapper)


def _permute_vjp(ctx, g):
    dims = ctx.attrs["dims"]
    inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
    return (apply(PERMUTE, g, dims=inverse),)


def _permute_samples():
    yield Sample((arr(2, 3, 4), (2, 0, 1)))
    yield Sample((arr(2, 3, 4), (-1, 0, -2)))
    yield Sample((noncontig(3, 4), (1, 0)))
    yield Sample((arr(), ()))
    yield Sample((arr(0, 3), (1, 0)))
    yield Sample((ints(2, 3), (1, 0)), grad=False)
    yield ErrorSample((arr(2, 3), (0, 0)), {}, RuntimeError, "duplicate dims")
    yield ErrorSample((arr(2, 3), (0,)), {}, RuntimeError, "does not match the length")
    yield ErrorSample((arr(2, 3), (0, 2)), {}, IndexError, "Dimension out of range")


PERMUTE = register(OpDef("permute", OpKind.MOVEMENT, _permute_rule, _permute_impl,
                         _permute_vjp, _permute_samples, is_view=True))


def permute(input, dims):
    """A view with the dims reordered: output dim ``i`` is input dim ``dims[i]``."""
    t = type_of(input)
    dims = as_int_tuple(dims, "dims")
    if len(dims) != t.ndim:
        raise RuntimeError(
            "permute(): number of dimensions in the tensor input does not match the length of "
            f"the desired ordering of dimensions i.e. input.dim() = {t.ndim} is not equal to "
            f"len(dims) = {len(dims)}")
    dims = tuple(normalize_dim(d, t.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return apply(PERMUTE, input, dims=dims)


def transpose(input, dim0, dim1):
    """A view with dims ``dim0`` and ``dim1`` swapped."""
    t = type_of(input)
    d0, d1 = normalize_dim(dim0, t.ndim), normalize_dim(dim1, t.ndim)
    dims = list(range(t.ndim))
    if t.ndim:
        dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(PERMUTE, input, dims=tuple(dims))


def swapaxes(input, axis0, axis1):
    """Alias of :func:`transpose` (NumPy's name)."""
    return transpose(input, axis0, axis1)


def swapdims(input, dim0, dim1):
    """Alias of :func:`transpose`."""
    return transpose(input, dim0, dim1)


def t(input):
    """Transpose of a matrix; 0-d and 1-d tensors come back as views of themselves."""
    nd = type_of(input).ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return apply(PERMUTE, input, dims=tuple(reversed(range(nd))))


def movedim(input, source, destination):
    """A view with dims ``source`` moved to positions ``destination`` (ints or tuples)."""
    nd = type_of(input).ndim
    if isinstance(source, int) != isinstance(destination, int):
        raise TypeError("movedim(): source and destination must both be ints or both be "
                        "tuples of ints")
    src, dst = as_int_tuple(source, "source"), as_int_tuple(destination, "destination")
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
            f"contain the same number of dims as destination ({list(dst)} dims)")
    src = tuple(normalize_dim(d, nd) for d in src)
    dst = tuple(normalize_dim(d, nd) for d in dst)
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(source)})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({list(destination)})")
    order = [None] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(nd) if i not in src)
    dims = tuple(o if o is not None else next(rest) for o in order)
    return apply(PERMUTE, input, dims=dims)


moveaxis = movedim


# --- narrow / select ---------------------------------------------------------------------

def _narrow_rule(types, dim, start, length):
    (t,) = types
    shape = list(t.shape)
    shape[dim] = length
    return TensorType(tuple(shape), t.dtype, t.device)


def _narrow_impl(a, dim, start, length):
    index = (slice(None),) * dim + (slice(start, start + length),)
    return a[index]


def _narrow_vjp(ctx, g):
    from ir.ops.rearrange import pad_dim
    dim, start, length = ctx.attrs["dim"], ctx.attrs["start"], ctx.attrs["length"]
    n = ctx.input_types[0].shape[dim]
    return (pad_dim(g, dim, start, n - start - length),)


def _narrow_samples():
    yield Sample((arr(4, 6), 1, 2, 3))
    yield Sample((arr(4, 6), -1, -3, 2))
    yield Sample((noncontig(4, 6), 0, 1, 2))
    yield Sample((arr(4, 6), 0, 4, 0))
    yield Sample((ints(5), 0, 1, 3), grad=False)
    yield ErrorSample((arr(4, 6), 1, 4, 3), {}, RuntimeError, "exceeds dimension size")
    yield ErrorSample((arr(4, 6), 1, 7, 0), {}, IndexError, "start out of range")
    yield ErrorSample((arr(), 0, 0, 1), {}, RuntimeError, "0-dim")


NARROW = register(OpDef("narrow", OpKind.MOVEMENT, _narrow_rule, _narrow_impl, _narrow_vjp,
                        _narrow_samples, is_view=True))


def narrow(input, dim, start, length):
    """A view of ``length`` entries of dim ``dim`` from ``start`` (negative start wraps)."""
    t = type_of(input)
    if t.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = normalize_dim(dim, t.ndim)
    start, length = operator.index(start), operator.index(length)
    n = t.shape[d]
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got "
                         f"{start})")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return apply(NARROW, input, dim=d, start=start, length=length)


def _select_rule(types, dim, index):
    (t,) = types
    return TensorType(t.shape[:dim] + t.shape[dim + 1:], t.dtype, t.device)


def _select_impl(a, dim, index):
    index = (slice(None),) * dim + (slice(index, index + 1),)
    return np.squeeze(a[index], axis=dim)  # a view, also when the result is 0-d


def _select_vjp(ctx, g):
    from ir.ops.rearrange import pad_dim
    dim, index = ctx.attrs["dim"], ctx.attrs["index"]
    n = ctx.input_types[0].shape[dim]
    return (pad_dim(unsqueeze(g, dim), dim, index, n - index - 1),)


def _select_samples():
    yield Sample((arr(4, 6), 1, 2))
    yield Sample((arr(4, 6), 0, -1))
    yield Sample((noncontig(4, 6), 1, 5))
    yield Sample((arr(5), 0, 3))
    yield Sample((bools(3, 2), 1, 0), grad=False)
    yield ErrorSample((arr(2, 6), 1, 6), {}, IndexError, "out of range")
    yield ErrorSample((arr(), 0, 0), {}, IndexError, "0-dim")


SELECT = register(OpDef("select", OpKind.MOVEMENT, _select_rule, _select_impl, _select_vjp,
                        _select_samples, is_view=True))


def select(input, dim, index):
    """A view of entry ``index`` of dim ``dim``, with that dim removed."""
    t = type_of(input)
    if t.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = normalize_dim(dim, t.ndim)
    index = operator.index(index)
    n = t.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{shape_str(t.shape)} at dimension {dim}")
    return apply(SELECT, input, dim=d, index=index % n)


# --- diagonal ----------------------------------------------------------------------------

def _diag_len(n1: int, n2: int, offset: int) -> int:
    return max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))


def diagonal_view(a: np.ndarray, offset: int, dim1: int, dim2: int) -> np.ndarray:
    """A writable view of a diagonal (NumPy's own ``np.diagonal`` is read-only)."""
    if type(a) is not np.ndarray:
        # a device array: its diagonal is a writable view already (CuPy has no read-only
        # views), and NumPy's as_strided would convert it to a host array
        return a.diagonal(offset, dim1, dim2)
    n = _diag_len(a.shape[dim1], a.shape[dim2], offset)
    index = [slice(None)] * a.ndim
    if n == 0:
        index[dim1] = slice(0, 0)
    elif offset >= 0:
        index[dim2] = slice(offset, None)
    else:
        index[dim1] = slice(-offset, None)
    b = a[tuple(index)]
    others = [i for i in range(a.ndim) if i not in (dim1, dim2)]
    shape = tuple(a.shape[i] for i in others) + (n,)
    strides = tuple(b.strides[i] for i in others) + (b.strides[dim1] + b.strides[dim2],)
    return as_strided(b, shape, strides)


def _diagonal_rule(types, offset, dim1, dim2):
    (t,) = types
    others = tuple(s for i, s in enumerate(t.shape) if i not in (dim1, dim2))
    return TensorType(others + (_diag_len(t.shape[dim1], t.shape[dim2], offset),), t.dtype,
                      t.device)


def _diagonal_impl(a, offset, dim1, dim2):
    return diagonal_view(a, offset, dim1, dim2)


def _diagonal_vjp(ctx, g):
    from ir.ops.rearrange import diag_embed, pad_dim
    offset, dim1, dim2 = ctx.attrs["offset"], ctx.attrs["dim1"], ctx.attrs["dim2"]
    shape = ctx.input_types[0].shape
    full = diag_embed(g, offset, dim1, dim2)  # square in (dim1, dim2): crop or pad to shape
    size = type_of(full).shape[dim1]
    full = pad_dim(full, dim1, 0, shape[dim1] - size)
    return (pad_dim(full, dim2, 0, shape[dim2] - size),)


def _diagonal_samples():
    yield Sample((arr(4, 4),))
    yield Sample((arr(3, 5),), {"offset": 1})
    yield Sample((arr(3, 5),), {"offset": -2})
    yield Sample((arr(3, 5),), {"offset": 4})
    yield Sample((arr(3, 5),), {"offset": 7})
    yield Sample((arr(2, 3, 4),), {"offset": 1, "dim1": 2, "dim2": 0})
    yield Sample((noncontig(4, 3),), {"dim1": -1, "dim2": -2})
    yield Sample((ints(3, 3),), grad=False)
    yield ErrorSample((arr(3, 3),), {"dim1": 1, "dim2": 1}, RuntimeError, "cannot be identical")
    yield ErrorSample((arr(3),), {}, IndexError, "Dimension out of range")


DIAGONAL = register(OpDef("diagonal", OpKind.MOVEMENT, _diagonal_rule, _diagonal_impl,
                          _diagonal_vjp, _diagonal_samples, is_view=True))


def diagonal(input, offset=0, dim1=0, dim2=1):
    """A view of the diagonal in dims (``dim1``, ``dim2``), appended as the last dim."""
    nd = type_of(input).ndim
    d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return apply(DIAGONAL, input, offset=operator.index(offset), dim1=d1, dim2=d2)


# --- unfold ------------------------------------------------------------------------------

def _unfold_rule(types, dimension, size, step):
    (t,) = types
    if t.ndim == 0:
        return TensorType((size,), t.dtype, t.device)
    shape = list(t.shape)
    shape[dimension] = (t.shape[dimension] - size) // step + 1
    return TensorType(tuple(shape) + (size,), t.dtype, t.device)


def _unfold_impl(a, dimension, size, step):
    if a.ndim == 0:
        return np.reshape(a, (1,))[:size]
    if type(a) is not np.ndarray:
        # a device array: NumPy's as_strided would convert it to a host array; the same
        # windows through the dispatched sliding_window_view, every step-th one kept
        windows = np.lib.stride_tricks.sliding_window_view(a, size, axis=dimension)
        return windows[(slice(None),) * dimension + (slice(None, None, step),)]
    shape = list(a.shape)
    shape[dimension] = (a.shape[dimension] - size) // step + 1
    strides = list(a.strides)
    strides[dimension] = a.strides[dimension] * step
    return as_strided(a, tuple(shape) + (size,), tuple(strides) + (a.strides[dimension],))


def _unfold_vjp(ctx, g):
    from ir.ops.elementwise import add
    from ir.ops.rearrange import pad_dim
    dim, size, step = ctx.attrs["dimension"], ctx.attrs["size"], ctx.attrs["step"]
    shape = ctx.input_types[0].shape
    if not shape:
        return (reshape(narrow(g, 0, 0, 1), ()) if size else None,)
    n = shape[dim]
    total = None
    for k in range(size):  # window element k of window w came from position w * step + k
        h = select(g, -1, k)
        if step > 1:  # interleave step-1 zeros after each window's value
            h = pad_dim(unsqueeze(h, dim + 1), dim + 1, 0, step - 1)
            h = flatten(h, dim, dim + 1)
        h = pad_dim(h, dim, k, n - k - type_of(h).shape[dim])
        total = h if total is None else add(total, h)
    return (total,)


def _unfold_samples():
    yield Sample((arr(2, 7), 1, 3, 2))
    yield Sample((arr(2, 7), 1, 3, 1))
    yield Sample((arr(6, 2), 0, 2, 3))
    yield Sample((noncontig(5, 3), 0, 5, 1))
    yield Sample((arr(), 0, 1, 1))
    yield Sample((ints(6), 0, 2, 2), grad=False)
    yield ErrorSample((arr(2, 4), 1, 5, 1), {}, RuntimeError, "maximum size for tensor")
    yield ErrorSample((arr(2, 4), 1, 2, 0), {}, RuntimeError, "step is 0")


UNFOLD = register(OpDef("unfold", OpKind.MOVEMENT, _unfold_rule, _unfold_impl, _unfold_vjp,
                        _unfold_samples, public="Tensor.unfold", is_view=True))


def unfold(input, dimension, size, step):
    """A view of all windows of ``size`` along ``dimension``, ``step`` apart (a new last dim)."""
    t = type_of(input)
    d = normalize_dim(dimension, t.ndim)
    size, step = operator.index(size), operator.index(step)
    n = t.shape[d] if t.ndim else 1
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    return apply(UNFOLD, input, dimension=d, size=size, step=step)
