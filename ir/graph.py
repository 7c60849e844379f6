"""The IR: ``Graph``, ``Node``, ``Value``, input roles and mutation records.

A Graph is SSA and functional. It has typed inputs (each with a role saying
where the runtime binds it from), nodes in a valid topological order,
outputs, and mutation records: which input object receives which new value
when the program ends (``w <- %41`` writes into parameter ``w``'s data,
``grad(w) <- %37`` sets ``w.grad``). In-place ops in user code become new
values plus a mutation record.

Node inputs are :class:`Value` objects of the same graph or Python scalars
(weak operands, written inline), exactly the arguments ``ir.apply`` gives the
op; node attributes are the op's keyword attributes.

:class:`GraphBuilder` is the interpreter that appends nodes: with it active,
``ir.ops`` functions called on Values build graph nodes, which is how the
symbolic backward reuses the OpDefs' VJP rules.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ir.dispatch import Interpreter, is_scalar
from ir.opdef import OpDef, infer_type
from ir.types import TensorType, scalar_type

__all__ = ["Role", "Value", "Node", "Mutation", "Graph", "GraphBuilder", "MUTATION_FIELDS"]


class Role(enum.Enum):
    """Where the runtime binds a graph input from."""

    ARGUMENT = "arg"            # a tensor or Python scalar the caller passed (or reached)
    PARAMETER = "param"         # an nn.Parameter
    BUFFER = "buffer"           # a module buffer
    OPTIMIZER_STATE = "state"   # an optimizer's state tensor (momentum, exp_avg, ...)
    GRAD = "grad"               # a tensor's .grad
    RNG_STATE = "rng"           # a generator key
    CONSTANT = "const"          # data held by the graph itself (Graph.constants)


# what a mutation writes: the tensor's data (in place) or its .grad attribute
MUTATION_FIELDS = ("data", "grad")


class Value:
    """One SSA value: a graph input (``node is None``) or output ``index`` of ``node``.

    ``type`` is its :class:`~ir.types.TensorType`; a ``weak`` type marks a
    Python scalar input (a learning rate lifted out of the trace). ``name``
    is set on inputs (printed as ``%name``); intermediates are numbered by
    the printer.
    """

    __slots__ = ("type", "node", "index", "name", "role", "__weakref__")

    def __init__(self, type: TensorType, node: Node | None = None, index: int = 0,  # noqa: A002
                 name: str | None = None, role: Role | None = None):
        self.type = type
        self.node = node
        self.index = index
        self.name = name
        self.role = role

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def is_input(self) -> bool:
        return self.node is None

    def __repr__(self) -> str:
        where = f"input {self.name!r} ({self.role.value})" if self.node is None else (
            f"{self.node.op.name}#{self.index}")
        return f"<Value {where}: {self.type}>"


class Node:
    """``op`` applied to ``inputs`` (Values or Python scalars) with ``attrs``.

    ``loc`` is the user's ``file:line`` that created it (None when unknown);
    it is printed as a trailing comment and named in runtime errors.
    """

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc", "key")

    def __init__(self, op: OpDef, inputs: tuple, attrs: dict, output_types: Sequence[TensorType],
                 loc: str | None = None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        # (most ops have one output: built without a generator, nodes are built per
        # recorded op)
        self.outputs = (Value(output_types[0], self),) if len(output_types) == 1 else tuple(
            Value(t, self, i) for i, t in enumerate(output_types))
        self.loc = loc
        self.key = None   # a cache for a hashable form of (op, attrs): see compgrad.compile

    def input_values(self) -> Iterator[Value]:
        """The inputs that are Values (scalars left out)."""
        return (a for a in self.inputs if isinstance(a, Value))

    def __repr__(self) -> str:
        return f"<Node {self.op.name} -> {', '.join(str(o.type) for o in self.outputs)}>"


class Mutation:
    """At the end of the program, write ``value`` into ``target``'s ``field``.

    ``target`` is a graph input. ``field`` is ``"data"`` (copy into the
    tensor's storage, keeping its identity and its views) or ``"grad"`` (set
    the tensor's ``.grad``; ``value`` None means ``.grad = None``).
    """

    __slots__ = ("target", "field", "value")

    def __init__(self, target: Value, field: str, value: Value | None):
        if field not in MUTATION_FIELDS:
            raise ValueError(f"mutation field must be one of {MUTATION_FIELDS}, got {field!r}")
        self.target = target
        self.field = field
        self.value = value

    def __repr__(self) -> str:
        return f"<Mutation {self.field}({self.target.name}) <- {self.value!r}>"


class Graph:
    """A functional program: inputs, nodes in topological order, outputs, mutations.

    Build one with :meth:`add_input` and :meth:`add_node` (or a
    :class:`GraphBuilder`), then set :attr:`outputs` and call
    :meth:`mutate`. :func:`ir.verify.verify` checks the invariants;
    :func:`ir.printer.print_graph` prints it.
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.mutations: list[Mutation] = []
        # data of CONSTANT inputs, keyed by the input Value
        self.constants: dict[Value, Any] = {}

    # --- building -------------------------------------------------------------------------

    def add_input(self, type: TensorType, role: Role = Role.ARGUMENT,  # noqa: A002
                  name: str | None = None, data: Any = None) -> Value:
        """Append an input of ``type`` and ``role``; CONSTANT inputs hold ``data``."""
        if not isinstance(role, Role):
            raise TypeError(f"role must be an ir.graph.Role, got {role!r}")
        if name is None:
            name = f"in{len(self.inputs)}"
        value = Value(type, None, len(self.inputs), name, role)
        self.inputs.append(value)
        if role is Role.CONSTANT:
            if data is None:
                raise ValueError("a CONSTANT input needs its data")
            self.constants[value] = data
        return value

    def add_node(self, op: OpDef, inputs: Sequence, attrs: dict | None = None,
                 output_types: TensorType | Sequence[TensorType] | None = None,
                 loc: str | None = None) -> Node:
        """Append ``op(*inputs, **attrs)``; its output types come from the op's type
        rule unless given."""
        inputs = tuple(inputs)
        attrs = {} if attrs is None else dict(attrs)
        if output_types is None:
            output_types = infer_type(op, tuple(input_type(a) for a in inputs), attrs)
        if isinstance(output_types, TensorType):
            output_types = (output_types,)
        node = Node(op, inputs, attrs, output_types, loc)
        self.nodes.append(node)
        return node

    def mutate(self, target: Value, field: str, value: Value | None) -> Mutation:
        """Record that ``target``'s ``field`` gets ``value`` when the program ends.

        A later record for the same target and field replaces the earlier one
        (the last write wins, as it would eagerly).
        """
        m = Mutation(target, field, value)
        for i, old in enumerate(self.mutations):
            if old.target is target and old.field == field:
                self.mutations[i] = m
                return m
        self.mutations.append(m)
        return m

    # --- reading --------------------------------------------------------------------------

    def values(self) -> Iterator[Value]:
        """Every value: inputs, then node outputs in order."""
        yield from self.inputs
        for node in self.nodes:
            yield from node.outputs

    def users(self) -> dict[Value, list[Node]]:
        """Map from each value to the nodes that read it (in order)."""
        users: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for node in self.nodes:
            for v in node.input_values():
                users.setdefault(v, []).append(node)
        return users

    def input_named(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise KeyError(f"graph {self.name!r} has no input named {name!r}")

    def to_networkx(self):
        """A ``networkx.DiGraph`` of the nodes (and inputs) with an edge per data use;
        the toolkit for reachability, min-cuts and DOT export."""
        import networkx as nx
        g = nx.DiGraph()
        for v in self.inputs:
            g.add_node(v, label=f"%{v.name}")
        for node in self.nodes:
            g.add_node(node, label=node.op.name)
            for v in node.input_values():
                g.add_edge(v if v.node is None else v.node, node)
        return g

    def __str__(self) -> str:
        from ir.printer import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return (f"<Graph {self.name!r}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.outputs)} outputs, {len(self.mutations)} mutations>")


def input_type(arg) -> TensorType:
    """The type of a node input: a Value's own, or a Python scalar's (a weak scalar)."""
    if isinstance(arg, Value):
        return arg.type
    if is_scalar(arg):
        return scalar_type(arg.item() if isinstance(arg, np.generic) else arg)
    raise TypeError(f"a node input must be a Value or a Python scalar, got {type(arg).__name__}")


class GraphBuilder(Interpreter):
    """The interpreter that appends each applied op to ``graph`` as a node.

    Arguments are Values of ``graph`` or Python scalars; results are the new
    nodes' output Values. ``loc`` (settable) is stamped on every node built.
    """

    def __init__(self, graph: Graph, loc: str | None = None):
        self.graph = graph
        self.loc = loc

    def type_of(self, value) -> TensorType:
        return input_type(value)

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        args = tuple(a.item() if isinstance(a, np.generic) else a for a in args)
        for a in args:
            if not isinstance(a, Value) and not is_scalar(a):
                raise TypeError(f"{op.name}(): expected a graph Value or a number, got "
                                f"{type(a).__name__}")
        out_type = infer_type(op, tuple(input_type(a) for a in args), attrs)
        node = self.graph.add_node(op, args, attrs, out_type, loc=self.loc)
        return node.outputs if isinstance(out_type, tuple) else node.outputs[0]


def live_values(graph: Graph, roots: Iterable[Value]) -> set[Value]:
    """The values ``roots`` depend on (themselves included)."""
    seen: set[Value] = set()
    stack = list(roots)
    done: set[Node] = set()   # nodes whose inputs were stacked (once per node, however
    while stack:              # many of its outputs are live)
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        node = v.node
        if node is not None and node not in done:
            done.add(node)
            stack.extend([a for a in node.inputs if isinstance(a, Value) and a not in seen])
    return seen


def depends_on_any(roots: Iterable[Value], nodes: set) -> bool:
    """Whether ``roots`` depend on (or are) an output of one of ``nodes`` (stops at the
    first found)."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop().node
        if node is None or node in seen:
            continue
        if node in nodes:
            return True
        seen.add(node)
        stack.extend([a for a in node.inputs if isinstance(a, Value)])
    return False
