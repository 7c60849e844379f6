"""``compgrad.cuda``: whether a CUDA device is usable from this process."""

from __future__ import annotations

import functools

__all__ = ["is_available", "device_count"]


@functools.lru_cache(maxsize=1)
def _probe() -> int:
    try:
        from numba import cuda
        if not cuda.is_available():
            return 0
        return len(cuda.gpus)
    except Exception:  # noqa: BLE001 - any failure to reach a driver means no GPU
        return 0


def is_available() -> bool:
    """True when a CUDA device and driver are usable (False on CPU-only machines)."""
    return _probe() > 0


def device_count() -> int:
    return _probe()
