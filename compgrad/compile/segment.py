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

__all__ = ["SegmentKeys", "segment_key", "attrs_key", "build_program_graph"]


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


def attrs_key(node) -> tuple:
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


class SegmentKeys:
    """The structural key of a run of nodes that keeps growing (a trace's pending
    segment: ``nodes[start:]`` of its Graph), built as it grows (DESIGN.md: "a key of
    the graph's structure ... is built as it grows"): :meth:`extend` keys the nodes
    appended since it last ran, so a key asked for again (the backward's, then the
    flush's) costs only the new nodes. :meth:`key` adds the results and writes.

    Nodes are only ever appended to a trace's Graph; :meth:`follows` tells whether
    ``nodes`` still begins with what was keyed (else build a new one).
    """

    __slots__ = ("start", "parts", "index", "external", "types", "outputs", "last")

    def __init__(self, start: int = 0):
        self.start = start
        self.parts: list[tuple] = []            # per node: (attributes key, input refs)
        self.index: dict[Value, tuple] = {}     # value -> its ref
        self.external: list[Value] = []         # values read from outside, in first-use order
        self.types: list = []                   # their types
        self.outputs: list[Value] = []          # the nodes' outputs, in order
        self.last = None                        # the last node keyed

    @classmethod
    def catch_up(cls, keys: SegmentKeys | None, start: int, nodes: Sequence) -> SegmentKeys:
        """``keys`` extended to all of ``nodes[start:]``, or a new key of them when
        ``keys`` (None: none yet) keyed other nodes."""
        if keys is None or keys.start != start or not keys.follows(nodes):
            keys = cls(start)
        return keys.extend(nodes)

    def follows(self, nodes: Sequence) -> bool:
        """Whether ``nodes`` (the whole list) still holds the keyed nodes at their places."""
        n = len(self.parts)
        return n == 0 or (len(nodes) >= self.start + n and nodes[self.start + n - 1] is self.last)

    def extend(self, nodes: Sequence) -> SegmentKeys:
        """Key the nodes of ``nodes`` (the whole list, keyed from ``start``) not keyed yet."""
        parts = self.parts
        first = self.start + len(parts)
        if first >= len(nodes):
            return self
        index = self.index
        get = index.get
        external = self.external
        types = self.types
        outputs = self.outputs
        i = len(parts)
        for node in nodes[first:]:
            ins = []
            for a in node.inputs:
                if type(a) is Value:
                    r = get(a)
                    if r is None:
                        r = index[a] = ("x", len(external))
                        external.append(a)
                        types.append(a.type)
                    ins.append(r)
                else:
                    ins.append(("k", type(a).__name__, repr(a)))
            key = node.key
            if key is None:
                # (attrs_key's answer for a node without attributes, without the call)
                key = attrs_key(node) if node.attrs else (node.op.name, ())
                node.key = key
            parts.append((key, tuple(ins)))
            _index_outputs(index, outputs, node.outputs, i)
            i += 1
        self.last = nodes[-1]
        return self

    def adopt(self, nodes: Sequence, parts: Sequence[tuple], external: Sequence[Value]) -> None:
        """Key ``nodes`` (just appended after the keyed ones) as :meth:`extend` would,
        given what it made of nodes of the same structure: their ``parts`` and the
        outside values they are first to read, in order (a replayed backward
        template: its key fixes both)."""
        index = self.index
        for v in external:
            index[v] = ("x", len(self.external))
            self.external.append(v)
            self.types.append(v.type)
        outputs = self.outputs
        for i, node in enumerate(nodes, start=len(self.parts)):
            _index_outputs(index, outputs, node.outputs, i)
        self.parts.extend(parts)
        self.last = nodes[-1]

    def key(self, outputs: Sequence[Value], writes: Sequence[tuple]) -> tuple[tuple, list[Value]]:
        """The key of the nodes keyed so far returning ``outputs`` and landing ``writes``
        (``(root, target, value)``), and the outside values in binding order."""
        index = self.index
        if not writes:
            outs = tuple([index.get(v) for v in outputs])
            if None not in outs:   # (the common case: every result is keyed already)
                return (tuple(self.parts), outs, (), tuple(self.types)), list(self.external)
        external = list(self.external)
        types = list(self.types)
        more: dict[Value, tuple] = {}   # outside values only results or writes name

        def ref(v: Value) -> tuple:
            r = index.get(v)
            if r is None:
                r = more.get(v)
                if r is None:
                    r = more[v] = ("x", len(external))
                    external.append(v)
                    types.append(v.type)
            return r

        outs = tuple([ref(v) for v in outputs])
        muts = tuple([(ref(target), ref(value)) for _, target, value in writes])
        return (tuple(self.parts), outs, muts, tuple(types)), external


def _index_outputs(index: dict, outputs: list, outs: Sequence[Value], i: int) -> None:
    """Record the outputs ``outs`` of keyed node ``i``: their place ``(i, j)`` in ``index``
    (how later nodes' keys name them) and in ``outputs``."""
    if len(outs) == 1:
        index[outs[0]] = (i, 0)
    else:
        for j, o in enumerate(outs):
            index[o] = (i, j)
    outputs.extend(outs)


def segment_key(nodes: Sequence, outputs: Sequence[Value],
                writes: Sequence[tuple]) -> tuple[tuple, list[Value]]:
    """The structural key of a segment and its outside values in binding order."""
    return SegmentKeys().extend(nodes).key(outputs, writes)


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
