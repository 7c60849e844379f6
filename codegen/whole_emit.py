"""The pieces a whole-program function is written with: symbols for IR values and an
emitter collecting the function's lines, the kernels it calls and its constants.

:mod:`codegen.whole_lower` walks a :class:`~codegen.runtime.CompiledProgram`'s steps
and :mod:`codegen.whole_ops` writes each node; both speak in :class:`Sym` (what a
value is inside the generated function) and :class:`Emitter` (where the source goes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from codegen.scalar import NJIT_OPTIONS
from codegen.source import SourceBuilder

__all__ = ["Sym", "Emitter", "NotLowerable", "FRESH", "INPUT", "CONST", "INNER_DECORATOR",
           "index", "dtype_name", "shape_arg"]

# where an array's memory comes from: allocated by the function each call, a program
# input's (the caller's), or a constant's (the same array every call)
FRESH, INPUT, CONST = "fresh", "input", "const"

# the helpers defined in the function's module: compiled into it (Numba caches the caller
# with its callees), so they carry no cache of their own
INNER_DECORATOR = "@numba.njit(" + ", ".join(f"{k}={v!r}" for k, v in NJIT_OPTIONS.items()) + ")"


class NotLowerable(Exception):
    """A program (or one of its nodes) that the whole-program function cannot run
    exactly; the message says why."""


@dataclass(frozen=True)
class Sym:
    """An IR value inside the generated function.

    ``expr`` is its source text (a variable, or a literal for a Python scalar);
    ``shape`` is None for a scalar (a weak input or a literal), else the array's
    shape; ``layout`` is the array's Numba layout (``C``, ``F`` or ``A``: what Numba
    knows of its strides); ``origin`` says whose memory it is (:data:`FRESH`,
    :data:`INPUT`, :data:`CONST`), followed through views."""

    expr: str
    shape: tuple | None
    dtype: np.dtype
    layout: str = "C"
    origin: str = FRESH

    @property
    def is_array(self) -> bool:
        return self.shape is not None

    def scalar(self) -> str:
        """The value as a Numba scalar (a 0-d array's element)."""
        if not self.is_array:
            return self.expr
        if self.shape != ():
            raise NotLowerable(f"{self.expr} of shape {self.shape} used as a scalar")
        return f"{self.expr}[()]"

    def contiguous(self) -> str:
        """Source text of the array as a C-contiguous one (a copy unless Numba knows it is
        one already)."""
        return self.expr if self.layout == "C" else f"np.ascontiguousarray({self.expr})"

    def view(self, expr: str, shape: tuple, layout: str) -> Sym:
        """A view of this array: same dtype and origin."""
        return Sym(expr, tuple(shape), self.dtype, layout, self.origin)


def index(names: Sequence[str]) -> str:
    """An index expression of per-axis names (``()`` for a 0-d array)."""
    return ", ".join(names) if names else "()"


def shape_arg(shape: Sequence[int]) -> str:
    """A shape as a tuple of int64 values, not literals: Numba types a literal tuple
    ``(8, 4)`` by its values, so each shape would compile ``np.empty`` (and each kernel
    taking it) anew; ``(np.int64(8), np.int64(4))`` is the ``UniTuple(int64, 2)`` the
    step runner's calls have, whose compiled kernels are then reused."""
    items = [f"np.int64({n})" for n in shape]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def dtype_name(dtype: np.dtype) -> str:
    """The NumPy scalar type's name in generated source: ``np.float32``."""
    return f"np.{np.dtype(dtype).type.__name__}"


class Emitter:
    """The generated function under construction: its body lines, the kernels and helpers
    it calls (whole definitions, by name), and its constants (extra parameters)."""

    def __init__(self, load: Callable) -> None:
        self.code = SourceBuilder()
        self.load = load
        self.imports: dict[str, str] = {}
        self.functions: dict[str, str] = {}
        self.constants: list[np.ndarray] = []
        self._counts: dict[str, int] = {}

    def name(self, prefix: str) -> str:
        """A fresh variable name starting with ``prefix``."""
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}{n}"

    def line(self, text: str) -> None:
        self.code.line(text)

    def block(self, header: str):
        """``header`` and an indented block (a ``with`` body)."""
        return self.code.block(header)

    @contextlib.contextmanager
    def loops(self, names: Sequence[str], sizes: Sequence[int]) -> Iterator[None]:
        """Nested ``for name in range(size)`` loops, the first outermost."""
        with contextlib.ExitStack() as stack:
            for name, size in zip(names, sizes):
                stack.enter_context(self.block(f"for {name} in range({size}):"))
            yield

    def function(self, name: str, text: str) -> str:
        """Define ``text`` (a complete function named ``name``) once in the module."""
        self.functions.setdefault(name, text.rstrip("\n") + "\n")
        return name

    def kernel(self, dispatcher) -> str:
        """Call an already generated kernel (a Numba dispatcher of a cached kernel module,
        which the step runner has loaded): imported by its module's name, so that its
        compiled code is reused rather than compiled again with the function."""
        name = dispatcher.py_func.__name__
        self.imports[name] = f"from {dispatcher.py_func.__module__} import {name}"
        return name

    def new_kernel(self, source: str, name: str) -> str:
        """Load the kernel ``name`` of module ``source`` through the kernel cache and call
        it (:meth:`kernel`)."""
        return self.kernel(self.load(source, name))

    def helpers(self) -> list[str]:
        """The module's text before the function: kernel imports, then helpers."""
        imports = "\n".join(sorted(self.imports.values()))
        return ([imports] if imports else []) + list(self.functions.values())

    def constant(self, array: np.ndarray, dtype: np.dtype) -> Sym:
        """A host array passed to every call as one more parameter."""
        name = f"k{len(self.constants)}"
        # a private C-contiguous copy (np.ascontiguousarray would make a 0-d array 1-d)
        self.constants.append(np.array(array, dtype=dtype, order="C", copy=True))
        return Sym(name, tuple(np.shape(array)), np.dtype(dtype), "C", CONST)

    def body(self) -> list[str]:
        """The function's body lines, indented one level."""
        return ["    " + line if line else line for line in self.code.text().splitlines()]
