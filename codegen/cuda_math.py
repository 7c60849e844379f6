"""The CUDA forms of the helpers that scalar expressions call (``_mf.exp_f32(x)``, ...).

:func:`codegen.scalar.scalar_expr` writes transcendentals as calls of
:mod:`codegen.mathfns` helpers under the alias ``_mf`` (``_mf.tanh_f32(x)``).
Those helpers are CPU code: float64 polynomials that LLVM vectorises. A CUDA
kernel module binds ``_mf`` to this module instead, so the same expression
text calls a ``@cuda.jit(device=True)`` function of the same name, written
with NumPy ufuncs and ``math`` functions, which Numba-CUDA lowers to
libdevice (``__nv_expf``, ``__nv_tanhf``, ``__nv_erff``, ...): the GPU's own
accurate math, at most a few ulp from the exact value. Nothing in
``codegen/scalar.py`` changes, and its CPU output stays byte-identical.

The helpers use NumPy ufuncs rather than ``math`` where both exist because
the CUDA simulator runs kernels as Python: ``math.log(0.0)`` raises there,
``np.log`` gives ``-inf`` as libdevice does. ``math.erf``/``math.erfc`` have
no ufunc and raise for no float. float32 helpers take and return float32
(on the simulator too: results are cast back, so expressions compose with
the types Numba gives them on the device).

Names: every helper that ``codegen.mathfns.call`` (``exact=False``) or a
rule of ``codegen.scalar`` may emit exists here with the same name and
meaning (``tests/codegen_cuda`` checks the set); an expression calling a helper
that has none (:func:`missing_helpers`) makes its group fall back rather than
fail to compile.
"""

from __future__ import annotations

import math
import re

from numba import cuda

from codegen import cuda_numpy as np
from codegen.mathfns import MODULE_ALIAS

__all__ = ["HELPERS", "MODULE_ALIAS", "missing_helpers"]

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_device = cuda.jit(device=True)


# --- exp / log family: one libdevice call each ----------------------------------------------

@_device
def exp_f32(x):
    return np.float32(np.exp(x))


@_device
def exp_f64(x):
    return np.exp(x)


@_device
def expm1_f32(x):
    return np.float32(np.expm1(x))


@_device
def expm1_f64(x):
    return np.expm1(x)


@_device
def log_f32(x):
    return np.float32(np.log(x))


@_device
def log_f64(x):
    return np.log(x)


@_device
def log1p_f32(x):
    return np.float32(np.log1p(x))


@_device
def log1p_f64(x):
    return np.log1p(x)


@_device
def tanh_f32(x):
    return np.float32(np.tanh(x))


@_device
def tanh_f64(x):
    return np.tanh(x)


# --- composites: the reference's formulas on libdevice calls ---------------------------------

@_device
def sigmoid_f32(x):
    # NumPy's formula of the reference: exp of a non-positive number never overflows
    e = np.float32(np.exp(-abs(x)))
    one = np.float32(1.0)
    return one / (one + e) if x >= np.float32(0.0) else e / (one + e)


@_device
def sigmoid_f64(x):
    e = np.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@_device
def softplus_f32(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), as np.logaddexp(0, x)
    return np.float32(np.maximum(x, np.float32(0.0))
                      + np.float32(np.log1p(np.float32(np.exp(-abs(x))))))


@_device
def softplus_f64(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-abs(x)))


@_device
def erf_f32(x):
    return np.float32(math.erf(x))


@_device
def erf_f64(x):
    return math.erf(x)


@_device
def erfc_f32(x):
    return np.float32(math.erfc(x))


@_device
def erfc_f64(x):
    return math.erfc(x)


@_device
def ndtr_f32(x):
    # in float64, rounded once (the CPU's libm form): far in the tail erfc's argument
    # error is magnified ~2x^2 times, which float32 arithmetic would show
    return np.float32(0.5 * math.erfc(-np.float64(x) * _SQRT1_2))


@_device
def ndtr_f64(x):
    return 0.5 * math.erfc(-x * _SQRT1_2)


# --- arithmetic with NumPy's semantics (the same algorithms as codegen.mathfns) ---------------

@_device
def floor_divide_f32(a, b):
    zero, one, half = np.float32(0.0), np.float32(1.0), np.float32(0.5)
    if b == zero:
        return np.float32(a / b)
    mod = np.fmod(a, b)
    div = np.float32((a - mod) / b)
    if mod != zero:
        if (b < zero) != (mod < zero):
            div = div - one
    if div != zero:
        floordiv = np.floor(div)
        if div - floordiv > half:
            floordiv = floordiv + one
        return floordiv
    return np.copysign(zero, np.float32(a / b))


@_device
def floor_divide_f64(a, b):
    if b == 0.0:
        return a / b
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != 0.0:
        if (b < 0.0) != (mod < 0.0):
            div = div - 1.0
    if div != 0.0:
        floordiv = np.floor(div)
        if div - floordiv > 0.5:
            floordiv = floordiv + 1.0
        return floordiv
    return np.copysign(0.0, a / b)


@_device
def remainder_f32(a, b):
    zero = np.float32(0.0)
    mod = np.fmod(a, b)
    if b == zero:
        return mod
    if mod != zero:
        if (b < zero) != (mod < zero):
            mod = mod + b
        return mod
    return np.copysign(zero, b)


@_device
def remainder_f64(a, b):
    mod = np.fmod(a, b)
    if b == 0.0:
        return mod
    if mod != 0.0:
        if (b < 0.0) != (mod < 0.0):
            mod = mod + b
        return mod
    return np.copysign(0.0, b)


@_device
def ipow(a, b):
    # integer power by squaring, wrapping in uint64 (see codegen.mathfns.ipow)
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


# the helpers a generated expression may call, by name
HELPERS = frozenset(name for name, value in list(globals().items())
                    if not name.startswith("_") and hasattr(value, "py_func"))

_CALL = re.compile(re.escape(MODULE_ALIAS) + r"\.(\w+)\(")


def missing_helpers(source: str) -> set[str]:
    """The ``_mf.<name>`` helpers that ``source`` calls and this module lacks."""
    return set(_CALL.findall(source)) - HELPERS
