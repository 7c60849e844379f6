"""Symbolic reverse-mode autodiff: append the backward of a Graph to the Graph.

:func:`backward` walks the forward nodes in reverse topological order and,
for each node on a path from a ``wrt`` value to an output, runs the op's VJP
rule through :func:`ir.vjp.call_vjp` with a :class:`~ir.graph.GraphBuilder`
active, so every derivative node comes from the OpDefs (there is no
derivative formula in this module). The semantics are the eager engine's
(``compgrad/autograd/engine.py``): each VJP runs once with the sum of its
incoming cotangents, gradients flow only through values that require grad,
and nothing runs for nodes off the ``wrt`` -> output paths.

The result is an ordinary Graph, so differentiating gradient values again
gives higher derivatives::

    (g,) = backward(graph, [loss], [None], [x])          # dloss/dx
    (h,) = backward(graph, [g], [v], [x])                # Hessian-vector product

:func:`trace` and :func:`grad_graph` build standalone graphs from Python
functions of Values (handy in tests and for inspecting what autodiff emits).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

from ir import ops
from ir.dispatch import interpreter, is_scalar
from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Graph, GraphBuilder, Node, Role, Value
from ir.types import TensorType, shape_str
from ir.vjp import call_vjp

__all__ = ["backward", "float_requires_grad", "trace", "grad_graph"]


def float_requires_grad(v: Value) -> bool:
    """The default ``requires_grad``: float tensors (not lifted Python scalars)."""
    t = v.type
    return t.dtype.category == CATEGORY_FLOAT and not t.weak


def backward(graph: Graph, outputs: Sequence[Value], grad_outputs: Sequence[Value | float | None],
             wrt: Sequence[Value], *, requires_grad: Callable[[Value], bool] | None = None,
             on_grad: Callable[[Value, Value], Value | None] | None = None,
             on_saved: Callable[[Node, str, int], None] | None = None,
             hooked: Collection[Value] = (),
             on_vjp: Callable[[Node], None] | None = None) -> list[Value | None]:
    """Append to ``graph`` the nodes computing the gradients of ``outputs`` w.r.t. ``wrt``.

    Returns, for each ``wrt`` value, the Value of its total gradient (the sum
    over every path to every output), or None when no gradient reaches it.

    ``grad_outputs[i]`` is the cotangent of ``outputs[i]``: a Value of the
    output's shape (cast to its dtype when it differs), a number (a tensor of
    the output's shape filled with it), or None (ones: the caller checks that
    implicit gradients are for scalars). Outputs that do not require grad, or
    that no ``wrt`` value reaches, are skipped (raising eager's "does not
    require grad" errors is the caller's job).

    Gradients flow only through values for which ``requires_grad(v)`` holds
    (default :func:`float_requires_grad`) and through ops with
    ``differentiable=True``. Only nodes on a path from a ``wrt`` value to an
    output get VJPs, and a rule is told (``needs_input_grad``) to skip inputs
    off those paths. ``wrt`` may hold graph inputs and intermediates (the
    gradient of an intermediate is its total gradient, as ``retain_grad``).

    Callbacks (both run with the graph's builder active, so they may append
    nodes with ``ir.ops`` functions):

    * ``on_grad(v, g)`` is called exactly once for each value ``v`` in ``wrt``
      or ``hooked`` that receives a gradient, with ``g`` its total gradient,
      before ``g`` flows into the VJP of ``v``'s producer. It returns None
      (keep ``g``) or a Value of the same shape and dtype, which replaces
      ``g`` both downstream and in the result (tensor hooks). Values whose
      gradient does not flow further (graph inputs, intermediates whose
      producer is off the paths) are reported last, in reverse graph order.
      Values in ``hooked`` that are off the ``wrt`` -> output paths get no
      gradient and no call.
    * ``on_saved(node, "input" | "output", index)`` is called the first time
      (per call of ``backward``) a VJP rule reads the forward ``node``'s
      input or output ``index`` that is a Value; Python scalars (raw or lifted
      as weak scalar Values) report nothing. A caller raises eager's errors
      (saved tensor modified in place, graph freed) from it.

    * ``on_vjp(node)`` is called after the VJP of each forward ``node`` that ran.

    Backward nodes get the ``loc`` of the forward node they differentiate.
    A RuntimeError names an op without a VJP rule.
    """
    if len(outputs) != len(grad_outputs):
        raise RuntimeError(f"got {len(outputs)} outputs and {len(grad_outputs)} gradients")
    for i, (o, go) in enumerate(zip(outputs, grad_outputs)):
        _check_seed(o, go, i)
    req = float_requires_grad if requires_grad is None else requires_grad
    active, nodes = _active(graph, outputs, wrt, req)
    wrt_set = {v for v in wrt if v in active}
    watched = wrt_set | {v for v in hooked if v in active}

    builder = GraphBuilder(graph)
    grads: dict[Value, Value] = {}
    final: dict[Value, Value] = {}

    def finish(v: Value, g: Value) -> Value:
        """``g`` is ``v``'s total gradient: run the hook, remember it for the result."""
        if on_grad is not None:
            new = on_grad(v, g)
            if new is not None:
                _check_replacement(v, new)
                g = new
        if v in wrt_set:
            final[v] = g
        return g

    with interpreter(builder):
        for o, go in zip(outputs, grad_outputs):
            if o in active:
                builder.loc = o.node.loc if o.node is not None else None
                _accumulate(grads, o, _seed(o, go))
        for node in nodes:
            outs = node.outputs
            builder.loc = node.loc
            out_grads = []
            for o in outs:
                g = grads.pop(o, None)
                if g is not None and o in watched:
                    g = finish(o, g)
                    watched.discard(o)
                out_grads.append(g)
            if all(g is None for g in out_grads):
                continue  # as eagerly: a node that receives no gradient does not run
            _run_vjp(node, out_grads, active, grads, on_saved)
            if on_vjp is not None:
                on_vjp(node)
        # values whose gradient ended here: graph inputs and intermediates whose
        # producer is off the paths (reverse graph order, inputs last)
        rest = [v for v in watched if v in grads]
        if rest:
            rest.sort(key=_reverse_position(graph, rest))
            for v in rest:
                builder.loc = v.node.loc if v.node is not None else None
                finish(v, grads[v])
    return [final.get(v) for v in wrt]


def _active(graph: Graph, outputs: Iterable[Value], wrt: Iterable[Value],
            req: Callable[[Value], bool]) -> tuple[set[Value], list[Node]]:
    """The values on a path from a ``wrt`` value to an output (through values that
    require grad and differentiable ops), and the nodes on such paths in reverse
    order: two linear sweeps."""
    forward = {v for v in wrt if req(v)}
    for node in graph.nodes:
        if node.op.differentiable and any(v in forward for v in node.input_values()):
            forward.update(o for o in node.outputs if req(o))
    active = {o for o in outputs if o in forward}
    nodes = []
    for node in reversed(graph.nodes):
        if any(o in active for o in node.outputs):
            ins = [v for v in node.input_values() if v in forward]
            if ins:  # else the node only produces a wrt value
                active.update(ins)
                nodes.append(node)
    return active, nodes


def _check_seed(o: Value, go, i: int) -> None:
    if go is None or is_scalar(go):
        return
    if not isinstance(go, Value):
        raise TypeError(f"grad_outputs[{i}] must be a Value, a number or None, got "
                        f"{type(go).__name__}")
    if go.type.shape != o.type.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                           f"{shape_str(go.type.shape)} and output[{i}] has a shape of "
                           f"{shape_str(o.type.shape)}.")


def _seed(o: Value, go) -> Value:
    """The cotangent of output ``o`` (checked by :func:`_check_seed`) as a Value of its type."""
    t = o.type
    if go is None or is_scalar(go):
        fill = 1.0 if go is None else go
        return ops.full(t.shape, fill, dtype=t.dtype, device=t.device)
    if go.type.dtype is not t.dtype:
        go = ops.to_dtype(go, t.dtype)
    return go


def _accumulate(grads: dict[Value, Value], v: Value, g: Value) -> None:
    prev = grads.get(v)
    grads[v] = g if prev is None else ops.add(prev, g)


def _check_replacement(v: Value, g) -> None:
    if not isinstance(g, Value):
        raise TypeError(f"a gradient hook must return a Value or None, got {type(g).__name__}")
    if g.type.shape != v.type.shape or g.type.dtype is not v.type.dtype:
        raise RuntimeError(f"a gradient hook changed the gradient of {v!r} from "
                           f"{_type_str(v.type)} to {_type_str(g.type)}")


def _type_str(t: TensorType) -> str:
    return f"{t.dtype.name}{shape_str(t.shape)}"


def _run_vjp(node: Node, out_grads: list, active: set[Value], grads: dict[Value, Value],
             on_saved) -> None:
    """Append the VJP of ``node`` and add its input cotangents into ``grads``."""
    # weak (lifted Python scalar) inputs take no gradient, as eagerly
    input_types = tuple(a.type if isinstance(a, Value) and not a.type.weak else None
                        for a in node.inputs)
    needs = tuple(isinstance(a, Value) and a in active for a in node.inputs)
    if on_saved is None:
        inputs, outputs = node.inputs, node.outputs
    else:
        inputs = _SavedValues(node, "input", node.inputs, on_saved)
        outputs = _SavedValues(node, "output", node.outputs, on_saved)
    try:
        result = call_vjp(node.op, inputs, outputs, node.attrs, out_grads,
                          input_types=input_types, needs_input_grad=needs)
    except Exception as e:
        where = f" (created at {node.loc})" if node.loc else ""
        e.add_note(f"while building the backward of IR node {node.op.name}{where}")
        raise
    for a, g, need in zip(node.inputs, result, needs):
        if g is not None and need:
            _accumulate(grads, a, g)


class _SavedValues(Sequence):
    """A node's inputs or outputs as a VJP rule sees them: each Value read is
    reported once to ``on_saved`` (as compgrad.autograd.node's lazy values
    check versions on access)."""

    def __init__(self, node: Node, kind: str, items: tuple, on_saved):
        self._node = node
        self._kind = kind
        self._items = items
        self._on_saved = on_saved
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self._items))))
        if i < 0:
            i += len(self._items)
        item = self._items[i]
        # a weak scalar is a Python number lifted into the graph (a learning rate):
        # eagerly it is no saved tensor, so reading it frees nothing and checks nothing
        if isinstance(item, Value) and not item.type.weak and i not in self._seen:
            self._seen.add(i)
            self._on_saved(self._node, self._kind, i)
        return item


def _reverse_position(graph: Graph, values: list[Value]):
    """Sort key putting ``values`` in reverse graph order, graph inputs last."""
    producers = {v.node for v in values if v.node is not None}
    where = {n: i for i, n in enumerate(graph.nodes) if n in producers} if producers else {}

    def key(v: Value):
        if v.node is None:
            return (1, v.index)
        return (0, -where.get(v.node, -1), v.index)
    return key


# --- standalone graphs ---------------------------------------------------------------------

def trace(fn: Callable, input_types: Sequence[TensorType], *, names: Sequence[str] | None = None,
          name: str = "f") -> Graph:
    """The Graph of ``fn`` applied to inputs of ``input_types`` (ARGUMENT roles).

    ``fn`` takes one Value per input and returns a Value or a tuple of them,
    calling ``ir.ops`` functions; those become the graph's outputs.
    """
    graph = Graph(name)
    names = names or [f"x{i}" for i in range(len(input_types))]
    args = [graph.add_input(t, Role.ARGUMENT, n) for t, n in zip(input_types, names)]
    with interpreter(GraphBuilder(graph)):
        out = fn(*args)
    graph.outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    return graph


def grad_graph(fn: Callable, input_types: Sequence[TensorType], *,
               argnums: Sequence[int] | None = None, name: str = "grad_f") -> Graph:
    """A Graph computing ``fn`` and the gradients of its outputs w.r.t. its inputs.

    The graph's outputs are ``fn``'s outputs, then one gradient per input in
    ``argnums`` (default: every float input), zeros where none reaches it.
    Scalar outputs are seeded with ones; each non-scalar output ``i`` gets an
    extra graph input ``cot{i}`` (after ``fn``'s inputs) holding its cotangent.
    """
    graph = trace(fn, input_types, name=name)
    if argnums is None:
        argnums = [i for i, v in enumerate(graph.inputs) if float_requires_grad(v)]
    wrt = [graph.inputs[i] for i in argnums]
    outs = list(graph.outputs)
    cots: list = []
    for i, o in enumerate(outs):
        if not float_requires_grad(o) or o.type.numel == 1:
            cots.append(None)
        else:
            cots.append(graph.add_input(o.type, Role.ARGUMENT, f"cot{i}"))
    gs = backward(graph, outs, cots, wrt)
    with interpreter(GraphBuilder(graph)):
        gs = [g if g is not None else ops.full(v.type.shape, 0.0, dtype=v.type.dtype,
                                               device=v.type.device)
              for g, v in zip(gs, wrt)]
    graph.outputs = outs + gs
    return graph
