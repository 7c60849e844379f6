"""The eager interpreter: runs ops on tensors with their reference kernels.

Installed as the base interpreter when compgrad is imported. Results of view
ops share storage (and the version counter) with their base, as in PyTorch;
every other result is a fresh array, so no in-place op can leak into a value
it did not alias in PyTorch.
"""

from __future__ import annotations

import numpy as np

from ir.dispatch import Interpreter, is_scalar
from ir.opdef import OpDef, infer_type
from ir.types import TensorType, scalar_type

__all__ = ["EagerInterpreter", "EAGER", "RECORD_HOOKS"]

# Autograd installs its recorder here (compgrad.autograd); kept as a list so the
# interpreter does not import the engine.
RECORD_HOOKS: list = []


class EagerInterpreter(Interpreter):
    def type_of(self, value) -> TensorType:
        from compgrad.tensor import Tensor
        if isinstance(value, Tensor):
            return value._type
        if is_scalar(value):
            return scalar_type(value)
        raise TypeError(f"expected a Tensor or a number, got {type(value).__name__}")

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        from compgrad.tensor import Tensor
        arrays = []
        types = []
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a._data)
                types.append(a._type)
            elif is_scalar(a):
                a = a.item() if isinstance(a, np.generic) else a
                arrays.append(a)
                types.append(scalar_type(a))
            elif a is None or isinstance(a, (str, tuple)):
                raise TypeError(f"{op.name}(): expected a Tensor argument, got "
                                f"{type(a).__name__}")
            else:
                raise TypeError(f"{op.name}(): argument must be a Tensor or a number, not "
                                f"{type(a).__name__}")
        types = tuple(types)
        out_type = infer_type(op, types, attrs)
        result = op.impl(*arrays, **attrs)
        if isinstance(out_type, tuple):
            outputs = tuple(_wrap(op, r, t, args, arrays) for r, t in zip(result, out_type))
        else:
            outputs = _wrap(op, result, out_type, args, arrays)
        for hook in RECORD_HOOKS:
            hook(op, args, attrs, outputs, types)
        return outputs


def _wrap(op: OpDef, result, t: TensorType, args, arrays):
    from compgrad.tensor import Tensor
    arr = result if isinstance(result, np.ndarray) else np.asarray(result)
    if arr.dtype != t.dtype.np_dtype:
        arr = arr.astype(t.dtype.np_dtype)
    if arr.shape != t.shape:
        raise AssertionError(f"{op.name}: kernel produced shape {arr.shape}, type rule "
                             f"says {t.shape}")
    if op.is_view and isinstance(args[0], Tensor) and np.may_share_memory(arr, arrays[0]):
        return Tensor._view_of(args[0], arr)
    for a in arrays:
        if isinstance(a, np.ndarray) and np.may_share_memory(arr, a):
            arr = arr.copy()
            break
    return Tensor._from_array(arr, t.device)


EAGER = EagerInterpreter()
