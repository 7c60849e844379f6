"""Custom differentiable functions: ``compgrad.autograd.Function``.

Subclasses define static ``forward(ctx, ...)`` and ``backward(ctx, ...)``;
``apply`` runs forward without recording and adds one node whose VJP is the
user's backward.
"""

from __future__ import annotations

import functools
import weakref

from compgrad.autograd import anomaly
from compgrad.autograd.grad_mode import _STATE, no_grad
from compgrad.autograd.node import FREED_MESSAGE, Node, SavedValue
from compgrad.autograd.record import attach_outputs, edge_of
from compgrad.tensor import Tensor
from ir import ops
from ir.types import broadcast_shapes, shape_str

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` of a custom Function: what forward leaves for backward."""

    def __init__(self):
        self._saved: list[SavedValue] | None = None
        self._node_ref: weakref.ref | None = None
        self.needs_input_grad: tuple = ()
        self.non_differentiable: set[int] = set()
        self.dirty: set[int] = set()
        self.materialize_grads = True
        self._released = False

    @property
    def _node(self) -> Node | None:
        """The backward node of the call that made this ctx (None before it is made, or
        once it is gone). Held weakly: the node holds the ctx, and a strong reference
        back would make a cycle per call that only the cyclic GC frees."""
        ref = self._node_ref
        return None if ref is None else ref()

    @_node.setter
    def _node(self, node: Node | None) -> None:
        self._node_ref = None if node is None else weakref.ref(node)

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{len(self._saved or [])} is of type {type(t).__name__}")
        self._to_save = tensors

    def _pack(self, outputs: tuple) -> None:
        saved = []
        for t in getattr(self, "_to_save", ()):
            if t is None:
                saved.append(SavedValue(None))
                continue
            idx = next((i for i, o in enumerate(outputs) if o is t), None)
            saved.append(SavedValue(t, True, idx) if idx is not None and
                         self._node is not None else SavedValue(t))
        self._saved = saved
        self._to_save = ()

    @property
    def saved_tensors(self) -> tuple:
        if self._released:
            raise RuntimeError(FREED_MESSAGE)
        if self._saved is None:
            return tuple(getattr(self, "_to_save", ()))
        return tuple(s.unpack(self._node) for s in self._saved)

    def mark_non_differentiable(self, *tensors) -> None:
        self.non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors) -> None:
        self.dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class _FunctionNode(Node):
    __slots__ = ("fn_cls", "ctx")

    def __init__(self, fn_cls, ctx: FunctionCtx, inputs: tuple, outputs: tuple):
        super().__init__(None, {}, (), outputs, tuple(edge_of(a) for a in inputs), ())
        self.saved_outputs = []
        self.input_types = tuple(a._type if isinstance(a, Tensor) else None for a in inputs)
        self.fn_cls = fn_cls
        self.ctx = ctx

    def apply_vjp(self, grads: list) -> tuple:
        if self.ctx._released:
            raise RuntimeError(FREED_MESSAGE)
        if self.ctx.materialize_grads:
            grads = [g if g is not None else ops.full(t.shape, 0.0, dtype=t.dtype,
                                                      device=t.device)
                     for g, t in zip(grads, self.output_types)]
        result = self.fn_cls.backward(self.ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self.input_types)
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of "
                               f"gradients (expected {n}, got {len(result)})")
        checked = []
        for i, (g, t) in enumerate(zip(result, self.input_types)):
            if g is None or t is None or not t.dtype.is_floating_point:
                checked.append(None)
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f"function {self.name()} returned a gradient of type "
                                f"{type(g).__name__} at index {i}; expected a Tensor or None")
            if tuple(g.shape) != t.shape:
                try:
                    ok = broadcast_shapes(g.shape, t.shape) == tuple(g.shape)
                except RuntimeError:
                    ok = False
                if not ok:
                    raise RuntimeError(f"Function {self.name()} returned an invalid gradient at "
                                       f"index {i} - got {shape_str(g.shape)} but expected "
                                       f"shape compatible with {shape_str(t.shape)}")
                g = ops.sum_to_size(g, t.shape)
            if g.dtype is not t.dtype:
                g = ops.to_dtype(g, t.dtype)
            checked.append(g)
        return tuple(checked)

    def release(self) -> None:
        self.ctx._released = bool(self.ctx._saved)
        if self.ctx._saved:
            self.ctx._saved = []


class _FunctionMeta(type):
    def __init__(cls, name, bases, namespace):
        super().__init__(name, bases, namespace)
        cls._backward_cls = type(f"{name}Backward", (_FunctionNode,), {"__slots__": ()})


class Function(metaclass=_FunctionMeta):
    """Base class of custom autograd functions (see PyTorch's ``torch.autograd.Function``)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            result = cls.forward(ctx, *args, **kwargs)
        is_tuple = isinstance(result, tuple)
        outputs = result if is_tuple else (result,)
        record = _STATE.enabled and any(ctx.needs_input_grad)
        if not record:
            ctx._pack(outputs)
            return result
        inputs_by_id = {id(a): a for a in args if isinstance(a, Tensor)}
        final = []
        for o in outputs:
            if isinstance(o, Tensor) and id(o) in inputs_by_id:
                if id(o) in ctx.dirty:
                    if o.requires_grad and o.grad_fn is None:
                        raise RuntimeError("a leaf Variable that requires grad has been used in "
                                           "an in-place operation.")
                else:
                    o = Tensor._view_of(o, o._data)  # an input returned as is: a new alias
            final.append(o)
        tensor_outs = tuple(o for o in final if isinstance(o, Tensor))
        node = cls._backward_cls(cls, ctx, args, tensor_outs)
        if anomaly.is_enabled():
            node._trace = anomaly.capture_stack()
        ctx._node = node
        attach_outputs(node, tensor_outs)
        for o in tensor_outs:
            if id(o) in ctx.non_differentiable and o.grad_fn is node:
                o.grad_fn = None
                o._requires_grad = False
        ctx._pack(tensor_outs)
        return tuple(final) if is_tuple else final[0]


def once_differentiable(fn):
    """Decorate a ``backward`` that is not itself differentiable: it runs without recording."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            return fn(ctx, *args)

    return wrapper
