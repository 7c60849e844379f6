"""Creation ops: zeros, ones, full, empty, arange, linspace, logspace, eye, *_like.

These make values from shapes and attributes; they take no tensor inputs
(``full`` takes its fill value as a weak scalar input, so a graph can change
it without recompiling). Shapes, dtypes and devices are attributes.

The functions here are the ir-level entry points (``ir.ops.zeros(shape,
dtype=..., device=...)``). The user-facing factories with PyTorch's full
signatures (varargs sizes, ``requires_grad=``, device checks) live in
``compgrad.factories``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ir import dtypes
from ir.dtypes import CATEGORY_BOOL, CATEGORY_FLOAT, CATEGORY_INT, DType
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, check_dtype_arg, is_scalar, register, type_of
from ir.types import CPU, Device, TensorType, check_shape

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = (
    "zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "eye", "zeros_like",
    "ones_like", "full_like", "empty_like", "scalar_tensor", "infer_fill_dtype",
    "check_fill_value",
)


def _device(device) -> Device:
    if device is None:
        return CPU
    return device if isinstance(device, Device) else Device(device)


def _dtype(dtype, default: DType | None = None) -> DType:
    d = check_dtype_arg(dtype)
    return (default or dtypes.default_float_dtype()) if d is None else d


def _creation_rule(types, shape, dtype, device, **_attrs):
    return TensorType(shape, dtype, device)


def _shape_samples():
    yield Sample(((2, 3),), grad=False)
    yield Sample(((),), grad=False, note="0-d")
    yield Sample(((0, 3),), grad=False, note="empty")
    yield Sample(((4,),), {"dtype": dtypes.float64}, grad=False)
    yield Sample(((2, 2),), {"dtype": dtypes.int32}, grad=False)
    yield Sample(((3,),), {"dtype": dtypes.bool_}, grad=False)
    yield ErrorSample(((-1, 2),), {}, RuntimeError, "negative dimension -1")


# --- zeros / ones / empty ----------------------------------------------------------------

def _zeros_impl(*, shape, dtype, device):
    return np.zeros(shape, dtype=dtype.np_dtype)


def _ones_impl(*, shape, dtype, device):
    return np.ones(shape, dtype=dtype.np_dtype)


ZEROS = register(OpDef("zeros", OpKind.CREATION, _creation_rule, _zeros_impl, None,
                       _shape_samples, differentiable=False))
ONES = register(OpDef("ones", OpKind.CREATION, _creation_rule, _ones_impl, None,
                      _shape_samples, differentiable=False))


def zeros(size, dtype=None, device=None):
    """A tensor of ``size`` filled with 0 (default dtype float32)."""
    return apply(ZEROS, shape=check_shape(size), dtype=_dtype(dtype), device=_device(device))


def ones(size, dtype=None, device=None):
    """A tensor of ``size`` filled with 1 (default dtype float32)."""
    return apply(ONES, shape=check_shape(size), dtype=_dtype(dtype), device=_device(device))


def empty(size, dtype=None, device=None):
    """An uninitialised tensor of ``size``; compgrad fills it with zeros."""
    return zeros(size, dtype, device)


# --- full --------------------------------------------------------------------------------

_C_TYPE_NAMES = {dtypes.int8: "int8_t", dtypes.int16: "int16_t", dtypes.int32: "int",
                 dtypes.int64: "int64_t", dtypes.uint8: "uint8_t", dtypes.float32: "float"}


def infer_fill_dtype(fill_type: TensorType) -> DType:
    """PyTorch's dtype for ``full`` with no dtype: bool -> bool, int -> int64, float ->
    the default float dtype."""
    if fill_type.dtype.category == CATEGORY_BOOL:
        return dtypes.bool_
    if fill_type.dtype.category == CATEGORY_INT:
        return dtypes.int64
    return dtypes.default_float_dtype()


def check_fill_value(value, dtype: DType) -> None:
    """PyTorch's overflow check when a Python number is converted to ``dtype``."""
    if not isinstance(value, numbers.Number) or isinstance(value, bool):
        return
    name = _C_TYPE_NAMES.get(dtype)
    if name is None:
        return
    v = float(value) if isinstance(value, float) else value
    if dtype.category == CATEGORY_INT:
        info = np.iinfo(dtype.np_dtype)
        if isinstance(v, float) and not math.isfinite(v):
            bad = True
        elif dtype is dtypes.uint8:
            bad = v > info.max or (v < 0 and -v > info.max)
        else:
            bad = v < info.min or v > info.max
    else:
        bad = isinstance(v, float) and math.isfinite(v) and abs(v) > np.finfo(np.float32).max
    if bad:
        raise RuntimeError(f"value cannot be converted to type {name} without overflow")


def _full_rule(types, shape, dtype, device):
    (v,) = types
    if v.ndim != 0:
        raise RuntimeError(f"full(): fill_value must be a number or a 0-dim tensor, but got a "
                           f"tensor with {v.ndim} dimensions")
    return TensorType(shape, dtype, device)


def _full_impl(value, *, shape, dtype, device):
    if isinstance(value, np.ndarray):
        value = value.reshape(()).item()
    with np.errstate(all="ignore"):
        out = np.empty(shape, dtype=dtype.np_dtype)
        np.copyto(out, np.asarray(value), casting="unsafe")
    return out


def _full_samples():
    yield Sample(((2, 3), 1.5), grad=False)
    yield Sample(((2, 3), 7), grad=False, note="int fill gives int64")
    yield Sample(((3,), True), grad=False, note="bool fill gives bool")
    yield Sample(((), -2.0), grad=False, note="0-d")
    yield Sample(((0, 2), 1.0), grad=False, note="empty")
    yield Sample(((2,), 2.7), {"dtype": dtypes.int32}, grad=False, note="float into int")
    yield Sample(((2, 2), 3), {"dtype": dtypes.float64}, grad=False)
    yield Sample(((2,), float("inf")), grad=False)
    yield ErrorSample(((2,), 300), {"dtype": dtypes.uint8}, RuntimeError,
                      "cannot be converted to type uint8_t without overflow")
    yield ErrorSample(((-2,), 1.0), {}, RuntimeError, "negative dimension")


FULL = register(OpDef("full", OpKind.CREATION, _full_rule, _full_impl, None, _full_samples,
                      differentiable=False))


def full(size, fill_value, dtype=None, device=None):
    """A tensor of ``size`` filled with ``fill_value`` (a number or a 0-d tensor).

    With no ``dtype``, bool values give bool, ints int64 and floats the default
    float dtype, as in PyTorch.
    """
    shape = check_shape(size)
    if not is_scalar(fill_value):
        ft = type_of(fill_value)
        if ft.numel != 1:
            raise RuntimeError(f"full(): fill_value must be a number or a 0-dim tensor, but "
                               f"got a tensor with {ft.ndim} dimensions")
    d = check_dtype_arg(dtype)
    if d is None:
        d = infer_fill_dtype(type_of(fill_value))
    if is_scalar(fill_value):
        if isinstance(fill_value, np.generic):
            fill_value = fill_value.item()
        check_fill_value(fill_value, d)
    elif type_of(fill_value).ndim != 0:
        from ir.ops.movement import reshape
        fill_value = reshape(fill_value, ())
    return apply(FULL, fill_value, shape=shape, dtype=d, device=_device(device))


def scalar_tensor(s, dtype=None, device=None):
    """A 0-d tensor holding ``s`` (default dtype float32, as ``torch.scalar_tensor``)."""
    return full((), s, dtype=_dtype(dtype), device=device)


# --- *_like ------------------------------------------------------------------------------

def _like(input, dtype, device):
    t = type_of(input)
    d = check_dtype_arg(dtype) or t.dtype
    dev = t.device if device is None else _device(device)
    return t.shape, d, dev


def zeros_like(input, dtype=None, device=None):
    """Zeros with the shape (and by default the dtype and device) of ``input``."""
    return zeros(*_like(input, dtype, device))


def ones_like(input, dtype=None, device=None):
    return ones(*_like(input, dtype, device))


def empty_like(input, dtype=None, device=None):
    return zeros(*_like(input, dtype, device))


def full_like(input, fill_value, dtype=None, device=None):
    shape, d, dev = _like(input, dtype, device)
    return full(shape, fill_value, dtype=d, device=dev)


# --- arange ------------------------------------------------------------------------------

def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _arange_length(start, end, step, dtype: DType) -> int:
    if not (math.isfinite(float(start)) and math.isfinite(float(end))):
        raise RuntimeError(f"unsupported range: {_num(start)} -> {_num(end)}")
    if dtype.category == CATEGORY_INT and step != 0 and int(step) == 0:
        raise ValueError("step must be nonzero")
    if dtype.category == CATEGORY_INT:
        s, e, st = int(start), int(end), int(step)
    else:
        s, e, st = float(start), float(end), float(step)
    if st == 0:
        raise RuntimeError("step must be nonzero")
    if (st > 0 and e < s) or (st < 0 and e > s):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is dtypes.int64:
        # PyTorch computes int64 lengths in integers, the other dtypes in double
        return max(0, _trunc_div(e - s + st - (1 if st > 0 else -1), st))
    return max(0, math.ceil((float(end) - float(start)) / float(step)))


def _num(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _arange_rule(types, start, end, step, dtype, device):
    if dtype is dtypes.bool_:
        raise NotImplementedError("\"arange_cpu\" not implemented for 'Bool'")
    return TensorType((_arange_length(start, end, step, dtype),), dtype, device)


def _arange_impl(*, start, end, step, dtype, device):
    n = _arange_length(start, end, step, dtype)
    if dtype.category == CATEGORY_INT:
        return np.arange(n, dtype=np.int64) * int(step) + int(start)
    return float(start) + np.arange(n, dtype=np.float64) * float(step)


def _arange_samples():
    yield Sample((5,), grad=False)
    yield Sample((2, 9, 3), grad=False)
    yield Sample((1.0, 4.0), grad=False, note="float args give float32")
    yield Sample((-3, 3, 0.7), grad=False)
    yield Sample((10, 0, -3), grad=False, note="negative step")
    yield Sample((0, 1, 0.25), {"dtype": dtypes.float64}, grad=False)
    yield Sample((0.5, 5), {"dtype": dtypes.int32}, grad=False)
    yield Sample((1, 2.5, 0.5), {"dtype": dtypes.float16}, grad=False)
    yield Sample((3, 3), grad=False, note="empty")
    yield ErrorSample((0, 10, 0), {}, RuntimeError, "step must be nonzero")
    yield ErrorSample((10, 0), {}, RuntimeError, "inconsistent with step sign")
    yield ErrorSample((0, float("inf")), {}, RuntimeError, "unsupported range")


ARANGE = register(OpDef("arange", OpKind.CREATION, _arange_rule, _arange_impl, None,
                        _arange_samples, differentiable=False))


def _number(x, what: str):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, numbers.Number):
        return x
    if hasattr(x, "item") and hasattr(x, "shape"):  # a one-element tensor: read its value
        return x.item()
    raise TypeError(f"{what} must be a number, not {type(x).__name__}")


def arange(start, end=None, step=1, dtype=None, device=None):
    """``[start, end)`` with spacing ``step``; ``arange(end)`` starts at 0.

    With no ``dtype``, any float argument gives the default float dtype,
    otherwise int64.
    """
    if end is None:
        start, end = 0, start
    start, end, step = (_number(start, "start"), _number(end, "end"), _number(step, "step"))
    d = check_dtype_arg(dtype)
    if d is None:
        any_float = any(isinstance(v, float) for v in (start, end, step))
        d = dtypes.default_float_dtype() if any_float else dtypes.int64
    return apply(ARANGE, start=start, end=end, step=step, dtype=d, device=_device(device))


# --- linspace / logspace -----------------------------------------------------------------

def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not hasattr(steps, "__index__"):
        raise TypeError(f"linspace(): argument 'steps' must be int, not {type(steps).__name__}")
    steps = steps.__index__()
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return steps


def _linspace_rule(types, start, end, steps, dtype, device, base=None):
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return TensorType((steps,), dtype, device)


def _spaced(start, end, steps, np_dtype):
    """PyTorch's linspace kernel: the first half counts up from start, the second half down
    from end, so both endpoints are exact."""
    if steps == 1:
        return np.array([start], dtype=np_dtype)
    idx = np.arange(steps)
    step = (np_dtype.type(end) - np_dtype.type(start)) / np_dtype.type(steps - 1)
    halfway = steps // 2
    with np.errstate(all="ignore"):
        lo = np_dtype.type(start) + step * idx.astype(np_dtype)
        hi = np_dtype.type(end) - step * (steps - idx - 1).astype(np_dtype)
    return np.where(idx < halfway, lo, hi)


def _linspace_impl(*, start, end, steps, dtype, device):
    if steps == 0:
        return np.zeros((0,), dtype.np_dtype)
    if dtype.category == CATEGORY_FLOAT:
        return _spaced(start, end, steps, dtype.np_dtype)
    # integer dtypes: start and end converted first, the step computed in double
    s = int(start) if dtype.category == CATEGORY_INT else start
    e = int(end) if dtype.category == CATEGORY_INT else end
    vals = _spaced(float(s), float(e), steps, np.dtype(np.float64))
    return np.trunc(vals)


def _linspace_samples():
    yield Sample((0, 10, 5), grad=False)
    yield Sample((-1.0, 1.0, 7), grad=False)
    yield Sample((0, 1, 1), grad=False, note="one step")
    yield Sample((0, 1, 0), grad=False, note="no steps")
    yield Sample((2, -3, 6), {"dtype": dtypes.float64}, grad=False)
    yield Sample((0, 10, 5), {"dtype": dtypes.int64}, grad=False)
    yield Sample((0, 1, 5), {"dtype": dtypes.float16}, grad=False)
    yield ErrorSample((0, 1, -1), {}, RuntimeError, "number of steps must be non-negative")


LINSPACE = register(OpDef("linspace", OpKind.CREATION, _linspace_rule, _linspace_impl, None,
                          _linspace_samples, differentiable=False))


def linspace(start, end, steps, dtype=None, device=None):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 unless
    ``dtype`` says otherwise)."""
    start, end = _number(start, "start"), _number(end, "end")
    return apply(LINSPACE, start=start, end=end, steps=_check_steps(steps),
                 dtype=_dtype(dtype), device=_device(device))


def _logspace_impl(*, start, end, steps, base, dtype, device):
    if steps == 0:
        return np.zeros((0,), dtype.np_dtype)
    exps = _spaced(float(start), float(end), steps, np.dtype(np.float64))
    with np.errstate(all="ignore"):
        vals = np.power(float(base), exps)
    return np.trunc(vals) if dtype.category != CATEGORY_FLOAT else vals


def _logspace_samples():
    yield Sample((0, 2, 3), grad=False)
    yield Sample((0, 2, 3), {"base": 2}, grad=False)
    yield Sample((-1.0, 1.0, 5), {"dtype": dtypes.float64}, grad=False)
    yield Sample((0, 2, 3), {"dtype": dtypes.int64}, grad=False)
    yield Sample((0, 1, 0), grad=False, note="no steps")
    yield ErrorSample((0, 1, -1), {}, RuntimeError, "number of steps must be non-negative")


LOGSPACE = register(OpDef("logspace", OpKind.CREATION, _linspace_rule, _logspace_impl, None,
                          _logspace_samples, differentiable=False))


def logspace(start, end, steps, base=10.0, dtype=None, device=None):
    """``base ** linspace(start, end, steps)``."""
    start, end = _number(start, "start"), _number(end, "end")
    base = _number(base, "base")
    return apply(LOGSPACE, start=start, end=end, steps=_check_steps(steps), base=base,
                 dtype=_dtype(dtype), device=_device(device))


# --- eye ---------------------------------------------------------------------------------

def _eye_rule(types, n, m, dtype, device):
    return TensorType((n, m), dtype, device)


def _eye_impl(*, n, m, dtype, device):
    return np.eye(n, m, dtype=dtype.np_dtype)


def _eye_samples():
    yield Sample((3,), grad=False)
    yield Sample((2, 4), grad=False)
    yield Sample((0,), grad=False, note="empty")
    yield Sample((3,), {"dtype": dtypes.bool_}, grad=False)
    yield Sample((2, 3), {"dtype": dtypes.int64}, grad=False)
    yield ErrorSample((-1,), {}, RuntimeError, "n must be greater or equal to 0, got -1")
    yield ErrorSample((2, -1), {}, RuntimeError, "m must be greater or equal to 0, got -1")


EYE = register(OpDef("eye", OpKind.CREATION, _eye_rule, _eye_impl, None, _eye_samples,
                     differentiable=False))


def _int_arg(x, fname: str, name: str, pos: int) -> int:
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"{fname}(): argument '{name}' (position {pos}) must be int, not "
                        f"{type(x).__name__}")
    return x.__index__()


def eye(n, m=None, dtype=None, device=None):
    """The ``n`` x ``m`` identity matrix (``m`` defaults to ``n``)."""
    n = _int_arg(n, "eye", "n", 1)
    m = n if m is None else _int_arg(m, "eye", "m", 2)
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    return apply(EYE, n=n, m=m, dtype=_dtype(dtype), device=_device(device))
