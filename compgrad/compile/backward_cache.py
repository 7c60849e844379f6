"""The symbolic backward of a recorded forward, derived once per forward structure.

DESIGN.md ("A compiled call"): ``loss.backward()`` appends the symbolic
backward of the recorded forward, *built once per forward key and cached*.
Deriving it runs every VJP rule in Python (a third of a small training step's
recording time); a compiled function records the same forward on every call,
so :func:`derive_backward` keeps, per structural key of the trace's graph (the
segment key of all its nodes, which values require grad, the roots, seeds and
``wrt`` values), a *template*: the nodes the derivation appended, with their
inputs as references into the graph. A later call with the same key appends
the same nodes by substitution.

What the derivation did besides appending nodes is replayed too, in order: the
saved-value reads (so eager's "modified by an inplace operation" and "backward
through the graph a second time" errors are raised as before, now before any
node is appended) and which forward nodes ran a VJP. Derivations that call back
into Python (tensor hooks, ``retain_grad``) are not cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from compgrad.compile.segment import segment_key
from ir.graph import Graph, Node, Value
from passes import autodiff

__all__ = ["BackwardCache", "derive_backward", "gradient_key"]

# references into the graph a template is replayed on
_EXTERNAL, _OLD, _NEW = "x", "o", "n"


@dataclass
class _Template:
    nodes: list[tuple]                  # (op, input refs, attrs, output types, loc ref)
    result: list                        # a ref per wrt value, or None
    reads: list[tuple[int, str, int]]   # on_saved calls: (forward node index, kind, index)
    ran: list[int]                      # forward nodes whose VJP ran


class BackwardCache:
    """Templates by structural key, for one compiled function (bounded: a function whose
    forward changes on every call keeps at most ``limit`` of them)."""

    def __init__(self, limit: int = 64):
        self.limit = limit
        self.templates: dict[tuple, _Template] = {}
        # what a call keeps for a backward after it returns (compgrad.compile.saving)
        self.saved: dict[tuple, list | None] = {}
        self.hits = 0
        self.misses = 0


def derive_backward(cache: BackwardCache | None, graph: Graph, roots: Sequence[Value],
                    seeds: Sequence, wrt: Sequence[Value], *, requires_grad: set,
                    on_saved: Callable[[Node, str, int], None], cacheable: bool,
                    create_graph: bool, **callbacks) -> tuple[list, list[Node]]:
    """``passes.autodiff.backward(graph, roots, seeds, wrt, ...)`` through ``cache``.

    Returns (gradient per ``wrt`` value or None, forward nodes whose VJP ran). With
    ``cacheable`` False (hooks that call Python) or no cache, the rules run as usual.
    """
    ran: list[Node] = []
    if cache is None or not cacheable:
        result = autodiff.backward(graph, roots, seeds, wrt,
                                   requires_grad=requires_grad.__contains__,
                                   on_saved=on_saved, on_vjp=ran.append, **callbacks)
        return result, ran
    key, external = _key(graph, roots, seeds, wrt, requires_grad, create_graph)
    template = cache.templates.get(key)
    if template is not None:
        cache.hits += 1
        return _replay(template, graph, external, on_saved)
    cache.misses += 1
    first = len(graph.nodes)
    reads: list[tuple[Node, str, int]] = []

    def record_read(node: Node, kind: str, index: int) -> None:
        on_saved(node, kind, index)
        reads.append((node, kind, index))

    result = autodiff.backward(graph, roots, seeds, wrt, requires_grad=requires_grad.__contains__,
                               on_saved=record_read, on_vjp=ran.append, **callbacks)
    if len(cache.templates) < cache.limit:
        cache.templates[key] = _record(graph, first, external, result, reads, ran)
    return result, ran


def gradient_key(nodes, named: list[Value], requires_grad: set) -> tuple[tuple, list[Value]]:
    """The structure a derivation through ``nodes`` depends on: their segment key with
    ``named`` as its results, and which outside values and node outputs require grad.
    Returns (key, the outside values in binding order)."""
    structure, external = segment_key(nodes, named, [])
    return (structure, tuple(v in requires_grad for v in external),
            tuple(o in requires_grad for n in nodes for o in n.outputs)), external


def _key(graph: Graph, roots, seeds, wrt, requires_grad: set, create_graph: bool):
    named = list(roots) + list(wrt) + [s for s in seeds if isinstance(s, Value)]
    structure, external = gradient_key(graph.nodes, named, requires_grad)
    seed_kinds = tuple("value" if isinstance(s, Value) else (type(s).__name__, repr(s))
                       for s in seeds)
    return (structure, seed_kinds, len(roots), create_graph), external


def _record(graph: Graph, first: int, external: list[Value], result: list, reads, ran) -> _Template:
    refs: dict[Value, tuple] = {v: (_EXTERNAL, i) for i, v in enumerate(external)}
    index = {}
    for i, node in enumerate(graph.nodes[:first]):
        index[node] = i
        for j, o in enumerate(node.outputs):
            refs.setdefault(o, (_OLD, i, j))
    loc_of = {node.loc: i for i, node in reversed(list(enumerate(graph.nodes[:first])))}
    nodes = []
    for k, node in enumerate(graph.nodes[first:]):
        ins = tuple(refs[a] if isinstance(a, Value) else a for a in node.inputs)
        # a backward node carries its forward node's loc: found again by position
        loc = (_OLD, loc_of[node.loc]) if node.loc in loc_of else node.loc
        nodes.append((node.op, ins, node.attrs, tuple(o.type for o in node.outputs), loc))
        for j, o in enumerate(node.outputs):
            refs[o] = (_NEW, k, j)
    return _Template(nodes, [None if g is None else refs[g] for g in result],
                     [(index[n], kind, i) for n, kind, i in reads], [index[n] for n in ran])


def _replay(template: _Template, graph: Graph, external: list[Value],
            on_saved: Callable) -> tuple[list, list[Node]]:
    old = graph.nodes
    for i, kind, index in template.reads:
        on_saved(old[i], kind, index)
    new: list[Node] = []

    def value(ref):
        if type(ref) is not tuple:
            return ref
        tag = ref[0]
        if tag == _EXTERNAL:
            return external[ref[1]]
        return (old if tag == _OLD else new)[ref[1]].outputs[ref[2]]

    for op, ins, attrs, types, loc in template.nodes:
        if type(loc) is tuple:
            loc = old[loc[1]].loc
        node = Node(op, tuple(value(r) if type(r) is tuple else r for r in ins), attrs, types, loc)
        new.append(node)
    old.extend(new)
    return ([None if r is None else value(r) for r in template.result],
            [old[i] for i in template.ran])
