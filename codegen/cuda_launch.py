"""Launching generated CUDA kernels: launch configuration and the arrays they take.

Kernels take device arrays: Numba's (``cuda.device_array``, ``cuda.to_device``)
or any object with ``__cuda_array_interface__`` (a CuPy array on a GPU), seen
through a Numba view without a copy. Under the CUDA simulator they are the
simulator's arrays (or NumPy arrays). Outputs are allocated by an ``alloc(shape,
dtype)`` callable, :func:`default_alloc` (``cuda.device_array``) unless the
caller brings its own (a caching pool).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import config as numba_config
from numba import cuda

from codegen.cuda_source import WARP_SIZE
from ir.graph import Value

__all__ = ["Launch", "KernelSource", "PARTIALS", "LaunchConfig", "DEFAULT_CONFIG",
           "default_alloc", "device_view", "flat_view", "is_c_contiguous", "scalar_arg",
           "launch", "Alloc"]

Alloc = Callable[[tuple, np.dtype], object]


PARTIALS = "part"   # an extra argument that stands for the step's partials buffer


@dataclass
class Launch:
    """One kernel launch of a step: the kernel's role in its module, its arguments (the
    body inputs it reads, the outputs it writes as flat views, then ``extra``: numbers, or
    :data:`PARTIALS` for the partials buffer) and the threads its work needs."""

    role: str
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    threads_needed: int
    extra: tuple = ()
    flat: frozenset = frozenset()   # inputs passed as 1-d views (the flat variant)


@dataclass
class KernelSource:
    """A group's generated kernels: the module source, its kernels' names by role, and the
    launches that run them (``variants``: alternative launch lists, the first whose flat
    inputs are all C-contiguous runs)."""

    source: str
    names: dict[str, str]
    variants: list[list[Launch]]
    outputs: tuple[Value, ...]
    partials: tuple[int, object] | None = None   # (elements, NumPy dtype) of a partials buffer
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchConfig:
    """How kernels are launched and how work is split.

    * ``threads``: threads per block (a multiple of 32, at most 1024);
    * ``max_blocks``: the grid's cap; kernels loop over their work (grid-stride), so a
      smaller grid does the same work with the same results;
    * ``chunk_elements``: a reduction segment longer than this many elements per lane
      is split over several workers (per-chunk partial results, combined by a second
      kernel), at most ``max_chunks`` of them;
    * ``row_chunks``: a rows group with column reductions splits its rows into at most
      this many chunks, each keeping its own column partials;
    * ``warp_row_max``: rows of at most this many elements get a warp each, longer ones
      a block.

    Everything that decides which values are combined in which order depends on the
    shapes and these numbers only, never on the device.
    """

    threads: int = 256
    max_blocks: int = 4096
    chunk_elements: int = 16
    max_chunks: int = 1024
    row_chunks: int = 2048
    warp_row_max: int = 1024

    def __post_init__(self):
        if self.threads % WARP_SIZE or not 0 < self.threads <= 1024:
            raise ValueError(f"threads per block must be a multiple of {WARP_SIZE} up to 1024, "
                             f"got {self.threads}")

    def blocks(self, threads_needed: int) -> int:
        """Blocks for ``threads_needed`` threads of work (at least one, at most the cap)."""
        return max(1, min(math.ceil(threads_needed / self.threads), self.max_blocks))


DEFAULT_CONFIG = LaunchConfig()


def default_alloc(shape: tuple, dtype) -> object:
    """A new C-contiguous device array."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def device_view(x):
    """``x`` as something a kernel takes: a Numba view of an object that only has
    ``__cuda_array_interface__`` (no copy), anything else as it is."""
    if hasattr(x, "__cuda_array_interface__") and not getattr(x, "__cuda_ndarray__", False) \
            and hasattr(cuda, "as_cuda_array"):
        return cuda.as_cuda_array(x)
    return x


def is_c_contiguous(x) -> bool:
    """Whether device (or host) array ``x`` is C-contiguous."""
    flags = getattr(x, "flags", None)
    if flags is not None and not callable(getattr(x, "is_c_contiguous", None)):
        return bool(flags["C_CONTIGUOUS"])
    return bool(x.is_c_contiguous())


def flat_view(x, n: int):
    """A 1-d view of ``n`` elements of the C-contiguous array ``x``."""
    return x if x.ndim == 1 else x.reshape(n)


def scalar_arg(x, np_dtype: np.dtype):
    """A Python scalar input as the NumPy scalar of its IR dtype (float64, int64, bool):
    what a kernel parameter is typed as on the device, and what keeps NumPy's semantics
    (no ZeroDivisionError) when the simulator runs the kernel as Python."""
    if isinstance(x, np.ndarray):
        x = x[()]
    return np_dtype.type(x)


def launch(kernel, blocks: int, threads: int, args: tuple) -> None:
    """Launch ``kernel`` on ``blocks`` x ``threads`` threads (under the simulator, first
    make sure it has warp shuffles: :func:`codegen.cuda_sim.install`, idempotent)."""
    if numba_config.ENABLE_CUDASIM:
        from codegen import cuda_sim
        cuda_sim.install()
    kernel[blocks, threads](*args)
