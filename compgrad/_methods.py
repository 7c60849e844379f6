"""Binds ``ir.ops`` functions to ``Tensor`` as methods and operators.

Each op family module declares ``METHODS`` (functions that are also Tensor
methods of the same name) and ``INPLACE`` (functions ``f`` whose in-place
method ``f_`` computes ``f(self, ...)`` and writes it into ``self``). One
generic in-place wrapper serves every op, so all in-place methods share
``Tensor._write``'s checks.
"""

from __future__ import annotations

import numpy as np

from compgrad.autograd.grad_mode import _STATE
from compgrad.device_arrays import is_writeable
from compgrad.tensor import INPLACE_HOOKS, Tensor, _active_trace
from ir import ops
from ir.dispatch import PY_NUMBERS, SCALAR_TYPES
from ir.ops._util import ufunc_into
from ir.types import broadcast_shapes

__all__ = ["bind_methods"]


def _named(method, name: str, doc: str | None):
    """``method`` named as ``Tensor.<name>`` with docstring ``doc``."""
    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = doc
    return method


def _method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    return _named(method, fn.__name__, fn.__doc__)


def _inplace(fn, name: str):
    ufunc = _INPLACE_UFUNCS.get(name[:-1])
    if ufunc is not None:
        return _inplace_arithmetic(fn, name, *ufunc)

    def method(self, *args, **kwargs):
        return self._write(fn(self, *args, **kwargs))

    return _named(method, name, f"In-place version of :meth:`Tensor.{fn.__name__}`.")


# In-place arithmetic whose result a ufunc can write straight into the tensor's storage:
# method name -> (ufunc, whether the method takes ``alpha``)
_INPLACE_UFUNCS = {
    "add": (np.add, True), "sub": (np.subtract, True), "subtract": (np.subtract, True),
    "mul": (np.multiply, False), "multiply": (np.multiply, False),
    "div": (np.true_divide, False), "divide": (np.true_divide, False),
    "true_divide": (np.true_divide, False),
}


def _write_ufunc(self: Tensor, other, np_fn: np.ufunc, alpha) -> bool:
    """``self.op_(other, alpha=alpha)`` computed by ``np_fn`` into ``self``'s storage.

    The generic path computes a new array and copies it in (``Tensor._write``);
    this one skips the temporary and the copy where it gives the same result: eager
    mode, a floating tensor with writeable storage, ``other`` a Python number or a
    tensor of the same dtype and device that broadcasts to ``self``'s shape, and
    nothing for autograd to record or check (grad mode off, as in an optimizer
    step, or no tensor involved requires grad). NumPy buffers overlapping operands.
    Returns False, having done nothing, where any of that does not hold.
    """
    if _active_trace() is not None:  # first: under @compile, reading _data would force it
        return False
    arr = self._data
    if arr.dtype.kind != "f" or not is_writeable(arr) or len(INPLACE_HOOKS) > 1:
        return False
    grad_on = _STATE.enabled
    if grad_on and (self._requires_grad or (self._base is not None
                                            and self._base._requires_grad)):
        return False
    if type(other) in PY_NUMBERS:
        if alpha != 1:
            return False
        operand = other
    elif isinstance(other, Tensor):
        data = other._data
        if (grad_on and other._requires_grad) or data.dtype != arr.dtype \
                or other._device != self._device or type(alpha) not in PY_NUMBERS:
            return False
        if data.shape != arr.shape:
            try:
                if broadcast_shapes(data.shape, arr.shape) != arr.shape:
                    return False
            except RuntimeError:
                return False   # the generic path raises PyTorch's error
        operand = data
        if alpha != 1:
            operand = np.empty_like(data)
            ufunc_into(np.multiply, operand, data, alpha)
    else:
        return False
    ufunc_into(np_fn, arr, arr, operand)
    self._version[0] += 1
    return True


def _inplace_arithmetic(fn, name: str, np_fn: np.ufunc, takes_alpha: bool):
    if takes_alpha:
        def method(self, other, *, alpha=1, **kwargs):
            if not kwargs and _write_ufunc(self, other, np_fn, alpha):
                return self
            return self._write(fn(self, other, alpha=alpha, **kwargs))
    else:
        def method(self, other, *args, **kwargs):
            if not args and not kwargs and _write_ufunc(self, other, np_fn, 1):
                return self
            return self._write(fn(self, other, *args, **kwargs))

    return _named(method, name, f"In-place version of :meth:`Tensor.{fn.__name__}`.")


_OPERAND_TYPES = (Tensor, *SCALAR_TYPES)


def _operand_ok(other) -> bool:
    return isinstance(other, _OPERAND_TYPES)


def _binary(fn, reflected: bool = False):
    # (_operand_ok inline: these run for every arithmetic operator)
    if reflected:
        def operator(self, other):
            if not isinstance(other, _OPERAND_TYPES):
                return NotImplemented
            return fn(other, self)
    else:
        def operator(self, other):
            if not isinstance(other, _OPERAND_TYPES):
                return NotImplemented
            return fn(self, other)

    return operator


def _inplace_binary(fn, name: str):
    ufunc = _INPLACE_UFUNCS.get(name)

    def operator(self, other):
        if not _operand_ok(other):
            return NotImplemented
        if ufunc is not None and _write_ufunc(self, other, ufunc[0], 1):
            return self
        return self._write(fn(self, other))

    return operator


def _eq_operator(fn, when_none: bool):
    def operator(self, other):
        if other is None:
            return when_none  # PyTorch: t == None is False, t != None is True
        if not _operand_ok(other):
            return NotImplemented
        return fn(self, other)

    return operator


# operator -> ir.ops function name
_BINARY_OPERATORS = {
    "add": "add", "sub": "sub", "mul": "mul", "truediv": "div", "floordiv": "floor_divide",
    "mod": "remainder", "pow": "pow", "matmul": "matmul", "and": "bitwise_and",
    "or": "bitwise_or", "xor": "bitwise_xor", "lshift": "bitwise_left_shift",
    "rshift": "bitwise_right_shift",
}
_COMPARISONS = {"lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}
_UNARY_OPERATORS = {"neg": "neg", "abs": "abs", "invert": "bitwise_not"}


def _positive(self):
    return self


def bind_methods(tensor_cls) -> None:
    """Attach every family's methods and the Python operators to ``tensor_cls``."""
    for family in ops.FAMILIES:
        for name in getattr(family, "METHODS", ()):
            if name not in tensor_cls.__dict__:
                setattr(tensor_cls, name, _method(getattr(family, name)))
        for name in getattr(family, "INPLACE", ()):
            if name + "_" not in tensor_cls.__dict__:
                setattr(tensor_cls, name + "_", _inplace(getattr(family, name), name + "_"))
    for op_name, fn_name in _BINARY_OPERATORS.items():
        fn = getattr(ops, fn_name, None)
        if fn is None:
            continue
        setattr(tensor_cls, f"__{op_name}__", _binary(fn))
        setattr(tensor_cls, f"__r{op_name}__", _binary(fn, reflected=True))
        setattr(tensor_cls, f"__i{op_name}__", _inplace_binary(fn, fn_name))
    for op_name, fn_name in _COMPARISONS.items():
        fn = getattr(ops, fn_name, None)
        if fn is not None:
            setattr(tensor_cls, f"__{op_name}__", _binary(fn))
    for op_name, when_none in (("eq", False), ("ne", True)):
        setattr(tensor_cls, f"__{op_name}__", _eq_operator(getattr(ops, op_name), when_none))
    for op_name, fn_name in _UNARY_OPERATORS.items():
        fn = getattr(ops, fn_name, None)
        if fn is not None:
            setattr(tensor_cls, f"__{op_name}__", fn)
    tensor_cls.__pos__ = _positive
