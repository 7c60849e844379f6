"""Indexing under CuPy's rules (its ``_prepare_slice_list``, ``_view_getitem`` and
``_scatter_op``): which indices are copied to the device, wrap around, synchronise or raise,
and assignment and ``ufunc.at`` through them. Mixed into :class:`FakeCupy`."""

from __future__ import annotations

import numpy as np

from ._array import _is_device_array
from ._rules import _SCATTER_DTYPES, _SCATTER_NAMES, _SCATTER_UFUNCS
from ._transfers import D2H


class _IndexingMixin:
    """:class:`FakeCupy`'s indexing: ``arr[slices]`` and ``arr[slices] = value``."""

    def _index(self, arr, slices) -> tuple[tuple, bool, bool]:
        """The NumPy index for ``arr[slices]`` under CuPy's rules, whether it is advanced,
        and whether it holds a boolean mask."""
        items = list(slices) if isinstance(slices, tuple) else [slices]
        for i, s in enumerate(items):
            if s is None or s is Ellipsis or isinstance(s, slice) or _is_device_array(s):
                continue
            is_sequence = isinstance(s, (list, tuple))
            if not is_sequence and np.isscalar(s) and not isinstance(s, (bool, np.bool_)):
                continue   # a scalar index
            try:
                s = self._from_host(s, None, None, "index")
            except (ValueError, TypeError) as exc:
                raise IndexError("only integers, slices (`:`), ellipsis (`...`),numpy.newaxis "
                                 "(`None`) and integer or boolean arrays are valid "
                                 "indices") from exc
            if is_sequence and s.size == 0:
                s = s.astype(np.int32)   # an empty list means no indices, not an empty mask
            items[i] = s
        consumed, has_ellipsis = 0, False
        for s in items:
            if s is Ellipsis:
                if has_ellipsis:
                    raise IndexError("an index can only have a single ellipsis ('...')")
                has_ellipsis = True
            elif _is_device_array(s):
                if s.dtype.kind not in "biu":
                    raise IndexError("arrays used as indices must be of integer or boolean "
                                     f"type. (actual: {s.dtype.type})")
                consumed += s.ndim if s.dtype.kind == "b" else 1
            elif s is not None:
                consumed += 1
        if consumed > arr.ndim:
            raise IndexError(f"too many indices for array: array is {arr.ndim}-dimensional, "
                             f"but {consumed} were indexed")
        index, axis, advanced, mask = [], 0, False, False
        for s in items:
            if s is None:
                index.append(None)
            elif s is Ellipsis:
                index.append(Ellipsis)
                axis += arr.ndim - consumed
            elif isinstance(s, slice):
                index.append(s)
                axis += 1
            elif _is_device_array(s):
                self._check_device(self._own(s))
                advanced = True
                if s.dtype.kind == "b":
                    _check_mask_shape(arr.shape, s.shape, axis)
                    index.append(s._data)
                    mask = True
                    axis += s.ndim
                else:
                    index.append(_wrap_indices(s._data, arr.shape[axis]))
                    axis += 1
            else:
                index.append(_scalar_index(s, axis, arr.shape[axis]))
                axis += 1
        if not has_ellipsis:
            index.append(Ellipsis)   # basic indexing then gives 0-d views, never scalars
        if advanced:
            self._check_device(arr)
        return tuple(index), advanced, mask

    def _scatter(self, arr, slices, value, op: str) -> None:
        """CuPy's _scatter_op: ``arr[slices] = value`` (op "update") or the unbuffered
        ``ufunc.at`` ops ("add", "sub", "max", "min", "and", "or", "xor")."""
        self._own(arr)
        if _is_device_array(value):
            value = _squeeze_leading_unit_dims(self._own(value))
        index, advanced, mask = self._index(arr, slices)
        if not advanced:
            target = self._view_of(arr._data[index], arr)
            if op == "update":
                if not _is_device_array(value):
                    target.fill(value)
                    return
                self._check_device(target)
                self._check_device(value)
                with np.errstate(all="ignore"):
                    np.copyto(target._data, value._data, casting="unsafe")
                return
            self._ufunc_call(_SCATTER_UFUNCS[op], (target, value), {"out": target})
            return
        if _is_device_array(value):
            self._check_device(value)
            values = value._data.astype(arr.dtype, copy=False)
        else:
            values = self._from_host(value, arr.dtype, None, "assigned value")._data
        if mask:
            self.transfer_log.record(D2H, 4, "boolean mask count (synchronises)")
        elif op != "update" and arr.dtype.name not in _SCATTER_DTYPES[op]:
            raise TypeError(f"{_SCATTER_NAMES[op]} only supports "
                            f"{', '.join(_SCATTER_DTYPES[op])}, as data type")
        with np.errstate(all="ignore"):
            if op == "update":
                arr._data[index] = values
            else:
                _SCATTER_UFUNCS[op].at(arr._data, index, values)


def _check_mask_shape(shape: tuple, mask_shape: tuple, axis: int) -> None:
    for i, m in enumerate(mask_shape):
        a = shape[axis + i]
        if m not in (0, a):
            raise IndexError(f"boolean index did not match indexed array along dimension "
                             f"{axis + i}; dimension is {a} but corresponding boolean "
                             f"dimension is {m}")


def _wrap_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """CuPy's take/scatter kernels: integer indices wrap around (no bounds check)."""
    if size == 0:
        if indices.size:
            raise IndexError("cannot do a non-empty take from an empty axes.")
        return indices
    return np.mod(indices, size)


def _scalar_index(s, axis: int, size: int) -> int:
    """A scalar index as CuPy reads it: ``int(s)`` (floats truncate), bounds-checked."""
    ind = int(s)
    if ind < 0:
        ind += size
    if not 0 <= ind < size:
        raise IndexError(f"Index {s} is out of bounds for axis {axis} with size {size}")
    return ind


def _squeeze_leading_unit_dims(value):
    """CuPy drops a value's leading size-1 axes before assigning it."""
    lead = 0
    while lead < value.ndim and value.shape[lead] == 1:
        lead += 1
    if lead == 0:
        return value
    return value._cp._view_of(value._data.reshape(value.shape[lead:]), value)
