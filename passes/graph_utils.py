"""Helpers shared by Graph -> Graph passes: copying, replacing uses, removing nodes,
and which values the caller can observe.

A pass is pure: it copies its input with :func:`copy_graph` and edits only the
copy (node input tuples, the node list, outputs, mutation values), never a
Graph it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ir.graph import Graph, Mutation, Node, Value
from ir.printer import format_literal

__all__ = ["copy_graph", "replace_uses", "remove_nodes", "exposed_values", "value_key"]


def copy_graph(graph: Graph) -> Graph:
    """A structurally independent copy of ``graph``: new inputs, nodes and values, the
    same names, roles, types, attributes, locs, outputs and mutations.

    Constant data and attribute values are shared, not copied: passes treat them as
    immutable.
    """
    new = Graph(graph.name)
    vmap: dict[Value, Value] = {}
    for v in graph.inputs:
        vmap[v] = new.add_input(v.type, v.role, v.name, data=graph.constants.get(v))
    for node in graph.nodes:
        inputs = tuple(vmap[a] if isinstance(a, Value) else a for a in node.inputs)
        copy = Node(node.op, inputs, dict(node.attrs), [o.type for o in node.outputs], node.loc)
        new.nodes.append(copy)
        vmap.update(zip(node.outputs, copy.outputs))
    new.outputs = [vmap[v] for v in graph.outputs]
    new.mutations = [Mutation(vmap[m.target], m.field, None if m.value is None else vmap[m.value])
                     for m in graph.mutations]
    return new


def _resolve(mapping: Mapping[Value, Value], v: Value) -> Value:
    # follow chains (a -> b, b -> c) so one sweep applies every replacement
    seen = 0
    while v in mapping:
        v = mapping[v]
        seen += 1
        if seen > len(mapping):
            raise ValueError(f"replace_uses: the replacements of {v!r} form a cycle")
    return v


def replace_uses(graph: Graph, mapping: Mapping[Value, Value]) -> None:
    """In place: every use of a key of ``mapping`` (node inputs, graph outputs, mutation
    values) reads its replacement instead (chains are followed).

    The caller keeps types and order valid: a replacement must have the same type
    and be defined before its uses.
    """
    if not mapping:
        return
    for node in graph.nodes:
        if any(isinstance(a, Value) and a in mapping for a in node.inputs):
            node.inputs = tuple(_resolve(mapping, a) if isinstance(a, Value) else a
                                for a in node.inputs)
    graph.outputs = [_resolve(mapping, v) for v in graph.outputs]
    for m in graph.mutations:
        if m.value is not None:
            m.value = _resolve(mapping, m.value)


def remove_nodes(graph: Graph, nodes: Iterable[Node]) -> None:
    """In place: drop ``nodes`` from ``graph.nodes`` (their outputs must be unused)."""
    dead = set(nodes)
    if dead:
        graph.nodes = [n for n in graph.nodes if n not in dead]


def exposed_values(graph: Graph) -> set[Value]:
    """The values whose storage the caller can observe after the program runs.

    These are the graph outputs and the mutation values (a ``.grad`` is set to the
    array itself, and a data write may be ordered after another write that changes
    its source), plus, through views, the input 0 of every view node (``is_view``:
    its outputs alias input 0) with an exposed output. A rewrite must not make an
    exposed value share storage with another exposed value or with a graph input
    where eager code would give fresh memory.
    """
    exposed: set[Value] = set(graph.outputs)
    exposed.update(m.value for m in graph.mutations if m.value is not None)
    for node in reversed(graph.nodes):
        if node.op.is_view and node.inputs and isinstance(node.inputs[0], Value) \
                and any(o in exposed for o in node.outputs):
            exposed.add(node.inputs[0])
    return exposed


def value_key(arg) -> object:
    """A hashable key for a node input that compares by value for scalars (``1``,
    ``1.0``, ``True``, ``-0.0`` and ``nan`` are all different) and by identity for
    Values."""
    return arg if isinstance(arg, Value) else ("literal", format_literal(arg))
