"""Elementwise arithmetic: add, sub, mul, div, neg, exp and dtype conversion.

These are the patterns the other elementwise families follow: a public
function that normalises PyTorch's arguments, a record registered with
``register_elementwise``, and a VJP written with ops.
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import Sample
from ir.ops._util import (
    OpDef, OpKind, apply, cast, check_dtype_arg, elementwise_rule, is_scalar, promote_operands,
    promoted_np_dtype, register, register_elementwise, reject_out, type_of,
)
from ir.samples import arr, ints, noncontig
from ir.types import TensorType

__all__ = ["add", "sub", "mul", "div", "true_divide", "neg", "negative", "exp"]
METHODS = ("add", "sub", "mul", "div", "true_divide", "neg", "negative", "exp")
INPLACE = METHODS
INTERNAL = ("to_dtype",)


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
    if alpha == 1:
        return
    t = promote_operands(input, other)
    if t.category != dtypes.CATEGORY_FLOAT and isinstance(alpha, float):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")
    if t is dtypes.bool_ and not isinstance(alpha, bool):
        raise RuntimeError("Boolean alpha only supported for Boolean results.")


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other`` with broadcasting and type promotion."""
    reject_out(out)
    _check_alpha(input, other, alpha)
    if alpha != 1:
        other = mul(other, alpha)
    return apply(ADD, input, other)


def _sub_vjp(ctx, g):
    return g, neg(g)


SUB = register_elementwise("sub", np.subtract, _sub_vjp, _binary_samples, allow_bool=False)


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other``."""
    reject_out(out)
    for x in (input, other):
        if type_of(x).dtype is dtypes.bool_ and not is_scalar(x):
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
    _check_alpha(input, other, alpha)
    if alpha != 1:
        other = mul(other, alpha)
    return apply(SUB, input, other)


# --- mul / div ---------------------------------------------------------------------------

def _mul_vjp(ctx, g):
    a, b = ctx.inputs
    return mul(g, b), mul(g, a)


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


def _div_vjp(ctx, g):
    a, b = ctx.inputs
    mode = ctx.attrs["rounding_mode"]
    if mode is not None:
        # floor/trunc division is piecewise constant: zero gradient, as in PyTorch
        return mul(g, 0), (None if is_scalar(b) else mul(g, 0))
    ga = div(g, b)
    gb = None if is_scalar(b) else neg(div(mul(g, ctx.output), b))
    return ga, gb


def _div_impl(a, b, rounding_mode=None):
    dt = promoted_np_dtype(a, b)
    a, b = cast(a, dt), cast(b, dt)
    with np.errstate(all="ignore"):
        if rounding_mode is None:
            if dt.kind != "f":
                a = a.astype(dtypes.default_float_dtype().np_dtype)
                b = b.astype(dtypes.default_float_dtype().np_dtype) if isinstance(
                    b, np.ndarray) else float(b)
            return np.true_divide(a, b)
        if dt.kind in "iub":
            if np.any(np.asarray(b) == 0):
                raise RuntimeError("ZeroDivisionError")
            if rounding_mode == "floor":
                return np.floor_divide(a, b)
            q = np.floor_divide(a, b)
            # trunc: round toward zero where signs differ and the division is inexact
            fix = (np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))
            return q + fix
        q = np.true_divide(a, b)
        return np.floor(q) if rounding_mode == "floor" else np.trunc(q)


def _div_rule(types, rounding_mode=None):
    if rounding_mode is None:
        return elementwise_rule("float", name="div")(types)
    return elementwise_rule("promote", name="div")(types)


DIV = register(OpDef("div", OpKind.ELEMENTWISE, _div_rule, _div_impl, _div_vjp, _div_samples))


def div(input, other, *, rounding_mode=None, out=None):
    """Division; ``rounding_mode`` None (true division), ``'trunc'`` or ``'floor'``."""
    reject_out(out)
    if rounding_mode not in (None, "trunc", "floor"):
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                           f"but found '{rounding_mode}'")
    return apply(DIV, input, other, rounding_mode=rounding_mode)


true_divide = div


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
    return np.array(a, dtype=dtype.np_dtype, copy=True)


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

