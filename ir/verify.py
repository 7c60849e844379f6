"""The Graph verifier: the invariants every pass may rely on and must keep.

``verify(graph)`` checks the inputs (roles, unique names, positions, the
data of constants), that every node's op is the registered one, that node
inputs are earlier values of the graph or Python scalars, that each value is
defined once with consistent ``node``/``index``, that output types are what
the op's type rule derives, that the graph's outputs are defined, and the
mutation records. Graph-valued attributes (a fused group's ``body``) are
verified recursively, as graphs of their own. The first problem raises
:class:`IRVerificationError`, whose message names the node (its IR text and loc).

With ``COMPGRAD_VERIFY_ROUNDTRIP=1`` in the environment (the test suite sets
it) it also checks that the printed graph parses back and prints the same
text, so every graph any test verifies exercises the printer and parser.
"""

from __future__ import annotations

import os

import numpy as np

from ir.dtypes import ALL_DTYPES, CATEGORY_FLOAT, scalar_dtype
from ir.graph import MUTATION_FIELDS, Graph, Mutation, Node, Role, Value
from ir.opdef import REGISTRY, infer_type
from ir.printer import format_node, format_operand, print_graph, value_names
from ir.types import Device, TensorType

__all__ = ["verify", "IRVerificationError"]

ROUNDTRIP_ENV = "COMPGRAD_VERIFY_ROUNDTRIP"


class IRVerificationError(ValueError):
    """A broken graph invariant. ``node``, ``mutation`` or ``value`` (when not None)
    is what the message is about."""

    def __init__(self, message: str, node: Node | None = None, mutation: Mutation | None = None,
                 value: Value | None = None):
        super().__init__(message)
        self.node = node
        self.mutation = mutation
        self.value = value


def _scalar_ok(x) -> bool:
    # exact Python types: NumPy scalars would print and parse back as Python ones
    return type(x) in (bool, int, float)


class _Verifier:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.names = value_names(graph)

    def fail(self, problem: str, node: Node | None = None, mutation: Mutation | None = None,
             value: Value | None = None):
        where = f"graph {self.graph.name!r}"
        if node is not None:
            where += f", node `{format_node(node, self.names)}`"
        elif mutation is not None:
            where += f", mutation {self.mutation_text(mutation)}"
        elif value is not None:
            where += f", input {self.name(value)}"
        raise IRVerificationError(f"{where}: {problem}", node, mutation, value)

    def name(self, v) -> str:
        return format_operand(v, self.names) if isinstance(v, Value) else repr(v)

    def mutation_text(self, m: Mutation) -> str:
        target = self.name(m.target)
        lhs = target if m.field == "data" else f"{m.field}({target})"
        return f"`{lhs} <- {'None' if m.value is None else self.name(m.value)}`"

    def check_type(self, t, what: str, **where) -> None:
        if not isinstance(t, TensorType):
            self.fail(f"{what} has type {t!r}, not a TensorType", **where)
        if not (isinstance(t.shape, tuple)
                and all(type(s) is int and s >= 0 for s in t.shape)):
            self.fail(f"{what} has a bad shape {t.shape!r}", **where)
        if t.dtype not in ALL_DTYPES or not isinstance(t.device, Device):
            self.fail(f"{what} has a bad dtype or device ({t.dtype!r}, {t.device!r})", **where)

    # --- the checks -------------------------------------------------------------------------

    def run(self) -> None:
        defined = self.check_inputs()
        all_values = set(self.graph.values())
        for node in self.graph.nodes:
            self.check_node(node, defined, all_values)
        for i, v in enumerate(self.graph.outputs):
            if not isinstance(v, Value) or v not in defined:
                self.fail(f"output {i} ({self.name(v)}) is not a value defined in the graph")
        self.check_mutations(defined)

    def check_inputs(self) -> set[Value]:
        g = self.graph
        seen_names: dict[str, Value] = {}
        defined: set[Value] = set()
        for i, v in enumerate(g.inputs):
            if not isinstance(v, Value):
                self.fail(f"input {i} is {v!r}, not a Value")
            if v.node is not None:
                self.fail(f"input {i} is an output of node {v.node.op.name}", value=v)
            if not isinstance(v.role, Role):
                self.fail(f"has role {v.role!r}, not an ir.graph.Role", value=v)
            if v.index != i:
                self.fail(f"is input {i} but its index is {v.index}", value=v)
            if not isinstance(v.name, str) or not v.name:
                self.fail(f"input {i} has no name ({v.name!r})", value=v)
            if v.name in seen_names:
                self.fail(f"two inputs are named {v.name!r} (inputs {seen_names[v.name].index} "
                          f"and {i})", value=v)
            if v in defined:
                self.fail("is listed twice among the inputs", value=v)
            seen_names[v.name] = v
            defined.add(v)
            self.check_type(v.type, "it", value=v)
            if v.role is Role.CONSTANT:
                if v not in g.constants:
                    self.fail("is CONSTANT but graph.constants holds no data for it", value=v)
                self.check_constant(v, g.constants[v])
        for v in g.constants:
            if v not in defined or v.role is not Role.CONSTANT:
                self.fail(f"graph.constants holds data for {self.name(v)}, which is not a "
                          f"CONSTANT input of this graph")
        return defined

    def check_constant(self, v: Value, data) -> None:
        t = v.type
        if t.weak:
            if not _scalar_ok(data) or scalar_dtype(data) is not t.dtype:
                self.fail(f"its constant data {data!r} is not a Python scalar of type {t}",
                          value=v)
            return
        if not isinstance(data, np.ndarray):
            self.fail(f"its constant data is a {type(data).__name__}, not a NumPy array", value=v)
        if data.shape != t.shape or data.dtype != t.dtype.np_dtype:
            self.fail(f"its constant data has shape {list(data.shape)} and dtype {data.dtype}, "
                      f"its type is {t}", value=v)

    def check_node(self, node: Node, defined: set[Value], all_values: set[Value]) -> None:
        if not isinstance(node, Node):
            self.fail(f"graph.nodes holds {node!r}, not a Node")
        op = node.op
        if REGISTRY.get(getattr(op, "name", None)) is not op:
            self.fail(f"its op {op!r} is not the registered op of that name", node)
        if not isinstance(node.attrs, dict) or not all(isinstance(k, str) for k in node.attrs):
            self.fail("its attributes are not a dict with string keys", node)
        types = []
        for i, a in enumerate(node.inputs):
            if isinstance(a, Value):
                if a not in defined:
                    problem = "is used before it is defined" if a in all_values else \
                        "is not a value of this graph"
                    self.fail(f"input {i} ({self.name(a)}) {problem}", node)
                types.append(a.type)
            elif _scalar_ok(a):
                types.append(TensorType((), scalar_dtype(a), None, True))
            else:
                self.fail(f"input {i} is a {type(a).__name__} ({a!r}); node inputs are Values "
                          f"or Python bool/int/float scalars", node)
        for i, out in enumerate(node.outputs):
            if not isinstance(out, Value) or out.node is not node or out.index != i:
                self.fail(f"output {i} does not point back to this node as its output {i}", node)
            if out in defined:
                self.fail(f"output {i} ({self.name(out)}) is defined twice", node)
            self.check_type(out.type, f"output {i}", node=node)
        bodies = [(k, a) for k, a in node.attrs.items() if isinstance(a, Graph)]
        for key, body in bodies:
            self.check_body(node, key, body)
        try:
            # a nested graph may have changed since its type was memoised: derive it afresh
            expected = op.type_rule(tuple(types), **node.attrs) if bodies else \
                infer_type(op, tuple(types), node.attrs)
        except Exception as e:
            self.fail(f"the type rule of {op.name} raises {type(e).__name__}: {e}", node)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = tuple(o.type for o in node.outputs)
        if len(expected) != len(actual):
            self.fail(f"it has {len(actual)} outputs, the type rule of {op.name} gives "
                      f"{len(expected)}", node)
        for i, (e, a) in enumerate(zip(expected, actual)):
            if e != a:
                self.fail(f"output {i} has type {_type_text(a)}, the type rule of {op.name} "
                          f"gives {_type_text(e)}", node)
        defined.update(node.outputs)

    def check_body(self, node: Node, key: str, body: Graph) -> None:
        """A nested graph attribute (a fused group's body) is verified as a graph of its
        own; its errors keep pointing at the inner node, input or mutation."""
        try:
            _Verifier(body).run()
        except IRVerificationError as e:
            raise IRVerificationError(
                f"graph {self.graph.name!r}, attribute {key!r} of a {node.op.name} node: {e}",
                e.node, e.mutation, e.value) from e

    def check_mutations(self, defined: set[Value]) -> None:
        g = self.graph
        inputs = set(g.inputs)
        seen: set[tuple[Value, str]] = set()
        for m in g.mutations:
            if not isinstance(m, Mutation):
                self.fail(f"graph.mutations holds {m!r}, not a Mutation")
            if not isinstance(m.target, Value) or m.target not in inputs:
                self.fail("its target is not an input of the graph", mutation=m)
            if m.target.role is Role.CONSTANT:
                self.fail("its target is a CONSTANT input", mutation=m)
            if m.field not in MUTATION_FIELDS:
                self.fail(f"its field {m.field!r} is not one of {MUTATION_FIELDS}", mutation=m)
            if (m.target, m.field) in seen:
                self.fail(f"a second mutation of the {m.field} of {self.name(m.target)}",
                          mutation=m)
            seen.add((m.target, m.field))
            if m.value is None:
                if m.field != "grad":
                    self.fail("only a grad mutation may write None", mutation=m)
                continue
            if not isinstance(m.value, Value) or m.value not in defined:
                self.fail("its value is not defined in the graph", mutation=m)
            tt, vt = m.target.type, m.value.type
            if m.field == "data" and (vt.shape != tt.shape or vt.dtype is not tt.dtype):
                self.fail(f"it writes a {_type_text(vt)} value into a {_type_text(tt)} input",
                          mutation=m)
            if m.field == "grad":
                if vt.shape != tt.shape:
                    self.fail(f"the grad has shape {list(vt.shape)}, the tensor "
                              f"{list(tt.shape)}", mutation=m)
                if vt.dtype.category != CATEGORY_FLOAT:
                    self.fail(f"the grad has dtype {vt.dtype.name}; a grad must be floating "
                              f"point", mutation=m)


def _type_text(t: TensorType) -> str:
    return f"{t} weak" if getattr(t, "weak", False) else str(t)


def _node_at_line(graph: Graph, line: int | None) -> Node | None:
    """The node whose printed text holds ``line`` (1-based; the header is line 1, and a
    node with a nested body spans several lines)."""
    if line is None:
        return None
    names = value_names(graph)
    first = 2
    for node in graph.nodes:
        last = first + format_node(node, names).count("\n")
        if first <= line <= last:
            return node
        first = last + 1
    return None


def _check_roundtrip(graph: Graph) -> None:
    from ir.parser import IRParseError, parse

    text = print_graph(graph)
    try:
        again = print_graph(parse(text))
    except IRParseError as e:
        node = _node_at_line(graph, e.line)
        where = f"node `{format_node(node)}`" if node is not None else "its text"
        raise IRVerificationError(f"graph {graph.name!r}: the printed IR does not parse back "
                                  f"({where}): {e}", node) from e
    if again != text:
        a, b = text.split("\n"), again.split("\n")
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        node = _node_at_line(graph, i + 1)
        raise IRVerificationError(
            f"graph {graph.name!r}: printing the parsed IR gives different text at line "
            f"{i + 1}:\n  printed: {a[i] if i < len(a) else '<nothing>'}\n  "
            f"reparsed: {b[i] if i < len(b) else '<nothing>'}", node)


def verify(graph: Graph, *, roundtrip: bool | None = None) -> None:
    """Check ``graph``'s invariants; raise :class:`IRVerificationError` naming the first
    broken one (the node's IR text and loc, or the input or mutation).

    ``roundtrip`` (default: the ``COMPGRAD_VERIFY_ROUNDTRIP`` environment variable is
    ``"1"``) also checks that ``print_graph(parse(print_graph(graph)))`` equals
    ``print_graph(graph)``; the parser calls ``verify`` with ``roundtrip=False``.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"verify() expects an ir.graph.Graph, got {type(graph).__name__}")
    _Verifier(graph).run()
    if roundtrip is None:
        roundtrip = os.environ.get(ROUNDTRIP_ENV) == "1"
    if roundtrip:
        _check_roundtrip(graph)
