"""Where a tensor's array lives, and how ops run on GPU arrays.

A CPU tensor holds a NumPy array; a tensor on ``cuda:N`` holds a CuPy array on device
N (issue 8: CuPy for eager GPU arrays and cuBLAS, Numba-CUDA for generated kernels;
they share memory through ``__cuda_array_interface__``). This module is the one place
that moves arrays between the host and a device, and the one place that decides how
an op's reference implementation runs on device arrays:

* **natively**: the implementation is NumPy code, and CuPy implements NumPy's
  ``__array_ufunc__`` / ``__array_function__`` protocols, so ``np.add``, ``np.sum``,
  ``np.matmul`` (cuBLAS), ``x.reshape`` and most of the API run on the GPU, with
  the arrays never leaving it;
* **through the host**, for an op whose implementation CuPy cannot run (it calls a
  NumPy function CuPy lacks, or converts an array to NumPy, which CuPy refuses with
  a TypeError rather than copying silently): its inputs are copied to the host, the
  implementation runs there and its results are copied back. The op is remembered
  (per input dtypes), so later such calls go to the host at once, and
  :func:`host_fallbacks` lists them (``compgrad.explain``-style inspection and the
  tests that keep elementwise, reduction and matmul ops on the GPU).

Either way the values are the reference implementation's: the host path is the CPU
computation itself, and a native run computes the same NumPy expression.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ir.types import Device

__all__ = ["cupy", "to_device", "to_host", "place", "run_on_device",
           "host_fallbacks", "HOST_OPS", "address", "is_writeable"]

# op name -> the error that sent it to the host (a record, read by host_fallbacks)
HOST_OPS: dict[str, str] = {}
# (op name, input dtypes) that CuPy could not run: the next such call goes to the host at
# once (an op may fail for one dtype only: scatter_add of int64 has no atomic add)
_HOST_SIGNATURES: set[tuple] = set()

# what CuPy raises where a NumPy implementation cannot run on its arrays: TypeError for an
# implicit conversion or a function CuPy lacks (NotImplemented from __array_function__),
# NotImplementedError and ValueError for arguments it does not support
_NOT_ON_DEVICE = (TypeError, NotImplementedError, ValueError, AttributeError)


def cupy() -> ModuleType:
    """CuPy (the GPU array library); raises ``CudaUnavailableError`` without it."""
    from compgrad import cuda
    module = cuda._cupy()
    if module is None:
        cuda._lazy_init()   # says why there is no GPU; with a GPU but no CuPy, the hint below
        raise cuda.CudaUnavailableError(
            "compgrad keeps CUDA tensors in CuPy arrays, and CuPy is not installed: "
            "pip install compgrad[cuda] (CUDA 12) or compgrad[cuda13] (CUDA 13)")
    return module


def _index(device: Device) -> int:
    from compgrad import cuda
    return cuda.current_device() if device.index is None else device.index


def to_device(arr, device: Device):
    """``arr`` (a NumPy or CuPy array, or a number) as an array on ``device``: a copy
    where it lives elsewhere, ``arr`` itself where it is there already."""
    if device.type == "cpu":
        return to_host(arr)
    cp = cupy()
    index = _index(device)
    if isinstance(arr, cp.ndarray):
        if arr.device.id == index:
            return arr
        with cp.cuda.Device(index):
            out = cp.array(arr, copy=True)   # device to device
    else:
        with cp.cuda.Device(index):
            out = cp.asarray(arr)             # host to device
    from compgrad.cuda_memory import note_allocation
    note_allocation(index)
    return out


def to_host(arr) -> np.ndarray:
    """``arr`` as a NumPy array: itself where it is one, else a copy from its device."""
    if isinstance(arr, np.ndarray):
        return arr
    if hasattr(arr, "__cuda_array_interface__"):
        return cupy().asnumpy(arr)
    return np.asarray(arr)


def place(result, device: Device):
    """An op's result as an array on ``device`` (results computed on the host, such as
    random numbers and constants, are copied over; device results stay)."""
    if device.type == "cpu":
        return result if type(result) is np.ndarray else to_host(result)
    return to_device(result, device)


def run_on_device(op, arrays: list, attrs: dict, device: Device):
    """Run ``op``'s implementation for an output on the CUDA ``device``, natively on
    CuPy arrays where CuPy can, else through the host (module docstring). Host arrays
    among ``arrays`` (0-d CPU tensors, which may meet GPU tensors as in PyTorch) are
    copied to the device first. Random ops draw on the host, so a seed gives the same
    numbers on every device (and in compiled programs); constant fills are made on the
    device. Results may be host or device arrays: the caller :func:`place`\\ s them."""
    kind = op.kind.value
    if op.name == "to_device":   # one copy, straight to the device
        (source,) = arrays
        return source.copy() if _on(source, device) else to_device(source, device)
    if kind == "creation":
        fill = _DEVICE_FILLS.get(op.name)
        if fill is not None:
            cp = cupy()
            with cp.cuda.Device(_index(device)):
                return fill(cp, arrays, attrs)
    signature = (op.name, tuple(getattr(a, "dtype", None) for a in arrays))
    if kind in ("creation", "random") or signature in _HOST_SIGNATURES:
        return op.impl(*[to_host(a) if not _is_number(a) else a for a in arrays], **attrs)
    arrays = [to_device(a, device) if isinstance(a, np.ndarray) else a for a in arrays]
    cp = cupy()
    try:
        with cp.cuda.Device(_index(device)):
            return op.impl(*arrays, **attrs)
    except _NOT_ON_DEVICE as exc:
        error = exc
    host = [to_host(a) if not _is_number(a) else a for a in arrays]
    result = op.impl(*host, **attrs)   # a genuine error of the op raises here, as on CPU
    HOST_OPS[op.name] = f"{type(error).__name__}: {error}"
    _HOST_SIGNATURES.add(signature)
    return result


def _zeros(cp, arrays, attrs):
    return cp.zeros(attrs["shape"], dtype=attrs["dtype"].np_dtype)


def _ones(cp, arrays, attrs):
    return cp.ones(attrs["shape"], dtype=attrs["dtype"].np_dtype)


def _full(cp, arrays, attrs):
    value = arrays[0]
    if not _is_number(value):
        value = to_host(value).reshape(()).item()
    with np.errstate(all="ignore"):   # the fill value is cast as on the CPU
        cast = np.asarray(value).astype(attrs["dtype"].np_dtype)
    return cp.full(attrs["shape"], cast.item(), dtype=attrs["dtype"].np_dtype)


# creation ops made directly on the device (the others run on the host and are copied)
_DEVICE_FILLS = {"zeros": _zeros, "ones": _ones, "full": _full}


def _on(arr, device: Device) -> bool:
    """Whether ``arr`` is a device array on ``device``."""
    return not isinstance(arr, (np.ndarray, np.generic)) and arr.device.id == _index(device)


def _is_number(a) -> bool:
    return isinstance(a, (int, float, bool, complex)) or a is None


def host_fallbacks() -> dict[str, str]:
    """The ops that ran on GPU tensors through the host, each with the reason (the error
    CuPy raised on the first try)."""
    return dict(HOST_OPS)


def address(arr) -> int:
    """The address of ``arr``'s first element (host or device memory)."""
    if isinstance(arr, np.ndarray):
        return arr.__array_interface__["data"][0]
    return int(arr.data.ptr)


def is_writeable(arr) -> bool:
    """Whether writing into ``arr`` is allowed. NumPy marks broadcast views read-only;
    CuPy has no such flag and would write every repeat of an element, so a device
    array that repeats elements (a zero stride over more than one) counts as read-only,
    and in-place ops on it raise PyTorch's overlap error on both devices."""
    if isinstance(arr, np.ndarray):
        return arr.flags.writeable
    return not any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape))
