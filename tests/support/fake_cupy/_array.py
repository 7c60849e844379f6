"""The device array (``cp.ndarray``; each machine subclasses :class:`_FakeNdarray`): its
attributes, host copies, conversions, views, CuPy's method signatures, indexing entry points,
Python protocols and operators. The work itself is the machine's (``self._cp``)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from ._cuda import _Runtime
from ._memory import MemoryPointer, _Allocation
from ._rules import _IMPLICIT_CONVERSION, _SCALAR_TYPES, _check_dtype
from ._transfers import D2H, H2D

if TYPE_CHECKING:
    from ._machine import FakeCupy


class _Flags:
    """CuPy's ``ndarray.flags``: c_contiguous, f_contiguous, owndata (nothing else)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, c: bool, f: bool, own: bool):
        self.c_contiguous, self.f_contiguous, self.owndata = c, f, own

    def __getitem__(self, name: str) -> bool:
        keys = {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}
        if name not in keys:
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags")
        return keys[name]

    def __repr__(self) -> str:
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}"
                f"\n  OWNDATA : {self.owndata}")


def _should_use_rop(x, y) -> bool:
    """CuPy's rule for deferring a binary operator to ``y`` (NEP 13 plus priorities)."""
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _is_device_array(x) -> bool:
    return isinstance(x, _FakeNdarray)

class _FakeNdarray:
    """The array class; each :class:`FakeCupy` has its own subclass (``cp.ndarray``)."""

    __slots__ = ("_data", "_alloc", "_base", "__weakref__")
    __array_priority__ = 100
    _cp: FakeCupy

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("FakeCupy: ndarray(memptr=, strides=) is not emulated")
        if order not in ("C", "F", None):
            raise ValueError(f"order not understood. order={order}")
        data = np.empty(shape, _check_dtype(dtype), order=order or "C")
        _fill_garbage(data)
        self._data, self._alloc, self._base = data, self._cp._allocate(data), None

    @classmethod
    def _make(cls, data: np.ndarray, alloc: _Allocation, base):
        arr = object.__new__(cls)
        arr._data, arr._alloc, arr._base = data, alloc, base
        return arr

    # --- attributes ---

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @shape.setter
    def shape(self, newshape) -> None:
        view = self._data.view()
        view.shape = newshape   # AttributeError where a copy would be needed, as in CuPy
        self._data = view

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def strides(self) -> tuple[int, ...]:
        return self._data.strides

    @property
    def flags(self) -> _Flags:
        f = self._data.flags
        return _Flags(f.c_contiguous, f.f_contiguous, self._base is None)

    @property
    def base(self):
        return self._base

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return self if self.ndim < 2 else self.transpose()

    @property
    def mT(self):  # noqa: N802 - NumPy's name
        if self.ndim < 2:
            raise ValueError("matrix transpose with ndim < 2 is undefined")
        return self.swapaxes(-1, -2)

    @property
    def device(self):
        return self._cp.cuda.Device(self._alloc.device)

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._cp, self._alloc, self._offset())

    def _offset(self) -> int:
        if self.size == 0:
            return 0
        return (self._data.__array_interface__["data"][0]
                - self._alloc.buffer.__array_interface__["data"][0])

    @property
    def __cuda_array_interface__(self) -> dict:
        stream = self._cp.cuda.get_current_stream().ptr or _Runtime.streamLegacy
        return {"shape": self.shape, "typestr": self.dtype.str, "descr": self.dtype.descr,
                "stream": stream, "version": 3,
                "strides": None if self._data.flags.c_contiguous else self.strides,
                "data": (self.data.ptr if self.size else 0, False)}

    @property
    def real(self):
        if self.dtype.kind == "c":
            return self._cp._view_of(self._data.real, self)
        return self

    @property
    def imag(self):
        if self.dtype.kind == "c":
            return self._cp._view_of(self._data.imag, self)
        return self._cp.zeros_like(self)

    # --- NumPy's protocols ---

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return self._cp._array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return self._cp._array_function(func, types, args, kwargs)

    # --- host copies ---

    def get(self, stream=None, order="C", out=None, blocking=True) -> np.ndarray:
        """A NumPy copy of the array (a device-to-host transfer)."""
        cp = self._cp
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained fromcupy.ndarray")
            if self.dtype != out.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if self.shape != out.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, "
                                 f"actual shape: {out.shape}")
            if not (out.flags.c_contiguous or out.flags.f_contiguous):
                raise RuntimeError("`out` cannot be specified when copying to non-contiguous "
                                   "ndarray")
            cp.transfer_log.record(D2H, self.nbytes, "ndarray.get")
            np.copyto(out, self._data)
            return out
        if self.size == 0:
            return np.ndarray(self.shape, dtype=self.dtype)
        order = order.upper()
        if order == "A":
            order = "F" if self._data.flags.f_contiguous else "C"
        if order not in ("C", "F"):
            raise ValueError(f"unsupported order: {order}")
        cp.transfer_log.record(D2H, self.nbytes, "ndarray.get")
        return np.array(self._data, order=order, copy=True)

    def set(self, arr, stream=None) -> None:
        """Copy the NumPy array ``arr`` into this array (a host-to-device transfer)."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if not (self._data.flags.c_contiguous or self._data.flags.f_contiguous):
            raise RuntimeError("Cannot set to non-contiguous array")
        self._cp.transfer_log.record(H2D, arr.nbytes, "ndarray.set")
        np.copyto(self._data, arr)

    def item(self):
        """The one element as a Python scalar (a device-to-host transfer)."""
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item()

    def tolist(self):
        """The array as nested Python lists (a device-to-host transfer)."""
        return self.get().tolist()

    def tobytes(self, order="C") -> bytes:
        """The array's bytes (a device-to-host transfer)."""
        return self.get().tobytes(order)

    # --- conversions and copies ---

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        """A copy cast to ``dtype``; ``self`` when ``copy=False`` and nothing changes."""
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        dt = _check_dtype(dtype)
        order = (order or "K").upper()
        flags = self._data.flags
        if dt == self.dtype and not copy and (
                order == "K" or order == "A" and (flags.c_contiguous or flags.f_contiguous)
                or order == "C" and flags.c_contiguous or order == "F" and flags.f_contiguous):
            return self
        self._cp._check_device(self)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            data = self._data.astype(dt, order=order)
        return self._cp._new(data, keep_layout=True)

    def copy(self, order="C"):
        """A copy on the current device (from any device, as CuPy allows)."""
        if self._alloc.device != self._cp._current and self.size and not (
                self._data.flags.c_contiguous or self._data.flags.f_contiguous):
            raise NotImplementedError("CuPy cannot copy non-contiguous array between devices.")
        return self._cp._new(np.array(self._data, order=order, copy=True), keep_layout=True)

    def view(self, dtype=None, type=None):  # noqa: A002 - NumPy's name
        """A view, reinterpreted as ``dtype`` when given."""
        if type is not None:
            raise NotImplementedError("FakeCupy: ndarray.view(type=) is not emulated")
        data = self._data.view() if dtype is None else self._data.view(_check_dtype(dtype))
        return self._cp._view_of(data, self)

    def fill(self, value) -> None:
        """Set every element to the scalar ``value``."""
        cp = self._cp
        if _is_device_array(value):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            cp._check_device(cp._own(value))
            value = value._data
        elif isinstance(value, np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.astype(self.dtype).item()
        elif type(value) not in _SCALAR_TYPES:
            raise TypeError(f"Unsupported type {type(value)}")
        cp._check_device(self)
        with np.errstate(all="ignore"):
            self._data[...] = value

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        with self._cp.cuda.Device(self._alloc.device):
            return self.copy()

    def __reduce__(self):
        raise TypeError("FakeCupy arrays cannot be pickled (not emulated); use .get()")

    # --- shape ---

    def reshape(self, *shape, order="C"):
        """The array with a new shape: a view where possible, else a copy."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._cp._wrap(self._data.reshape(shape, order=order), [self])

    def transpose(self, *axes):
        """A view with the axes permuted (reversed by default)."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return self._cp._view_of(self._data.transpose(axes or None), self)

    def swapaxes(self, axis1: int, axis2: int):
        """A view with two axes swapped."""
        return self._cp._view_of(self._data.swapaxes(axis1, axis2), self)

    def ravel(self, order="C"):
        """A flat (contiguous) view where possible, else a copy."""
        return self._cp._wrap(self._data.ravel(order), [self])

    def flatten(self, order="C"):
        """A flat copy."""
        self._cp._check_device(self)
        return self._cp._new(self._data.flatten(order))

    def squeeze(self, axis=None):
        """A view without the size-1 axes (or ``axis``)."""
        return self._cp._view_of(self._data.squeeze(axis), self)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        """A (writeable) view of the diagonal."""
        return self._cp._view_of(self._data.diagonal(offset, axis1, axis2), self)

    # --- calculation (CuPy's signatures) ---

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.sum, out, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.mean, out, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=None):
        return self._cp._reduce(self, np.prod, out, axis=axis, dtype=dtype,
                                keepdims=bool(keepdims))

    def max(self, axis=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.max, out, axis=axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.min, out, axis=axis, keepdims=keepdims)

    def ptp(self, axis=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.ptp, out, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        return self._cp._arg_reduce(self, np.argmax, axis, out, dtype, keepdims)

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        return self._cp._arg_reduce(self, np.argmin, axis, out, dtype, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.all, out, axis=axis, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return self._cp._reduce(self, np.any, out, axis=axis, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._cp._reduce(self, np.std, out, axis=axis, dtype=dtype, ddof=ddof,
                                keepdims=keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._cp._reduce(self, np.var, out, axis=axis, dtype=dtype, ddof=ddof,
                                keepdims=keepdims)

    def cumsum(self, axis=None, dtype=None, out=None):
        return self._cp._reduce(self, np.cumsum, out, axis=axis, dtype=dtype)

    def cumprod(self, axis=None, dtype=None, out=None):
        return self._cp._reduce(self, np.cumprod, out, axis=axis, dtype=dtype)

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=None):
        return self._cp._reduce(self, np.trace, out, offset=offset, axis1=axis1, axis2=axis2,
                                dtype=dtype)

    def clip(self, min=None, max=None, out=None):  # noqa: A002 - CuPy's names
        cp = self._cp
        bounds = [None if b is None else cp._kernel_arg(b) for b in (min, max)]
        return cp._reduce(self, np.clip, out, a_min=bounds[0], a_max=bounds[1])

    def round(self, decimals=0, out=None):
        return self._cp._reduce(self, np.round, out, decimals=decimals)

    def conj(self):
        return self._cp._ufunc_call(np.conjugate, (self,), {})

    conjugate = conj

    def dot(self, b, out=None):
        return self._cp.dot(self, b, out)

    def take(self, indices, axis=None, out=None):
        """Elements at ``indices`` (which wrap around, as CuPy's kernel does)."""
        return self._cp.take(self, indices, axis, out)

    def repeat(self, repeats, axis=None):
        return self._cp._call_function(np.repeat, (self, repeats, axis), {})

    def searchsorted(self, v, side="left", sorter=None):
        return self._cp._call_function(np.searchsorted, (self, v, side, sorter), {})

    def sort(self, axis=-1, kind=None) -> None:
        """Sort in place (stable)."""
        _check_kind(kind)
        self._cp._check_device(self)
        self._data.sort(axis, kind="stable")

    def argsort(self, axis=-1, kind=None):
        _check_kind(kind)
        return self._cp._reduce(self, np.argsort, None, axis=axis, kind="stable")

    def nonzero(self) -> tuple:
        return self._cp._call_function(np.nonzero, (self,), {})

    def put(self, indices, values, mode="wrap") -> None:
        if mode not in ("raise", "wrap", "clip"):
            raise ValueError("clipmode not understood")
        cp = self._cp
        cp._check_device(self)
        idx = indices._data if _is_device_array(indices) else \
            cp._from_host(indices, None, None, "put indices")._data
        vals = values._data if _is_device_array(values) else \
            cp._from_host(values, self.dtype, None, "put values")._data
        np.put(self._data, idx, vals, mode=mode)

    # --- indexing ---

    def __getitem__(self, slices):
        cp = self._cp
        index, advanced, mask = cp._index(self, slices)
        data = self._data[index]
        if not advanced:
            return cp._view_of(data, self)
        if mask:
            cp.transfer_log.record(D2H, 4, "boolean mask count (synchronises)")
        return cp._new(np.array(data, copy=True))

    def __setitem__(self, slices, value) -> None:
        self._cp._scatter(self, slices, value, "update")

    def _scatter_op(self, slices, value, op: str) -> None:
        self._cp._scatter(self, slices, value, op)

    # --- Python protocols ---

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, "
                          "but in future this will result in an error. Use `array.size > 0` "
                          "to check that an array is not empty.", DeprecationWarning,
                          stacklevel=2)
            return False
        if self.size == 1:
            return bool(self.get())
        raise ValueError("The truth value of an array with more than one element is "
                         "ambiguous. Use a.any() or a.all()")

    def __int__(self) -> int:
        return int(self.get())

    def __float__(self) -> float:
        return float(self.get())

    def __complex__(self) -> complex:
        return complex(self.get())

    def __repr__(self) -> str:
        return repr(self.get())

    def __str__(self) -> str:
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get(), spec)

    # --- unary operators ---

    def __pow__(self, other, modulo=None):   # the modulo is ignored, as NumPy and CuPy do
        return _POWER(self, other)

    def __neg__(self):
        return self._cp._ufunc_call(np.negative, (self,), {})

    def __pos__(self):
        if self.dtype == np.bool_:
            warnings.warn("Applying '+' to a non-numerical array is ill-defined. Returning a "
                          "copy, but in the future this will error.", DeprecationWarning,
                          stacklevel=2)
            return self.copy()
        return self._cp._ufunc_call(np.positive, (self,), {})

    def __abs__(self):
        return self._cp._ufunc_call(np.absolute, (self,), {})

    def __invert__(self):
        return self._cp._ufunc_call(np.invert, (self,), {})

    __hash__ = None


def _check_kind(kind) -> None:
    if kind is not None and kind != "stable":
        raise ValueError("kind can only be None or 'stable'")


def _fill_garbage(data: np.ndarray) -> None:
    """Fill an uninitialised array as reused GPU memory might be: NaN, -1 or True."""
    if data.size == 0:
        return
    kind = data.dtype.kind
    if kind in "fc":
        data.fill(np.nan)
    elif kind == "b":
        data.fill(True)
    else:
        data.view(np.uint8).fill(0xFF)


# Binary operators: CuPy runs its kernel when the other operand is a CuPy array, defers
# (NotImplemented) where NEP 13 says so, and otherwise calls the NumPy ufunc, which
# dispatches back to __array_ufunc__ (where NumPy arrays and lists are refused).

def _binary_operator(ufunc: np.ufunc):
    def operator(self, other):
        if _is_device_array(other):
            return self._cp._ufunc_call(ufunc, (self, other), {})
        if _should_use_rop(self, other):
            return NotImplemented
        return ufunc(self, other)
    operator.__name__ = f"__{ufunc.__name__}__"
    return operator


def _reflected_operator(ufunc: np.ufunc):
    def operator(self, other):
        return self._cp._ufunc_call(ufunc, (other, self), {})
    operator.__name__ = f"__r{ufunc.__name__}__"
    return operator


def _inplace_operator(ufunc: np.ufunc):
    def operator(self, other):
        return self._cp._ufunc_call(ufunc, (self, other), {"out": self})
    operator.__name__ = f"__i{ufunc.__name__}__"
    return operator


def _comparison(ufunc: np.ufunc, when_unrelated: bool | None):
    """``==``-style operator; ``when_unrelated`` is the answer for an object that is no
    scalar or array (None, ``object()``): all False for ==, all True for !=."""
    def operator(self, other):
        cp = self._cp
        if _is_device_array(other):
            return cp._ufunc_call(ufunc, (self, other), {})
        if _should_use_rop(self, other):
            return NotImplemented
        if isinstance(other, np.ndarray) and other.ndim == 0:
            other = other.item()
        if when_unrelated is not None and (other is None or (
                type(other).__eq__ is object.__eq__ and type(other).__ne__ is object.__ne__)):
            filler = cp.ones if when_unrelated else cp.zeros
            return filler(self.shape, dtype=np.bool_)
        return ufunc(self, other)
    operator.__name__ = f"__{ufunc.__name__}__"
    return operator


_OPERATORS = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
              "matmul": np.matmul, "truediv": np.true_divide, "floordiv": np.floor_divide,
              "mod": np.remainder, "pow": np.power, "lshift": np.left_shift,
              "rshift": np.right_shift, "and": np.bitwise_and, "or": np.bitwise_or,
              "xor": np.bitwise_xor}
_NO_INPLACE = {"matmul"}   # CuPy defines no __imatmul__: ``a @= b`` rebinds
for _name, _ufunc in _OPERATORS.items():
    if _name != "pow":   # __pow__ takes a modulo, defined in the class
        setattr(_FakeNdarray, f"__{_name}__", _binary_operator(_ufunc))
    setattr(_FakeNdarray, f"__r{_name}__", _reflected_operator(_ufunc))
    if _name not in _NO_INPLACE:
        setattr(_FakeNdarray, f"__i{_name}__", _inplace_operator(_ufunc))
for _name, _ufunc, _unrelated in (("eq", np.equal, False), ("ne", np.not_equal, True),
                                  ("lt", np.less, None), ("le", np.less_equal, None),
                                  ("gt", np.greater, None), ("ge", np.greater_equal, None)):
    setattr(_FakeNdarray, f"__{_name}__", _comparison(_ufunc, _unrelated))
_POWER = _binary_operator(np.power)
_FakeNdarray.__divmod__ = _binary_operator(np.divmod)
_FakeNdarray.__rdivmod__ = _reflected_operator(np.divmod)
