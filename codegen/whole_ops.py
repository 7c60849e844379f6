"""Each node of a whole-program function, written as source inside it.

:func:`lower_node` writes a plain node (one the step runner runs on its reference
implementation) and :func:`lower_product` a matrix product (one the step runner runs
through :mod:`codegen.products`). Each gives the same values as the step runner:

* views (permute, reshape, view, expand) are Numba views, or a copy where Numba
  cannot make the view (a reshape of a non-contiguous array): values, not aliasing,
  are what the function must reproduce; ``clone`` is a copy;
* an elementwise node is a one-node phase kernel (:func:`codegen.cpu.phase_source`,
  loaded through the kernel cache): the scalar expressions every fused kernel uses,
  which agree with the NumPy reference exactly for arithmetic, to a few ulp for
  transcendentals;
* ``sum`` and ``mean`` add in NumPy's order (:func:`numpy_add_order`), so they give
  NumPy's float32 results bit for bit; ``amax``/``amin`` keep NumPy's NaN rule;
* a creation node without tensor inputs (``index_constant``, ``arange``, ``full``)
  is computed once on the host and passed in as a constant;
* ``nll_target`` checks the targets; an invalid one raises inside the function, and
  the caller then runs the step runner, which raises PyTorch's error;
* a product is ``np.dot`` (Numba calls scipy's OpenBLAS; on these machines its results
  equal numpy's bit for bit), swapped as :mod:`codegen.products` swaps it, then the
  scale and the added input in the reference's order and dtype.

Anything else raises :class:`~codegen.whole_emit.NotLowerable` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from codegen.cpu import phase_source
from codegen.products import ProductKernel
from codegen.scalar import literal
from codegen.whole_emit import (
    INNER_DECORATOR,
    Emitter,
    NotLowerable,
    Sym,
    dtype_name,
    index,
    shape_arg,
)
from ir.graph import Node, Value
from ir.opdef import OpKind
from ir.ops.linalg import is_transposed_matrix
from ir.types import normalize_dims

__all__ = ["lower_node", "lower_product", "numpy_add_order", "broadcast"]

_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))

# NumPy's pairwise summation of one block of at most 128 elements
# (numpy/_core/src/umath/loops_utils.h.src, PW_BLOCKSIZE): what ``np.add.reduce`` runs
# along a reduced axis that is innermost in memory, in the array's own dtype. Longer
# runs are split as NumPy splits them, in the generated code (_pairwise_expr): a
# recursive helper costs Numba a second of compile time.
PAIRWISE_BLOCK = f'''{INNER_DECORATOR}
def _pairwise_block(a, lo, n, zero):
    if n < 8:
        res = zero
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res
'''
_PAIRWISE_BLOCKSIZE = 128


def _pairwise_expr(buf: str, lo: int, n: int, zero: str) -> str:
    """NumPy's pairwise sum of ``buf[lo:lo + n]``: halves (rounded down to a multiple of
    8) added recursively, blocks of at most 128 summed by ``_pairwise_block``."""
    if n <= _PAIRWISE_BLOCKSIZE:
        return f"_pairwise_block({buf}, {lo}, {n}, {zero})"
    half = n // 2
    half -= half % 8
    left = _pairwise_expr(buf, lo, half, zero)
    return f"({left} + {_pairwise_expr(buf, lo + half, n - half, zero)})"


def broadcast(sym: Sym, shape: tuple) -> str:
    """Source text of ``sym`` as an array of ``shape`` (a broadcast view where needed)."""
    if not sym.is_array:
        raise NotLowerable(f"scalar {sym.expr} where an array of shape {shape} is needed")
    if sym.shape == tuple(shape):
        return sym.expr
    return f"np.broadcast_to({sym.expr}, {shape_arg(shape)})"


# --- views and copies ------------------------------------------------------------------------

def _permute(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    x = _array(ins[0], node)
    dims = tuple(d % len(x.shape) for d in node.attrs["dims"]) if x.shape else ()
    if dims == tuple(range(len(dims))):
        return [x]
    var = em.name("t")
    if len(dims) == 2:
        em.line(f"{var} = {x.expr}.T")
        layout = {"C": "F", "F": "C"}.get(x.layout, "A")
    else:
        em.line(f"{var} = np.transpose({x.expr}, {dims!r})")
        layout = "A"
    return [x.view(var, node.outputs[0].type.shape, layout)]


def _reshape(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    x, shape = _array(ins[0], node), tuple(node.outputs[0].type.shape)
    if x.shape == shape:
        return [x]
    var = em.name("r")
    # Numba reshapes only C-contiguous arrays; another one is copied first (the values
    # are the reference's; only aliasing, invisible inside the program, differs)
    em.line(f"{var} = {x.contiguous()}.reshape({shape!r})")
    return [x.view(var, shape, "C")]


def _expand(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    x, shape = _array(ins[0], node), tuple(node.outputs[0].type.shape)
    if x.shape == shape:
        return [x]
    var = em.name("b")
    em.line(f"{var} = {broadcast(x, shape)}")
    return [x.view(var, shape, "A")]


def _clone(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    x = _array(ins[0], node)
    var = em.name("c")
    em.line(f"{var} = {x.expr}.copy()")   # Numba's copy is C-contiguous, as clone's
    return [Sym(var, x.shape, x.dtype)]


# --- reductions ---------------------------------------------------------------------------------

def numpy_add_order(shape: Sequence[int], strides: Sequence[int],
                    dims: set[int]) -> list[list[int]]:
    """The loops NumPy's iterator runs for ``np.add.reduce`` of an array with these
    ``shape`` and ``strides`` over ``dims``: groups of axes, innermost group first, each
    group's axes innermost first. Axes of size 1 are dropped; the others are ordered by
    stride (a stable insertion sort from C order, as ``npyiter_find_best_axis_ordering``
    does); adjacent axes of one kind (reduced or kept) whose strides chain are coalesced
    into one loop. The inner group is one ``pairwise_sum`` per run when reduced, else an
    elementwise add into the result (checked against NumPy on random shapes, axes and
    layouts in tests/codegen/test_whole_program.py)."""
    perm = [a for a in reversed(range(len(shape))) if shape[a] != 1]   # innermost first
    for i0 in range(1, len(perm)):
        pos, j0 = i0, perm[i0]
        for i1 in range(i0 - 1, -1, -1):
            s0, s1 = strides[j0], strides[perm[i1]]
            if s0 != 0 and s1 != 0:
                if abs(s1) <= abs(s0):
                    break
                pos = i1
        perm.insert(pos, perm.pop(i0))
    groups: list[list[int]] = []
    for a in perm:
        if groups:
            inner = groups[-1][-1]
            if (a in dims) == (inner in dims) and strides[inner] * shape[inner] == strides[a]:
                groups[-1].append(a)
                continue
        groups.append([a])
    return groups


def _reduction_input(node: Node, ins: list[Sym], samples: list) -> tuple[Sym, np.ndarray, tuple]:
    """The reduced array, the step runner's array for it (its strides decide NumPy's
    order), and the normalised dims; refuses what the loops below do not cover."""
    x = _array(ins[0], node)
    sample = samples[0]
    out = node.outputs[0].type
    if x.dtype not in _FLOATS or out.dtype.np_dtype != x.dtype:
        raise NotLowerable(f"{node.op.name} of {x.dtype} into {out.dtype.name}")
    if node.attrs.get("dtype") is not None:
        raise NotLowerable(f"{node.op.name} with a dtype argument")
    if not x.shape or 0 in x.shape:
        raise NotLowerable(f"{node.op.name} of a 0-d or empty array")
    if any(s == 0 and n > 1 for s, n in zip(sample.strides, sample.shape)):
        raise NotLowerable(f"{node.op.name} of a broadcast view (NumPy's order is not modelled)")
    return x, sample, normalize_dims(node.attrs.get("dim"), len(x.shape))


def _sum(em: Emitter, node: Node, ins: list[Sym], samples: list, mean: bool = False) -> list[Sym]:
    x, sample, dims = _reduction_input(node, ins, samples)
    shape, nd = x.shape, len(x.shape)
    dt = dtype_name(x.dtype)
    strides = [s // sample.itemsize for s in sample.strides]
    groups = numpy_add_order(shape, strides, set(dims))
    acc = em.name("acc")
    var = {a: f"{acc}_{a}" for a in range(nd)}
    keep = tuple(1 if d in dims else shape[d] for d in range(nd))
    x_at = f"{x.expr}[{index([var[a] if shape[a] != 1 else '0' for a in range(nd)])}]"
    acc_at = f"{acc}[{index(['0' if keep[a] == 1 else var[a] for a in range(nd)])}]"
    # NumPy starts an add reduction from its identity, 0, in the result's dtype
    em.line(f"{acc} = np.zeros({shape_arg(keep)}, {dt})")
    if not groups:   # a single element
        em.line(f"{acc}[{index(['0'] * nd)}] += {x.expr}[{index(['0'] * nd)}]")
    else:
        inner, outer = groups[0], groups[1:]
        outer_axes = [a for g in reversed(outer) for a in reversed(g)]
        inner_axes = list(reversed(inner))
        if inner[0] in dims:
            run = math.prod(shape[a] for a in inner)
            part, buf, k = f"{acc}_s", f"{acc}_buf", f"{acc}_k"
            zero = f"{dt}(-0.0)"
            if run >= 8:
                em.function("_pairwise_block", PAIRWISE_BLOCK)
                em.line(f"{buf} = np.empty({shape_arg((run,))}, {dt})")
            with em.loops([var[a] for a in outer_axes], [shape[a] for a in outer_axes]):
                if run < 8:   # NumPy's pairwise sum of a short run: in order, from -0.0
                    em.line(f"{part} = {zero}")
                    with em.loops([var[a] for a in inner_axes], [shape[a] for a in inner_axes]):
                        em.line(f"{part} += {x_at}")
                else:   # the run gathered (in memory order), then summed pairwise
                    em.line(f"{k} = 0")
                    with em.loops([var[a] for a in inner_axes], [shape[a] for a in inner_axes]):
                        em.line(f"{buf}[{k}] = {x_at}")
                        em.line(f"{k} += 1")
                    em.line(f"{part} = {_pairwise_expr(buf, 0, run, zero)}")
                em.line(f"{acc_at} = {acc_at} + {part}")
        else:
            axes = outer_axes + inner_axes
            with em.loops([var[a] for a in axes], [shape[a] for a in axes]):
                em.line(f"{acc_at} = {acc_at} + {x_at}")
    if mean:
        # np.mean divides the sum by the count, an np.intp: in float64, then rounded
        count = math.prod(shape[d] for d in dims)
        em.line(f"{acc} = ({acc} / np.float64({count})).astype({dt})")
    return [_reshaped(em, acc, keep, node.outputs[0].type.shape, x.dtype)]


def _mean(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    return _sum(em, node, ins, samples, mean=True)


def _extreme(em: Emitter, node: Node, ins: list[Sym], samples: list, op: str) -> list[Sym]:
    """amax/amin: NaN wins (NumPy's and PyTorch's rule); the first of equal values is
    kept (so the sign of a zero maximum may differ from NumPy's vector loop)."""
    x, _, dims = _reduction_input(node, ins, samples)
    shape, nd = x.shape, len(x.shape)
    dt = dtype_name(x.dtype)
    acc = em.name("ext")
    var = [f"{acc}_{a}" for a in range(nd)]
    keep = tuple(1 if d in dims else shape[d] for d in range(nd))
    acc_at = f"{acc}[{index(['0' if keep[a] == 1 else var[a] for a in range(nd)])}]"
    start = "-np.inf" if op == ">" else "np.inf"
    em.line(f"{acc} = np.full({shape_arg(keep)}, {start}, {dt})")
    with em.loops(var, shape):
        em.line(f"{acc}_v = {x.expr}[{index(var)}]")
        with em.block(f"if {acc}_v {op} {acc_at} or {acc}_v != {acc}_v:"):
            em.line(f"{acc_at} = {acc}_v")
    return [_reshaped(em, acc, keep, node.outputs[0].type.shape, x.dtype)]


def _amax(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    return _extreme(em, node, ins, samples, ">")


def _amin(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    return _extreme(em, node, ins, samples, "<")


def _reshaped(em: Emitter, var: str, shape: tuple, target: tuple, dtype: np.dtype) -> Sym:
    target = tuple(target)
    if shape == target:
        return Sym(var, target, np.dtype(dtype))
    out = em.name("r")
    em.line(f"{out} = {var}.reshape({target!r})")
    return Sym(out, target, np.dtype(dtype))


# --- indexing -------------------------------------------------------------------------------------

def _nll_target(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    x = _array(ins[0], node)
    if x.dtype.kind not in "iu":
        raise NotLowerable(f"nll_target of {x.dtype}")
    n, ignore = int(node.attrs["num_classes"]), int(node.attrs["ignore_index"])
    out = em.name("tgt")
    var = [f"{out}_{a}" for a in range(len(x.shape))]
    em.line(f"{out} = np.empty({shape_arg(x.shape)}, np.int64)")
    with em.loops(var, x.shape):
        at = index(var)
        em.line(f"{out}_v = np.int64({x.expr}[{at}])")
        with em.block(f"if {out}_v == {ignore}:"):
            em.line(f"{out}[{at}] = 0")
        with em.block(f"elif {out}_v < 0 or {out}_v >= {n}:"):
            # the caller reruns the step runner, which raises PyTorch's IndexError
            em.line('raise IndexError("nll_target: a target is out of bounds")')
        with em.block("else:"):
            em.line(f"{out}[{at}] = {out}_v")
    return [Sym(out, x.shape, np.dtype(np.int64))]


# --- elementwise and creation ---------------------------------------------------------------------

def _elementwise(em: Emitter, node: Node, ins: list[Sym], samples: list) -> list[Sym]:
    out = node.outputs[0]
    shape = tuple(out.type.shape) or (1,)
    values: list[Value] = []
    sym_of: dict[Value, Sym] = {}
    for a, s in zip(node.inputs, ins):
        if isinstance(a, Value) and a not in sym_of:
            values.append(a)
            sym_of[a] = s
    scalars = frozenset(v for v in values if v.type.weak or v.type.ndim == 0)
    src = phase_source([node], values, [out], len(shape), scalar_inputs=scalars)
    if src is None:
        raise NotLowerable(f"{node.op.name} on {[v.type for v in values]}: no scalar expression")
    kernel = em.new_kernel(src.source, src.name)
    args = [sym_of[v].scalar() if v in scalars else broadcast(sym_of[v], shape) for v in values]
    var = em.name("e")
    dtype = out.type.dtype.np_dtype
    em.line(f"{var} = np.empty({shape_arg(shape)}, {dtype_name(dtype)})")
    em.line(f"{kernel}({', '.join(args + [var])}, {shape_arg(shape)})")
    return [_reshaped(em, var, shape, out.type.shape, dtype)]


def _constant(em: Emitter, node: Node, outs: list) -> list[Sym]:
    return [em.constant(np.asarray(x), o.type.dtype.np_dtype) for o, x in zip(node.outputs, outs)]


_BY_NAME: dict[str, Callable] = {
    "permute": _permute, "reshape": _reshape, "view": _reshape, "expand": _expand,
    "clone": _clone, "sum": _sum, "mean": _mean, "amax": _amax, "amin": _amin,
    "nll_target": _nll_target,
}


def lower_node(em: Emitter, node: Node, ins: list[Sym], samples: list, outs: list) -> list[Sym]:
    """Write ``node`` (its inputs ``ins``; ``samples`` and ``outs``: the step runner's values
    of its inputs and outputs on sample data) into ``em``; its outputs' symbols."""
    rule = _BY_NAME.get(node.op.name)
    if rule is not None:
        return rule(em, node, ins, samples)
    kind = node.op.kind
    if kind is OpKind.ELEMENTWISE and len(node.outputs) == 1:
        return _elementwise(em, node, ins, samples)
    if kind is OpKind.CREATION and not any(isinstance(a, Value) for a in node.inputs):
        return _constant(em, node, outs)
    raise NotLowerable(f"{node.op.name} ({kind.value}) has no whole-program lowering")


# --- products -------------------------------------------------------------------------------------

def lower_product(em: Emitter, node: Node, kernel: ProductKernel, ins: list[Sym],
                  samples: list) -> list[Sym]:
    """A product the step runner runs with ``kernel``: ``np.dot``, then ``alpha`` and the
    added input as :func:`codegen.products._scale_and_add` applies them."""
    c, a, b = ins if kernel.scaled else (None, *ins)
    if len(kernel.shape) != 2 or not a.is_array or not b.is_array \
            or len(a.shape) != 2 or len(b.shape) != 2:
        raise NotLowerable(f"{node.op.name} of {[s.shape for s in ins]}: only 2-d products")
    if 0 in kernel.shape or 0 in a.shape:
        raise NotLowerable(f"{node.op.name} of an empty matrix")
    dt = dtype_name(kernel.dtype)
    left, right = _blas_operand(a, samples[-2], node), _blas_operand(b, samples[-1], node)
    p = em.name("p")
    if kernel.swappable and is_transposed_matrix(samples[-1]):
        # as the step runner computes it: out.T = b.T @ a.T, copied back to row-major
        em.line(f"{p} = np.ascontiguousarray(np.dot({right}.T, {left}.T).T)")
    else:
        em.line(f"{p} = np.dot({left}, {right})")
    if kernel.scaled and (kernel.alpha != 1 or kernel.beta != 0):
        if kernel.beta != 0:
            # the added input indexed as broadcast to the result (its dims right-aligned)
            c = _array(c, node)
            lead = 2 - len(c.shape)
            at = index(["0" if n == 1 else "ij"[lead + d] for d, n in enumerate(c.shape)])
            added = f"{c.expr}[{at}]"
            if kernel.beta != 1:   # c * beta: the input scaled in its dtype first
                added = f"{added} * {dt}({literal(kernel.beta)})"
        with em.loops(["i", "j"], kernel.shape):
            if kernel.alpha != 1:
                em.line(f"{p}[i, j] = {p}[i, j] * {dt}({literal(kernel.alpha)})")
            if kernel.beta != 0:
                em.line(f"{p}[i, j] = {p}[i, j] + {added}")
    return [Sym(p, tuple(kernel.shape), np.dtype(kernel.dtype))]


def _blas_operand(sym: Sym, sample, node: Node) -> str:
    """``sym`` as the step runner hands it to BLAS: in the layout of the runner's array
    (BLAS may round a product of a C operand and of its F copy differently)."""
    flags = sample.flags
    if (sym.layout == "C" and flags.c_contiguous) or (sym.layout == "F" and flags.f_contiguous):
        return sym.expr
    if flags.c_contiguous:
        return f"np.ascontiguousarray({sym.expr})"
    if flags.f_contiguous:
        return f"np.asfortranarray({sym.expr})"
    raise NotLowerable(f"{node.op.name} of a strided view (NumPy multiplies it with its own "
                       "loop, not BLAS)")


def _array(sym: Sym, node: Node) -> Sym:
    if not sym.is_array:
        raise NotLowerable(f"{node.op.name} of the scalar {sym.expr}")
    return sym

