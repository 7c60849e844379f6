"""Movement ops that copy (as in PyTorch): clone/contiguous, flip, roll, repeat, tile,
repeat_interleave, tril/triu, diag_embed/diag and ``nn.functional.pad``.

The view ops live in :mod:`ir.ops.movement`; these return fresh arrays.
"""

from __future__ import annotations

import operator

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    as_int_tuple,
    common_device,
    register,
    reject_out,
    type_of,
)
from ir.ops.movement import diagonal, diagonal_view, flatten, narrow, reshape
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, normalize_dim, normalize_dims, shape_str

__all__ = ["clone", "flip", "fliplr", "flipud", "roll", "tile", "repeat_interleave", "tril",
           "triu", "diag_embed", "diag"]
METHODS = ("clone", "contiguous", "flip", "fliplr", "flipud", "roll", "repeat_interleave",
           "tril", "triu", "diag_embed", "diag")
INPLACE = ("tril", "triu")
FUNCTIONAL = ("pad",)
INTERNAL = ("repeat", "pad_dim", "straight_through", "overwrite")


# --- clone / contiguous ------------------------------------------------------------------

def _same_rule(types, **_attrs):
    (t,) = types
    return TensorType(t.shape, t.dtype, t.device)


def _clone_impl(a):
    return a.copy(order="C")


def _clone_vjp(ctx, g):
    return (g,)


def _clone_samples():
    yield Sample((arr(3, 4),))
    yield Sample((noncontig(3, 4),))
    yield Sample((arr(),))
    yield Sample((arr(0, 2),))
    yield Sample((ints(4),), grad=False)
    yield Sample((bools(4),), {"memory_format": None}, grad=False)


CLONE = register(OpDef("clone", OpKind.MOVEMENT, _same_rule, _clone_impl, _clone_vjp,
                       _clone_samples))


def clone(input, *, memory_format=None):
    """A copy of ``input`` with its own storage (C-contiguous)."""
    return apply(CLONE, input)


def _is_contiguous(x) -> bool:
    if isinstance(x, np.ndarray):
        return bool(x.flags.c_contiguous)
    check = getattr(x, "is_contiguous", None)
    return bool(check()) if callable(check) else True  # graph values have no strides


def contiguous(input, memory_format=None):
    """``input`` itself when it is C-contiguous, else a contiguous copy (as PyTorch)."""
    return input if _is_contiguous(input) else apply(CLONE, input)


# --- straight_through ----------------------------------------------------------------------

def _matching_pair_rule(types, **_attrs):
    # straight_through / overwrite: two tensors of one type (the autograd glue of writes)
    first, second = types
    if first.shape != second.shape or first.dtype is not second.dtype:
        raise RuntimeError(f"expected two tensors of the same shape and dtype, got {first} "
                           f"and {second}")
    return TensorType(first.shape, first.dtype, common_device(types))


def _copy_of_first(first, _second):
    return first.copy(order="K")


def _copy_of_second(_first, second):
    return second.copy(order="K")


def _straight_through_vjp(ctx, g):
    return (None, g)


def _straight_through_samples():
    note = "internal op: its gradient is not the derivative of its value"
    yield Sample((arr(3, 4), arr(3, 4, seed=1)), grad=False, torch=False, note=note)
    yield Sample((arr(), arr(seed=1)), grad=False, torch=False, note=note)


STRAIGHT_THROUGH = register(OpDef(
    "straight_through", OpKind.MOVEMENT, _matching_pair_rule, _copy_of_first,
    _straight_through_vjp, _straight_through_samples, public="_ops.straight_through",
    doc="``value``, with gradients flowing to ``source`` as if it were ``source``"))


def straight_through(value, source):
    """``value``'s values; its gradient goes to ``source`` (and none to ``value``).

    What an in-place write outside autograd (under ``no_grad``, or through a
    ``detach()`` alias) into a tensor with autograd history leaves behind when
    recorded as SSA values: the new data, the old history.
    """
    return apply(STRAIGHT_THROUGH, value, source)


# --- overwrite --------------------------------------------------------------------------

def _overwrite_vjp(ctx, g):
    from ir.ops.indexing import zeros_of
    return (zeros_of(ctx.input_types[0].shape, g), g)


def _overwrite_samples():
    yield Sample((arr(3, 4), arr(3, 4, seed=1)), torch=False, grad=False,
                 note="internal op: its gradient to the target is zero, not a derivative")


OVERWRITE = register(OpDef(
    "overwrite", OpKind.MOVEMENT, _matching_pair_rule, _copy_of_second,
    _overwrite_vjp, _overwrite_samples, public="_ops.overwrite",
    doc="``value`` written over ``target``: zero gradient to ``target``, all to ``value``"))


def overwrite(target, value):
    """``value``'s values, as the new value of ``target`` after ``target.copy_(value)``
    (PyTorch's CopyBackwards): ``target``'s old history gets a zero gradient and
    ``value`` gets the whole gradient, so the result requires grad when either does."""
    return apply(OVERWRITE, target, value)


# --- flip / roll -------------------------------------------------------------------------

def _flip_impl(a, dims):
    return np.flip(a, dims).copy() if dims else a.copy()


def _flip_vjp(ctx, g):
    return (apply(FLIP, g, dims=ctx.attrs["dims"]),)


def _flip_samples():
    yield Sample((arr(3, 4), (0,)))
    yield Sample((arr(2, 3, 4), (0, -1)))
    yield Sample((noncontig(3, 4), (1,)))
    yield Sample((arr(), ()))
    yield Sample((arr(3), ()))
    yield Sample((ints(5), (0,)), grad=False)
    yield ErrorSample((arr(3, 4), (0, 0)), {}, RuntimeError, "appears multiple times")
    yield ErrorSample((arr(3, 4), (2,)), {}, IndexError, "Dimension out of range")


FLIP = register(OpDef("flip", OpKind.MOVEMENT, _same_rule, _flip_impl, _flip_vjp,
                      _flip_samples))


def flip(input, *args, dims=None):
    """A copy with the order of entries reversed along ``dims``
    (``x.flip(0, 1)`` and ``x.flip((0, 1))`` both work, as in PyTorch)."""
    if args:
        dims = args[0] if len(args) == 1 else args
    if dims is None:
        raise TypeError("flip() missing required argument 'dims' (pos 2)")
    dims = normalize_dims(as_int_tuple(dims, "dims"), type_of(input).ndim)
    return apply(FLIP, input, dims=dims)


def fliplr(input):
    """Flip dim 1 (the columns); the input must be at least 2-d."""
    if type_of(input).ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return apply(FLIP, input, dims=(1,))


def flipud(input):
    """Flip dim 0 (the rows); the input must be at least 1-d."""
    if type_of(input).ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return apply(FLIP, input, dims=(0,))


def _roll_impl(a, shifts, dims):
    return np.roll(a, shifts if dims is not None else shifts[0], axis=dims)


def _roll_vjp(ctx, g):
    shifts = tuple(-s for s in ctx.attrs["shifts"])
    return (apply(ROLL, g, shifts=shifts, dims=ctx.attrs["dims"]),)


def _roll_samples():
    yield Sample((arr(3, 4), 1, 0))
    yield Sample((arr(3, 4), (1, -3), (0, 1)))
    yield Sample((arr(3, 4), 5))
    yield Sample((noncontig(3, 4), -1, -1))
    yield Sample((arr(0, 4), 2, 0))
    yield Sample((ints(6), 2), grad=False)
    yield ErrorSample((arr(3, 4), 1, (0, 1)), {}, RuntimeError, "must align")
    yield ErrorSample((arr(3, 4), (1, 2)), {}, RuntimeError, "must align")


ROLL = register(OpDef("roll", OpKind.MOVEMENT, _same_rule, _roll_impl, _roll_vjp,
                      _roll_samples))


def roll(input, shifts, dims=None):
    """Rotate entries by ``shifts`` along ``dims``; with no dims, over the flattened tensor."""
    nd = type_of(input).ndim
    shifts = as_int_tuple(shifts, "shifts")
    if not shifts:
        raise RuntimeError("`shifts` required")
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               "dims:0")
        return apply(ROLL, input, shifts=shifts, dims=None)
    dims = as_int_tuple(dims, "dims")
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    if nd == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    dims = tuple(normalize_dim(d, nd) for d in dims)
    return apply(ROLL, input, shifts=shifts, dims=dims)


# --- repeat / tile / repeat_interleave ---------------------------------------------------

def _repeat_rule(types, sizes):
    (t,) = types
    padded = (1,) * (len(sizes) - t.ndim) + t.shape
    return TensorType(tuple(r * s for r, s in zip(sizes, padded)), t.dtype, t.device)


def _repeat_impl(a, sizes):
    return np.tile(a, sizes)


def _repeat_vjp(ctx, g):
    from ir.ops.reduce import sum as sum_
    sizes = ctx.attrs["sizes"]
    shape = ctx.input_types[0].shape
    padded = (1,) * (len(sizes) - len(shape)) + shape
    split = tuple(x for pair in zip(sizes, padded) for x in pair)  # (r0, n0, r1, n1, ...)
    g = sum_(reshape(g, split), tuple(range(0, len(split), 2)))
    return (reshape(g, shape),)


def _repeat_samples():
    yield Sample((arr(2, 3), (2, 1)))
    yield Sample((arr(2, 3), (3, 1, 2)))
    yield Sample((noncontig(2, 3), (1, 2)))
    yield Sample((arr(), (2, 3)))
    yield Sample((arr(2, 3), (0, 1)))
    yield Sample((ints(3), (2,)), grad=False)
    yield ErrorSample((arr(2, 3), (2,)), {}, RuntimeError, "can not be smaller")
    yield ErrorSample((arr(2, 3), (-1, 2)), {}, RuntimeError, "negative dimension")


REPEAT = register(OpDef("repeat", OpKind.MOVEMENT, _repeat_rule, _repeat_impl, _repeat_vjp,
                        _repeat_samples, public="Tensor.repeat"))


def repeat(input, sizes):
    """``input`` tiled ``sizes[i]`` times along each dim (extra leading dims are new)."""
    t = type_of(input)
    sizes = as_int_tuple(sizes, "sizes")
    if len(sizes) < t.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    padded = (1,) * (len(sizes) - t.ndim) + t.shape
    out = tuple(r * s for r, s in zip(sizes, padded))
    if any(r < 0 for r in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension "
                           f"{min(out)}: {shape_str(out)}")
    return apply(REPEAT, input, sizes=sizes)


def tile(input, dims):
    """:func:`repeat` where fewer ``dims`` than the input has dims are padded with 1s."""
    dims = as_int_tuple(dims, "dims")
    nd = type_of(input).ndim
    return repeat(input, (1,) * (nd - len(dims)) + dims)


def _repeat_interleave_rule(types, repeats, dim):
    (t,) = types
    shape = list(t.shape)
    shape[dim] = shape[dim] * repeats if isinstance(repeats, int) else sum(repeats)
    return TensorType(tuple(shape), t.dtype, t.device)


def _repeat_interleave_impl(a, repeats, dim):
    return np.repeat(a, repeats, axis=dim)


def _repeat_interleave_vjp(ctx, g):
    from ir.ops.join import cat, split
    from ir.ops.reduce import sum as sum_
    repeats, dim = ctx.attrs["repeats"], ctx.attrs["dim"]
    shape = ctx.input_types[0].shape
    if isinstance(repeats, int):
        g = reshape(g, shape[:dim] + (shape[dim], repeats) + shape[dim + 1:])
        return (sum_(g, dim + 1),)
    parts = split(g, list(repeats), dim)
    return (cat([sum_(p, dim, keepdim=True) for p in parts], dim),)


def _repeat_interleave_samples():
    yield Sample((arr(2, 3), 2))
    yield Sample((arr(2, 3), 3), {"dim": 1})
    yield Sample((arr(3, 2), np.array([1, 0, 2])), {"dim": 0})
    yield Sample((noncontig(3, 2), np.array([2])), {"dim": -1})
    yield Sample((arr(), 3))
    yield Sample((ints(4), np.array(2)), {"dim": 0}, grad=False)
    yield ErrorSample((arr(2, 3), -1), {"dim": 0}, RuntimeError, "non-negative")
    yield ErrorSample((arr(2, 3), np.array([1, 2, 3])), {"dim": 0}, RuntimeError,
                      "same size as input along dim")
    yield ErrorSample((arr(2, 3), np.array([1, -2])), {"dim": 0}, RuntimeError,
                      "can not be negative")


REPEAT_INTERLEAVE = register(OpDef(
    "repeat_interleave", OpKind.MOVEMENT, _repeat_interleave_rule, _repeat_interleave_impl,
    _repeat_interleave_vjp, _repeat_interleave_samples))


def _repeat_values(repeats, n: int):
    """An int, or a tuple of ``n`` ints, from ``repeats`` (an int or an integer tensor)."""
    if isinstance(repeats, int) and not isinstance(repeats, bool):
        if repeats < 0:
            raise RuntimeError("Repeats must be non-negative")
        return repeats
    rt = type_of(repeats)
    if rt.dtype.category != dtypes.CATEGORY_INT:
        raise NotImplementedError(f'"repeat_interleave" not implemented for '
                                  f"'{rt.dtype.torch_name}'")
    if rt.ndim > 1:
        raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
    try:
        # tolist: a copy to the host for a device tensor (np.asarray would refuse it)
        values = np.asarray(repeats.tolist()).reshape(-1).tolist()
    except Exception as exc:  # a symbolic value: the output shape depends on data
        raise RuntimeError("repeat_interleave with tensor repeats needs concrete values (the "
                           "output shape depends on them)") from exc
    if any(v < 0 for v in values):
        raise RuntimeError("repeats can not be negative")
    if len(values) == 1:
        return values[0]
    if len(values) != n:
        raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                           f"repeats.size(0) = {len(values)} and input.size(0) = {n}")
    return tuple(values)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each entry along ``dim`` (the flattened input when None) ``repeats`` times."""
    if repeats is None:
        raise NotImplementedError("repeat_interleave(repeats) without an input tensor is not "
                                  "supported by compgrad; use arange(n).repeat_interleave(r)")
    if dim is None:
        input, dim = flatten(input), 0
    t = type_of(input)
    if t.ndim == 0:
        raise IndexError(f"Dimension out of range (expected to be in range of [-1, 0], but got "
                         f"{dim})")
    d = normalize_dim(dim, t.ndim)
    reps = _repeat_values(repeats, t.shape[d])
    return apply(REPEAT_INTERLEAVE, input, repeats=reps, dim=d)


# --- tril / triu -------------------------------------------------------------------------

def _tri_rule_for(name):
    def rule(types, diagonal):
        (t,) = types
        if t.ndim < 2:
            raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
        return TensorType(t.shape, t.dtype, t.device)

    rule.__name__ = f"_{name}_rule"
    return rule


def _tril_impl(a, diagonal):
    return np.tril(a, diagonal)


def _triu_impl(a, diagonal):
    return np.triu(a, diagonal)


def _tril_vjp(ctx, g):
    return (apply(TRIL, g, diagonal=ctx.attrs["diagonal"]),)


def _triu_vjp(ctx, g):
    return (apply(TRIU, g, diagonal=ctx.attrs["diagonal"]),)


def _tri_samples():
    yield Sample((arr(4, 4),))
    yield Sample((arr(3, 5), 1))
    yield Sample((arr(2, 3, 4),), {"diagonal": -1})
    yield Sample((noncontig(4, 3), 2))
    yield Sample((arr(0, 3),))
    yield Sample((ints(3, 3),), grad=False)
    yield Sample((bools(3, 3),), grad=False)
    yield ErrorSample((arr(3),), {}, RuntimeError, "at least 2 dimensions")


TRIL = register(OpDef("tril", OpKind.MOVEMENT, _tri_rule_for("tril"), _tril_impl, _tril_vjp,
                      _tri_samples))
TRIU = register(OpDef("triu", OpKind.MOVEMENT, _tri_rule_for("triu"), _triu_impl, _triu_vjp,
                      _tri_samples))


def tril(input, diagonal=0, *, out=None):
    """The lower triangle (entries on and below diagonal ``diagonal``) of the last two dims."""
    reject_out(out)
    return apply(TRIL, input, diagonal=operator.index(diagonal))


def triu(input, diagonal=0, *, out=None):
    """The upper triangle (entries on and above diagonal ``diagonal``) of the last two dims."""
    reject_out(out)
    return apply(TRIU, input, diagonal=operator.index(diagonal))


# --- diag_embed / diag -------------------------------------------------------------------

def _diag_embed_rule(types, offset, dim1, dim2):
    (t,) = types
    size = t.shape[-1] + abs(offset)
    rest = iter(t.shape[:-1])
    shape = tuple(size if i in (dim1, dim2) else next(rest) for i in range(t.ndim + 1))
    return TensorType(shape, t.dtype, t.device)


def _diag_embed_impl(a, offset, dim1, dim2):
    size = a.shape[-1] + abs(offset)
    rest = iter(a.shape[:-1])
    shape = tuple(size if i in (dim1, dim2) else next(rest) for i in range(a.ndim + 1))
    out = np.zeros_like(a, shape=shape)
    diagonal_view(out, offset, dim1, dim2)[...] = a
    return out


def _diag_embed_vjp(ctx, g):
    a = ctx.attrs
    return (diagonal(g, a["offset"], a["dim1"], a["dim2"]),)


def _diag_embed_samples():
    yield Sample((arr(3),))
    yield Sample((arr(2, 3),), {"offset": 1})
    yield Sample((arr(2, 3),), {"offset": -2, "dim1": 0, "dim2": 2})
    yield Sample((noncontig(3, 2),), {"dim1": -1, "dim2": 0})
    yield Sample((arr(2, 0),))
    yield Sample((ints(3),), grad=False)
    yield ErrorSample((arr(2, 3),), {"dim1": 0, "dim2": 0}, RuntimeError, "cannot be identical")


DIAG_EMBED = register(OpDef("diag_embed", OpKind.MOVEMENT, _diag_embed_rule, _diag_embed_impl,
                            _diag_embed_vjp, _diag_embed_samples))


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Tensors whose diagonals in dims (``dim1``, ``dim2``) hold the last dim of ``input``."""
    nd = type_of(input).ndim + 1
    d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return apply(DIAG_EMBED, input, offset=operator.index(offset), dim1=d1, dim2=d2)


def diag(input, diagonal=0, *, out=None):
    """A 1-d input becomes a square matrix with it on a diagonal; a 2-d input gives a copy
    of that diagonal."""
    reject_out(out)
    nd = type_of(input).ndim
    if nd == 1:
        return apply(DIAG_EMBED, input, offset=operator.index(diagonal), dim1=0, dim2=1)
    if nd == 2:
        from ir.ops.movement import diagonal as diagonal_
        return apply(CLONE, diagonal_(input, diagonal))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {nd}D")


# --- pad ---------------------------------------------------------------------------------

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_pairs(pad, ndim):
    """(dim, left, right) for each padded dim; ``pad`` starts from the last dim."""
    return [(ndim - 1 - j, pad[2 * j], pad[2 * j + 1]) for j in range(len(pad) // 2)]


def _pad_rule(types, pad, mode, value):
    (t,) = types
    k = len(pad) // 2
    if mode != "constant":
        if len(pad) not in (2, 4, 6) or t.ndim not in (k + 1, k + 2):
            raise NotImplementedError(
                f"Padding size {len(pad)} is not supported for {t.ndim}D input tensor.\n"
                "Supported combinations for non-constant padding:\n"
                "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
                "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
                "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
        if mode == "reflect" and t.dtype is dtypes.bool_:
            raise NotImplementedError(f"\"reflection_pad{k}d\" not implemented for 'Bool'")
        batched = t.ndim == k + 2
        if mode != "circular" and any(s == 0 for s in t.shape[int(batched):]):
            raise RuntimeError(
                f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size "
                f"and other non-zero dimensions for input, but got: {shape_str(t.shape)}")
    shape = list(t.shape)
    for d, left, right in _pad_pairs(pad, t.ndim):
        n = shape[d]
        out = n + left + right
        if mode == "reflect" and (left >= n or right >= n):
            raise RuntimeError(
                "Argument #4: Padding size should be less than the corresponding input "
                f"dimension, but got: padding ({left}, {right}) at dimension {d} of input "
                f"{shape_str(t.shape)}")
        if mode == "circular":
            kept = n + min(left, 0) + min(right, 0)
            if kept < 0:
                raise RuntimeError("Negative padding value is resulting in an empty dimension")
            if left > kept or right > kept:
                raise RuntimeError("Padding value causes wrapping around more than once.")
        if out < (0 if mode in ("constant", "circular") else 1):
            raise RuntimeError(
                f"pad(): the input size {n}, plus padding {left} and {right}, gives the invalid "
                f"output size {out} at dimension {d} of input {shape_str(t.shape)}")
        shape[d] = out
    return TensorType(tuple(shape), t.dtype, t.device)


def _pad_impl(a, pad, mode, value):
    pairs = _pad_pairs(pad, a.ndim)
    if mode == "circular":  # crop first, then wrap around what is left (as PyTorch)
        index = [slice(None)] * a.ndim
        for d, left, right in pairs:
            index[d] = slice(max(-left, 0), a.shape[d] - max(-right, 0))
        a = a[tuple(index)]
    width = [(0, 0)] * a.ndim
    for d, left, right in pairs:
        width[d] = (max(left, 0), max(right, 0))
    if mode == "constant":
        with np.errstate(all="ignore"):
            fill = np.array(value).astype(a.dtype)[()]   # a NumPy scalar: host or device
        out = np.pad(a, width, mode="constant", constant_values=fill)
    else:
        out = np.pad(a, width, mode={"reflect": "reflect", "replicate": "edge",
                                     "circular": "wrap"}[mode])
    if mode != "circular":  # negative padding crops the padded result
        index = [slice(None)] * a.ndim
        for d, left, right in pairs:
            index[d] = slice(max(-left, 0), out.shape[d] - max(-right, 0))
        out = out[tuple(index)]
    return out


def _pad_adjoint_dim(g, d, n, left, right, mode):
    """The VJP of padding dim ``d`` (input size ``n``) by (``left``, ``right``) in ``mode``."""
    from ir.ops.elementwise import add
    from ir.ops.reduce import sum as sum_
    if mode == "constant":
        return pad_dim(g, d, -left, -right)
    lp, rp, cl, cr = max(left, 0), max(right, 0), max(-left, 0), max(-right, 0)
    if mode == "circular":
        m = n - cl - cr
        gx = narrow(g, d, lp, m)
        if lp:
            gx = add(gx, pad_dim(narrow(g, d, 0, lp), d, m - lp, 0))
        if rp:
            gx = add(gx, pad_dim(narrow(g, d, lp + m, rp), d, 0, m - rp))
        return pad_dim(gx, d, cl, cr)
    g = pad_dim(g, d, cl, cr)  # undo the crop: reflect/replicate pad the whole input first
    gx = narrow(g, d, lp, n)
    if lp:
        part = narrow(g, d, 0, lp)
        if mode == "reflect":
            gx = add(gx, pad_dim(apply(FLIP, part, dims=(d,)), d, 1, n - 1 - lp))
        else:
            gx = add(gx, pad_dim(sum_(part, d, keepdim=True), d, 0, n - 1))
    if rp:
        part = narrow(g, d, lp + n, rp)
        if mode == "reflect":
            gx = add(gx, pad_dim(apply(FLIP, part, dims=(d,)), d, n - 1 - rp, 1))
        else:
            gx = add(gx, pad_dim(sum_(part, d, keepdim=True), d, n - 1, 0))
    return gx


def _pad_vjp(ctx, g):
    shape = ctx.input_types[0].shape
    mode = ctx.attrs["mode"]
    if mode == "constant":
        return (apply(PAD, g, pad=tuple(-p for p in ctx.attrs["pad"]), mode="constant",
                      value=0),)
    for d, left, right in _pad_pairs(ctx.attrs["pad"], len(shape)):
        g = _pad_adjoint_dim(g, d, shape[d], left, right, mode)
    return (g,)


def _pad_samples():
    yield Sample((arr(2, 3), (1, 2)))
    yield Sample((arr(2, 3), (1, 0, 0, 2)), {"value": 1.5})
    yield Sample((arr(2, 5), (-1, 2, 1, -1)))
    yield Sample((noncontig(3, 4), (2, 1)), {"mode": "constant", "value": -1.0})
    yield Sample((arr(0, 3), (1, 1)))
    yield Sample((ints(2, 3), (1, 1)), {"value": 2.5}, grad=False)
    yield Sample((bools(2, 3), (1, 1)), {"value": 1}, grad=False)
    yield Sample((arr(2, 5), (2, 3)), {"mode": "reflect"})
    yield Sample((arr(1, 3, 4), (1, 2, 2, 1)), {"mode": "reflect"})
    yield Sample((arr(2, 5), (-1, 2)), {"mode": "reflect"})
    yield Sample((arr(2, 4), (2, 3)), {"mode": "replicate"})
    yield Sample((arr(1, 2, 3, 4), (1, 2, 2, 1, 1, 0)), {"mode": "replicate"})
    yield Sample((arr(2, 4), (-1, 2)), {"mode": "replicate"})
    yield Sample((arr(2, 4), (2, 3)), {"mode": "circular"})
    yield Sample((arr(1, 3, 4), (4, 1, 1, 2)), {"mode": "circular"})
    yield Sample((arr(2, 4), (-1, 2)), {"mode": "circular"})
    yield Sample((arr(2, 4), (2, -1)), {"mode": "circular"})
    yield Sample((ints(1, 2, 4), (1, 1)), {"mode": "reflect"}, grad=False)
    yield ErrorSample((arr(2, 3), (1,)), {}, RuntimeError, "divisible by 2")
    yield ErrorSample((arr(2, 3), (1, 1, 1, 1, 1, 1)), {}, RuntimeError, "two times")
    yield ErrorSample((arr(2, 3), (-2, -2)), {}, RuntimeError, "output size")
    yield ErrorSample((arr(2, 3), (3, 1)), {"mode": "reflect"}, RuntimeError,
                      "should be less than")
    yield ErrorSample((arr(1, 2, 4), (5, 1)), {"mode": "circular"}, RuntimeError,
                      "wrapping around")
    yield ErrorSample((arr(3), (1, 1)), {"mode": "reflect"}, NotImplementedError,
                      "not supported for 1D")
    yield ErrorSample((arr(2, 3), (1, 1)), {"mode": "foo"}, NotImplementedError,
                      "Unrecognised padding mode")
    yield ErrorSample((arr(2, 3), (1, 1)), {"mode": "reflect", "value": 2.0}, RuntimeError,
                      "doesn't take in value")


PAD = register(OpDef("pad", OpKind.MOVEMENT, _pad_rule, _pad_impl, _pad_vjp, _pad_samples,
                     public="nn.functional.pad"))


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative sizes, crop) the last dims: ``pad`` is (left, right) for the
    last dim, then for the one before, ... Modes: constant (``value``), reflect, replicate,
    circular."""
    pad = as_int_tuple(pad, "pad")
    nd = type_of(input).ndim
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > nd:
        raise RuntimeError("Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of "
                           f"dimension {nd}")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode == "constant":
        value = 0 if value is None else value
    else:
        if value is not None and value != 0:
            raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
        value = None
    return apply(PAD, input, pad=pad, mode=mode, value=value)


def pad_dim(x, dim: int, left: int, right: int):
    """Zero-pad (or crop, for negative sizes) dim ``dim`` of ``x`` only (used by VJPs)."""
    if left == 0 and right == 0:
        return x
    nd = type_of(x).ndim
    pads = (0, 0) * (nd - 1 - dim) + (left, right)
    return apply(PAD, x, pad=pads, mode="constant", value=0)
