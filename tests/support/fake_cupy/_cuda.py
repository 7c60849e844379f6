"""``cupy.cuda``: devices (``Device``), streams (``Stream``), ``runtime`` and the current
device/stream bookkeeping of a machine."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from ._errors import (
    _ERROR_INVALID_DEVICE,
    _ERROR_MEMORY_ALLOCATION,
    CUDARuntimeError,
    OutOfMemoryError,
)
from ._memory import MemoryPointer, MemoryPool

if TYPE_CHECKING:
    from ._machine import FakeCupy


class _DeviceBase:
    """CuPy's ``cupy.cuda.Device``: a context manager making device ``id`` current."""

    _cp: FakeCupy

    def __init__(self, device=None):
        self.id = self._cp._current if device is None else int(device)
        self._previous: list[int] = []

    def use(self) -> None:
        """Make this device current."""
        self._cp.cuda.runtime.setDevice(self.id)

    def __enter__(self):
        runtime = self._cp.cuda.runtime
        self._previous.append(runtime.getDevice())
        if self.id != self._previous[-1]:
            runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc) -> None:
        self._cp.cuda.runtime.setDevice(self._previous.pop())

    def synchronize(self) -> None:
        """Wait for the device's work (recorded as ``("device", id)``)."""
        self._cp.record_synchronization("device", self.id)

    @property
    def compute_capability(self) -> str:
        major, minor = self._cp.compute_capability
        return f"{major}{minor}"

    def __eq__(self, other) -> bool:
        return isinstance(other, _DeviceBase) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class _StreamBase:
    """CuPy's ``cupy.cuda.Stream``: work is synchronous here, so only the bookkeeping
    (current stream per device, ``synchronize`` recorded as ``("cupy", device)``) is kept."""

    _cp: FakeCupy
    null: _StreamBase

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False,
                 priority: int | None = None):
        self.ptr = 0 if null else next(self._cp._stream_ptrs)
        self.device_id = self._cp._current
        self._previous: list[_StreamBase] = []

    def synchronize(self) -> None:
        """Wait for the stream's work."""
        self._cp.record_synchronization("cupy", self._cp._current)

    @property
    def done(self) -> bool:
        return True

    def use(self):
        """Make this stream current on the current device."""
        self._cp._streams[self._cp._current] = self
        return self

    def __enter__(self):
        self._previous.append(self._cp.cuda.get_current_stream())
        return self.use()

    def __exit__(self, *exc) -> None:
        self._previous.pop().use()

    def __repr__(self) -> str:
        return f"<Stream {self.ptr} (device {self.device_id})>"


class _Runtime:
    """``cupy.cuda.runtime``: the device calls compgrad makes."""

    CUDARuntimeError = CUDARuntimeError
    errorInvalidDevice = _ERROR_INVALID_DEVICE
    errorMemoryAllocation = _ERROR_MEMORY_ALLOCATION
    streamLegacy = 1
    streamPerThread = 2

    def __init__(self, cp: FakeCupy):
        self._cp = cp

    def getDevice(self) -> int:  # noqa: N802 - CUDA's name
        return self._cp._current

    def setDevice(self, device: int) -> None:  # noqa: N802 - CUDA's name
        self._cp._current = self._cp._valid_device(device)

    def getDeviceCount(self) -> int:  # noqa: N802 - CUDA's name
        return self._cp.n_devices

    def deviceSynchronize(self) -> None:  # noqa: N802 - CUDA's name
        self._cp.record_synchronization("device", self._cp._current)

    def memGetInfo(self) -> tuple[int, int]:  # noqa: N802 - CUDA's name
        pool = self._cp._pools.devices[self._cp._current]
        return pool.capacity - pool.total, pool.capacity

    def getDeviceProperties(self, device: int) -> dict:  # noqa: N802 - CUDA's name
        device = self._cp._valid_device(device)
        major, minor = self._cp.compute_capability
        return {"name": self._cp.device_name(device).encode(), "major": major,
                "minor": minor, "totalGlobalMem": self._cp._pools.devices[device].capacity}


class _Cuda:
    """``cupy.cuda``: runtime, Device, Stream, current stream, memory errors."""

    def __init__(self, cp: FakeCupy):
        self._cp = cp
        self.runtime = _Runtime(cp)
        self.Device = type("Device", (_DeviceBase,), {"_cp": cp, "__module__": "cupy.cuda"})
        self.Stream = type("Stream", (_StreamBase,), {"_cp": cp, "__module__": "cupy.cuda"})
        self.Stream.null = self.Stream(null=True)
        self.OutOfMemoryError = OutOfMemoryError
        self.MemoryPointer = MemoryPointer
        self.memory = SimpleNamespace(OutOfMemoryError=OutOfMemoryError,
                                      MemoryPointer=MemoryPointer, MemoryPool=MemoryPool)

    def get_current_stream(self, device_id: int | None = None):
        """The current stream of ``device_id`` (default: the current device)."""
        device = self._cp._current if device_id is None else device_id
        return self._cp._streams.get(device, self.Stream.null)

    def get_device_id(self) -> int:
        """The current device."""
        return self._cp._current

    def is_available(self) -> bool:
        return True
