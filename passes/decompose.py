"""Decomposition: composite ops rewritten into primitives that fusion can put in one
row kernel.

:func:`decompose` returns a new Graph (its input is left alone) in which these
nodes are replaced by the primitive ops computing the same thing, in the
numerically stable forms the reference implementations use:

* ``log_softmax(x, dim)`` over the last dim: ``s - log(sum(exp(s)))`` with
  ``s = x - amax(x, dim, keepdim=True)``;
* ``softmax(x, dim)`` over the last dim: ``e / sum(e)`` with ``e = exp(s)``;
* ``exp(y)`` of a decomposed ``log_softmax`` ``y`` (its VJP's softmax):
  ``e / sum(e)`` with the decomposition's own ``e``, so the row kernel computes
  one exponential per element for the forward and the backward (exp of the
  log-probabilities would be a second one);
* ``layer_norm(x, weight?, bias?)`` over trailing dims: ``mu = mean(x)``,
  ``xc = x - mu``, ``rstd = rsqrt(mean(xc * xc) + eps)``, ``xc * rstd``, then
  ``* weight`` and ``+ bias``. These are the very nodes the layer_norm VJP
  builds (``ir/ops/normalization.py``), so after CSE the backward reads the
  forward's mean and rstd instead of recomputing them;
* ``nll_loss(x, target, weight?)`` of a 2-d ``x`` ``[N, C]``: the picked
  log-probability of each row is a row sum of ``where(eq(classes, t), x, 0)``
  (``classes = arange(C)``, ``t = nll_target(target)``, the checked target: it
  raises nll_loss's error for a target out of range), then ``-picked * w`` with
  ``w`` the target's weight (0 where ignored), summed or divided by ``sum(w)``.
  The row sum fuses into the kernel computing ``x`` (a log_softmax), so ``x``
  itself is never stored. ``nll_target``, ``ne`` and ``mul`` are the nodes the
  nll_loss VJP builds, so after CSE the forward and backward share them;
* ``nll_loss_backward`` (the nll_loss VJP, one op eagerly): always, into
  ``where(eq(classes, t), -coef * g, 0)`` with ``coef`` the target's weight (divided by
  the weights' sum for a mean), ``t`` the checked target.

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
from ir.ops.losses import nll_loss_backward_primitives, nll_target

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


def _log_softmax(node: Node, softmax_of: dict) -> list[Value] | None:
    parts = _softmax_parts(node)
    if parts is None:
        return None
    s, e, total = parts
    y = ops.sub(s, ops.log(total))
    softmax_of[y] = (e, total)
    return [y]


def _softmax(node: Node, softmax_of: dict) -> list[Value] | None:
    parts = _softmax_parts(node)
    if parts is None:
        return None
    _, e, total = parts
    return [ops.div(e, total)]


def _layer_norm(node: Node, softmax_of: dict) -> list[Value] | None:
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


def _exp(node: Node, softmax_of: dict) -> list[Value] | None:
    parts = softmax_of.get(node.inputs[0])
    if parts is None:
        return None
    e, total = parts
    return [ops.div(e, total)]


def _nll_loss(node: Node, softmax_of: dict) -> list[Value] | None:
    x, target, *weight = node.inputs
    if not isinstance(x, Value) or not isinstance(target, Value) or x.type.ndim != 2:
        return None
    if not _row_input(x, (1,)) or any(not isinstance(w, Value) for w in weight):
        return None
    n, c = x.type.shape
    reduction, ignore_index = node.attrs["reduction"], node.attrs["ignore_index"]
    # the same nodes as the nll_loss VJP (ir/ops/losses.py), so CSE shares them
    safe = nll_target(target, c, ignore_index)
    if target.type.dtype is not dtypes.int64:
        target = ops.to_dtype(target, dtypes.int64)
    valid = ops.ne(target, ignore_index)
    w = ops.mul(ops.to_dtype(valid, x.type.dtype),
                ops.take(weight[0], safe) if weight else 1.0)
    hot = ops.eq(ops.arange(c, device=x.type.device), ops.unsqueeze(safe, 1))
    # one non-zero term per row: the float64 row sum is exactly the picked value
    picked = ops.sum(ops.where(hot, x, 0.0), (1,))
    loss = ops.neg(ops.mul(picked, w))
    if reduction == "sum":
        return [ops.sum(loss)]
    if reduction == "mean":
        return [ops.div(ops.sum(loss), ops.sum(w))]
    return [loss]


def _nll_loss_backward(node: Node, softmax_of: dict) -> list[Value] | None:
    # always: these are the nodes the nll_loss VJP built before it became one op, which
    # fusion puts in the kernels around it (and CSE shares with the forward's nll_loss)
    g, target, *weight = node.inputs
    x_type = node.outputs[0].type
    return [nll_loss_backward_primitives(g, x_type, target, weight[0] if weight else None,
                                         node.attrs["reduction"], node.attrs["ignore_index"])]


# op name -> rule: builds the replacement with a GraphBuilder active and returns the
# values replacing the node's outputs, or None to keep the node. ``softmax_of`` (one per
# decompose call) maps each decomposed log_softmax's output to its ``(e, sum(e))``
DECOMPOSITIONS: dict[str, Callable[[Node, dict], list[Value] | None]] = {
    "log_softmax": _log_softmax,
    "softmax": _softmax,
    "layer_norm": _layer_norm,
    "nll_loss": _nll_loss,
    "nll_loss_backward": _nll_loss_backward,
    "exp": _exp,
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
    softmax_of: dict[Value, tuple[Value, Value]] = {}
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
                replaced = rule(copy, softmax_of)
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
