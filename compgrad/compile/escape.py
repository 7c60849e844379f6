"""Compiled forwards used from eager code: outputs that require grad leave the
compiled call with a ``grad_fn`` (``CompiledFunctionBackward``, as in
PyTorch) that runs the symbolic backward of the recorded graph as a compiled
program when eager autograd reaches it.

``out = compiled_model(x); loss = f(out); loss.backward()`` thus works: the
eager engine hands the output gradients to this node, which appends the
backward of the call's graph (``passes.autodiff``, the OpDefs' VJP rules),
runs it through the compiled function's program cache and returns the
gradients of the tensors from outside the call that required grad
(parameters, or eager tensors whose own ``grad_fn`` continues the chain).
"""

from __future__ import annotations

from compgrad.autograd.function import Function
from compgrad.autograd.node import FREED_MESSAGE
from compgrad.compile.lazy import LazyGradFn, LazyInterpreter
from compgrad.compile.saving import rematerialize
from compgrad.tensor import Tensor
from ir import ops
from ir.dispatch import interpreter
from passes import autodiff

__all__ = ["attach_backward"]


class _Region:
    """What the backward of one compiled call needs: its trace, the escaped
    outputs' values and the outside tensors gradients flow to."""

    def __init__(self, trace, outputs: list[Tensor], inputs: list[tuple[Tensor, object]]):
        self.trace = trace
        self.outputs = outputs
        kept = trace is not None   # (else no backward runs: see backward)
        self.values = [t._lazy_value for t in outputs] if kept else []
        self.types = [(t._type.shape, t._type.dtype) for t in outputs] if kept else []
        self.inputs = inputs

    def backward(self, grads: tuple) -> tuple:
        from compgrad.compile.autograd import check_saved
        trace = self.trace
        if trace is None:
            raise RuntimeError(FREED_MESSAGE)
        roots, seeds = [], []
        with interpreter(LazyInterpreter(trace)):
            for v, (shape, dtype), g in zip(self.values, self.types, grads):
                if g is None:
                    continue
                if not isinstance(g, Tensor):
                    g = ops.full(shape, g, dtype=dtype)
                roots.append(v)
                seeds.append(trace.value_of(g))
            result = autodiff.backward(trace.graph, roots, seeds, [v for _, v in self.inputs],
                                       requires_grad=trace.requires_grad.__contains__,
                                       on_saved=lambda node, kind, i: check_saved(
                                           trace, node, kind, i, []))
            out = [None if v is None else trace.new_tensor(v, False, v.node) for v in result]
            rematerialize(trace)   # what the call recomputes rather than kept
            trace.final = True
            if trace.pending():
                trace.flush(reason="backward of a compiled call")
        return tuple(out)


class CompiledFunction(Function):
    """The autograd node of a compiled call's outputs (named as PyTorch names it)."""

    @staticmethod
    def forward(ctx, region, *inputs):
        ctx.region = region
        return tuple(region.outputs)

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + ctx.region.backward(grads)


def attach_backward(trace) -> None:
    """Give ``trace.escaped`` (materialised outputs of the call that still carry a
    recorded ``grad_fn``) an eager ``grad_fn`` running the compiled backward."""
    escaped = trace.escaped
    if not escaped:
        return
    trace.escaped = []   # (the outputs hold the trace through their grad_fn: no cycle)
    for t in escaped:
        t._lazy_value = trace.bound[id(t)][1]
    inputs = [(t, v) for v, t in _outside_tensors(trace)]
    for t in escaped:
        trace.bound.pop(id(t), None)   # (likewise: their values stay in trace.env)
    if not trace.backward_follows:
        # a backward inside the call freed what these outputs' backward reads (a loss
        # returned by a training step): eagerly a second backward raises, so keep
        # nothing of the call (its values would otherwise live as long as the output)
        trace = None
    region = _Region(trace, escaped, inputs)
    for t in escaped:   # become outputs of the node below
        t.grad_fn = None
        t._requires_grad = False
    CompiledFunction.apply(region, *[t for t, _ in inputs])
    # the outputs now point at the region through their grad_fn: a region pointing back
    # at them would make a cycle only the cyclic GC frees, keeping the call's arrays
    # (and the buffer pool's buffers) alive past the user's last reference
    region.outputs = ()


def _outside_tensors(trace):
    """Tensors that require grad whose values the call read: outside tensors and leaves
    made inside it (a leaf by the value first read, even when the call wrote it since,
    as an optimizer step does)."""
    seen = set()
    read = list(trace.leaves.items()) + [(v, t) for t, v in trace.bound.values()]
    for value, tensor in read:
        read_as_input = value.node is None or trace.leaves.get(value) is tensor
        if read_as_input and tensor._requires_grad and id(tensor) not in seen \
                and not isinstance(tensor.grad_fn, LazyGradFn):
            seen.add(id(tensor))
            yield value, tensor
