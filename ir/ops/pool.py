"""Pooling: max_pool1d/2d/3d (with indices), avg_pool1d/2d/3d, adaptive_max_pool1d/2d.

Each is a primitive over batched ``(N, C, *spatial)`` inputs (unbatched ones
get a batch dim in the public function). Windows come from
``sliding_window_view``, so no Python loop runs over pixels or batch elements.

* max pooling returns values and int64 indices into each input plane (ties go
  to the first maximum, as in PyTorch); its VJP scatters the gradient to those
  indices with ``_scatter_along_dim`` (whose adjoint is a gather), so double
  backward works.
* avg pooling is linear: its VJP is the internal ``avg_pool_backward`` op,
  whose own VJP is avg pooling again.
"""

from __future__ import annotations

import math

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, arange_like, register, type_of
from ir.ops.conv import _conv_transpose_impl, pad_spatial, windows
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, shape_str

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
           "avg_pool1d"]
FUNCTIONAL = ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
              "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d",
              "avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
              "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices")
INTERNAL = ("avg_pool_backward", "pool_output_size")

_WORDS = {1: "one", 2: "two", 3: "three"}


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length (``pooling_output_shape``)."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1   # the last window must start inside the input or its left padding
    return out


def _right_pad(size, k, s, p, d, out):
    """Right padding that covers every window (ceil mode may reach past the padding)."""
    return max(p, (out - 1) * s + d * (k - 1) + 1 - size - p)


def _params(n, name, kernel_size, stride, padding, dilation):
    def expand(value, what, allow_none=False):
        if allow_none and (value is None or (isinstance(value, (tuple, list)) and not value)):
            return None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return (int(value),) * n
        items = tuple(int(v) for v in value)
        if len(items) == 1:
            return items * n
        if len(items) != n:
            raise RuntimeError(f"{name}: {what} must either be a single int, or a tuple of "
                               f"{_WORDS[n]} ints")
        return items

    kernel = expand(kernel_size, "kernel_size")
    stride = expand(stride, "stride", allow_none=True) or kernel
    return kernel, stride, expand(padding, "padding"), expand(dilation, "dilation")


def _check_pool(n, kernel, stride, padding, dilation, shape, ceil_mode, name):
    """PyTorch's pool shape checks; returns the output spatial size."""
    if any(s == 0 for s in stride):
        raise RuntimeError("stride should not be zero")
    if any(k <= 0 for k in kernel):
        raise RuntimeError("kernel size should be greater than zero, but got "
                           + " ".join(f"k{c}: {k}" for c, k in zip("DHW"[3 - n:], kernel)))
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero, but got "
                           + " ".join(f"dilation{c}: {d}" for c, d in zip("DHW"[3 - n:],
                                                                            dilation)))
    if any(p < 0 for p in padding):
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(padding)}")
    for k, p, d in zip(kernel, padding, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    if len(shape) != n + 2 or any(s == 0 for s in shape[1:]):
        rank = "3D or 4D" if n < 3 else "4D or 5D"
        raise RuntimeError(f"Expected {rank} (batch mode) tensor with optional 0 dim batch size "
                           f"for input, but got:{shape_str(shape)}")
    out = tuple(pool_output_size(size, k, s, p, d, ceil_mode) for size, k, s, p, d in
                zip(shape[2:], kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        lead = (1,) * (2 - n) if n < 2 else ()
        given = "x".join(str(v) for v in (shape[1],) + lead + tuple(shape[2:]))
        calc = "x".join(str(v) for v in (shape[1],) + lead + out)
        raise RuntimeError(f"Given input size: ({given}). Calculated output size: ({calc}). "
                           "Output size is too small")
    return out


def _batched(input, n, name):
    from ir.ops.movement import unsqueeze
    t = type_of(input)
    if t.ndim == n + 2:
        return input, False
    if t.ndim == n + 1:
        return unsqueeze(input, 0), True
    if n == 1:
        raise RuntimeError(f"{name}: Expected 2D or 3D (batch mode) tensor with optional 0 dim "
                           f"batch size for input, but got:{shape_str(t.shape)}")
    rank = "3D or 4D" if n < 3 else "4D or 5D"
    raise RuntimeError(f"non-empty {rank} (batch mode) tensor expected for input")


def _unbatch(result, added):
    from ir.ops.movement import squeeze
    if not added:
        return result
    if isinstance(result, tuple):
        return tuple(squeeze(r, 0) for r in result)
    return squeeze(result, 0)


# --- max pooling -------------------------------------------------------------------------

def _max_pool_rule(types, kernel, stride, padding, dilation, ceil_mode):
    (t,) = types
    n = len(kernel)
    if t.dtype is dtypes.bool_:
        raise NotImplementedError(f"\"max_pool{n}d\" not implemented for 'Bool'")
    out = _check_pool(n, kernel, stride, padding, dilation, t.shape, ceil_mode, "max_pool")
    shape = t.shape[:2] + out
    return TensorType(shape, t.dtype, t.device), TensorType(shape, dtypes.int64, t.device)


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _select_max(win: np.ndarray, pos: np.ndarray):
    """Max over the trailing axis of ``win`` and the ``pos`` of the first maximum among
    real (``pos >= 0``) elements; NaN wins, as in PyTorch."""
    valid = pos >= 0
    vals = np.max(np.where(valid, win, _lowest(win.dtype)), axis=-1)
    hit = valid & (win == vals[..., None])
    if win.dtype.kind == "f":
        hit |= valid & np.isnan(win) & np.isnan(vals)[..., None]
    first = np.argmax(hit, axis=-1)[..., None]
    idx = np.take_along_axis(np.broadcast_to(pos, win.shape), first, axis=-1)[..., 0]
    return vals, idx


def _max_pool_impl(x, kernel, stride, padding, dilation, ceil_mode):
    lead, spatial = x.shape[:2], x.shape[2:]
    out = tuple(pool_output_size(size, k, s, p, d, ceil_mode) for size, k, s, p, d in
                zip(spatial, kernel, stride, padding, dilation))
    pairs = tuple((p, _right_pad(size, k, s, p, d, o)) for size, k, s, p, d, o in
                  zip(spatial, kernel, stride, padding, dilation, out))
    kp = math.prod(kernel)
    win = windows(pad_spatial(x, pairs, _lowest(x.dtype)), kernel, stride, dilation)
    win = win.reshape(lead + out + (kp,))
    # each window element's flat index in its input plane (-1 for padding)
    plane = arange_like(math.prod(spatial), x, np.int64).reshape(spatial)
    pos = windows(pad_spatial(plane[None, None], pairs, -1), kernel, stride, dilation)
    pos = pos.reshape(out + (kp,))
    return _select_max(win, pos)


def _max_pool_vjp(ctx, g, _gi=None):
    from ir.ops.movement import reshape
    from ir.ops.sort import _scatter_along_dim
    if g is None:
        return (None,)
    shape = ctx.input_types[0].shape
    n, c = shape[:2]
    plane = math.prod(shape[2:])
    idx = ctx.outputs[1]
    flat = (n, c, math.prod(type_of(idx).shape[2:]))
    gx = _scatter_along_dim(reshape(g, flat), reshape(idx, flat), 2, plane)
    return (reshape(gx, shape),)


_MAX_OPS: dict[int, OpDef] = {}


def _max_pool(n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    name = f"max_pool{n}d"
    if n == 1 and not return_indices:
        _check_max_pool1d(kernel_size, stride, padding, dilation)
    x, added = _batched(input, n, name)
    kernel, stride, padding, dilation = _params(n, name, kernel_size, stride, padding, dilation)
    values, indices = apply(_MAX_OPS[n], x, kernel=kernel, stride=stride, padding=padding,
                            dilation=dilation, ceil_mode=bool(ceil_mode))
    return _unbatch((values, indices) if return_indices else values, added)


def _check_max_pool1d(kernel_size, stride, padding, dilation):
    # max_pool1d without indices has its own messages in PyTorch
    def first(v):
        if v is None or (isinstance(v, (tuple, list)) and not v):
            return None
        return int(v) if isinstance(v, (int, np.integer)) else int(tuple(v)[0])

    k, s, p, d = first(kernel_size), first(stride), first(padding), first(dilation)
    if k is not None and k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s is not None and s <= 0:
        raise RuntimeError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"max_pool1d() padding must be non-negative, but got {p}")
    if d <= 0:
        raise RuntimeError(f"max_pool1d() dilation must be greater than zero, but got {d}")


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over sliding windows of ``(N, C, L)`` or ``(C, L)``; with ``return_indices``,
    also the int64 position of each maximum in its input row."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over sliding windows of ``(N, C, H, W)`` or ``(C, H, W)``; with
    ``return_indices``, also the int64 flat position of each maximum in its ``H x W`` plane."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over sliding windows of ``(N, C, D, H, W)`` or unbatched input."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """``max_pool1d`` returning ``(values, indices)``."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """``max_pool2d`` returning ``(values, indices)``."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """``max_pool3d`` returning ``(values, indices)``."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _max_pool2d_samples():
    x = arr(2, 3, 6, 6)
    yield Sample((x, 2))
    yield Sample((x, 3), {"stride": 2, "padding": 1, "return_indices": True})
    yield Sample((x, (3, 2)), {"stride": (2, 1), "dilation": (1, 2), "ceil_mode": True,
                               "return_indices": True})
    yield Sample((arr(2, 5, 5), 2), {"ceil_mode": True, "return_indices": True},
                 note="unbatched; ceil windows hang over the edge")
    yield Sample((noncontig(2, 3, 5, 4), 2, 1))
    yield Sample((arr(0, 3, 4, 4), 2))
    yield Sample((ints(1, 2, 4, 4), 2), {"return_indices": True}, grad=False)
    yield Sample((np.array([[[[1.0, 1.0], [0.5, 1.0]]]], dtype=np.float32), 2),
                 {"return_indices": True}, grad=False, note="ties give the first maximum")
    yield Sample((np.full((1, 1, 3, 3), -np.inf, dtype=np.float32), 2),
                 {"padding": 1, "return_indices": True}, grad=False,
                 note="all -inf: the first real element, never padding")
    yield ErrorSample((x, 3), {"padding": 2}, RuntimeError,
                      "pad should be at most half of effective kernel size, but got pad=2, "
                      "kernel_size=3 and dilation=1")
    yield ErrorSample((x, 8), {}, RuntimeError, "Output size is too small")
    yield ErrorSample((x, 2), {"stride": 0}, RuntimeError, "stride should not be zero")
    yield ErrorSample((arr(6, 6), 2), {}, RuntimeError,
                      "non-empty 3D or 4D (batch mode) tensor expected for input")
    yield ErrorSample((x, (2, 2, 2)), {}, RuntimeError,
                      "max_pool2d: kernel_size must either be a single int, or a tuple of two")
    yield ErrorSample((np.ones((1, 2, 4, 4), dtype=np.bool_), 2), {}, NotImplementedError,
                      "not implemented for 'Bool'")


def _max_pool1d_samples():
    yield Sample((arr(2, 3, 7), 3), {"stride": 2, "padding": 1, "return_indices": True})
    yield Sample((arr(3, 7), 2), {"dilation": 2, "ceil_mode": True})
    yield ErrorSample((arr(2, 3, 6), 7), {}, RuntimeError, "")
    yield ErrorSample((arr(6), 2), {}, RuntimeError,
                      "max_pool1d: Expected 2D or 3D (batch mode) tensor")
    yield ErrorSample((arr(2, 3, 6), 2), {"padding": -1}, RuntimeError,
                      "max_pool1d() padding must be non-negative, but got -1")


def _max_pool3d_samples():
    yield Sample((arr(1, 2, 4, 3, 4), 2), {"stride": (1, 2, 2), "padding": (1, 0, 1),
                                          "return_indices": True})


for _n, _s in ((1, _max_pool1d_samples), (2, _max_pool2d_samples), (3, _max_pool3d_samples)):
    _MAX_OPS[_n] = register(OpDef(
        f"max_pool{_n}d", OpKind.OPAQUE, _max_pool_rule, _max_pool_impl, _max_pool_vjp, _s,
        public=f"nn.functional.max_pool{_n}d", num_outputs=2))


# --- avg pooling -------------------------------------------------------------------------

def _avg_divisors(like, spatial, out, kernel, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    """The divisor of each output position (PyTorch's ``divide_factor``), shape ``out``,
    on the device of the array ``like``."""
    if divisor_override is not None:
        return np.full_like(like, divisor_override, shape=out, dtype=np.int64)
    total = np.ones_like(like, shape=(), dtype=np.int64)
    for size, o, k, s, p in zip(spatial, out, kernel, stride, padding):
        start = arange_like(o, like, np.int64) * s - p
        end = np.minimum(start + k, size + p)
        pool = end - start
        inside = np.minimum(end, size) - np.maximum(start, 0)
        total = np.multiply.outer(total, pool if count_include_pad else inside)
    return total


def _avg_attrs_out(spatial, kernel, stride, padding, ceil_mode):
    return tuple(pool_output_size(size, k, s, p, 1, ceil_mode) for size, k, s, p in
                 zip(spatial, kernel, stride, padding))


def _avg_pool_rule(types, kernel, stride, padding, ceil_mode, count_include_pad,
                   divisor_override):
    (t,) = types
    n = len(kernel)
    if t.dtype is dtypes.bool_:
        raise NotImplementedError(f"\"avg_pool{n}d\" not implemented for 'Bool'")
    out = _check_pool(n, kernel, stride, padding, (1,) * n, t.shape, ceil_mode, "avg_pool")
    return TensorType(t.shape[:2] + out, t.dtype, t.device)


def _divide(total, div):
    if total.dtype.kind == "f":
        return total / div
    # integer pooling truncates toward zero, as PyTorch's integer division does
    q = np.abs(total) // div
    return np.where(total < 0, -q, q)


def _avg_pool_impl(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    spatial = x.shape[2:]
    out = _avg_attrs_out(spatial, kernel, stride, padding, ceil_mode)
    pairs = tuple((p, _right_pad(size, k, s, p, 1, o)) for size, k, s, p, o in
                  zip(spatial, kernel, stride, padding, out))
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    win = windows(pad_spatial(x, pairs), kernel, stride, (1,) * len(kernel))
    total = win.sum(axis=tuple(range(-len(kernel), 0)))
    return _divide(total, _avg_divisors(x, spatial, out, kernel, stride, padding, ceil_mode,
                                        count_include_pad, divisor_override))


def _avg_pool_vjp(ctx, g):
    return (avg_pool_backward(g, ctx.input_types[0].shape[2:], **ctx.attrs),)


def _avg_backward_rule(types, input_size, kernel, stride, padding, ceil_mode,
                       count_include_pad, divisor_override):
    (t,) = types
    return TensorType(t.shape[:2] + tuple(input_size), t.dtype, t.device)


def _avg_backward_impl(g, input_size, kernel, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    out = g.shape[2:]
    div = _avg_divisors(g, input_size, out, kernel, stride, padding, ceil_mode,
                        count_include_pad, divisor_override)
    gd = (g / div).reshape((-1, 1) + out) if g.size else g.reshape((0, 1) + out)
    ones = np.ones_like(gd, shape=(1, 1) + tuple(kernel))
    gx = _conv_transpose_impl(gd, ones, stride=stride, padding=padding,
                              dilation=(1,) * len(kernel), groups=1, output_size=input_size)
    return gx.reshape(g.shape[:2] + tuple(input_size))


def _avg_backward_vjp(ctx, gg):
    attrs = dict(ctx.attrs)
    attrs.pop("input_size")
    return (apply(_AVG_OPS[len(attrs["kernel"])], gg, **attrs),)


def _avg_backward_samples():
    attrs = {"input_size": (5, 4), "kernel": (3, 2), "stride": (2, 1), "padding": (1, 0),
             "ceil_mode": True, "count_include_pad": False, "divisor_override": None}
    yield Sample((arr(2, 2, 3, 3),), attrs, torch=False, note="internal op")


AVG_POOL_BACKWARD = register(OpDef(
    "avg_pool_backward", OpKind.OPAQUE, _avg_backward_rule, _avg_backward_impl,
    _avg_backward_vjp, _avg_backward_samples, public="_ops.avg_pool_backward"))


def avg_pool_backward(g, input_size, kernel, stride, padding, ceil_mode, count_include_pad,
                      divisor_override):
    """Internal: the gradient of avg pooling (each window's share spread back)."""
    return apply(AVG_POOL_BACKWARD, g, input_size=tuple(input_size), kernel=tuple(kernel),
                 stride=tuple(stride), padding=tuple(padding), ceil_mode=bool(ceil_mode),
                 count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


_AVG_OPS: dict[int, OpDef] = {}


def _avg_pool(n, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    name = f"avg_pool{n}d"
    t = type_of(input)
    if n == 1 and t.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {t.ndim}-dimensional tensor "
                           "for argument #1 'self' (while checking arguments for avg_pool1d)")
    if n > 1 and t.ndim not in (n + 1, n + 2):
        rank = "3D or 4D" if n < 3 else "4D or 5D"
        raise RuntimeError(f"Expected {rank} (batch mode) tensor with optional 0 dim batch size "
                           f"for input, but got:{shape_str(t.shape)}")
    x, added = _batched(input, n, name)
    kernel, stride, padding, _ = _params(n, name, kernel_size, stride, padding, 1)
    if divisor_override is not None:
        divisor_override = int(divisor_override)
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
    out = apply(_AVG_OPS[n], x, kernel=kernel, stride=stride, padding=padding,
                ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                divisor_override=divisor_override)
    return _unbatch(out, added)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over sliding windows of ``(N, C, L)`` or ``(C, L)``; ``count_include_pad``
    counts the zero padding in the divisor."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over sliding windows of ``(N, C, H, W)`` or ``(C, H, W)``;
    ``divisor_override`` replaces the window size as divisor."""
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over sliding windows of ``(N, C, D, H, W)`` or unbatched input."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _avg_pool2d_samples():
    x = arr(2, 3, 6, 6)
    yield Sample((x, 2))
    yield Sample((x, 3), {"stride": 2, "padding": 1})
    yield Sample((x, 3), {"stride": 2, "padding": 1, "count_include_pad": False,
                          "ceil_mode": True})
    yield Sample((arr(3, 5, 5), (3, 2)), {"stride": (2, 1), "padding": (1, 1),
                                          "ceil_mode": True}, note="unbatched")
    yield Sample((noncontig(2, 3, 5, 4), 2), {"divisor_override": 3})
    yield Sample((arr(0, 3, 4, 4), 2))
    yield Sample((ints(1, 2, 4, 5, low=-9, high=9), 2, 1, 1), grad=False,
                 note="integer division truncates")
    yield ErrorSample((x, 3), {"padding": 2}, RuntimeError,
                      "pad should be at most half of effective kernel size")
    yield ErrorSample((x, 8), {}, RuntimeError, "Output size is too small")
    yield ErrorSample((x, 2), {"divisor_override": 0}, RuntimeError, "divisor must be not zero")
    yield ErrorSample((x, 2), {"padding": -1}, RuntimeError,
                      "pad must be non-negative, but got pad: -1")
    yield ErrorSample((arr(1, 1, 2, 6, 6), 2), {}, RuntimeError,
                      "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size")


def _avg_pool1d_samples():
    yield Sample((arr(2, 3, 7), 3), {"stride": 2, "padding": 1, "count_include_pad": False})
    yield Sample((arr(3, 7), 2), {"ceil_mode": True})
    yield Sample((np.array([[[-3, 0, 5, 2, -7, 1]]]), 3, 1, 1), grad=False)
    yield ErrorSample((arr(6), 2), {}, RuntimeError,
                      "Expected 2 to 3 dimensions, but got 1-dimensional tensor")


def _avg_pool3d_samples():
    yield Sample((arr(1, 2, 4, 3, 4), 2), {"stride": (1, 2, 2), "padding": (1, 0, 1)})


for _n, _s in ((1, _avg_pool1d_samples), (2, _avg_pool2d_samples), (3, _avg_pool3d_samples)):
    _AVG_OPS[_n] = register(OpDef(
        f"avg_pool{_n}d", OpKind.OPAQUE, _avg_pool_rule, _avg_pool_impl, _avg_pool_vjp, _s,
        public=f"nn.functional.avg_pool{_n}d"))
del _n, _s


# --- adaptive max pooling ----------------------------------------------------------------

def adaptive_windows(size: int, out: int, like=None):
    """Start and end of each adaptive pooling window (PyTorch's start/end index), on the
    device of the array ``like`` (None: NumPy arrays)."""
    o = arange_like(out, like, np.int64)
    return (o * size) // out, ((o + 1) * size + out - 1) // out


def _adaptive_width(size: int, out: int) -> int:
    """The widest adaptive pooling window (computed on the host: it sizes the gather)."""
    start, end = adaptive_windows(size, out)
    return int((end - start).max()) if out else 1


def _adaptive_max_rule(types, output_size):
    (t,) = types
    n = len(output_size)
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"adaptive_max_pool{n}d\" not implemented for "
                                  f"'{t.dtype.torch_name}'")
    if any(s == 0 for s in t.shape[1:]):
        raise RuntimeError(f"adaptive_max_pool{n}d(): Expected input to have non-zero size for "
                           f"non-batch dimensions, but input has sizes {shape_str(t.shape)}")
    shape = t.shape[:2] + tuple(output_size)
    return TensorType(shape, t.dtype, t.device), TensorType(shape, dtypes.int64, t.device)


def _adaptive_max_impl(x, output_size):
    spatial = x.shape[2:]
    lead = x.shape[:2]
    n = len(spatial)
    # gather each (padded) window along each dim; taps past a window's end are marked -1
    taps, masks = [], []
    for size, o in zip(spatial, output_size):
        start, end = adaptive_windows(size, o, x)
        t = start[:, None] + arange_like(_adaptive_width(size, o), x)
        masks.append(t < end[:, None])
        taps.append(np.minimum(t, size - 1))
    # axes: (N, C, o1, k1, o2, k2, ...)
    index = tuple(slice(None) for _ in lead) + tuple(
        t.reshape((1,) * (2 * i) + t.shape + (1,) * (2 * (n - i - 1))) for i, t in
        enumerate(taps))
    win = x[index]
    plane = arange_like(math.prod(spatial), x, np.int64).reshape(spatial)
    pos = plane[index[2:]]
    valid = True
    for i, m in enumerate(masks):
        valid = m.reshape((1,) * (2 * i) + m.shape + (1,) * (2 * (n - i - 1))) & valid
    pos = np.where(valid, pos, -1)
    # move the window axes last and flatten them
    order_o = tuple(range(2, 2 + 2 * n, 2))
    order_k = tuple(range(3, 3 + 2 * n, 2))
    win = win.transpose((0, 1) + order_o + order_k)
    win = win.reshape(lead + tuple(output_size) + (-1,))
    pos = pos.transpose(tuple(o - 2 for o in order_o + order_k))
    pos = pos.reshape(tuple(output_size) + (-1,))
    return _select_max(win, pos)


_ADAPTIVE_MAX_OPS: dict[int, OpDef] = {}


def _adaptive_max(n, input, output_size, return_indices):
    name = f"adaptive_max_pool{n}d"
    _check_adaptive_rank(n, name, type_of(input),
                         f"{name}(): Expected 3D or 4D tensor, but got: {{shape}}")
    x, added = _batched(input, n, name)
    spatial = type_of(x).shape[2:]
    size = _adaptive_size(name, output_size, spatial)
    values, indices = apply(_ADAPTIVE_MAX_OPS[n], x, output_size=size)
    return _unbatch((values, indices) if return_indices else values, added)


def _check_adaptive_rank(n, name, t, message):
    """PyTorch's check that the input (type ``t``) of the ``n``-d adaptive pool ``name`` is
    ``(C, *spatial)`` or ``(N, C, *spatial)``: the 1-d ops raise ATen's argument-check error,
    the others ``message`` with ``{shape}`` replaced by the input's shape (RuntimeError)."""
    if t.ndim not in (n + 1, n + 2):
        if n == 1:
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {t.ndim}-dimensional "
                               f"tensor for argument #1 'self' (while checking arguments for "
                               f"{name})")
        raise RuntimeError(message.format(shape=shape_str(t.shape)))


def _adaptive_size(name, output_size, spatial):
    """Normalise an adaptive pool's ``output_size`` (None keeps the input size)."""
    n = len(spatial)
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        sizes = (int(output_size),) * n
    else:
        items = tuple(output_size)
        if n == 1 and len(items) != 1:
            raise RuntimeError(f"{name}() argument 'output_size' should contain one int "
                               f"(got {len(items)})")
        if len(items) != n:
            raise RuntimeError(f"{name}: output_size must be {n}")
        sizes = tuple(s if v is None else int(v) for v, s in zip(items, spatial))
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to "
                           f"0 but received {{{', '.join(str(s) for s in sizes)}}}")
    return sizes


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over ``output_size`` adaptive windows of ``(N, C, L)`` or ``(C, L)``."""
    return _adaptive_max(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over an ``output_size`` grid of adaptive windows of ``(N, C, H, W)`` or
    ``(C, H, W)``; ``None`` in ``output_size`` keeps that input size."""
    return _adaptive_max(2, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    """``adaptive_max_pool1d`` returning ``(values, indices)``."""
    return _adaptive_max(1, input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    """``adaptive_max_pool2d`` returning ``(values, indices)``."""
    return _adaptive_max(2, input, output_size, True)


def _adaptive_max2d_samples():
    yield Sample((arr(2, 3, 5, 7), 3), {"return_indices": True})
    yield Sample((arr(3, 6, 4), (4, None)), {"return_indices": True}, note="unbatched")
    yield Sample((noncontig(2, 2, 4, 4), (2, 5)))
    yield ErrorSample((arr(4, 4), 2), {}, RuntimeError, "Expected 3D or 4D tensor")
    yield ErrorSample((ints(1, 2, 4, 4), 2), {}, NotImplementedError, "not implemented for")


def _adaptive_max1d_samples():
    yield Sample((arr(2, 3, 5), 3), {"return_indices": True})
    yield ErrorSample((arr(1, 2, 4), (2, 2)), {}, RuntimeError,
                      "argument 'output_size' should contain one int (got 2)")


for _n, _s in ((1, _adaptive_max1d_samples), (2, _adaptive_max2d_samples)):
    _ADAPTIVE_MAX_OPS[_n] = register(OpDef(
        f"adaptive_max_pool{_n}d", OpKind.OPAQUE, _adaptive_max_rule, _adaptive_max_impl,
        _max_pool_vjp, _s, public=f"nn.functional.adaptive_max_pool{_n}d", num_outputs=2))
del _n, _s
