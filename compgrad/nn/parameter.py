"""``nn.Parameter`` and ``nn.Buffer``: tensors a Module registers by attribute assignment."""

from __future__ import annotations

from compgrad.tensor import Tensor

__all__ = ["Parameter", "Buffer"]


class Parameter(Tensor):
    """A leaf tensor that a Module treats as a learnable parameter.

    ``Parameter(t)`` shares storage with ``t`` (as in PyTorch) and requires
    grad by default. Ops on parameters return plain Tensors.
    """

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            from compgrad.factories import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter data must be a Tensor, got {type(data).__name__}")
        self._init(data._data, data._device, data._version, data._base)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._data.copy(), self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor._from_array(self._data.copy(), self._device), self.requires_grad)
        if self._grad is not None:
            out._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = out
        return out


def _rebuild_parameter(arr, requires_grad: bool) -> Parameter:
    return Parameter(Tensor._from_array(arr), requires_grad)


class Buffer(Tensor):
    """Marks a tensor assigned to a Module attribute as a buffer (``persistent`` or not)."""

    def __init__(self, data: Tensor, *, persistent: bool = True):
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer data must be a Tensor, got {type(data).__name__}")
        self._init(data._data, data._device, data._version, data._base)
        self.persistent = persistent
