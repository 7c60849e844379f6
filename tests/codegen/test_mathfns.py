"""The inline transcendental functions (codegen/mathfns.py): error bounds over a dense
grid, special values, the exact-libm switch, and that loops calling them vectorise."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
from scipy import special

from codegen import mathfns, mathfns_derive
from tests.codegen._batch import compile_kernel

# the grids hold inf, nan and extremes on purpose
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

REFERENCE = {   # float64 truth for each function
    "exp": np.exp, "log": np.log, "expm1": np.expm1, "log1p": np.log1p, "tanh": np.tanh,
    "sigmoid": special.expit, "erf": special.erf, "erfc": special.erfc, "ndtr": special.ndtr,
    "softplus": lambda x: np.logaddexp(0.0, x),
}
assert set(REFERENCE) == set(mathfns.FUNCTIONS)

F32_MAX_REL = 1e-7     # measured 6.0e-8: the final rounding to float32, plus ~4e-10
                       # (tanh: its rational fit, 7.4e-9)
F64_MAX_ULP = {"exp": 1, "log": 1, "expm1": 2, "log1p": 2, "tanh": 3, "sigmoid": 3,
               "softplus": 3, "erf": 6, "erfc": 6, "ndtr": 6}   # erf family: libm vs SciPy


def _conditioning(fn: str, x: np.ndarray) -> np.ndarray:
    """How much an argument's rounding magnifies in the result: erfc(x) and Phi(x) have
    relative condition number ~2x^2 in the tail (SciPy rounds x*x there; libm does not)."""
    return 1.0 + x * x if fn in ("erfc", "ndtr") else np.ones_like(x)


@functools.cache
def _kernel(dtype, exact: bool = False):
    """One kernel computing every function on x into a (len(FUNCTIONS), n) array."""
    lines = "".join(f"        out[{k}, i] = {mathfns.call(fn, dtype, 'v', exact=exact)}\n"
                    for k, fn in enumerate(mathfns.FUNCTIONS))
    return compile_kernel("def kernel(x, out):\n    for i in range(x.shape[0]):\n"
                          f"        v = x[i]\n{lines}")


def _run(kernel, x):
    out = np.empty((len(mathfns.FUNCTIONS), x.size), x.dtype)
    kernel(x, out)
    return dict(zip(mathfns.FUNCTIONS, out))


def _grid(dtype, n_random: int = 300_000) -> np.ndarray:
    """Random bit patterns (every exponent), a dense linear range, and edge cases."""
    rng = np.random.default_rng(7)
    itype = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(itype).max, n_random, dtype=itype, endpoint=True)
    info = np.finfo(dtype)
    edges = [0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny,
             -info.tiny, 1e-30, -1e-30, 1.0, -1.0, 0.5, 88.0, -88.0, 89.0, -104.0, 709.0,
             -745.0, 710.0, info.max, -info.max, np.inf, -np.inf, np.nan]
    with np.errstate(over="ignore"):
        parts = [bits.view(dtype), np.linspace(-40, 40, 400_001, dtype=dtype),
                 np.geomspace(1e-12, 1.0, 20_001, dtype=dtype),
                 -np.geomspace(1e-12, 1.0, 20_001, dtype=dtype), np.array(edges, dtype)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def results():
    """Every function on the grids, fast and exact, float32 and float64."""
    out = {}
    for dtype in (np.float32, np.float64):
        x = _grid(dtype)
        with np.errstate(all="ignore"):
            ref = {fn: np.asarray(f(x.astype(np.float64)), np.float64)
                   for fn, f in REFERENCE.items()}
        out[dtype] = (x, ref, _run(_kernel(dtype), x), _run(_kernel(dtype, exact=True), x))
    return out


def _special_mismatch(x, got, ref, dtype) -> np.ndarray:
    """Where the result must equal the reference exactly: NaN and inf results, and every
    result for a zero, infinite or NaN argument (signed zeros included)."""
    want = ref.astype(dtype)
    special_ = np.isnan(want) | np.isinf(want) | (x == 0) | ~np.isfinite(x)
    same = (np.isnan(got) & np.isnan(want)) | (
        (got == want) & (np.signbit(got) == np.signbit(want)))
    return special_ & ~same


@pytest.mark.parametrize("fn", mathfns.FUNCTIONS)
def test_float32_error_bound(results, fn):
    x, ref, fast, _ = results[np.float32]
    got = fast[fn].astype(np.float64)
    info = np.finfo(np.float32)
    normal = (np.abs(ref[fn]) >= info.tiny) & (np.abs(ref[fn]) <= info.max)
    with np.errstate(all="ignore"):
        rel = np.abs(got[normal] - ref[fn][normal]) / np.abs(ref[fn][normal])
    worst = int(np.argmax(rel))
    assert rel[worst] <= F32_MAX_REL, \
        f"{fn}_f32: relative error {rel[worst]:.3g} at x={x[normal][worst]!r}"
    # below the normal range: within a subnormal step of the truth (correct rounding)
    tiny = np.abs(ref[fn]) < info.tiny
    assert np.all(np.abs(got[tiny] - ref[fn][tiny]) <= info.smallest_subnormal)
    bad = _special_mismatch(x, fast[fn], ref[fn], np.float32)
    assert not bad.any(), f"{fn}_f32 at {x[bad][:5]}: {fast[fn][bad][:5]}"


@pytest.mark.parametrize("fn", mathfns.FUNCTIONS)
def test_float64_error_bound(results, fn):
    x, ref, fast, _ = results[np.float64]
    got = fast[fn]
    info = np.finfo(np.float64)
    # references that round to subnormals (SciPy's expit flushes them) are left out
    normal = (np.abs(ref[fn]) >= info.tiny) & np.isfinite(ref[fn])
    ulps = np.abs(got[normal] - ref[fn][normal]) / np.spacing(np.abs(ref[fn][normal]))
    ulps /= _conditioning(fn, x[normal])
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= F64_MAX_ULP[fn], \
        f"{fn}_f64: {ulps[worst]:.2f} ulp at x={x[normal][worst]!r}"
    bad = _special_mismatch(x, got, ref[fn], np.float64)
    assert not bad.any(), f"{fn}_f64 at {x[bad][:5]}: {got[bad][:5]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30], dtype)
    got = _run(_kernel(dtype), x)
    for fn, ref in REFERENCE.items():
        with np.errstate(all="ignore"):
            want = ref(x.astype(np.float64)).astype(dtype)
        same = (np.isnan(got[fn]) & np.isnan(want)) | (
            (got[fn] == want) & (np.signbit(got[fn]) == np.signbit(want)))
        close = np.abs(got[fn] - want) <= 2 * np.spacing(np.abs(want))
        assert np.all(same | (np.isfinite(want) & (want != 0) & close)), \
            f"{fn}: {got[fn]} vs {want}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_exact_switch_uses_libm(results, dtype):
    assert mathfns.call("tanh", dtype, "x", exact=True) == "np.tanh(x)"
    suffix = "f32" if dtype == np.float32 else "f64"
    assert mathfns.call("exp", dtype, "x") == f"_mf.exp_{suffix}(x)"
    for fn in mathfns.FUNCTIONS:
        text = mathfns.call(fn, dtype, "x", exact=True)
        assert text.startswith(("np.", "math.")) or "_libm(" in text, text
    x, ref, _, exact = results[dtype]
    for fn in mathfns.FUNCTIONS:
        want = ref[fn].astype(dtype)
        tol = 6 * np.spacing(np.abs(want)) * _conditioning(fn, x.astype(np.float64))
        with np.errstate(all="ignore"):
            ok = (np.abs(exact[fn] - want) <= tol + 4 * np.finfo(dtype).tiny) | (
                exact[fn] == want) | (np.isnan(exact[fn]) & np.isnan(want))
        finite = np.abs(ref[fn]) >= np.finfo(dtype).tiny
        assert ok[finite].all(), f"exact {fn}: {x[finite & ~ok][:5]}"


def test_call_rejects_unknown_names_and_dtypes():
    with pytest.raises(ValueError, match="no inline function"):
        mathfns.call("gamma", np.float32, "x")
    with pytest.raises(TypeError, match="float32 and float64"):
        mathfns.call("exp", np.float16, "x")


@pytest.mark.parametrize("fn", mathfns.FUNCTIONS)
def test_float32_loops_vectorise(fn):
    """A loop calling the inline function becomes vector code (LLVM IR with <N x float>
    operations): the point of these functions, since libm calls stay scalar."""
    kernel = compile_kernel("def kernel(x, out):\n    for i in range(x.shape[0]):\n"
                            f"        out[i] = {mathfns.call(fn, np.float32, 'x[i]')}\n")
    x = np.ones(64, np.float32)
    kernel(x, np.empty_like(x))
    llvm = "".join(kernel.inspect_llvm().values())
    assert re.search(r"<\d+ x (float|double)>", llvm), f"{fn}_f32 loop is not vectorised"


def test_erf_coefficients_are_reproducible():
    small, tail = mathfns_derive.derive_erf_coefficients()
    np.testing.assert_allclose(small, mathfns._ERF_SMALL, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(tail, mathfns._ERFCX_TAIL, rtol=1e-9, atol=1e-15)


def test_tanh_coefficients_are_reproducible():
    p, q, err = mathfns_derive.derive_tanh_coefficients()
    np.testing.assert_allclose(p, mathfns._TANH_P, rtol=1e-6, atol=1e-18)
    np.testing.assert_allclose(q, mathfns._TANH_Q, rtol=1e-6)
    assert err < 1e-8


def test_float32_tanh_is_exactly_one_where_it_rounds_to_one():
    """From _TANH_ONE on the rational is not evaluated (it would overflow to inf / inf far
    out): tanh is +-1.0f there, as the correctly rounded result."""
    kernel = _kernel(np.float32)
    x = np.array([mathfns._TANH_ONE, 9.5, 20.0, 1e30, np.finfo(np.float32).max], np.float32)
    got = _run(kernel, np.concatenate([x, -x]))["tanh"]
    want = np.tanh(np.concatenate([x, -x]).astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_ln2_split_is_exact_for_cody_waite():
    hi, lo = mathfns._LN2_HI, mathfns._LN2_LO
    assert hi + lo == math.log(2.0)
    # k * hi exact for |k| < 2^11: hi has at most 32 significant bits
    assert (np.float64(hi).view(np.int64) & ((1 << 21) - 1)) == 0
