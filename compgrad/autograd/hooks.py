"""Tensor hooks: ``register_hook``, ``retain_grad``, post-accumulate-grad hooks.

A leaf keeps its hooks itself (its AccumulateGrad runs them); a non-leaf's
hooks live on its ``grad_fn`` keyed by output number, as in PyTorch, so they
run when that gradient is complete, before ``.grad`` is retained.
"""

from __future__ import annotations

import weakref

from compgrad.autograd.node import NO_HOOKS, RemovableHandle

__all__ = ["register_tensor_hook", "register_post_accumulate_hook", "retain_grad"]


def register_tensor_hook(t, hook) -> RemovableHandle:
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    if t.grad_fn is not None:
        return t.grad_fn._add_tensor_hook(t._output_nr, hook)
    if t._hooks is None:
        t._hooks = {}
    handle = RemovableHandle(t._hooks)
    t._hooks[handle.id] = hook
    return handle


def register_post_accumulate_hook(t, hook) -> RemovableHandle:
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if t.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if t._post_acc_hooks is None:
        t._post_acc_hooks = {}
    handle = RemovableHandle(t._post_acc_hooks)
    t._post_acc_hooks[handle.id] = hook
    return handle


def retain_grad(t) -> None:
    if not t.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if t.grad_fn is None:
        return  # leaves always keep their grad
    node = t.grad_fn
    if node._retained is NO_HOOKS:   # the shared empty table: give the node its own
        node._retained = {}
    node._retained[t._output_nr] = weakref.ref(t)
