"""Simplification passes: dead-code elimination, common-subexpression elimination,
constant folding and exact algebraic identities, and :func:`simplify`, which chains
them until nothing changes.

Every public pass is pure (``Graph -> Graph``: it copies its input and edits the
copy). Each has an in-place worker (``_dce`` ...) returning whether it changed
anything, so :func:`simplify` copies once and iterates to a fixed point.

Aliasing is part of the semantics these passes keep. Eagerly, the results of
non-view ops own fresh memory, and the caller may write into a returned tensor or
a ``.grad``. So no rewrite makes an *exposed* value (a graph output, a mutation
value, or a value one of those views; :func:`passes.graph_utils.exposed_values`)
share storage with a graph input or with another exposed value where the original
graph gave it its own: ``return clone(x)`` keeps its clone, and two identical
``zeros`` written to two ``.grad`` attributes stay two nodes.

Graph inputs are never removed or reordered (their positions are the calling
convention), even when a pass leaves them unused.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Graph, Node, Role, Value, live_values
from ir.interpret import run_node
from ir.opdef import REGISTRY, OpKind, infer_type
from passes.graph_utils import (
    copy_graph,
    exposed_values,
    remove_nodes,
    replace_uses,
    value_key,
)

__all__ = ["dce", "cse", "fold_constants", "algebraic", "transpose_matmul", "simplify",
           "FOLD_MAX_ELEMENTS"]

# constants larger than this stay computed at run time (they would bloat the IR text)
FOLD_MAX_ELEMENTS = 1024

_INDEX_CONSTANT = REGISTRY["index_constant"]


def _resolve_inputs(node: Node, subst: dict[Value, Value]) -> None:
    """Make ``node`` read the replacements in ``subst`` (chains already collapsed)."""
    if subst and any(isinstance(a, Value) and a in subst for a in node.inputs):
        node.inputs = tuple(subst.get(a, a) if isinstance(a, Value) else a for a in node.inputs)


# --- dce ------------------------------------------------------------------------------------

def _dce(graph: Graph) -> bool:
    roots = list(graph.outputs) + [m.value for m in graph.mutations if m.value is not None]
    # an indexing op may raise from data (an index out of range): eagerly it raises
    # whether or not its result is used, so it stays
    roots += [o for n in graph.nodes if n.op.kind is OpKind.INDEXING for o in n.outputs]
    live = live_values(graph, roots)
    dead = [n for n in graph.nodes if not any(o in live for o in n.outputs)]
    remove_nodes(graph, dead)
    return bool(dead)


def dce(graph: Graph) -> Graph:
    """Dead-code elimination: drop the nodes none of whose outputs reach a graph output
    or a mutation value.

    Only uses count: an unused random draw goes; a random node whose new key feeds a
    mutation stays because the mutation reads it. Indexing nodes stay even when
    unused: they may raise from data (an index out of range), as eagerly. Inputs are
    kept.
    """
    g = copy_graph(graph)
    _dce(g)
    return g


# --- cse ------------------------------------------------------------------------------------

def _cse_key(node: Node) -> tuple:
    attrs = tuple(sorted((k, value_key(v)) for k, v in node.attrs.items()))
    return (node.op, tuple(value_key(a) for a in node.inputs), attrs)


def _cse(graph: Graph) -> bool:
    exposed = exposed_values(graph)
    first_of: dict[tuple, Node] = {}
    subst: dict[Value, Value] = {}
    merged: list[Node] = []
    for node in graph.nodes:
        _resolve_inputs(node, subst)
        if node.op.kind is OpKind.RANDOM:  # a draw is new numbers each time it is written
            continue
        key = _cse_key(node)
        first = first_of.setdefault(key, node)
        if first is node:
            continue
        pairs = list(zip(first.outputs, node.outputs))
        if any(a.type != b.type or (a in exposed and b in exposed) for a, b in pairs):
            continue  # two exposed values must keep two storages
        for a, b in pairs:
            subst[b] = a
            if b in exposed:
                exposed.add(a)
        merged.append(node)
    replace_uses(graph, subst)
    remove_nodes(graph, merged)
    return bool(merged)


def cse(graph: Graph) -> Graph:
    """Common-subexpression elimination: a node with the same op, inputs and attributes
    as an earlier node is replaced by it.

    Scalar inputs and attributes compare by value as written in the IR text (``1``,
    ``1.0`` and ``True`` differ, as do ``0.0`` and ``-0.0``; ``nan`` equals ``nan``).
    Random ops (``OpKind.RANDOM``) never merge. Creation ops with equal attributes
    do. Two nodes do not merge when both have exposed outputs (see the module
    docstring): ``zeros`` given to two ``.grad`` attributes stay distinct.
    """
    g = copy_graph(graph)
    _cse(g)
    return g


# --- constant folding -----------------------------------------------------------------------

def _is_leaf(node: Node) -> bool:
    """A creation node with no tensor inputs: already as cheap as a constant."""
    return node.op.kind is OpKind.CREATION and next(node.input_values(), None) is None


def _evaluate(node: Node, known: dict[Value, object]) -> tuple | None:
    """``node``'s outputs from the reference implementation, or None when it raises
    (it then stays in the graph and raises at run time, as eagerly)."""
    args = [known[a] if isinstance(a, Value) else a for a in node.inputs]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return run_node(node, args)
    except Exception:
        return None


def _short_float(x: np.floating) -> float:
    """The Python float with the shortest text that converts back to the same bits of
    ``x``'s (narrow) dtype, so the IR shows ``0.1`` for a float32 0.1, not
    ``0.10000000149011612``; the exact value when the short text would not round trip
    (a double rounding through float64)."""
    short = float(str(x))
    same = np.asarray(short, dtype=x.dtype).tobytes() == np.asarray(x).tobytes()
    return short if same else float(x)


def _literal_values(flat: np.ndarray) -> tuple:
    if flat.dtype.kind == "f" and flat.dtype != np.float64:
        return tuple(_short_float(x) for x in flat)
    return tuple(flat.tolist())


def _constant_node(data: np.ndarray, out: Value, loc: str | None) -> Node:
    """An ``index_constant`` node holding ``data`` (one value when all are bit-equal)."""
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.size > 1:
        rows = flat.view(np.uint8).reshape(flat.size, -1)
        if (rows == rows[0]).all():
            flat = flat[:1]
    t = out.type
    attrs = {"values": _literal_values(flat), "shape": t.shape, "dtype": t.dtype,
             "device": t.device}
    return Node(_INDEX_CONSTANT, (), attrs, [infer_type(_INDEX_CONSTANT, (), attrs)], loc)


def _fold(graph: Graph, max_elements: int = FOLD_MAX_ELEMENTS) -> bool:
    known: dict[Value, object] = {v: graph.constants[v] for v in graph.inputs
                                  if v.role is Role.CONSTANT}
    candidates: list[Node] = []
    for node in graph.nodes:
        if node.op.kind is OpKind.RANDOM or any(
                o.type.weak or o.type.numel > max_elements for o in node.outputs):
            continue
        if not all(a in known for a in node.input_values()):
            continue
        results = _evaluate(node, known)
        if results is not None:
            known.update(zip(node.outputs, results))
            candidates.append(node)
    if not candidates:
        return False

    exposed = exposed_values(graph)
    users = graph.users()
    folded = set(candidates)

    def needed(o: Value) -> bool:
        """Whether ``o`` must exist after folding (read by a node that stays, or exposed)."""
        return o in exposed or any(u not in folded for u in users[o])

    # decide from the last candidate back, so a kept node keeps its inputs needed
    for node in reversed(candidates):
        if _is_leaf(node) and any(needed(o) for o in node.outputs):
            folded.discard(node)  # zeros/full/arange stay as they are, not as a literal
        elif node.op.is_view and any(o in exposed for o in node.outputs):
            folded.discard(node)  # a returned view must keep sharing its base's storage
    if not folded:
        return False

    subst: dict[Value, Value] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        if node not in folded:
            nodes.append(node)
            continue
        for o in node.outputs:
            if needed(o):
                const = _constant_node(known[o], o, node.loc)
                nodes.append(const)
                subst[o] = const.outputs[0]
    graph.nodes = nodes
    replace_uses(graph, subst)
    return True


def fold_constants(graph: Graph, *, max_elements: int = FOLD_MAX_ELEMENTS) -> Graph:
    """Constant folding: nodes whose tensor inputs are all constant are evaluated now.

    Constant means a CONSTANT graph input (data in ``graph.constants``), a creation
    node with no tensor inputs (``zeros``, ``full``, ``arange``, ``index_constant``)
    or a node folded before; scalar inputs are literals. A node is evaluated with
    its op's reference implementation (:func:`ir.interpret.run_node`) when it is not
    random, each output has at most ``max_elements`` elements and is not weak, and
    the implementation does not raise (a node that raises stays, to raise at run
    time). Each folded value that something still reads becomes an
    ``index_constant`` node (the IR's constant literal: its ``values`` attribute,
    one value when all are equal) at the folded node's place; the other folded
    nodes disappear.

    Creation nodes with no tensor inputs are already constants: they are removed only
    when everything reading them was folded. A view whose result is exposed is not
    folded (the literal would stop sharing storage with its base). No graph input is
    added, so the calling convention is unchanged.
    """
    g = copy_graph(graph)
    _fold(g, max_elements)
    return g


# --- algebraic identities -------------------------------------------------------------------
# Each rule takes a node (inputs already rewritten) and returns the Value it equals, or
# None. The driver checks that the value has exactly the node's output type (shape, dtype,
# device, weakness), so a rule may ignore promotion: `x * 1.0` with `x` an int tensor
# is a float result and is left alone.

def _literal(x) -> bool:
    return type(x) in (bool, int, float)


def _is_one(x) -> bool:
    return _literal(x) and x == 1


def _is_negative_zero(x) -> bool:
    return type(x) is float and x == 0 and math.copysign(1.0, x) < 0


def _is_float(node: Node) -> bool:
    return node.outputs[0].type.dtype.category == CATEGORY_FLOAT


def _mul_identity(node: Node) -> Value | None:
    """``x * 1`` and ``1 * x`` (exact in IEEE arithmetic, -0.0 and nan included)."""
    a, b = node.inputs
    if isinstance(a, Value) and _is_one(b):
        return a
    if isinstance(b, Value) and _is_one(a):
        return b
    return None


def _is_additive_identity(c, node: Node) -> bool:
    # x + 0.0 maps -0.0 to +0.0, so for floats only -0.0 is the identity of +
    if not _literal(c) or c != 0:
        return False
    return _is_negative_zero(c) if _is_float(node) else True


def _add_identity(node: Node) -> Value | None:
    """``x + (-0.0)`` for floats, ``x + 0`` otherwise (either side)."""
    a, b = node.inputs
    if isinstance(a, Value) and _is_additive_identity(b, node):
        return a
    if isinstance(b, Value) and _is_additive_identity(a, node):
        return b
    return None


def _sub_identity(node: Node) -> Value | None:
    """``x - 0`` (``x - (-0.0)`` is ``x + 0.0``, not an identity for floats)."""
    a, b = node.inputs
    if isinstance(a, Value) and _literal(b) and b == 0 and not _is_negative_zero(b):
        return a
    return None


def _div_identity(node: Node) -> Value | None:
    """``x / 1``; with a rounding mode only for integers (``floor(x / 1)`` rounds floats)."""
    a, b = node.inputs
    if not (isinstance(a, Value) and _is_one(b)):
        return None
    if node.attrs.get("rounding_mode") is not None and _is_float(node):
        return None
    return a


def _pow_identity(node: Node) -> Value | None:
    """``x ** 1``."""
    a, b = node.inputs
    if isinstance(a, Value) and type(b) in (int, float) and b == 1:
        return a
    return None


def _neg_neg(node: Node) -> Value | None:
    """``-(-x)`` (exact; integer negation wraps both times)."""
    (a,) = node.inputs
    if isinstance(a, Value) and a.node is not None and a.node.op.name == "neg":
        inner = a.node.inputs[0]
        return inner if isinstance(inner, Value) else None
    return None


def _same_type_identity(node: Node) -> Value | None:
    """reshape/view/expand to the same shape, to_dtype to the same dtype, clone: the
    driver keeps the rewrite only when the type is unchanged and aliasing allows it."""
    a = node.inputs[0]
    return a if isinstance(a, Value) else None


def _normalized_dims(dims, ndim: int) -> tuple[int, ...]:
    return tuple(d + ndim if d < 0 else d for d in dims)


def _permute_identity(node: Node) -> Value | None:
    """A permute by the identity, or one that undoes the permute it reads."""
    a = node.inputs[0]
    if not isinstance(a, Value):
        return None
    dims = _normalized_dims(node.attrs["dims"], a.type.ndim)
    if dims == tuple(range(len(dims))):
        return a
    inner = a.node
    if inner is None or inner.op is not node.op or not isinstance(inner.inputs[0], Value):
        return None
    first = _normalized_dims(inner.attrs["dims"], len(dims))
    # output dim i of the pair is input dim first[dims[i]]
    if all(first[d] == i for i, d in enumerate(dims)):
        return inner.inputs[0]
    return None


_ALGEBRAIC_RULES: dict[str, Callable[[Node], Value | None]] = {
    "mul": _mul_identity,
    "add": _add_identity,
    "sub": _sub_identity,
    "div": _div_identity,
    "pow": _pow_identity,
    "neg": _neg_neg,
    "reshape": _same_type_identity,
    "view": _same_type_identity,
    "expand": _same_type_identity,
    "to_dtype": _same_type_identity,
    "clone": _same_type_identity,
    "permute": _permute_identity,
}


def _may_replace(node: Node, new: Value, exposed: set[Value]) -> bool:
    """Whether ``node``'s output may become ``new`` without new aliasing.

    An unexposed output always may. An exposed output of a non-view node (fresh
    memory) may only become an unexposed value that also owns fresh memory (the
    output of a non-view node): nothing else could observe that storage.
    """
    if node.outputs[0] not in exposed:
        return True
    return (not node.op.is_view and new not in exposed and new.node is not None
            and not new.node.op.is_view)


def _algebraic(graph: Graph) -> bool:
    exposed = exposed_values(graph)
    subst: dict[Value, Value] = {}
    rewritten: list[Node] = []
    for node in graph.nodes:
        _resolve_inputs(node, subst)
        rule = _ALGEBRAIC_RULES.get(node.op.name)
        if rule is None or len(node.outputs) != 1:
            continue
        new = rule(node)
        out = node.outputs[0]
        if new is None or new.type != out.type or not _may_replace(node, new, exposed):
            continue
        subst[out] = new
        if out in exposed:
            exposed.add(new)
        rewritten.append(node)
    replace_uses(graph, subst)
    remove_nodes(graph, rewritten)
    return bool(rewritten)


def algebraic(graph: Graph) -> Graph:
    """Exact algebraic identities: a node equal to one of its inputs is replaced by it.

    ``x * 1``, ``1 * x``, ``x / 1``, ``x ** 1``, ``x - 0``, ``x + 0`` for integers and
    ``x + (-0.0)`` for floats (``x + 0.0`` turns -0.0 into +0.0, so it stays),
    ``-(-x)``, reshape/view/expand to the same shape, ``to_dtype`` to the same dtype,
    permutes that are the identity or undo the permute they read, and ``clone``.

    A rewrite happens only when the input has exactly the node's type (shape, dtype,
    device; a weak scalar operand that would change the result dtype blocks it), and
    only when it creates no aliasing (see the module docstring): an exposed result
    (returned, written by a mutation, or viewed by one of those) is replaced only
    when it is a non-view result and the input is an unexposed non-view result, so
    ``return clone(x)`` of an input keeps its clone. Rewritten nodes are removed;
    nodes they leave unused are left to :func:`dce`.
    """
    g = copy_graph(graph)
    _algebraic(g)
    return g


# --- transposed matmuls ---------------------------------------------------------------------

_PERMUTE, _MM = REGISTRY["permute"], REGISTRY["mm"]


def _is_transpose(node: Node | None) -> bool:
    return (node is not None and node.op is _PERMUTE and isinstance(node.inputs[0], Value)
            and node.inputs[0].type.ndim == 2
            and _normalized_dims(node.attrs["dims"], 2) == (1, 0))


def _transposed(a: Value, loc: str | None, new: list[Node]) -> Value:
    """``a.T`` as a Value: the input of a transpose ``a`` is, else a new permute node."""
    if _is_transpose(a.node):
        return a.node.inputs[0]
    attrs = {"dims": (1, 0)}
    node = Node(_PERMUTE, (a,), attrs, [infer_type(_PERMUTE, (a.type,), attrs)], loc)
    new.append(node)
    return node.outputs[0]


def _transpose_matmul(graph: Graph) -> bool:
    """``mm(a, b).T`` -> ``mm(b.T, a.T)``: the same values, computed in the layout they are
    read in. The backward of ``x @ w.T`` (every Linear) gives the weight's gradient as
    ``mm(x.T, g).T``, a column-major array that every later elementwise kernel (the
    optimizer's update) then reads with a stride; BLAS folds the new transposes into
    the call, so nothing is copied. Only when the transpose is the ``mm`` result's one
    reader and that result is not exposed: its storage is then reachable only through
    the transpose, so a returned transpose (a ``.grad``) may become fresh memory with
    the same values (as ``algebraic`` lets an exposed result become a fresh value)."""
    # returned or written back itself (its transpose being its only reader, nothing
    # else can view it)
    direct = set(graph.outputs) | {m.value for m in graph.mutations}
    users = graph.users()
    subst: dict[Value, Value] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        _resolve_inputs(node, subst)
        inner = node.inputs[0].node if _is_transpose(node) else None
        # only a product nothing else reads: else both layouts would be computed
        if (inner is None or inner.op is not _MM or inner.outputs[0] in direct
                or len(users[inner.outputs[0]]) != 1
                or not all(isinstance(a, Value) for a in inner.inputs)):
            nodes.append(node)
            continue
        a, b = inner.inputs
        new: list[Node] = []
        bt, at = _transposed(b, node.loc, new), _transposed(a, node.loc, new)
        mm = Node(_MM, (bt, at), {}, [infer_type(_MM, (bt.type, at.type), {})], node.loc)
        if mm.outputs[0].type != node.outputs[0].type:
            nodes.append(node)
            continue
        nodes.extend(new)
        nodes.append(mm)
        subst[node.outputs[0]] = mm.outputs[0]
    if not subst:
        return False
    graph.nodes = nodes
    replace_uses(graph, subst)
    return True


def transpose_matmul(graph: Graph) -> Graph:
    """Pure form of the rewrite ``mm(a, b).T -> mm(b.T, a.T)`` (see ``_transpose_matmul``);
    the old ``mm`` is left to :func:`dce`."""
    g = copy_graph(graph)
    _transpose_matmul(g)
    return g


# --- all of them ----------------------------------------------------------------------------

_SIMPLIFY_STEPS: tuple[Callable[[Graph], bool], ...] = (_fold, _algebraic, _transpose_matmul,
                                                        _cse, _dce)


def simplify(graph: Graph, *, max_rounds: int = 10) -> Graph:
    """Run :func:`fold_constants`, :func:`algebraic`, :func:`transpose_matmul`,
    :func:`cse` and :func:`dce` repeatedly (on one copy of ``graph``) until a round
    changes nothing or ``max_rounds`` rounds have run."""
    g = copy_graph(graph)
    for _ in range(max_rounds):
        changed = False
        for step in _SIMPLIFY_STEPS:
            changed = step(g) or changed
        if not changed:
            break
    return g
