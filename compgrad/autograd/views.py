"""In-place writes through views, under autograd (PyTorch's CopySlices).

A write into a view changes its base. Autograd records that as functional
ops the registry already differentiates: the base becomes
``index_put(base.flatten(), positions, value)`` and the view becomes
``take(base, positions)``, where ``positions`` are the base's flat indices of
the view's elements. Other views of the same base are refreshed the same way
when they are next used, since their recorded ``grad_fn`` no longer
describes the base.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from compgrad.device_arrays import address, place
from compgrad.tensor import Tensor
from ir import ops

__all__ = ["view_positions", "rebase_view", "refresh_view", "UNSUPPORTED"]

UNSUPPORTED = (
    "compgrad cannot differentiate an in-place write into this view: its base does not cover "
    "one dense block of memory (e.g. a tensor made by from_numpy of a strided array). clone() "
    "the base first")


def view_positions(view: Tensor) -> np.ndarray | None:
    """The flat (row-major) indices into ``view._base`` of each element of ``view``.

    None when the base's memory is not one dense block, where positions are not
    defined by strides alone.
    """
    if view._data.size == 0:
        return np.empty(view._data.shape, dtype=np.int64)
    data, root = view._data, view._base._data
    if root.size == 0 or any(s < 0 for s in root.strides):
        return None
    if not isinstance(root, np.ndarray):
        data, root = _host_shadows(data, root)
    return _positions(data, root)


def _host_shadows(data, root) -> tuple[np.ndarray, np.ndarray]:
    """Host arrays with the memory layout of a device array ``root`` and its view
    ``data``: positions depend on shapes, strides and offsets alone, so they are
    computed on the host."""
    item = root.itemsize
    span = 1 + sum((n - 1) * s for n, s in zip(root.shape, root.strides)) // item
    buf = np.empty(span, dtype=root.dtype)
    offset = (address(data) - address(root)) // item
    return (as_strided(buf[offset:], data.shape, data.strides),
            as_strided(buf, root.shape, root.strides))


def _positions(data: np.ndarray, root: np.ndarray) -> np.ndarray | None:
    item = root.itemsize
    logical = np.empty_like(root, dtype=np.int64)  # same memory layout as the base
    if tuple(s * 8 for s in root.strides) != tuple(s * item for s in logical.strides):
        return None
    logical[...] = np.arange(root.size, dtype=np.int64).reshape(root.shape)
    memory = logical.ravel(order="K")
    if not np.shares_memory(memory, logical):
        return None  # not dense: ravel had to copy
    offset = data.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if offset % item or any(s % item for s in data.strides):
        return None
    start = memory[offset // item:]
    strides = tuple(s // item * 8 for s in data.strides)
    return as_strided(start, data.shape, strides).copy()


def _positions_tensor(view: Tensor) -> Tensor:
    positions = view_positions(view)
    if positions is None:
        raise RuntimeError(UNSUPPORTED)
    device = view.device
    return Tensor._from_array(place(positions, device), device)


def rebase_view(view: Tensor, value: Tensor) -> None:
    """After ``value`` was written into ``view``: rebase the base and the view's grad_fn."""
    base = view._base
    positions = _positions_tensor(view)
    if value.dtype is not base.dtype:
        value = ops.to_dtype(value, base.dtype)
    if tuple(value.shape) != tuple(view.shape):
        value = ops.expand(value, view.shape)
    flat = ops.index_put(ops.reshape(base, (-1,)), (ops.reshape(positions, (-1,)),),
                         ops.reshape(value, (-1,)))
    new_base = ops.reshape(flat, base.shape)
    base.grad_fn = new_base.grad_fn
    base._output_nr = new_base._output_nr
    base._requires_grad = True
    _set_view_grad_fn(view, positions)


def _set_view_grad_fn(view: Tensor, positions: Tensor) -> None:
    fresh = ops.take(view._base, positions)
    view.grad_fn = fresh.grad_fn
    view._output_nr = fresh._output_nr
    view._requires_grad = fresh._requires_grad
    view._view_version = view._version[0]


def refresh_view(view: Tensor) -> None:
    """Give a stale view (its base was written since it was made) a grad_fn from the base."""
    _set_view_grad_fn(view, _positions_tensor(view))
