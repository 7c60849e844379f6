"""compgrad.allocator: glibc's malloc thresholds are raised at import (opt-out with
COMPGRAD_TUNE_MALLOC=0), so a freed array's memory is reused instead of unmapped."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from compgrad import allocator


def _is_glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (AttributeError, OSError):
        return False
    return sys.platform.startswith("linux")


needs_glibc = pytest.mark.skipif(not _is_glibc(), reason="mallopt/mallinfo2 are glibc's")

# Allocates a 16 MiB array after importing compgrad and prints where glibc put it:
# MiB in mmapped blocks, then MiB in the heap arena.
_PROBE = textwrap.dedent("""
    import ctypes, numpy as np, compgrad, compgrad.allocator as a
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    block = np.ones(4 << 20, np.float32)
    info = libc.mallinfo2()
    print(a.tune_malloc(), info.hblkhd >> 20, info.arena >> 20)
""")


def _probe(env_value: str | None) -> tuple[bool, int, int]:
    env = dict(os.environ)
    env.pop("COMPGRAD_TUNE_MALLOC", None)
    if env_value is not None:
        env["COMPGRAD_TUNE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@needs_glibc
def test_import_keeps_large_arrays_in_the_heap():
    tuned, mapped_mib, arena_mib = _probe(None)
    assert tuned
    # the 16 MiB array came from the heap (kept there when freed), not from its own mmap
    assert mapped_mib < 16 <= arena_mib


@needs_glibc
def test_opt_out_leaves_glibc_defaults():
    tuned, mapped_mib, _ = _probe("0")
    assert not tuned
    assert mapped_mib >= 16   # glibc's default threshold (128 KiB at start) maps it


def test_tune_malloc_is_decided_once_per_process():
    first = allocator.tune_malloc()
    assert allocator.tune_malloc() is first
    assert allocator.MMAP_THRESHOLD <= 32 << 20   # glibc refuses larger mmap thresholds
