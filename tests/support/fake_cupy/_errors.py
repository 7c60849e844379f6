"""The exceptions and warnings CuPy raises that the emulator raises too (same messages)."""

from __future__ import annotations


class PerformanceWarning(RuntimeWarning):
    """CuPy's ``cupy._util.PerformanceWarning`` (peer access enabled automatically)."""


class CUDARuntimeError(RuntimeError):
    """CuPy's ``cupy.cuda.runtime.CUDARuntimeError``: ``status`` and CUDA's message."""

    def __init__(self, status: int, name: str, message: str):
        self.status = status
        super().__init__(f"{name}: {message}")


_ERROR_INVALID_DEVICE = 101
_ERROR_MEMORY_ALLOCATION = 2


class OutOfMemoryError(MemoryError):
    """CuPy's ``cupy.cuda.memory.OutOfMemoryError``, with its message."""

    def __init__(self, size: int, total: int, limit: int = 0):
        if limit == 0:
            msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes)."
        else:
            msg = (f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} "
                   f"bytes, limit set to: {limit:,} bytes).")
        super().__init__(msg)
