"""Warp shuffles for Numba's CUDA simulator, so generated kernels run there unchanged.

Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) runs each thread of a block as
a Python thread, and implements ``cuda.syncthreads`` and shared memory, but
not the warp shuffles (``cuda.shfl_down_sync``, ``cuda.shfl_sync``) that the
generated reductions use (numba 0.68.1: ``FakeCUDAModule`` has no such
attribute). :func:`install` adds them to the simulator's in-kernel ``cuda``
module: each lane of a warp puts its value in a slot of the warp, waits at a
barrier of the warp's lanes, reads its source lane's slot, and waits again
(so a slot is not overwritten before every lane has read it).

A shuffle is thus a rendezvous of the warp's lanes, as on a GPU with a full
mask: every lane of the warp must reach it (the generated kernels keep their
shuffles in warp-uniform code). A lane that never arrives breaks the barrier
after ``TIMEOUT_S`` instead of hanging the process.

Only the simulator is touched, and only its in-kernel module class (what a
kernel's ``cuda`` is while it runs): a process running real GPU kernels is
unaffected. :func:`install` is idempotent.
"""

from __future__ import annotations

import threading
import weakref

__all__ = ["install", "TIMEOUT_S"]

TIMEOUT_S = 60.0
_WARP = 32

_lock = threading.Lock()
# per running block (the simulator's BlockManager), its warps' exchange state: a cache
# that lives as long as the block does
_blocks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Warp:
    """The slots and barrier of one warp of a running simulated block."""

    __slots__ = ("slots", "barrier", "size")

    def __init__(self, size: int):
        self.size = size
        self.slots: list = [None] * size
        self.barrier = threading.Barrier(size, timeout=TIMEOUT_S)


def _warp_of(thread) -> tuple[_Warp, int]:
    manager = thread._manager
    n = 1
    for d in manager._block_dim:
        n *= d
    tid = thread.thread_id
    warp, lane = divmod(tid, _WARP)
    with _lock:
        warps = _blocks.setdefault(manager, {})
        state = warps.get(warp)
        if state is None:
            state = warps[warp] = _Warp(min(_WARP, n - warp * _WARP))
    return state, lane


def _exchange(value, source_lane):
    """The value of lane ``source_lane(lane)`` of the calling thread's warp."""
    warp, lane = _warp_of(threading.current_thread())
    warp.slots[lane] = value
    warp.barrier.wait()
    src = source_lane(lane)
    result = warp.slots[src] if 0 <= src < warp.size else value
    warp.barrier.wait()
    return result


def _shfl_down_sync(self, mask, value, delta):
    """``cuda.shfl_down_sync``: the value of lane ``lane + delta`` (own value past the
    warp's end)."""
    return _exchange(value, lambda lane: lane + delta if lane + delta < _WARP else lane)


def _shfl_sync(self, mask, value, src_lane):
    """``cuda.shfl_sync``: the value of lane ``src_lane``."""
    return _exchange(value, lambda lane: src_lane % _WARP)


def install() -> None:
    """Give the simulator's in-kernel ``cuda`` module ``shfl_down_sync`` and ``shfl_sync``
    (when the simulator lacks them)."""
    from numba.cuda.simulator import kernelapi
    cls = kernelapi.FakeCUDAModule
    if not hasattr(cls, "shfl_down_sync"):
        cls.shfl_down_sync = _shfl_down_sync
    if not hasattr(cls, "shfl_sync"):
        cls.shfl_sync = _shfl_sync
