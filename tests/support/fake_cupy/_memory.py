"""Device memory: each device's caching pool (CuPy's SingleDeviceMemoryPool: 512-byte
rounding, best-fit reuse of freed chunks, limits, out-of-memory), the allocations arrays keep
alive, and CuPy's ``MemoryPointer`` and default ``MemoryPool``."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._errors import OutOfMemoryError

if TYPE_CHECKING:
    from ._machine import FakeCupy

_ALLOCATION_UNIT = 512   # cudaMalloc's alignment; CuPy's pool rounds every request up to it
_DEVICE_ADDRESS_BASE = 0x7F00_0000_0000
_DEVICE_ADDRESS_STRIDE = 0x0100_0000_0000


def _round_size(nbytes: int) -> int:
    return -(-nbytes // _ALLOCATION_UNIT) * _ALLOCATION_UNIT


@dataclass
class _DevicePool:
    """One device's caching pool: chunks in use and cached free chunks (ptr, size)."""

    next_ptr: int
    capacity: int
    used: int = 0
    free: dict[int, list[int]] = field(default_factory=dict)   # size -> addresses
    limit: int = 0

    @property
    def free_bytes(self) -> int:
        return sum(size * len(ptrs) for size, ptrs in self.free.items())

    @property
    def total(self) -> int:
        return self.used + self.free_bytes

    def take_cached(self, size: int) -> int | None:
        """The address of the smallest cached chunk that fits (split), or None."""
        fits = [s for s in self.free if s >= size]
        if not fits:
            return None
        best = min(fits)
        ptr = self.free[best].pop()
        if not self.free[best]:
            del self.free[best]
        if best > size:
            self.put_cached(ptr + size, best - size)
        return ptr

    def put_cached(self, ptr: int, size: int) -> None:
        self.free.setdefault(size, []).append(ptr)


class _Pools:
    """The pools of every device of a machine (CuPy's SingleDeviceMemoryPool, each)."""

    def __init__(self, n_devices: int, capacity: int):
        self.devices = [_DevicePool(_DEVICE_ADDRESS_BASE + i * _DEVICE_ADDRESS_STRIDE, capacity)
                        for i in range(n_devices)]

    def malloc(self, device: int, size: int) -> int:
        """A chunk of ``size`` (rounded) bytes: the best-fitting cached chunk (split), else
        new memory; OutOfMemoryError as CuPy raises it."""
        pool = self.devices[device]
        cached = pool.take_cached(size)
        if cached is not None:
            pool.used += size
            return cached
        if pool.limit and pool.total + size > pool.limit:
            raise OutOfMemoryError(size, pool.total, pool.limit)
        if pool.total + size > pool.capacity:
            # CuPy frees the cached blocks, collects garbage and retries before giving up
            self.free_all_blocks(device)
            gc.collect()
            self.free_all_blocks(device)
            if pool.total + size > pool.capacity:
                raise OutOfMemoryError(size, pool.total)
        ptr = pool.next_ptr
        pool.next_ptr += size
        pool.used += size
        return ptr

    def free(self, device: int, ptr: int, size: int) -> None:
        """Return a chunk to its pool's cache (called when its allocation dies)."""
        pool = self.devices[device]
        pool.used -= size
        pool.put_cached(ptr, size)

    def free_all_blocks(self, device: int) -> None:
        """Give the cached chunks back to the driver."""
        self.devices[device].free.clear()


class _Allocation:
    """One pool allocation: the NumPy array holding its bytes, its device, address and
    (rounded) size. Arrays and views keep it alive; its death frees the chunk."""

    __slots__ = ("buffer", "device", "ptr", "size", "__weakref__")

    def __init__(self, buffer: np.ndarray, device: int, ptr: int, size: int):
        self.buffer, self.device, self.ptr, self.size = buffer, device, ptr, size


class _Memory:
    """The ``mem`` of a MemoryPointer: the allocation's address, size and device."""

    def __init__(self, alloc: _Allocation):
        self.ptr, self.size, self.device_id = alloc.ptr, alloc.size, alloc.device


class MemoryPointer:
    """CuPy's ``cupy.cuda.MemoryPointer``: ``ptr`` (an int), ``device_id``, ``device``, ``mem``."""

    def __init__(self, cp: FakeCupy, alloc: _Allocation, offset: int):
        self._cp = cp
        self.mem = _Memory(alloc)
        self.device_id = alloc.device
        self.ptr = alloc.ptr + offset if alloc.ptr else 0

    @property
    def device(self):
        return self._cp.cuda.Device(self.device_id)

    def __int__(self) -> int:
        return self.ptr

    def __repr__(self) -> str:
        return f"<MemoryPointer 0x{self.ptr:x} device={self.device_id}>"


class MemoryPool:
    """CuPy's default ``MemoryPool``: every method answers for the current device."""

    def __init__(self, cp: FakeCupy):
        self._cp = cp

    def _pool(self) -> _DevicePool:
        return self._cp._pools.devices[self._cp._current]

    def used_bytes(self) -> int:
        """Bytes of live allocations (rounded to 512) on the current device."""
        return self._pool().used

    def free_bytes(self) -> int:
        """Bytes cached in the pool, free for reuse."""
        return self._pool().free_bytes

    def total_bytes(self) -> int:
        """Bytes the pool holds from the driver: used plus cached."""
        return self._pool().total

    def n_free_blocks(self) -> int:
        """The number of cached chunks."""
        return sum(len(ptrs) for ptrs in self._pool().free.values())

    def free_all_blocks(self, stream=None) -> None:
        """Give the cached chunks back to the driver."""
        self._cp._pools.free_all_blocks(self._cp._current)

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        """Cap the bytes this device's pool may hold (0: no cap)."""
        pool = self._pool()
        if size is not None and fraction is not None:
            raise ValueError("size and fraction cannot be specified at one time")
        if fraction is not None:
            if not 0 <= fraction <= 1:
                raise ValueError(f"memory limit fraction out of range: {fraction}")
            size = int(fraction * pool.capacity)
        if size is not None and size < 0:
            raise ValueError(f"memory limit size out of range: {size}")
        pool.limit = int(size or 0)

    def get_limit(self) -> int:
        """The cap set by :meth:`set_limit` (0: none)."""
        return self._pool().limit
