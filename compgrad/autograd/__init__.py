"""``compgrad.autograd``: reverse-mode automatic differentiation with PyTorch's semantics.

Every op's derivative is its VJP rule in ``ir`` (one definition); this package
records the graph of eager ops, runs it backward, and offers PyTorch's
autograd API around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from compgrad import _eager
from compgrad.autograd import record as _record
from compgrad.autograd.anomaly import detect_anomaly, set_detect_anomaly
from compgrad.autograd.engine import run_backward
from compgrad.autograd.grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad,
    set_grad_enabled,
)
from compgrad.autograd.node import AccumulateGrad, Node
from compgrad.tensor import INPLACE_HOOKS as _INPLACE_HOOKS
from compgrad.tensor import Tensor

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "is_inference_mode_enabled", "set_detect_anomaly",
           "detect_anomaly", "Node", "AccumulateGrad"]

if _record.record not in _eager.RECORD_HOOKS:
    _eager.RECORD_HOOKS.append(_record.record)
if _record.check_inplace not in _INPLACE_HOOKS:
    _INPLACE_HOOKS.append(_record.check_inplace)


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
    run_backward(roots, grads, retain_graph, create_graph, inputs=inputs, accumulate=True)


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
    return run_backward(outs, grads, retain_graph, create_graph, inputs=ins,
                        allow_unused=bool(allow_unused) or materialize_grads, accumulate=False,
                        materialize_grads=materialize_grads)
