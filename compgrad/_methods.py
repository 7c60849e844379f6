"""Binds ``ir.ops`` functions to ``Tensor`` as methods and operators.

Each op family module declares ``METHODS`` (functions that are also Tensor
methods of the same name) and ``INPLACE`` (functions ``f`` whose in-place
method ``f_`` computes ``f(self, ...)`` and writes it into ``self``). One
generic in-place wrapper serves every op, so all in-place methods share
``Tensor._write``'s checks.
"""

from __future__ import annotations

from compgrad.tensor import Tensor
from ir import ops
from ir.dispatch import SCALAR_TYPES

__all__ = ["bind_methods"]


def _method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = fn.__name__
    method.__qualname__ = f"Tensor.{fn.__name__}"
    method.__doc__ = fn.__doc__
    return method


def _inplace(fn, name: str):
    def method(self, *args, **kwargs):
        return self._write(fn(self, *args, **kwargs))

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = f"In-place version of :meth:`Tensor.{fn.__name__}`."
    return method


_OPERAND_TYPES = (Tensor, *SCALAR_TYPES)


def _operand_ok(other) -> bool:
    return isinstance(other, _OPERAND_TYPES)


def _binary(fn, reflected: bool = False):
    def operator(self, other):
        if not _operand_ok(other):
            return NotImplemented
        return fn(other, self) if reflected else fn(self, other)

    return operator


def _inplace_binary(fn):
    def operator(self, other):
        if not _operand_ok(other):
            return NotImplemented
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
        setattr(tensor_cls, f"__i{op_name}__", _inplace_binary(fn))
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
