"""Cutting a flushed run of nodes into a standalone program, and the key that
finds it again.

A segment is ``nodes`` (a slice of the trace's Graph), the values it must
hand back (``outputs``) and its writes into outside tensors. Its key is its
structure only: ops, attributes, how values connect, the types of the
values it reads from outside, which values it returns and which it writes.
Two calls that record the same structure share one compiled program,
whatever the tensors' and scalars' values are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ir.graph import Graph, Role, Value

__all__ = ["segment_key", "build_program_graph"]


def _freeze(x):
    """A hashable stand-in for an attribute value (type-tagged: 1, 1.0 and True differ)."""
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_freeze(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, np.ndarray):
        return ("ndarray", x.shape, str(x.dtype), x.tobytes())
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, slice):
        return ("slice", _freeze(x.start), _freeze(x.stop), _freeze(x.step))
    if isinstance(x, (bool, int, str)) or x is None:
        return (type(x).__name__, x)
    try:
        hash(x)
    except TypeError:
        return (type(x).__name__, repr(x))
    return x


_PLAIN = frozenset((int, bool, str, type(None)))


def _freeze_attrs(node) -> tuple:
    """``node``'s attributes as a hashable, type-tagged tuple, computed once per node
    (a call's backward key and its segment key both read it; nodes never change)."""
    key = node.key
    if key is None:
        parts = []
        for k, v in node.attrs.items():
            t = type(v)
            if t in _PLAIN or (t is tuple and all(type(e) is int for e in v)):
                parts.append((k, t, v))   # the common case: flags, dims, shapes
            else:
                parts.append((k, _freeze(v)))
        key = node.key = (node.op.name, tuple(parts))
    return key


def segment_key(nodes: Sequence, outputs: Sequence[Value],
                writes: Sequence[tuple]) -> tuple[tuple, list[Value]]:
    """The structural key of a segment and its outside values in binding order."""
    index: dict[Value, tuple] = {}
    external: list[Value] = []
    parts = []

    def ref(v: Value) -> tuple:
        r = index.get(v)
        if r is None:
            r = ("x", len(external))
            external.append(v)
            index[v] = r
        return r

    for i, node in enumerate(nodes):
        ins = tuple(ref(a) if type(a) is Value else ("k", type(a).__name__, repr(a))
                    for a in node.inputs)
        parts.append((_freeze_attrs(node), ins))
        for j, o in enumerate(node.outputs):
            index[o] = (i, j)
    outs = tuple(ref(v) for v in outputs)
    muts = tuple((ref(target), ref(value)) for _, target, value in writes)
    types = tuple(v.type for v in external)
    return (tuple(parts), outs, muts, types), external


def build_program_graph(name: str, nodes: Sequence, external: Sequence[Value],
                        outputs: Sequence[Value], writes: Sequence[tuple]) -> Graph:
    """A standalone Graph for the segment: one input per outside value, the nodes,
    the outputs, and one ``data`` mutation per write."""
    g = Graph(name)
    mapping: dict[Value, Value] = {}
    used = set()
    for v in external:
        if v.node is None:
            role, vname = v.role, v.name
        else:  # a value an earlier segment computed (kept for backward)
            role, vname = Role.ARGUMENT, f"saved{len(g.inputs)}"
        while vname in used:
            vname += "_"
        used.add(vname)
        mapping[v] = g.add_input(v.type, role, vname)
    for node in nodes:
        new = g.add_node(node.op, [mapping[a] if type(a) is Value else a for a in node.inputs],
                         node.attrs, [o.type for o in node.outputs], node.loc)
        for o, n in zip(node.outputs, new.outputs):
            mapping[o] = n
    g.outputs = [mapping[v] for v in outputs]
    for _, target, value in writes:
        g.mutate(mapping[target], "data", mapping[value])
    return g
