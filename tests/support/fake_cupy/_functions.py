"""NumPy functions on device arrays: ``ndarray.__array_function__``'s dispatch, the wrapper
``cp.<name>`` gives for a NumPy function, the functions whose CuPy rules differ from NumPy's
(``dot``, ``copyto``, ``take``, ``shares_memory`` ...) and ``cp.lib.stride_tricks``. The
methods are mixed into :class:`FakeCupy`."""

from __future__ import annotations

import inspect
import itertools
from typing import TYPE_CHECKING

import numpy as np

from ._array import _FakeNdarray, _is_device_array
from ._indexing import _wrap_indices
from ._rules import (
    _CUPY_MODULES,
    _HOST_INDEX_ARGUMENTS,
    _HOST_PARAMETERS,
    _LINALG_CUPY_LACKS,
    _NO_KERNEL_FUNCTIONS,
    _REDUCTIONS,
    _SYNCING_FUNCTIONS,
    FUNCTIONS_CUPY_LACKS,
)
from ._transfers import D2H

if TYPE_CHECKING:
    from ._machine import FakeCupy


class _FunctionsMixin:
    """:class:`FakeCupy`'s NumPy-function dispatch and CuPy's own functions."""

    def _array_function(self, func, types, args, kwargs):
        """CuPy's ``ndarray.__array_function__``: the function if CuPy has one by that name
        in the mirrored module, for device and NumPy array types only."""
        module, name = func.__module__, func.__name__
        if module not in _CUPY_MODULES:
            return NotImplemented
        if module == "numpy" and name in FUNCTIONS_CUPY_LACKS:
            return NotImplemented
        if module == "numpy.linalg" and name in _LINALG_CUPY_LACKS:
            return NotImplemented
        if not all(issubclass(t, (_FakeNdarray, np.ndarray)) for t in types):
            return NotImplemented
        if module == "numpy" and name in _OWN_RULES:   # CuPy's own argument rules
            return getattr(self, name)(*args, **kwargs)
        return self._call_function(func, args, kwargs)

    def _call_function(self, func, args: tuple, kwargs: dict):
        """A NumPy function on device arrays, as CuPy's function of that name: NumPy arrays
        as data raise TypeError, the device arrays must be on the current device, results
        are device arrays (views where NumPy's are views)."""
        name = func.__name__
        if name in _REDUCTIONS:
            for key in ("where", "initial"):
                if key in kwargs:
                    raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
        sources: list = []
        host_index = _HOST_INDEX_ARGUMENTS.get(name, ())
        host_param = _HOST_PARAMETERS.get(name, ())
        np_args = [self._unwrap(a, sources, _role(i, host_index, host_param))
                   for i, a in enumerate(args)]
        np_kwargs = {k: self._unwrap(v, sources, _role(k, host_index, host_param))
                     for k, v in kwargs.items()}
        if name in _ADAPTERS:
            bound = inspect.signature(func).bind(*np_args, **np_kwargs)
            _ADAPTERS[name](bound)
            np_args, np_kwargs = bound.args, bound.kwargs
        if name not in _NO_KERNEL_FUNCTIONS:
            for src in sources:
                self._check_device(src)
        if name in _SYNCING_FUNCTIONS or (name == "where" and len(args) == 1):
            self.transfer_log.record(D2H, 8, f"{name}: output size (synchronises)")
        with np.errstate(all="ignore"):
            result = func(*np_args, **np_kwargs)
        if name not in _NO_KERNEL_FUNCTIONS and type(result) in (bool, int, float, complex):
            result = np.asarray(result)   # CuPy's count_nonzero, allclose ... give 0-d arrays
        return self._wrap(result, sources)

    def _unwrap(self, obj, sources: list, role: str):
        """``obj`` with device arrays replaced by their data (collected in ``sources``);
        NumPy arrays are refused unless ``role`` says CuPy copies ("index") or reads
        ("parameter") them."""
        if _is_device_array(obj):
            sources.append(self._own(obj))
            return obj._data
        if role == "index" and isinstance(obj, (np.ndarray, list, tuple)):
            arr = self._from_host(obj, None, None, "index array")
            sources.append(arr)
            return arr._data
        if isinstance(obj, np.ndarray):
            if role == "index":
                arr = self._from_host(obj, None, None, "index array")
                sources.append(arr)
                return arr._data
            if role == "parameter":
                return obj
            raise TypeError(f"Unsupported type {type(obj)}")
        if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
            return type(obj)(self._unwrap(x, sources, role) for x in obj)
        return obj

    def matmul(self, x1, x2, /, out=None, **kwargs):
        """Matrix product (cuBLAS in CuPy)."""
        return self._ufunc_call(np.matmul, (x1, x2), {"out": out, **kwargs})

    def dot(self, a, b, out=None):
        """Dot product; both operands must be device arrays, as CuPy's typed signature."""
        a, b = _typed_array(self, a, "a"), _typed_array(self, b, "b")
        return self._call_function(np.dot, (a, b), {} if out is None else {"out": out})

    def copyto(self, dst, src, casting="same_kind", where=None) -> None:
        """Copy ``src`` (a device array, a scalar, or a size-1 NumPy array) into ``dst``,
        broadcasting; from another device too, as CuPy allows."""
        self._own(dst)
        scalar = True
        if type(src) in (bool, int, float, complex):
            np.copyto(np.empty((), dst.dtype), src, casting=casting)   # NumPy's cast check
        elif isinstance(src, (np.ndarray, np.generic)):
            if src.size != 1:
                raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
            if not np.can_cast(src.dtype, dst.dtype, casting):
                raise TypeError(f"Cannot cast {src.dtype} to {dst.dtype} in {casting} "
                                "casting mode")
            src = src.item()
        else:
            self._own(src)
            scalar = False
            if not np.can_cast(src.dtype, dst.dtype, casting):
                raise TypeError(f"Cannot cast {src.dtype} to {dst.dtype} in {casting} "
                                "casting mode")
            if not all(s in (d, 1) for s, d in itertools.zip_longest(
                    reversed(src.shape), reversed(dst.shape), fillvalue=1)):
                raise ValueError(f"could not broadcast input array from shape {src.shape} "
                                 f"into shape {dst.shape}")
            src = src._data.reshape(src.shape[max(src.ndim - dst.ndim, 0):])
        if where is not None:
            self._check_device(dst)
            mask = self._kernel_arg(where)
            with np.errstate(all="ignore"):
                np.copyto(dst._data, src, casting="unsafe", where=mask)
            return
        if dst.size == 0:
            return
        if scalar:
            self._check_device(dst)
        with np.errstate(all="ignore"):
            np.copyto(dst._data, src, casting="unsafe")

    def take(self, a, indices, axis=None, out=None):
        """Elements of ``a`` at ``indices``, wrapping around as CuPy's kernel does."""
        kwargs = {"axis": axis} if out is None else {"axis": axis, "out": out}
        return self._call_function(np.take, (a, indices), kwargs)

    def get_array_module(self, *args):
        """This namespace if any argument is a device array, else NumPy."""
        return self if any(_is_device_array(a) for a in args) else np

    def shares_memory(self, a, b, max_work=None) -> bool:
        """Whether two device arrays share memory (exactly)."""
        a, b = _typed_array(self, a, "a"), _typed_array(self, b, "b")
        return bool(np.shares_memory(a._data, b._data))

    def may_share_memory(self, a, b, max_work=None) -> bool:
        """Whether two device arrays' memory ranges overlap (CuPy compares bounds)."""
        a, b = _typed_array(self, a, "a"), _typed_array(self, b, "b")
        return bool(np.may_share_memory(a._data, b._data))

    def result_type(self, *arrays_and_dtypes) -> np.dtype:
        return np.result_type(*[a.dtype if _is_device_array(a) else a
                                for a in arrays_and_dtypes])

    def can_cast(self, from_, to, casting="safe") -> bool:
        return np.can_cast(from_.dtype if _is_device_array(from_) else from_, to, casting)


class _StrideTricks:
    """``cupy.lib.stride_tricks``: views with chosen strides (unchecked, as in CuPy)."""

    def __init__(self, cp: FakeCupy):
        self._cp = cp

    def as_strided(self, x, shape=None, strides=None):
        """A view of ``x`` with ``shape`` and ``strides``."""
        data = np.lib.stride_tricks.as_strided(self._cp._own(x)._data, shape, strides)
        return self._cp._view_of(data, x)

    def sliding_window_view(self, x, window_shape, axis=None, *, subok=False,
                            writeable=False):
        """NumPy's sliding windows, as a writeable view (CuPy has no read-only views)."""
        data = np.lib.stride_tricks.sliding_window_view(self._cp._own(x)._data, window_shape,
                                                        axis)
        return self._cp._view_of(data, x)


def _take_wraps(bound: inspect.BoundArguments) -> None:
    """CuPy's take has no ``mode``: its kernel wraps the indices around."""
    if "mode" in bound.arguments:
        raise TypeError("take() got an unexpected keyword argument 'mode'")
    bound.arguments["mode"] = "wrap"


def _along_axis_wraps(bound: inspect.BoundArguments) -> None:
    """CuPy's take/put_along_axis index through advanced indexing, which wraps around."""
    arr, axis = bound.arguments["arr"], bound.arguments.get("axis", -1)
    size = arr.size if axis is None else arr.shape[axis]
    bound.arguments["indices"] = _wrap_indices(bound.arguments["indices"], size)


# NumPy functions dispatched to the namespace's own emulation of CuPy's function
_OWN_RULES = frozenset({"copyto", "dot", "may_share_memory", "shares_memory"})

# NumPy functions whose arguments are adjusted to CuPy's behaviour before they run
_ADAPTERS = {"take": _take_wraps, "take_along_axis": _along_axis_wraps,
             "put_along_axis": _along_axis_wraps}


def _typed_array(cp: FakeCupy, x, name: str):
    """A device array argument of a CuPy function typed ``_ndarray_base`` in Cython."""
    if not _is_device_array(x):
        raise TypeError(f"Argument '{name}' has incorrect type (expected "
                        f"cupy._core.core._ndarray_base, got {_type_name(x)})")
    return cp._own(x)


def _type_name(x) -> str:
    """The type's name as CPython's tp_name gives it ("numpy.ndarray", "int")."""
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def _role(position, host_index: tuple, host_param: tuple) -> str:
    if position in host_index:
        return "index"
    if position in host_param:
        return "parameter"
    return "data"


def _numpy_function(cp: FakeCupy, func):
    """``cp.<name>`` for a NumPy function: CuPy's function of that name, emulated."""
    def call(*args, **kwargs):
        return cp._call_function(func, args, kwargs)
    call.__name__ = call.__qualname__ = func.__name__
    call.__doc__ = f"FakeCupy's {func.__name__}: NumPy's, on device arrays."
    return call
