"""CuPy's ufuncs: the ufunc objects of the namespace (``cp.add``: :class:`FakeUfunc`, with the
methods CuPy has for the ufuncs it has them for) and ``ndarray.__array_ufunc__``'s dispatch
to them, mixed into :class:`FakeCupy`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._array import _is_device_array
from ._rules import _COMPARISONS, _SCALAR_TYPES, _SCATTER_OPS, _UFUNC_METHODS, UFUNCS_CUPY_LACKS

if TYPE_CHECKING:
    from ._machine import FakeCupy


class FakeUfunc:
    """A CuPy ufunc (``cp.add``): ``__call__`` and the methods CuPy has, for the ufuncs
    CuPy has them for."""

    def __init__(self, cp: FakeCupy, np_ufunc: np.ufunc):
        self._cp, self._np = cp, np_ufunc
        self.name = self.__name__ = f"cupy_{np_ufunc.__name__}"
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self) -> str:
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, **kwargs):
        return self._cp._ufunc_call(self._np, args, kwargs)

    def outer(self, A, B, **kwargs):  # noqa: N803 - CuPy's names
        """The ufunc on every pair of elements (host operands are copied to the device)."""
        A, B = self._cp.array(A), self._cp.array(B)  # noqa: N806
        ndim_a = A.ndim
        A = A.reshape(A.shape + (1,) * B.ndim)  # noqa: N806
        B = B.reshape((1,) * ndim_a + B.shape)  # noqa: N806
        return self(A, B, **kwargs)

    def at(self, a, indices, b=None) -> None:
        """Unbuffered in-place operation at ``indices`` (CuPy's scatter kernels)."""
        op = _SCATTER_OPS.get(self._np.__name__)
        if op is None:
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        if not _is_device_array(a):
            raise AttributeError(f"'{type(a).__name__}' object has no attribute '_scatter_op'")
        a._scatter_op(indices, b, op)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        """``sum`` for add, ``prod`` for multiply (the only reductions CuPy has)."""
        if self._np is np.add:
            return array.sum(axis, dtype, out, keepdims)
        if self._np is np.multiply:
            return array.prod(axis, dtype, out, keepdims)
        raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")

    def accumulate(self, array, axis=0, dtype=None, out=None):
        """``cumsum`` for add, ``cumprod`` for multiply."""
        if self._np is np.add:
            return array.cumsum(axis, dtype, out)
        if self._np is np.multiply:
            return array.cumprod(axis, dtype, out)
        raise NotImplementedError(f"`{self.name}.accumulate` is not supported yet")

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        """Sums over slices (add only)."""
        if self._np is not np.add:
            raise NotImplementedError(f"`{self.name}.reduceat` is not supported yet")
        cp = self._cp
        idx = indices._data if _is_device_array(indices) else \
            cp._from_host(indices, None, None, "reduceat indices")._data
        return cp._reduce(array, np.add.reduceat, out, indices=idx, axis=axis, dtype=dtype)


class _UfuncsMixin:
    """:class:`FakeCupy`'s ufunc dispatch: one :class:`FakeUfunc` per NumPy ufunc."""

    def _array_ufunc(self, ufunc, method: str, inputs: tuple, kwargs: dict):
        """CuPy's ``ndarray.__array_ufunc__``."""
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout = inout + out
            kwargs = {**kwargs, "out": out[0]}
        name = ufunc.__name__
        if method not in _UFUNC_METHODS or name in UFUNCS_CUPY_LACKS:
            return NotImplemented
        if method != "__call__" and name == "matmul":   # cupy.matmul has no ufunc methods
            return NotImplemented
        for x in inout:
            if not (_is_device_array(x) or type(x) in _SCALAR_TYPES
                    or isinstance(x, np.ndarray)):
                return NotImplemented
        if name in _COMPARISONS:   # CuPy's workaround for numpy/numpy#12142
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        fn = self._ufunc(ufunc)
        if method == "__call__":
            return fn(*inputs, **kwargs)
        return getattr(fn, method)(*inputs, **kwargs)

    def _ufunc(self, np_ufunc: np.ufunc) -> FakeUfunc:
        name = np_ufunc.__name__
        if name not in self._ufuncs:
            self._ufuncs[name] = FakeUfunc(self, np_ufunc)
        return self._ufuncs[name]
