"""Decomposition: composite ops rewritten into primitives that fusion can put in one
row kernel.

:func:`decompose` returns a new Graph (its input is left alone) in which these
nodes are replaced by the primitive ops computing the same thing, in the
numerically stable forms the reference implementations use:

* ``log_softmax(x, dim)`` over the last dim: ``s - log(sum(exp(s)))`` with
  ``s = x - amax(x, dim, keepdim=True)``;
* ``softmax(x, dim)`` over the last dim: ``e / sum(e)`` with ``e = exp(s)``;
* ``layer_norm(x, weight?, bias?)`` over trailing dims: ``mu = mean(x)``,
  ``xc = x - mu``, ``rstd = rsqrt(mean(xc * xc) + eps)``, ``xc * rstd``, then
  ``* weight`` and ``+ bias``. These are the very nodes the layer_norm VJP
  builds (``ir/ops/normalization.py``), so after CSE the backward reads the
  forward's mean and rstd instead of recomputing them.

Only float32 and float64 inputs whose reduced dims are trailing and non-empty are
rewritten (the row kernels of :mod:`codegen.rows` iterate over ``[rows, trailing
elements]``); softmax with an explicit ``dtype`` other than the input's, float16
(computed in float32 by the reference) and empty tensors keep the composite node.
The results agree with the composite to a few ulp (``x * rsqrt(v)`` where the
reference divides by ``sqrt(v)``; sums in another order). Every new node carries
the loc of the node it replaces. Nodes whose op is not listed are copied as
they are.
"""

from __future__ import annotations

from collections.abc import Callable

from ir import dtypes, ops
from ir.dispatch import interpreter
from ir.graph import Graph, GraphBuilder, Node, Value

__all__ = ["decompose", "DECOMPOSITIONS"]

_FLOATS = (dtypes.float32, dtypes.float64)


def _row_input(x: Value, dims: tuple[int, ...]) -> bool:
    """Whether ``x`` can be a row kernel's input reduced over ``dims``: float32/64, the
    dims trailing, every dim non-empty."""
    t = x.type
    trailing = tuple(range(t.ndim - len(dims), t.ndim))
    return (t.dtype in _FLOATS and t.ndim >= 1 and bool(dims) and tuple(sorted(dims)) == trailing
            and all(n > 0 for n in t.shape))


def _softmax_parts(node: Node) -> tuple[Value, Value, Value] | None:
    """``(s, e, sum(e))`` of a softmax-like node over its last dim (None: not decomposable)."""
    x = node.inputs[0]
    dim, dtype = node.attrs["dim"], node.attrs["dtype"]
    if not isinstance(x, Value) or x.type.ndim == 0 or (dtype is not None and dtype is not
                                                         x.type.dtype):
        return None
    if not _row_input(x, (dim,)):
        return None
    s = ops.sub(x, ops.amax(x, (dim,), keepdim=True))
    e = ops.exp(s)
    return s, e, ops.sum(e, (dim,), keepdim=True)


def _log_softmax(node: Node) -> list[Value] | None:
    parts = _softmax_parts(node)
    if parts is None:
        return None
    s, _, total = parts
    return [ops.sub(s, ops.log(total))]


def _softmax(node: Node) -> list[Value] | None:
    parts = _softmax_parts(node)
    if parts is None:
        return None
    _, e, total = parts
    return [ops.div(e, total)]


def _layer_norm(node: Node) -> list[Value] | None:
    x, *params = node.inputs
    dims, eps = tuple(node.attrs["dims"]), node.attrs["eps"]
    if not isinstance(x, Value) or not _row_input(x, dims):
        return None
    if any(not isinstance(p, Value) or p.type.dtype is not x.type.dtype for p in params):
        return None
    # the same ops, in the same order, as the layer_norm VJP (so CSE merges them)
    mu = ops.mean(x, dims, keepdim=True)
    xc = ops.sub(x, mu)
    rstd = ops.rsqrt(ops.add(ops.mean(ops.mul(xc, xc), dims, keepdim=True), eps))
    y = ops.mul(xc, rstd)
    if node.attrs["has_weight"]:
        y = ops.mul(y, params.pop(0))
    if node.attrs["has_bias"]:
        y = ops.add(y, params.pop(0))
    return [y]


# op name -> rule: builds the replacement with a GraphBuilder active and returns the
# values replacing the node's outputs, or None to keep the node
DECOMPOSITIONS: dict[str, Callable[[Node], list[Value] | None]] = {
    "log_softmax": _log_softmax,
    "softmax": _softmax,
    "layer_norm": _layer_norm,
}


def decompose(graph: Graph) -> Graph:
    """A new Graph with the composite nodes of :data:`DECOMPOSITIONS` replaced by
    primitives (see the module docstring); returns ``graph`` itself when no node is
    decomposed. ``graph`` is not changed."""
    if not any(n.op.name in DECOMPOSITIONS for n in graph.nodes):
        return graph
    out = Graph(graph.name)
    env: dict[Value, Value] = {}
    for v in graph.inputs:
        env[v] = out.add_input(v.type, v.role, v.name, graph.constants.get(v))
    builder = GraphBuilder(out)
    changed = False
    for node in graph.nodes:
        args = tuple(env[a] if isinstance(a, Value) else a for a in node.inputs)
        rule = DECOMPOSITIONS.get(node.op.name)
        replaced = None
        if rule is not None:
            copy = Node(node.op, args, dict(node.attrs), [o.type for o in node.outputs], node.loc)
            mark = len(out.nodes)
            builder.loc = node.loc
            with interpreter(builder):
                replaced = rule(copy)
            if replaced is None or [v.type for v in replaced] != [o.type for o in node.outputs]:
                del out.nodes[mark:]   # kept whole (a rule that built nothing usable)
                replaced = None
        if replaced is None:
            new = out.add_node(node.op, args, dict(node.attrs), [o.type for o in node.outputs],
                               loc=node.loc)
            replaced = new.outputs
        else:
            changed = True
        env.update(zip(node.outputs, replaced))
    if not changed:
        return graph
    out.outputs = [env[v] for v in graph.outputs]
    for m in graph.mutations:
        out.mutate(env[m.target], m.field, None if m.value is None else env[m.value])
    return out
