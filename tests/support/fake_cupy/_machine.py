"""The fake machine, :class:`FakeCupy`: its devices, pools, streams and transfer log, the
bookkeeping its arrays rely on (device checks, allocation, wrapping NumPy results as device
arrays and views, host-to-device copies) and the ``cupy`` namespace's lookup by name. Its
other method groups are mixins: ``_kernels``, ``_ufuncs``, ``_functions``, ``_indexing`` and
``_creation``."""

from __future__ import annotations

import itertools
import warnings
import weakref
from types import ModuleType, SimpleNamespace

import numpy as np

from ._array import _FakeNdarray, _is_device_array
from ._creation import _CreationMixin
from ._cuda import _Cuda, _StreamBase
from ._errors import _ERROR_INVALID_DEVICE, CUDARuntimeError, PerformanceWarning
from ._functions import _FunctionsMixin, _numpy_function, _StrideTricks
from ._indexing import _IndexingMixin
from ._kernels import _KernelsMixin
from ._memory import MemoryPool, _Allocation, _Pools, _round_size
from ._rules import (
    _BORROWED_FROM_NUMPY,
    _NAMESPACE_LACKS,
    CUPY_VERSION_EMULATED,
    UFUNCS_CUPY_LACKS,
    _check_dtype,
)
from ._transfers import H2D, TransferCount, TransferLog
from ._ufuncs import FakeUfunc, _UfuncsMixin


class FakeCupy(_KernelsMixin, _UfuncsMixin, _FunctionsMixin, _IndexingMixin, _CreationMixin):
    """One fake GPU machine seen through CuPy's API (see the package docstring).

    ``n_devices`` GPUs of ``device_memory`` bytes each; ``peer_access``: whether a kernel may
    read another device's array (CuPy then warns) or raises (the default).
    ``transfers`` counts host/device copies and ``transfer_log`` lists them;
    ``synchronizations`` lists ``(who, device)``
    for every synchronisation (``"cupy"`` a stream, ``"device"`` a device, ``"numba"``
    numba.cuda on the same machine).
    """

    __name__ = "cupy"
    __version__ = CUPY_VERSION_EMULATED
    PerformanceWarning = PerformanceWarning
    ufunc = FakeUfunc

    def __init__(self, n_devices: int = 1, *, peer_access: bool = False,
                 device_memory: int = 80 * 2**30, compute_capability: tuple[int, int] = (9, 0)):
        if n_devices < 1:
            raise ValueError("a fake machine has at least one device")
        self.n_devices = n_devices
        self.peer_access = peer_access
        self.compute_capability = compute_capability
        self.transfer_log = TransferLog()
        self.synchronizations: list[tuple[str, int]] = []
        self._current = 0
        self._pools = _Pools(n_devices, device_memory)
        self._default_pool = MemoryPool(self)
        self._streams: dict[int, _StreamBase] = {}
        self._stream_ptrs = itertools.count(0x5000_0000, 0x100)
        self._ufuncs: dict[str, FakeUfunc] = {}
        self._functions: dict[str, object] = {}
        self.ndarray = type("ndarray", (_FakeNdarray,),
                            {"_cp": self, "__slots__": (), "__module__": "cupy"})
        self.cuda = _Cuda(self)
        self.lib = SimpleNamespace(stride_tricks=_StrideTricks(self))

    def __repr__(self) -> str:
        return f"<FakeCupy: {self.n_devices} device(s), current {self._current}>"

    @property
    def transfers(self) -> TransferCount:
        """How many host/device copies were made so far (a snapshot)."""
        return self.transfer_log.count()

    def device_name(self, device: int) -> str:
        """The fake device's name (numba.cuda reports it as bytes)."""
        return f"NVIDIA Fake GPU {device}"

    def is_available(self) -> bool:
        return True

    # --- bookkeeping used by the arrays ---

    def _valid_device(self, device) -> int:
        device = int(device)
        if not 0 <= device < self.n_devices:
            raise CUDARuntimeError(_ERROR_INVALID_DEVICE, "cudaErrorInvalidDevice",
                                   "invalid device ordinal")
        return device

    def record_synchronization(self, who: str, device: int) -> None:
        """Note that ``who`` ("cupy", "device", "numba") synchronised ``device``."""
        self.synchronizations.append((who, device))

    def _own(self, x):
        """``x``, checked to be an array of this machine."""
        if not isinstance(x, self.ndarray):
            if _is_device_array(x):
                raise TypeError("an array of another FakeCupy machine was used")
            raise TypeError(f"Unsupported type {type(x)}")
        return x

    def _check_device(self, x) -> None:
        """CuPy's _check_peer_access: a kernel on the current device reading ``x``."""
        device = x._alloc.device
        if device == self._current:
            return
        msg = (f"The device where the array resides ({device}) is different from the "
               f"current device ({self._current}).")
        if not self.peer_access:
            raise ValueError(f"{msg} Peer access is unavailable between these devices.")
        warnings.warn(f"{msg} Peer access has been activated automatically.",
                      PerformanceWarning, stacklevel=4)

    def _allocate(self, buffer: np.ndarray) -> _Allocation:
        device = self._current
        size = _round_size(buffer.nbytes)
        if size == 0:
            return _Allocation(buffer, device, 0, 0)
        ptr = self._pools.malloc(device, size)
        alloc = _Allocation(buffer, device, ptr, size)
        weakref.finalize(alloc, self._pools.free, device, ptr, size).atexit = False
        return alloc

    def _new(self, data, keep_layout: bool = False):
        """A new array on the current device holding ``data`` (a NumPy result). Results are
        C-contiguous, as CuPy makes them; ``keep_layout`` keeps a Fortran layout."""
        if isinstance(data, np.generic):
            data = np.asarray(data)
        _check_dtype(data.dtype)
        flags = data.flags
        if keep_layout and flags.f_contiguous and not flags.c_contiguous:
            buffer = np.empty(data.nbytes, np.uint8)
            view = np.ndarray(data.shape, data.dtype, buffer=buffer, order="F")
            view[...] = data
            return self.ndarray._make(view, self._allocate(buffer), None)
        if not (flags.c_contiguous and flags.writeable and flags.owndata):
            data = np.array(data, order="C", copy=True)
        return self.ndarray._make(data, self._allocate(data), None)

    def _view_of(self, data: np.ndarray, source):
        """``data``, a NumPy view into ``source``'s memory, as a device view of it; made
        writeable where NumPy made it read-only (CuPy views always are writeable)."""
        alloc = source._alloc
        with warnings.catch_warnings():   # reading the flag of broadcast_arrays' views warns
            warnings.simplefilter("ignore", FutureWarning)
            writeable = data.flags.writeable
        if not writeable:
            buffer = alloc.buffer
            offset = 0 if data.size == 0 else (data.__array_interface__["data"][0]
                                               - buffer.__array_interface__["data"][0])
            data = np.ndarray(data.shape, data.dtype, buffer=buffer, offset=offset,
                              strides=data.strides if data.size else None)
        base = source._base if source._base is not None else source
        return self.ndarray._make(data, alloc, base)

    def _wrap(self, result, sources: list):
        """A NumPy function's result as device values: arrays sharing memory with a source
        are its views, other arrays and NumPy scalars new arrays (0-d for scalars)."""
        if isinstance(result, np.ndarray):
            for src in sources:
                if result is src._data:
                    return src
            for src in sources:
                if src.size and np.may_share_memory(result, src._alloc.buffer):
                    return self._view_of(result, src)
            return self._new(result)
        if isinstance(result, np.generic):
            return self._new(result)
        if isinstance(result, tuple):
            items = [self._wrap(r, sources) for r in result]
            return type(result)(*items) if hasattr(result, "_fields") else tuple(items)
        if isinstance(result, list):
            return [self._wrap(r, sources) for r in result]
        return result

    def _from_host(self, obj, dtype, order, what: str, ndmin: int = 0):
        """A device copy of host data (a host-to-device transfer)."""
        data = np.array(obj, dtype=None if dtype is None else _check_dtype(dtype),
                        order=order or "K", ndmin=ndmin, copy=True)
        _check_dtype(data.dtype)
        if data.nbytes:
            self.transfer_log.record(H2D, data.nbytes, what)
        return self._new(data, keep_layout=True)

    def _stack_device_sequence(self, obj):
        """CuPy's ``array([a, b])`` of device arrays of one shape: a stack on the device
        (None where ``obj`` is not such a sequence)."""
        if not isinstance(obj, (list, tuple)) or not obj:
            return None
        leaves = obj if all(_is_device_array(x) for x in obj) else None
        if leaves is None or len({x.shape for x in leaves}) != 1:
            return None
        for x in leaves:
            self._check_device(self._own(x))
        return self._new(np.stack([x._data for x in leaves]))

    # --- the namespace: NumPy names, resolved ---

    def __getattr__(self, name: str):
        if name.startswith("_") or name in _NAMESPACE_LACKS:
            raise AttributeError(f"module 'cupy' has no attribute {name!r}")
        target = getattr(np, name, None)
        if target is None:
            raise AttributeError(f"module 'cupy' has no attribute {name!r}")
        if isinstance(target, ModuleType):   # cupy.random, cupy.linalg, cupy.fft, ...
            raise AttributeError(f"FakeCupy does not emulate cupy.{name}")
        if isinstance(target, np.ufunc):
            if target.__name__ in UFUNCS_CUPY_LACKS:
                raise AttributeError(f"module 'cupy' has no attribute {name!r}")
            return self._ufunc(target)
        if name in _BORROWED_FROM_NUMPY:
            return target
        if isinstance(target, type) or not callable(target):
            raise AttributeError(f"FakeCupy does not emulate cupy.{name}")
        if name not in self._functions:
            self._functions[name] = _numpy_function(self, target)
        return self._functions[name]

    def get_default_memory_pool(self) -> MemoryPool:
        """The pool all arrays of this machine come from."""
        return self._default_pool
