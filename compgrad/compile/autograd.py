"""``backward()`` and ``autograd.grad`` inside a compiled function.

They append the symbolic backward of the recorded graph (``passes.autodiff``,
built from the OpDefs' VJP rules, the same rules eager autograd runs) to the
trace, then store ``.grad`` as eager autograd would: a new gradient becomes
``.grad``; an existing one is added to in place (so it keeps its identity),
which the trace turns into a mutation. Tensor hooks, ``retain_grad`` and
post-accumulate hooks run in Python on recorded tensors, so they need no
graph break. The checks and messages are the eager engine's.
"""

from __future__ import annotations

from collections.abc import Sequence

from compgrad.autograd.engine import run_backward
from compgrad.autograd.grad_mode import _STATE
from compgrad.autograd.node import FREED_MESSAGE
from compgrad.compile.backward_cache import derive_backward
from compgrad.compile.lazy import LazyGradFn, LazyInterpreter
from compgrad.tensor import Tensor
from ir import ops
from ir.dispatch import interpreter
from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Value, live_values

__all__ = ["trace_backward", "check_saved"]

def _modified(v: Value, version: int) -> str:
    return ("one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [{v.type}], which is output 0 of its producer; its version is "
            f"now ahead of version {version}. Hint: the backtrace further above shows the "
            "operation that failed to compute its gradient.")


def check_saved(trace, node, kind: str, index: int, reads: list) -> None:
    """Eager autograd's checks when a VJP reads a saved value: the graph was not
    freed by an earlier backward, and the value was not modified in place since."""
    if node in trace.freed:
        raise RuntimeError(FREED_MESSAGE)
    reads.append(node)
    if kind == "input" and (node, index) in trace.originals:
        return
    v = (node.inputs if kind == "input" else node.outputs)[index]
    recorded = trace.versions.get(v)
    if recorded is not None and recorded[0][0] != recorded[1]:
        raise RuntimeError(_modified(v, recorded[1]))


def trace_backward(trace, tensors: Sequence[Tensor], grad_tensors: Sequence, retain_graph: bool,
                   create_graph: bool, inputs: Sequence[Tensor] | None = None,
                   allow_unused: bool = False, accumulate: bool = True,
                   materialize_grads: bool = False):
    """The engine's ``run_backward`` for a trace (same arguments and results)."""
    roots, seeds = _roots(trace, tensors, grad_tensors)
    graph = trace.graph
    if inputs is not None:
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError("inputs must be Tensors")
            if not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
        targets, groups = _input_targets(trace, inputs)
    else:
        # every leaf of the call: one the roots do not depend on gets no gradient (None,
        # as from autodiff.backward, which runs no VJP for it), so none is stored; that
        # spares a walk of the graph per call
        targets = [(t, v) for v, t in trace.leaves.items()]
        groups = _by_tensor(targets)
    # tensors from outside the call with eager history (``x = w * 2`` made before the
    # call): their gradients continue through the eager graph, as eagerly
    eager_roots = [] if inputs is not None or not accumulate else _eager_non_leaves(trace, roots)
    hooked = _hooked_values(trace, accumulate and inputs is None)
    interp = LazyInterpreter(trace)
    first_new = len(graph.nodes)
    reads: list = []
    grads_by_value: dict[Value, Value] = {}

    def on_saved(node, kind, index):
        check_saved(trace, node, kind, index, reads)

    def on_grad(v, g):
        hooks, keep = hooked.get(v, ((), None))
        if not hooks and keep is None:
            return None
        with interpreter(interp):
            gt = _as_tensor(trace, g, create_graph)
            for hook in hooks:
                out = hook(gt)
                if out is not None:
                    gt = out
            if keep is not None:
                grads_by_value[v] = trace.value_of(gt)
            return trace.value_of(gt)

    prev = _STATE.enabled
    _STATE.enabled = create_graph
    try:
        result, ran = derive_backward(trace.backward_cache, graph, roots, seeds,
                                      [v for _, v in targets] + [v for _, v in eager_roots],
                                      requires_grad=trace.requires_grad, on_saved=on_saved,
                                      cacheable=not hooked, create_graph=create_graph,
                                      keys=trace.segment_keys() if trace.start == 0 else None,
                                      on_grad=on_grad, hooked=list(hooked))
        # a node whose VJP read nothing saved nothing: a later flush keeps none of its
        # values for another backward (as eager autograd keeps no tensor for it)
        trace.saved_nothing.update(set(ran).difference(reads))
        result, eager_grads = result[:len(targets)], result[len(targets):]
        if create_graph:
            _mark_differentiable(trace, graph.nodes[first_new:])
        if not retain_graph:
            trace.freed.update(reads)
        with interpreter(interp):
            # a leaf written under no_grad in this call has a value per version: its
            # gradient is the sum over them, as eagerly (one .grad, one hook call)
            result = [_combine(trace, [result[k] for k in idxs], create_graph)
                      for _t, idxs in groups]
            targets = [(t, None) for t, _idxs in groups]
            if not accumulate:
                return _collect(trace, targets, result, create_graph, allow_unused,
                                materialize_grads)
            stored = []
            for (t, _v), g in zip(targets, result):
                if g is not None:
                    _store_grad(trace, t, g, create_graph)
                    stored.append(t)
            for v, (_hooks, keep) in hooked.items():
                t = keep() if keep is not None else None
                if t is not None and v in grads_by_value:
                    _store_grad(trace, t, grads_by_value[v], create_graph)
            for t in stored:
                if t._post_acc_hooks:
                    for hook in list(t._post_acc_hooks.values()):
                        hook(t)
            pairs = [(t, _as_tensor(trace, g, create_graph))
                     for (t, _v), g in zip(eager_roots, eager_grads) if g is not None]
            if pairs:
                # the eager engine, recorded: its VJPs and .grad updates become graph ops
                run_backward([t for t, _ in pairs], [g for _, g in pairs], retain_graph,
                             create_graph)
    finally:
        _STATE.enabled = prev
    return None


def _eager_non_leaves(trace, roots) -> list[tuple[Tensor, Value]]:
    """Tensors bound from outside the call that carry an eager ``grad_fn`` and that
    ``roots`` depend on, with their values."""
    found = [(t, v) for t, v in trace.bound.values()
             if v.node is None and t._requires_grad and t.grad_fn is not None
             and not isinstance(t.grad_fn, LazyGradFn)]
    if not found:
        return []
    live = live_values(trace.graph, roots)
    return [(t, v) for t, v in found if v in live]


def _input_targets(trace, inputs) -> tuple[list, list]:
    """The values to differentiate for explicit ``inputs``: each input's current
    value, and for a leaf also its earlier values in this call (it was written under
    no_grad); with the groups of positions that make up each input's gradient."""
    targets, groups = [], []
    for t in inputs:
        idxs = [len(targets)]
        cur = trace.value_of(t)
        targets.append((t, cur))
        if t.grad_fn is None:
            for v, leaf in trace.leaves.items():
                if leaf is t and v is not cur:
                    idxs.append(len(targets))
                    targets.append((t, v))
        groups.append((t, idxs))
    return targets, groups


def _by_tensor(targets) -> list:
    """Positions of ``targets`` grouped by tensor, in first-seen order."""
    groups: dict[int, tuple] = {}
    for k, (t, _v) in enumerate(targets):
        groups.setdefault(id(t), (t, []))[1].append(k)
    return list(groups.values())


def _combine(trace, grads: list, create_graph: bool):
    """The sum of the Values in ``grads`` that are not None (None if all are)."""
    present = [g for g in grads if g is not None]
    if len(present) <= 1:
        return present[0] if present else None
    total = _as_tensor(trace, present[0], create_graph)
    for g in present[1:]:
        total = ops.add(total, _as_tensor(trace, g, create_graph))
    return trace.value_of(total)


def _roots(trace, tensors, grad_tensors):
    roots, seeds = [], []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            seeds.append(None)
        else:
            if not isinstance(g, Tensor):
                g = ops.full(tuple(t.shape), g, dtype=t.dtype)
            if tuple(g.shape) != tuple(t.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{tuple(g.shape)} and output[{i}] has a shape of "
                                   f"{tuple(t.shape)}.")
            seeds.append(trace.value_of(g))
        roots.append(trace.value_of(t))
    return roots, seeds


def _hooked_values(trace, retain: bool) -> dict:
    """value -> (tensor hooks, weakref of a tensor that retains its grad)."""
    out: dict = {}
    for v, t in trace.leaves.items():
        if t._hooks:
            out[v] = (list(t._hooks.values()), None)
    for fn in list(trace.graph_fns):
        if not isinstance(fn, LazyGradFn) or fn.node is None:
            continue
        for nr, hooks in fn.tensor_hooks.items():
            v = fn.node.outputs[nr]
            out[v] = (list(hooks.values()), out.get(v, ((), None))[1])
        if retain:
            for nr, ref in fn._retained.items():
                v = fn.node.outputs[nr]
                out[v] = (out.get(v, ((), None))[0], ref)
    return out


def _as_tensor(trace, g: Value, create_graph: bool) -> Tensor:
    return trace.new_tensor(g, create_graph and g in trace.requires_grad, g.node)


def _mark_differentiable(trace, nodes) -> None:
    # with create_graph the gradients are themselves differentiable
    rg = trace.requires_grad
    for node in nodes:
        if node.op.differentiable and any(type(x) is Value and x in rg for x in node.inputs):
            rg.update(o for o in node.outputs if o.type.dtype.category == CATEGORY_FLOAT)


def _store_grad(trace, var: Tensor, g: Value, create_graph: bool) -> None:
    gt = _as_tensor(trace, g, create_graph)
    if var._grad is None or create_graph or var._grad.requires_grad:
        trace.grads_set.append((len(trace.graph.nodes), var, var._grad))  # see Trace
        var._grad = gt if var._grad is None else ops.add(var._grad, gt)
    else:
        prev = _STATE.enabled
        _STATE.enabled = False
        try:
            var._grad.add_(gt)   # in place: .grad keeps its identity (a mutation record)
        finally:
            _STATE.enabled = prev


def _collect(trace, targets, result, create_graph, allow_unused, materialize_grads) -> tuple:
    out = []
    for (t, _v), g in zip(targets, result):
        if g is None:
            if materialize_grads:
                out.append(ops.full(tuple(t.shape), 0.0, dtype=t.dtype, device=t.device))
                continue
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
            out.append(None)
            continue
        out.append(_as_tensor(trace, g, create_graph))
    return tuple(out)
