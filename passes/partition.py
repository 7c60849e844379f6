"""Forward/backward partition of a joint graph, choosing recompute versus save by a min-cut.

A *joint* graph computes a forward and its backward in one program (the forward
nodes, then the nodes :func:`passes.autodiff.backward` appended). A compiled
forward whose backward runs later (``loss.backward()`` after the forward
returned) must be split in two: the forward runs now and keeps some values
alive (the *saved* values); the backward runs later from the saved values and
the incoming gradients (the *tangents*). :func:`partition` makes that split.

What to save is chosen as in AOTAutograd's min-cut rematerialisation: a flow
network has a vertex pair ``in -> out`` per value whose capacity is the bytes
of keeping that value alive; the source feeds what only the forward can
provide (its inputs, and the values of ops the backward may not recompute),
the sink drains what only the backward can compute (everything that depends
on a tangent, and the backward's outputs). A minimum cut (``networkx``) is a
set of values whose bytes are smallest among the sets from which the backward
can compute everything it needs; every other value the backward needs is
recomputed there. Recomputation is limited to cheap ops that fuse into the
backward's kernels (elementwise ops, views and index arithmetic, creation ops
without inputs); matmuls, reductions, random ops (recomputing one must not
draw numbers twice), indexing and opaque ops computed by the forward are never
computed again. Among cuts of equal bytes the one closest to the backward is
taken (the fewest recomputed nodes), a view is saved only when that is
strictly cheaper than saving what it views (a saved view keeps its base
alive anyway), and a forward output is preferred to another value of the
same bytes (the caller holds it anyway).

The result, :class:`Partition`, holds two Graphs such that running the forward
on the joint's non-tangent inputs, then the backward on (the saved inputs,
the forward's extra outputs, the tangents) gives the joint graph's outputs and
mutations. ``policy="save_all"`` gives the naive split for comparison: every
value the forward can compute is computed there, and every one the backward
reads is saved (AOTAutograd's default partition).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx
from networkx.algorithms.flow import boykov_kolmogorov

from ir.graph import Graph, Mutation, Node, Role, Value, live_values
from ir.opdef import OpKind
from ir.ops.rearrange import CLONE
from ir.printer import value_names

__all__ = ["Partition", "partition", "recomputable", "value_nbytes", "POLICIES"]

POLICIES = ("min_cut", "save_all")

# movement ops that are index arithmetic on one input: as cheap to recompute as a view
_INDEX_ARITHMETIC = frozenset({"reshape", "view", "expand", "permute", "narrow", "select",
                               "getitem", "squeeze", "unsqueeze", "flatten", "t", "transpose"})

_SOURCE, _SINK = "source", "sink"


def value_nbytes(v: Value) -> int:
    """The bytes of ``v``'s elements (its type's numel times its dtype's item size)."""
    return v.type.numel * v.type.dtype.itemsize


def recomputable(node: Node) -> bool:
    """Whether the backward may compute ``node`` again instead of the forward saving it.

    Elementwise ops, views (and other single-input index arithmetic) and creation
    ops without inputs: cheap, and fused into the backward's kernels. Never
    matmuls, reductions, indexing or opaque ops (they would make the backward
    much more expensive) nor random ops (the numbers must be drawn once).
    """
    kind = node.op.kind
    if kind is OpKind.ELEMENTWISE:
        return True
    if kind is OpKind.MOVEMENT:
        return node.op.is_view or node.op.name in _INDEX_ARITHMETIC
    if kind is OpKind.CREATION:
        return not any(True for _ in node.input_values())
    return False


@dataclass
class Partition:
    """A joint graph split into a forward and a backward Graph.

    * ``forward`` takes the joint's inputs except the tangents (same order, names and
      roles) and returns the joint's forward outputs, then one value per entry of
      ``saved_values``; it holds the mutations that do not depend on a tangent.
    * ``backward`` takes, in order: ``saved_inputs`` (joint inputs it reads or
      mutates, same names and roles: the caller binds the same objects again),
      one ARGUMENT input per ``saved_values`` entry (named ``saved_<name>``, after the
      joint graph's printed name), then
      the tangents (same names and roles). It returns the joint's remaining
      outputs and holds the mutations that depend on a tangent.
    * ``saved_values`` are Values of the joint graph the forward returns for the
      backward (a joint input the forward mutates is saved as its clone, listed
      as the input itself); ``saved_inputs`` are joint inputs the backward binds
      directly (CONSTANT inputs among them carry their data and cost nothing).
    * ``recomputed`` are the joint nodes that run in both graphs.
    * ``saved_bytes`` is what the forward keeps alive for the backward: the bytes
      of the saved values and of the saved non-constant inputs the backward reads.
    """

    forward: Graph
    backward: Graph
    saved_inputs: list[Value]
    saved_values: list[Value]
    recomputed: list[Node] = field(default_factory=list)
    saved_bytes: int = 0

    @property
    def saved(self) -> list[Value]:
        """Every joint value the backward gets from the forward's run."""
        return self.saved_inputs + self.saved_values


def partition(joint: Graph, num_forward_outputs: int, tangents: Sequence[Value], *,
              policy: str = "min_cut") -> Partition:
    """Split ``joint`` into a forward and a backward graph (see :class:`Partition`).

    ``joint.outputs[:num_forward_outputs]`` are the forward's outputs, the rest the
    backward's; ``tangents`` are the joint inputs holding the backward's incoming
    gradients. A mutation belongs to the backward when its value depends on a
    tangent, else to the forward. Nodes neither graph needs are dropped.

    ``policy="min_cut"`` (default) saves a set of values of the fewest bytes from
    which the backward recomputes the rest (only :func:`recomputable` nodes);
    ``policy="save_all"`` recomputes nothing. ``joint`` is not changed.

    Raises ValueError when a tangent is not an input of ``joint``, when
    ``num_forward_outputs`` is out of range, or when a forward output or
    mutation depends on a tangent.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not 0 <= num_forward_outputs <= len(joint.outputs):
        raise ValueError(f"num_forward_outputs={num_forward_outputs} but the joint graph has "
                         f"{len(joint.outputs)} outputs")
    inputs = set(joint.inputs)
    for t in tangents:
        if t not in inputs:
            raise ValueError(f"tangent {t!r} is not an input of graph {joint.name!r}")
    split = _Split(joint, num_forward_outputs, list(tangents))
    saved = split.cut(policy)
    return split.build(saved)


class _Split:
    """The analysis of one joint graph: which values the forward and the backward need."""

    def __init__(self, joint: Graph, num_forward_outputs: int, tangents: list[Value]):
        self.joint = joint
        self.tangents = tangents
        self.fw_outputs = joint.outputs[:num_forward_outputs]
        self.bw_outputs = joint.outputs[num_forward_outputs:]
        self.tangent_dependent = _dependents(joint, tangents)
        self.fw_mutations: list[Mutation] = []
        self.bw_mutations: list[Mutation] = []
        for m in joint.mutations:
            dependent = m.value is not None and m.value in self.tangent_dependent
            (self.bw_mutations if dependent else self.fw_mutations).append(m)
        self.fw_roots = list(self.fw_outputs) + [m.value for m in self.fw_mutations
                                                 if m.value is not None]
        self.bw_roots = list(self.bw_outputs) + [m.value for m in self.bw_mutations]
        names = value_names(joint)
        for v in self.fw_roots:
            if v in self.tangent_dependent:
                raise ValueError(f"forward output or mutation {names.get(v, v)} of graph "
                                 f"{joint.name!r} depends on a tangent")
        self.fw_required = live_values(joint, self.fw_roots)
        self.fw_output_set = set(self.fw_outputs)
        # inputs whose data the forward overwrites: the backward must read a copy
        self.fw_written = {m.target for m in self.fw_mutations if m.field == "data"}

    # --- the cut --------------------------------------------------------------------------

    def cut(self, policy: str) -> list[Value]:
        """The values (joint inputs or intermediates) the forward keeps for the backward,
        in joint order."""
        net = self.network(policy)
        sink_side = _sink_side(net)
        saved = [v for v in self.joint.values()
                 if ("in", v) in net and ("in", v) not in sink_side
                 and ("out", v) in sink_side]
        return saved

    def network(self, policy: str) -> nx.DiGraph:
        """The flow network (see the module docstring). Vertices: ``("node", n)``, and
        ``("in", v)``, ``("out", v)`` per value; edges without a capacity are infinite."""
        net = nx.DiGraph()
        net.add_node(_SOURCE)
        net.add_node(_SINK)
        tangents = set(self.tangents)
        for v in self.joint.inputs:
            if v.role is Role.CONSTANT or v in tangents:
                continue  # constants travel with both graphs; tangents are the backward's
            net.add_edge(_SOURCE, ("in", v))
            net.add_edge(("in", v), ("out", v), capacity=self.weight(v))
        for t in self.tangents:
            net.add_edge(("out", t), _SINK)
        for node in self.joint.nodes:
            vertex = ("node", node)
            for a in node.input_values():
                if a.role is not Role.CONSTANT:
                    net.add_edge(("out", a), vertex)
            for o in node.outputs:
                net.add_edge(vertex, ("in", o))
                net.add_edge(("in", o), ("out", o), capacity=self.weight(o))
            if any(o in self.tangent_dependent for o in node.outputs):
                net.add_edge(vertex, _SINK)
            elif policy == "save_all":
                # the naive split computes in the forward everything it can
                net.add_edge(_SOURCE, vertex)
            elif node_in_forward(node, self.fw_required) and not recomputable(node):
                net.add_edge(_SOURCE, vertex)
        for v in self.bw_roots:
            if v.role is not Role.CONSTANT:
                net.add_edge(("out", v), _SINK)
        return net

    def weight(self, v: Value) -> int:
        """The capacity of saving ``v``: its bytes (scaled by 4), with two tie-breaks
        between choices of equal bytes: a view costs 2 more, so that its base is saved
        instead (a saved view keeps its base alive anyway), and a forward output 1
        less, so that a value the caller receives anyway is preferred."""
        weight = 4 * value_nbytes(v)
        if v.node is not None and v.node.op.is_view:
            weight += 2
        if v in self.fw_output_set:
            weight -= 1
        return weight

    # --- the two graphs -------------------------------------------------------------------

    def build(self, saved: list[Value]) -> Partition:
        joint = self.joint
        tangents = set(self.tangents)
        saved_set = set(saved)
        # the backward: what its roots need, stopping at saved values and inputs
        bw_nodes = _closure(joint, self.bw_roots, stop=saved_set)
        for node in bw_nodes:
            # the cut guarantees it; a failure here is a bug of the network, not the input
            if not recomputable(node) and node_in_forward(node, self.fw_required):
                raise RuntimeError(f"partition: the backward would recompute {node!r}")
        read_by_bw = {a for n in bw_nodes for a in n.input_values()} | set(self.bw_roots)
        names = value_names(joint)
        # saved inputs: read directly unless the forward overwrites their data
        saved_inputs, saved_values = [], []
        for v in joint.inputs:
            if v in tangents:
                continue
            read = v in read_by_bw or v in saved_set
            targeted = any(m.target is v for m in self.bw_mutations)
            if read and v in self.fw_written:
                saved_values.append(v)
                if targeted:
                    saved_inputs.append(v)
            elif read or targeted:
                saved_inputs.append(v)
        saved_values += [v for v in saved if v.node is not None]
        forward = self.forward_graph(saved_values)
        backward = self.backward_graph(bw_nodes, saved_inputs, saved_values, names)
        fw_node_set = set(_closure(joint, self.fw_roots + saved_values, stop=()))
        recomputed = [n for n in bw_nodes if n in fw_node_set]
        saved_bytes = sum(value_nbytes(v) for v in saved_values)
        saved_bytes += sum(value_nbytes(v) for v in saved_inputs
                           if v.role is not Role.CONSTANT and v in read_by_bw
                           and v not in self.fw_written)
        return Partition(forward, backward, saved_inputs, saved_values, recomputed, saved_bytes)

    def forward_graph(self, saved_values: list[Value]) -> Graph:
        joint = self.joint
        graph = Graph(f"{joint.name}_forward")
        vmap: dict[Value, Value] = {}
        tangents = set(self.tangents)
        for v in joint.inputs:
            if v not in tangents:
                vmap[v] = graph.add_input(v.type, v.role, v.name, data=joint.constants.get(v))
        roots = self.fw_roots + [v for v in saved_values if v.node is not None]
        _copy_nodes(graph, _closure(joint, roots, stop=()), vmap)
        extra = []
        for v in saved_values:
            if v.node is None:  # an input the forward overwrites: save its old data
                extra.append(graph.add_node(CLONE, (vmap[v],), {}).outputs[0])
            else:
                extra.append(vmap[v])
        graph.outputs = [vmap[v] for v in self.fw_outputs] + extra
        graph.mutations = [Mutation(vmap[m.target], m.field,
                                    None if m.value is None else vmap[m.value])
                           for m in self.fw_mutations]
        return graph

    def backward_graph(self, bw_nodes: list[Node], saved_inputs: list[Value],
                       saved_values: list[Value], names: dict[Value, str]) -> Graph:
        joint = self.joint
        graph = Graph(f"{joint.name}_backward")
        vmap: dict[Value, Value] = {}
        # reads of an input the forward overwrites go to its saved copy
        reads: dict[Value, Value] = {}
        for v in saved_inputs:
            vmap[v] = graph.add_input(v.type, v.role, v.name, data=joint.constants.get(v))
        taken = {v.name for v in joint.inputs}
        for v in saved_values:
            name = _fresh_name("saved_" + names[v].lstrip("%"), taken)
            new = graph.add_input(v.type, Role.ARGUMENT, name)
            (reads if v.node is None else vmap)[v] = new
        for t in self.tangents:
            vmap[t] = graph.add_input(t.type, t.role, t.name)
        read_map = {**vmap, **reads}
        _copy_nodes(graph, bw_nodes, read_map)
        graph.outputs = [read_map[v] for v in self.bw_outputs]
        graph.mutations = [Mutation(vmap[m.target], m.field, read_map[m.value])
                           for m in self.bw_mutations]
        return graph


def _sink_side(net: nx.DiGraph) -> set:
    """The sink side of the minimum cut of ``net`` nearest the sink: the vertices that can
    still reach the sink in the residual network of a maximum flow.

    Of the minimum cuts (equal bytes) this one recomputes the least; it is computed
    here rather than taken from ``nx.minimum_cut``'s partition, whose side is an
    implementation detail.
    """
    residual = boykov_kolmogorov(net, _SOURCE, _SINK)
    seen = {_SINK}
    stack = [_SINK]
    while stack:
        v = stack.pop()
        for u in residual.predecessors(v):
            edge = residual[u][v]
            if u not in seen and edge["flow"] < edge["capacity"]:
                seen.add(u)
                stack.append(u)
    return seen


def node_in_forward(node: Node, fw_required: set[Value]) -> bool:
    """Whether the forward needs one of ``node``'s outputs for its own outputs."""
    return any(o in fw_required for o in node.outputs)


def _dependents(graph: Graph, roots: Iterable[Value]) -> set[Value]:
    """The values that depend on one of ``roots`` (themselves included)."""
    dep = set(roots)
    for node in graph.nodes:
        if any(a in dep for a in node.input_values()):
            dep.update(node.outputs)
    return dep


def _closure(graph: Graph, roots: Iterable[Value], stop) -> list[Node]:
    """The nodes computing ``roots`` without going through values in ``stop``, in graph
    order."""
    needed: set[Node] = set()
    stack = [v for v in roots if v.node is not None and v not in stop]
    while stack:
        node = stack.pop().node
        if node in needed:
            continue
        needed.add(node)
        stack.extend(a for a in node.input_values() if a.node is not None and a not in stop)
    return [n for n in graph.nodes if n in needed]


def _copy_nodes(graph: Graph, nodes: list[Node], vmap: dict[Value, Value]) -> None:
    """Append copies of ``nodes`` to ``graph``, reading through and extending ``vmap``."""
    for node in nodes:
        inputs = tuple(vmap[a] if isinstance(a, Value) else a for a in node.inputs)
        copy = Node(node.op, inputs, dict(node.attrs), [o.type for o in node.outputs], node.loc)
        graph.nodes.append(copy)
        vmap.update(zip(node.outputs, copy.outputs))


def _fresh_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``, ... when taken; the result is marked taken."""
    candidate, n = name, 0
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate
