"""Convolutions: conv1d/2d/3d and conv_transpose1d/2d/3d.

Three primitives per spatial rank share one N-d implementation (im2col via
``sliding_window_view`` and a batched matmul over groups, so BLAS does the
work):

* ``conv{n}d(x, w[, b])`` with per-dim ``(lo, hi)`` padding pairs (negative
  values crop; 'same' padding may be asymmetric),
* ``conv_transpose{n}d(x, w[, b])`` with the left crop ``padding`` and an
  explicit ``output_size`` (``output_padding`` is folded into it),
* ``conv_weight_grad(x, g)``: the correlation of an input with an output
  gradient, the weight gradient of both.

The two convolutions are each other's adjoint with respect to the data
input, and ``conv_weight_grad`` is bilinear in (x, g), so every VJP is
written with these three ops and any order of differentiation works.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, common_device, register, type_of
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, shape_str

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d"]
FUNCTIONAL = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
INTERNAL = ("conv_weight_grad", "conv_nd", "conv_transpose_nd", "expand_param",
            "c_type_name", "pad_spatial", "windows")

# PyTorch's C type names, used in its dtype-mismatch messages
_C_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long",
            "int32": "int", "int16": "short", "int8": "signed char", "uint8": "unsigned char",
            "bool": "bool"}


def c_type_name(dtype: dtypes.DType) -> str:
    """The C type PyTorch names in messages ("float", "double", ...)."""
    return _C_NAMES.get(dtype.name, dtype.name)


# --- shared NumPy pieces -----------------------------------------------------------------

def pad_spatial(a: np.ndarray, pairs, value=0) -> np.ndarray:
    """Pad (positive) or crop (negative) the trailing spatial dims of ``a`` by ``(lo, hi)``."""
    lead = a.ndim - len(pairs)
    crop = tuple(slice(max(-lo, 0), a.shape[lead + i] - max(-hi, 0))
                 for i, (lo, hi) in enumerate(pairs))
    a = a[(slice(None),) * lead + crop]
    widths = [(0, 0)] * lead + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if any(w != (0, 0) for w in widths):
        a = np.pad(a, widths, constant_values=value)
    return a


def windows(xp: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """A read-only view ``(N, C, *out, *kernel)`` of every (strided, dilated) window of ``xp``."""
    n = len(kernel)
    ext = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    v = sliding_window_view(xp, ext, axis=tuple(range(xp.ndim - n, xp.ndim)))
    picks = tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d)
                                                               for d in dilation)
    return v[(slice(None),) * (xp.ndim - n) + picks]


def _compute_dtype(*arrays) -> np.dtype:
    dt = np.result_type(*arrays)
    return np.dtype(np.float32) if dt == np.float16 else dt


def _im2col(x, kernel, stride, pairs, dilation, groups):
    """Columns ``(G, N*P, Cg*K)`` of the padded input and the output spatial shape."""
    n, c = x.shape[:2]
    cols = windows(pad_spatial(x, pairs), kernel, stride, dilation)
    out = cols.shape[2:2 + len(kernel)]
    cols = cols.reshape((n, groups, c // groups) + cols.shape[2:])
    nd = len(kernel)
    # (N, G, Cg, *O, *K) -> (G, N, *O, Cg, *K)
    order = (1, 0) + tuple(range(3, 3 + nd)) + (2,) + tuple(range(3 + nd, 3 + 2 * nd))
    cg_k = (c // groups) * math.prod(kernel)
    cols = cols.transpose(order).reshape(groups, n * math.prod(out), cg_k)
    return cols, out


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matmul over a leading group dim; one group goes through 2-D ``@`` (straight to
    BLAS, several times faster than NumPy's stacked matmul)."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return np.matmul(a, b)


def _add_bias(out, b):
    if b is not None:
        out = out + b.reshape((-1,) + (1,) * (out.ndim - 2))
    return out


def _conv_impl(x, w, b=None, *, stride, padding, dilation, groups):
    dt = _compute_dtype(x, w) if b is None else _compute_dtype(x, w, b)
    x, w = x.astype(dt, copy=False), w.astype(dt, copy=False)
    kernel = w.shape[2:]
    cols, out = _im2col(x, kernel, stride, padding, dilation, groups)
    cout = w.shape[0]
    wm = w.reshape(groups, cout // groups, cols.shape[2]).transpose(0, 2, 1)
    res = _bmm(cols, wm)                                  # (G, N*P, Coutg)
    nd = len(kernel)
    res = res.reshape((groups, x.shape[0]) + out + (cout // groups,))
    res = res.transpose((1, 0, 2 + nd) + tuple(range(2, 2 + nd)))
    return _add_bias(res.reshape((x.shape[0], cout) + out), b)


def _full_size(o, k, s, d):
    return (o - 1) * s + d * (k - 1) + 1


def _conv_transpose_impl(x, w, b=None, *, stride, padding, dilation, groups, output_size):
    dt = _compute_dtype(x, w) if b is None else _compute_dtype(x, w, b)
    x, w = x.astype(dt, copy=False), w.astype(dt, copy=False)
    n, cin = x.shape[:2]
    o = x.shape[2:]
    kernel = w.shape[2:]
    nd = len(kernel)
    coutg = w.shape[1]
    xm = x.reshape((n, groups, cin // groups, math.prod(o)))
    xm = xm.transpose(1, 0, 3, 2).reshape(groups, n * math.prod(o), cin // groups)
    wm = w.reshape(groups, cin // groups, coutg * math.prod(kernel))
    cols = _bmm(xm, wm)                                  # (G, N*P, Coutg*K)
    cols = cols.reshape((groups, n) + o + (coutg,) + kernel)
    # (G, N, *O, Coutg, *K) -> (N, G, Coutg, *K, *O)
    order = (1, 0, 2 + nd) + tuple(range(3 + nd, 3 + 2 * nd)) + tuple(range(2, 2 + nd))
    cols = cols.transpose(order).reshape((n, groups * coutg) + kernel + o)
    full_shape = tuple(_full_size(oi, k, s, d) for oi, k, s, d in
                       zip(o, kernel, stride, dilation))
    full = np.zeros_like(cols, shape=(n, groups * coutg) + full_shape)
    # col2im: one strided add per kernel offset (the kernel is small; no loop over pixels)
    for kidx in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(k * d, k * d + (oi - 1) * s + 1, s)
                   for k, d, oi, s in zip(kidx, dilation, o, stride))
        full[(slice(None), slice(None)) + sl] += cols[(slice(None), slice(None)) + kidx]
    pairs = tuple((-lo, size - (f - lo)) for lo, size, f in
                  zip(padding, output_size, full_shape))
    return _add_bias(pad_spatial(full, pairs), b)


def _conv_weight_grad_impl(x, g, *, kernel, stride, padding, dilation, groups):
    dt = _compute_dtype(x, g)
    x, g = x.astype(dt, copy=False), g.astype(dt, copy=False)
    cols, out = _im2col(x, kernel, stride, padding, dilation, groups)
    n, cout = g.shape[:2]
    p = math.prod(out)
    gm = g.reshape(n, groups, cout // groups, p).transpose(1, 2, 0, 3)
    gm = gm.reshape(groups, cout // groups, n * p)
    res = _bmm(gm, cols)                               # (G, Coutg, Cg*K)
    return res.reshape((cout, x.shape[1] // groups) + tuple(kernel))


# --- type rules --------------------------------------------------------------------------

def _check_dtypes(x, w, b):
    if x.dtype is dtypes.bool_:
        raise NotImplementedError(f"\"slow_conv{x.ndim - 2}d_cpu\" not implemented for 'Bool'")
    if w.dtype is not x.dtype:
        raise RuntimeError(f"expected scalar type {x.dtype.torch_name} but found "
                           f"{w.dtype.torch_name}")
    if b is not None and b.dtype is not x.dtype:
        raise RuntimeError(f"Input type ({c_type_name(x.dtype)}) and bias type "
                           f"({c_type_name(b.dtype)}) should be the same")


def _check_groups(w, groups):
    if w.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by "
                           f"{groups} at dimension 0, but got weight of size "
                           f"[{shape_str(w.shape)}] instead")


def _check_bias(w, b, expected, transposed):
    if b is not None and (b.ndim != 1 or b.shape[0] != expected):
        prefix = "Given transposed=1, weight" if transposed else "Given weight"
        raise RuntimeError(f"{prefix} of size {shape_str(w.shape)}, expected bias to be "
                           f"1-dimensional with {expected} elements, but got bias of size "
                           f"{shape_str(b.shape)} instead")


def _dims_str(values) -> str:
    return " x ".join(str(v) for v in values)


def _conv_rule(types, stride, padding, dilation, groups):
    device = common_device(types)
    x, w = types[:2]
    b = types[2] if len(types) > 2 else None
    _check_dtypes(x, w, b)
    _check_groups(w, groups)
    if x.shape[1] != w.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {shape_str(w.shape)}, "
                           f"expected input{shape_str(x.shape)} to have "
                           f"{w.shape[1] * groups} channels, but got {x.shape[1]} channels "
                           "instead")
    _check_bias(w, b, w.shape[0], False)
    padded = tuple(size + lo + hi for size, (lo, hi) in zip(x.shape[2:], padding))
    ext = tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))
    if any(p < e for p, e in zip(padded, ext)):
        raise RuntimeError(f"Calculated padded input size per channel: ({_dims_str(padded)}). "
                           f"Kernel size: ({_dims_str(ext)}). Kernel size can't be greater "
                           "than actual input size")
    out = tuple((p - e) // s + 1 for p, e, s in zip(padded, ext, stride))
    return TensorType((x.shape[0], w.shape[0]) + out, x.dtype, device)


def _conv_transpose_rule(types, stride, padding, dilation, groups, output_size):
    device = common_device(types)
    x, w = types[:2]
    b = types[2] if len(types) > 2 else None
    _check_dtypes(x, w, b)
    _check_groups(w, groups)
    if x.shape[1] != w.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {shape_str(w.shape)}, "
                           f"expected input{shape_str(x.shape)} to have {w.shape[0]} channels, "
                           f"but got {x.shape[1]} channels instead")
    _check_bias(w, b, w.shape[1] * groups, True)
    if any(s <= 0 for s in output_size):
        raise RuntimeError(f"Given input size per channel: ({_dims_str(x.shape[2:])}). "
                           f"Calculated output size per channel: ({_dims_str(output_size)}). "
                           "Output size is too small")
    return TensorType((x.shape[0], w.shape[1] * groups) + tuple(output_size), x.dtype,
                      device)


def _conv_weight_grad_rule(types, kernel, stride, padding, dilation, groups):
    device = common_device(types)
    x, g = types
    return TensorType((g.shape[1], x.shape[1] // groups) + tuple(kernel),
                      dtypes.promote_types(x.dtype, g.dtype), device)


# --- VJPs --------------------------------------------------------------------------------

def _bias_grad(g):
    from ir.ops.reduce import sum as sum_
    return sum_(g, (0,) + tuple(range(2, type_of(g).ndim)))


def _conv_vjp(ctx, g):
    a = ctx.attrs
    need = ctx.needs_input_grad
    x_t, w_t = ctx.input_types[:2]
    gx = gw = gb = None
    if need[0]:
        gx = conv_transpose_nd(g, ctx.inputs[1], None, a["stride"],
                               tuple(lo for lo, _ in a["padding"]), a["dilation"], a["groups"],
                               x_t.shape[2:])
    if need[1]:
        gw = conv_weight_grad(ctx.inputs[0], g, w_t.shape[2:], a["stride"], a["padding"],
                              a["dilation"], a["groups"])
    if len(ctx.inputs) > 2:
        gb = _bias_grad(g) if need[2] else None
        return gx, gw, gb
    return gx, gw


def _transpose_pairs(o_shape, kernel, stride, padding, dilation, output_size):
    """The conv padding pairs that make conv the adjoint of this conv_transpose."""
    return tuple((lo, _full_size(o, k, s, d) - lo - size) for o, k, s, d, lo, size in
                 zip(o_shape, kernel, stride, dilation, padding, output_size))


def _conv_transpose_vjp(ctx, g):
    a = ctx.attrs
    need = ctx.needs_input_grad
    x_t, w_t = ctx.input_types[:2]
    pairs = _transpose_pairs(x_t.shape[2:], w_t.shape[2:], a["stride"], a["padding"],
                             a["dilation"], a["output_size"])
    gx = gw = gb = None
    if need[0]:
        gx = conv_nd(g, ctx.inputs[1], None, a["stride"], pairs, a["dilation"], a["groups"])
    if need[1]:
        gw = conv_weight_grad(g, ctx.inputs[0], w_t.shape[2:], a["stride"], pairs,
                              a["dilation"], a["groups"])
    if len(ctx.inputs) > 2:
        gb = _bias_grad(g) if need[2] else None
        return gx, gw, gb
    return gx, gw


def _conv_weight_grad_vjp(ctx, gw):
    a = ctx.attrs
    need = ctx.needs_input_grad
    x_t = ctx.input_types[0]
    gx = gg = None
    if need[0]:
        gx = conv_transpose_nd(ctx.inputs[1], gw, None, a["stride"],
                               tuple(lo for lo, _ in a["padding"]), a["dilation"], a["groups"],
                               x_t.shape[2:])
    if need[1]:
        gg = conv_nd(ctx.inputs[0], gw, None, a["stride"], a["padding"], a["dilation"],
                     a["groups"])
    return gx, gg


# --- internal entry points (used by VJPs and other families) -----------------------------

_CONV_OPS: dict[int, OpDef] = {}
_CONV_T_OPS: dict[int, OpDef] = {}


def conv_nd(x, w, b, stride, padding_pairs, dilation, groups):
    """Internal: batched N-d convolution with per-dim ``(lo, hi)`` padding (negative crops)."""
    op = _CONV_OPS[type_of(x).ndim - 2]
    args = (x, w) if b is None else (x, w, b)
    return apply(op, *args, stride=tuple(stride), padding=tuple(map(tuple, padding_pairs)),
                 dilation=tuple(dilation), groups=int(groups))


def conv_transpose_nd(x, w, b, stride, padding, dilation, groups, output_size):
    """Internal: batched N-d transposed convolution cropping ``padding`` on the left and
    producing ``output_size`` (zeros past the full result)."""
    op = _CONV_T_OPS[type_of(x).ndim - 2]
    args = (x, w) if b is None else (x, w, b)
    return apply(op, *args, stride=tuple(stride), padding=tuple(padding),
                 dilation=tuple(dilation), groups=int(groups), output_size=tuple(output_size))


def conv_weight_grad(x, g, kernel, stride, padding, dilation, groups):
    """Internal: the gradient of ``conv_nd(x, w)`` with respect to ``w`` for output
    gradient ``g`` (shape ``(C_out, C_in / groups, *kernel)``); ``padding`` holds
    ``(lo, hi)`` pairs."""
    return apply(CONV_WEIGHT_GRAD, x, g, kernel=tuple(kernel), stride=tuple(stride),
                 padding=tuple(map(tuple, padding)), dilation=tuple(dilation),
                 groups=int(groups))


def _weight_grad_samples():
    attrs = {"stride": (1, 1), "padding": ((1, 1), (0, 1)), "dilation": (1, 1), "groups": 1}
    yield Sample((arr(2, 3, 4, 4), arr(2, 2, 5, 3), (2, 3)), attrs, torch=False,
                 note="internal op")
    attrs = {"stride": (2,), "padding": ((0, -1),), "dilation": (2,), "groups": 2}
    yield Sample((arr(2, 4, 7), arr(2, 4, 2), (2,)), attrs, torch=False, note="internal op")


CONV_WEIGHT_GRAD = register(OpDef(
    "conv_weight_grad", OpKind.OPAQUE, _conv_weight_grad_rule, _conv_weight_grad_impl,
    _conv_weight_grad_vjp, _weight_grad_samples, public="_ops.conv_weight_grad"))


# --- public functions --------------------------------------------------------------------

def expand_param(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints, PyTorch's message otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    try:
        items = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, not {type(value).__name__}") from None
    if len(items) == 1:
        return items * n
    if len(items) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                           f"values to match the convolution dimensions, but got "
                           f"{name}={list(items)}")
    return items


def _batched(input, n: int, fname: str):
    """``(input with a batch dim, whether it was added)``; PyTorch's message for bad ranks."""
    from ir.ops.movement import unsqueeze
    t = type_of(input)
    if t.ndim == n + 2:
        return input, False
    if t.ndim == n + 1:
        return unsqueeze(input, 0), True
    raise RuntimeError(f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {fname}, "
                       f"but got input of size: {shape_str(t.shape)}")


def _check_common(stride, dilation, groups):
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def _conv_args(n, input, weight, stride, dilation, groups, fname):
    """The arguments common to ``conv{n}d`` and ``conv_transpose{n}d``, checked as PyTorch
    does: ``stride`` and ``dilation`` expanded to the kernel's dims (a weight that is not
    ``n + 2``-D reports PyTorch's stride error), ``input`` batched (``added`` tells if a
    batch dim was added) and ``groups`` an int. Returns
    ``(x, added, stride, dilation, groups)``."""
    wt = type_of(weight)
    nk = max(wt.ndim - 2, 1)
    stride = expand_param(stride, nk, "stride")
    dilation = expand_param(dilation, nk, "dilation")
    if wt.ndim != n + 2:
        raise RuntimeError(f"expected stride to be a single integer value or a list of "
                           f"{nk} values to match the convolution dimensions, but got "
                           f"stride={list(stride)}")
    x, added = _batched(input, n, fname)
    return x, added, stride, dilation, int(groups)


def _conv(n, input, weight, bias, stride, padding, dilation, groups):
    from ir.ops.movement import squeeze
    fname = f"conv{n}d"
    x, added, stride, dilation, groups = _conv_args(n, input, weight, stride, dilation,
                                                    groups, fname)
    _check_common(stride, dilation, groups)
    kernel = type_of(weight).shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pairs = ((0, 0),) * n
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            # PyTorch puts the odd extra element of 'same' padding on the right
            pairs = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                          for k, d in zip(kernel, dilation))
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        pad = expand_param(padding, n, "padding")
        if any(p < 0 for p in pad):
            raise RuntimeError("negative padding is not supported")
        pairs = tuple((p, p) for p in pad)
    out = conv_nd(x, weight, bias, stride, pairs, dilation, groups)
    return squeeze(out, 0) if added else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) of ``input`` ``(N, C_in, L)`` or ``(C_in, L)``
    with ``weight`` ``(C_out, C_in / groups, k)``; ``padding`` may be 'valid' or 'same'."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of ``input`` ``(N, C_in, H, W)`` or
    ``(C_in, H, W)`` with ``weight`` ``(C_out, C_in / groups, kH, kW)``; ``padding`` may be
    an int, a pair, 'valid' or 'same'."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution (cross-correlation) of ``input`` ``(N, C_in, D, H, W)`` or unbatched
    with ``weight`` ``(C_out, C_in / groups, kD, kH, kW)``."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(n, input, weight, bias, stride, padding, output_padding, groups, dilation):
    from ir.ops.movement import squeeze
    fname = f"conv_transpose{n}d"
    if isinstance(padding, str):
        raise TypeError(f"{fname}(): argument 'padding' must be tuple of ints, not str")
    x, added, stride, dilation, groups = _conv_args(n, input, weight, stride, dilation,
                                                    groups, fname)
    pad = expand_param(padding, n, "padding")
    out_pad = expand_param(output_padding, n, "output_padding")
    _check_common(stride, dilation, groups)
    if any(p < 0 for p in pad) or any(p < 0 for p in out_pad):
        raise RuntimeError("negative padding is not supported")
    if any(op >= s and op >= d for op, s, d in zip(out_pad, stride, dilation)):
        # PyTorch reports in 2-D terms (a 1-D call is a 2-D one of height 1)
        two = lambda v, fill: (fill,) * (2 - n) + tuple(v) if n < 2 else tuple(v)  # noqa: E731
        o2, s2, d2 = two(out_pad, 0), two(stride, 1), two(dilation, 1)
        if n <= 2:
            detail = (f"output_padding_height: {o2[0]} output_padding_width: {o2[1]} "
                      f"stride_height: {s2[0]} stride_width: {s2[1]} "
                      f"dilation_height: {d2[0]} dilation_width: {d2[1]}")
        else:
            detail = f"output_padding: {list(out_pad)} stride: {list(stride)}"
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, "
                           f"but got {detail}")
    o = type_of(x).shape[2:]
    size = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, d, k, op in
                 zip(o, stride, pad, dilation, type_of(weight).shape[2:], out_pad))
    out = conv_transpose_nd(x, weight, bias, stride, pad, dilation, groups, size)
    return squeeze(out, 0) if added else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution ("deconvolution"): the gradient of conv1d with respect to
    its input; ``weight`` is ``(C_in, C_out / groups, k)``."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution ("deconvolution"): the gradient of conv2d with respect to
    its input; ``weight`` is ``(C_in, C_out / groups, kH, kW)``."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """3-D transposed convolution; ``weight`` is ``(C_in, C_out / groups, kD, kH, kW)``."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# --- samples and registration ------------------------------------------------------------

def _conv2d_samples():
    x, w = arr(2, 3, 5, 5), arr(4, 3, 3, 3, seed=1)
    yield Sample((x, w))
    yield Sample((x, w, arr(4, seed=2)), {"stride": 2, "padding": 1})
    yield Sample((x, arr(4, 3, 2, 3, seed=1)), {"stride": (2, 1), "padding": (1, 2),
                                                "dilation": (2, 1)})
    yield Sample((arr(2, 4, 5, 5), arr(6, 2, 3, 3, seed=1), arr(6, seed=2)),
                 {"groups": 2, "padding": 1})
    yield Sample((arr(1, 3, 5, 4), arr(2, 3, 2, 3, seed=1)), {"padding": "same"},
                 note="even kernel: asymmetric padding")
    yield Sample((arr(1, 3, 5, 5), arr(2, 3, 3, 3, seed=1)), {"padding": "same",
                                                              "dilation": 2})
    yield Sample((arr(3, 5, 5), w), {"padding": "valid"}, note="unbatched")
    yield Sample((noncontig(2, 3, 4, 5), noncontig(2, 3, 2, 2, seed=1)), {"stride": 3})
    yield Sample((arr(0, 3, 5, 5), w))
    yield Sample((x.astype(np.float64), w.astype(np.float64), arr(4, dtype=np.float64)))
    yield Sample((ints(1, 2, 4, 4), ints(3, 2, 2, 2, seed=1)), grad=False)
    yield Sample((x.astype(np.float16), w.astype(np.float16)), grad=False, rtol=2e-2,
                 atol=2e-2)
    yield ErrorSample((arr(2, 4, 5, 5), arr(8, 3, 3, 3)), {}, RuntimeError,
                      "Given groups=1, weight of size [8, 3, 3, 3], expected input[2, 4, 5, 5] "
                      "to have 3 channels, but got 4 channels instead")
    yield ErrorSample((arr(1, 3, 2, 2), arr(8, 3, 3, 3)), {}, RuntimeError,
                      "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). "
                      "Kernel size can't be greater than actual input size")
    yield ErrorSample((arr(1, 4, 5, 5), arr(3, 2, 3, 3)), {"groups": 2}, RuntimeError,
                      "expected weight to be divisible by 2 at dimension 0")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3), arr(7)), {}, RuntimeError,
                      "expected bias to be 1-dimensional with 8 elements, but got bias of "
                      "size [7] instead")
    yield ErrorSample((arr(3, 5), arr(8, 3, 3, 3)), {}, RuntimeError,
                      "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input "
                      "of size: [3, 5]")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3)), {"stride": 0}, RuntimeError,
                      "non-positive stride is not supported")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3)), {"padding": -1}, RuntimeError,
                      "negative padding is not supported")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3)), {"padding": "same", "stride": 2},
                      RuntimeError, "padding='same' is not supported for strided convolutions")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3)), {"padding": "foo"}, RuntimeError,
                      "Invalid padding string: 'foo'")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3)), {"stride": (1, 1, 1)}, RuntimeError,
                      "expected stride to be a single integer value or a list of 2 values")
    yield ErrorSample((arr(1, 3, 5, 5, dtype=np.float64), arr(8, 3, 3, 3)), {}, RuntimeError,
                      "expected scalar type Double but found Float")
    yield ErrorSample((arr(1, 3, 5, 5), arr(8, 3, 3, 3), arr(8, dtype=np.float64)), {},
                      RuntimeError, "Input type (float) and bias type (double) should be the same")


def _conv1d_samples():
    yield Sample((arr(2, 3, 6), arr(4, 3, 3, seed=1), arr(4, seed=2)))
    yield Sample((arr(2, 4, 7), arr(4, 2, 2, seed=1)), {"stride": 2, "padding": 1,
                                                        "dilation": 2, "groups": 2})
    yield Sample((arr(3, 6), arr(2, 3, 4, seed=1)), {"padding": "same"}, note="unbatched")
    yield ErrorSample((arr(2, 4, 5), arr(8, 3, 3)), {}, RuntimeError,
                      "Given groups=1, weight of size [8, 3, 3], expected input[2, 4, 5] to "
                      "have 3 channels, but got 4 channels instead")
    yield ErrorSample((arr(2, 3, 2), arr(8, 3, 3)), {}, RuntimeError,
                      "Calculated padded input size per channel: (2). Kernel size: (3).")


def _conv3d_samples():
    yield Sample((arr(1, 2, 3, 4, 3), arr(2, 2, 2, 2, 2, seed=1), arr(2, seed=2)),
                 {"padding": (1, 0, 1), "stride": (1, 2, 1)})


def _conv_transpose2d_samples():
    x, w = arr(2, 3, 4, 4), arr(3, 2, 3, 3, seed=1)
    yield Sample((x, w))
    yield Sample((x, w, arr(2, seed=2)), {"stride": 2, "padding": 1, "output_padding": 1})
    yield Sample((x, arr(3, 2, 2, 3, seed=1)), {"stride": (2, 3), "padding": (0, 1),
                                                "dilation": (2, 1), "output_padding": (1, 2)})
    yield Sample((arr(2, 4, 3, 3), arr(4, 3, 3, 3, seed=1), arr(6, seed=2)),
                 {"groups": 2, "stride": 2})
    yield Sample((arr(3, 4, 4), w), {"dilation": 2, "output_padding": 1}, note="unbatched")
    yield Sample((noncontig(2, 3, 3, 4), noncontig(3, 2, 2, 2, seed=1)), {"padding": 1})
    yield Sample((ints(1, 2, 3, 3), ints(2, 2, 2, 2, seed=1)), grad=False)
    yield ErrorSample((arr(2, 5, 5, 5), arr(3, 4, 3, 3)), {}, RuntimeError,
                      "Given transposed=1, weight of size [3, 4, 3, 3], expected "
                      "input[2, 5, 5, 5] to have 3 channels, but got 5 channels instead")
    yield ErrorSample((arr(2, 3, 5, 5), arr(3, 4, 3, 3)), {"output_padding": 1}, RuntimeError,
                      "output padding must be smaller than either stride or dilation, but got "
                      "output_padding_height: 1 output_padding_width: 1 stride_height: 1 "
                      "stride_width: 1 dilation_height: 1 dilation_width: 1")
    yield ErrorSample((arr(2, 3, 5, 5), arr(3, 4, 3, 3)), {"groups": 2}, RuntimeError,
                      "expected weight to be divisible by 2 at dimension 0")
    yield ErrorSample((arr(2, 3, 5, 5), arr(3, 4, 3, 3), arr(3)), {}, RuntimeError,
                      "expected bias to be 1-dimensional with 4 elements")
    yield ErrorSample((arr(5, 5), arr(3, 4, 3, 3)), {}, RuntimeError,
                      "Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d")
    yield ErrorSample((arr(2, 3, 5, 5), arr(3, 4, 3, 3)), {"padding": "same"}, TypeError,
                      "argument 'padding' must be tuple of ints, not str")


def _conv_transpose1d_samples():
    yield Sample((arr(2, 3, 5), arr(3, 2, 3, seed=1), arr(2, seed=2)),
                 {"stride": 2, "padding": 1, "output_padding": 1})
    yield Sample((arr(2, 4, 4), arr(4, 1, 2, seed=1)), {"groups": 2, "dilation": 3})
    yield ErrorSample((arr(2, 3, 5), arr(3, 4, 3)), {"output_padding": 1}, RuntimeError,
                      "output padding must be smaller than either stride or dilation")


def _conv_transpose3d_samples():
    yield Sample((arr(1, 2, 2, 3, 2), arr(2, 2, 2, 2, 2, seed=1), arr(2, seed=2)),
                 {"stride": (1, 2, 1), "padding": (0, 1, 0)})


for _n, _s, _ts in ((1, _conv1d_samples, _conv_transpose1d_samples),
                    (2, _conv2d_samples, _conv_transpose2d_samples),
                    (3, _conv3d_samples, _conv_transpose3d_samples)):
    _CONV_OPS[_n] = register(OpDef(
        f"conv{_n}d", OpKind.OPAQUE, _conv_rule, _conv_impl, _conv_vjp, _s,
        public=f"nn.functional.conv{_n}d"))
    _CONV_T_OPS[_n] = register(OpDef(
        f"conv_transpose{_n}d", OpKind.OPAQUE, _conv_transpose_rule, _conv_transpose_impl,
        _conv_transpose_vjp, _ts, public=f"nn.functional.conv_transpose{_n}d"))
del _n, _s, _ts
