"""Writing a program's update of an input tensor straight into that tensor's storage.

An optimizer step ends a compiled program with elementwise updates of its inputs:
``buf = momentum * buf + grad``, ``param = param - lr * buf``, each a ``data`` mutation of
a graph input. Computed into a fresh buffer, the new value is then landed: the tensor
takes the buffer, or it is copied into the storage. Computed in place, the kernel reads
and writes the same memory, which stays in cache: on W1 (784-512-512-10, batch 32) the
[512, 784] momentum update ran 252 us in place against 405 us into a buffer, right after
the product that made its gradient (2 threads here; in isolation 69 us against 206 us).

A phase kernel may write output ``j`` into the array of its input ``q`` when
(:func:`plan_inplace_writes`, once per program):

* output ``j`` is the new value of exactly one ``data`` mutation, of graph input ``X``,
  with ``X``'s shape and dtype (the caller knows whether it also hands the value out
  as another tensor, and then does not allow the write: the two must stay apart);
* nothing after that fused group reads ``X`` or a value that may share its memory (a
  view of it, the result of any step reading it that is not known to make a fresh
  array); the group reads ``X`` once, and inside it only the phase's own nodes read
  it (an elementwise loop reads ``X[i]`` only in the iteration that writes
  ``out[i]``), never as a broadcast scalar; neither ``X`` nor such a value is returned
  or another mutation's value;
* no step after the phase can raise. A compiled call that fails lands nothing
  (replay then runs the call traced from the same state, a traced call fails as
  eagerly): a write that already happened could not be taken back. Products, phase
  kernels, reductions and views cannot raise on data; anything else, an index out of
  range for one, can.

and at run time (:func:`writable_alone`, per call) when the caller allows it (the
call's last program, whose SSA values nothing reads again) and ``X``'s array owns
C-contiguous writable memory that no other input of the program views. The program's
mutation value is then ``X``'s own array, which landing recognises and leaves alone.
Views and aliases of the tensor see the new values, as they do eagerly. A program run
as one Numba function (:mod:`codegen.whole`) takes each such phase output as a buffer
parameter: ``X``'s array under the same conditions (:func:`inplace_buffers`), else a
new one; it checks its inputs before any step runs, so a call it refuses (and gives to
the step runner) has written nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

from ir.graph import Graph, Value
from ir.opdef import OpKind

__all__ = ["INPLACE", "inplace_buffers", "plan_inplace_writes", "writable_alone"]

# the key under which a run's environment holds the ids of the input arrays its phases
# may write in place (absent: none)
INPLACE = object()

# node kinds whose reference implementations cannot raise on the data they are given
# (types and shapes were checked when the program was traced)
_CANNOT_RAISE = frozenset((OpKind.MATMUL, OpKind.REDUCTION, OpKind.MOVEMENT))

_NONE: frozenset[int] = frozenset()
_ndarray = np.ndarray


def plan_inplace_writes(graph: Graph, steps: Sequence) -> tuple[int, ...]:
    """Mark the phases of ``steps`` (one per node of ``graph``) that may write a mutated
    input in place (``phase.inplace``: (output index, input index) pairs) and return
    the positions of those inputs in ``graph.inputs`` (module docstring)."""
    from codegen.runtime import _FusedStep, _PhaseStep

    data = [m for m in graph.mutations if m.field == "data" and m.value is not None]
    targets = Counter(m.target for m in data)
    as_value = Counter(m.value for m in graph.mutations if m.value is not None)
    position = {v: i for i, v in enumerate(graph.inputs)}
    chosen = []
    for m in data:
        x, v = m.target, m.value
        if targets[x] != 1 or as_value[v] != 1 or as_value[x] or x in graph.outputs \
                or x.type.shape != v.type.shape \
                or x.type.dtype != v.type.dtype or not x.type.shape:
            continue
        i = next((k for k, n in enumerate(graph.nodes) if n is v.node), None)
        if i is None or not isinstance(steps[i], _FusedStep):
            continue
        node, step = graph.nodes[i], steps[i]
        aliases = _aliases(graph, steps, x, i)
        if sum(a in aliases for a in node.inputs) != 1 or x not in node.inputs \
                or any(a in aliases for n in graph.nodes[i + 1:] for a in n.inputs) \
                or any(a in aliases for a in graph.outputs) \
                or any(m2.value in aliases for m2 in graph.mutations):
            continue
        body = node.attrs["body"]
        xb = body.inputs[node.inputs.index(x)]
        vb = body.outputs[node.outputs.index(v)]
        at = next((k for k, s in enumerate(step.steps)
                   if isinstance(s, _PhaseStep) and vb in s.source.outputs), None)
        if at is None:
            continue
        phase = step.steps[at]
        members = set(phase.nodes)
        if xb not in phase.source.inputs or xb in phase.source.scalar_inputs \
                or xb in body.outputs or tuple(phase.shape) != tuple(vb.type.shape) \
                or any(n not in members and xb in n.inputs for n in body.nodes) \
                or any(may_raise(s) for s in (*step.steps[at + 1:], *steps[i + 1:])):
            continue
        phase.inplace += ((phase.source.outputs.index(vb), phase.source.inputs.index(xb)),)
        chosen.append(position[x])
    return tuple(chosen)


def _aliases(graph: Graph, steps: Sequence, x: Value, end: int) -> set[Value]:
    """``x`` and the values of ``graph.nodes[:end]`` that may share its memory: the
    outputs of every node reading one of them, except outputs known to be fresh arrays
    (a product's result, a phase kernel's pooled buffer)."""
    aliases = {x}
    for node, step in zip(graph.nodes[:end], steps[:end]):
        if any(a in aliases for a in node.inputs):
            aliases.update(o for o in node.outputs if not _fresh(node, step, o))
    return aliases


def _fresh(node, step, out: Value) -> bool:
    """Whether ``step`` (running ``node``) gives ``out`` a new array of its own."""
    from codegen.runtime import _FusedStep, _PhaseStep, _ProductStep

    if isinstance(step, _ProductStep):
        return True
    if not isinstance(step, _FusedStep):
        return False
    inner = node.attrs["body"].outputs[node.outputs.index(out)]
    return any(isinstance(s, _PhaseStep) and inner in s.source.outputs and not s.inplace
               or isinstance(s, _ProductStep) and inner in s.node.outputs
               for s in step.steps)


def may_raise(step) -> bool:
    """Whether running ``step`` can raise on its data (unknown step kinds: yes)."""
    from codegen.runtime import _FusedStep, _InterpretedGroupStep, _NodeStep, _PhaseStep

    if isinstance(step, _PhaseStep):
        return False
    if isinstance(step, _FusedStep):
        return any(may_raise(s) for s in step.steps)
    if isinstance(step, _InterpretedGroupStep):
        return any(n.op.kind not in _CANNOT_RAISE for n in step.node.attrs["body"].nodes)
    if isinstance(step, _NodeStep):    # products included: their ops are MATMUL
        return step.node.op.kind not in _CANNOT_RAISE
    return True


def writable_alone(args: Sequence, positions: Sequence[int]) -> frozenset[int]:
    """The ids of ``args[p]`` (``p`` in ``positions``) a kernel may overwrite: NumPy arrays
    owning writable C-contiguous memory that no other argument is or views."""
    if not positions:
        return _NONE
    owners, shared = _owners(args)
    return frozenset(id(args[p]) for p in positions if _alone(args[p], owners, shared))


def inplace_buffers(args: Sequence, buffers: Sequence[tuple], allowed: Collection[int]) -> tuple:
    """Per ``(position, shape, dtype)`` of ``buffers``: ``args[position]`` where ``allowed``
    has the position and a kernel may overwrite that array (:func:`writable_alone`), else
    a new array of that shape and dtype. (The caller checks that an argument it is given
    has the buffer's shape and dtype.)"""
    owners, shared = _owners(args)
    out = []
    for p, shape, dtype in buffers:   # (a loop, not a comprehension: this runs per call)
        a = args[p]
        out.append(a if p in allowed and _alone(a, owners, shared) else np.empty(shape, dtype))
    return tuple(out)


def _owners(args: Sequence) -> tuple[list[int], bool]:
    """Per array argument (subclasses too: a kernel reads them as arrays) the id of the
    array owning its memory (NumPy makes a view's base the owner, not the view it was
    taken from), and whether two of them share one."""
    owners = [id(a) if a.base is None else id(a.base) for a in args if isinstance(a, _ndarray)]
    return owners, len(set(owners)) != len(owners)


def _alone(a, owners: list[int], shared: bool) -> bool:
    """Whether ``a`` owns aligned, writable, C-contiguous memory (``carray``) that no other
    argument is or views."""
    return type(a) is _ndarray and a.base is None and a.flags.carray \
        and (not shared or owners.count(id(a)) == 1)
