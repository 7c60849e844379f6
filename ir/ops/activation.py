"""Activation functions (relu, gelu, silu, softplus, ...).

Each activation is one elementwise record with PyTorch's dtype support
(most have no integer kernels in PyTorch and raise NotImplementedError),
a numerically stable NumPy reference (sigmoid from ``exp(-|x|)``, softplus
from ``logaddexp``) and a VJP written with ops. Masks in VJPs are built as
``sign(relu(x - a))`` (1 where ``x > a``, else 0), which gives PyTorch's
one-sided gradients at the kinks (``relu'(0) = 0``, hardtanh boundaries 0).

The ``nn.functional`` forms here take no ``inplace`` argument: compgrad's
``nn.functional`` wraps the ones PyTorch gives one.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.special

from ir import dtypes
from ir.dtypes import CATEGORY_BOOL, CATEGORY_FLOAT, CATEGORY_INT
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, float_result_dtype, is_array, register, type_of
from ir.ops.elementwise import add, div, exp, mul, neg, sub
from ir.ops.unary import abs, check_tensor, sign, square, tanh
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType

__all__ = ["sigmoid", "relu", "selu", "celu", "threshold", "hardshrink"]
METHODS = ("sigmoid", "relu", "hardshrink")
INPLACE = ("sigmoid", "relu")
FUNCTIONAL = ("sigmoid", "logsigmoid", "relu", "relu6", "hardtanh", "leaky_relu", "elu", "selu",
              "celu", "gelu", "silu", "mish", "softplus", "hardsigmoid", "hardswish",
              "tanhshrink", "softsign", "threshold", "hardshrink", "softshrink")
INTERNAL: tuple[str, ...] = ()

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --- shared machinery ---------------------------------------------------------------------------

def _rule(name: str, result: str = "same", ints: bool = False, bools: bool = False,
          bool_error: str | None = None):
    """Type rule: ``result`` ``same`` or ``float``; ``ints``/``bools`` whether integer/bool
    inputs have a kernel (else NotImplementedError, or RuntimeError(``bool_error``))."""

    def rule(types, **_attrs):
        (t,) = types
        dt = t.dtype
        if dt.category == CATEGORY_BOOL and bool_error is not None:
            raise RuntimeError(bool_error)
        if (dt.category == CATEGORY_BOOL and not bools) or (
                dt.category == CATEGORY_INT and not ints):
            raise NotImplementedError(f'"{name}" not implemented for \'{dt.torch_name}\'')
        if result == "float":
            dt = float_result_dtype(dt)
        return TensorType(t.shape, dt, t.device)

    rule.__name__ = f"{name}_type_rule"
    return rule


def _impl(name: str, np_fn, keep_ints: bool = False):
    """Reference: ints and bools compute in the default float dtype (unless ``keep_ints``), and
    float16 in float32; the caller casts the result back."""

    def impl(x, **attrs):
        x = x if is_array(x) else np.asarray(x)   # a weak Python number (traced scalars)
        if x.dtype.kind in "iub" and not keep_ints:
            x = x.astype(dtypes.default_float_dtype().np_dtype)
        elif x.dtype == np.float16:
            x = x.astype(np.float32)
        out = np_fn(x, **attrs)  # run under ir.fperr.quiet_call by every interpreter
        return out if is_array(out) else np.asarray(out)

    impl.__name__ = f"{name}_impl"
    return impl


def _direct(np_fn, keep_ints: bool):
    """``OpDef.direct``: ``np_fn`` itself for a tensor the reference would not cast (a
    float32/float64 one, or any kind with ``keep_ints``... but float16)."""

    def direct(types: tuple):
        (t,) = types
        if t.weak or t.dtype is dtypes.float16:
            return None
        kind = t.dtype.np_dtype.kind
        return np_fn if kind == "f" or (keep_ints and kind in "iub") else None

    return direct


def _register(name, rule, np_fn, vjp, samples, keep_ints=False, public=None):
    return register(OpDef(name, OpKind.ELEMENTWISE, rule, _impl(name, np_fn, keep_ints), vjp,
                          samples, public=public or f"nn.functional.{name}",
                          direct=_direct(np_fn, keep_ints),
                          # (every np_fn here computes a new array: ufuncs, where, clip)
                          fresh_result=True))


def _number(value, fn: str, what: str) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise TypeError(f"{fn}(): argument '{what}' must be Number, not {type(value).__name__}")
    return float(value)


def _gt(x, a):
    """1 where ``x > a``, else 0 (in x's float dtype), written with ops."""
    return sign(relu(x if a == 0 else sub(x, a)))


def _lt(x, a):
    """1 where ``x < a``, else 0."""
    return sign(relu(sub(a, x)))


def _sigmoid_np(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def _softplus_np(x):
    return np.logaddexp(x.dtype.type(0), x)


def _samples(low=-3.0, high=3.0, ints_ok=False, float_ints=False, bools_ok=False, kwargs=(),
             python_in_torch=False):
    """Standard samples; ``kwargs`` a sequence of keyword variants (grad-checked too),
    ``float_ints`` for ops that give float from ints; ``python_in_torch`` where torch's
    functional form is Python code that fails on a number with AttributeError."""

    def gen():
        yield Sample((arr(3, 4, low=low, high=high),))
        yield Sample((noncontig(3, 4, low=low, high=high, seed=1),), note="non-contiguous")
        yield Sample((arr(low=low, high=high, seed=2),), note="0-d")
        yield Sample((arr(0, 3),), note="empty")
        yield Sample((arr(6, dtype=np.float64, low=low, high=high, seed=3),))
        yield Sample((arr(6, dtype=np.float16, low=low, high=high, seed=4),), grad=False)
        for i, kw in enumerate(kwargs):
            yield Sample((arr(2, 5, low=low, high=high, seed=10 + i),), dict(kw))
        if ints_ok or float_ints:
            yield Sample((ints(7),), grad=False)
            yield Sample((ints(4, dtype=np.int32, seed=1),), grad=False)
        else:
            yield ErrorSample((ints(3),), error=NotImplementedError, match="Long")
        if bools_ok:
            yield Sample((bools(5),), grad=False)
        yield ErrorSample((2.0,), error=TypeError, match="must be Tensor",
                          torch=not python_in_torch)

    return gen


# --- sigmoid, logsigmoid ---------------------------------------------------------------------

def _sigmoid_vjp(ctx, g):
    y = ctx.output
    return (mul(g, mul(y, sub(1, y))),)


def _sigmoid_samples():
    yield from _samples(-6.0, 6.0, float_ints=True, bools_ok=True, python_in_torch=True)()
    yield Sample((np.array([-100.0, -30.0, 30.0, 100.0], np.float32),), note="saturation")


SIGMOID = _register("sigmoid", _rule("sigmoid", "float", ints=True, bools=True), _sigmoid_np,
                    _sigmoid_vjp, _sigmoid_samples)


def sigmoid(input):
    """``1 / (1 + exp(-input))``, computed without overflow."""
    check_tensor("sigmoid", input)
    return apply(SIGMOID, input)


def _logsigmoid_np(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _logsigmoid_vjp(ctx, g):
    return (mul(g, sigmoid(neg(ctx.inputs[0]))),)


def _logsigmoid_samples():
    yield from _samples(-6.0, 6.0)()
    yield Sample((np.array([-100.0, -30.0, 30.0, 100.0], np.float32),), note="saturation")


LOGSIGMOID = _register("logsigmoid", _rule("log_sigmoid"), _logsigmoid_np, _logsigmoid_vjp,
                       _logsigmoid_samples)


def logsigmoid(input):
    """``log(sigmoid(input))``, stable for large ``|input|``."""
    check_tensor("log_sigmoid", input)
    return apply(LOGSIGMOID, input)


# --- relu, relu6, hardtanh, leaky_relu, threshold -----------------------------------------------

def _relu_np(x):
    if type(x) is np.ndarray and x.size >= 4096 and x.shape[-1] >= 64:
        # against a row of zeros, np.maximum takes NumPy's SIMD loop; against a scalar,
        # its plain one (float32 [256,512]: 35 us against 63; the same bits, -0.0 and
        # NaN included)
        return np.maximum(x, _zeros_row(x.shape[-1], x.dtype))
    return np.maximum(x, x.dtype.type(0))


@functools.lru_cache(maxsize=64)
def _zeros_row(n: int, dtype: np.dtype) -> np.ndarray:
    row = np.zeros(n, dtype)
    row.flags.writeable = False
    return row


def _relu_vjp(ctx, g):
    # (a bool mask, mul(g, gt(output, 0)), is ~40 us cheaper eagerly on [256,512], but
    # compiled programs then keep the mask as one more array from the forward to the
    # backward: W2's replayed step took 1.2 us longer, 18.8 against 17.6)
    return (mul(g, sign(ctx.output)),)


def _relu_samples():
    yield from _samples(ints_ok=True)()
    yield Sample((ints(5, dtype=np.uint8, low=0, high=9),), grad=False)
    yield ErrorSample((bools(3),), error=RuntimeError, match="Boolean inputs not supported")


RELU = _register("relu", _rule("relu", ints=True,
                               bool_error="Boolean inputs not supported for relu"),
                 _relu_np, _relu_vjp, _relu_samples, keep_ints=True)


def relu(input):
    """``max(input, 0)``."""
    check_tensor("relu", input)
    return apply(RELU, input)


def _hardtanh_rule(types, min_val, max_val):
    (t,) = types
    if t.dtype is dtypes.uint8 and min_val < 0:
        raise RuntimeError("cannot do hardtanh on an unsigned type with negative lower bound.")
    return _rule("hardtanh", ints=True, bool_error="Bool inputs not supported for hardtanh")(
        types)


def _hardtanh_np(x, min_val, max_val):
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)  # the caller casts back, truncating fractional bounds
    return np.clip(x, min_val, max_val)


def _hardtanh_vjp(ctx, g):
    x = ctx.inputs[0]
    return (mul(g, mul(_gt(x, ctx.attrs["min_val"]), _lt(x, ctx.attrs["max_val"]))),)


def _hardtanh_samples():
    yield from _samples(ints_ok=True, kwargs=({"min_val": -0.5, "max_val": 2.0},))()
    yield Sample((ints(6),), {"min_val": -1.5, "max_val": 1.5}, grad=False)
    yield Sample((ints(6, dtype=np.uint8, low=0, high=9),), {"min_val": 0.0, "max_val": 6.0},
                 grad=False)
    yield ErrorSample((arr(3),), {"min_val": 2.0, "max_val": 1.0}, error=ValueError,
                      match="min_val cannot be greater than max_val")
    yield ErrorSample((ints(3, dtype=np.uint8, low=0, high=3),), error=RuntimeError,
                      match="unsigned type with negative lower bound")
    yield ErrorSample((bools(3),), error=RuntimeError, match="Bool inputs not supported")


HARDTANH = register(OpDef("hardtanh", OpKind.ELEMENTWISE, _hardtanh_rule,
                          _impl("hardtanh", _hardtanh_np, keep_ints=True), _hardtanh_vjp,
                          _hardtanh_samples, public="nn.functional.hardtanh"))


def hardtanh(input, min_val=-1.0, max_val=1.0):
    """``input`` clamped to ``[min_val, max_val]``."""
    check_tensor("hardtanh", input)
    min_val = _number(min_val, "hardtanh", "min_val")
    max_val = _number(max_val, "hardtanh", "max_val")
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return apply(HARDTANH, input, min_val=min_val, max_val=max_val)


def _relu6_samples():
    yield from _samples(-2.0, 8.0, ints_ok=True)()
    yield Sample((ints(6, dtype=np.uint8, low=0, high=9),), grad=False)
    yield ErrorSample((bools(3),), error=RuntimeError, match="Bool inputs not supported")


RELU6 = register(OpDef("relu6", OpKind.ELEMENTWISE, _hardtanh_rule,
                       _impl("relu6", _hardtanh_np, keep_ints=True), _hardtanh_vjp,
                       _relu6_samples, public="nn.functional.relu6"))


def relu6(input):
    """``min(max(input, 0), 6)``."""
    check_tensor("relu6", input)
    return apply(RELU6, input, min_val=0.0, max_val=6.0)


def _leaky_relu_np(x, negative_slope):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def _leaky_relu_vjp(ctx, g):
    slope = ctx.attrs["negative_slope"]
    m = _gt(ctx.inputs[0], 0)
    return (mul(g, add(mul(m, 1.0 - slope), slope)),)


LEAKY_RELU = _register("leaky_relu", _rule("leaky_relu"), _leaky_relu_np, _leaky_relu_vjp,
                       _samples(kwargs=({"negative_slope": 0.2}, {"negative_slope": -1.5})))


def leaky_relu(input, negative_slope=0.01):
    """``input`` where positive, else ``negative_slope * input``."""
    check_tensor("leaky_relu", input)
    slope = _number(negative_slope, "leaky_relu", "negative_slope")
    return apply(LEAKY_RELU, input, negative_slope=slope)


def _threshold_np(x, threshold, value):
    # a NumPy scalar of x's dtype (cast as C casts a float to an int): a kernel argument
    # on every device, where a 0-d host array would not be next to a device array
    fill = np.array(value).astype(x.dtype)[()] if x.dtype.kind in "iu" else x.dtype.type(value)
    return np.where(x > threshold, x, fill)


def _threshold_vjp(ctx, g):
    return (mul(g, _gt(ctx.inputs[0], ctx.attrs["threshold"])),)


def _threshold_samples():
    yield Sample((arr(3, 4), 0.5, -7.0))
    yield Sample((noncontig(3, 4), -0.5, 2.0))
    yield Sample((arr(), 0.1, 0.0))
    yield Sample((arr(0, 3), 0.1, 0.0))
    yield Sample((arr(5, dtype=np.float64), 0.3, 1.0))
    yield Sample((arr(5, dtype=np.float16), 0.3, 1.0), grad=False)
    yield Sample((ints(7), 1, 5), grad=False)
    yield Sample((ints(7), 1.5, 5.5), grad=False, note="float threshold and value on ints")
    yield ErrorSample((bools(3), 0, 1), error=NotImplementedError, match="Bool")


THRESHOLD = register(OpDef("threshold", OpKind.ELEMENTWISE, _rule("threshold", ints=True),
                           _impl("threshold", _threshold_np, keep_ints=True), _threshold_vjp,
                           _threshold_samples, public="nn.functional.threshold"))


def threshold(input, threshold, value):
    """``input`` where ``input > threshold``, else ``value``."""
    check_tensor("threshold", input)
    th = _number(threshold, "threshold", "threshold")
    value = _number(value, "threshold", "value")
    return apply(THRESHOLD, input, threshold=th, value=value)


# --- elu, selu, celu ----------------------------------------------------------------------------

def _elu_np(x, alpha, scale, input_scale):
    t = x.dtype.type
    neg_part = t(scale * alpha) * np.expm1(np.minimum(x, 0) * t(input_scale))
    return np.where(x > 0, x * t(scale), neg_part)


def _elu_vjp(ctx, g):
    a = ctx.attrs
    x = ctx.inputs[0]
    m = _gt(x, 0)
    # exp of min(x, 0): finite everywhere, and only used where x <= 0
    e = exp(mul(neg(relu(neg(x))), a["input_scale"]))
    neg_slope = mul(e, a["alpha"] * a["scale"] * a["input_scale"])
    return (mul(g, add(mul(m, a["scale"]), mul(sub(1, m), neg_slope))),)


ELU = _register("elu", _rule("elu"), _elu_np, _elu_vjp,
                _samples(kwargs=({"alpha": 0.5}, {"alpha": -1.0})))
SELU = _register("selu", _rule("elu"), _elu_np, _elu_vjp, _samples())


def _celu_samples():
    yield from _samples(kwargs=({"alpha": 0.5}, {"alpha": 2.0}))()
    yield ErrorSample((arr(3),), {"alpha": 0.0}, error=RuntimeError,
                      match="alpha cannot be 0 for CELU")


CELU = _register("celu", _rule("elu"), _elu_np, _elu_vjp, _celu_samples)


def elu(input, alpha=1.0):
    """``input`` where positive, else ``alpha * (exp(input) - 1)``."""
    check_tensor("elu", input)
    alpha = _number(alpha, "elu", "alpha")
    return apply(ELU, input, alpha=alpha, scale=1.0, input_scale=1.0)


def selu(input):
    """``scale * elu(input, alpha)`` with the self-normalising constants."""
    check_tensor("selu", input)
    return apply(SELU, input, alpha=_SELU_ALPHA, scale=_SELU_SCALE, input_scale=1.0)


def celu(input, alpha=1.0):
    """``max(0, input) + min(0, alpha * (exp(input / alpha) - 1))``."""
    check_tensor("celu", input)
    alpha = _number(alpha, "celu", "alpha")
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return apply(CELU, input, alpha=alpha, scale=1.0, input_scale=1.0 / alpha)


# --- gelu, silu, mish, softplus ---------------------------------------------------------------

def _gelu_np(x, approximate):
    t = x.dtype.type
    if approximate == "tanh":
        inner = t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x * x * x)
        return t(0.5) * x * (t(1) + np.tanh(inner))
    return x * scipy.special.ndtr(x).astype(x.dtype)


def _gelu_vjp(ctx, g):
    from ir.ops.unary import erf
    x = ctx.inputs[0]
    if ctx.attrs["approximate"] == "tanh":
        x2 = square(x)
        inner = mul(mul(x, add(mul(x2, 0.044715), 1)), _SQRT_2_OVER_PI)
        th = tanh(inner)
        dinner = mul(add(mul(x2, 3 * 0.044715), 1), _SQRT_2_OVER_PI)
        left = mul(add(th, 1), 0.5)
        right = mul(mul(mul(x, 0.5), sub(1, square(th))), dinner)
        return (mul(g, add(left, right)),)
    cdf = mul(add(erf(mul(x, 1.0 / math.sqrt(2.0))), 1), 0.5)
    pdf = mul(exp(mul(square(x), -0.5)), _INV_SQRT_2PI)
    return (mul(g, add(cdf, mul(x, pdf))),)


def _gelu_samples():
    yield from _samples(-4.0, 4.0, kwargs=({"approximate": "tanh"}, {"approximate": "none"}))()
    yield Sample((arr(5, dtype=np.float64, low=-4.0, high=4.0, seed=9),), {"approximate": "tanh"})
    yield ErrorSample((arr(3),), {"approximate": "fast"}, error=RuntimeError,
                      match="approximate argument must be either none or tanh")


GELU = _register("gelu", _rule("GeluKernelImpl"), _gelu_np, _gelu_vjp, _gelu_samples)


def gelu(input, approximate="none"):
    """``input * Phi(input)`` (``approximate='tanh'``: the tanh approximation)."""
    check_tensor("gelu", input)
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return apply(GELU, input, approximate=approximate)


def _silu_np(x):
    return x * _sigmoid_np(x)


def _silu_vjp(ctx, g):
    x = ctx.inputs[0]
    s = sigmoid(x)
    return (mul(g, mul(s, add(mul(x, sub(1, s)), 1))),)


SILU = _register("silu", _rule("silu"), _silu_np, _silu_vjp, _samples(-6.0, 6.0))


def silu(input):
    """``input * sigmoid(input)``."""
    check_tensor("silu", input)
    return apply(SILU, input)


def _mish_np(x):
    return x * np.tanh(_softplus_np(x))


def _mish_vjp(ctx, g):
    x = ctx.inputs[0]
    t = tanh(softplus(x))
    return (mul(g, add(t, mul(mul(x, sigmoid(x)), sub(1, square(t))))),)


def _mish_samples():
    yield from _samples(-6.0, 6.0)()
    yield Sample((np.array([-100.0, -30.0, 30.0, 100.0], np.float32),), note="saturation")


MISH = _register("mish", _rule("mish"), _mish_np, _mish_vjp, _mish_samples)


def mish(input):
    """``input * tanh(softplus(input))``."""
    check_tensor("mish", input)
    return apply(MISH, input)


def _softplus_impl_np(x, beta, threshold):
    t = x.dtype.type
    bx = x * t(beta)
    return np.where(bx > threshold, x, _softplus_np(bx) / t(beta))


def _softplus_vjp(ctx, g):
    beta, th = ctx.attrs["beta"], ctx.attrs["threshold"]
    bx = mul(ctx.inputs[0], beta)
    m = _gt(bx, th)
    return (mul(g, add(m, mul(sub(1, m), sigmoid(bx)))),)


def _softplus_samples():
    yield from _samples(-6.0, 6.0, kwargs=({"beta": 2.0}, {"beta": 0.5, "threshold": 1.0},
                                            {"threshold": 2.5}))()
    yield Sample((np.array([-100.0, -30.0, 30.0, 100.0], np.float32),), note="saturation")


SOFTPLUS = _register("softplus", _rule("softplus"), _softplus_impl_np, _softplus_vjp,
                     _softplus_samples)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * input)) / beta``, linear where ``beta * input > threshold``."""
    check_tensor("softplus", input)
    beta = _number(beta, "softplus", "beta")
    threshold = _number(threshold, "softplus", "threshold")
    return apply(SOFTPLUS, input, beta=beta, threshold=threshold)


# --- hard and shrinking activations -------------------------------------------------------------

def _hardsigmoid_np(x):
    t = x.dtype.type
    return np.minimum(np.maximum(x + t(3), t(0)), t(6)) / t(6)


def _hardsigmoid_vjp(ctx, g):
    x = ctx.inputs[0]
    return (mul(g, mul(mul(_gt(x, -3.0), _lt(x, 3.0)), 1.0 / 6.0)),)


HARDSIGMOID = _register("hardsigmoid", _rule("hardsigmoid"), _hardsigmoid_np, _hardsigmoid_vjp,
                        _samples(-5.0, 5.0))


def hardsigmoid(input):
    """``relu6(input + 3) / 6``."""
    check_tensor("hardsigmoid", input)
    return apply(HARDSIGMOID, input)


def _hardswish_np(x):
    return x * _hardsigmoid_np(x)


def _hardswish_vjp(ctx, g):
    x = ctx.inputs[0]
    below = _lt(x, 3.0)
    hi = sub(1, below)                            # x >= 3, as in PyTorch
    mid = mul(_gt(x, -3.0), below)                # -3 < x < 3
    return (mul(g, add(mul(mid, add(div(x, 3.0), 0.5)), hi)),)


HARDSWISH = _register("hardswish", _rule("hardswish"), _hardswish_np, _hardswish_vjp,
                      _samples(-5.0, 5.0))


def hardswish(input):
    """``input * relu6(input + 3) / 6``."""
    check_tensor("hardswish", input)
    return apply(HARDSWISH, input)


def _tanhshrink_np(x):
    return x - np.tanh(x)


def _tanhshrink_vjp(ctx, g):
    return (mul(g, square(tanh(ctx.inputs[0]))),)


TANHSHRINK = _register("tanhshrink", _rule(
    "tanhshrink", "float", ints=True,
    bool_error="Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
               "trying to invert a mask, use the `~` or `logical_not()` operator instead."),
    _tanhshrink_np, _tanhshrink_vjp, _samples(float_ints=True, python_in_torch=True))


def tanhshrink(input):
    """``input - tanh(input)``."""
    check_tensor("tanhshrink", input)
    return apply(TANHSHRINK, input)


def _softsign_np(x):
    return x / (x.dtype.type(1) + np.abs(x))


def _softsign_vjp(ctx, g):
    return (div(g, square(add(abs(ctx.inputs[0]), 1))),)


def _softsign_samples():
    yield from _samples(-5.0, 5.0, float_ints=True, python_in_torch=True)()
    yield ErrorSample((bools(3),), error=NotImplementedError, match="Bool")


SOFTSIGN = _register("softsign", _rule("abs", "float", ints=True), _softsign_np, _softsign_vjp,
                     _softsign_samples)


def softsign(input):
    """``input / (1 + |input|)``."""
    check_tensor("softsign", input)
    return apply(SOFTSIGN, input)


def _hardshrink_np(x, lambd):
    return np.where(np.abs(x) > lambd, x, x.dtype.type(0))


def _shrink_vjp(ctx, g):
    return (mul(g, _gt(abs(ctx.inputs[0]), ctx.attrs["lambd"])),)


HARDSHRINK = _register("hardshrink", _rule("hardshrink"), _hardshrink_np, _shrink_vjp,
                       _samples(kwargs=({"lambd": 1.0}, {"lambd": 0.0})))


def hardshrink(input, lambd=0.5):
    """``input`` where ``|input| > lambd``, else 0."""
    check_tensor("hardshrink", input)
    return apply(HARDSHRINK, input, lambd=_number(lambd, "hardshrink", "lambd"))


def _softshrink_np(x, lambd):
    t = x.dtype.type
    return np.where(x > lambd, x - t(lambd), np.where(x < -lambd, x + t(lambd), t(0)))


def _softshrink_samples():
    yield from _samples(kwargs=({"lambd": 1.0}, {"lambd": 0.0}))()
    yield ErrorSample((arr(3),), {"lambd": -1.0}, error=RuntimeError,
                      match="lambda must be in range")


SOFTSHRINK = _register("softshrink", _rule("softshrink"), _softshrink_np, _shrink_vjp,
                       _softshrink_samples)


def softshrink(input, lambd=0.5):
    """``input - lambd`` above ``lambd``, ``input + lambd`` below ``-lambd``, else 0."""
    check_tensor("softshrink", input)
    lambd = _number(lambd, "softshrink", "lambd")
    if lambd < 0:
        dt = type_of(input).dtype
        hi = float(np.finfo(dt.np_dtype).max) if dt.category == CATEGORY_FLOAT else math.inf
        raise RuntimeError(f"lambda must be in range [0, {hi:g}] for input dtype "
                           f"{dt.torch_name}, but found {lambd:g}")
    return apply(SOFTSHRINK, input, lambd=lambd)
