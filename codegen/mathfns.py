"""Inline, vectorisable scalar functions that generated kernels call.

The pip llvmlite has no SVML, so LLVM cannot vectorise a loop that calls
``np.tanh``/``np.exp``: it splits the vector into scalar libm calls (see
NUMBA_NOTES.md). The functions here are written with arithmetic, comparisons
and bit casts only, so that once ``@njit(inline="always")`` pastes them into a
kernel's loop, LLVM vectorises the whole loop.

Each function exists per dtype (``exp_f32``, ``exp_f64``, ...): it takes and
returns that dtype. float32 versions compute in float64 with polynomials
that are accurate to ~1e-10 and round once at the end, so they are within
half an ulp plus that (< 2e-7 relative) of the exact value, except
``exp_f32``, which runs in float32 arithmetic (twice the vector lanes; the
softmax and cross-entropy kernels are mostly exp) with a degree-8 FMA Horner
polynomial, within 8e-8 relative; ``tanh_f32`` is
a rational minimax fit in float64 (relative error 7.4e-9 before the final
rounding), one division and no exp. The polynomial helpers are compiled with
LLVM's ``contract`` flag (a * b + c as one FMA). float64 versions
use textbook range reductions (Cody-Waite for exp/expm1, mantissa/exponent
split and the atanh series for log) with Taylor polynomials of high enough
degree that only rounding remains (a few ulp). ``erf``/``erfc``/``ndtr`` in
float64 call libm: a few-ulp float64 erf needs several rational
approximations per lane, which this module does not attempt.

``call(name, dtype, arg, exact=...)`` gives the source text of a call for the
kernel generator; ``exact=True`` selects the libm functions instead (what
``np.exp`` and friends call inside Numba), or for sigmoid, softplus and the
normal CDF the reference's formula written with them.

Special values: every function returns NaN for NaN, the limits at +-inf
(exp(-inf) = 0, tanh(inf) = 1, log(inf) = inf, ...), keeps the sign of
zero where the exact function does (tanh, expm1, log1p, erf of -0.0), and
overflows/underflows where the exact result does, with correctly rounded
subnormals.

Accuracy, as ``tests/codegen/test_mathfns.py`` bounds it, with the largest
error against float64 NumPy/SciPy measured on that test's grid grown to 3
million random bit patterns (so every exponent), plus a dense grid on
[-40, 40] and the edge cases 0, -0, +-subnormal, +-tiny, +-huge, +-inf and
NaN, where the exact result is a normal number. float32: relative error,
including the final rounding to float32 (half an ulp is up to 6e-8
relative); the test allows 1e-7. float64: ulp of the reference; the test
allows one more (erf family: 6, libm against SciPy).

==========  ==================  ==================
function    float32 (relative)  float64 (ulp)
==========  ==================  ==================
exp         8.0e-08             1
log         6.0e-08             1
expm1       6.0e-08             2
log1p       6.0e-08             2
tanh        5.9e-08             3
sigmoid     6.0e-08             3
softplus    6.0e-08             3
erf         6.0e-08             libm (2 vs SciPy)
erfc        6.0e-08             libm
ndtr        6.0e-08             libm
==========  ==================  ==================

Below the normal range float32 results are within one subnormal step of the
truth (they are rounded once, from float64). For erfc and ndtr in float64 far
in the tail, libm and SciPy differ by up to ~500 ulp: the rounding of x * x
there is magnified ~2x^2 times (SciPy is the less accurate one).

In W3's kernel (tanh-GELU forward + backward + sum over 2^24 float32), one
thread, CPU time: 48 ms with the former expm1-based tanh_f32 (Horner without
FMA), 24 ms with the rational one, 13 ms with the tanh left out. A float32
reciprocal refined by a Newton step in place of the float64 division was slower
(longer dependency chain).

Speed: ``python -m codegen.mathfns_derive`` times each inline function against
libm inside Numba; the table is in that module's docstring.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit
from numba.core import types as nb_types
from numba.extending import intrinsic

__all__ = [
    "FUNCTIONS", "call", "exp_f32", "exp_f64", "log_f32", "log_f64", "expm1_f32", "expm1_f64",
    "log1p_f32", "log1p_f64", "tanh_f32", "tanh_f64", "sigmoid_f32", "sigmoid_f64",
    "erf_f32", "erf_f64", "erfc_f32", "erfc_f64", "ndtr_f32", "ndtr_f64", "softplus_f32",
    "softplus_f64", "sigmoid_f32_libm", "sigmoid_f64_libm", "ndtr_f32_libm", "ndtr_f64_libm",
    "softplus_f32_libm", "softplus_f64_libm", "floor_divide_f32", "floor_divide_f64",
    "remainder_f32", "remainder_f64", "ipow", "chunk_sum",
]

# Public functions are inlined into the kernel at Numba IR level (inline="always"), so
# LLVM sees one loop body it can vectorise. Their helpers are plain njit functions that
# LLVM inlines on its own (they are small): nesting inline="always" is what makes Numba's
# compile time grow fast (each level re-runs the untyped passes on the callee), and a
# kernel with 20 erf calls took 30 s to compile that way against 8 s now.
_inline = njit(inline="always", error_model="numpy")
# 'contract' lets LLVM fuse a * b + c into one FMA (one rounding instead of two: never less
# accurate). It is an instruction flag, so it stays on the helpers' instructions when LLVM
# inlines them and never reaches the kernel's own arithmetic (whose rounding must match
# NumPy's). It halves the instructions of the polynomials below.
_helper = njit(error_model="numpy", fastmath={"contract"})


# --- constants ----------------------------------------------------------------------------------

def _ln2_split() -> tuple[float, float]:
    """ln 2 as hi + lo, hi with its 21 low mantissa bits zero so that k * hi is exact for
    |k| < 2^11 (Cody-Waite), lo the rest, from a 50-digit ln 2."""
    with localcontext() as ctx:
        ctx.prec = 50
        ln2 = Decimal(2).ln()
        bits = np.float64(float(ln2)).view(np.int64) & ~np.int64((1 << 21) - 1)
        hi = float(np.int64(bits).view(np.float64))
        return hi, float(ln2 - Decimal(hi))


_LN2_HI, _LN2_LO = _ln2_split()
_LOG2E = 1.4426950408889634          # 1 / ln 2, rounded
_SQRT2 = 1.4142135623730951
_SQRT1_2 = 0.7071067811865476
_ROUND_MAGIC = 6755399441055744.0    # 1.5 * 2^52: (v + M) - M rounds v to an integer
_TWO54 = 18014398509481984.0
# exp_f32's constants: the float32 Cody-Waite split of ln 2 (hi has 12 significant bits,
# so k * hi is exact for |k| < 2^11) and 1/n! for its Horner polynomial
_F32_LN2_HI = np.float32(0.693359375)
_F32_LN2_LO = np.float32(-2.12194440e-4)
_F32_LOG2E = np.float32(_LOG2E)
_F32_ROUND_MAGIC = np.float32(12582912.0)   # 1.5 * 2^23
_F32_EXP_LO = np.float32(-104.0)             # exp(-104) rounds to 0 in float32
_F32_EXP_HI = np.float32(89.0)               # exp(89) overflows
_F32_INV_FACT = tuple(np.float32(1.0 / math.factorial(n)) for n in (8, 7, 6, 5, 4, 3, 2))
_MIN_NORMAL = 2.2250738585072014e-308
_INF = math.inf
_NAN = math.nan

# erf on |x| < 1: erf(a) = a * P(u), u = (a^2 - 0.5) / 0.5; erfc on |x| >= 1:
# erfc(a) = exp(-a^2) * Q(v), v = (1/a - c) / h. Least-squares Chebyshev fits,
# see codegen.mathfns_derive; relative errors 9e-13 and 4e-10.
_ERF_SMALL = (0.9654687386698863, -0.1405360890155293, 0.0198524966880827,
              -0.0022854856569544087, 0.0002175171632417421, -1.753682468830346e-05,
              1.2233625985275917e-06, -7.557492725341712e-08, 4.138787533911405e-09)
_ERFCX_TAIL = (0.2753199404127522, 0.18533944124847884, -0.037138518684650096,
               0.003082796604787642, 0.0019194049193187565, -0.0013327351756871203,
               0.0004869339168319416, -8.634460136133643e-05, -2.8760968177459017e-05,
               3.4411091409044606e-05, -2.0802392927471632e-05, 1.1374423400823221e-05,
               -2.040597437756048e-06, -3.105362669775127e-06, 1.5813492157527962e-06)
_TAIL_LO = 1.0 / 10.5   # the tail fit covers 1 <= a <= 10.5 (erfc(10.5) < f32 min subnormal)
_TAIL_C = (1.0 + _TAIL_LO) / 2
_TAIL_H = (1.0 - _TAIL_LO) / 2


# tanh on [0, 9.1] for float32 arguments: tanh(a) = a P(a^2) / Q(a^2), a minimax fit of the
# relative error (7.4e-9, see codegen.mathfns_derive); beyond 9.1, 1 - tanh(a) < 2^-25,
# so tanh rounds to 1.0f there.
_TANH_ONE = 9.1
_TANH_P = (1.0, 0.1367113733100746, 0.003857057820096597, 2.7764492422626103e-05,
           2.994707570922332e-08, -1.1692552153863423e-11)
_TANH_Q = (1.0, 0.4700447066322221, 0.027205293988489032, 0.00039181902206048626,
           1.2696357850213478e-06)


# --- bit casts ----------------------------------------------------------------------------------

@intrinsic
def _bits_to_f64(typingctx, bits):
    """Reinterpret an int64 as a float64 (a bitcast LLVM vectorises)."""
    if bits != nb_types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return nb_types.float64(nb_types.int64), codegen


@intrinsic
def _bits_to_f32(typingctx, bits):
    """Reinterpret an int32 as a float32."""
    if bits != nb_types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())

    return nb_types.float32(nb_types.int32), codegen


@intrinsic
def _f64_to_bits(typingctx, x):
    """Reinterpret a float64 as an int64."""
    if x != nb_types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))

    return nb_types.int64(nb_types.float64), codegen


@_helper
def _pow2(k):
    """2.0 ** k for an int64 k in [-1022, 1023]."""
    return _bits_to_f64((k + np.int64(1023)) << np.int64(52))


@_helper
def _round(v):
    """v rounded to the nearest integer (ties to even), for |v| < 2^51."""
    return (v + _ROUND_MAGIC) - _ROUND_MAGIC


@_helper
def _clamp(x, lo, hi):
    """x limited to [lo, hi]; NaN gives lo (callers select NaN back at the end)."""
    y = x if x > lo else lo
    return y if y < hi else hi


# --- exp ----------------------------------------------------------------------------------------

@_helper
def _expm1_poly13(r):
    """expm1(r) for |r| <= ln2/2 by Taylor to degree 13 (truncation < 2e-17 relative)."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return r + (r * r) * p


@_helper
def _expm1_poly9(r):
    """expm1(r) for |r| <= ln2/2 by Taylor to degree 9 (truncation < 2e-10 relative)."""
    p = 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return r + (r * r) * p


@_helper
def _reduce_ln2(x):
    """(k, r) with x = k ln2 + r, |r| <= ln2/2 (x already clamped to |x| < 1100)."""
    kf = _round(x * _LOG2E)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    return np.int64(kf), r


@_helper
def _exp64(x):
    xc = _clamp(x, -746.0, 710.0)
    k, r = _reduce_ln2(xc)
    p = 1.0 + _expm1_poly13(r)
    k1 = k >> np.int64(1)   # two scalings: 2^k alone overflows or is subnormal at the ends
    y = (p * _pow2(k1)) * _pow2(k - k1)
    return y if x == x else x


@_helper
def _exp32(x):
    """exp in float64 to ~2e-10, for arguments of float32 kernels (|x| of any size)."""
    xc = _clamp(x, -110.0, 90.0)
    k, r = _reduce_ln2(xc)
    y = (1.0 + _expm1_poly9(r)) * _pow2(k)
    return y if x == x else x


@_inline
def exp_f64(x):
    """e ** x for a float64 (<= 1 ulp)."""
    return _exp64(x)


@_helper
def _pow2_f32(k):
    """2.0 ** k as a float32 for an int k in [-126, 127]."""
    return _bits_to_f32(np.int32((k + 127) << 23))


@_helper
def _exp_f32_native(x):
    """exp in float32 arithmetic: twice the lanes of the float64 route, and FMA Horner
    keeps it within 8e-8 relative (the final 1 + p rounding is most of it)."""
    xc = x if x > _F32_EXP_LO else _F32_EXP_LO
    xc = xc if xc < _F32_EXP_HI else _F32_EXP_HI
    kf = (xc * _F32_LOG2E + _F32_ROUND_MAGIC) - _F32_ROUND_MAGIC
    r = (xc - kf * _F32_LN2_HI) - kf * _F32_LN2_LO    # exact, then one rounding
    p = _F32_INV_FACT[0]    # Taylor to degree 8: truncation < 3e-10 for |r| <= ln2/2
    p = p * r + _F32_INV_FACT[1]
    p = p * r + _F32_INV_FACT[2]
    p = p * r + _F32_INV_FACT[3]
    p = p * r + _F32_INV_FACT[4]
    p = p * r + _F32_INV_FACT[5]
    p = p * r + _F32_INV_FACT[6]
    y = np.float32(1.0) + (r + (r * r) * p)
    k = np.int32(kf)
    k1 = k >> 1     # two scalings: 2^k alone overflows or is subnormal at the ends
    y = (y * _pow2_f32(k1)) * _pow2_f32(k - k1)
    return y if x == x else x


@_inline
def exp_f32(x):
    """e ** x for a float32, in float32 arithmetic (< 8e-8 relative)."""
    return _exp_f32_native(np.float32(x))


# --- expm1 --------------------------------------------------------------------------------------

@_helper
def _expm1_64(x):
    xc = _clamp(x, -40.0, 710.0)      # expm1(-40) is -1 in float64
    k, r = _reduce_ln2(xc)
    p = _expm1_poly13(r)
    # expm1(x) = 2^k (p + 1 - 2^-k): exact for k = 0, and 1 - 2^-k is exact for k <= 53
    kk = k if k < 60 else np.int64(60)
    c = 1.0 - _pow2(-kk)
    y = ((p + c) * _pow2(k - np.int64(1))) * 2.0
    return y if (x == x and x != 0.0) else x


@_helper
def _expm1_32(x):
    xc = _clamp(x, -20.0, 90.0)       # expm1(-20) rounds to -1 in float32
    k, r = _reduce_ln2(xc)
    p = _expm1_poly9(r)
    y = (p + (1.0 - _pow2(-k))) * _pow2(k)
    return y if (x == x and x != 0.0) else x


@_inline
def expm1_f64(x):
    """exp(x) - 1 for a float64, accurate near 0 (<= 2 ulp)."""
    return _expm1_64(x)


@_inline
def expm1_f32(x):
    """exp(x) - 1 for a float32, computed in float64."""
    return np.float32(_expm1_32(np.float64(x)))


# --- log ----------------------------------------------------------------------------------------

@_helper
def _log_split(x):
    """(e, f) with x = 2^e (1 + f), sqrt(1/2) <= 1 + f < sqrt(2), for finite x > 0."""
    tiny = x < _MIN_NORMAL
    xs = x * _TWO54 if tiny else x
    bits = _f64_to_bits(xs)
    e = ((bits >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1077 if tiny else 1023)
    m = _bits_to_f64((bits & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + np.int64(1) if big else e
    return np.float64(e), m - 1.0


@_helper
def _log_tail10(z):
    """sum_{k=1..10} 2 z^k / (2k + 1): log(1 + f) = 2 atanh(s) = 2s + s R(z), z = s^2."""
    p = 2.0 / 21.0
    p = p * z + 2.0 / 19.0
    p = p * z + 2.0 / 17.0
    p = p * z + 2.0 / 15.0
    p = p * z + 2.0 / 13.0
    p = p * z + 2.0 / 11.0
    p = p * z + 2.0 / 9.0
    p = p * z + 2.0 / 7.0
    p = p * z + 2.0 / 5.0
    p = p * z + 2.0 / 3.0
    return p * z


@_helper
def _log_tail5(z):
    """The first five terms of the series above (truncation < 1e-10 relative)."""
    p = 2.0 / 11.0
    p = p * z + 2.0 / 9.0
    p = p * z + 2.0 / 7.0
    p = p * z + 2.0 / 5.0
    p = p * z + 2.0 / 3.0
    return p * z


@_helper
def _log_special(x, y):
    """y where log is finite; -inf at 0, NaN below 0 or at NaN, inf at inf."""
    y = -_INF if x == 0.0 else y
    y = _NAN if x < 0.0 else y
    return y if x < _INF else x + x   # inf -> inf, nan -> nan


@_helper
def _log64(x):
    e, f = _log_split(x)
    s = f / (2.0 + f)
    hfsq = 0.5 * f * f
    # log(1 + f) = f - hfsq + s (hfsq + R): f stays exact, the rest is small
    tail = s * (hfsq + _log_tail10(s * s))
    y = e * _LN2_HI - ((hfsq - (tail + e * _LN2_LO)) - f)
    return _log_special(x, y)


@_helper
def _log32(x):
    """log in float64 to ~1e-10 (float32 arguments are never subnormal in float64)."""
    e, f = _log_split(x)
    s = f / (2.0 + f)
    hfsq = 0.5 * f * f
    tail = s * (hfsq + _log_tail5(s * s))
    y = e * _LN2_HI - ((hfsq - (tail + e * _LN2_LO)) - f)
    return _log_special(x, y)


@_inline
def log_f64(x):
    """Natural logarithm of a float64 (<= 1 ulp)."""
    return _log64(x)


@_inline
def log_f32(x):
    """Natural logarithm of a float32, computed in float64."""
    return np.float32(_log32(np.float64(x)))


# --- log1p --------------------------------------------------------------------------------------

@_helper
def _log1p64(x):
    # Kahan: log(u) * x / (u - 1), u = 1 + x, cancels the rounding of u
    u = 1.0 + x
    y = _log64(u) * (x / (u - 1.0))
    y = x if u == 1.0 else y
    return y if x < _INF else x + x


@_inline
def log1p_f64(x):
    """log(1 + x) for a float64, accurate near 0 (<= 2 ulp)."""
    return _log1p64(x)


@_helper
def _log1p32(x):
    u = 1.0 + x
    y = _log32(u) * (x / (u - 1.0))
    y = x if u == 1.0 else y
    return y if x < _INF else x + x


@_inline
def log1p_f32(x):
    """log(1 + x) for a float32, computed in float64."""
    return np.float32(_log1p32(np.float64(x)))


# --- tanh, sigmoid, softplus --------------------------------------------------------------------

@_inline
def tanh_f64(x):
    """tanh of a float64: expm1(2|x|) / (expm1(2|x|) + 2) with the sign of x (<= 3 ulp)."""
    a = abs(x)
    em = _expm1_64(2.0 * (a if a < 20.0 else 20.0))   # tanh(20) is 1.0 in float64
    t = em / (em + 2.0)
    y = -t if x < 0.0 else t
    return y if a > 0.0 else x    # keeps -0.0 and NaN


@_helper
def _tanh_ratio(a):
    """tanh(a) for 0 <= a <= 9.1 as a P(a^2) / Q(a^2) (relative error 7.4e-9)."""
    p, q = _TANH_P, _TANH_Q
    y = a * a
    num = ((((p[5] * y + p[4]) * y + p[3]) * y + p[2]) * y + p[1]) * y + p[0]
    den = (((q[4] * y + q[3]) * y + q[2]) * y + q[1]) * y + q[0]
    return a * num / den


@_inline
def tanh_f32(x):
    """tanh of a float32: a rational function in float64, rounded once (no exp: one
    division and ten FMAs a lane, which is what makes a tanh-GELU kernel fast)."""
    xd = np.float64(x)
    a = abs(xd)
    t = _tanh_ratio(a) if a < _TANH_ONE else 1.0   # tanh(a) rounds to 1.0f beyond 9.1
    y = -t if xd < 0.0 else t
    return np.float32(y) if a > 0.0 else x    # keeps -0.0 and NaN


@_inline
def sigmoid_f64(x):
    """1 / (1 + exp(-x)) for a float64, without overflow (exp of -|x| only)."""
    e = _exp64(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@_inline
def sigmoid_f32(x):
    """1 / (1 + exp(-x)) for a float32, computed in float64."""
    xd = np.float64(x)
    e = _exp32(-abs(xd))
    return np.float32(1.0 / (1.0 + e) if xd >= 0.0 else e / (1.0 + e))


@_inline
def softplus_f64(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) for a float64 (``logaddexp(0, x)``)."""
    m = x if x > 0.0 else 0.0
    return m + _log1p64(_exp64(-abs(x)))


@_inline
def softplus_f32(x):
    """log(1 + exp(x)) for a float32, computed in float64."""
    xd = np.float64(x)
    m = xd if xd > 0.0 else 0.0
    return np.float32(m + _log1p32(_exp32(-abs(xd))))


# --- erf, erfc, ndtr ----------------------------------------------------------------------------

@_inline
def _erf_small(a):
    """erf(a) for 0 <= a <= 1."""
    c = _ERF_SMALL
    u = (a * a - 0.5) * 2.0
    p = c[8]
    p = p * u + c[7]
    p = p * u + c[6]
    p = p * u + c[5]
    p = p * u + c[4]
    p = p * u + c[3]
    p = p * u + c[2]
    p = p * u + c[1]
    p = p * u + c[0]
    return a * p


@_inline
def _erfc_tail(a):
    """erfc(a) for a >= 1 (0 beyond 27, where exp(-a^2) underflows)."""
    c = _ERFCX_TAIL
    v = (1.0 / (a if a < 10.5 else 10.5) - _TAIL_C) * (1.0 / _TAIL_H)
    q = c[14]
    q = q * v + c[13]
    q = q * v + c[12]
    q = q * v + c[11]
    q = q * v + c[10]
    q = q * v + c[9]
    q = q * v + c[8]
    q = q * v + c[7]
    q = q * v + c[6]
    q = q * v + c[5]
    q = q * v + c[4]
    q = q * v + c[3]
    q = q * v + c[2]
    q = q * v + c[1]
    q = q * v + c[0]
    return _exp64(-(a * a)) * q   # a * a is exact for a float32 a


@_inline
def _erfc32(x):
    """erfc in float64 to ~4e-10 relative, for float32 arguments (NaN for NaN)."""
    a = abs(x)
    tail = _erfc_tail(a if a > 1.0 else 1.0)
    pos = 1.0 - _erf_small(a if a < 1.0 else 1.0) if a < 1.0 else tail
    y = 2.0 - pos if x < 0.0 else pos
    return y if x == x else x


@_inline
def erf_f32(x):
    """The error function of a float32, computed in float64."""
    xd = np.float64(x)
    a = abs(xd)
    small = _erf_small(a if a < 1.0 else 1.0)
    big = 1.0 - _erfc_tail(a if a > 1.0 else 1.0)
    y = small if a < 1.0 else big
    y = -y if xd < 0.0 else y
    return np.float32(y) if a > 0.0 else x   # keeps -0.0 and NaN


@_inline
def erfc_f32(x):
    """The complementary error function 1 - erf(x) of a float32, relative-accurate in the
    tail (erfc(9) = 4.1e-37)."""
    return np.float32(_erfc32(np.float64(x)))


@_inline
def ndtr_f32(x):
    """The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2 of a float32 (GELU)."""
    return np.float32(0.5 * _erfc32(-np.float64(x) * _SQRT1_2))


@_inline
def erf_f64(x):
    """The error function of a float64 (libm)."""
    return math.erf(x)


@_inline
def erfc_f64(x):
    """The complementary error function of a float64 (libm)."""
    return math.erfc(x)


@_inline
def ndtr_f64(x):
    """The standard normal CDF of a float64 (libm erfc)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


# --- the exact (libm) versions of composite functions -------------------------------------------

@_inline
def sigmoid_f32_libm(x):
    """sigmoid with libm's expf, in float32: NumPy's formula of the reference."""
    e = np.exp(-abs(x))
    one = np.float32(1.0)
    return one / (one + e) if x >= 0 else e / (one + e)


@_inline
def sigmoid_f64_libm(x):
    """sigmoid with libm's exp."""
    e = np.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@_inline
def ndtr_f32_libm(x):
    """Phi(x) with libm's double erfc, rounded to float32."""
    return np.float32(0.5 * math.erfc(-np.float64(x) * _SQRT1_2))


@_inline
def ndtr_f64_libm(x):
    """Phi(x) with libm's erfc."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


@_inline
def softplus_f32_libm(x):
    """``np.logaddexp(0, x)`` in float32."""
    return np.logaddexp(np.float32(0.0), x)


@_inline
def softplus_f64_libm(x):
    """``np.logaddexp(0, x)`` in float64."""
    return np.logaddexp(0.0, x)


# --- arithmetic with NumPy's semantics ----------------------------------------------------------

def _make_divmod(ftype):
    """NumPy's float ``floor_divide`` and ``remainder`` for one float type (constants typed
    so that float32 stays float32)."""
    zero, one, half = ftype(0.0), ftype(1.0), ftype(0.5)

    @_inline
    def floor_divide(a, b):
        if b == zero:
            return a / b
        mod = np.fmod(a, b)
        div = (a - mod) / b
        if mod != zero:
            if (b < zero) != (mod < zero):
                div = div - one
        if div != zero:
            floordiv = np.floor(div)
            if div - floordiv > half:
                floordiv = floordiv + one
            return floordiv
        return np.copysign(zero, a / b)

    @_inline
    def remainder(a, b):
        mod = np.fmod(a, b)
        if b == zero:
            return mod
        if mod != zero:
            if (b < zero) != (mod < zero):
                mod = mod + b
            return mod
        return np.copysign(zero, b)

    floor_divide.__doc__ = (f"NumPy's {np.dtype(ftype).name} ``floor_divide``: fmod-based (so "
                            "1.0 // 0.1 == 9.0), a / b for b == 0.")
    remainder.__doc__ = (f"NumPy's {np.dtype(ftype).name} ``remainder``: Python's modulus (the "
                         "sign of b), fmod(a, b) for b == 0.")
    return floor_divide, remainder


floor_divide_f32, remainder_f32 = _make_divmod(np.float32)
floor_divide_f64, remainder_f64 = _make_divmod(np.float64)


@_inline
def ipow(a, b):
    """Integer power as PyTorch computes it, as an int64 the caller wraps to its type:
    ``a ** b`` by squaring, wrapping like NumPy's (in uint64, whose overflow Numba does not
    treat as undefined), and for b < 0 the truncated 1 / a**|b| (1 for a == 1, +-1 for
    a == -1, else 0)."""
    e = np.int64(b)
    if e < 0:
        if a == 1:
            return np.int64(1)
        if a == -1:
            return np.int64(-1) if e % 2 != 0 else np.int64(1)
        return np.int64(0)
    base = np.uint64(np.int64(a))
    result = np.uint64(1)
    while e > 0:
        if e & 1:
            result = result * base
        base = base * base
        e >>= 1
    return np.int64(result)


# --- sums ---------------------------------------------------------------------------------------

@njit(error_model="numpy", fastmath={"reassoc"})
def chunk_sum(buf, m):
    """The float64 sum of ``buf[:m]`` (a kernel's chunk of summed values, float32 or
    float64). 'reassoc' lets LLVM keep several vector partial sums (a strict left-to-right
    float sum is one add per element, bound by the add's latency); the error stays that
    of a float64 sum of m terms, far below float32's resolution."""
    total = 0.0
    for j in range(m):
        total += np.float64(buf[j])
    return total


# --- what the kernel generator calls ------------------------------------------------------------

FUNCTIONS = ("exp", "log", "expm1", "log1p", "tanh", "sigmoid", "erf", "erfc", "ndtr",
             "softplus")

# the exact versions: libm through math/np, or the composite written with libm calls
_EXACT = {
    "exp": "np.exp({})", "log": "np.log({})", "expm1": "np.expm1({})", "log1p": "np.log1p({})",
    "tanh": "np.tanh({})", "erf": "math.erf({})", "erfc": "math.erfc({})",
    "sigmoid": "_mf.sigmoid_{s}_libm({})", "ndtr": "_mf.ndtr_{s}_libm({})",
    "softplus": "_mf.softplus_{s}_libm({})",
}
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

# how generated source names this module (kernel sources import it under this name)
MODULE_ALIAS = "_mf"


def call(name: str, dtype, arg: str, *, exact: bool = False) -> str:
    """Source text calling function ``name`` (one of FUNCTIONS) on the float32 or float64
    expression ``arg``: ``_mf.exp_f32(x)``, or the libm version (``np.exp(x)``) when
    ``exact``. The result has the argument's dtype. Generated modules import ``math``,
    ``numpy as np`` and this module as ``_mf``."""
    if name not in FUNCTIONS:
        raise ValueError(f"no inline function {name!r} (have {', '.join(FUNCTIONS)})")
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise TypeError(f"inline math is for float32 and float64, not {np.dtype(dtype)}")
    if exact:
        return _EXACT[name].format(arg, s=suffix)
    return f"{MODULE_ALIAS}.{name}_{suffix}({arg})"
