"""Fusion: group nodes that can run as one kernel into ``fused`` nodes.

:func:`fuse` returns a new Graph (its input is left alone) in which each
group is one node of the op ``fused`` (``ir/ops/fused.py``), whose ``body``
attribute is the group as a nested Graph: the body's inputs are the group's
external inputs, its outputs the group's values used outside it (by other
nodes, as graph outputs or as mutation values). :func:`unfuse` inlines the
bodies back; ``interpret(fuse(g))`` equals ``interpret(g)`` bit for bit,
because the body runs the same nodes.

What a group is (the contract codegen builds kernels from):

* ``kind="elementwise"``: elementwise nodes (``OpKind.ELEMENTWISE``) that all
  have the same output shape, the group's *iteration shape*; external inputs
  broadcast into it.
* ``kind="reduction"``: one reduction (``OpKind.REDUCTION``) with a prologue
  of elementwise nodes over the reduction's input shape (the nodes it depends
  on, and unrelated nodes of that shape) and an epilogue of elementwise nodes
  that all share one shape with as many elements as the reduction's output
  (its output shape, or a reshape of it). The epilogue never reads prologue
  values (they live in the other loop).
* ``kind="rows"``: work over an iteration space ``[R, C]``: ``S = L + T`` is the
  input shape of the group's reductions, ``C`` the product of the trailing dims
  ``T`` they reduce, ``R`` that of the leading dims ``L`` (see
  :func:`rows_layout`). Any number of row reductions (sum, mean, amax, amin of a
  float value of shape ``S`` over the dims ``T``, into the same dtype), elementwise
  nodes over ``S`` (*full* values, computed per element), and elementwise nodes
  with ``R`` elements (*row* values, computed once per row: ``rsqrt(var + eps)``),
  which full nodes read broadcast (their shape is ``L`` followed by ones). A row
  node never reads a full value (only through a reduction), and reads at least
  one row value of the group (row values of outside values alone are computed
  outside). *Column* reductions (sum, mean of a float value of shape ``S`` over
  the leading dims ``L``: a LayerNorm's weight and bias gradients) may join: they
  are complete only after every row, so no node of the group reads them. A group
  with reductions is of this kind when the ``reduction`` rules refuse it. A
  column reduction whose group reads a value a rows group also reads joins that
  group (a sibling: no producer links them).
* ``kind="matmul_epilogue"``: one matmul (``OpKind.MATMUL``, computed whole:
  its inputs are never fused into it) and elementwise nodes over one shape
  with as many elements as the matmul's output (bias add, activation, ...).

Views that are pure index arithmetic (:data:`VIEW_OPS`: reshape, view,
expand, permute, narrow, select, basic getitem) are folded into a group when
they sit between its members, or between an external value and members when
every user of the view is in that group (but not when a matmul reads them:
its operands stay outside). A view applied to a value computed
inside the group must keep the (row-major) element order: a reshape, or a
permute/expand that changes nothing; the output of a matmul is materialised,
so any view of it may be folded. Everything else (opaque, indexing, creation,
random ops, other movement ops) stays a node of its own, and a matmul with no
epilogue stays a plain node. Every elementwise and every reduction node ends
up in a group (possibly alone).

Legality: a group never has a path that leaves it and comes back (checked by
reachability on the graph of groups, a ``networkx.DiGraph``), so the fused
graph has a valid order. Each fusion that was tried and refused is recorded
in the ``refused`` attribute of the group of the node that asked, as
``"%16 div + %15 sum: different iteration shape f32[64] vs f32[]"``; the
value names are those of the graph *before* fusion, as the dump of the
previous pass prints them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from ir.graph import Graph, Node, Value
from ir.opdef import OpKind
from ir.ops.fused import FUSED
from ir.printer import value_names
from ir.types import TensorType, normalize_dims

__all__ = ["fuse", "unfuse", "VIEW_OPS", "group_kinds", "rows_layout", "RowsLayout",
           "ROW_REDUCTIONS", "COLUMN_REDUCTIONS"]

# movement ops that are index arithmetic on their single input (no data is moved)
VIEW_OPS = frozenset({"reshape", "view", "expand", "permute", "narrow", "select", "getitem"})

_ELEMENTWISE, _REDUCTION, _MATMUL, _VIEW = "elementwise", "reduction", "matmul", "view"
_GROUP_KIND = {_ELEMENTWISE: "elementwise", _REDUCTION: "reduction", _MATMUL: "matmul_epilogue"}
# reductions a rows group computes per row (over the trailing dims of its iteration space)
ROW_REDUCTIONS = frozenset({"sum", "mean", "amax", "amin"})
# reductions a rows group computes per column (over the leading dims), as per-block partials
COLUMN_REDUCTIONS = frozenset({"sum", "mean"})
_ROW_FLOATS = frozenset({"float32", "float64"})


def _role(node: Node) -> str | None:
    """How fusion treats ``node``: one of the roles above, or None (never fused)."""
    kind = node.op.kind
    if kind is OpKind.ELEMENTWISE:
        return _ELEMENTWISE
    if kind is OpKind.REDUCTION:
        return _REDUCTION
    if kind is OpKind.MATMUL:
        return _MATMUL
    if node.op.name in VIEW_OPS and sum(1 for _ in node.input_values()) == 1:
        return _VIEW
    return None


def _keeps_order(view: Node) -> bool:
    """Whether ``view`` maps each element to the same row-major position (so a value
    computed in the group can be read through it at the iteration index)."""
    name = view.op.name
    if name in ("reshape", "view"):
        return True
    src = next(view.input_values())
    if name == "permute":
        return tuple(view.attrs["dims"]) == tuple(range(len(src.shape)))
    return name == "expand" and view.outputs[0].shape == src.shape


def _type_text(t: TensorType) -> str:
    return f"{t} weak" if t.weak else str(t)


class _Group:
    """A set of nodes becoming one fused node; ``refused`` collects the reasons."""

    __slots__ = ("members", "refused", "first", "rows")

    def __init__(self, node: Node, position: int):
        self.members: set[Node] = {node}
        self.refused: list[str] = []
        self.first = position  # the smallest graph position of a member (for ordering)
        self.rows = False      # set at the end: the group is legal only as rows

    def kind(self) -> str:
        if self.rows:
            return "rows"
        roles = {_role(n) for n in self.members}
        for role in (_MATMUL, _REDUCTION):
            if role in roles:
                return _GROUP_KIND[role]
        return _GROUP_KIND[_ELEMENTWISE]

    def refuse(self, reason: str) -> None:
        if reason not in self.refused:
            self.refused.append(reason)


class _Fuser:
    """The grouping decisions for one graph (see the module docstring)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.position = {n: i for i, n in enumerate(graph.nodes)}
        self.names = value_names(graph)
        self.group_of: dict[Node, _Group] = {}
        # the graph of units (groups, and nodes in no group) for the cycle checks
        self.units = nx.DiGraph()
        self.units.add_nodes_from(graph.nodes)
        for node in graph.nodes:
            for v in node.input_values():
                if v.node is not None:
                    self.units.add_edge(v.node, node)

    # --- names for the reasons ------------------------------------------------------------

    def label(self, node: Node) -> str:
        return f"{self.names.get(node.outputs[0], '%?')} {node.op.name}" if node.outputs \
            else node.op.name

    def unit_label(self, unit) -> str:
        if isinstance(unit, _Group):
            first = min(unit.members, key=self.position.__getitem__)
            return f"the group of {self.label(first)}"
        return self.label(unit)

    # --- units ------------------------------------------------------------------------------

    def unit(self, node: Node):
        return self.group_of.get(node, node)

    def members(self, unit) -> set[Node]:
        return unit.members if isinstance(unit, _Group) else {unit}

    def new_group(self, node: Node) -> _Group:
        group = _Group(node, self.position[node])
        self._absorb(group, node)
        return group

    def _absorb(self, group: _Group, unit) -> None:
        """Merge ``unit`` (a node or another group) into ``group`` in the unit graph."""
        g = self.units
        if unit is not group and unit in g:
            for p in g.predecessors(unit):
                if p is not group:
                    g.add_edge(p, group)
            for s in g.successors(unit):
                if s is not group:
                    g.add_edge(group, s)
            g.remove_node(unit)
        g.add_node(group)
        for node in self.members(unit):
            self.group_of[node] = group
        if isinstance(unit, _Group) and unit is not group:
            group.members |= unit.members
            group.first = min(group.first, unit.first)
            for reason in unit.refused:
                group.refuse(reason)
        else:
            group.members.add(unit)
            group.first = min(group.first, self.position[unit])

    # --- the pass -----------------------------------------------------------------------------

    def run(self) -> list[_Group]:
        for node in self.graph.nodes:
            role = _role(node)
            if role in (_ELEMENTWISE, _REDUCTION, _MATMUL):
                self.new_group(node)
            if role in (_ELEMENTWISE, _REDUCTION):
                for v in dict.fromkeys(node.input_values()):
                    self.join_producer(node, v)
        for g in self.groups():
            if g.kind() == "matmul_epilogue" and len(g.members) == 1:
                del self.group_of[next(iter(g.members))]  # a BLAS call alone, not a kernel
        self.join_column_reductions()
        self.fold_input_views()
        groups = self.groups()
        for g in groups:
            g.rows = self.check_single(g.members) is not None
        return groups

    def groups(self) -> list[_Group]:
        """The groups, by the first graph position of their members."""
        unique = {id(g): g for g in self.group_of.values()}
        return sorted(unique.values(), key=lambda g: g.first)

    def chain(self, v: Value) -> tuple[list[Node], Node | None]:
        """The views ``v`` is read through, and the node under them (None: an input)."""
        views = []
        node = v.node
        while node is not None and _role(node) == _VIEW:
            views.append(node)
            node = next(node.input_values()).node
        return views, node

    def join_producer(self, node: Node, v: Value) -> None:
        """Try to put ``node``'s group and the group producing ``v`` together."""
        views, root = self.chain(v)
        if root is None:
            return
        group = self.group_of[node]
        if _role(root) is None:
            group.refuse(f"{self.label(node)} + {self.label(root)}: "
                         f"{root.op.kind.value} op {root.op.name}")
            return
        units = list(dict.fromkeys([group, self.unit(root), *map(self.unit, views)]))
        if len(units) == 1:
            return
        members = set().union(*map(self.members, units))
        reason = self.check(members)
        if reason is None:
            through = self.cycle(units)
            if through is not None:
                reason = f"would create a cycle through {self.unit_label(through)}"
        if reason is not None:
            group.refuse(f"{self.label(node)} + {self.label(root)}: {reason}")
            return
        for unit in units[1:]:
            self._absorb(group, unit)

    def join_column_reductions(self) -> None:
        """A group whose one reduction is a column reduction joins a rows group reading
        one of the values it reads (no producer links them: ``sum(g, 0)`` beside the
        LayerNorm backward reading ``g``), when legal and no path links the two."""
        readers: dict[Value, dict[int, _Group]] = {}
        for g in self.groups():
            for node in g.members:
                for v in node.input_values():
                    readers.setdefault(v, {})[id(g)] = g
        for g in self.groups():
            reds = [n for n in g.members if _role(n) == _REDUCTION]
            if len(reds) != 1 or _column_reduction(reds[0]) is None:
                continue
            inputs = _external_inputs(sorted(g.members, key=self.position.__getitem__))
            for v in inputs:
                for h in readers.get(v, {}).values():
                    if h is g or self.group_of.get(next(iter(h.members))) is not h:
                        continue   # itself, or a group merged away
                    if not any(_role(n) == _REDUCTION for n in h.members):
                        continue
                    reason = self.check(g.members | h.members)
                    if reason is None and (self._path(g, h) or self._path(h, g)):
                        reason = "a path through other nodes links them"
                    if reason is not None:
                        g.refuse(f"{self.label(reds[0])} + {self.unit_label(h)}: {reason}")
                        continue
                    self._absorb(h, g)
                    break
                else:
                    continue
                break

    def _path(self, a, b) -> bool:
        """Whether a path of the unit graph leads from ``a`` to ``b`` through another
        unit (merging ``a`` and ``b`` would then make a cycle)."""
        g = self.units
        stack = [s for s in g.successors(a) if s is not b]
        seen = set(stack)
        while stack:
            for nxt in g.successors(stack.pop()):
                if nxt is b:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def fold_input_views(self) -> None:
        """Views of values from outside a group, used only by that group, join it."""
        outside = {id(v) for v in self.graph.outputs}
        outside |= {id(m.value) for m in self.graph.mutations if m.value is not None}
        users = self.graph.users()
        for node in reversed(self.graph.nodes):
            if _role(node) != _VIEW or node in self.group_of or id(node.outputs[0]) in outside:
                continue
            readers = users[node.outputs[0]]
            if any(_role(u) == _MATMUL for u in readers):
                continue  # a matmul's operands stay outside its group (BLAS takes views)
            groups = {id(self.group_of.get(u)): self.group_of.get(u) for u in readers}
            if len(groups) != 1 or None in groups.values():
                continue
            (group,) = groups.values()
            reason = self.check(group.members | {node})
            if reason is not None:
                group.refuse(f"{self.label(node)}: {reason}")
                continue
            # no cycle: every user of the view is already in the group
            self._absorb(group, node)

    # --- legality -----------------------------------------------------------------------------

    def cycle(self, units: list) -> object | None:
        """The first unit outside ``units`` on a path that leaves them and comes back,
        or None. One search over the unit graph: a unit explored once without
        reaching ``units`` is not explored again.

        ``units[0]`` is the group of the node being placed, the last node of the graph
        order that any unit holds; nodes after it are still alone, and so are all
        nodes after them, so the search never enters them (this keeps the pass near
        linear on long graphs)."""
        inside = set(units)
        limit = max(self.position[n] for n in units[0].members)
        seen: set = set()
        g = self.units
        for unit in inside:
            for start in g.successors(unit):
                if start in inside or start in seen or self._after(start, limit):
                    continue
                seen.add(start)
                stack = [start]
                while stack:
                    for nxt in g.successors(stack.pop()):
                        if nxt in inside:
                            return start
                        if nxt not in seen and not self._after(nxt, limit):
                            seen.add(nxt)
                            stack.append(nxt)
        return None

    def _after(self, unit, limit: int) -> bool:
        return not isinstance(unit, _Group) and self.position[unit] > limit

    def check(self, members: set[Node]) -> str | None:
        """Why ``members`` cannot be one group (the rules of the module docstring), or
        None when they can (cycles are checked separately)."""
        reason = self.check_single(members)
        if reason is None:
            return None
        roles = {_role(n) for n in members}
        if _MATMUL in roles or _REDUCTION not in roles:
            return reason
        layout = rows_layout(sorted(members, key=self.position.__getitem__), self.label)
        if isinstance(layout, RowsLayout):
            return None
        return f"{reason}; as rows: {layout}"

    def check_single(self, members: set[Node]) -> str | None:
        """Why ``members`` cannot be a group with at most one reduction or matmul, or
        None when they can."""
        order = sorted(members, key=self.position.__getitem__)
        anchors = [n for n in order if _role(n) in (_REDUCTION, _MATMUL)]
        if len(anchors) > 1:
            return (f"one reduction or matmul per group ({self.label(anchors[0])}, "
                    f"{self.label(anchors[1])})")
        for node in order:
            if _role(node) == _VIEW:
                src = self.root_in(next(node.input_values()), members)
                if src is not None and _role(src) != _MATMUL and not _keeps_order(node):
                    return f"{self.label(node)} re-indexes a value computed in the group"
        elementwise = [n for n in order if _role(n) == _ELEMENTWISE]
        if not anchors:
            return self.same_shape(elementwise)
        anchor = anchors[0]
        before = self.related(anchor, members, upward=True)
        if _role(anchor) == _MATMUL:
            fed = [n for n in elementwise if n in before]
            if fed:
                return (f"{self.label(fed[0])} feeds {self.label(anchor)} "
                        f"(matmul inputs are computed whole)")
            return self.same_shape(elementwise, anchor.outputs[0].type)
        return self.check_reduction(anchor, elementwise, members, before)

    def check_reduction(self, red: Node, elementwise: list[Node], members: set[Node],
                        before: set[Node]) -> str | None:
        """The prologue / epilogue rules of a reduction group."""
        src = next(red.input_values(), None)
        in_type = src.type if src is not None else red.outputs[0].type
        after = self.related(red, members, upward=False)
        prologue = {n for n in elementwise if n in before or
                    (n not in after and n.outputs[0].shape == in_type.shape)}
        for node in prologue:
            if node.outputs[0].shape != in_type.shape:
                return (f"different iteration shape {_type_text(node.outputs[0].type)} vs "
                        f"{_type_text(in_type)} (the input of {self.label(red)})")
        epilogue = [n for n in elementwise if n not in prologue]
        reason = self.same_shape(epilogue, red.outputs[0].type)
        if reason is not None:
            return reason
        # the two loops (over the reduction's input, over its output) share no values
        for node in elementwise:
            for v in node.input_values():
                p = self.root_in(v, members)
                if p is not None and p is not red and (p in prologue) != (node in prologue):
                    return (f"{self.label(node)} reads {self.label(p)} of the other loop of "
                            f"{self.label(red)}")
        return None

    def same_shape(self, nodes: list[Node], anchor: TensorType | None = None) -> str | None:
        """Why ``nodes`` do not share one iteration shape (with as many elements as
        ``anchor``, the output of the group's reduction or matmul), or None."""
        if not nodes:
            return None
        first = nodes[0].outputs[0].type
        for node in nodes[1:]:
            t = node.outputs[0].type
            if t.shape != first.shape:
                return f"different iteration shape {_type_text(first)} vs {_type_text(t)}"
        if anchor is not None and math.prod(first.shape) != math.prod(anchor.shape):
            return f"different iteration shape {_type_text(first)} vs {_type_text(anchor)}"
        return None

    def root_in(self, v: Value, members: set[Node]) -> Node | None:
        """The member computing ``v`` under the member views it goes through (None when
        ``v`` comes from outside ``members``)."""
        node = v.node
        while node is not None and node in members and _role(node) == _VIEW:
            node = next(node.input_values()).node
        return node if node in members else None

    def related(self, node: Node, members: set[Node], *, upward: bool) -> set[Node]:
        """The members ``node`` depends on (``upward``) or that depend on it, through
        members only."""
        found: set[Node] = set()
        stack = [node]
        users = None if upward else self._member_users(members)
        while stack:
            n = stack.pop()
            nxt = ([v.node for v in n.input_values() if v.node in members] if upward
                   else users.get(n, ()))
            for m in nxt:
                if m not in found:
                    found.add(m)
                    stack.append(m)
        return found

    @staticmethod
    def _member_users(members: set[Node]) -> dict[Node, list[Node]]:
        users: dict[Node, list[Node]] = {}
        for m in members:
            for v in m.input_values():
                if v.node in members:
                    users.setdefault(v.node, []).append(m)
        return users


# --- the rows contract --------------------------------------------------------------------------

FULL, ROW, COLUMN, OUTSIDE = "full", "row", "column", "outside"


@dataclass(frozen=True)
class RowsLayout:
    """The iteration space of a rows group (see the module docstring): ``shape`` is
    ``S``, its first ``lead`` dims are the rows (``R`` of them), the others the
    reduced trailing dims (``C`` elements per row). ``level`` maps each value the
    nodes compute to ``FULL`` (shape ``S``, one per element), ``ROW`` (``R``
    elements, one per row), ``COLUMN`` (``C`` elements: a column reduction,
    complete after every row) or ``OUTSIDE`` (a view of a value from outside the
    nodes: it is made before the kernel runs)."""

    shape: tuple[int, ...]
    lead: int
    rows: int
    cols: int
    level: dict

    def row_shaped(self, shape: tuple[int, ...]) -> bool:
        """Whether a value of ``shape`` broadcasts against ``S`` as one value per row
        (the shape of the rows followed by ones, leading ones dropped or not)."""
        if len(shape) > len(self.shape):
            return False
        padded = (1,) * (len(self.shape) - len(shape)) + tuple(shape)
        return (padded[:self.lead] == self.shape[:self.lead]
                and all(n == 1 for n in padded[self.lead:]))


def _row_reduction(node: Node) -> tuple[tuple[int, ...], int] | str:
    """(input shape, number of reduced trailing dims) of a row reduction, or why it is
    not one."""
    src = node.inputs[0] if node.inputs else None
    if (node.op.name not in ROW_REDUCTIONS or len(node.outputs) != 1
            or not isinstance(src, Value) or len(node.inputs) != 1):
        return f"{node.op.name} is not a row reduction"
    t, out = src.type, node.outputs[0].type
    if t.dtype.name not in _ROW_FLOATS or out.dtype is not t.dtype:
        return f"{node.op.name} of {_type_text(t)} into {out.dtype} (not a float row reduction)"
    dims = normalize_dims(node.attrs.get("dim"), t.ndim)
    if not dims or dims != tuple(range(t.ndim - len(dims), t.ndim)):
        return f"{node.op.name} over dims {dims} of {_type_text(t)} (not trailing dims)"
    return t.shape, len(dims)


def _column_reduction(node: Node) -> tuple[tuple[int, ...], int] | None:
    """(input shape, number of reduced leading dims) of a sum or mean of a float value
    over its leading dims (keeping at least one trailing dim), or None."""
    src = node.inputs[0] if len(node.inputs) == 1 else None
    if (node.op.name not in COLUMN_REDUCTIONS or len(node.outputs) != 1
            or not isinstance(src, Value)):
        return None
    t = src.type
    if t.dtype.name not in _ROW_FLOATS or node.outputs[0].type.dtype is not t.dtype:
        return None
    dims = normalize_dims(node.attrs.get("dim"), t.ndim)
    if not dims or len(dims) >= t.ndim or dims != tuple(range(len(dims))):
        return None
    return t.shape, len(dims)


def rows_layout(nodes: list[Node], label=None) -> RowsLayout | str:
    """The :class:`RowsLayout` of ``nodes`` (in graph order) as one rows group, or the
    reason they cannot be one (named with ``label(node)``, default the op name).

    Shared by fusion (legality) and ``codegen.rows`` (which generates the kernel from
    it), so the two agree on what a rows group is."""
    label = label or (lambda n: n.op.name)
    inside = set(nodes)
    shape = lead = None
    others: list[tuple[Node, str]] = []   # not row reductions: column ones, or refused
    for node in nodes:
        if _role(node) != _REDUCTION:
            continue
        found = _row_reduction(node)
        if isinstance(found, str):
            others.append((node, found))
            continue
        s, k = found
        if shape is None:
            shape, lead = s, len(s) - k
        elif (s, len(s) - k) != (shape, lead):
            return f"{label(node)} reduces another iteration space ({s}, {k} dims)"
    columns = set()
    for node, reason in others:
        if shape is None or _column_reduction(node) != (shape, lead):
            return f"{label(node)}: {reason}"
        columns.add(node)
    if shape is None:
        return "no row reduction"
    rows, cols = math.prod(shape[:lead]), math.prod(shape[lead:])
    if rows == 0 or cols == 0:
        return f"empty iteration space {shape}"
    layout = RowsLayout(tuple(shape), lead, rows, cols, {})
    level = layout.level

    def level_of(v: Value) -> str:
        return level[v] if v.node in inside else OUTSIDE

    for node in nodes:
        role = _role(node)
        if len(node.outputs) != 1:
            return f"{label(node)} has {len(node.outputs)} outputs"
        out = node.outputs[0]
        ins = [level_of(v) for v in node.input_values()]
        if COLUMN in ins:
            return f"{label(node)} reads a column reduction (complete only after every row)"
        if role == _REDUCTION:
            if ins[0] == ROW:
                return f"{label(node)} reduces a row value"
            level[out] = COLUMN if node in columns else ROW
        elif role == _VIEW:
            if ins[0] == OUTSIDE:
                level[out] = OUTSIDE
            elif not _keeps_order(node):
                return f"{label(node)} re-indexes a value computed in the group"
            elif ins[0] == FULL and out.shape == layout.shape:
                level[out] = FULL
            elif ins[0] == ROW and math.prod(out.shape) == rows:
                level[out] = ROW
            else:
                return f"{label(node)} changes the iteration shape to {_type_text(out.type)}"
        elif role == _ELEMENTWISE:
            if out.shape == layout.shape:
                level[out] = FULL
                for v in node.input_values():
                    if level_of(v) == ROW and not layout.row_shaped(v.shape):
                        return (f"{label(node)} reads {_type_text(v.type)} not broadcast per "
                                f"row of {shape}")
            elif math.prod(out.shape) == rows:
                level[out] = ROW
                if FULL in ins:
                    return f"{label(node)} reads a full value into a row value"
                if ROW not in ins:
                    # row values of outside inputs alone are computed outside: inside, work
                    # that others may wait on (a loss's weights) would wait for the rows
                    return f"{label(node)} computes a row value from outside values only"
            else:
                return (f"different iteration shape {_type_text(out.type)} vs rows of "
                        f"{_type_text(TensorType(shape, out.type.dtype))}")
        else:
            return f"{label(node)}: {node.op.kind.value} op"
    return layout


# --- building the fused graph ----------------------------------------------------------------

def fuse(graph: Graph) -> Graph:
    """A new Graph in which each fusible group of ``graph``'s nodes is one ``fused`` node
    (see the module docstring); ``graph`` itself is not changed."""
    groups = _Fuser(graph).run()
    group_of = {n: g for g in groups for n in g.members}
    position = {n: i for i, n in enumerate(graph.nodes)}
    used_outside = {id(v) for v in graph.outputs}
    used_outside |= {id(m.value) for m in graph.mutations if m.value is not None}
    users = graph.users()

    # the order: the graph of units, sorted topologically, ties by first graph position
    units = nx.DiGraph()
    for node in graph.nodes:
        unit = group_of.get(node, node)
        units.add_node(unit)
        for v in node.input_values():
            if v.node is not None and group_of.get(v.node, v.node) is not unit:
                units.add_edge(group_of.get(v.node, v.node), unit)

    def first_position(unit) -> int:
        return unit.first if isinstance(unit, _Group) else position[unit]

    out = Graph(graph.name)
    env = _copy_inputs(graph, out)
    count = 0
    for unit in nx.lexicographical_topological_sort(units, key=first_position):
        if not isinstance(unit, _Group):
            _copy_node(out, unit, env)
            continue
        members = sorted(unit.members, key=position.__getitem__)
        outputs = [o for n in members for o in n.outputs
                   if id(o) in used_outside or any(u not in unit.members for u in users[o])]
        body = _body(members, outputs, f"{unit.kind()}_{count}")
        count += 1
        attrs: dict = {"kind": unit.kind()}
        if unit.refused:
            attrs["refused"] = tuple(unit.refused)
        attrs["body"] = body
        inputs = [env[v] for v in _external_inputs(members)]
        node = out.add_node(FUSED, inputs, attrs, [o.type for o in body.outputs])
        env.update(zip(outputs, node.outputs))
    out.outputs = [env[v] for v in graph.outputs]
    for m in graph.mutations:
        out.mutate(env[m.target], m.field, None if m.value is None else env[m.value])
    return out


def _copy_inputs(graph: Graph, out: Graph) -> dict[Value, Value]:
    env: dict[Value, Value] = {}
    for v in graph.inputs:
        env[v] = out.add_input(v.type, v.role, v.name, graph.constants.get(v))
    return env


def _copy_node(out: Graph, node: Node, env: dict) -> None:
    args = [env[a] if isinstance(a, Value) else a for a in node.inputs]
    new = out.add_node(node.op, args, dict(node.attrs), [o.type for o in node.outputs],
                       loc=node.loc)
    env.update(zip(node.outputs, new.outputs))


def _external_inputs(members: list[Node]) -> list[Value]:
    inside = set(members)
    return list(dict.fromkeys(v for n in members for v in n.input_values()
                              if v.node not in inside))


def _body(members: list[Node], outputs: list[Value], name: str) -> Graph:
    """The group as a Graph: external inputs (named after graph inputs where they are
    ones), the member nodes, the values used outside as outputs."""
    body = Graph(name)
    env: dict[Value, Value] = {}
    taken: set[str] = set()
    for i, v in enumerate(_external_inputs(members)):
        name = v.name if v.node is None and v.name not in taken else f"in{i}"
        while name in taken:
            name += "_"
        taken.add(name)
        env[v] = body.add_input(v.type, name=name)
    for node in members:
        _copy_node(body, node, env)
    body.outputs = [env[o] for o in outputs]
    return body


def unfuse(graph: Graph) -> Graph:
    """A new Graph with every ``fused`` node's body inlined in its place (the inverse
    of :func:`fuse` up to node order)."""
    out = Graph(graph.name)
    env = _copy_inputs(graph, out)
    _inline(graph.nodes, out, env)
    out.outputs = [env[v] for v in graph.outputs]
    for m in graph.mutations:
        out.mutate(env[m.target], m.field, None if m.value is None else env[m.value])
    return out


def _inline(nodes: Iterable[Node], out: Graph, env: dict) -> None:
    for node in nodes:
        if node.op is not FUSED:
            _copy_node(out, node, env)
            continue
        body = node.attrs["body"]
        inner = {b: env[a] if isinstance(a, Value) else a for b, a in zip(body.inputs,
                                                                          node.inputs)}
        _inline(body.nodes, out, inner)
        env.update(zip(node.outputs, (inner[o] for o in body.outputs)))


def group_kinds(graph: Graph) -> dict[str, int]:
    """How many fused nodes of each kind ``graph`` holds (for reports and tests)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if node.op is FUSED:
            counts[node.attrs["kind"]] = counts.get(node.attrs["kind"], 0) + 1
    return counts
