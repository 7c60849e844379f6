"""The ``np`` of generated CUDA kernels: NumPy's names that scalar expressions use, each
with a CUDA form.

:func:`codegen.scalar.scalar_expr` writes NumPy calls (``np.sqrt(x)``,
``np.floor(x)``, ``np.isinf(x)``, ``np.float32(x)``). Numba-CUDA types some
of them itself (the scalar types, ``np.maximum``/``np.minimum``/``np.fmax``,
the trigonometric and hyperbolic ufuncs, ``np.log``/``np.log2``/``np.log10``,
``np.tanh``): those are NumPy's own objects here. The others have no CUDA
typing in Numba (``np.sqrt`` fails to compile in a kernel), so this module
defines a function of the same name for each: a plain Python function with
NumPy's behaviour (what the CUDA simulator runs, thread by thread) plus an
``@overload`` for the ``cuda`` target that maps it to ``math``/libdevice
(what a GPU runs). A CUDA kernel module imports this module as ``np``, so the
expression text of the CPU kernels serves both.

The CUDA forms agree with NumPy on special values: ``fmod(x, 0)`` and
``sqrt(-1)`` are NaN, ``rint`` rounds half to even, ``floor``/``ceil``/
``trunc`` keep infinities, NaN and the sign of zero (libdevice's float
results, not Python's ints).
"""

from __future__ import annotations

import math

import numpy as _numpy
from numba.core import types
from numba.extending import overload
from numpy import (  # noqa: F401 - re-exported: Numba-CUDA types these itself
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    bool_,
    cos,
    cosh,
    float32,
    float64,
    fmax,
    fmin,
    hypot,
    inf,
    int8,
    int16,
    int32,
    int64,
    log,
    log2,
    log10,
    maximum,
    minimum,
    nan,
    sin,
    sinh,
    tan,
    tanh,
    uint8,
    uint64,
)

__all__ = ["SHIMMED"]


# --- the functions (NumPy's behaviour, for the simulator) ---------------------------------

def exp(x):
    return _numpy.exp(x)


def expm1(x):
    return _numpy.expm1(x)


def log1p(x):
    return _numpy.log1p(x)


def exp2(x):
    return _numpy.exp2(x)


def sqrt(x):
    return _numpy.sqrt(x)


def floor(x):
    return _numpy.floor(x)


def ceil(x):
    return _numpy.ceil(x)


def trunc(x):
    return _numpy.trunc(x)


def rint(x):
    return _numpy.rint(x)


def fmod(a, b):
    return _numpy.fmod(a, b)


def copysign(a, b):
    return _numpy.copysign(a, b)


def isinf(x):
    return _numpy.isinf(x)


def isfinite(x):
    return _numpy.isfinite(x)


def signbit(x):
    return _numpy.signbit(x)


# --- their CUDA forms ----------------------------------------------------------------------------

def _is_float(*args) -> bool:
    return all(isinstance(a, types.Float) for a in args)


def _unary_math(fn):
    """A CUDA overload mapping a float function to ``fn`` (a ``math`` function, which
    Numba-CUDA lowers to libdevice in the argument's precision)."""

    def typer(x):
        if _is_float(x):
            return lambda x: fn(x)
        return None

    return typer


def _binary_math(fn):
    def typer(a, b):
        if _is_float(a, b) and a == b:
            return lambda a, b: fn(a, b)
        return None

    return typer


def _rint(x):
    from numba.cuda import libdevice
    if x == types.float32:
        return lambda x: libdevice.rintf(x)
    if x == types.float64:
        return lambda x: libdevice.rint(x)
    return None


def _exp2(x):
    from numba.cuda import libdevice
    if x == types.float32:
        return lambda x: libdevice.exp2f(x)
    if x == types.float64:
        return lambda x: libdevice.exp2(x)
    return None


def _signbit(x):
    from numba.cuda import libdevice
    if x == types.float32:
        return lambda x: libdevice.signbitf(x) != 0
    if x == types.float64:
        return lambda x: libdevice.signbitd(x) != 0
    return None


_CUDA_FORMS = {
    exp: _unary_math(math.exp), expm1: _unary_math(math.expm1),
    log1p: _unary_math(math.log1p), sqrt: _unary_math(math.sqrt),
    floor: _unary_math(math.floor), ceil: _unary_math(math.ceil),
    trunc: _unary_math(math.trunc), isinf: _unary_math(math.isinf),
    isfinite: _unary_math(math.isfinite), fmod: _binary_math(math.fmod),
    copysign: _binary_math(math.copysign), rint: _rint, exp2: _exp2, signbit: _signbit,
}
for _fn, _typer in _CUDA_FORMS.items():
    overload(_fn, target="cuda")(_typer)

# the names defined here (not NumPy's own objects)
SHIMMED = frozenset(fn.__name__ for fn in _CUDA_FORMS)
