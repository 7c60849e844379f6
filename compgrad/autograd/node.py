"""Autograd graph nodes: one ``Node`` per recorded op, ``AccumulateGrad`` per leaf.

A node keeps what its op's VJP reads (inputs, outputs, attributes) as
:class:`SavedValue` records that remember the version of the storage at
save time, so a later in-place write is caught when backward reads them.
Node classes are named like PyTorch's (``MulBackward0``) for ``grad_fn``
reprs and error messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from types import MappingProxyType

from compgrad.state_epoch import STRUCTURE
from compgrad.tensor import Tensor as _Tensor
from ir.dtypes import from_numpy_dtype
from ir.opdef import OpDef
from ir.vjp import call_vjp

__all__ = ["Node", "AccumulateGrad", "SavedValue", "node_class", "RemovableHandle",
           "FREED_MESSAGE", "NO_HOOKS"]

FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward.")

_SEQUENCE = itertools.count()

# The hook tables of a node that has none (nearly every node): one shared, read-only
# empty mapping instead of four new dicts per recorded op. Registering a hook first
# gives the node its own dict (see _NodeHooks, _add_tensor_hook, hooks.retain_grad).
NO_HOOKS = MappingProxyType({})


class RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, registry: dict):
        STRUCTURE[0] += 1   # a hook is (about to be) registered: see compgrad.state_epoch
        self._registry = registry
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        STRUCTURE[0] += 1
        self._registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _NodeHooks:
    """Hook registration shared by every kind of graph node."""

    __slots__ = ()

    def register_hook(self, fn) -> RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after the node; may return new grad_inputs."""
        if self._post_hooks is NO_HOOKS:
            self._post_hooks = {}
        handle = RemovableHandle(self._post_hooks)
        self._post_hooks[handle.id] = fn
        return handle

    def register_prehook(self, fn) -> RemovableHandle:
        """``fn(grad_outputs)`` runs before the node; may return new grad_outputs."""
        if self._pre_hooks is NO_HOOKS:
            self._pre_hooks = {}
        handle = RemovableHandle(self._pre_hooks)
        self._pre_hooks[handle.id] = fn
        return handle


class SavedValue:
    """A value a VJP reads, with the storage version seen when it was saved.

    An output is kept as its raw array (not as the tensor, which would keep
    its own node alive) and re-wrapped, attached to the node, when read.
    """

    __slots__ = ("value", "version", "counter", "is_output", "output_nr")

    def __init__(self, value, is_output: bool = False, output_nr: int = 0):
        if isinstance(value, _Tensor):
            self.counter = value._version
            self.version = value._version[0]
            if is_output:
                # no reference to the tensor (whose grad_fn is the node): no cycle
                value = (value._data, value._device, value._base)
        else:
            self.counter = None
            self.version = None
        self.value = value
        self.is_output = is_output
        self.output_nr = output_nr

    def unpack(self, owner: Node):
        value = self.value
        if value is _RELEASED:
            raise RuntimeError(FREED_MESSAGE)
        if self.counter is None:
            return value
        if self.counter[0] != self.version:
            data = value[0] if self.is_output else value._data
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [compgrad.{_legacy(data)} {list(data.shape)}], which is "
                f"{'output' if self.is_output else 'input'} {self.output_nr} of "
                f"{owner.name()}, is at version {self.counter[0]}; expected version "
                f"{self.version} instead. Hint: the backtrace further above shows the operation "
                "that failed to compute its gradient. The variable in question was changed in "
                "there or anywhere later. Good luck!")
        if not self.is_output:
            return value
        data, device, base = value
        out = _Tensor._from_array(data, device)
        out._version = self.counter
        out._base = base
        out._requires_grad = True
        out.grad_fn = owner
        out._output_nr = self.output_nr
        return out


class _Released:
    def __repr__(self) -> str:
        return "<freed>"


_RELEASED = _Released()


def _legacy(data) -> str:
    return f"{from_numpy_dtype(data.dtype).torch_name}Tensor"


class _LazyValues(Sequence):
    """The saved inputs or outputs of a node, unpacked (and version-checked) on access."""

    __slots__ = ("_node", "_saved", "_cache")   # two are made per node backward runs

    def __init__(self, node: Node, saved: list[SavedValue]):
        self._node = node
        self._saved = saved
        self._cache: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self._saved)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        if i < 0:
            i += len(self._saved)
        if i not in self._cache:
            self._cache[i] = self._saved[i].unpack(self._node)
        return self._cache[i]

    def stored_array(self, i: int):
        """The NumPy array saved value ``i`` is stored in, without unpacking it (no
        version check): for rules that choose a memory layout, as PyTorch's read the
        saved strides. None where it was freed or is not a tensor."""
        value = self._saved[i].value
        if isinstance(value, _Tensor):
            return value._data
        if isinstance(value, tuple):   # a saved output: (data, device, base)
            return value[0]
        return None


class Node(_NodeHooks):
    """A recorded op (``grad_fn``): what backward runs to reach the op's inputs."""

    __slots__ = ("op", "attrs", "saved_inputs", "saved_outputs", "input_types", "output_types",
                 "next_functions", "sequence_nr", "_pre_hooks", "_post_hooks",
                 "_tensor_pre_hooks", "_retained", "_released", "_metadata", "_trace",
                 "__weakref__")

    def __init__(self, op: OpDef | None, attrs: dict, inputs: Sequence, outputs: Sequence,
                 next_functions: tuple, input_types: tuple | None = None):
        # built once per recorded op: map() and the one-output case spare comprehension
        # frames, and the hook tables start as the shared empty NO_HOOKS
        self.op = op
        self.attrs = attrs
        self.saved_inputs = list(map(SavedValue, inputs))
        if len(outputs) == 1:
            out = outputs[0]
            self.saved_outputs = [SavedValue(out, True, 0)]
            self.output_types = (out._type,)
        else:
            self.saved_outputs = [SavedValue(o, True, i) for i, o in enumerate(outputs)]
            self.output_types = tuple([o._type for o in outputs])
        if input_types is None:
            input_types = [x._type for x in inputs]
        # Python scalars take no gradient: their entry is None
        self.input_types = tuple([None if t.weak else t for t in input_types])
        self.next_functions = next_functions
        self.sequence_nr = next(_SEQUENCE)
        self._pre_hooks = self._post_hooks = NO_HOOKS
        self._tensor_pre_hooks = self._retained = NO_HOOKS
        self._released = False
        self._metadata = None
        self._trace = None

    @property
    def metadata(self) -> dict:
        """A dict for the user's own annotations of this node (made on first access)."""
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"

    def inputs(self) -> _LazyValues:
        return _LazyValues(self, self.saved_inputs)

    def outputs(self) -> _LazyValues:
        return _LazyValues(self, self.saved_outputs)

    def release(self) -> None:
        """Free the saved values (after a backward without ``retain_graph``).

        Only reading a freed value raises, so a node whose VJP reads nothing
        but types may run again, as in PyTorch.
        """
        for s in self.saved_inputs + self.saved_outputs:
            if s.counter is not None:
                s.value = _RELEASED
        self._released = True

    def apply_vjp(self, grads: list) -> tuple:
        """The gradients of this node's inputs given its outputs' gradients."""
        return call_vjp(self.op, self.inputs(), self.outputs(), self.attrs, grads,
                        input_types=self.input_types,
                        needs_input_grad=[n is not None for n, _ in self.next_functions])

    def _add_tensor_hook(self, output_nr: int, fn) -> RemovableHandle:
        if self._tensor_pre_hooks is NO_HOOKS:
            self._tensor_pre_hooks = {}
        hooks = self._tensor_pre_hooks.setdefault(output_nr, {})
        handle = RemovableHandle(hooks)
        hooks[handle.id] = fn
        return handle


class AccumulateGrad(_NodeHooks):
    """The sink of a leaf tensor: backward accumulates into ``variable.grad``."""

    __slots__ = ("variable", "sequence_nr", "_pre_hooks", "_post_hooks", "metadata",
                 "__weakref__")
    next_functions: tuple = ()

    def __init__(self, variable):
        self.variable = variable
        self.sequence_nr = -1  # leaves run after every node that feeds them
        self._pre_hooks: dict = {}
        self._post_hooks: dict = {}
        self.metadata: dict = {}

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {hex(id(self))}>"


_NODE_CLASSES: dict[str, type] = {}


# internal ops whose node PyTorch names otherwise
_PYTORCH_NAMES = {"overwrite": "CopyBackwards"}


def node_class(name: str) -> type:
    """The Node subclass for an op, named like PyTorch's (``log_softmax`` ->
    ``LogSoftmaxBackward0``)."""
    cls = _NODE_CLASSES.get(name)
    if cls is None:
        camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
        cls = type(_PYTORCH_NAMES.get(name, f"{camel}Backward0"), (Node,), {"__slots__": ()})
        _NODE_CLASSES[name] = cls
    return cls
