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

from compgrad.compile.segment import SegmentKeys, attrs_key
from ir.graph import Graph, Node, Value
from passes import autodiff

__all__ = ["BackwardCache", "derive_backward", "gradient_key"]

@dataclass
class _Template:
    """The nodes a derivation appended, replayed by filling a list of slots: the outside
    values (in the key's binding order), the forward values the nodes read, their
    constants, then each new node's outputs as it is made. Inputs and results are slot
    numbers (so a replay only indexes a list)."""

    nodes: list[tuple]    # (op, input slots, attrs, output types, loc, attrs_key)
    old: list[tuple[int, int]]          # (forward node, output index) of each value read
    constants: list                     # the Python scalars among the inputs
    result: list                        # a slot per wrt value, or None
    reads: list[tuple[int, str, int]]   # on_saved calls: (forward node index, kind, index)
    ran: list[int]                      # forward nodes whose VJP ran
    # the trace's segment key of the new nodes, as SegmentKeys.extend made it (the key
    # of the template fixes it): (their parts, the slots of the outside values they
    # were first to read); None when the trace had no key of its nodes
    key_tail: tuple | None = None


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
                    create_graph: bool, keys: SegmentKeys | None = None,
                    **callbacks) -> tuple[list, list[Node]]:
    """``passes.autodiff.backward(graph, roots, seeds, wrt, ...)`` through ``cache``.

    Returns (gradient per ``wrt`` value or None, forward nodes whose VJP ran). With
    ``cacheable`` False (hooks that call Python) or no cache, the rules run as usual.
    ``keys``: the structural key of all of ``graph.nodes`` as the trace builds it
    (:meth:`~compgrad.compile.trace.Trace.segment_keys`), when it has one.
    """
    ran: list[Node] = []
    if cache is None or not cacheable:
        result = autodiff.backward(graph, roots, seeds, wrt,
                                   requires_grad=requires_grad.__contains__,
                                   on_saved=on_saved, on_vjp=ran.append, **callbacks)
        return result, ran
    key, external = _key(graph, roots, seeds, wrt, requires_grad, create_graph, keys)
    template = cache.templates.get(key)
    first = len(graph.nodes)
    if template is not None:
        cache.hits += 1
        return _replay(template, graph, external, on_saved,
                       keys if keys is not None and len(keys.parts) == first else None)
    cache.misses += 1
    reads: list[tuple[Node, str, int]] = []

    def record_read(node: Node, kind: str, index: int) -> None:
        on_saved(node, kind, index)
        reads.append((node, kind, index))

    result = autodiff.backward(graph, roots, seeds, wrt, requires_grad=requires_grad.__contains__,
                               on_saved=record_read, on_vjp=ran.append, **callbacks)
    if len(cache.templates) < cache.limit:
        cache.templates[key] = _record(graph, first, external, result, reads, ran,
                                       keys if keys is not None and len(keys.parts) == first
                                       else None)
    return result, ran


def gradient_key(nodes, named: list[Value], requires_grad: set,
                 keys: SegmentKeys | None = None) -> tuple[tuple, list[Value]]:
    """The structure a derivation through ``nodes`` depends on: their segment key with
    ``named`` as its results, and which outside values and node outputs require grad.
    Returns (key, the outside values in binding order). ``keys``: a key of ``nodes``
    from their first node, as far as it was built (it is caught up here)."""
    keys = (SegmentKeys() if keys is None else keys).extend(nodes)
    structure, external = keys.key(named, [])
    needs = requires_grad.__contains__
    return (structure, tuple(map(needs, external)), tuple(map(needs, keys.outputs))), external


def _key(graph: Graph, roots, seeds, wrt, requires_grad: set, create_graph: bool,
         keys: SegmentKeys | None):
    named = list(roots) + list(wrt) + [s for s in seeds if isinstance(s, Value)]
    structure, external = gradient_key(graph.nodes, named, requires_grad, keys)
    seed_kinds = tuple("value" if isinstance(s, Value) else (type(s).__name__, repr(s))
                       for s in seeds)
    return (structure, seed_kinds, len(roots), create_graph), external


def _record(graph: Graph, first: int, external: list[Value], result: list, reads, ran,
            keys: SegmentKeys | None) -> _Template:
    forward = graph.nodes[:first]
    index = {node: i for i, node in enumerate(forward)}
    appended = graph.nodes[first:]
    slots: dict[Value, int] = {v: i for i, v in enumerate(external)}
    made = {o for node in appended for o in node.outputs}
    old: list[tuple[int, int]] = []
    constants: list = []
    # forward values the new nodes read, or that are results themselves (a gradient
    # passed through unchanged: ``(y + w).backward(y)`` gives ``w`` the seed ``y``)
    for a in [a for node in appended for a in node.inputs] + [g for g in result if g is not None]:
        if not isinstance(a, Value):
            constants.append(a)
        elif a not in slots and a not in made:
            slots[a] = len(external) + len(old)
            old.append((index[a.node], a.index))
    base = len(external) + len(old)
    constant_slot = iter(range(base, base + len(constants)))   # in the order found above
    next_slot = base + len(constants)
    # a backward node carries its forward node's loc: found again by position
    loc_of = {node.loc: i for i, node in reversed(list(enumerate(forward)))}
    nodes = []
    for node in appended:
        ins = tuple(slots[a] if isinstance(a, Value) else next(constant_slot)
                    for a in node.inputs)
        loc = ("old", loc_of[node.loc]) if node.loc in loc_of else node.loc
        nodes.append((node.op, ins, node.attrs, tuple(o.type for o in node.outputs), loc,
                      attrs_key(node)))
        for o in node.outputs:
            slots[o] = next_slot
            next_slot += 1
    return _Template(nodes, old, constants, [None if g is None else slots[g] for g in result],
                     [(index[n], kind, i) for n, kind, i in reads], [index[n] for n in ran],
                     _key_tail(keys, graph.nodes, slots))


def _key_tail(keys: SegmentKeys | None, nodes: list[Node], slots: dict) -> tuple | None:
    """What keying the appended nodes adds to ``keys`` (which keyed the nodes before them),
    so that a replay adds it without keying them again (:meth:`SegmentKeys.adopt`)."""
    if keys is None:
        return None
    first, n_external = len(keys.parts), len(keys.external)
    keys.extend(nodes)
    new = keys.external[n_external:]
    if any(v not in slots for v in new):
        return None
    return tuple(keys.parts[first:]), tuple(slots[v] for v in new)


def _replay(template: _Template, graph: Graph, external: list[Value],
            on_saved: Callable, keys: SegmentKeys | None) -> tuple[list, list[Node]]:
    """Append the template's nodes (``keys``: the trace's key of the nodes before them,
    which takes theirs from the template)."""
    old = graph.nodes
    for i, kind, index in template.reads:
        on_saved(old[i], kind, index)
    values = list(external)
    values += [old[i].outputs[j] for i, j in template.old]
    values += template.constants
    new: list[Node] = []
    for op, ins, attrs, types, loc, key in template.nodes:
        if type(loc) is tuple:
            loc = old[loc[1]].loc
        node = Node(op, tuple([values[k] for k in ins]), attrs, types, loc)
        node.key = key   # (the attributes are the template's: so is their key)
        new.append(node)
        values += node.outputs
    old.extend(new)
    if keys is not None and template.key_tail is not None and new:
        parts, reads_first = template.key_tail
        keys.adopt(new, parts, [values[k] for k in reads_first])
    return ([None if k is None else values[k] for k in template.result],
            [old[i] for i in template.ran])
