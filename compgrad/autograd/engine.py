"""The backward engine: runs each node once, in reverse creation order, with the
sum of its incoming gradients.

Gradients of leaves (and retained gradients of non-leaves) are collected
while the graph runs and stored only when every node has succeeded, so a
failing backward leaves every ``.grad`` as it was.
"""

from __future__ import annotations

import heapq
import sys
import traceback
import warnings
from collections.abc import Sequence

import numpy as np

from compgrad.autograd import anomaly
from compgrad.autograd.grad_mode import _STATE
from compgrad.autograd.node import AccumulateGrad, Node
from compgrad.autograd.record import edge_of
from compgrad.device_arrays import is_writeable
from compgrad.tensor import Tensor
from ir import ops
from ir.types import shape_str

__all__ = ["run_backward"]


def _root_grads(tensors: Sequence[Tensor], grad_tensors: Sequence, create_graph: bool):
    grads = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = ops.full(t.shape, 1.0, dtype=t.dtype, device=t.device)
        elif not isinstance(g, Tensor):
            raise TypeError(f"gradient must be a Tensor or None, got {type(g).__name__}")
        else:
            if tuple(g.shape) != tuple(t.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{shape_str(g.shape)} and output[{i}] has a shape of "
                                   f"{shape_str(t.shape)}.")
            if g.dtype is not t.dtype:
                g = ops.to_dtype(g, t.dtype)
            elif not g.requires_grad:
                g = Tensor._view_of(g, g._data)  # never store the caller's tensor as .grad
        grads.append(g)
    return grads


def _discover(root_nodes) -> dict:
    """Dependency counts of every node reachable from the roots."""
    deps: dict = {}
    seen = set()
    stack = list(root_nodes)
    for n in root_nodes:
        seen.add(n)
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            deps[nxt] = deps.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return deps


def _needed(root_nodes, targets: set) -> set:
    """Nodes from which some target node can be reached (only these need to run)."""
    memo: dict = {}
    order = []
    stack = [(n, False) for n in root_nodes]
    while stack:
        node, expanded = stack.pop()
        if node in memo and not expanded:
            continue
        if expanded:
            memo[node] = node in targets or any(
                memo.get(nxt, False) for nxt, _ in node.next_functions if nxt is not None)
            order.append(node)
            continue
        memo[node] = False
        stack.append((node, True))
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in memo:
                stack.append((nxt, False))
    return {n for n, ok in memo.items() if ok}


def _accumulate(buffer: list, index: int, g):
    prev = buffer[index]
    buffer[index] = g if prev is None else ops.add(prev, g)


def _fresh(g: Tensor, may_steal: bool = False) -> Tensor:
    """A gradient safe to store as ``.grad``: own, contiguous, writable storage.

    ``may_steal``: no hook or retained grad saw this backward's gradients, so a
    view whose base nothing else references may keep its memory."""
    arr = g._data
    if not arr.flags.c_contiguous or not is_writeable(arr):
        return Tensor._from_array(arr.copy(order="C"), g.device)
    if g._base is not None:
        if may_steal and _only_view_of_its_base(g):
            # the base is a temporary of this backward that nothing else can reach: the
            # view's memory becomes the gradient's own (as PyTorch's AccumulateGrad
            # steals a gradient nobody else holds)
            return Tensor._from_array(arr, g.device)
        return Tensor._from_array(arr.copy(), g.device)
    return g


def _only_view_of_its_base(g: Tensor) -> bool:
    """Whether ``g``'s base tensor and its array are referenced by nothing but ``g``."""
    base = g._base
    data = base._data
    # base: g._base, the local, getrefcount's argument; data: base._data, the local,
    # g._data.base, getrefcount's argument
    return (g._data.base is data and sys.getrefcount(base) <= 3
            and sys.getrefcount(data) <= 4)


def _materialize(node: Node, grads: list) -> list:
    """Zeros for float outputs that received no gradient (multi-output ops)."""
    if len(grads) == 1 and grads[0] is not None:
        return grads
    out = []
    for g, t in zip(grads, node.output_types):
        if g is None and t.dtype.is_floating_point:
            g = ops.full(t.shape, 0.0, dtype=t.dtype, device=t.device)
        out.append(g)
    return out


def _run_tensor_hooks(hooks: dict | None, g):
    if hooks:
        for hook in list(hooks.values()):
            result = hook(g)
            if result is not None:
                g = result
    return g


def _call_node(node: Node, grads: list) -> tuple:
    if node._pre_hooks:
        for hook in list(node._pre_hooks.values()):
            result = hook(tuple(grads))
            if result is not None:
                grads = list(result)
    try:
        result = node.apply_vjp(grads)
    except Exception as e:
        if anomaly.is_enabled():
            raise _anomaly_error(node, e) from e
        raise
    if anomaly._STATE.enabled and anomaly._STATE.check_nan:   # anomaly.check_nan_enabled()
        for i, g in enumerate(result):
            if g is not None and g._data.dtype.kind == "f" and np.isnan(g._data).any():
                raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th "
                                   f"output.{_where(node)}")
    if node._post_hooks:
        for hook in list(node._post_hooks.values()):
            new = hook(result, tuple(grads))
            if new is not None:
                result = tuple(new)
    return result


def _where(node: Node) -> str:
    frame = anomaly.user_frame(node._trace)
    if frame is None:
        return ""
    return (f" The forward op of {node.name()} was called at "
            f"{frame.filename}:{frame.lineno} ({frame.line})")


def _anomaly_error(node: Node, error: Exception) -> Exception:
    trace = "".join(traceback.format_list(node._trace or []))
    warnings.warn(f"Error detected in {node.name()}. Traceback of forward call that caused the "
                  f"error:\n{trace}", RuntimeWarning, stacklevel=3)
    return type(error)(f"{error}\n[anomaly mode] Error detected in {node.name()}.{_where(node)}") \
        if isinstance(error, RuntimeError) else error


def run_backward(tensors: Sequence[Tensor], grad_tensors: Sequence, retain_graph: bool,
                 create_graph: bool, inputs: Sequence[Tensor] | None = None,
                 allow_unused: bool = False, accumulate: bool = True,
                 materialize_grads: bool = False):
    """Back-propagate from ``tensors``.

    ``accumulate=True`` (``backward``): add into ``.grad`` of the leaves (only
    those in ``inputs`` when given). ``accumulate=False`` (``autograd.grad``):
    return the gradients of ``inputs`` and touch no ``.grad``.
    """
    prev_mode = _STATE.enabled
    _STATE.enabled = create_graph
    try:
        root_grads = _root_grads(tensors, grad_tensors, create_graph)
        return _execute(tensors, root_grads, retain_graph, create_graph, inputs, allow_unused,
                        accumulate, materialize_grads)
    finally:
        _STATE.enabled = prev_mode


def _execute(tensors, root_grads, retain_graph, create_graph, inputs, allow_unused,
             accumulate, materialize_grads):
    # the graph's entry: a pseudo-node whose "next functions" are the roots
    root_edges = [edge_of(t) for t in tensors]
    buffers: dict = {}
    for (node, nr), g in zip(root_edges, root_grads):
        buf = buffers.setdefault(node, [None] * _num_outputs(node))
        _accumulate(buf, nr, g)
    root_nodes = list(dict.fromkeys(node for node, _ in root_edges))

    capture: dict = {}       # (node, nr) -> index in inputs
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError("inputs must be Tensors")
            if not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            capture.setdefault(edge_of(t), []).append(i)
        needed = _needed(root_nodes, {node for node, _ in capture})
    else:
        needed = None

    deps = _discover(root_nodes)
    ready = [(-n.sequence_nr, id(n), n) for n in root_nodes if deps.get(n, 0) == 0]
    heapq.heapify(ready)
    captured: list = [None] * (len(inputs) if inputs is not None else 0)
    to_store: list = []      # (tensor, grad, is_leaf) applied once everything succeeded
    ran: list = []
    observed = False         # a hook or retained grad saw gradients: none may be stolen

    while ready:
        _, _, node = heapq.heappop(ready)
        grads = buffers.pop(node, None) or [None] * _num_outputs(node)
        if isinstance(node, AccumulateGrad):
            var = node.variable
            g = grads[0]
            if g is not None:
                if var._hooks:
                    observed = True
                    g = _run_tensor_hooks(var._hooks, g)
                for i in capture.get((node, 0), ()):
                    captured[i] = g
                if accumulate and (inputs is None or (node, 0) in capture):
                    to_store.append((var, g, True))
            continue
        # tensor hooks, retained grads and captured inputs (each rare) read the gradients
        # arriving at the node's outputs
        seen = bool(node._tensor_pre_hooks or node._retained or capture or node._pre_hooks
                    or node._post_hooks)
        observed = observed or seen
        for nr in (range(len(grads)) if seen else ()):
            if grads[nr] is not None:
                grads[nr] = _run_tensor_hooks(node._tensor_pre_hooks.get(nr), grads[nr])
                ref = node._retained.get(nr)
                var = ref() if ref is not None else None
                if var is not None and accumulate and inputs is None:
                    to_store.append((var, grads[nr], False))
                for i in capture.get((node, nr), ()):
                    captured[i] = grads[nr]
                    if accumulate:
                        to_store.append((inputs[i], grads[nr], False))
        run = (grads[0] is not None if len(grads) == 1 else any(g is not None for g in grads)) \
            and (needed is None or node in needed)
        results = _call_node(node, _materialize(node, grads)) if run else ()
        ran.append(node)
        for k, (nxt, nr) in enumerate(node.next_functions):
            if nxt is None:
                continue
            g = results[k] if run else None
            if g is not None:   # _accumulate(buffer of nxt, nr, g), inline
                buf = buffers.get(nxt)
                if buf is None:
                    buf = buffers[nxt] = [None] * _num_outputs(nxt)
                    buf[nr] = g
                else:
                    prev = buf[nr]
                    buf[nr] = g if prev is None else ops.add(prev, g)
            left = deps[nxt] - 1
            deps[nxt] = left
            if left == 0:
                heapq.heappush(ready, (-nxt.sequence_nr, id(nxt), nxt))

    if not retain_graph:
        for node in ran:
            node.release()
    for var, g, is_leaf in to_store:
        _store_grad(var, g, create_graph, may_steal=is_leaf and not observed)
    for var, _, is_leaf in to_store:
        if is_leaf and var._post_acc_hooks:
            for hook in list(var._post_acc_hooks.values()):
                hook(var)
    if inputs is None or accumulate:
        return None
    result = []
    for i, g in enumerate(captured):
        if g is None:
            if materialize_grads:
                t = inputs[i]
                g = ops.full(t.shape, 0.0, dtype=t.dtype, device=t.device)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        result.append(g)
    return tuple(result)


def _num_outputs(node) -> int:
    return 1 if isinstance(node, AccumulateGrad) else len(node.output_types)


def _store_grad(var: Tensor, g: Tensor, create_graph: bool, may_steal: bool = False) -> None:
    if not create_graph:
        g = _fresh(g.detach() if g.grad_fn is not None else g, may_steal)
    if var._grad is None:
        var._grad = g
    elif create_graph or var._grad.requires_grad:
        var._grad = ops.add(var._grad, g)
    else:
        var._grad._data += g._data
        var._grad._version[0] += 1
