"""Unary elementwise math (abs, exp2, log, trig, rounding, predicates).

Every op here takes one tensor. ``_unary`` registers the record and builds
the public function from a few facts about the op: the NumPy kernel, the
result dtype (``float``: integer and bool inputs give the default float
dtype; ``same``; ``bool`` for predicates; ``square``: bool becomes int64),
the dtypes PyTorch has no kernel for (NotImplementedError, as in PyTorch)
and the VJP, which is written with ops.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

from ir import dtypes
from ir.dtypes import CATEGORY_BOOL, CATEGORY_INT
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    float_result_dtype,
    is_array,
    is_scalar,
    register,
    reject_out,
)
from ir.ops.elementwise import add, div, exp, mul, neg, sub
from ir.samples import arr, bools, ints, noncontig, positive, unit
from ir.types import TensorType

_FLOAT_OPS = ("exp2", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal",
              "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
              "acosh", "atanh", "erf", "erfc", "erfinv", "deg2rad", "rad2deg")
_ALIASES = ("absolute", "sgn", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
            "fix")
_ROUNDING = ("floor", "ceil", "round", "trunc", "frac")
_PREDICATES = ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit")

__all__ = ["abs", "sign", "square", *_FLOAT_OPS, *_ROUNDING, *_PREDICATES, "nan_to_num",
           *_ALIASES]
METHODS = tuple(__all__)
# PyTorch has no in-place predicates
INPLACE = tuple(n for n in __all__ if n not in _PREDICATES)
FUNCTIONAL = ("tanh",)
INTERNAL = ("check_tensor",)

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# --- the shared machinery ------------------------------------------------------------------

def check_tensor(name: str, input) -> None:
    """PyTorch's TypeError when a number is passed where a tensor is required."""
    if is_scalar(input):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def _unary_rule(name: str, result: str, no_bool: bool, no_int: bool):
    def rule(types, **_attrs):
        (t,) = types
        dt = t.dtype
        if (no_bool and dt.category == CATEGORY_BOOL) or (no_int and dt.category == CATEGORY_INT):
            raise NotImplementedError(f'"{name}" not implemented for \'{dt.torch_name}\'')
        if result == "float":
            dt = float_result_dtype(dt)
        elif result == "bool":
            dt = dtypes.bool_
        elif result == "square" and dt.category == CATEGORY_BOOL:
            dt = dtypes.int64
        return TensorType(t.shape, dt, t.device)

    rule.__name__ = f"{name}_type_rule"
    return rule


def _unary_impl(name: str, np_fn, result: str):
    def impl(x, **attrs):
        x = x if is_array(x) else np.asarray(x)   # a weak Python number (traced scalars)
        if result == "float" and x.dtype.kind != "f":
            x = x.astype(dtypes.default_float_dtype().np_dtype)
        if result == "float" and x.dtype == np.float16:
            x = x.astype(np.float32)  # computed in float32, cast back by the caller
        out = np_fn(x, **attrs)  # run under ir.fperr.quiet_call by every interpreter
        return out if is_array(out) else np.asarray(out)

    impl.__name__ = f"{name}_impl"
    return impl


def _unary(name: str, np_fn, vjp, samples, result: str = "float", no_bool: bool = False,
           no_int: bool = False, doc: str = ""):
    """Register the op ``name`` and return its public function ``name(input, *, out=None)``."""
    op = register(OpDef(
        name=name, kind=OpKind.ELEMENTWISE,
        type_rule=_unary_rule(name, result, no_bool, no_int),
        impl=_unary_impl(name, np_fn, result), vjp=vjp, samples=samples,
        differentiable=vjp is not None and result != "bool", doc=doc,
        fresh_result=isinstance(np_fn, np.ufunc)))

    def fn(input, *, out=None):
        reject_out(out)
        check_tensor(name, input)
        return apply(op, input)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _zero_vjp(ctx, g):
    # piecewise-constant ops (sign, floor, ...): zero gradient, as in PyTorch
    return (mul(g, 0),)


def _samples(make=arr, bool_ok=True, int_ok=True, float16=True, **kw):
    """The standard unary samples, drawn by ``make`` (arr, positive, unit) with ``kw``."""
    def gen():
        yield Sample((make(3, 4, **kw),))
        yield Sample((make(2, 3, 4, seed=1, **kw)[:, ::2].transpose(2, 0, 1),),
                     note="non-contiguous")
        yield Sample((make(**kw),), note="0-d")
        yield Sample((make(0, 3, **kw),), note="empty")
        yield Sample((make(5, dtype=np.float64, seed=2, **kw),))
        if float16:
            yield Sample((make(6, dtype=np.float16, seed=3, **kw),), grad=False)
        if int_ok:
            lo, hi = (1, 4) if make is positive else (-1, 1) if make is unit else (-5, 5)
            yield Sample((ints(5, low=lo, high=hi),), grad=False)
            yield Sample((ints(4, dtype=np.int32, low=lo, high=hi, seed=1),), grad=False)
        if bool_ok:
            yield Sample((bools(5),), grad=False)
        yield ErrorSample((2.0,), error=TypeError, match="must be Tensor")
    return gen


# --- abs, sign, square -----------------------------------------------------------------------

def _abs_vjp(ctx, g):
    return (mul(g, sign(ctx.inputs[0])),)


def _abs_samples():
    yield from _samples(bool_ok=False)()
    yield Sample((ints(5, dtype=np.int8, low=-128, high=127),), grad=False)
    yield ErrorSample((bools(3),), error=NotImplementedError, match="Bool")


abs = _unary("abs", np.abs, _abs_vjp, _abs_samples, result="same", no_bool=True,
             doc="Absolute value, elementwise.")
absolute = abs


def _sign_np(x):
    if x.dtype == np.bool_:
        return x.copy()
    # (x > 0) - (x < 0): NaN and -0.0 give 0, as in PyTorch (np.sign keeps NaN); the
    # comparison is cast into the result array and the other subtracted in place, with
    # no float temporaries (relu's VJP computes this on every activation)
    out = np.empty_like(x)
    np.greater(x, 0, out=out)
    out -= np.less(x, 0)
    return out


def _sign_samples():
    yield from _samples()()
    yield Sample((np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, 3.0], np.float32),), grad=False)
    yield Sample((ints(5, dtype=np.uint8, low=0, high=3),), grad=False)


sign = _unary("sign", _sign_np, _zero_vjp, _sign_samples, result="same",
              doc="-1, 0 or 1 by the sign of each element (NaN gives 0).")
sgn = sign


def _square_vjp(ctx, g):
    return (mul(g, mul(ctx.inputs[0], 2)),)


def _square_samples():
    yield from _samples()()
    yield Sample((ints(4, dtype=np.uint8, low=0, high=10),), grad=False)


square = _unary("square", np.square, _square_vjp, _square_samples, result="square",
                doc="``input * input`` (bool gives int64, as in PyTorch).")


# --- exponentials and logarithms ---------------------------------------------------------------

def _exp2_vjp(ctx, g):
    return (mul(g, mul(ctx.output, _LN2)),)


exp2 = _unary("exp2", np.exp2, _exp2_vjp, _samples(), doc="``2 ** input``.")


def _log_vjp(ctx, g):
    return (div(g, ctx.inputs[0]),)


def _log_samples():
    yield from _samples(positive)()
    yield Sample((np.array([0.0, -1.0, np.inf, np.nan], np.float32),), grad=False,
                 note="domain edges")


log = _unary("log", np.log, _log_vjp, _log_samples, doc="Natural logarithm.")


def _log2_vjp(ctx, g):
    return (div(g, mul(ctx.inputs[0], _LN2)),)


log2 = _unary("log2", np.log2, _log2_vjp, _samples(positive), doc="Base-2 logarithm.")


def _log10_vjp(ctx, g):
    return (div(g, mul(ctx.inputs[0], _LN10)),)


log10 = _unary("log10", np.log10, _log10_vjp, _samples(positive), doc="Base-10 logarithm.")


def _log1p_vjp(ctx, g):
    return (div(g, add(ctx.inputs[0], 1)),)


def _log1p_samples():
    yield from _samples(arr, low=-0.8, high=3.0)()
    yield Sample((np.array([1e-8, -1e-7, 1e-20], np.float32),), note="small arguments")


log1p = _unary("log1p", np.log1p, _log1p_vjp, _log1p_samples, doc="``log(1 + input)``.")


def _expm1_vjp(ctx, g):
    return (mul(g, add(ctx.output, 1)),)


def _expm1_samples():
    yield from _samples()()
    yield Sample((np.array([1e-8, -1e-7, 1e-20], np.float32),), note="small arguments")


expm1 = _unary("expm1", np.expm1, _expm1_vjp, _expm1_samples, doc="``exp(input) - 1``.")


def _sqrt_vjp(ctx, g):
    return (div(g, mul(ctx.output, 2)),)


def _sqrt_samples():
    yield from _samples(positive)()
    yield Sample((np.array([0.0, -1.0, np.inf], np.float32),), grad=False, note="domain edges")


sqrt = _unary("sqrt", np.sqrt, _sqrt_vjp, _sqrt_samples, doc="Square root.")


def _rsqrt_np(x):
    return 1.0 / np.sqrt(x)


def _rsqrt_vjp(ctx, g):
    y = ctx.output
    return (mul(g, mul(mul(y, square(y)), -0.5)),)


rsqrt = _unary("rsqrt", _rsqrt_np, _rsqrt_vjp, _samples(positive),
               doc="``1 / sqrt(input)``.")


def _reciprocal_np(x):
    return 1.0 / x


def _reciprocal_vjp(ctx, g):
    return (neg(mul(g, square(ctx.output))),)


def _reciprocal_samples():
    yield from _samples(positive)()
    yield Sample((-positive(4, seed=5),))
    yield Sample((ints(3, low=0, high=2),), grad=False, note="1/0 is inf")


reciprocal = _unary("reciprocal", _reciprocal_np, _reciprocal_vjp, _reciprocal_samples,
                    doc="``1 / input``.")


# --- trigonometric and hyperbolic ---------------------------------------------------------------

def _sin_vjp(ctx, g):
    return (mul(g, cos(ctx.inputs[0])),)


sin = _unary("sin", np.sin, _sin_vjp, _samples(low=-4.0, high=4.0), doc="Sine.")


def _cos_vjp(ctx, g):
    return (neg(mul(g, sin(ctx.inputs[0]))),)


cos = _unary("cos", np.cos, _cos_vjp, _samples(low=-4.0, high=4.0), doc="Cosine.")


def _tan_vjp(ctx, g):
    return (mul(g, add(square(ctx.output), 1)),)


tan = _unary("tan", np.tan, _tan_vjp, _samples(low=-1.2, high=1.2), doc="Tangent.")


def _asin_vjp(ctx, g):
    return (mul(g, rsqrt(sub(1, square(ctx.inputs[0])))),)


asin = _unary("asin", np.arcsin, _asin_vjp, _samples(unit), doc="Inverse sine.")
arcsin = asin


def _acos_vjp(ctx, g):
    return (neg(mul(g, rsqrt(sub(1, square(ctx.inputs[0]))))),)


acos = _unary("acos", np.arccos, _acos_vjp, _samples(unit), doc="Inverse cosine.")
arccos = acos


def _atan_vjp(ctx, g):
    return (div(g, add(square(ctx.inputs[0]), 1)),)


atan = _unary("atan", np.arctan, _atan_vjp, _samples(low=-4.0, high=4.0),
              doc="Inverse tangent.")
arctan = atan


def _sinh_vjp(ctx, g):
    return (mul(g, cosh(ctx.inputs[0])),)


sinh = _unary("sinh", np.sinh, _sinh_vjp, _samples(), doc="Hyperbolic sine.")


def _cosh_vjp(ctx, g):
    return (mul(g, sinh(ctx.inputs[0])),)


cosh = _unary("cosh", np.cosh, _cosh_vjp, _samples(), doc="Hyperbolic cosine.")


def _tanh_vjp(ctx, g):
    return (mul(g, sub(1, square(ctx.output))),)


def _tanh_samples():
    yield from _samples(low=-3.0, high=3.0)()
    yield Sample((np.array([-30.0, 30.0, np.inf, -np.inf], np.float32),), grad=False)


tanh = _unary("tanh", np.tanh, _tanh_vjp, _tanh_samples, doc="Hyperbolic tangent.")


def _asinh_vjp(ctx, g):
    return (mul(g, rsqrt(add(square(ctx.inputs[0]), 1))),)


asinh = _unary("asinh", np.arcsinh, _asinh_vjp, _samples(low=-4.0, high=4.0),
               doc="Inverse hyperbolic sine.")
arcsinh = asinh


def _acosh_vjp(ctx, g):
    return (mul(g, rsqrt(sub(square(ctx.inputs[0]), 1))),)


acosh = _unary("acosh", np.arccosh, _acosh_vjp, _samples(positive, low=1.2, high=4.0),
               doc="Inverse hyperbolic cosine.")
arccosh = acosh


def _atanh_vjp(ctx, g):
    return (div(g, sub(1, square(ctx.inputs[0]))),)


atanh = _unary("atanh", np.arctanh, _atanh_vjp, _samples(unit),
               doc="Inverse hyperbolic tangent.")
arctanh = atanh


def _deg2rad_vjp(ctx, g):
    return (mul(g, math.pi / 180.0),)


deg2rad = _unary("deg2rad", np.deg2rad, _deg2rad_vjp, _samples(low=-400.0, high=400.0),
                 doc="Degrees to radians.")


def _rad2deg_vjp(ctx, g):
    return (mul(g, 180.0 / math.pi),)


rad2deg = _unary("rad2deg", np.rad2deg, _rad2deg_vjp, _samples(), doc="Radians to degrees.")


# --- error functions ----------------------------------------------------------------------------

def _erf_vjp(ctx, g):
    return (mul(g, mul(exp(neg(square(ctx.inputs[0]))), _TWO_OVER_SQRT_PI)),)


erf = _unary("erf", scipy.special.erf, _erf_vjp, _samples(), doc="The error function.")


def _erfc_vjp(ctx, g):
    return (mul(g, mul(exp(neg(square(ctx.inputs[0]))), -_TWO_OVER_SQRT_PI)),)


erfc = _unary("erfc", scipy.special.erfc, _erfc_vjp, _samples(),
              doc="The complementary error function ``1 - erf(input)``.")


def _erfinv_vjp(ctx, g):
    return (mul(g, mul(exp(square(ctx.output)), 1.0 / _TWO_OVER_SQRT_PI)),)


def _erfinv_samples():
    yield from _samples(unit)()
    yield Sample((np.array([-1.0, 1.0, 2.0], np.float32),), grad=False, note="domain edges")


erfinv = _unary("erfinv", scipy.special.erfinv, _erfinv_vjp, _erfinv_samples,
                doc="The inverse error function.")


# --- rounding -------------------------------------------------------------------------------

def _int_identity(np_fn):
    def kernel(x):
        return x.copy() if x.dtype.kind in "iub" else np_fn(x)

    kernel.__name__ = np_fn.__name__
    return kernel


def _rounding_samples():
    yield from _samples(bool_ok=False, low=-5.0, high=5.0)()
    yield Sample((np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.0, np.inf, np.nan],
                           np.float32),), grad=False, note="ties and specials")
    yield Sample((ints(4, dtype=np.uint8, low=0, high=9),), grad=False)
    yield ErrorSample((bools(3),), error=NotImplementedError, match="Bool")


floor = _unary("floor", _int_identity(np.floor), _zero_vjp, _rounding_samples, result="same",
               no_bool=True, doc="The largest integer not greater than each element.")
ceil = _unary("ceil", _int_identity(np.ceil), _zero_vjp, _rounding_samples, result="same",
              no_bool=True, doc="The smallest integer not less than each element.")
trunc = _unary("trunc", _int_identity(np.trunc), _zero_vjp, _rounding_samples, result="same",
               no_bool=True, doc="Rounds toward zero.")
fix = trunc


def _round_rule(types, decimals=0):
    (t,) = types
    if t.dtype.category == CATEGORY_BOOL or (decimals != 0 and t.dtype.category == CATEGORY_INT):
        raise NotImplementedError(f'"round" not implemented for \'{t.dtype.torch_name}\'')
    return TensorType(t.shape, t.dtype, t.device)


def _round_impl(x, decimals=0):
    if x.dtype.kind in "iu":
        return x.copy()
    work = x.astype(np.float32) if x.dtype == np.float16 else x
    with np.errstate(all="ignore"):
        if decimals == 0:
            return np.rint(work)
        if decimals > 0:
            scale = work.dtype.type(10.0 ** decimals)
            return np.rint(work * scale) / scale
        scale = work.dtype.type(10.0 ** -decimals)
        return np.rint(work / scale) * scale


def _round_vjp(ctx, g):
    return (mul(g, 0),)


def _round_samples():
    yield from _rounding_samples()
    yield Sample((arr(3, 4, low=-10.0, high=10.0),), {"decimals": 1})
    yield Sample((arr(5, low=-1000.0, high=1000.0, dtype=np.float64),), {"decimals": -2})
    yield Sample((arr(5, low=-1.0, high=1.0),), {"decimals": 3})
    yield ErrorSample((ints(3),), {"decimals": 1}, error=NotImplementedError, match="Long")


ROUND = register(OpDef("round", OpKind.ELEMENTWISE, _round_rule, _round_impl, _round_vjp,
                       _round_samples))


def round(input, *, decimals=0, out=None):
    """Rounds half to even, to ``decimals`` decimal places (integers are returned unchanged)."""
    reject_out(out)
    check_tensor("round", input)
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise TypeError(f"round(): argument 'decimals' must be int, not "
                        f"{type(decimals).__name__}")
    return apply(ROUND, input, decimals=decimals)


def _frac_np(x):
    return x - np.trunc(x)


def _frac_vjp(ctx, g):
    return (g,)


def _frac_samples():
    yield from _samples(bool_ok=False, int_ok=False, low=-5.0, high=5.0)()
    yield ErrorSample((ints(3),), error=NotImplementedError, match="Long")
    yield ErrorSample((bools(3),), error=NotImplementedError, match="Bool")


frac = _unary("frac", _frac_np, _frac_vjp, _frac_samples, result="same", no_bool=True,
              no_int=True, doc="The fractional part, ``input - trunc(input)``.")


# --- predicates and nan_to_num ------------------------------------------------------------------

def _special_values():
    return np.array([np.nan, np.inf, -np.inf, 1.5, -0.0, 0.0, -2.0], np.float32)


def _predicate_samples():
    yield Sample((_special_values(),))
    yield Sample((_special_values().astype(np.float64).reshape(7, 1)[::2],))
    yield Sample((_special_values().astype(np.float16),))
    yield Sample((arr(),))
    yield Sample((arr(0, 2),))
    yield Sample((ints(5),))
    yield Sample((bools(5),))
    yield ErrorSample((2.0,), error=TypeError, match="must be Tensor")


def _float_only(np_fn, false_for_ints: bool = True):
    def kernel(x):
        if x.dtype.kind in "iub":
            return np.full_like(x, not false_for_ints, dtype=np.bool_)
        return np_fn(x)

    kernel.__name__ = np_fn.__name__
    return kernel


isnan = _unary("isnan", _float_only(np.isnan), None, _predicate_samples, result="bool",
               doc="Whether each element is NaN.")
isinf = _unary("isinf", _float_only(np.isinf), None, _predicate_samples, result="bool",
               doc="Whether each element is infinite.")
isfinite = _unary("isfinite", _float_only(np.isfinite, False), None, _predicate_samples,
                  result="bool", doc="Whether each element is finite (not NaN or infinite).")
isposinf = _unary("isposinf", _float_only(np.isposinf), None, _predicate_samples,
                  result="bool", doc="Whether each element is +inf.")
isneginf = _unary("isneginf", _float_only(np.isneginf), None, _predicate_samples,
                  result="bool", doc="Whether each element is -inf.")


def _signbit_np(x):
    return np.signbit(x) if x.dtype.kind in "fi" else np.zeros_like(x, dtype=np.bool_)


signbit = _unary("signbit", _signbit_np, None, _predicate_samples, result="bool",
                 doc="Whether each element's sign bit is set (true for -0.0).")


def _nan_to_num_rule(types, **_attrs):
    (t,) = types
    return TensorType(t.shape, t.dtype, t.device)


def _nan_to_num_impl(x, nan=0.0, posinf=None, neginf=None):
    if x.dtype.kind in "iub":
        return x.copy()
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def _nan_to_num_vjp(ctx, g):
    # PyTorch: grad * isfinite(input)
    return (mul(g, isfinite(ctx.inputs[0])),)


def _nan_to_num_samples():
    yield Sample((_special_values(),), grad=False)
    yield Sample((_special_values().astype(np.float16),), grad=False)
    yield Sample((_special_values().astype(np.float64),), {"nan": 1.5, "posinf": 7.0},
                 grad=False)
    yield Sample((_special_values(),), {"neginf": -3.0}, grad=False)
    yield Sample((arr(3, 4),))
    yield Sample((noncontig(3, 4),), {"nan": 2.0})
    yield Sample((arr(),))
    yield Sample((arr(0, 2),))
    yield Sample((ints(4),), {"nan": 1.5}, grad=False)
    yield Sample((bools(4),), grad=False)
    yield ErrorSample((2.0,), error=TypeError, match="must be Tensor")


NAN_TO_NUM = register(OpDef("nan_to_num", OpKind.ELEMENTWISE, _nan_to_num_rule, _nan_to_num_impl,
                            _nan_to_num_vjp, _nan_to_num_samples))


def _opt_float(value, what: str, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"nan_to_num(): argument '{what}' must be float, not "
                        f"{type(value).__name__}")
    return float(value)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    """Replaces NaN with ``nan``, +inf with ``posinf`` and -inf with ``neginf`` (by default the
    largest and lowest finite values of the dtype)."""
    reject_out(out)
    check_tensor("nan_to_num", input)
    return apply(NAN_TO_NUM, input, nan=_opt_float(nan, "nan", 0.0),
                 posinf=_opt_float(posinf, "posinf"), neginf=_opt_float(neginf, "neginf"))

