"""``backward`` and ``grad``: the two ways to run the engine."""

from __future__ import annotations

from collections.abc import Sequence

from compgrad.autograd.engine import run_backward
from compgrad.tensor import Tensor, _active_trace

__all__ = ["backward", "grad"]


def _run(*args, **kwargs):
    # inside a compiled function the symbolic backward of the recorded graph runs
    trace = _active_trace()
    if trace is not None:
        from compgrad.compile.autograd import trace_backward
        return trace_backward(trace, *args, **kwargs)
    return run_backward(*args, **kwargs)


def _as_tuple(x, what: str) -> tuple:
    if x is None:
        return ()
    if isinstance(x, Tensor):
        return (x,)
    if isinstance(x, Sequence):
        return tuple(x)
    raise TypeError(f"{what} must be a Tensor or a sequence of Tensors, got {type(x).__name__}")


def _grad_list(grad_tensors, n: int, what: str) -> list:
    if grad_tensors is None:
        return [None] * n
    grads = list(_as_tuple(grad_tensors, what)) if not isinstance(grad_tensors, Tensor) \
        else [grad_tensors]
    if len(grads) != n:
        raise RuntimeError(f"got {len(grads)} tensors and {n} gradients")
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
             grad_variables=None, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into ``.grad`` of the leaves (or of ``inputs``)."""
    roots = _as_tuple(tensors, "tensors")
    if grad_variables is not None:
        grad_tensors = grad_variables
    grads = _grad_list(grad_tensors, len(roots), "grad_tensors")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_tuple(inputs, "inputs")
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    _run(roots, grads, retain_graph, create_graph, inputs=inputs, accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused=None, is_grads_batched: bool = False,
         materialize_grads: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple (no ``.grad``
    is touched)."""
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported by compgrad")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    outs = _as_tuple(outputs, "outputs")
    ins = _as_tuple(inputs, "inputs")
    grads = _grad_list(grad_outputs, len(outs), "grad_outputs")
    if retain_graph is None:
        retain_graph = create_graph
    return _run(outs, grads, retain_graph, create_graph, inputs=ins,
                        allow_unused=bool(allow_unused) or materialize_grads, accumulate=False,
                        materialize_grads=materialize_grads)


def reset_grads(tensors, set_to_none: bool = True) -> None:
    """``zero_grad`` of modules and optimizers: each of ``tensors`` that has a ``.grad``
    gets ``None`` there (``set_to_none``), or has it detached from any graph (or stop
    requiring grad) and zeroed in place."""
    for p in tensors:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            if p.grad.grad_fn is not None:
                p.grad.detach_()
            else:
                p.grad.requires_grad_(False)
            p.grad.zero_()
