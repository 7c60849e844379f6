"""Scheduling and memory planning: a run order that keeps peak memory low, and buffers.

The node order of a Graph is its run order. :func:`schedule` reorders the nodes
(a pure ``Graph -> Graph`` pass) so that fewer bytes are alive at once;
:func:`plan_memory` then decides, for that order, which buffer each node output
is written into, reusing the buffers of dead values.

The memory model shared by both:

* A value's *storage* is its own buffer, except for the outputs of view ops
  (``OpDef.is_view``), which alias the storage of their input 0. A storage is
  alive from the node that creates it until the last node that reads it
  through any of its aliases has run.
* Graph inputs are the caller's: they are never counted, freed or reused.
* *Exposed* values (:func:`passes.graph_utils.exposed_values`: outputs, mutation
  values and the storages they view) belong to the caller after the call: their
  storage lives to the end and is never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.opdef import OpKind
from ir.printer import format_loc, format_node, value_names
from passes.graph_utils import copy_graph, exposed_values

__all__ = ["schedule", "peak_live_bytes", "plan_memory", "MemoryPlan", "Buffer", "format_plan"]


# views that keep row-major element order (on a contiguous buffer)
_FLAT_VIEWS = frozenset({"reshape", "view"})


def _nbytes(v: Value) -> int:
    return v.type.numel * v.type.dtype.itemsize


class _Storage:
    """The storage model of a graph (see the module docstring)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.root: dict[Value, Value] = {v: v for v in graph.inputs}
        # values whose elements are their storage's, in row-major order (the storage
        # itself, or reshapes of it): a kernel may index them as the flat buffer
        self.flat: set[Value] = set(graph.inputs)
        for node in graph.nodes:
            base = node.inputs[0] if node.op.is_view and node.inputs else None
            for o in node.outputs:
                self.root[o] = self.root[base] if isinstance(base, Value) else o
                if self.root[o] is o or (base in self.flat and node.op.name in _FLAT_VIEWS):
                    self.flat.add(o)
        self.exposed = {self.root[v] for v in exposed_values(graph)}
        self.inputs = set(graph.inputs)

    def owned(self, root: Value) -> bool:
        """Whether the program allocates and may free ``root``'s storage."""
        return root not in self.inputs and root not in self.exposed

    def roots_read(self, node: Node) -> list[Value]:
        """The storages ``node`` reads, each once, in input order (plans are deterministic)."""
        return list(dict.fromkeys(self.root[a] for a in node.input_values()))

    def created(self, node: Node) -> list[Value]:
        """The storages ``node`` allocates (its outputs that are not views)."""
        return [o for o in node.outputs if self.root[o] is o]

    def readers(self, nodes: Sequence[Node]) -> dict[Value, int]:
        """How many of ``nodes`` read each storage (through any alias)."""
        count: dict[Value, int] = dict.fromkeys(self.root.values(), 0)
        for node in nodes:
            for r in self.roots_read(node):
                count[r] += 1
        return count


def peak_live_bytes(graph: Graph, order: Sequence[Node] | None = None) -> int:
    """The most bytes of program-allocated storage alive at once when ``graph``'s nodes
    run in ``order`` (default: the graph's), each storage freed after its last reader.

    While a node runs, its outputs and all its inputs are alive. Graph inputs are not
    counted; exposed storages are never freed.
    """
    nodes = graph.nodes if order is None else order
    st = _Storage(graph)
    remaining = st.readers(nodes)
    live = peak = 0
    for node in nodes:
        created = st.created(node)
        live += sum(_nbytes(o) for o in created)
        peak = max(peak, live)
        for r in st.roots_read(node):
            remaining[r] -= 1
            if remaining[r] == 0 and st.owned(r):
                live -= _nbytes(r)
        live -= sum(_nbytes(o) for o in created if remaining[o] == 0 and st.owned(o))
    return peak


def schedule(graph: Graph) -> Graph:
    """A copy of ``graph`` whose node order (the run order) keeps peak live bytes low.

    Contract:

    * the result computes the same outputs and mutations: its order is a
      topological order of the data dependencies; mutation records are unchanged
      (they apply when the program ends);
    * random ops (``OpKind.RANDOM``) keep their relative order, so side effects
      on generators happen as written;
    * nodes are moved whole: the bodies of ``fused`` nodes are untouched;
    * :func:`peak_live_bytes` of the result is at most that of ``graph`` (when the
      greedy order is no better, the given order is kept).

    The order is greedy list scheduling: of the nodes whose inputs are ready, run the
    one that frees the most bytes net of what it allocates; ties go to the earlier
    node of the given order. ``graph`` is not changed.
    """
    new = copy_graph(graph)
    order = _greedy_order(new)
    if peak_live_bytes(new, order) < peak_live_bytes(new):
        new.nodes = order
    return new


def _greedy_order(graph: Graph) -> list[Node]:
    st = _Storage(graph)
    position = {n: i for i, n in enumerate(graph.nodes)}
    producer = {o: n for n in graph.nodes for o in n.outputs}
    succs: dict[Node, set[Node]] = {n: set() for n in graph.nodes}
    indegree = dict.fromkeys(graph.nodes, 0)
    last_random = None
    for node in graph.nodes:
        preds = {producer[a] for a in node.input_values() if a in producer}
        if node.op.kind is OpKind.RANDOM:
            if last_random is not None:
                preds.add(last_random)
            last_random = node
        for p in preds:
            succs[p].add(node)
        indegree[node] = len(preds)
    remaining = st.readers(graph.nodes)

    def gain(node: Node) -> int:
        """Bytes freed by running ``node`` now, minus bytes it leaves allocated."""
        freed = sum(_nbytes(r) for r in st.roots_read(node)
                    if remaining[r] == 1 and st.owned(r))
        kept = sum(_nbytes(o) for o in st.created(node) if remaining[o] > 0 or not st.owned(o))
        return freed - kept

    ready = [n for n in graph.nodes if indegree[n] == 0]
    order: list[Node] = []
    while ready:
        best = max(ready, key=lambda n: (gain(n), -position[n]))
        ready.remove(best)
        order.append(best)
        for r in st.roots_read(best):
            remaining[r] -= 1
        for s in succs[best]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    assert len(order) == len(graph.nodes), "the graph's dependencies have a cycle"
    return order


# --- the buffer plan --------------------------------------------------------------------------

@dataclass(frozen=True)
class Buffer:
    """One allocation: ``nbytes`` bytes holding ``dtype`` elements.

    ``fresh`` buffers hold values the caller receives (outputs, mutation values):
    the runtime allocates them anew on every call. The others form the *arena*,
    which the runtime may keep and reuse across calls.
    """

    id: int
    nbytes: int
    dtype: DType
    fresh: bool


@dataclass
class MemoryPlan:
    """Where each node output of a graph lives, for the graph's node order.

    * ``buffer_of[v]``: the buffer id of node output ``v`` (a view's is its base's);
      None for views of graph inputs, which live in the caller's storage.
    * ``inplace[v]``: the dying input of ``v``'s (elementwise) node whose buffer
      ``v`` is written into.
    * ``free_after[i]``: the values whose last use is node ``i`` (node outputs
      nobody reads are listed at their own node); the runtime may drop them after
      it. Graph inputs and exposed values are never listed.
    * ``release_after[i]``: the buffer ids that become free for reuse after node
      ``i``.
    * ``peak_bytes_unplanned``: the bytes of every node output in its own buffer
      (no reuse); ``live_peak_bytes``: :func:`peak_live_bytes` (each storage freed
      after its last use, without in-place reuse); ``peak_bytes_planned``: the
      bytes of all planned buffers (``arena_bytes`` + ``fresh_bytes``).
    """

    buffers: list[Buffer]
    buffer_of: dict[Value, int | None]
    inplace: dict[Value, Value] = field(default_factory=dict)
    free_after: list[list[Value]] = field(default_factory=list)
    release_after: list[list[int]] = field(default_factory=list)
    peak_bytes_unplanned: int = 0
    live_peak_bytes: int = 0

    @property
    def arena_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if not b.fresh)

    @property
    def fresh_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b.fresh)

    @property
    def peak_bytes_planned(self) -> int:
        return self.arena_bytes + self.fresh_bytes


def plan_memory(graph: Graph) -> MemoryPlan:
    """The buffer plan of ``graph`` run in its node order (see :class:`MemoryPlan`).

    Contract:

    * each node output that is not a view gets a buffer; a buffer freed by a dead
      storage (after its last reader ran) is reused by a later output of the same
      nbytes and dtype (the most recently freed first);
    * in-place reuse: an elementwise node writes its output into the buffer of an
      input that dies at that node, when the input has the output's shape and dtype,
      is its storage or a reshape of it, and is the node's only read of that storage (a
      kernel reading ``x[j]`` through a view while writing ``out[i]`` into ``x``
      would read overwritten data). ``fused`` groups are opaque here: whether their
      kernels may write in place is codegen's decision;
    * graph inputs are never written or reused;
    * exposed values (outputs, mutation values and what they view) get ``fresh``
      buffers that are never reused by anything and never come from the arena, so
      nothing the caller holds is a buffer a later call writes.

    ``graph`` is not changed.
    """
    st = _Storage(graph)
    remaining = st.readers(graph.nodes)
    value_left = _value_readers(graph)
    exposed_all = exposed_values(graph)
    buffers: list[Buffer] = []
    buffer_of: dict[Value, int | None] = {}
    inplace: dict[Value, Value] = {}
    free_after: list[list[Value]] = []
    release_after: list[list[int]] = []
    pool: dict[tuple[int, DType], list[int]] = {}

    def new_buffer(v: Value, fresh: bool) -> int:
        buffers.append(Buffer(len(buffers), _nbytes(v), v.type.dtype, fresh))
        return len(buffers) - 1

    for node in graph.nodes:
        dying = [r for r in st.roots_read(node) if remaining[r] == 1 and st.owned(r)]
        taken: set[Value] = set()
        for o in node.outputs:
            root = st.root[o]
            if root is not o:  # a view: its base's buffer (None: a graph input's storage)
                buffer_of[o] = buffer_of.get(root)
                continue
            if o in st.exposed:
                buffer_of[o] = new_buffer(o, fresh=True)
                continue
            donor = _inplace_donor(node, o, [r for r in dying if r not in taken], st)
            if donor is not None:
                taken.add(st.root[donor])
                inplace[o] = donor
                buffer_of[o] = buffer_of[donor]
                continue
            free = pool.get((_nbytes(o), o.type.dtype))
            buffer_of[o] = free.pop() if free else new_buffer(o, fresh=False)
        released = []
        for r in st.roots_read(node):
            remaining[r] -= 1
            if remaining[r] == 0 and st.owned(r) and r not in taken:
                released.append(r)
        released += [o for o in st.created(node) if remaining[o] == 0 and st.owned(o)]
        ids = []
        for r in released:
            ids.append(buffer_of[r])
            pool.setdefault((_nbytes(r), r.type.dtype), []).append(buffer_of[r])
        release_after.append(ids)
        dead = []
        for a in dict.fromkeys(node.input_values()):
            value_left[a] -= 1
            if value_left[a] == 0 and a not in st.inputs and a not in exposed_all:
                dead.append(a)
        dead += [o for o in node.outputs if value_left[o] == 0 and o not in exposed_all]
        free_after.append(dead)
    unplanned = sum(_nbytes(o) for n in graph.nodes for o in st.created(n))
    return MemoryPlan(buffers, buffer_of, inplace, free_after, release_after, unplanned,
                      peak_live_bytes(graph))


def _value_readers(graph: Graph) -> dict[Value, int]:
    """How many nodes read each value (directly)."""
    count = dict.fromkeys(graph.values(), 0)
    for node in graph.nodes:
        for a in set(node.input_values()):
            count[a] += 1
    return count


def _inplace_donor(node: Node, out: Value, dying: list[Value], st: _Storage) -> Value | None:
    """The input of elementwise ``node`` whose buffer ``out`` may take (see
    :func:`plan_memory`), or None. ``dying`` holds the storages dying at ``node``."""
    if node.op.kind is not OpKind.ELEMENTWISE:
        return None
    for a in dict.fromkeys(node.input_values()):
        root = st.root[a]
        if root in dying and a in st.flat and a.type.shape == out.type.shape \
                and a.type.dtype is out.type.dtype \
                and all(b is a or st.root[b] is not root for b in node.input_values()):
            return a
    return None


def format_plan(graph: Graph, plan: MemoryPlan) -> str:
    """The plan as text: one line per node, its outputs' buffers and what it releases.

    ``%1 = neg(%0) : f32[4]  => b0 (in place of %0); release b1``; ``*`` marks a
    fresh buffer, ``input`` a view of a graph input's storage.
    """
    names = value_names(graph)
    lines = []
    for i, node in enumerate(graph.nodes):
        text = format_node(node, names)
        if node.loc is not None:  # the plan is about buffers, not source lines
            text = text.removesuffix("  " + format_loc(str(node.loc)))
        where = []
        for o in node.outputs:
            b = plan.buffer_of[o]
            item = "input" if b is None else f"b{b}" + ("*" if plan.buffers[b].fresh else "")
            if o in plan.inplace:
                item += f" (in place of {names[plan.inplace[o]]})"
            where.append(item)
        text += "  => " + ", ".join(where)
        if plan.release_after[i]:
            text += "; release " + ", ".join(f"b{b}" for b in plan.release_after[i])
        lines.append(text)
    return "\n".join(lines)

