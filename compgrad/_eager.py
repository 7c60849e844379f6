"""The eager interpreter: runs ops on tensors with their reference kernels.

Installed as the base interpreter when compgrad is imported. Results of view
ops share storage (and the version counter) with their base, as in PyTorch;
every other result is a fresh array, so no in-place op can leak into a value
it did not alias in PyTorch.
"""

from __future__ import annotations

import numpy as np

from compgrad.device_arrays import place, run_on_device, to_host
from ir.dispatch import Interpreter, is_scalar
from ir.fperr import ERRSTATE, IGNORE_ALL, quiet_call
from ir.opdef import OpDef, infer_type
from ir.types import CPU, TensorType, scalar_type

__all__ = ["EagerInterpreter", "EAGER", "RECORD_HOOKS", "argument_error"]

# Autograd installs its recorder here (compgrad.autograd); kept as a list so the
# interpreter does not import the engine. Hooks run for a view op, and for an op with
# an input tensor that requires grad or is a view (which may read a differentiable value
# once its base was written): on any other op autograd records nothing.
RECORD_HOOKS: list = []


class EagerInterpreter(Interpreter):
    def type_of(self, value) -> TensorType:
        if isinstance(value, _Tensor):
            t = value._type_cache
            return t if t is not None else value._type
        if is_scalar(value):
            return scalar_type(value)
        raise TypeError(f"expected a Tensor or a number, got {type(value).__name__}")

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        arrays = []
        types = []
        # whether autograd's hooks have anything to look at: an input that requires grad
        # or is a view (whose base may have gained a history since), or a view op
        recordable = op.is_view
        for a in args:
            if isinstance(a, _Tensor):
                arrays.append(a._data)
                t = a._type_cache
                types.append(t if t is not None else a._type)
                if a._requires_grad or a._view_version is not None:
                    recordable = True
            elif is_scalar(a):
                a = a.item() if isinstance(a, np.generic) else a
                arrays.append(a)
                types.append(scalar_type(a))
            else:
                raise argument_error(op, a)
        types = tuple(types)
        if attrs:
            out_type = infer_type(op, types, attrs)
            kernel = op.impl
        else:
            # attribute-free ops: the output type and the kernel for these input types,
            # decided once (_decide raises the type rule's errors on every bad call)
            decided = _DECIDED.get((op, types))
            if decided is None:
                decided = _decide(op, types)
            out_type, kernel = decided
        single = not isinstance(out_type, tuple)
        device = out_type.device if single else (
            out_type[0].device if out_type else CPU)   # unbind may give no outputs
        if device is not CPU and device.type != "cpu":
            result = quiet_call(run_on_device, op, arrays, attrs, device)
        elif ERRSTATE is not None:   # ir.fperr.quiet_call, inline on the hottest path
            token = ERRSTATE.set(IGNORE_ALL)
            try:
                result = kernel(*arrays, **attrs)
            finally:
                ERRSTATE.reset(token)
        else:
            result = quiet_call(kernel, *arrays, **attrs)
        if not single:
            outputs = tuple(_wrap(op, r, t, args, arrays) for r, t in zip(result, out_type))
        elif (op.fresh_result and device is CPU and type(result) is np.ndarray
              and result.shape == out_type.shape
              and (result.dtype is out_type.dtype.np_dtype
                   or result.dtype == out_type.dtype.np_dtype)):
            # _wrap's common case inline: a new CPU array of the right type that aliases
            # no input (fresh_result) becomes a tensor with its own storage as it is
            outputs = _new_tensor(_Tensor)
            outputs._data = result
            outputs._device = CPU
            outputs._version = [0]
            outputs._base = None
            outputs._type_cache = out_type
            outputs._requires_grad = False
            outputs.grad_fn = None
        else:
            outputs = _wrap(op, result, out_type, args, arrays)
        if recordable:
            for hook in RECORD_HOOKS:
                hook(op, args, attrs, outputs, types)
        return outputs


# (op, input types) -> (output type, kernel) for attribute-free applications
_DECIDED: dict[tuple, tuple] = {}
_DECIDED_LIMIT = 100_000


def _decide(op: OpDef, types: tuple) -> tuple:
    """The output type of ``op`` on ``types`` (raising the rule's error for bad input)
    and the kernel that computes it: ``op.direct``'s for these types, else the
    reference implementation. Memoised in ``_DECIDED``."""
    out_type = infer_type(op, types, {})
    kernel = op.direct(types) if op.direct is not None else None
    if len(_DECIDED) >= _DECIDED_LIMIT:
        _DECIDED.clear()
    decided = _DECIDED[(op, types)] = (out_type, kernel if kernel is not None else op.impl)
    return decided


def argument_error(op: OpDef, arg) -> TypeError:
    """The error for an op argument that is neither a Tensor nor a number (eager and
    recorded calls raise the same one)."""
    if arg is None or isinstance(arg, (str, tuple)):
        return TypeError(f"{op.name}(): expected a Tensor argument, got {type(arg).__name__}")
    return TypeError(f"{op.name}(): argument must be a Tensor or a number, not "
                     f"{type(arg).__name__}")


def _wrap(op: OpDef, result, t: TensorType, args, arrays):
    if t.device is CPU or t.device.type == "cpu":
        arr = result if type(result) is np.ndarray else to_host(result)
    else:
        arr = place(result, t.device)
    np_dtype = t.dtype.np_dtype
    if arr.dtype is not np_dtype and arr.dtype != np_dtype:
        arr = arr.astype(np_dtype)
    if arr.shape != t.shape:
        raise AssertionError(f"{op.name}: kernel produced shape {arr.shape}, type rule "
                             f"says {t.shape}")
    # an empty result of a view op is a view too (it shares no bytes, but autograd's
    # in-place rules treat it as one, as PyTorch does)
    if op.is_view and isinstance(args[0], _Tensor) and (
            _views_owner(arr, arrays[0]) or arr.size == 0
            or np.may_share_memory(arr, arrays[0])):
        return _Tensor._view_of(args[0], arr)
    # safety net: only view ops may alias an input (a kernel returning its input unchanged
    # would otherwise let an in-place op leak into a value PyTorch would have copied)
    if not op.fresh_result:
        # an array owning its memory (base None, as a new result's is) can only share it
        # with itself or an array whose base it is (NumPy points a view's base at the
        # owner): that test first, np.may_share_memory's bounds test otherwise
        owner = arr.base is None
        for a in arrays:
            if type(a) is type(arr) and (not owner or a is arr or a.base is arr) \
                    and np.may_share_memory(arr, a):
                arr = arr.copy()
                break
    out = _Tensor.__new__(_Tensor)
    out._init(arr, t.device)
    out._type_cache = t
    return out


def _views_owner(arr, a) -> bool:
    """Whether ``arr`` is a NumPy view of ``a``, an array owning its (one contiguous
    block of) memory: it then shares that memory, a cheaper test than
    np.may_share_memory's for a view op's usual result (``np.transpose(a)``)."""
    base = arr.base
    return base is not None and base is a and a.base is None


EAGER = EagerInterpreter()
_Tensor = None  # compgrad.tensor.Tensor, bound by bind_tensor_class() (it imports this module)
_new_tensor = object.__new__   # Tensor.__new__ (object's: Tensor defines none)


def bind_tensor_class(cls) -> None:
    global _Tensor, _new_tensor
    _Tensor = cls
    _new_tensor = cls.__new__
