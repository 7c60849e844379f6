"""Scalar expressions (codegen/scalar.py) against the ops' NumPy references.

Every elementwise call the registry's samples make (op, input dtypes and kinds,
attributes) becomes a case; cases with the same input dtypes share one compiled
kernel and one set of inputs (specials, extremes and random values), so the
whole table costs a few dozen Numba compiles. Each expression must have exactly
the result dtype as its Numba type and match the reference: bit for bit for
arithmetic, comparisons, casts and the rest, and within a few ulp where libm,
NumPy's SIMD code and codegen.mathfns may round transcendentals differently.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from codegen import scalar
from codegen.scalar import SCALAR_RULES, scalar_expr
from ir import dtypes
from ir.opdef import REGISTRY, OpKind
from ir.types import TensorType, scalar_type
from tests.codegen import _batch
from tests.codegen._cases import Case, N, input_data, recorded_cases

# ops with no exact scalar expression: the caller runs them on the interpreter
NOT_IN_TABLE = {"erfinv", "binary_cross_entropy"}

# ops whose expressions call transcendental functions (libm, NumPy's SIMD code and the
# inline functions may differ by an ulp or two); every other op must match bit for bit
APPROXIMATE = {
    "exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "asin",
    "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
    "sigmoid", "logsigmoid", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus",
    "tanhshrink", "pow", "atan2", "hypot",
}
ULPS = 4
# results that cancel (x - tanh(x), x * (1 + tanh(...)) near -inf): an ulp of an
# intermediate of the input's size is the error to allow, not an ulp of the result
CANCELLING = {"tanhshrink", "gelu"}

CASES = recorded_cases()
GROUPS: dict[tuple, list[Case]] = defaultdict(list)
for _case in CASES:
    GROUPS[_case.signature].append(_case)


def _group_id(signature) -> str:
    return "-".join(f"{k}{dt}" for k, dt in signature)


def _numba_type_name(dtype) -> str:
    return "bool" if dtype is dtypes.bool_ else dtype.np_dtype.name


def _first_input(case: Case) -> np.ndarray:
    """The first input's values as float64, length N."""
    kind, t = case.kinds[0], case.types[0]
    if kind == "w":
        return np.full(N, float(case.scalars[0]))
    data = input_data(t.dtype, 0).astype(np.float64)
    return data if kind == "a" else np.full(N, data[-1])


def _mismatch(case: Case, got: np.ndarray, want: np.ndarray) -> str | None:
    """None when ``got`` matches the reference ``want`` closely enough, else a message."""
    same = (got == want) | ((got != got) & (want != want))
    if case.op not in APPROXIMATE or not case.out.is_floating_point:
        bad = ~same
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        x = np.abs(_first_input(case))
        info = np.finfo(case.out.np_dtype)
        # erfc(x) and Phi(x) in the tail are ill-conditioned: an ulp of x * x becomes
        # ~2x^2 ulp of the result (SciPy's float64 reference rounds there, libm does not)
        cond = 1.0 + x * x if case.op in ("gelu", "erfc") else 1.0
        scale = x if case.op in CANCELLING else 0.0
        with np.errstate(all="ignore"):
            tol = ULPS * float(info.eps) * (np.abs(w) * cond + scale) + 4 * float(info.tiny)
            close = np.isfinite(w) & (np.abs(g - w) <= tol)
        bad = ~(same | close)
        if case.op == "pow" and case.kinds[0] != "w":
            # NumPy's SIMD pow gives nan for (-inf) ** 0.5; C99 and PyTorch give inf
            bad &= input_data(case.types[0].dtype, 0) != -np.inf
    if not bad.any():
        return None
    i = np.nonzero(bad)[0][:4]
    return (f"{case.op}{dict(case.attrs)} {case.signature} scalars={case.scalars}: "
            f"{int(bad.sum())} differ, e.g. at {i.tolist()}: got {got[i]}, reference {want[i]}")


def _check_group(cases: list[Case], exact_math: bool = False) -> int:
    outs, types, src = _batch.run(cases, exact_math=exact_math)
    problems = []
    for j, got in outs.items():
        case = cases[j]
        expected_type = _numba_type_name(case.out)
        # a constant result (isnan of an int) is typed Literal[bool](False): still a bool
        if types[j] != expected_type and not types[j].startswith("Literal[bool]"):
            problems.append(f"{case.op}{dict(case.attrs)} {case.signature}: Numba type "
                            f"{types[j]}, result dtype {expected_type}")
        msg = _mismatch(case, got, _batch.reference(case))
        if msg:
            problems.append(msg)
    assert not problems, "\n".join(problems) + "\n\nkernel:\n" + src
    return len(outs)


@pytest.mark.parametrize("signature", list(GROUPS), ids=[_group_id(s) for s in GROUPS])
def test_expressions_match_reference(signature):
    cases = GROUPS[signature]
    compiled = _check_group(cases)
    if not any(dt == "float16" for _, dt in signature) and \
            not all(c.op in NOT_IN_TABLE for c in cases):
        assert compiled, f"no case of {signature} has an expression"


def test_every_elementwise_op_has_a_rule_or_a_reason():
    elementwise = {n for n, op in REGISTRY.items() if op.kind is OpKind.ELEMENTWISE}
    assert set(SCALAR_RULES) <= elementwise, set(SCALAR_RULES) - elementwise
    assert elementwise - set(SCALAR_RULES) == NOT_IN_TABLE
    for name in NOT_IN_TABLE:
        t = TensorType((3,), dtypes.float32)
        assert scalar_expr(name, ["a", "b"], [t, t], dtypes.float32, {}) is None


def test_every_table_op_was_checked():
    checked = {c.op for c in CASES
               if scalar_expr(c.op, ["a"] * len(c.types), c.types, c.out, dict(c.attrs))}
    assert checked == set(SCALAR_RULES)


F32, F64 = dtypes.float32, dtypes.float64


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,attrs,arity", [
    ("add", {}, 2), ("sub", {}, 2), ("mul", {}, 2), ("div", {"rounding_mode": None}, 2),
    ("neg", {}, 1), ("pow", {}, 2), ("exp", {}, 1), ("log", {}, 1), ("tanh", {}, 1),
    ("sigmoid", {}, 1), ("relu", {}, 1), ("gelu", {"approximate": "none"}, 1),
    ("gelu", {"approximate": "tanh"}, 1), ("silu", {}, 1), ("abs", {}, 1), ("sqrt", {}, 1),
    ("rsqrt", {}, 1), ("maximum", {}, 2), ("minimum", {}, 2), ("eq", {}, 2), ("lt", {}, 2),
    ("ge", {}, 2), ("clamp", {"has_min": True, "has_max": True}, 3),
    ("threshold", {"threshold": 0.0, "value": 0.0}, 1), ("to_dtype", {"dtype": F64}, 1),
])
def test_training_ops_are_expressible(op, attrs, arity, dtype):
    t = TensorType((4, 5), dtype)
    out = REGISTRY[op].type_rule((t,) * arity, **attrs).dtype
    assert scalar_expr(op, [f"x{i}" for i in range(arity)], [t] * arity, out, attrs)


def test_where_and_cast_spelling():
    t32, b = TensorType((3,), F32), TensorType((3,), dtypes.bool_)
    assert scalar_expr("where", ["c", "a", "b"], [b, t32, t32], F32) == "(a if c else b)"
    assert scalar_expr("add", ["a", "b"], [t32, t32], F32) == "(a + b)"
    # a Python float meeting a float32 tensor is converted to float32 first
    assert scalar_expr("mul", ["a", "s"], [t32, scalar_type(0.5)], F32) == "(a * np.float32(s))"
    # a float64 0-d tensor does not promote a float32 tensor
    z64 = TensorType((), F64)
    assert scalar_expr("lt", ["a", "z"], [t32, z64], dtypes.bool_) == "(a < np.float32(z))"
    # but a float64 tensor with dimensions does
    assert scalar_expr("lt", ["a", "z"], [t32, TensorType((3,), F64)], dtypes.bool_) == \
        "(np.float64(a) < z)"
    assert scalar.const(0.1, F32) == "np.float32(0.1)"
    assert scalar.const(float("-inf"), F64) == "-np.inf"
    assert scalar.cast("x", F32, dtypes.bool_) == "(x != 0)"


def test_square_by_literal_exponent_is_a_product():
    t = TensorType((3,), F32)
    assert scalar_expr("pow", ["x", "2"], [t, scalar_type(2)], F32) == "(x * x)"
    assert scalar_expr("pow", ["x", "2.0"], [t, scalar_type(2.0)], F32) == "(x * x)"
    assert scalar_expr("pow", ["x", "s"], [t, scalar_type(2.0)], F32) == "(x ** np.float32(s))"
    kernel = _batch.compile_kernel("def kernel(xs, o):\n    for i in range(xs.shape[0]):\n"
                                   "        x = xs[i]\n        o[i] = (x * x)\n")
    x = input_data(F32, 0)
    out = np.empty_like(x)
    kernel(x, out)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, REGISTRY["pow"].impl(x, 2))


def test_not_expressible_gives_none():
    i64 = TensorType((3,), dtypes.int64)
    f16 = TensorType((3,), dtypes.float16)
    assert scalar_expr("add", ["a", "b"], [f16, f16], dtypes.float16) is None
    assert scalar_expr("to_dtype", ["a"], [TensorType((3,), F32)], dtypes.float16,
                       {"dtype": dtypes.float16}) is None
    # integer division by zero raises in the reference: no kernel can say so
    assert scalar_expr("div", ["a", "b"], [i64, i64], dtypes.int64,
                       {"rounding_mode": "floor"}) is None
    assert scalar_expr("remainder", ["a", "b"], [i64, i64], dtypes.int64) is None
    assert scalar_expr("no_such_op", ["a"], [i64], dtypes.int64) is None


def test_float32_composition_stays_float32():
    """gelu(x * w + b) composed from three expressions stays float32 end to end."""
    t = TensorType((3,), F32)
    inner = scalar_expr("add", [scalar_expr("mul", ["x", "w"], [t, t], F32), "b"], [t, t], F32)
    expr = scalar_expr("gelu", [inner], [t], F32, {"approximate": "tanh"})
    assert "np.float64" not in expr
    kernel = _batch.compile_kernel(
        "def kernel(xs, ws, bs, o):\n    for i in range(xs.shape[0]):\n"
        f"        x = xs[i]\n        w = ws[i]\n        b = bs[i]\n        r0 = {expr}\n"
        "        o[i] = r0\n")
    x = np.linspace(-3, 3, 11, dtype=np.float32)
    out = np.empty_like(x)
    kernel(x, x, x, out)
    typemap = kernel.overloads[kernel.signatures[0]].type_annotation.typemap
    assert str(typemap["r0"]) == "float32"
    with np.errstate(all="ignore"):
        want = REGISTRY["gelu"].impl(x * x + x, approximate="tanh")
    np.testing.assert_allclose(out, want, rtol=4e-7, atol=1e-7)


EXACT_MATH_OPS = {"exp", "log", "log1p", "expm1", "tanh", "sigmoid", "logsigmoid", "erf",
                  "erfc", "gelu", "silu", "mish", "softplus", "elu"}


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_exact_math_uses_libm(dtype):
    # the float32 samples' calls (all attribute variants), retyped to ``dtype``
    t = TensorType((N,), dtype)
    cases = [Case(c.op, ("a",), (t,), c.attrs, (), dtype) for c in GROUPS[(("a", "float32"),)]
             if c.op in EXACT_MATH_OPS]
    assert {c.op for c in cases} == EXACT_MATH_OPS
    for c in cases:
        fast = scalar_expr(c.op, ["x"], c.types, c.out, dict(c.attrs))
        exact = scalar_expr(c.op, ["x"], c.types, c.out, dict(c.attrs), exact_math=True)
        assert exact != fast or "_mf." not in fast, c.op
        assert "_mf.exp_" not in exact and "_mf.tanh_" not in exact and "_mf.erf_" not in exact
    _check_group(cases, exact_math=True)
