"""Generated CUDA kernel modules, and the source of the reductions inside them.

A kernel module starts with :data:`PRELUDE`: ``cuda`` (the name the CUDA
simulator requires), :mod:`codegen.cuda_numpy` as ``np`` and
:mod:`codegen.cuda_math` as ``_mf`` (the CUDA forms of what scalar expressions
call), and a comment with the fingerprints of those two modules, so that a
change there changes every kernel module's hash and name (Numba's cache of a
kernel does not notice a change in a function it calls from another module).
Kernels are ``@cuda.jit(cache=True)`` functions without signatures (compiled
at their first launch, as :mod:`codegen.cache` requires); their names start
with ``cuda_``, so they never collide with the CPU's ``phase_``/``rows_`` ones.

Reductions across the threads that share a piece of work (a *worker*: one
thread, one warp or one block, :class:`Worker`) are written out here:

* a warp adds (or takes the max/min of) its lanes' values with five
  ``cuda.shfl_down_sync`` steps (offsets 16, 8, 4, 2, 1; lane 0 ends with the
  result), then ``cuda.shfl_sync`` from lane 0 gives every lane the result;
* a block reduces each warp as above, lane 0 of each warp stores its warp's
  result in a shared array of 32, and after ``cuda.syncthreads()`` every thread
  combines the warps' results in warp order (a second barrier keeps the shared
  array from being overwritten by the next reduction before everyone has read it).

The order of every combination is fixed by the worker's size alone, so a
result does not depend on timing, the grid size or the device: no atomics.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codegen import cuda_math, cuda_numpy
from codegen.scalar import const
from ir import dtypes
from ir.dtypes import CATEGORY_FLOAT, DType

__all__ = ["PRELUDE", "cuda_module", "Worker", "THREAD", "WARP", "BLOCK", "identity",
           "combine", "acc_dtype", "numba_type", "indent", "WARP_SIZE", "FULL_MASK"]

WARP_SIZE = 32
FULL_MASK = "0xFFFFFFFF"


@functools.cache
def _fingerprint(module) -> str:
    """A hash of ``module``'s source (cached: a module's file does not change under a
    running process's kernels)."""
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]


def indent(lines: Sequence[str], levels: int = 1) -> list[str]:
    """``lines`` indented ``levels`` levels (four spaces each) deeper."""
    return ["    " * levels + line for line in lines]


PRELUDE = ("import numba\n"
           "from numba import cuda\n\n"
           "import codegen.cuda_math as _mf\n"
           "import codegen.cuda_numpy as np\n")


def cuda_module(prefix: str, kernels: dict[str, tuple[Sequence[str], Sequence[str]]],
                header: str = "") -> tuple[str, dict[str, str]]:
    """(module source, {role: function name}) of ``@cuda.jit(cache=True)`` kernels, one per
    ``role`` with its ``(params, body lines)`` (lines indented one level by the caller).
    Names are ``cuda_<prefix>_<hash>_<role>``, the hash over the whole module."""
    helpers = (f"# CUDA helpers: codegen.cuda_math {_fingerprint(cuda_math)}, "
               f"codegen.cuda_numpy {_fingerprint(cuda_numpy)}\n")
    text = "\n".join(f"{role}({', '.join(p)})\n" + "\n".join(b)
                     for role, (p, b) in kernels.items())
    digest = hashlib.sha256((helpers + header + text).encode()).hexdigest()[:16]
    names = {role: f"cuda_{prefix}_{digest}_{role}" for role in kernels}
    functions = []
    for role, (params, body) in kernels.items():
        functions.append(f"@cuda.jit(cache=True)\ndef {names[role]}({', '.join(params)}):\n"
                         + "\n".join(body) + "\n")
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + helpers + PRELUDE + "\n\n" + "\n\n".join(functions), names


# --- accumulators -----------------------------------------------------------------------------

def numba_type(dtype: DType) -> str:
    """The Numba type's name in generated source: ``numba.float32``."""
    return f"numba.{dtype.np_dtype.name}"


def acc_dtype(op: str, dtype: DType) -> DType | None:
    """The dtype a reduction ``op`` of values of ``dtype`` (already the result's) adds up
    in: float32 in float32 (as PyTorch's CUDA kernels), float64 in float64, integer sums in
    their own type; max/min of narrow integers in int32 (a shuffle moves 32 or 64 bits).
    None: no CUDA form (bool max/min, float16)."""
    if dtype.category == CATEGORY_FLOAT:
        return dtype if dtype in (dtypes.float32, dtypes.float64) else None
    if dtype is dtypes.bool_:
        return None
    if op in ("amax", "amin") and dtype.itemsize < 4:
        return dtypes.int32
    return dtype


def identity(op: str, dtype: DType) -> str:
    """The identity of ``op`` in ``dtype`` (source text)."""
    if op in ("sum", "mean"):
        return const(0, dtype)
    if dtype.category == CATEGORY_FLOAT:
        return const(-math.inf if op == "amax" else math.inf, dtype)
    import numpy as np
    info = np.iinfo(dtype.np_dtype)
    return const(info.min if op == "amax" else info.max, dtype)


def combine(op: str, a: str, b: str) -> str:
    """``a`` and ``b`` combined by ``op``: max and min propagate NaN, as NumPy's."""
    if op in ("sum", "mean"):
        return f"{a} + {b}"
    return f"np.{'maximum' if op == 'amax' else 'minimum'}({a}, {b})"


# --- workers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Worker:
    """The threads sharing one work item: ``size`` 1 (a thread), 32 (a warp) or the block.

    ``setup`` lines define ``worker`` (its index), ``workers`` (how many run at once) and
    ``lane`` (the thread's index in it); ``reduce`` combines a value across the lanes so
    that every lane gets the result."""

    kind: str

    def setup(self) -> list[str]:
        if self.kind == "thread":
            return ["worker = cuda.grid(1)", "workers = cuda.gridsize(1)", "lane = 0"]
        if self.kind == "warp":
            return [f"worker = cuda.grid(1) // {WARP_SIZE}",
                    f"workers = cuda.gridsize(1) // {WARP_SIZE}",
                    f"lane = cuda.threadIdx.x % {WARP_SIZE}"]
        return ["worker = cuda.blockIdx.x", "workers = cuda.gridDim.x",
                "lane = cuda.threadIdx.x", f"wlane = lane % {WARP_SIZE}",
                f"warp = lane // {WARP_SIZE}"]

    def size(self) -> str:
        """The number of lanes (source text)."""
        return {"thread": "1", "warp": str(WARP_SIZE)}.get(self.kind, "cuda.blockDim.x")

    def shared(self, names: Sequence[str], dtypes_: Sequence[DType]) -> list[str]:
        """Declarations of the block's shared arrays (one per reduced value), each on its own
        line (the simulator tells shared arrays apart by their line)."""
        if self.kind != "block":
            return []
        return [f"{n} = cuda.shared.array({WARP_SIZE}, {numba_type(d)})"
                for n, d in zip(names, dtypes_)]

    def reduce(self, ops: Sequence[str], values: Sequence[str],
               shared: Sequence[str]) -> list[str]:
        """Lines combining each of ``values`` (locals, one per op) across the worker's lanes,
        leaving the result in the same local on every lane."""
        if self.kind == "thread" or not values:
            return []
        lines = []
        for op, v in zip(ops, values):
            for offset in (16, 8, 4, 2, 1):
                lines.append(f"{v} = " + combine(
                    op, v, f"cuda.shfl_down_sync({FULL_MASK}, {v}, {offset})"))
        if self.kind == "warp":
            return lines + [f"{v} = cuda.shfl_sync({FULL_MASK}, {v}, 0)" for v in values]
        lines.append("if wlane == 0:")
        lines += [f"    {s}[warp] = {v}" for s, v in zip(shared, values)]
        lines.append("cuda.syncthreads()")
        for v, s in zip(values, shared):
            lines.append(f"{v} = {s}[0]")
        lines.append(f"for sw in range(1, cuda.blockDim.x // {WARP_SIZE}):")
        lines += [f"    {v} = {combine(op, v, f'{s}[sw]')}"
                  for op, v, s in zip(ops, values, shared)]
        lines.append("cuda.syncthreads()")
        return lines


THREAD, WARP, BLOCK = Worker("thread"), Worker("warp"), Worker("block")
