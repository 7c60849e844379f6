"""Separable resampling: adaptive_avg_pool1d/2d/3d and interpolate (nearest,
nearest-exact, linear, bilinear, bicubic, trilinear, area), plus the
``upsample`` aliases.

Every one of these maps each spatial dim on its own: output position ``o``
of a dim is a weighted sum of a few input positions ("taps"). A per-dim spec
(hashable, so it is an op attribute) describes the taps with PyTorch's exact
index and weight formulas; the forward gathers and weights the taps one dim
at a time, and the VJP applies the transposed tap matrices (the internal
``resample_adjoint`` op, whose own VJP is the forward again), so all orders
of differentiation work.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, arange_like, register, type_of
from ir.ops.pool import _adaptive_size, _adaptive_width, _check_adaptive_rank, adaptive_windows
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, shape_str

__all__ = ["adaptive_avg_pool1d"]
FUNCTIONAL = ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
              "interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
INTERNAL = ("resample_adjoint",)


# --- taps: PyTorch's index and weight formulas, per dim ----------------------------------

def _f(dtype):
    return np.float32 if dtype == np.float32 else np.float64


def _area_scale(size, out, align_corners, scale, t):
    if align_corners:
        return t(size - 1) / t(out - 1) if out > 1 else t(0)
    return t(1.0 / scale) if scale is not None and scale > 0 else t(size) / t(out)


def _linear_taps(size, out, align_corners, scale, t, like):
    o = arange_like(out, like)
    if out == size:        # PyTorch copies when the size is unchanged, whatever the scale
        return o[:, None], np.ones_like(o, shape=(out, 1), dtype=t)
    ratio = _area_scale(size, out, align_corners, scale, t)
    if align_corners:
        real = ratio * o.astype(t)
    else:
        real = np.maximum(ratio * (o.astype(t) + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), size - 1)
    lam = np.clip(real - i0.astype(t), t(0), t(1)).astype(t)
    i1 = i0 + (i0 < size - 1)
    return np.stack([i0, i1], 1), np.stack([t(1) - lam, lam], 1)


def _cubic_taps(size, out, align_corners, scale, t, like):
    a = t(-0.75)
    ratio = _area_scale(size, out, align_corners, scale, t)
    o = arange_like(out, like).astype(t)
    real = ratio * o if align_corners else ratio * (o + t(0.5)) - t(0.5)
    i0 = np.minimum(np.floor(real).astype(np.int64), size - 1)
    x1 = np.clip(real - i0.astype(t), t(0), t(1)).astype(t)

    def conv1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def conv2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    x2 = t(1) - x1
    w = np.stack([conv2(x1 + 1), conv1(x1), conv1(x2), conv2(x2 + 1)], 1).astype(t)
    idx = np.clip(i0[:, None] + (arange_like(4, like) - 1), 0, size - 1)
    return idx, w


def _nearest_taps(size, out, scale, exact, like):
    o = arange_like(out, like)
    if not exact and out == size:
        src = o
    elif not exact and out == 2 * size:
        src = o >> 1
    else:
        s = np.float32(1.0 / scale) if scale is not None and scale > 0 else \
            np.float32(size) / np.float32(out)
        pos = (o.astype(np.float32) + np.float32(0.5)) * s if exact else o.astype(np.float32) * s
        src = np.minimum(np.floor(pos).astype(np.int64), size - 1)
    return src[:, None], np.ones_like(src, shape=(out, 1), dtype=np.float64)


def _adaptive_taps(size, out, t, like):
    start, end = adaptive_windows(size, out, like)
    idx = start[:, None] + arange_like(_adaptive_width(size, out), like)
    inside = idx < end[:, None]
    w = np.where(inside, t(1) / (end - start)[:, None].astype(t), t(0)).astype(t)
    return np.where(inside, idx, start[:, None]), w


def _taps(spec: tuple, x):
    """``(index (O, T), weight (O, T))`` of one dim's spec, in the compute dtype of ``x``
    and on its device (host tables are cached; a device computes its own, a few small
    kernels, rather than copying host tables over)."""
    if type(x) is np.ndarray:
        return _host_taps(spec, x.dtype.name)
    return _make_taps(spec, x.dtype.name, x)


@functools.lru_cache(maxsize=512)
def _host_taps(spec: tuple, dtype_name: str):
    return _make_taps(spec, dtype_name, None)


def _make_taps(spec: tuple, dtype_name: str, like):
    t = _f(np.dtype(dtype_name))
    kind, size, out = spec[:3]
    if kind == "adaptive":
        return _adaptive_taps(size, out, t, like)
    if kind in ("nearest", "nearest-exact"):
        idx, w = _nearest_taps(size, out, spec[3], kind == "nearest-exact", like)
        return idx, w.astype(t)
    if kind == "linear":
        return _linear_taps(size, out, spec[3], spec[4], t, like)
    return _cubic_taps(size, out, spec[3], spec[4], t, like)


def _matrix(spec: tuple, g):
    """The dense ``(O, L)`` matrix of one dim's taps (for the adjoint), in the compute
    dtype of ``g`` and on its device (host matrices are cached)."""
    if type(g) is np.ndarray:
        return _host_matrix(spec, g.dtype.name)
    return _make_matrix(spec, *_taps(spec, g))


@functools.lru_cache(maxsize=512)
def _host_matrix(spec: tuple, dtype_name: str) -> np.ndarray:
    return _make_matrix(spec, *_host_taps(spec, dtype_name))


def _make_matrix(spec: tuple, idx, w):
    out, size = spec[2], spec[1]
    m = np.zeros_like(w, shape=(out, size))
    # one flat index per tap: CuPy's ufunc.at takes an array index, not a tuple of them
    rows = arange_like(out, idx)[:, None] * size
    np.add.at(m.reshape(-1), (rows + idx).ravel(), w.ravel())
    return m


def _compute(x):
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _resample_impl(x, specs):
    x = _compute(x)
    lead = x.ndim - len(specs)
    for i, spec in enumerate(specs):
        axis = lead + i
        idx, w = _taps(spec, x)
        if spec[0] in ("nearest", "nearest-exact"):
            x = np.take(x, idx[:, 0], axis=axis)   # exact copies (no 0 * inf)
            continue
        g = np.take(x, idx, axis=axis)             # (..., O, T, ...)
        shape = (1,) * axis + w.shape + (1,) * (x.ndim - axis - 1)
        x = np.sum(g * w.reshape(shape), axis=axis + 1)
    return x


def _adjoint_impl(g, specs):
    g = _compute(g)
    lead = g.ndim - len(specs)
    for i, spec in enumerate(specs):
        axis = lead + i
        m = _matrix(spec, g)
        g = np.moveaxis(np.tensordot(g, m, axes=([axis], [0])), -1, axis)
    return g


def _resample_rule(types, specs):
    (t,) = types
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"resampling not implemented for '{t.dtype.torch_name}'")
    lead = t.shape[:t.ndim - len(specs)]
    return TensorType(lead + tuple(s[2] for s in specs), t.dtype, t.device)


def _adjoint_rule(types, specs):
    (t,) = types
    lead = t.shape[:t.ndim - len(specs)]
    return TensorType(lead + tuple(s[1] for s in specs), t.dtype, t.device)


def _resample_vjp(ctx, g):
    return (resample_adjoint(g, ctx.attrs["specs"]),)


def _adjoint_vjp(ctx, gg):
    return (apply(INTERPOLATE, gg, specs=ctx.attrs["specs"]),)


def resample_adjoint(g, specs):
    """Internal: the transpose of a separable resampling (its gradient)."""
    return apply(RESAMPLE_ADJOINT, g, specs=tuple(specs))


# --- adaptive_avg_pool -------------------------------------------------------------------

def _adaptive_avg(n, input, output_size):
    return apply(_ADAPTIVE_OPS[n], input, specs=_adaptive_specs(n, input, output_size))


def _adaptive_specs(n, input, output_size):
    """The per-dim specs of adaptive average pooling, after PyTorch's checks."""
    name = f"adaptive_avg_pool{n}d"
    t = type_of(input)
    _check_adaptive_rank(n, name, t, f"{name}(): Expected {n + 1}D or {n + 2}D tensor, but got "
                                      "{shape}")
    spatial = t.shape[t.ndim - n:]
    sizes = _adaptive_size(name, output_size, spatial)
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"{name}\" not implemented for '{t.dtype.torch_name}'")
    for d in range(1 if t.ndim == n + 2 else 0, t.ndim):
        if t.shape[d] == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {shape_str(t.shape)} with "
                               f"dimension {d} being empty")
    return tuple(("adaptive", size, o) for size, o in zip(spatial, sizes))


def adaptive_avg_pool1d(input, output_size):
    """Mean over ``output_size`` adaptive windows of ``(N, C, L)`` or ``(C, L)``."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Mean over an ``output_size`` grid of adaptive windows of ``(N, C, H, W)`` or
    ``(C, H, W)``; ``None`` in ``output_size`` keeps that input size."""
    return _adaptive_avg(2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """Mean over an ``output_size`` grid of adaptive windows of ``(N, C, D, H, W)``."""
    return _adaptive_avg(3, input, output_size)


def _adaptive2d_samples():
    yield Sample((arr(2, 3, 5, 7), 3))
    yield Sample((arr(3, 6, 4), (4, None)), note="unbatched, None keeps the size")
    yield Sample((noncontig(2, 2, 4, 4), (1, 1)))
    yield Sample((arr(2, 3, 4, 4), 0), grad=False,
                 note="PyTorch's backward rejects an empty grad_output")
    yield Sample((arr(0, 3, 4, 4), 2))
    yield ErrorSample((arr(6, 6), 2), {}, RuntimeError,
                      "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [6, 6]")
    yield ErrorSample((arr(2, 3, 6, 6), -1), {}, RuntimeError,
                      "elements of output_size must be greater than or equal to 0")
    yield ErrorSample((arr(2, 3, 0, 6), 2), {}, RuntimeError,
                      "Expected input to have non-zero size for non-batch dimensions, but input "
                      "has sizes [2, 3, 0, 6] with dimension 2 being empty")
    yield ErrorSample((arr(2, 3, 6, 6), (1, 2, 3)), {}, RuntimeError,
                      "adaptive_avg_pool2d: output_size must be 2")
    yield ErrorSample((ints(1, 2, 6, 6), 2), {}, NotImplementedError,
                      "\"adaptive_avg_pool2d\" not implemented for 'Long'")


def _adaptive1d_samples():
    yield Sample((arr(2, 3, 7), 3))
    yield Sample((arr(3, 5), (8,)), note="unbatched, upsampling windows")
    yield ErrorSample((arr(6), 4), {}, RuntimeError, "Expected 2 to 3 dimensions")
    yield ErrorSample((arr(2, 3, 6), (2, 2)), {}, RuntimeError,
                      "argument 'output_size' should contain one int (got 2)")


def _adaptive3d_samples():
    yield Sample((arr(1, 2, 3, 4, 5), (2, 3, 2)))


_ADAPTIVE_OPS: dict[int, OpDef] = {}
for _n, _s in ((1, _adaptive1d_samples), (2, _adaptive2d_samples), (3, _adaptive3d_samples)):
    _ADAPTIVE_OPS[_n] = register(OpDef(
        f"adaptive_avg_pool{_n}d", OpKind.OPAQUE, _resample_rule, _resample_impl,
        _resample_vjp, _s, public=f"nn.functional.adaptive_avg_pool{_n}d"))
del _n, _s


# --- interpolate -------------------------------------------------------------------------

_MODES_MSG = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"
_LINEAR_MODES = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _output_sizes(t, size, scale_factor, mode, recompute_scale_factor):
    """(output sizes, scales passed to the kernel) as F.interpolate computes them."""
    dim = t.ndim - 2
    spatial = list(t.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    scales = None
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {spatial} and output size of {size}. "
                    "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output "
                    "size in (o1, o2, ...,oK) format.")
            if not all(_is_int(v) for v in size):
                raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] "
                                "or Tuple[int, int, int], but got size with types "
                                f"{[type(v) for v in size]}")
            out = [int(v) for v in size]
        else:
            if not _is_int(size):
                raise TypeError(f"expected size to be an int or a tuple of ints, but got "
                                f"{type(size).__name__}")
            out = [int(size)] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, "
                    f"but got input with spatial dimensions of {spatial} and scale_factor of "
                    f"shape {scale_factor}. Please provide input tensor in (N, C, d1, d2, "
                    "...,dK) format and scale_factor in (s1, s2, ...,sK) format.")
            scales = [float(s) for s in scale_factor]
        else:
            scales = [float(scale_factor)] * dim
        out = [int(s * f) for s, f in zip(spatial, scales)]
        if recompute_scale_factor or mode == "area":
            out = [math.floor(float(s) * f) for s, f in zip(spatial, scales)]
            scales = None
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    return out, scales


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of ``(N, C, *spatial)`` to ``size`` or by ``scale_factor``
    with PyTorch's index formulas: 'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear'
    and 'bicubic' (4-D), 'trilinear' (5-D), 'area' (adaptive average pooling)."""
    t = type_of(input)
    if align_corners is not None:
        if mode in ("nearest", "area", "nearest-exact"):
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif mode in _LINEAR_MODES:
        align_corners = False
    out, scales = _output_sizes(t, size, scale_factor, mode, recompute_scale_factor)
    if antialias:
        if not (mode in ("bilinear", "bicubic") and t.ndim == 4):
            raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos "
                             "modes and requires a 4-D tensor as input")
        raise NotImplementedError("interpolate(antialias=True) is not supported by compgrad")
    known = ("nearest", "nearest-exact", "area") + tuple(_LINEAR_MODES)
    if mode in _LINEAR_MODES and t.ndim != _LINEAR_MODES[mode] and t.ndim in (3, 4, 5):
        raise NotImplementedError(f"Got {t.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR_MODES[mode]}D input")
    if mode not in known or t.ndim not in (3, 4, 5):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {t.ndim}D) for the modes: {_MODES_MSG} (got {mode})")
    if mode == "area":
        return apply(INTERPOLATE, input, specs=_adaptive_specs(t.ndim - 2, input, tuple(out)))
    spatial = t.shape[2:]
    if any(s <= 0 for s in spatial) or any(o <= 0 for o in out):
        names = "DHW"[3 - len(spatial):]
        sep = " and" if len(spatial) == 1 else ""
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input ("
            + ", ".join(f"{c}: {s}" for c, s in zip(names, spatial)) + f"){sep} output ("
            + ", ".join(f"{c}: {o}" for c, o in zip(names, out)) + ")")
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        kernel = "nearest" if mode.startswith("nearest") else mode
        raise NotImplementedError(f"\"upsample_{kernel}{len(spatial)}d\" not implemented for "
                                  f"'{t.dtype.torch_name}'")
    scales = scales or [None] * len(spatial)
    if mode in ("nearest", "nearest-exact"):
        specs = tuple((mode, s, o, f) for s, o, f in zip(spatial, out, scales))
    else:
        kind = "cubic" if mode == "bicubic" else "linear"
        specs = tuple((kind, s, o, bool(align_corners), f) for s, o, f in
                      zip(spatial, out, scales))
    return apply(INTERPOLATE, input, specs=specs)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate`."""
    warnings.warn("nn.functional.upsample is deprecated. Use nn.functional.interpolate "
                  "instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='nearest')``."""
    warnings.warn("nn.functional.upsample_nearest is deprecated. Use "
                  "nn.functional.interpolate instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    warnings.warn("nn.functional.upsample_bilinear is deprecated. Use "
                  "nn.functional.interpolate instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _interpolate_samples():
    x = arr(2, 3, 4, 5)
    yield Sample((x,), {"size": (7, 3)})
    yield Sample((x,), {"scale_factor": 2})
    yield Sample((x,), {"scale_factor": (1.5, 0.7)})
    yield Sample((x,), {"size": (6, 8), "mode": "nearest-exact"})
    yield Sample((x,), {"size": (7, 3), "mode": "bilinear"})
    yield Sample((x,), {"size": (7, 9), "mode": "bilinear", "align_corners": True})
    yield Sample((x,), {"scale_factor": (1.7, 2.5), "mode": "bilinear"})
    yield Sample((noncontig(2, 3, 4, 5),), {"size": (4, 8), "mode": "bilinear"},
                 note="unchanged height is copied")
    yield Sample((x,), {"size": (6, 7), "mode": "bicubic"})
    yield Sample((x,), {"size": (3, 8), "mode": "bicubic", "align_corners": True})
    yield Sample((x,), {"size": (2, 3), "mode": "area"})
    yield Sample((arr(2, 3, 5),), {"size": 8, "mode": "linear"})
    yield Sample((arr(2, 3, 5),), {"scale_factor": 0.6, "mode": "linear",
                                   "align_corners": True})
    yield Sample((arr(1, 2, 3, 4, 3),), {"size": (4, 3, 5), "mode": "trilinear"})
    yield Sample((arr(1, 2, 3, 4, 3),), {"scale_factor": 2})
    yield Sample((x.astype(np.float64),), {"size": (9, 4), "mode": "bilinear"})
    yield Sample((arr(0, 3, 4, 5),), {"size": (5, 5), "mode": "bilinear"})
    yield ErrorSample((x,), {}, ValueError, "either size or scale_factor should be defined")
    yield ErrorSample((x,), {"size": 3, "scale_factor": 2}, ValueError,
                      "only one of size or scale_factor should be defined")
    yield ErrorSample((x,), {"size": 3, "mode": "linear"}, NotImplementedError,
                      "Got 4D input, but linear mode needs 3D input")
    yield ErrorSample((arr(2, 3, 4),), {"size": 3, "mode": "bilinear"}, NotImplementedError,
                      "Got 3D input, but bilinear mode needs 4D input")
    yield ErrorSample((x,), {"size": 3, "mode": "foo"}, NotImplementedError,
                      "Input Error: Only 3D, 4D and 5D input Tensors supported (got 4D)")
    yield ErrorSample((x,), {"size": 3, "align_corners": True}, ValueError,
                      "align_corners option can only be set with the interpolating modes")
    yield ErrorSample((x,), {"size": (3, 3, 3)}, ValueError,
                      "Input and output must have the same number of spatial dimensions")
    yield ErrorSample((x,), {"size": 0}, RuntimeError,
                      "Input and output sizes should be greater than 0, but got input (H: 4, "
                      "W: 5) output (H: 0, W: 0)")
    yield ErrorSample((ints(1, 2, 4, 4),), {"size": 3}, NotImplementedError,
                      "not implemented for 'Long'")
    yield ErrorSample((x,), {"size": (3, 2.0)}, TypeError, "expected size to be one of int")


INTERPOLATE = register(OpDef("interpolate", OpKind.OPAQUE, _resample_rule, _resample_impl,
                             _resample_vjp, _interpolate_samples,
                             public="nn.functional.interpolate"))


def _adjoint_samples():
    specs = (("linear", 4, 6, False, None), ("adaptive", 5, 3))
    yield Sample((arr(2, 6, 3),), {"specs": specs}, torch=False, note="internal op")
    yield Sample((arr(2, 2, 7),), {"specs": (("cubic", 3, 7, True, None),)}, torch=False,
                 note="internal op")


RESAMPLE_ADJOINT = register(OpDef("resample_adjoint", OpKind.OPAQUE, _adjoint_rule,
                                  _adjoint_impl, _adjoint_vjp, _adjoint_samples,
                                  public="_ops.resample_adjoint"))
