"""Array creation under CuPy's rules: ``asarray``/``array`` (no copy where CuPy makes none,
host data transferred, device arrays copied across devices), ``empty`` (garbage-filled),
``zeros``, ``ones``, ``full``, the ``*_like`` functions and ``arange``. Mixed into
:class:`FakeCupy`."""

from __future__ import annotations

import numpy as np

from ._array import _is_device_array
from ._rules import _check_dtype


class _CreationMixin:
    """:class:`FakeCupy`'s creation functions."""

    def asarray(self, a, dtype=None, order=None, *, blocking=False):
        """``a`` itself when it is a device array on the current device with that dtype;
        a copy to the current device otherwise (host data: a host-to-device transfer)."""
        if _is_device_array(a):
            return self.array(a, dtype, copy=False, order=order)
        return self._from_host(a, dtype, order, "asarray")

    def array(self, obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
        """A device array from a device array (copied unless ``copy=False`` allows not), a
        sequence of device arrays (stacked on the device) or host data (transferred)."""
        if subok:
            raise NotImplementedError
        if _is_device_array(obj):
            self._own(obj)
            dt = obj.dtype if dtype is None else dtype
            if obj._alloc.device == self._current:
                a = obj.astype(dt, order=order, copy=copy)
            else:
                a = obj.copy(order=order or "K").astype(dt, copy=False)
            if ndmin > a.ndim:
                a = (a.view() if a is obj else a).reshape((1,) * (ndmin - a.ndim) + a.shape)
            return a
        stacked = self._stack_device_sequence(obj)
        if stacked is not None:
            return self.array(stacked, dtype, copy=False, ndmin=ndmin)
        return self._from_host(obj, dtype, None if order == "K" else order, "array", ndmin)

    def ascontiguousarray(self, a, dtype=None):
        """``a`` when C-contiguous with that dtype, else a C-contiguous copy."""
        if not _is_device_array(a):
            return self._from_host(a, dtype, "C", "ascontiguousarray")
        if a._data.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return a.astype(a.dtype if dtype is None else dtype, order="C", copy=True)

    def asnumpy(self, a, stream=None, order="C", out=None, *, blocking=True) -> np.ndarray:
        """A NumPy copy of a device array (a device-to-host transfer); host data as is."""
        if _is_device_array(a):
            return self._own(a).get(stream=stream, order=order, out=out, blocking=blocking)
        temp = np.asarray(a, order=order)
        if out is None:
            return temp
        out[...] = temp
        return out

    def empty(self, shape, dtype=float, order="C"):
        """An uninitialised array (filled with garbage: NaN, -1 or True)."""
        return self.ndarray(shape, dtype, order=order)

    def zeros(self, shape, dtype=float, order="C"):
        return self._new(np.zeros(shape, _check_dtype(dtype), order=order), keep_layout=True)

    def ones(self, shape, dtype=float, order="C"):
        return self._new(np.ones(shape, _check_dtype(dtype), order=order), keep_layout=True)

    def full(self, shape, fill_value, dtype=None, order="C"):
        if dtype is None:
            dtype = fill_value.dtype if _is_device_array(fill_value) else \
                np.array(fill_value).dtype
        a = self.empty(shape, dtype, order)
        if _is_device_array(fill_value) and fill_value.ndim:
            a[...] = fill_value
        else:
            a.fill(fill_value)
        return a

    def _like(self, prototype, dtype, order, subok, shape):
        if subok is not None:
            raise TypeError("subok is not supported yet")
        dtype = prototype.dtype if dtype is None else dtype
        shape = prototype.shape if shape is None else shape
        if order in ("K", "A", None):
            flags = prototype.flags
            order = "F" if flags.f_contiguous and not flags.c_contiguous else "C"
        return dtype, shape, order

    def empty_like(self, prototype, dtype=None, order="K", subok=None, shape=None):
        return self.empty(*_reorder(self._like(prototype, dtype, order, subok, shape)))

    def zeros_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self.zeros(*_reorder(self._like(a, dtype, order, subok, shape)))

    def ones_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self.ones(*_reorder(self._like(a, dtype, order, subok, shape)))

    def full_like(self, a, fill_value, dtype=None, order="K", subok=None, shape=None):
        dtype, shape, order = self._like(a, dtype, order, subok, shape)
        return self.full(shape, fill_value, dtype, order)

    def arange(self, start, stop=None, step=1, dtype=None):
        """NumPy's arange, made on the device."""
        args = (start,) if stop is None else (start, stop, step)
        return self._new(np.arange(*args, dtype=dtype))


def _reorder(like: tuple) -> tuple:
    """(dtype, shape, order) as the (shape, dtype, order) the creation functions take."""
    dtype, shape, order = like
    return shape, dtype, order
