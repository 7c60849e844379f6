"""``compgrad.cuda``: PyTorch's ``torch.cuda`` API over Numba-CUDA and CuPy.

The GPU comes from the ``cuda`` extra (``pip install compgrad[cuda]`` for CUDA 12,
``compgrad[cuda13]`` for CUDA 13): numba-cuda finds the devices and runs generated
kernels, CuPy holds eager arrays and the memory pool. Without the extra, a driver or
a GPU, each function behaves as in PyTorch's CPU-only build:

* ``is_available()`` and ``is_initialized()`` are False, ``device_count()`` and the
  memory statistics 0; the seeding functions and ``empty_cache`` do nothing;
* the rest raise :class:`CudaUnavailableError`, both an ``AssertionError`` (PyTorch's
  CPU build) and a ``RuntimeError`` (its CUDA build without a driver); also where the
  CPU build fails by accident (``AttributeError`` from ``set_device`` and
  ``reset_peak_memory_stats``, ``TypeError`` from ``device('cuda')``).

Device arguments are None (the current device), an int, ``"cuda"``, ``"cuda:1"`` or a
``compgrad.device``; a CPU device raises ``ValueError``.
"""

from __future__ import annotations

import functools
import importlib
import secrets
from types import ModuleType

from compgrad.cuda_memory import (
    empty_cache,
    max_memory_allocated,
    max_memory_reserved,
    memory_allocated,
    memory_reserved,
    note_allocation,
    reset_peak_memory_stats,
)
from ir.types import Device

__all__ = ["CudaUnavailableError", "is_available", "device_count", "is_initialized",
           "current_device", "set_device", "device", "synchronize", "get_device_name",
           "get_device_capability", "manual_seed", "manual_seed_all", "seed", "seed_all",
           "initial_seed", "memory_allocated", "max_memory_allocated", "memory_reserved",
           "max_memory_reserved", "reset_peak_memory_stats", "empty_cache", "note_allocation"]

_INSTALL_HINT = ("compgrad needs an NVIDIA GPU with its driver and the CUDA extra: "
                 "pip install compgrad[cuda] (CUDA 12) or compgrad[cuda13] (CUDA 13)")


class CudaUnavailableError(AssertionError, RuntimeError):
    """No usable CUDA device: caught by ``except AssertionError`` as PyTorch's CPU build
    raises, and by ``except RuntimeError`` as its CUDA build raises without a driver."""


# --- finding the GPU -----------------------------------------------------------------------

def _numba_cuda() -> ModuleType:
    """``numba.cuda`` (numba-cuda's when installed); one place for tests to substitute."""
    from numba import cuda
    return cuda


@functools.cache
def _cupy() -> ModuleType | None:
    """CuPy, or None when it is not installed (cached: the import is tried once)."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # noqa: BLE001 - a broken CuPy install is no CuPy
        return None


@functools.cache
def _probe() -> tuple[int, str]:
    """(number of GPUs, why there are none): asked once, as the answer cannot change."""
    try:
        cuda = _numba_cuda()
    except Exception as exc:  # noqa: BLE001 - any import failure means no GPU
        return 0, f"numba.cuda cannot be imported ({exc})"
    try:
        if not cuda.is_available():
            return 0, "no CUDA driver was found (numba.cuda.is_available() is False)"
        count = len(cuda.gpus)
    except Exception as exc:  # noqa: BLE001 - any failure to reach a driver means no GPU
        return 0, f"the CUDA driver failed ({exc})"
    return count, "" if count else "the CUDA driver reports no devices"


def is_available() -> bool:
    """True when a CUDA device and driver are usable (False on CPU-only machines)."""
    return _probe()[0] > 0


def device_count() -> int:
    """The number of usable CUDA devices (0 without a GPU)."""
    return _probe()[0]


# Set once the first function that uses a device has found one, as torch's lazy init;
# a process-wide fact, never reset.
_initialized = False


def _lazy_init() -> None:
    """Raise :class:`CudaUnavailableError`, saying why, where there is no GPU."""
    global _initialized
    count, why = _probe()
    if count == 0:
        raise CudaUnavailableError(f"compgrad found no CUDA device: {why}. {_INSTALL_HINT}.")
    _initialized = True


def is_initialized() -> bool:
    """True once this process has used a CUDA device through ``compgrad.cuda``."""
    return _initialized


# --- device arguments ---------------------------------------------------------------------------

def _device_index(dev, optional: bool = True) -> int | None:
    """The index named by ``dev``; None for "the current device" (``None`` or ``"cuda"``)
    where ``optional``. Negative ints pass through (PyTorch's "no device")."""
    if isinstance(dev, int) and not isinstance(dev, bool):
        return dev
    if isinstance(dev, str):
        dev = Device(dev)
    if isinstance(dev, Device):
        if dev.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {dev}")
        if dev.index is not None or optional:
            return dev.index
    elif dev is None and optional:
        return None
    raise ValueError("Expected a compgrad.device with a specified index or an integer, "
                     f"but got: {dev}")


def _resolve(dev) -> int:
    """The device index for ``dev``, checked against the devices there are. Needs a GPU,
    asked before ``dev`` is parsed: PyTorch's order (``synchronize('cpu')`` raises the
    no-GPU error on a CPU-only machine, ValueError on one with a GPU)."""
    _lazy_init()
    index = _device_index(dev)
    if index is None or index < 0:
        return current_device()
    if index >= device_count():
        raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
    return index


# --- device selection and synchronisation ------------------------------------------------------

def current_device() -> int:
    """The index of the current CUDA device."""
    _lazy_init()
    cupy = _cupy()
    if cupy is not None:
        return int(cupy.cuda.runtime.getDevice())
    return int(_numba_cuda().get_current_device().id)


def set_device(device) -> None:  # noqa: A002 - PyTorch's name
    """Make ``device`` current; a negative index does nothing, as in PyTorch."""
    index = _device_index(device, optional=False)
    if index < 0:
        return
    index = _resolve(index)
    cupy = _cupy()
    if cupy is not None:
        # cudaSetDevice makes the device's primary context current, which Numba adopts too
        cupy.cuda.runtime.setDevice(index)
    else:
        _numba_cuda().select_device(index)


class device:  # noqa: N801 - PyTorch's name
    """Context manager that makes ``device`` current and restores the previous one on
    exit; ``None`` or a negative index does nothing (as PyTorch documents)."""

    def __init__(self, device):  # noqa: A002 - PyTorch's name
        self.idx = -1 if device is None else _device_index(device)
        self.prev_idx = -1

    def __enter__(self) -> device:
        if self.idx is not None and self.idx < 0:
            return self
        self.prev_idx = current_device()
        self.idx = _resolve(self.idx)
        if self.idx != self.prev_idx:
            set_device(self.idx)
        return self

    def __exit__(self, *exc) -> None:
        if self.prev_idx >= 0 and self.prev_idx != self.idx:
            set_device(self.prev_idx)


# the functions below take a parameter named ``device``, as PyTorch's do
_device_guard = device


def synchronize(device=None) -> None:  # noqa: A002 - PyTorch's name
    """Wait for all work queued on ``device`` (default: the current one) to finish."""
    with _device_guard(_resolve(device)):
        # the context-wide synchronise covers CuPy's streams too (one primary context);
        # CuPy's current stream is synchronised as well in case it lives elsewhere
        _numba_cuda().synchronize()
        cupy = _cupy()
        if cupy is not None:
            cupy.cuda.get_current_stream().synchronize()


def get_device_name(device=None) -> str:  # noqa: A002 - PyTorch's name
    """The name of ``device``, e.g. ``'NVIDIA H100 80GB HBM3'``."""
    name = _numba_cuda().gpus[_resolve(device)].name
    return name.decode() if isinstance(name, bytes) else str(name)


def get_device_capability(device=None) -> tuple[int, int]:  # noqa: A002 - PyTorch's name
    """The compute capability of ``device`` as ``(major, minor)``."""
    major, minor = _numba_cuda().gpus[_resolve(device)].compute_capability
    return int(major), int(minor)


# --- random number generators -----------------------------------------------------------------

@functools.cache
def _generators() -> tuple:
    """One ``compgrad.Generator`` per CUDA device (none without a GPU); a cache, as the
    devices cannot change in a process. Reached as ``compgrad.cuda.default_generators``."""
    from compgrad.random import Generator
    return tuple(Generator(f"cuda:{i}") for i in range(device_count()))


def __getattr__(name: str):
    if name == "default_generators":
        return _generators()
    raise AttributeError(f"module 'compgrad.cuda' has no attribute '{name}'")


def manual_seed(seed) -> None:
    """Seed the current device's generator (does nothing without a GPU, as in PyTorch)."""
    seed = int(seed)
    if is_available():
        _generators()[current_device()].manual_seed(seed)


def manual_seed_all(seed) -> None:
    """Seed every device's generator (does nothing without a GPU, as in PyTorch)."""
    seed = int(seed)
    for gen in _generators():
        gen.manual_seed(seed)


def seed() -> None:
    """Seed the current device's generator from a non-deterministic source."""
    if is_available():
        _generators()[current_device()].seed()


def seed_all() -> None:
    """Seed every device's generator with one non-deterministic seed."""
    manual_seed_all(secrets.randbits(63))


def initial_seed() -> int:
    """The seed of the current device's generator (raises without a GPU, as in PyTorch)."""
    return _generators()[current_device()].initial_seed()
