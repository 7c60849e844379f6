"""GPU memory statistics of ``compgrad.cuda``: ``memory_allocated`` and the others.

compgrad allocates GPU memory only through CuPy's default memory pool
(``cupy.get_default_memory_pool()``), so the numbers are the pool's, per device:
*allocated* is the bytes in use (``used_bytes()``), *reserved* the bytes the pool holds
from the driver (``total_bytes()``). Without CuPy nothing was allocated: both are 0.

Neither CUDA nor CuPy records a peak, so the peaks are sampled: each time a statistic is
read, and each time the GPU runtime calls :func:`note_allocation` right after it
allocates (its contract: call it after every allocation that may raise the peak). A
peak reached and released between two samples is missed. ``reset_peak_memory_stats``
forgets the peaks, which start again from the current usage.

Without a GPU every statistic is 0 and ``empty_cache`` does nothing, whatever the
device argument, as in PyTorch's CPU build.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["memory_allocated", "max_memory_allocated", "memory_reserved",
           "max_memory_reserved", "reset_peak_memory_stats", "empty_cache", "note_allocation"]


@dataclass
class _Peak:
    allocated: int = 0
    reserved: int = 0


# The highest usage sampled per device index since the last reset: the module's one
# piece of state, a record that reset_peak_memory_stats clears.
_peaks: dict[int, _Peak] = {}


def _gpu_index(device) -> int | None:
    """The device index to report on, None without a GPU (then ``device`` is not even
    parsed, as PyTorch's CPU build returns 0 for any argument)."""
    from compgrad import cuda
    if not cuda.is_available():
        return None
    return cuda._resolve(device)


def _sample(index: int) -> _Peak:
    """Read device ``index``'s pool, raise its peaks to it; returns the current usage."""
    from compgrad import cuda
    cupy = cuda._cupy()
    if cupy is None:
        return _Peak()
    pool = cupy.get_default_memory_pool()
    with cupy.cuda.Device(index):   # the default pool answers for the current device
        now = _Peak(int(pool.used_bytes()), int(pool.total_bytes()))
    peak = _peaks.setdefault(index, _Peak())
    peak.allocated = max(peak.allocated, now.allocated)
    peak.reserved = max(peak.reserved, now.reserved)
    return now


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory in use by tensors on ``device`` (default: the current one)."""
    index = _gpu_index(device)
    return 0 if index is None else _sample(index).allocated


def max_memory_allocated(device=None) -> int:
    """The most bytes in use on ``device`` since the start or the last
    :func:`reset_peak_memory_stats`."""
    index = _gpu_index(device)
    if index is None:
        return 0
    _sample(index)
    return _peaks[index].allocated if index in _peaks else 0


def memory_reserved(device=None) -> int:
    """Bytes of GPU memory the caching allocator holds on ``device``, in use or not."""
    index = _gpu_index(device)
    return 0 if index is None else _sample(index).reserved


def max_memory_reserved(device=None) -> int:
    """The most bytes held by the caching allocator on ``device`` since the start or the
    last :func:`reset_peak_memory_stats`."""
    index = _gpu_index(device)
    if index is None:
        return 0
    _sample(index)
    return _peaks[index].reserved if index in _peaks else 0


def reset_peak_memory_stats(device=None) -> None:
    """Start the peaks of ``device`` again from its current usage (needs a GPU)."""
    from compgrad import cuda
    cuda._device_index(device)   # PyTorch rejects a CPU device before looking for a GPU
    _peaks.pop(cuda._resolve(device), None)


def empty_cache() -> None:
    """Give the memory pool's unused blocks on the current device back to the driver
    (PyTorch's ``empty_cache``); does nothing without a GPU."""
    from compgrad import cuda
    index = _gpu_index(None)
    cupy = cuda._cupy()
    if index is None or cupy is None:
        return
    _sample(index)   # keep the reserved peak the freed blocks made
    with cupy.cuda.Device(index):
        cupy.get_default_memory_pool().free_all_blocks()


def note_allocation(device=None) -> None:
    """Sample ``device``'s usage into the peaks: the GPU runtime's hook, called after it
    allocates, so that a peak between two reads of the statistics is seen. Does nothing
    without a GPU."""
    index = _gpu_index(device)
    if index is not None:
        _sample(index)
