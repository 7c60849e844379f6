"""Elementwise arithmetic: add, sub, mul, div (floor_divide), remainder, fmod, pow, neg, exp
and dtype conversion.

These are the patterns the other elementwise families follow: a public
function that normalises PyTorch's arguments, a record registered with
``register_elementwise``, and a VJP written with ops.
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
    cast,
    check_dtype_arg,
    elementwise_rule,
    float_direct,
    is_array,
    is_scalar,
    promote_operands,
    promoted_np_dtype,
    register,
    register_elementwise,
    reject_out,
    type_of,
)
from ir.samples import arr, bools, ints, noncontig, positive
from ir.types import TensorType

__all__ = ["add", "sub", "mul", "div", "true_divide", "neg", "negative", "exp", "subtract",
           "multiply", "divide", "rsub", "floor_divide", "remainder", "fmod", "pow",
           "float_power"]
METHODS = ("add", "sub", "mul", "div", "true_divide", "neg", "negative", "exp", "subtract",
           "multiply", "divide", "floor_divide", "remainder", "fmod", "pow", "float_power")
INPLACE = ("add", "sub", "mul", "div", "true_divide", "neg", "negative", "exp", "subtract",
           "multiply", "divide", "floor_divide", "remainder", "fmod", "pow")
INTERNAL = ("to_dtype", "to_device")


def _binary_samples():
    yield Sample((arr(3, 4), arr(3, 4, seed=1)))
    yield Sample((arr(2, 1, 4), arr(3, 1, seed=1)), note="broadcast both ways")
    yield Sample((arr(), arr(5, seed=1)), note="0-d with 1-d")
    yield Sample((noncontig(3, 4), arr(4, seed=2)), note="non-contiguous")
    yield Sample((arr(0, 3), arr(3, seed=1)), note="empty")
    yield Sample((arr(3, 4), 2.5))
    yield Sample((ints(3, 4), ints(3, 4, seed=1)), grad=False)
    yield Sample((ints(4), 2.5), grad=False, note="int tensor with float scalar")


# --- add / sub ---------------------------------------------------------------------------

def _add_vjp(ctx, g):
    return g, g


ADD = register_elementwise("add", np.add, _add_vjp, _binary_samples)


def _check_alpha(input, other, alpha):
    t = promote_operands(input, other)
    if t.category != dtypes.CATEGORY_FLOAT and isinstance(alpha, float):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")
    if t is dtypes.bool_ and not isinstance(alpha, bool):
        raise RuntimeError("Boolean alpha only supported for Boolean results.")


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other`` with broadcasting and type promotion."""
    if out is not None:
        reject_out(out)
    if alpha != 1:
        _check_alpha(input, other, alpha)
        other = mul(other, alpha)
    return apply(ADD, input, other)


def _sub_vjp(ctx, g):
    return g, neg(g)


SUB = register_elementwise("sub", np.subtract, _sub_vjp, _binary_samples, allow_bool=False)


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other``."""
    reject_out(out)
    for x in (input, other):
        if type_of(x).dtype is dtypes.bool_:  # bool scalars too, as in PyTorch
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
    if alpha != 1:
        _check_alpha(input, other, alpha)
        other = mul(other, alpha)
    return apply(SUB, input, other)


# --- mul / div ---------------------------------------------------------------------------

def _mul_vjp(ctx, g):
    # read each saved input only for the other's gradient (x.mul_(3) must not need x)
    need = ctx.needs_input_grad
    return (mul(g, ctx.inputs[1]) if need[0] else None,
            mul(g, ctx.inputs[0]) if need[1] else None)


MUL = register_elementwise("mul", np.multiply, _mul_vjp, _binary_samples)


def mul(input, other, *, out=None):
    """Elementwise product."""
    reject_out(out)
    return apply(MUL, input, other)


def _div_samples():
    yield Sample((arr(3, 4), arr(3, 4, low=0.5, high=2.0, seed=1)))
    yield Sample((arr(2, 1, 4), arr(3, 1, low=0.5, high=2.0, seed=1)))
    yield Sample((arr(3), 4.0))
    yield Sample((ints(5), ints(5, low=1, high=4, seed=3)), grad=False, note="int true division")
    yield Sample((ints(6), ints(6, low=1, high=3, seed=3)), {"rounding_mode": "floor"},
                 grad=False)
    yield Sample((ints(6), ints(6, low=1, high=3, seed=3)), {"rounding_mode": "trunc"},
                 grad=False)
    yield Sample((arr(6), arr(6, low=0.5, high=2.0, seed=1)), {"rounding_mode": "floor"},
                 grad=False)
    yield Sample((arr(6), -positive(6, seed=1)), {"rounding_mode": "trunc"}, grad=False)
    yield Sample((7, ints(6, low=1, high=4, seed=3)), {"rounding_mode": "floor"}, grad=False,
                 note="scalar dividend (7 // t)")
    yield Sample((np.array([1.0, 0.3, -1.0, 0.0], np.float32), 0.1), {"rounding_mode": "floor"},
                 grad=False, note="fmod-based floor: 1.0 // 0.1 == 9")
    yield Sample((arr(4), 0.0), {"rounding_mode": "floor"}, grad=False, note="float / 0")
    yield Sample((bools(4), bools(4, seed=1)), grad=False)
    yield ErrorSample((ints(3), 0), {"rounding_mode": "floor"}, RuntimeError, "ZeroDivisionError")
    yield ErrorSample((ints(3), ints(3, low=0, high=0)), {"rounding_mode": "trunc"}, RuntimeError,
                      "ZeroDivisionError")
    yield ErrorSample((bools(3), bools(3)), {"rounding_mode": "floor"}, NotImplementedError,
                      "not implemented for 'Bool'")
    yield ErrorSample((arr(3), 2.0), {"rounding_mode": "round"}, RuntimeError, "rounding_mode")


def _div_vjp(ctx, g):
    need = ctx.needs_input_grad
    mode = ctx.attrs["rounding_mode"]
    if mode is not None:
        # floor/trunc division is piecewise constant: zero gradient, as in PyTorch
        return mul(g, 0), (mul(g, 0) if need[1] else None)
    b = ctx.inputs[1]
    ga = div(g, b) if need[0] else None
    # PyTorch's -g * ((a / b) / b): from the inputs, not the output, so an in-place op on
    # the quotient ((x / w).add_(1)) leaves the backward valid, as in PyTorch
    gb = neg(mul(g, div(div(ctx.inputs[0], b), b))) if need[1] else None
    return ga, gb


def _div_impl(a, b, rounding_mode=None):
    dt = promoted_np_dtype(a, b)
    a, b = cast(a, dt), cast(b, dt)
    with np.errstate(all="ignore"):
        if rounding_mode is None:
            if dt.kind != "f":
                a = a.astype(dtypes.default_float_dtype().np_dtype)
                b = b.astype(dtypes.default_float_dtype().np_dtype) if is_array(
                    b) else float(b)
            return np.true_divide(a, b)
        if dt.kind in "iub":
            if np.any(b == 0):
                raise RuntimeError("ZeroDivisionError")
            if rounding_mode == "floor":
                return np.floor_divide(a, b)
            q = np.floor_divide(a, b)
            # trunc: round toward zero where signs differ and the division is inexact
            fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
            return q + fix
        if rounding_mode == "floor":
            return np.floor_divide(a, b)  # fmod-based, as PyTorch's div_floor
        return np.trunc(np.true_divide(a, b))


def _div_rule(types, rounding_mode=None):
    if rounding_mode is None:
        return elementwise_rule("float", name="div")(types)
    out = elementwise_rule("promote", name="div")(types)
    if out.dtype is dtypes.bool_:
        raise NotImplementedError(f'"div_{rounding_mode}_cpu" not implemented for \'Bool\'')
    return out


DIV = register(OpDef("div", OpKind.ELEMENTWISE, _div_rule, _div_impl, _div_vjp, _div_samples))


def div(input, other, *, rounding_mode=None, out=None):
    """Division; ``rounding_mode`` None (true division), ``'trunc'`` or ``'floor'``."""
    reject_out(out)
    if rounding_mode not in (None, "trunc", "floor"):
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                           f"but found '{rounding_mode}'")
    return apply(DIV, input, other, rounding_mode=rounding_mode)


true_divide = div


# --- aliases -----------------------------------------------------------------------------

subtract = sub
multiply = mul
divide = div


def rsub(input, other, *, alpha=1, out=None):
    """``other - alpha * input`` (the reflected subtraction)."""
    reject_out(out)
    return sub(other, input, alpha=alpha)


def floor_divide(input, other, *, out=None):
    """``input // other``: division rounded toward negative infinity."""
    reject_out(out)
    return apply(DIV, input, other, rounding_mode="floor")


# --- remainder / fmod --------------------------------------------------------------------

def _int_by_zero(b) -> None:
    if np.any(b == 0):   # b: an array or a NumPy scalar
        raise RuntimeError("ZeroDivisionError")


def _remainder_impl(a, b):
    dt = promoted_np_dtype(a, b)
    a, b = cast(a, dt), cast(b, dt)
    if dt.kind in "iu":
        _int_by_zero(b)
    with np.errstate(all="ignore"):
        return np.remainder(a, b)  # Python's sign convention: the result has b's sign


def _fmod_impl(a, b):
    dt = promoted_np_dtype(a, b)
    a, b = cast(a, dt), cast(b, dt)
    if dt.kind in "iu":
        _int_by_zero(b)
    with np.errstate(all="ignore"):
        return np.fmod(a, b)  # C's convention: the result has a's sign


def _mod_rule(kernel):
    def rule(types):
        out = elementwise_rule("promote", name=kernel)(types)
        if out.dtype is dtypes.bool_:
            raise NotImplementedError(f'"{kernel}_cpu" not implemented for \'Bool\'')
        return out

    rule.__name__ = f"_{kernel}_rule"
    return rule


def _remainder_vjp(ctx, g):
    if not ctx.needs_input_grad[1]:
        return g, None
    a, b = ctx.inputs
    return g, neg(mul(g, div(a, b, rounding_mode="floor")))


def _fmod_vjp(ctx, g):
    if not ctx.needs_input_grad[1]:
        return g, None
    a, b = ctx.inputs
    return g, neg(mul(g, div(a, b, rounding_mode="trunc")))


def _mod_samples(scalar_first: bool):
    def samples():
        yield Sample((arr(3, 4, low=-5, high=5), arr(3, 4, low=0.5, high=2.0, seed=1)))
        yield Sample((arr(3, 4, low=-5, high=5), -positive(3, 4, low=0.5, high=2.0, seed=1)),
                     note="negative divisor")
        yield Sample((arr(2, 1, 4, low=-5, high=5), positive(3, 1, seed=1)), note="broadcast")
        yield Sample((noncontig(3, 4, low=-5, high=5), positive(4, seed=2)), note="non-contig")
        yield Sample((arr(low=-5, high=5), positive(0, seed=1)), note="empty")
        yield Sample((arr(5, low=-5, high=5), 1.5))
        yield Sample((arr(5, low=-5, high=5), -1.5))
        yield Sample((arr(4, dtype=np.float64, low=-5, high=5), positive(4, seed=1)))
        yield Sample((ints(6), ints(6, low=1, high=4, seed=3)), grad=False)
        yield Sample((ints(6), ints(6, low=-4, high=-1, seed=3)), grad=False)
        yield Sample((ints(6, dtype=np.int32), 3), grad=False)
        yield Sample((ints(6), 2.5), grad=False, note="int tensor, float scalar")
        yield Sample((np.array([1.0, -1.0, 2.0], np.float32), 0.0), grad=False, note="x % 0")
        yield ErrorSample((ints(3), 0), {}, RuntimeError, "ZeroDivisionError")
        yield ErrorSample((ints(3), ints(3, low=0, high=0)), {}, RuntimeError,
                          "ZeroDivisionError")
        yield ErrorSample((bools(3), bools(3, seed=1)), {}, NotImplementedError,
                          "not implemented for 'Bool'")
        if scalar_first:
            # torch has no derivative for remainder(Scalar, Tensor): compare values only
            yield Sample((7, ints(5, low=1, high=4)), grad=False)
            yield Sample((-2.5, positive(5)), grad=False)
        else:
            yield ErrorSample((7, ints(3, low=1, high=4)), {}, TypeError, "must be Tensor")

    samples.__name__ = "_mod_samples"
    return samples


REMAINDER = register(OpDef("remainder", OpKind.ELEMENTWISE, _mod_rule("remainder"),
                           _remainder_impl, _remainder_vjp, _mod_samples(True)))
FMOD = register(OpDef("fmod", OpKind.ELEMENTWISE, _mod_rule("fmod"), _fmod_impl, _fmod_vjp,
                      _mod_samples(False)))


def _require_tensor(fn: str, name: str, position: int, x) -> None:
    if is_scalar(x):
        raise TypeError(f"{fn}(): argument '{name}' (position {position}) must be Tensor, not "
                        f"{type(x).__name__}")


def remainder(input, other, *, out=None):
    """Python's modulus ``input % other``: the result has the sign of ``other``."""
    reject_out(out)
    return apply(REMAINDER, input, other)


def fmod(input, other, *, out=None):
    """C's ``fmod``: the remainder of truncated division (the sign of ``input``)."""
    reject_out(out)
    _require_tensor("fmod", "input", 1, input)
    return apply(FMOD, input, other)


# --- pow ---------------------------------------------------------------------------------

_NEG_INT_POW = "Integers to negative integer powers are not allowed."


def _int_pow(a, b, dt):
    """Integer power as PyTorch computes it: negative exponents give 1/a truncated."""
    a, b = cast(a, dt), cast(b, dt)
    negative = b < 0
    if not np.any(negative):
        return np.power(a, b)
    r = np.power(a, np.where(negative, 0, b).astype(dt))
    odd = (b % 2) != 0
    inv = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(dt)
    return np.where(negative, inv, r)


def _pow_impl(a, b):
    dt = promoted_np_dtype(a, b)
    if dt.kind in "iu":
        if not is_array(b) and b < 0:
            raise RuntimeError(_NEG_INT_POW)
        return _int_pow(a, b, dt)   # (errors ignored by every caller: ir.fperr)
    return np.power(cast(a, dt), cast(b, dt))


def _pow_rule(types):
    out = elementwise_rule("promote", name="pow")(types)
    if out.dtype is dtypes.bool_:
        raise NotImplementedError("\"pow\" not implemented for 'Bool'")
    return out


def _log_of(x, dtype):
    """log(x) for the exponent gradient: a Python float for a scalar base."""
    from ir import ops
    if is_scalar(x):
        x = float(x)
        return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
    if type_of(x).dtype is not dtype:
        x = to_dtype(x, dtype)
    return ops.log(x)


def _pow_vjp(ctx, g):
    from ir.ops.compare import eq, ge, logical_and, where
    need = ctx.needs_input_grad
    a, b = ctx.inputs   # either gradient reads both values
    ga = gb = None
    if need[0]:
        if is_scalar(b):
            ga = mul(g, 0) if b == 0 else mul(g, mul(pow(a, b - 1), b))
        else:
            ga = where(eq(b, 0), 0, mul(g, mul(pow(a, sub(b, 1)), b)))
    if need[1]:
        # d/db a**b = a**b * log(a); PyTorch takes 0 where a == 0 and b >= 0
        out = ctx.output
        log_a = _log_of(a, type_of(out).dtype)
        zero_base = eq(a, 0) if not is_scalar(a) else (a == 0)
        term = mul(out, log_a)
        if zero_base is True:
            term = where(ge(b, 0), 0, term)
        elif zero_base is not False:
            term = where(logical_and(zero_base, ge(b, 0)), 0, term)
        gb = mul(g, term)
    return ga, gb


def _pow_samples():
    yield Sample((positive(3, 4), arr(3, 4, seed=1)))
    yield Sample((positive(2, 1, 4), arr(3, 1, seed=1)), note="broadcast both ways")
    yield Sample((positive(), arr(5, seed=1)), note="0-d base")
    yield Sample((noncontig(3, 4, low=0.2, high=3.0), arr(4, seed=2)), note="non-contiguous")
    yield Sample((positive(0, 3), arr(3, seed=1)), note="empty")
    yield Sample((positive(3, 4, dtype=np.float64), arr(4, dtype=np.float64, seed=1)))
    yield Sample((positive(3, 4), 2.5))
    yield Sample((arr(3, 4), 2), note="negative base, int exponent")
    yield Sample((arr(3, 4), 3.0))
    yield Sample((arr(5), -2))
    yield Sample((arr(5), 0), note="exponent 0: zero gradient")
    yield Sample((arr(5), 0.5), grad=False, note="nan for negative bases")
    yield Sample((2.0, arr(3, 4)), note="scalar base")
    yield Sample((0.5, arr(5, dtype=np.float64)), note="scalar base < 1")
    yield Sample((np.array([0.0, 0.0, 1.0, 2.0], np.float32),
                  np.array([0.0, 2.0, -1.0, 1.5], np.float32)), grad=False,
                 note="zero bases (gradients in tests/ops/test_binary.py)")
    yield Sample((ints(5), ints(5, low=0, high=3, seed=1)), grad=False)
    yield Sample((np.array([1, -1, -1, 2, 0, 3], np.int64),
                  np.array([-1, -1, -2, -2, 2, 0], np.int64)), grad=False,
                 note="negative int exponents in a tensor")
    yield Sample((ints(4, dtype=np.int32), 2), grad=False)
    yield Sample((2, ints(4, low=-2, high=3)), grad=False, note="int scalar base")
    yield Sample((2.0, ints(4, low=-2, high=3)), grad=False, note="float scalar base, int exps")
    yield Sample((ints(4), 2.5), grad=False, note="int tensor, float exponent")
    yield Sample((ints(4), -1.0), grad=False)
    yield Sample((bools(4), 2), grad=False)
    yield Sample((positive(3), np.array(2, np.int64)), note="float base, 0-d int exponent")
    yield ErrorSample((ints(3), -1), {}, RuntimeError, _NEG_INT_POW)
    yield ErrorSample((ints(), -2), {}, RuntimeError, _NEG_INT_POW)
    yield ErrorSample((bools(3), bools(3, seed=1)), {}, NotImplementedError,
                      "not implemented for 'Bool'")


POW = register(OpDef("pow", OpKind.ELEMENTWISE, _pow_rule, _pow_impl, _pow_vjp, _pow_samples,
                     direct=float_direct(np.power)))


def pow(input, exponent, *, out=None):  # noqa: A001 - PyTorch's name
    """``input ** exponent``; either may be a Python scalar (``pow(2.0, t)``)."""
    reject_out(out)
    if (is_scalar(exponent) and not isinstance(exponent, (bool, np.bool_, float, np.floating))
            and exponent < 0 and not is_scalar(input)
            and promote_operands(input, exponent).category != dtypes.CATEGORY_FLOAT):
        raise RuntimeError(_NEG_INT_POW)
    return apply(POW, input, exponent)


def float_power(input, exponent, *, out=None):
    """``input ** exponent`` computed in double precision (float64 result)."""
    reject_out(out)
    if not is_scalar(input) and type_of(input).dtype is not dtypes.float64:
        input = to_dtype(input, dtypes.float64)
    if not is_scalar(exponent) and type_of(exponent).dtype is not dtypes.float64:
        exponent = to_dtype(exponent, dtypes.float64)
    if is_scalar(input) and is_scalar(exponent):
        raise TypeError("float_power() expects at least one Tensor argument")
    if is_scalar(input):
        input = float(input)
    if is_scalar(exponent):
        exponent = float(exponent)
    return apply(POW, input, exponent)


# --- neg / exp ---------------------------------------------------------------------------

def _neg_samples():
    yield Sample((arr(3, 4),))
    yield Sample((noncontig(3, 4),))
    yield Sample((arr(),))
    yield Sample((ints(5),), grad=False)


def _neg_vjp(ctx, g):
    return (neg(g),)


NEG = register_elementwise("neg", np.negative, _neg_vjp, _neg_samples, allow_bool=False)


def neg(input, *, out=None):
    """``-input``."""
    reject_out(out)
    if type_of(input).dtype is dtypes.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If "
                           "you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    return apply(NEG, input)


negative = neg


def _exp_vjp(ctx, g):
    return (mul(g, ctx.output),)


EXP = register_elementwise("exp", np.exp, _exp_vjp, _neg_samples, mode="float", compute="result")


def exp(input, *, out=None):
    """``e ** input`` (integer inputs give the default float dtype)."""
    reject_out(out)
    return apply(EXP, input)


# --- dtype conversion --------------------------------------------------------------------

def _to_dtype_rule(types, dtype):
    (t,) = types
    return TensorType(t.shape, dtype, t.device)


def _to_dtype_impl(a, dtype):
    if is_array(a):
        return a.astype(dtype.np_dtype, copy=True)
    return np.array(a, dtype=dtype.np_dtype)   # a weak Python number


def _to_dtype_vjp(ctx, g):
    return (g,)  # call_vjp casts the gradient back to the input dtype


def _to_dtype_samples():
    yield Sample((arr(3, 4),), {"dtype": dtypes.float64})
    yield Sample((arr(3, 4, dtype=np.float64),), {"dtype": dtypes.float32})
    yield Sample((arr(3),), {"dtype": dtypes.int64}, grad=False)
    yield Sample((ints(3),), {"dtype": dtypes.bool_}, grad=False)


TO_DTYPE = register(OpDef("to_dtype", OpKind.ELEMENTWISE, _to_dtype_rule, _to_dtype_impl,
                          _to_dtype_vjp, _to_dtype_samples, public="Tensor.to"))


def to_dtype(input, dtype):
    """A copy of ``input`` converted to ``dtype`` (float to int truncates toward zero)."""
    dtype = check_dtype_arg(dtype)
    return apply(TO_DTYPE, input, dtype=dtype)


def _to_device_rule(types, device):
    (t,) = types
    return TensorType(t.shape, t.dtype, device)


def _to_device_impl(a, device):
    # a copy where it is (never the input itself: a program's later writes to the input
    # must not show in the result); the interpreter that runs the op places it on
    # ``device`` (eager: compgrad.device_arrays, which copies across devices directly)
    return a.copy()


def _to_device_vjp(ctx, g):
    return (to_device(g, ctx.input_types[0].device),)


def _to_device_samples():
    # Tensor.to applies it across devices, or with copy=True (the one case a CPU-only
    # machine can sweep)
    yield Sample((arr(3, 4),), {"device": "cpu", "copy": True})
    yield Sample((ints(3),), {"device": "cpu", "copy": True}, grad=False)


TO_DEVICE = register(OpDef("to_device", OpKind.MOVEMENT, _to_device_rule, _to_device_impl,
                           _to_device_vjp, _to_device_samples, public="Tensor.to"))


def to_device(input, device):
    """A copy of ``input`` on ``device`` (differentiable: the gradient goes back to the
    input's device, as PyTorch's ``ToCopyBackward``)."""
    return apply(TO_DEVICE, input, device=device)

