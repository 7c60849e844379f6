"""The single entry point through which every op runs, and the interpreter stack.

``apply(op, *args, **attrs)`` hands the op to the innermost active
interpreter (a context variable, so it is per thread and per task). The
reference interpreter here runs ops on NumPy arrays; compgrad installs its
eager interpreter (tensors, autograd tape) as the base, and the tracer pushes
one that records graph nodes.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

from ir.dtypes import from_numpy_dtype
from ir.fperr import quiet_call
from ir.opdef import OpDef, infer_type
from ir.types import CPU, TensorType, scalar_type

__all__ = ["Interpreter", "ReferenceInterpreter", "apply", "conform", "type_of",
           "current_interpreter", "interpreter", "set_base_interpreter", "is_scalar",
           "SCALAR_TYPES", "PY_NUMBERS", "is_array"]

SCALAR_TYPES = (bool, int, float, np.bool_, np.integer, np.floating)
# Python's own numbers (a NumPy scalar is not one: NEP 50 treats only these as weak)
PY_NUMBERS = (bool, int, float)


def is_array(x) -> bool:
    """Whether ``x`` is an array a reference implementation computes on: a NumPy array
    or a device array (anything exposing ``__cuda_array_interface__``, such as CuPy's;
    ir never imports CuPy).

    The exact NumPy type is tested first: this runs on eager's hottest path, and the
    duck-typed test is only reached for device arrays and scalars."""
    return type(x) is np.ndarray or isinstance(x, np.ndarray) or hasattr(
        type(x), "__cuda_array_interface__")


def is_scalar(x) -> bool:
    """True for Python and NumPy scalars, which take part in ops as weak operands."""
    return isinstance(x, SCALAR_TYPES)


class Interpreter:
    """Decides what applying an op means: compute it, record it, or both."""

    def type_of(self, value) -> TensorType:
        raise NotImplementedError

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        raise NotImplementedError


def _unwrap_scalar(x):
    # NumPy scalars behave as the Python scalars they hold (weak in promotion).
    if isinstance(x, np.generic):
        return x.item()
    return x


def array_type(a: np.ndarray) -> TensorType:
    return TensorType(a.shape, from_numpy_dtype(a.dtype), CPU)


class ReferenceInterpreter(Interpreter):
    """Runs ops on NumPy arrays with the reference implementations.

    Values are ``np.ndarray`` (tensors) and Python scalars. It checks each
    result against the type rule, which makes it the oracle for tests.
    """

    def type_of(self, value) -> TensorType:
        if isinstance(value, np.ndarray):
            return array_type(value)
        if is_scalar(value):
            return scalar_type(value)
        raise TypeError(f"expected a NumPy array or a scalar, got {type(value).__name__}")

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        args = tuple(_unwrap_scalar(a) for a in args)
        out_type = infer_type(op, tuple(self.type_of(a) for a in args), attrs)
        result = quiet_call(op.impl, *args, **attrs)
        if isinstance(out_type, tuple):
            return tuple(conform(r, t) for r, t in zip(result, out_type))
        return conform(result, out_type)


def conform(result, t: TensorType) -> np.ndarray:
    """A reference implementation's ``result`` as an array of type ``t``'s dtype,
    checked against its shape (every interpreter and the runtime's node loops use it).
    A device array stays on its device."""
    arr = result if is_array(result) else np.asarray(result)
    if arr.dtype != t.dtype.np_dtype:
        arr = arr.astype(t.dtype.np_dtype)
    if arr.shape != t.shape:
        raise AssertionError(f"reference produced shape {arr.shape}, type rule says {t.shape}")
    return arr


_REFERENCE = ReferenceInterpreter()
_BASE: list[Interpreter] = [_REFERENCE]
_STACK: contextvars.ContextVar[tuple[Interpreter, ...]] = contextvars.ContextVar(
    "compgrad_interpreters", default=())


def set_base_interpreter(interp: Interpreter) -> None:
    """Install the interpreter used when none is pushed (compgrad's eager one)."""
    _BASE[0] = interp


def current_interpreter() -> Interpreter:
    stack = _STACK.get()
    return stack[-1] if stack else _BASE[0]


@contextlib.contextmanager
def interpreter(interp: Interpreter) -> Iterator[Interpreter]:
    """Make ``interp`` the active interpreter inside the ``with`` block."""
    token = _STACK.set(_STACK.get() + (interp,))
    try:
        yield interp
    finally:
        _STACK.reset(token)


def apply(op: OpDef, *args, **attrs):
    """Apply ``op`` to ``args`` with attributes ``attrs`` under the active interpreter."""
    stack = _STACK.get()
    interp = stack[-1] if stack else _BASE[0]
    return interp.apply(op, args, attrs)


def type_of(value) -> TensorType:
    """The type of a value under the active interpreter (tensors, IR values, scalars)."""
    stack = _STACK.get()
    interp = stack[-1] if stack else _BASE[0]
    return interp.type_of(value)
