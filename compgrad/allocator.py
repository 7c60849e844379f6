"""Keeping freed array memory for reuse: glibc's malloc settings for compgrad.

A training step frees and re-allocates the same megabyte-sized NumPy arrays
(activations, gradients, optimizer temporaries) every step. With glibc's
defaults those blocks go back to the kernel when freed (the heap top is
trimmed past ``M_TRIM_THRESHOLD``, blocks above ``M_MMAP_THRESHOLD`` are
unmapped), so each step pays page faults for memory it had a moment ago:
about 0.25 ms per MiB on these machines. Raising both thresholds keeps that
memory in the heap for the next step, as a caching allocator would:

    W1 (MLP 784-512-512-10, SGD momentum) eager, batch 32: 6.5 -> 4.6 ms a step
    (``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=134217728`` against
    the defaults, same machine, same run); batch 256 unchanged.

Arrays above 32 MiB (glibc's largest mmap threshold) are still mapped and
returned on free, so large buffers do not stay resident; the heap keeps at
most 128 MiB free at its top. The settings are process-wide, like an
``LD_PRELOAD`` of jemalloc; ``COMPGRAD_TUNE_MALLOC=0`` leaves malloc alone.
Other C libraries (musl, macOS, Windows) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from compgrad import config

__all__ = ["tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20   # glibc's maximum (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 128 << 20

_applied: list[bool] = []   # the outcome of the first call (the settings are process-wide)


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018 - present only in glibc
    except AttributeError:
        return None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
    return mallopt


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are set.

    False where ``COMPGRAD_TUNE_MALLOC=0`` or the C library is not glibc."""
    if _applied:
        return _applied[0]
    ok = False
    if config.tune_malloc():
        mallopt = _glibc_mallopt()
        if mallopt is not None:
            # mmap first: setting either turns off glibc's dynamic threshold, and a fixed
            # 128 KiB mmap threshold would map (and fault) every array
            ok = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                  and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    _applied.append(ok)
    return ok
