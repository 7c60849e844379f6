"""Recording the autograd graph as eager ops run, and autograd's in-place rules.

``record`` is installed in the eager interpreter's hooks and ``check_inplace``
in ``Tensor._write``'s: the interpreter and the Tensor know nothing of
autograd beyond these two calls.
"""

from __future__ import annotations

import functools
import weakref

from compgrad.autograd import anomaly, views
from compgrad.autograd.grad_mode import _STATE, enable_grad
from compgrad.autograd.node import AccumulateGrad, node_class
from compgrad.tensor import Tensor
from ir import ops
from ir.opdef import OpDef

__all__ = ["record", "check_inplace", "edge_of", "accumulator_of", "attach_outputs",
           "stale_view_requires_grad"]


def accumulator_of(t: Tensor) -> AccumulateGrad:
    """The (cached) AccumulateGrad sink of leaf ``t``."""
    ref = t._accumulator
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._accumulator = weakref.ref(acc)
    return acc


_NO_EDGE = (None, 0)


def edge_of(x) -> tuple:
    """Where the gradient of ``x`` goes: (node, output number) or (None, 0)."""
    if not isinstance(x, Tensor) or not (x._requires_grad or stale_view_requires_grad(x)):
        return _NO_EDGE
    if x._view_version is not None and x._view_version != x._version[0]:
        views.refresh_view(x)  # the base was written since this view was made
    if x.grad_fn is not None:
        return (x.grad_fn, x._output_nr)
    return (accumulator_of(x), 0)


def attach_outputs(node, outputs) -> None:
    """Make float ``outputs`` non-leaves produced by ``node``."""
    for i, o in enumerate(outputs):
        if isinstance(o, Tensor) and o._data.dtype.kind == "f":
            o._requires_grad = True
            o.grad_fn = node
            o._output_nr = i
            if o._base is not None:
                o._view_version = o._version[0]  # a differentiable view of its base


def stale_view_requires_grad(view: Tensor) -> bool:
    """Whether ``view`` (not requiring grad) must now: its base gained a history
    through an in-place write since the view was made (``e.add_(x)`` with ``x``
    requiring grad), so the view reads a differentiable value, as in PyTorch. The
    view then takes a ``grad_fn`` from its base's (refreshed under grad mode)."""
    version = view._view_version
    base = view._base
    # only a base with a history now: a leaf (a parameter an optimizer updates under
    # no_grad, read through a detached alias) gives its views none, as in PyTorch
    if version is None or version == view._version[0] or base is None \
            or base.grad_fn is None or view._detached:
        return False
    with enable_grad():
        views.refresh_view(view)
    return view._requires_grad


def record(op: OpDef, args: tuple, attrs: dict, outputs, types: tuple) -> None:
    """Add a node for ``op`` when grad mode is on and an input requires grad.

    ``types`` are the inputs' types, as the interpreter already computed them."""
    if not _STATE.enabled or not op.differentiable:
        return
    for a in args:
        if isinstance(a, Tensor) and (a._requires_grad or (
                a._view_version is not None and stale_view_requires_grad(a))):
            break
    else:
        if op.is_view:
            # a view made in grad mode of a base that does not require grad (yet): if a
            # later in-place write gives the base a history, the view follows it
            for o in (outputs if isinstance(outputs, tuple) else (outputs,)):
                if o._base is not None:
                    o._view_version = o._version[0]
        return
    if type(outputs) is tuple:
        outs = outputs
        for o in outs:
            if o._data.dtype.kind == "f":
                break
        else:
            return
    else:
        outs = (outputs,)
        if outputs._data.dtype.kind != "f":
            return
    node = node_class(op.name)(op, attrs, args, outs, tuple([_edge(a) for a in args]), types)
    if anomaly._STATE.enabled:   # anomaly.is_enabled(), inline
        node._trace = anomaly.capture_stack()
    attach_outputs(node, outs)


def _edge(x) -> tuple:
    """``edge_of(x)``, with the common cases inline: a number, a tensor that requires
    no grad and is no view, a non-leaf that is no view."""
    if not isinstance(x, Tensor):
        return _NO_EDGE
    if x._view_version is None:
        if not x._requires_grad:
            return _NO_EDGE
        node = x.grad_fn
        if node is not None:
            return (node, x._output_nr)
    return edge_of(x)


def _keep_original(node, target: Tensor) -> None:
    """The node of an in-place op saved the target as an input, which the write is
    about to overwrite: save a copy of the original instead (PyTorch's
    ``original_self``), so ``y.pow_(2)`` can still be differentiated."""
    for saved in getattr(node, "saved_inputs", ()):
        if saved.value is target:
            original = Tensor._from_array(target._data.copy(), target.device)
            original._requires_grad = target._requires_grad
            original.grad_fn = target.grad_fn
            original._output_nr = target._output_nr
            saved.value = original
            saved.counter = original._version
            saved.version = original._version[0]


def check_inplace(target: Tensor, value: Tensor, own_result: bool = True):
    """Autograd's rules for writing ``value`` into ``target`` in place.

    Called after every shape/dtype check passed and right before the write, so a
    refused write changes nothing. Returns what to do once the write is done
    (rebasing a view's base), or None. ``own_result``: ``value`` is the in-place
    op's own result, whose node keeps ``target``'s original (see ``Tensor._write``).
    """
    if not _STATE.enabled:
        return None
    base = target._base
    if target.requires_grad and target.grad_fn is None and base is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    if base is not None and not target._detached and (
            base.requires_grad or value.requires_grad or target.requires_grad):
        if base.requires_grad and base.grad_fn is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in "
                               "an in-place operation.")
        if views.view_positions(target) is None:
            raise RuntimeError(views.UNSUPPORTED)
        if value.grad_fn is not None and own_result:
            _keep_original(value.grad_fn, target)
        return functools.partial(views.rebase_view, target, value)
    if value.requires_grad and value.grad_fn is not None and (
            own_result or not (target.requires_grad and target.grad_fn is not None)):
        # (a copy_ into a tensor with history glues below instead: PyTorch's
        # CopyBackwards keeps an edge to that history, which gets a zero gradient)
        if own_result:
            _keep_original(value.grad_fn, target)
        target._requires_grad = True
        target.grad_fn = value.grad_fn
        target._output_nr = value._output_nr
    elif (target.requires_grad or value.requires_grad) and target._data.dtype.kind == "f":
        # PyTorch's CopyBackwards: the written tensor requires grad; its old history gets
        # a zero gradient and a leaf ``value`` the whole gradient
        glued = ops.overwrite(target, value)
        target._requires_grad = True
        target.grad_fn = glued.grad_fn
        target._output_nr = 0
    return None
