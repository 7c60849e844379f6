"""Numba CPU kernels for runs of elementwise ops (the loops inside fused groups).

A *phase* is a run of elementwise nodes over one iteration shape ``S``. Its
kernel is generated Python source: one loop nest over ``S`` (``prange`` on the
outermost loop when the work pays for the thread fork), whose body is the
composition of the ops' scalar expressions (:mod:`codegen.scalar`), so every
intermediate value lives in a register and only the values needed after the
phase are stored.

Inputs reach the kernel already broadcast to ``S`` (NumPy views with zero
strides, so nothing is copied) or, when 0-d or Python scalars, as scalars. When
every array is C-contiguous with shape ``S`` the runtime passes them raveled
and the kernel is a single flat loop that LLVM vectorises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from codegen.mathfns import MODULE_ALIAS
from codegen.scalar import NJIT_OPTIONS, literal, np_type, scalar_expr
from codegen.source import njit_kernel
from ir.graph import Node, Value, input_type

__all__ = ["PhaseSource", "phase_source", "PARALLEL_MIN_ELEMENTS"]

# below this many elements a parallel loop costs more (thread fork/join) than it saves
PARALLEL_MIN_ELEMENTS = 1 << 16
# elements per chunk of a full sum (its partial sums are float64 buffers of this size)
REDUCE_CHUNK = 4096


@dataclass(frozen=True)
class PhaseSource:
    """A generated kernel: its module source, the function's name, and its calling
    convention: ``inputs`` (arrays, or scalars for ``scalar_inputs``), then ``outputs``,
    then one float64 accumulator per reduction, then the iteration shape."""

    source: str
    name: str
    inputs: tuple[Value, ...]
    scalar_inputs: frozenset
    outputs: tuple[Value, ...]
    ndim: int
    reductions: tuple = ()


def phase_source(nodes: Sequence[Node], inputs: Sequence[Value], outputs: Sequence[Value],
                 ndim: int, *, scalar_inputs: frozenset = frozenset(), parallel: bool = False,
                 exact_math: bool = False,
                 reductions: Sequence[tuple[Value, tuple[int, ...]]] = ()) -> PhaseSource | None:
    """The kernel computing ``outputs`` from ``inputs`` by the elementwise ``nodes`` over an
    ``ndim``-dimensional iteration space; None when an op has no scalar expression.

    ``scalar_inputs`` are the inputs passed as scalars (weak Python numbers, 0-d
    tensors); the other inputs are arrays of the iteration shape (broadcast views).
    An array input that is a view of a one-element value (``expand`` of a gradient
    seed) holds one value everywhere: the kernel reads it once, before the loop.
    ``reductions`` are sums of phase values over ``dims`` (a reduction prologue fused
    into the loop): each gets a float64 accumulator parameter after the outputs, of
    the iteration shape with the summed dims of size 1, zeroed by the caller. The
    parallel loop runs over a dim no reduction sums (no two threads write one
    accumulator); when every dim is summed the loop is serial, or with ``ndim == 1``
    a ``prange`` over chunks whose partial sums are added in float64.

    Arrays are indexed with ``np.uint64`` indices: Numba adds ``i + n if i < 0`` to a
    signed index (negative indexing), which LLVM cannot remove when the index comes
    from ``prange`` or a chunk's bounds, and which turns every vector load and store
    into a gather or scatter.
    """
    expr_of: dict[Value, str] = {}
    params = []
    hoisted = []
    loads = []
    for i, v in enumerate(inputs):
        name = f"in{i}"
        params.append(name)
        if v in scalar_inputs:
            expr_of[v] = name
        elif _is_uniform(v):
            # (an empty iteration space reads nothing: no element 0 to rely on)
            hoisted.append(f"x{i} = {name}[{', '.join(['0'] * ndim)}] if {name}.size "
                           f"else {np_type(v.type.dtype)}(0)")
            expr_of[v] = f"x{i}"
        else:
            loads.append(f"x{i} = {name}[{_index(ndim)}]")
            expr_of[v] = f"x{i}"
    body = []
    for k, node in enumerate(nodes):
        args = []
        for a in node.inputs:
            if isinstance(a, Value):
                args.append(expr_of[a])
            else:
                args.append(literal(a))
        in_types = [input_type(a) for a in node.inputs]
        out = node.outputs[0]
        expr = scalar_expr(node.op.name, args, in_types, out.type.dtype, node.attrs,
                           exact_math=exact_math)
        if expr is None:
            return None
        body.append(f"v{k} = {expr}")
        expr_of[out] = f"v{k}"
    stores = []
    for j, v in enumerate(outputs):
        params.append(f"out{j}")
        stores.append(f"out{j}[{_index(ndim)}] = {expr_of[v]}")
    summed = set()
    scalar_acc = ndim == 1 and reductions and all(d == (0,) for _, d in reductions)
    for r, (v, dims) in enumerate(reductions):
        params.append(f"red{r}")
        summed.update(dims)
        if scalar_acc:
            stores.append(f"buf{r}[j] = {expr_of[v]}")
        else:
            index = ", ".join("0" if d in dims else f"u{d}" for d in range(ndim))
            stores.append(f"red{r}[{index}] += np.float64({expr_of[v]})")
    unsigned = [f"u{d} = np.uint64(i{d})" for d in range(ndim)]
    inner = unsigned + loads + body + stores
    # loop order: a dim no reduction sums first, so the parallel loop never races
    order = [d for d in range(ndim) if d not in summed] + sorted(summed)
    parallel_dim = order[0] if order and (order[0] not in summed or scalar_acc) else None
    indent = "    "
    lines = [indent + line for line in hoisted]
    if scalar_acc:
        # a full sum: chunks in parallel; each chunk's loop stores the summed values in a
        # small buffer (so that it vectorises: a float sum in the loop would not), which
        # chunk_sum then adds up in float64
        n_red = len(reductions)
        lines += [f"{indent}n = in_shape[0]",
                  f"{indent}chunks = (n + {REDUCE_CHUNK} - 1) // {REDUCE_CHUNK}"]
        lines += [f"{indent}part{r} = np.zeros(max(chunks, 1))" for r in range(n_red)]
        loop = "numba.prange" if parallel else "range"
        lines.append(f"{indent}for c in {loop}(chunks):")
        indent += "    "
        lines += [f"{indent}start = c * {REDUCE_CHUNK}",
                  f"{indent}size = min(n - start, {REDUCE_CHUNK})"]
        lines += [f"{indent}buf{r} = np.empty({REDUCE_CHUNK}, "
                  f"{np_type(v.type.dtype)})" for r, (v, _) in enumerate(reductions)]
        lines.append(f"{indent}for j in range(size):")
        lines.append(f"{indent}    i0 = start + j")
        lines += [indent + "    " + line for line in inner]
        lines += [f"{indent}part{r}[c] = {MODULE_ALIAS}.chunk_sum(buf{r}, size)"
                  for r in range(n_red)]
        lines += [f"    red{r}[0] = part{r}.sum()" for r in range(n_red)]
    else:
        for d in order:
            loop = "numba.prange" if (d == parallel_dim and parallel) else "range"
            lines.append(f"{indent}for i{d} in {loop}(in_shape[{d}]):")
            indent += "    "
        lines += [indent + line for line in inner]
    params.append("in_shape")
    source, name = njit_kernel("phase", params, lines,
                               dict(NJIT_OPTIONS, cache=True, parallel=parallel))
    return PhaseSource(source, name, tuple(inputs), frozenset(scalar_inputs), tuple(outputs),
                       ndim, tuple(reductions))


def _is_uniform(v: Value) -> bool:
    """Whether every element of ``v`` is one value: ``v`` is a view (a chain of views, which
    select elements and never reinterpret them) of a value with a single element, so
    element 0 stands for all of them."""
    node = v.node
    while node is not None and node.op.is_view and node.inputs and isinstance(
            node.inputs[0], Value):
        source = node.inputs[0]
        if source.type.dtype != v.type.dtype:
            return False
        if math.prod(source.type.shape) == 1:
            return True
        node = source.node
    return False


def _index(ndim: int) -> str:
    return ", ".join(f"u{d}" for d in range(ndim))
