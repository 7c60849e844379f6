"""Output buffers reused across the steps of a call and across calls.

A fresh large NumPy array costs its page faults on first touch: writing a new
64 MiB buffer measured 32 ms here against 14 ms into a reused one (glibc maps
every allocation above 32 MiB fresh from the OS and unmaps it when freed). A
:class:`BufferPool` keeps the large buffers a program's kernels wrote and hands
one out again once nothing else references it.

"Nothing else references it" is read from the reference count, which makes reuse
safe by construction: a buffer still held anywhere -- a value the runtime has not
released yet, a view of it (NumPy views keep their base alive), an output or a
``.grad`` the user kept, a value saved for a later backward -- has references
beyond the pool's own and is never handed out. So an output the user holds is never
overwritten by a later call, and the runtime releases values at their last use
(liveness) to let later kernels of the same call reuse their buffers.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

__all__ = ["BufferPool", "POOL_MIN_BYTES"]

# below this a fresh np.empty is cheaper than looking for a free buffer (and small
# arrays come from the allocator's free lists, already touched)
POOL_MIN_BYTES = 1 << 18
# buffers kept per (shape, dtype): more than this many held at once by the user are
# not tracked (a new one is allocated and not remembered)
MAX_PER_KEY = 8


class BufferPool:
    """Free-by-refcount buffers keyed by (shape, dtype). Thread-safe."""

    __slots__ = ("_buffers", "_lock", "allocated", "reused")

    def __init__(self) -> None:
        self._buffers: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.allocated = 0   # buffers made (for tests and explain)
        self.reused = 0      # buffers handed out again

    @staticmethod
    def pooled(shape: tuple, dtype: np.dtype) -> bool:
        """Whether :meth:`empty` keeps buffers of ``shape`` and ``dtype`` (else it is a
        plain ``np.empty``: a caller planning its allocations once may call that)."""
        return math.prod(shape) * np.dtype(dtype).itemsize >= POOL_MIN_BYTES

    def empty(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``: a free pooled one when
        there is one, else a new one (remembered when large)."""
        dtype = np.dtype(dtype)
        if not self.pooled(shape, dtype):
            return np.empty(shape, dtype)
        key = (shape, dtype)
        with self._lock:
            held = self._buffers.get(key)
            if held is None:
                held = self._buffers[key] = []
            for i in range(len(held)):
                # references: the list's, getrefcount's argument
                if sys.getrefcount(held[i]) == 2:
                    self.reused += 1
                    return held[i]
            buf = np.empty(shape, dtype)
            self.allocated += 1
            if len(held) < MAX_PER_KEY:
                held.append(buf)
            return buf

    def exchange(self, buf: np.ndarray, other: np.ndarray) -> bool:
        """Keep ``other`` (same shape and dtype, C-contiguous, owning its memory) in place
        of ``buf``, one of this pool's buffers, which its holder keeps for good: a
        compiled call gives a parameter the kernel's result buffer instead of copying
        the result into the parameter's storage, and the old storage becomes the buffer
        the next call writes into. False (nothing changed) when ``buf`` is not here."""
        if other.shape != buf.shape or other.dtype != buf.dtype \
                or not other.flags.c_contiguous or not other.flags.owndata:
            return False
        with self._lock:
            held = self._buffers.get((buf.shape, buf.dtype))
            for i, b in enumerate(held or ()):
                if b is buf:
                    held[i] = other
                    return True
        return False

    def clear(self) -> None:
        """Forget every buffer (those still held elsewhere stay valid)."""
        with self._lock:
            self._buffers.clear()

    def nbytes(self) -> int:
        """Bytes the pool keeps alive (free or held elsewhere)."""
        return sum(b.nbytes for held in self._buffers.values() for b in held)
