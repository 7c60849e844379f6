"""One scalar expression per elementwise op: the pieces fused kernels are made of.

``scalar_expr(op, args, in_types, out_dtype, attrs)`` returns the source text
of a Python expression that Numba compiles to one element of the op's result:
``add`` on two float32 gives ``(a + b)``, ``relu`` on float32
``np.maximum(x, np.float32(0.0))``, ``where`` ``(b if c else d)``. A fused
kernel is the composition of these expressions.

The contract, which ``tests/codegen/test_scalar.py`` checks for every rule on
the registry's samples against the op's NumPy reference:

* ``args[i]`` is source text whose Numba type is ``in_types[i].dtype``'s NumPy
  scalar type (a weak Python scalar input is float64, int64 or bool: what
  Numba makes of a Python float, int or bool argument).
* The expression's Numba type is exactly ``out_dtype``'s NumPy scalar type,
  so that expressions compose without drifting: float32 stays float32
  (constants are written ``np.float32(...)``), and integer results narrower
  than int64 are wrapped back (``np.int8(a + b)``: Numba computes integers in
  int64, PyTorch wraps in the narrow type, and the two agree modulo 2^n).
* Inputs are converted to the dtype the reference computes in exactly as the
  reference does (PyTorch's type promotion via ``ir.dtypes.result_type``, with
  weak scalars and 0-d tensors taking part at their lower priority), then the
  op is applied with NumPy's semantics (NaN propagation in maximum/clamp,
  floor division of floats, integer power, shifts by out-of-range counts).
* Kernels compile with ``NJIT_OPTIONS`` (``error_model="numpy"``: a float
  division by zero gives inf/nan instead of raising) and without fastmath
  (which would break NaN/inf semantics). Generated modules start with
  ``PRELUDE`` (``math``, ``numpy as np``, ``codegen.mathfns as _mf``).
* Transcendentals (exp, log, expm1, log1p, tanh, sigmoid, erf, erfc, softplus,
  the normal CDF) use the inline vectorisable functions of
  :mod:`codegen.mathfns`; ``exact_math=True`` uses libm instead. Both agree
  with NumPy to a few ulp; other math (sin, atan2, pow, ...) calls NumPy's
  scalar functions, which Numba maps to libm.

``None`` means "not expressible": the caller runs that node with the
reference interpreter. That is the answer for float16 (Numba has no float16
arithmetic on the CPU), for integer floor division, remainder and fmod (the
reference raises ZeroDivisionError for a zero divisor, which a kernel cannot
report), for ``erfinv`` (no Numba implementation) and for
``binary_cross_entropy`` (it validates its input range). Ops missing from
``SCALAR_RULES`` are likewise not expressible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codegen import mathfns
from codegen.source import PRELUDE
from ir import dtypes
from ir.dtypes import CATEGORY_FLOAT, CATEGORY_INT, DType
from ir.types import TensorType

__all__ = ["ScalarCall", "ScalarRule", "SCALAR_RULES", "scalar_expr", "np_type", "cast",
           "const", "PRELUDE", "NJIT_OPTIONS"]

# how generated kernels must be compiled (PRELUDE, re-exported: what they must import)
_MF = mathfns.MODULE_ALIAS
NJIT_OPTIONS: Mapping[str, Any] = {"error_model": "numpy"}

_SUPPORTED = frozenset({dtypes.bool_, dtypes.uint8, dtypes.int8, dtypes.int16, dtypes.int32,
                        dtypes.int64, dtypes.float32, dtypes.float64})


# --- spelling dtypes, casts and constants -------------------------------------------------------

def np_type(dtype: DType) -> str:
    """The NumPy scalar type's name in generated source: ``np.float32``, ``np.bool_``."""
    return f"np.{dtype.np_dtype.type.__name__}"


def cast(expr: str, src: DType, dst: DType) -> str:
    """``expr`` (of dtype ``src``) converted to ``dst`` as NumPy's ``astype`` does: nonzero
    (NaN included) is True, float to int truncates, int to narrower int wraps."""
    if src is dst:
        return expr
    if dst is dtypes.bool_:
        return f"({expr} != 0)"
    return f"{np_type(dst)}({expr})"


def literal(value) -> str:
    """A Python scalar operand (a node input that is not a Value) as source text: the
    number itself (its Python type, as the IR's weak scalar), ``np.inf``/``np.nan``
    for non-finite floats (``repr`` gives ``inf``, which is no name in a kernel)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "np.nan" if math.isnan(value) else ("np.inf" if value > 0 else "-np.inf")
    return repr(value)


def const(value, dtype: DType) -> str:
    """A constant of ``dtype``: ``np.float32(0.5)``, ``np.int8(-3)``, ``True``, ``np.inf``."""
    if dtype is dtypes.bool_:
        return repr(bool(value))
    if dtype.category == CATEGORY_INT:
        return f"{np_type(dtype)}({int(value)})"
    value = float(value)
    if math.isnan(value):
        text = "np.nan"
    elif math.isinf(value):
        text = "np.inf" if value > 0 else "-np.inf"
    else:
        text = repr(value)
    return text if dtype is dtypes.float64 else f"{np_type(dtype)}({text})"


def _wrap(expr: str, dtype: DType) -> str:
    """Integer arithmetic results (Numba's int64/uint64) wrapped back to ``dtype``."""
    if dtype.category == CATEGORY_INT and dtype is not dtypes.int64:
        return f"{np_type(dtype)}({expr})"
    return expr


def _iop(a: str, symbol: str, b: str, dtype: DType) -> str:
    """``a <symbol> b`` (+, - or *) on integers of ``dtype``, wrapping like PyTorch.

    Narrower types compute in Numba's int64 (no overflow is possible there) and wrap back;
    int64 goes through uint64 because Numba emits ``nsw`` int64 arithmetic, whose
    overflow LLVM treats as poison rather than wrapping.
    """
    if dtype is dtypes.int64:
        return f"np.int64(np.uint64({a}) {symbol} np.uint64({b}))"
    return _wrap(f"({a} {symbol} {b})", dtype)


# --- the call a rule sees -----------------------------------------------------------------------

@dataclass(frozen=True)
class ScalarCall:
    """One elementwise node as its rule sees it: input expressions and types, the result
    dtype, the op's attributes, and whether to use libm for transcendentals."""

    args: tuple[str, ...]
    in_types: tuple[TensorType, ...]
    out: DType
    attrs: Mapping[str, Any] = field(default_factory=dict)
    exact_math: bool = False

    def compute_dtype(self) -> DType:
        """PyTorch's ``result_type`` of the inputs (weak scalars and 0-d tensors at their
        lower priority): the dtype comparisons compute in."""
        return dtypes.result_type(*self.in_types)

    def arg(self, i: int, dtype: DType | None = None) -> str:
        """Input ``i`` converted to ``dtype`` (default: the result dtype)."""
        return cast(self.args[i], self.in_types[i].dtype, self.out if dtype is None else dtype)

    def const(self, value, dtype: DType | None = None) -> str:
        return const(value, self.out if dtype is None else dtype)

    def math(self, name: str, arg: str, dtype: DType | None = None) -> str:
        """A :mod:`codegen.mathfns` function (or its libm version) on a float ``arg``."""
        dtype = self.out if dtype is None else dtype
        return mathfns.call(name, dtype.np_dtype, arg, exact=self.exact_math)


ScalarRule = Callable[[ScalarCall], "str | None"]


def _is_float(dtype: DType) -> bool:
    return dtype.category == CATEGORY_FLOAT


def _is_int(dtype: DType) -> bool:
    return dtype.category == CATEGORY_INT


# --- arithmetic ---------------------------------------------------------------------------------

def _binary_arith(symbol: str, bool_symbol: str | None):
    """``a <symbol> b`` in the result dtype; bools use ``bool_symbol`` (add is or, mul is and)."""

    def rule(c: ScalarCall) -> str | None:
        a, b = c.arg(0), c.arg(1)
        if c.out is dtypes.bool_:
            return None if bool_symbol is None else f"({a} {bool_symbol} {b})"
        if _is_int(c.out):
            return _iop(a, symbol, b, c.out)
        return f"({a} {symbol} {b})"

    rule.__name__ = f"_rule_{symbol}"
    return rule


_add = _binary_arith("+", "|")
_sub = _binary_arith("-", None)
_mul = _binary_arith("*", "&")


def _div(c: ScalarCall) -> str | None:
    mode = c.attrs.get("rounding_mode")
    if mode is None:   # true division in the (float) result dtype
        return f"({c.arg(0)} / {c.arg(1)})"
    if not _is_float(c.out):
        return None    # integer division by zero raises in the reference
    a, b = c.arg(0), c.arg(1)
    if mode == "floor":
        return f"{_MF}.floor_divide_{_suffix(c.out)}({a}, {b})"
    return f"np.trunc({a} / {b})"


def _suffix(dtype: DType) -> str:
    return "f32" if dtype is dtypes.float32 else "f64"


def _remainder(c: ScalarCall) -> str | None:
    if not _is_float(c.out):
        return None
    return f"{_MF}.remainder_{_suffix(c.out)}({c.arg(0)}, {c.arg(1)})"


def _fmod(c: ScalarCall) -> str | None:
    if not _is_float(c.out):
        return None
    return f"np.fmod({c.arg(0)}, {c.arg(1)})"


def _literal(text: str) -> float | None:
    """The value of an argument written as a number literal (``2``, ``2.0``), else None."""
    try:
        return float(text) if text.lstrip("-").replace(".", "", 1).isdigit() else None
    except ValueError:
        return None


def _pow(c: ScalarCall) -> str | None:
    if _is_float(c.out):
        x = c.arg(0)
        if _literal(c.args[1]) == 2.0:
            # x * x is pow(x, 2) correctly rounded, and unlike a powf call it vectorises
            return f"({x} * {x})"
        if _literal(c.args[1]) == 3.0:
            # within an ulp of powf(x, 3), and it vectorises (a powf call does not)
            return f"({x} * {x} * {x})"
        return f"({x} ** {c.arg(1)})"
    if _is_int(c.out):
        exponent = c.in_types[1]
        if exponent.weak or exponent.ndim == 0:
            # a scalar exponent: eagerly a negative one raises ("Integers to negative
            # integer powers are not allowed"); a kernel cannot, so only a literal
            # known to be non-negative gets one
            value = _literal(c.args[1])
            if value is None or value < 0:
                return None
        return _wrap(f"{_MF}.ipow({c.arg(0)}, {c.arg(1)})", c.out)
    return None


def _neg(c: ScalarCall) -> str | None:
    if c.out is dtypes.bool_:
        return None
    return _wrap(f"(-{c.arg(0)})", c.out)


def _to_dtype(c: ScalarCall) -> str:
    return cast(c.args[0], c.in_types[0].dtype, c.attrs["dtype"])


# --- unary math ---------------------------------------------------------------------------------

def _abs(c: ScalarCall) -> str | None:
    if c.out is dtypes.bool_:
        return None
    return _wrap(f"abs({c.arg(0)})", c.out)


def _sign(c: ScalarCall) -> str:
    x = c.arg(0)
    if c.out is dtypes.bool_:
        return x
    # (x > 0) - (x < 0): NaN and -0.0 give 0, as the reference
    return f"{np_type(c.out)}(np.int64({x} > 0) - np.int64({x} < 0))"


def _square(c: ScalarCall) -> str:
    if c.in_types[0].dtype is dtypes.bool_:
        return cast(c.args[0], dtypes.bool_, c.out)   # bool squares to itself, then int64
    x = c.arg(0)
    return _iop(x, "*", x, c.out) if _is_int(c.out) else f"({x} * {x})"


def _mathfn(name: str):
    """A :mod:`codegen.mathfns` function in the float result dtype (ints give float32)."""

    def rule(c: ScalarCall) -> str:
        return c.math(name, c.arg(0))

    rule.__name__ = f"_rule_{name}"
    return rule


def _npfn(name: str):
    """NumPy's scalar function ``np.<name>`` (libm inside Numba) in the float result dtype."""

    def rule(c: ScalarCall) -> str:
        return f"np.{name}({c.arg(0)})"

    rule.__name__ = f"_rule_{name}"
    return rule


def _rsqrt(c: ScalarCall) -> str:
    return f"({c.const(1.0)} / np.sqrt({c.arg(0)}))"


def _scale_by(numerator: float, denominator: float):
    """``x * (numerator / denominator)`` with the constant divided in the result dtype, as
    NumPy's deg2rad/rad2deg do."""

    def rule(c: ScalarCall) -> str:
        t = c.out.np_dtype.type
        return f"({c.arg(0)} * {c.const(t(numerator) / t(denominator))})"

    rule.__name__ = "_rule_scale"
    return rule


def _reciprocal(c: ScalarCall) -> str:
    return f"({c.const(1.0)} / {c.arg(0)})"


def _rounding(name: str):
    """floor/ceil/trunc: NumPy's function on floats, the identity on integers."""

    def rule(c: ScalarCall) -> str:
        x = c.arg(0)
        return f"np.{name}({x})" if _is_float(c.out) else x

    rule.__name__ = f"_rule_{name}"
    return rule


def _round(c: ScalarCall) -> str:
    x = c.arg(0)
    if not _is_float(c.out):
        return x
    decimals = c.attrs.get("decimals", 0)
    if decimals == 0:
        return f"np.rint({x})"
    if decimals > 0:
        scale = c.const(10.0 ** decimals)
        return f"(np.rint({x} * {scale}) / {scale})"
    scale = c.const(10.0 ** -decimals)
    return f"(np.rint({x} / {scale}) * {scale})"


def _frac(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} - np.trunc({x}))"


# --- predicates ---------------------------------------------------------------------------------

def _float_predicate(template: str, otherwise: str):
    """``template`` on a float input; the constant ``otherwise`` for integers and bools."""

    def rule(c: ScalarCall) -> str:
        x, dt = c.args[0], c.in_types[0].dtype
        return template.format(x=x) if _is_float(dt) else otherwise

    rule.__name__ = "_rule_predicate"
    return rule


_isnan = _float_predicate("({x} != {x})", "False")
_isinf = _float_predicate("np.isinf({x})", "False")
_isfinite = _float_predicate("np.isfinite({x})", "True")
_isposinf = _float_predicate("({x} == np.inf)", "False")
_isneginf = _float_predicate("({x} == -np.inf)", "False")


def _signbit(c: ScalarCall) -> str:
    x, dt = c.args[0], c.in_types[0].dtype
    if _is_float(dt):
        return f"np.signbit({x})"
    return f"({x} < 0)" if dt.is_signed and dt is not dtypes.bool_ else "False"


def _nan_to_num(c: ScalarCall) -> str:
    x = c.arg(0)
    if not _is_float(c.out):
        return x
    info = np.finfo(c.out.np_dtype)
    posinf, neginf = c.attrs.get("posinf"), c.attrs.get("neginf")
    nan = c.const(c.attrs.get("nan", 0.0))
    pos = c.const(float(info.max) if posinf is None else posinf)
    neg = c.const(float(info.min) if neginf is None else neginf)
    return (f"({nan} if {x} != {x} else ({pos} if {x} == np.inf else "
            f"({neg} if {x} == -np.inf else {x})))")


# --- activations --------------------------------------------------------------------------------

def _sigmoid(c: ScalarCall) -> str:
    return c.math("sigmoid", c.arg(0))


def _logsigmoid(c: ScalarCall) -> str:
    # log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)) = -softplus(-x)
    return f"(-{c.math('softplus', f'(-{c.arg(0)})')})"


def _relu(c: ScalarCall) -> str:
    return f"np.maximum({c.arg(0)}, {c.const(0)})"


def _hardtanh(c: ScalarCall) -> str:
    lo, hi = c.attrs["min_val"], c.attrs["max_val"]
    if _is_float(c.out):
        return f"np.minimum(np.maximum({c.arg(0)}, {c.const(lo)}), {c.const(hi)})"
    # integers clip in float64 and truncate back, as the reference
    x = c.arg(0, dtypes.float64)
    clipped = f"np.minimum(np.maximum({x}, {const(lo, dtypes.float64)}), " \
              f"{const(hi, dtypes.float64)})"
    return cast(clipped, dtypes.float64, c.out)


def _leaky_relu(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} if {x} > {c.const(0)} else {x} * {c.const(c.attrs['negative_slope'])})"


def _threshold(c: ScalarCall) -> str:
    th, value = c.attrs["threshold"], c.attrs["value"]
    x = c.arg(0)
    if _is_float(c.out):   # NumPy compares with the Python float converted to x's dtype
        return f"({x} if {x} > {c.const(th)} else {c.const(value)})"
    fill = np.array(value).astype(c.out.np_dtype).item()
    test = f"{cast(x, c.out, dtypes.float64)} > {const(th, dtypes.float64)}"
    return f"({x} if {test} else {c.const(fill)})"


def _elu(c: ScalarCall) -> str:
    a = c.attrs
    x = c.arg(0)
    negative = c.math("expm1", f"(np.minimum({x}, {c.const(0)}) * {c.const(a['input_scale'])})")
    return (f"({x} * {c.const(a['scale'])} if {x} > {c.const(0)} else "
            f"{c.const(a['scale'] * a['alpha'])} * {negative})")


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu(c: ScalarCall) -> str:
    x = c.arg(0)
    if c.attrs.get("approximate", "none") == "tanh":
        inner = (f"{c.const(_SQRT_2_OVER_PI)} * ({x} + {c.const(0.044715)} * {x} * {x} * {x})")
        return f"({c.const(0.5)} * {x} * ({c.const(1.0)} + {c.math('tanh', f'({inner})')}))"
    return f"({x} * {c.math('ndtr', x)})"


def _silu(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} * {c.math('sigmoid', x)})"


def _mish(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} * {c.math('tanh', c.math('softplus', x))})"


def _softplus(c: ScalarCall) -> str:
    x = c.arg(0)
    beta = c.const(c.attrs["beta"])
    bx = f"({x} * {beta})"
    return (f"({x} if {bx} > {c.const(c.attrs['threshold'])} else "
            f"{c.math('softplus', bx)} / {beta})")


def _hardsigmoid_of(c: ScalarCall, x: str) -> str:
    six = c.const(6.0)
    return f"(np.minimum(np.maximum({x} + {c.const(3.0)}, {c.const(0.0)}), {six}) / {six})"


def _hardsigmoid(c: ScalarCall) -> str:
    return _hardsigmoid_of(c, c.arg(0))


def _hardswish(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} * {_hardsigmoid_of(c, x)})"


def _tanhshrink(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} - {c.math('tanh', x)})"


def _softsign(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} / ({c.const(1.0)} + abs({x})))"


def _hardshrink(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"({x} if abs({x}) > {c.const(c.attrs['lambd'])} else {c.const(0)})"


def _softshrink(c: ScalarCall) -> str:
    x = c.arg(0)
    lam = c.attrs["lambd"]
    return (f"({x} - {c.const(lam)} if {x} > {c.const(lam)} else "
            f"({x} + {c.const(lam)} if {x} < {c.const(-lam)} else {c.const(0)}))")


# --- comparisons, logical and bitwise -----------------------------------------------------------

def _compare(symbol: str):
    """``a <symbol> b`` in the inputs' promoted dtype."""

    def rule(c: ScalarCall) -> str:
        dt = c.compute_dtype()
        return f"({c.arg(0, dt)} {symbol} {c.arg(1, dt)})"

    rule.__name__ = "_rule_compare"
    return rule


def _truth(c: ScalarCall, i: int) -> str:
    dt = c.compute_dtype()
    x = c.arg(i, dt)
    return x if dt is dtypes.bool_ else f"({x} != 0)"


def _logical(symbol: str):
    def rule(c: ScalarCall) -> str:
        return f"({_truth(c, 0)} {symbol} {_truth(c, 1)})"

    rule.__name__ = "_rule_logical"
    return rule


def _logical_not(c: ScalarCall) -> str:
    return f"(not {_truth(c, 0)})"


def _bitwise(symbol: str):
    def rule(c: ScalarCall) -> str:
        expr = f"({c.arg(0)} {symbol} {c.arg(1)})"
        return expr if c.out is dtypes.bool_ else _wrap(expr, c.out)

    rule.__name__ = "_rule_bitwise"
    return rule


def _bitwise_not(c: ScalarCall) -> str:
    x = c.arg(0)
    return f"(not {x})" if c.out is dtypes.bool_ else _wrap(f"(~{x})", c.out)


def _shift(left: bool):
    """Shifts with the reference's rule for counts outside [0, bits): 0 for a left shift, the
    sign fill for a right shift."""

    def rule(c: ScalarCall) -> str:
        a, b = c.arg(0), c.arg(1)
        bits = c.out.itemsize * 8
        valid = f"({b} >= 0 and {b} < {bits})"
        if left:
            return f"({_wrap(f'({a} << {b})', c.out)} if {valid} else {c.const(0)})"
        fill = _wrap(f"({a} >> {bits - 1})", c.out) if c.out.is_signed else c.const(0)
        return f"({_wrap(f'({a} >> {b})', c.out)} if {valid} else {fill})"

    rule.__name__ = "_rule_shift"
    return rule


def _where(c: ScalarCall) -> str:
    return f"({c.arg(1)} if {c.args[0]} else {c.arg(2)})"


def _isclose(c: ScalarCall) -> str:
    a_dt = c.in_types[0].dtype
    a, b = c.args[0], c.args[1]
    rtol, atol, equal_nan = c.attrs["rtol"], c.attrs["atol"], c.attrs["equal_nan"]
    close = f"({a} == {b})"
    if equal_nan and _is_float(a_dt):
        close = f"({close} | (({a} != {a}) & ({b} != {b})))"
    if rtol == 0 and atol == 0:
        return close
    fdt = a_dt if _is_float(a_dt) else dtypes.default_float_dtype()
    if _is_int(a_dt):    # |a - b| wraps in the integer type, then converts
        actual = cast(_wrap(f"abs({_iop(a, '-', b, a_dt)})", a_dt), a_dt, fdt)
    else:
        fa, fb = cast(a, a_dt, fdt), cast(b, a_dt, fdt)
        actual = f"abs({fa} - {fb})"
    allowed = f"({const(atol, fdt)} + abs({const(rtol, fdt)} * {cast(b, a_dt, fdt)}))"
    return f"({close} | (np.isfinite({actual}) & ({actual} <= {allowed})))"


# --- binary pointwise ---------------------------------------------------------------------------

def _npfn2(name: str):
    """NumPy's two-argument scalar function on inputs converted to the result dtype."""

    def rule(c: ScalarCall) -> str:
        return f"np.{name}({c.arg(0)}, {c.arg(1)})"

    rule.__name__ = f"_rule_{name}"
    return rule


def _clamp(c: ScalarCall) -> str:
    expr = c.arg(0)
    i = 1
    if c.attrs["has_min"]:
        expr = f"np.maximum({expr}, {c.arg(i)})"
        i += 1
    if c.attrs["has_max"]:
        expr = f"np.minimum({expr}, {c.arg(i)})"
    return expr


def _lerp(c: ScalarCall) -> str:
    s, e, w = c.arg(0), c.arg(1), c.arg(2)
    # PyTorch's formula, exact at both ends
    return (f"(({s} + {w} * ({e} - {s})) if abs({w}) < {c.const(0.5)} else "
            f"({e} - ({e} - {s}) * ({c.const(1.0)} - {w})))")


def _addc(symbol: str):
    """``input + value * t1 <symbol> t2`` with value converted to the result dtype first."""

    def rule(c: ScalarCall) -> str | None:
        x, t1, t2, v = c.arg(0), c.arg(1), c.arg(2), c.arg(3)
        if _is_float(c.out):
            return f"({x} + {v} * {t1} {symbol} {t2})"
        if symbol != "*" or c.out is dtypes.bool_:
            return None
        return _iop(x, "+", _iop(_iop(v, "*", t1, c.out), "*", t2, c.out), c.out)

    rule.__name__ = f"_rule_addc{symbol}"
    return rule


# --- the table ----------------------------------------------------------------------------------

SCALAR_RULES: Mapping[str, ScalarRule] = {
    # arithmetic
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "remainder": _remainder,
    "fmod": _fmod, "pow": _pow, "neg": _neg, "exp": _mathfn("exp"), "to_dtype": _to_dtype,
    # unary math
    "abs": _abs, "sign": _sign, "square": _square, "exp2": _npfn("exp2"),
    "log": _mathfn("log"), "log2": _npfn("log2"), "log10": _npfn("log10"),
    "log1p": _mathfn("log1p"), "expm1": _mathfn("expm1"), "sqrt": _npfn("sqrt"),
    "rsqrt": _rsqrt, "reciprocal": _reciprocal, "sin": _npfn("sin"), "cos": _npfn("cos"),
    "tan": _npfn("tan"), "asin": _npfn("arcsin"), "acos": _npfn("arccos"),
    "atan": _npfn("arctan"), "sinh": _npfn("sinh"), "cosh": _npfn("cosh"),
    "tanh": _mathfn("tanh"), "asinh": _npfn("arcsinh"), "acosh": _npfn("arccosh"),
    "atanh": _npfn("arctanh"), "deg2rad": _scale_by(math.pi, 180.0),
    "rad2deg": _scale_by(180.0, math.pi),
    "erf": _mathfn("erf"), "erfc": _mathfn("erfc"),
    "floor": _rounding("floor"), "ceil": _rounding("ceil"), "trunc": _rounding("trunc"),
    "round": _round, "frac": _frac,
    # predicates
    "isnan": _isnan, "isinf": _isinf, "isfinite": _isfinite, "isposinf": _isposinf,
    "isneginf": _isneginf, "signbit": _signbit, "nan_to_num": _nan_to_num,
    # activations
    "sigmoid": _sigmoid, "logsigmoid": _logsigmoid, "relu": _relu, "hardtanh": _hardtanh,
    "relu6": _hardtanh, "leaky_relu": _leaky_relu, "threshold": _threshold, "elu": _elu,
    "selu": _elu, "celu": _elu, "gelu": _gelu, "silu": _silu, "mish": _mish,
    "softplus": _softplus, "hardsigmoid": _hardsigmoid, "hardswish": _hardswish,
    "tanhshrink": _tanhshrink, "softsign": _softsign, "hardshrink": _hardshrink,
    "softshrink": _softshrink,
    # comparisons, logical, bitwise, where
    "eq": _compare("=="), "ne": _compare("!="), "lt": _compare("<"), "le": _compare("<="),
    "gt": _compare(">"), "ge": _compare(">="),
    "logical_and": _logical("&"), "logical_or": _logical("|"), "logical_xor": _logical("!="),
    "logical_not": _logical_not,
    "bitwise_and": _bitwise("&"), "bitwise_or": _bitwise("|"), "bitwise_xor": _bitwise("^"),
    "bitwise_not": _bitwise_not, "bitwise_left_shift": _shift(True),
    "bitwise_right_shift": _shift(False), "where": _where, "isclose": _isclose,
    # binary pointwise
    "atan2": _npfn2("arctan2"), "hypot": _npfn2("hypot"), "maximum": _npfn2("maximum"),
    "minimum": _npfn2("minimum"), "fmax": _npfn2("fmax"), "fmin": _npfn2("fmin"),
    "clamp": _clamp, "lerp": _lerp, "addcmul": _addc("*"), "addcdiv": _addc("/"),
}


def _as_type(t: TensorType | DType) -> TensorType:
    # a bare dtype stands for a tensor with dimensions (the strongest promotion class)
    return t if isinstance(t, TensorType) else TensorType((1,), t)


def scalar_expr(op: str, args: Sequence[str], in_types: Sequence[TensorType | DType],
                out_dtype: DType, attrs: Mapping[str, Any] | None = None, *,
                exact_math: bool = False) -> str | None:
    """The Numba scalar expression computing one element of elementwise op ``op``.

    ``args`` are the inputs' expressions, ``in_types`` their types (a TensorType says
    whether the input is a weak Python scalar or a 0-d tensor, which promotion needs; a
    bare DType means a tensor with dimensions), ``out_dtype`` the node's result dtype and
    ``attrs`` its attributes. Returns None where the op cannot be expressed exactly (the
    caller runs the node on the reference interpreter instead). See the module docstring
    for the typing contract.
    """
    rule = SCALAR_RULES.get(op)
    if rule is None:
        return None
    types = tuple(_as_type(t) for t in in_types)
    if len(types) != len(args):
        raise ValueError(f"{op}: {len(args)} argument expressions for {len(types)} types")
    if out_dtype not in _SUPPORTED or any(t.dtype not in _SUPPORTED for t in types):
        return None    # float16: Numba has no float16 arithmetic on the CPU
    return rule(ScalarCall(tuple(args), types, out_dtype, dict(attrs or {}), exact_math))
