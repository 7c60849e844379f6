"""What a compiled call keeps for a backward that runs after it returns, and how that
backward gets back what was not kept.

A call whose results leave it with a ``grad_fn`` (``out = compiled_model(x)``, then
``loss(out).backward()`` in eager code) must keep what their backward reads. Keeping
every input and output of every differentiable node (what eager autograd saves,
and what :meth:`Trace.flush` keeps otherwise) holds every intermediate of the
forward alive. :func:`values_to_save` instead builds the forward's joint graph
(the call's nodes and the symbolic backward of its escaping results) and lets
:func:`passes.partition.partition` choose by a min-cut what to keep: the fewest
bytes from which the backward recomputes the rest with cheap elementwise ops and
views. :func:`rematerialize` then puts those recomputations back in front of the
backward's nodes when it is recorded. The choice is cached per forward structure.

Recomputing reads the call's inputs again: if one was modified in place since the
call, the backward raises eager's "modified by an inplace operation" error, as for
a saved tensor (torch.compile's partitioner behaves the same way), rather than
compute from the new data.
"""

from __future__ import annotations

from compgrad.compile.backward_cache import gradient_key
from compgrad.compile.segment import build_program_graph
from ir.graph import Node, Role, Value
from passes import autodiff
from passes.partition import partition, recomputable

__all__ = ["values_to_save", "rematerialize"]


def values_to_save(trace, nodes: list[Node], escaping: list[Value]) -> list[Value] | None:
    """The values of ``nodes`` (the call's only segment) to keep for the backward of
    ``escaping`` (results leaving the call with a recorded history), chosen by a min-cut;
    None when the choice cannot be made here (the caller keeps what eager saves)."""
    if not escaping:
        return []
    cache = trace.backward_cache
    # (``nodes`` are the trace's pending ones: its key of them serves, and the flush's
    # key reuses what this one built)
    keys = trace.segment_keys() if trace.start == 0 else None
    key, external = gradient_key(nodes, escaping, trace.requires_grad, keys)
    if cache is not None and key in cache.saved:
        chosen = cache.saved[key]
    else:
        try:
            chosen = _min_cut(trace, nodes, escaping, external)
        except Exception:   # an op without a VJP rule, ...: eager's rule decides instead
            chosen = None
        if cache is not None and len(cache.saved) < cache.limit:
            cache.saved[key] = chosen
    return None if chosen is None else [nodes[i].outputs[j] for i, j in chosen]


def _min_cut(trace, nodes: list[Node], escaping: list[Value],
             external: list[Value]) -> list[tuple[int, int]]:
    """(node index, output index) of each value to keep; ``external`` are the values
    ``nodes`` read from outside (:func:`gradient_key`'s binding order)."""
    joint = build_program_graph("joint", nodes, external, escaping, [])
    to_joint = dict(zip(external, joint.inputs))
    position: dict[Value, tuple[int, int]] = {}
    for i, (node, new) in enumerate(zip(nodes, joint.nodes)):
        for j, (o, n) in enumerate(zip(node.outputs, new.outputs)):
            to_joint[o] = n
            position[n] = (i, j)
    wrt = [to_joint[v] for v in external if v in trace.requires_grad]
    # leaves made inside the call get gradients too (escape._outside_tensors)
    wrt += [to_joint[v] for v in trace.leaves if v in to_joint and v.node is not None]
    outputs = list(joint.outputs)
    tangents = [joint.add_input(v.type, Role.ARGUMENT, f"t{k}") for k, v in enumerate(outputs)]
    requires = {to_joint[v] for v in to_joint if v in trace.requires_grad}
    grads = autodiff.backward(joint, outputs, tangents, wrt, requires_grad=requires.__contains__)
    joint.outputs = outputs + [g for g in grads if g is not None]
    split = partition(joint, len(outputs), tangents)
    # a saved value the partition moved from the backward into the forward (``1 - y**2``,
    # tangent-independent) does not exist in the call: keep the forward values it is
    # computed from instead (the backward computes it as it always does)
    chosen: list[tuple[int, int]] = []
    stack = list(split.saved_values)
    seen: set[Value] = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in position:
            chosen.append(position[v])
        elif v.node is not None:
            stack.extend(v.node.input_values())
    return sorted(chosen)


def rematerialize(trace) -> None:
    """Before the pending nodes (a backward) run: recompute, in front of them, each
    forward value they read that the call did not keep (see :func:`values_to_save`)."""
    graph = trace.graph
    pending = graph.nodes[trace.start:]
    recompute = _Recompute(trace, {o for n in pending for o in n.outputs})
    env, produced = trace.env, recompute.produced
    for node in pending:
        if any(type(a) is Value and a not in env and a not in produced for a in node.inputs):
            node.inputs = tuple(recompute.value(a) if type(a) is Value else a
                                for a in node.inputs)
    if recompute.clones:
        graph.nodes[trace.start:trace.start] = recompute.clones
        trace.nodes_rewritten()


class _Recompute:
    """The values a backward reads, recomputed where the call did not keep them (an
    object rather than a recursive closure: a closure that calls itself is a reference
    cycle, which would keep the trace alive until the cyclic GC runs)."""

    def __init__(self, trace, produced: set):
        self.trace = trace
        self.produced = produced             # values the pending nodes compute
        self.copies: dict[Value, Value] = {}
        self.clones: list[Node] = []         # the recomputations, in order

    def value(self, v: Value) -> Value:
        """``v``, or its recomputation."""
        if v in self.trace.env or v in self.produced or v.node is None:
            if v.node is None:
                _check_unmodified(self.trace, v)
            return v
        copy = self.copies.get(v)
        if copy is not None:
            return copy
        node = v.node
        if not recomputable(node):
            raise RuntimeError(f"compgrad internal error: the backward reads a value of "
                               f"{node.op.name} that the compiled call did not keep")
        ins = tuple(self.value(a) if type(a) is Value else a for a in node.inputs)
        clone = Node(node.op, ins, node.attrs, [o.type for o in node.outputs], node.loc)
        self.clones.append(clone)
        self.copies.update(zip(node.outputs, clone.outputs))
        return self.copies[v]


def _check_unmodified(trace, v: Value) -> None:
    """A call input read by a recomputation must hold the data the call read."""
    from compgrad.compile.autograd import _modified
    recorded = trace.versions.get(v)
    if recorded is not None and recorded[0][0] != recorded[1]:
        raise RuntimeError(_modified(v, recorded[1]))
