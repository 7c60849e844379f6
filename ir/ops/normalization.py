"""Normalization layers' math: layer_norm, group_norm, and the pieces of batch_norm and
instance_norm.

One primitive serves them all: ``layer_norm`` normalises ``x`` over a set of dims
(``(x - mean) / sqrt(var + eps)``, biased variance) and applies an optional weight and
bias that broadcast against ``x``. Its VJP is the fused closed form (stable, one pass of
ops), written with ops so double backward works. ``group_norm`` reshapes the channels
into groups and ``batch_norm_train`` normalises over (N, *spatial) with the same record.

``batch_norm`` and ``instance_norm`` update running statistics in place, which ir cannot
do (it has no Tensor): ``compgrad.nn._stateful`` owns them and calls the INTERNAL
helpers here (``batch_norm_stats``, ``batch_norm_elemt``, ``batch_norm_train``,
``check_norm_input``, ``check_norm_param``).
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, common_device, register, type_of
from ir.samples import arr, ints, noncontig
from ir.types import TensorType, shape_str

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL = ("layer_norm", "group_norm")
INTERNAL = ("batch_norm_stats", "batch_norm_elemt", "batch_norm_train", "instance_norm_train",
            "check_norm_input", "check_norm_param", "normalize_over")


# --- the primitive -----------------------------------------------------------------------

def _norm_rule(types, dims, eps, has_weight, has_bias):
    device = common_device(types)
    x = types[0]
    if x.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"LayerNormKernelImpl\" not implemented for "
                                  f"'{x.dtype.torch_name}'")
    for p in types[1:]:
        if p.dtype is not x.dtype:
            raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of "
                               f"{x.dtype.torch_name}")
    return TensorType(x.shape, x.dtype, device)


def _norm_impl(x, *params, dims, eps, has_weight, has_bias):
    # float16 is computed in float32, as PyTorch's CPU kernels accumulate in float
    dt = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    x = x.astype(dt, copy=False)
    with np.errstate(all="ignore"):
        mu = np.mean(x, axis=dims, keepdims=True)
        xc = x - mu
        var = np.mean(xc * xc, axis=dims, keepdims=True)
        y = xc / np.sqrt(var + dt.type(eps))
        params = list(params)
        if has_weight:
            y = y * params.pop(0).astype(dt, copy=False)
        if has_bias:
            y = y + params.pop(0).astype(dt, copy=False)
    return y


def _norm_vjp(ctx, g):
    from ir import ops
    dims, eps = ctx.attrs["dims"], ctx.attrs["eps"]
    has_weight, has_bias = ctx.attrs["has_weight"], ctx.attrs["has_bias"]
    need = ctx.needs_input_grad
    x = ctx.inputs[0]
    weight = ctx.inputs[1] if has_weight else None
    mu = ops.mean(x, dims, keepdim=True)
    xc = ops.sub(x, mu)
    rstd = ops.rsqrt(ops.add(ops.mean(ops.mul(xc, xc), dims, keepdim=True), eps))
    xhat = ops.mul(xc, rstd)
    grads = [None]
    if need[0]:
        # d x_hat -> d x: rstd * (gh - mean(gh) - x_hat * mean(gh * x_hat)) over the dims
        gh = ops.mul(g, weight) if has_weight else g
        inner = ops.sub(ops.sub(gh, ops.mean(gh, dims, keepdim=True)),
                        ops.mul(xhat, ops.mean(ops.mul(gh, xhat), dims, keepdim=True)))
        grads[0] = ops.mul(rstd, inner)
    if has_weight:
        # call_vjp sums the broadcast gradient down to the weight's shape
        grads.append(ops.mul(g, xhat) if need[1] else None)
    if has_bias:
        grads.append(g if need[-1] else None)
    return tuple(grads)


def _norm_samples():
    yield Sample((arr(3, 4), (4,)))
    yield Sample((arr(3, 4), [4], arr(4, seed=1), arr(4, seed=2)))
    yield Sample((arr(2, 3, 4), (3, 4)), {"weight": arr(3, 4, seed=1)})
    yield Sample((arr(2, 3, 4), (3, 4)), {"bias": arr(3, 4, seed=2), "eps": 1e-3})
    yield Sample((noncontig(5, 3), (3,), noncontig(3, seed=1), arr(3, seed=2)))
    yield Sample((arr(4, dtype=np.float64), (4,)))
    yield Sample((arr(2, 3, 4), (2, 3, 4)))
    yield Sample((arr(0, 3), (3,), arr(3, seed=1)), note="empty batch")
    yield Sample((arr(3, 4, dtype=np.float16), (4,)), grad=False, rtol=1e-2, atol=1e-2)
    yield ErrorSample((arr(4, 3), (4,)), {}, RuntimeError,
                      "Given normalized_shape=[4], expected input with shape [*, 4], but got "
                      "input of size[4, 3]")
    yield ErrorSample((arr(4, 3), (3,), arr(4)), {}, RuntimeError,
                      "Expected weight to be of same shape as normalized_shape, but got weight "
                      "of shape [4] and normalized_shape = [3]")
    yield ErrorSample((arr(4, 3), (3,), None, arr(2)), {}, RuntimeError,
                      "Expected bias to be of same shape as normalized_shape")
    yield ErrorSample((ints(4, 3), (3,)), {}, NotImplementedError,
                      "\"LayerNormKernelImpl\" not implemented for 'Long'")
    yield ErrorSample((arr(4, 3), (3,), arr(3, dtype=np.float64)), {}, RuntimeError,
                      "mixed dtype (CPU): expect parameter to have scalar type of Float")
    yield ErrorSample((arr(4, 3), ()), {}, RuntimeError,
                      "Expected normalized_shape to be at least 1-dimensional")
    yield ErrorSample((arr(4, 3), 3), {}, TypeError, "must be tuple of ints")


LAYER_NORM = register(OpDef("layer_norm", OpKind.OPAQUE, _norm_rule, _norm_impl, _norm_vjp,
                            _norm_samples, public="nn.functional.layer_norm"))


def normalize_over(input, dims: tuple[int, ...], weight=None, bias=None, eps: float = 1e-5):
    """``(input - mean) / sqrt(var + eps) * weight + bias`` with the biased mean/var over
    ``dims`` (sorted, normalised); weight and bias broadcast against ``input``."""
    args = [input] + [p for p in (weight, bias) if p is not None]
    return apply(LAYER_NORM, *args, dims=tuple(dims), eps=float(eps),
                 has_weight=weight is not None, has_bias=bias is not None)


# --- layer_norm / group_norm -------------------------------------------------------------

def _normalized_shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, int) or not hasattr(normalized_shape, "__iter__"):
        raise TypeError("layer_norm(): argument 'normalized_shape' (position 2) must be tuple "
                        f"of ints, not {type(normalized_shape).__name__}")
    shape = tuple(normalized_shape)
    if not all(isinstance(s, int) or hasattr(s, "__index__") for s in shape):
        raise TypeError("layer_norm(): argument 'normalized_shape' (position 2) must be tuple "
                        "of ints")
    return tuple(s.__index__() for s in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing ``normalized_shape`` dims, then scale by ``weight`` and
    shift by ``bias`` (both of shape ``normalized_shape``)."""
    shape = _normalized_shape(normalized_shape)
    t = type_of(input)
    if not shape:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., "
                           "containing at least one element, but got normalized_shape = []")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and type_of(p).shape != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {shape_str(type_of(p).shape)} and "
                               f"normalized_shape = {shape_str(shape)}")
    k = len(shape)
    if t.ndim < k or t.shape[t.ndim - k:] != shape:
        raise RuntimeError(f"Given normalized_shape={shape_str(shape)}, expected input with "
                           f"shape [*, {shape_str(shape)[1:]}, but got input of size"
                           f"{shape_str(t.shape)}")
    return normalize_over(input, tuple(range(t.ndim - k, t.ndim)), weight, bias, eps)


def _verify_batch_size(shape, size) -> None:
    # PyTorch counts size[0] * size[2:] values per channel (dim 1 is the channel)
    prod = shape[0]
    for s in shape[2:]:
        prod *= s
    if prod == 1:
        raise ValueError("Expected more than 1 value per channel when training, got input size "
                         f"{shape_str(size)}")


def _check_float(t: TensorType, kernel: str) -> None:
    if t.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{t.dtype.torch_name}'")


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalise each of ``num_groups`` channel groups of ``(N, C, *)`` input over its
    channels and spatial positions; per-channel ``weight`` and ``bias`` of shape ``(C,)``."""
    t = type_of(input)
    if t.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{t.ndim}")
    n, c, spatial = t.shape[0], t.shape[1], t.shape[2:]
    num_groups = int(num_groups)
    _verify_batch_size((n * c // num_groups if num_groups else 0, num_groups) + spatial,
                       [n * c // num_groups if num_groups else 0, num_groups, *spatial])
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError("Expected number of channels in input to be divisible by num_groups, "
                           f"but got input of shape {shape_str(t.shape)} and "
                           f"num_groups={num_groups}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and type_of(p).shape != (c,):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                               f"channels in input, but got {name} of shape "
                               f"{shape_str(type_of(p).shape)} and input of shape "
                               f"{shape_str(t.shape)}")
    _check_float(t, "GroupNormKernelImpl")
    from ir import ops
    # (N, G, C/G, *spatial): normalise over everything after G; the per-channel weight
    # becomes (G, C/G, 1, ...) so it still broadcasts inside the fused record
    grouped = (n, num_groups, c // num_groups) + spatial
    pshape = (num_groups, c // num_groups) + (1,) * len(spatial)
    w = ops.reshape(weight, pshape) if weight is not None else None
    b = ops.reshape(bias, pshape) if bias is not None else None
    out = normalize_over(ops.reshape(input, grouped), tuple(range(2, len(grouped))), w, b, eps)
    return ops.reshape(out, t.shape)


# --- batch_norm / instance_norm pieces (used by compgrad.nn._stateful) ---------------------

def check_norm_input(input, kernel: str = "batch_norm") -> TensorType:
    """The input's type, after PyTorch's float check for the ``kernel``."""
    t = type_of(input)
    _check_float(t, kernel)
    return t


def check_norm_param(p, name: str, channels: int, dtype) -> None:
    """A per-channel parameter or running statistic: ``channels`` elements of ``dtype``."""
    if p is None:
        return
    pt = type_of(p)
    if pt.numel != channels:
        raise RuntimeError(f"{name} should contain {channels} elements not {pt.numel}")
    if pt.dtype is not dtype:
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of "
                           f"{dtype.torch_name}")


def _channel_view(p, ndim: int):
    from ir import ops
    if p is None or ndim <= 2:
        return p
    return ops.reshape(p, (-1,) + (1,) * (ndim - 2))


def batch_norm_stats(input):
    """``(mean, var)`` per channel (dim 1) over the batch and spatial dims; var is biased."""
    from ir import ops
    t = type_of(input)
    dims = (0,) + tuple(range(2, t.ndim))
    var, mean = ops.var_mean(input, dims, correction=0)
    return mean, var


def batch_norm_elemt(input, mean, var, weight=None, bias=None, eps: float = 1e-5):
    """``(input - mean) / sqrt(var + eps) * weight + bias`` with per-channel (dim 1)
    statistics and parameters: batch norm with given (e.g. running) statistics."""
    from ir import ops
    nd = type_of(input).ndim
    out = ops.mul(ops.sub(input, _channel_view(mean, nd)),
                  ops.rsqrt(ops.add(_channel_view(var, nd), eps)))
    if weight is not None:
        out = ops.mul(out, _channel_view(weight, nd))
    if bias is not None:
        out = ops.add(out, _channel_view(bias, nd))
    return out


def batch_norm_train(input, weight=None, bias=None, eps: float = 1e-5):
    """Batch norm with the batch's own statistics (one fused record; the gradient flows
    through the statistics)."""
    nd = type_of(input).ndim
    dims = (0,) + tuple(range(2, nd))
    return normalize_over(input, dims, _channel_view(weight, nd), _channel_view(bias, nd), eps)


def instance_norm_train(input, weight=None, bias=None, eps: float = 1e-5):
    """Instance norm with each sample's own statistics over the spatial dims."""
    nd = type_of(input).ndim
    return normalize_over(input, tuple(range(2, nd)), _channel_view(weight, nd),
                          _channel_view(bias, nd), eps)
