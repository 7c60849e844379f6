"""Tensors from host data: ``tensor``, ``as_tensor``, ``asarray``, ``from_numpy``.

These make leaves from Python or NumPy data (constants, not ops). The
factories that make values from shapes (``zeros``, ``arange``, ``rand``...)
are ops in ``ir.ops.creation`` and ``ir.ops.random``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from compgrad.device import check_device
from compgrad.device_arrays import place
from compgrad.tensor import Tensor
from ir import dtypes
from ir.types import CPU

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "is_tensor", "numel"]

_PY_LEAF_DTYPES = {"f": dtypes.float32, "i": dtypes.int64, "u": dtypes.int64, "b": dtypes.bool_}


def _to_nested(data, depth: int = 0):
    """Replace tensors inside nested sequences by their values; check rectangularity."""
    if isinstance(data, Tensor):
        if depth == 0:
            return data._data
        if data._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return data._data.reshape(())[()]  # a NumPy scalar: keeps the tensor's dtype
    if isinstance(data, (list, tuple)):
        items = [_to_nested(x, depth + 1) for x in data]
        lengths = {len(x) for x in items if isinstance(x, (list, tuple))}
        if len(lengths) > 1:
            first = next(len(x) for x in items if isinstance(x, (list, tuple)))
            bad = next(len(x) for x in items if isinstance(x, (list, tuple)) and len(x) != first)
            raise ValueError(f"expected sequence of length {first} at dim {depth + 1} "
                             f"(got {bad})")
        return items
    return data


def _has_numpy_leaf(data) -> bool:
    if isinstance(data, (np.ndarray, np.generic)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_numpy_leaf(x) for x in data)
    return False


def _array_from_data(data, dtype) -> np.ndarray:
    if isinstance(data, Tensor):
        arr = data._data.copy()
    elif isinstance(data, np.ndarray):
        dtypes.from_numpy_dtype(data.dtype)  # TypeError for unsupported dtypes
        arr = np.array(data, copy=True)
    else:
        if isinstance(data, str) or (data is not None and not isinstance(
                data, (numbers.Number, np.generic, list, tuple, range))):
            raise TypeError(f"Could not infer dtype of {type(data).__name__}")
        nested = _to_nested(list(data) if isinstance(data, range) else data)
        numpy_leaf = _has_numpy_leaf(nested)
        try:
            arr = np.array(nested)
        except ValueError as e:
            raise ValueError(f"could not build a tensor from ragged data: {e}") from None
        if arr.dtype == object or arr.dtype.kind in "USVc":
            raise TypeError(f"Could not infer dtype of {type(data).__name__}")
        if dtype is None and not numpy_leaf:
            arr = arr.astype(_PY_LEAF_DTYPES[arr.dtype.kind].np_dtype, copy=False)
        elif dtype is None and arr.dtype.kind == "u" and arr.dtype != np.uint8:
            arr = arr.astype(np.int64)
    if dtype is not None:
        arr = arr.astype(dtypes.as_dtype(dtype).np_dtype, copy=False)
    dtypes.from_numpy_dtype(arr.dtype)
    # np.ascontiguousarray would turn a 0-d array into shape (1,)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (nested sequences, scalars, arrays).

    Python floats give float32, ints int64, bools bool; NumPy arrays keep
    their dtype, as in PyTorch.
    """
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use "
                      "sourceTensor.detach().clone() rather than compgrad.tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
    if device is not None:
        dev = check_device(device)
    else:   # a tensor's copy stays on its device, as in PyTorch
        dev = data.device if isinstance(data, Tensor) else CPU
    t = Tensor._from_array(place(_array_from_data(data, dtype), dev), dev)
    if requires_grad:
        t.requires_grad_()
    return t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory with a Tensor or ndarray when no conversion
    is needed."""
    dt = None if dtype is None else dtypes.as_dtype(dtype)
    dev = None if device is None else check_device(device)
    if isinstance(data, Tensor):
        return data.to(dtype=dt, device=dev) if (dt or dev) else data
    if isinstance(data, np.ndarray) and (dt is None or dt.np_dtype == data.dtype) and (
            dev is None or dev.type == "cpu"):
        return from_numpy(data)
    return tensor(data, dtype=dt, device=dev)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad: bool = False) -> Tensor:
    """``torch.asarray``: share memory where possible unless ``copy=True``."""
    out = tensor(obj, dtype=dtype, device=device) if copy else as_tensor(obj, dtype, device)
    if requires_grad:
        out.requires_grad_()
    return out


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``ndarray`` (writes show through both ways)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    dtypes.from_numpy_dtype(ndarray.dtype)
    if not ndarray.dtype.isnative:
        raise ValueError("given numpy array has byte order different from the native byte "
                         "order. Conversion between byte orders is currently not supported.")
    return Tensor._from_array(ndarray, CPU)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    return input.numel()
