"""Shared building blocks for op records: type-rule pieces and NumPy casting.

Every family module (elementwise, reduce, movement, ...) builds its records
from these, so promotion, device checks and casting live in one place.

Reference implementations are device-generic: they receive NumPy arrays for CPU
tensors and CuPy arrays for CUDA tensors (issue 8), and call NumPy's functions,
which CuPy implements through ``__array_ufunc__``/``__array_function__``. ir never
imports CuPy, so the rules are duck-typed and live here:

* "is this an array" is :func:`is_array` (a NumPy array, or anything with
  ``__cuda_array_interface__``; defined in ``ir.dispatch``, whose ``conform`` needs it,
  and exported here), never ``isinstance(x, np.ndarray)``;
* new arrays are made from an input with NumPy's dispatching forms
  (``np.zeros_like(x, shape=..., dtype=...)``, ``np.empty_like``, ``np.full_like``,
  ``x.astype(dt, copy=...)``, ``x.copy()``), never ``np.asarray(x)``/``np.array(x)``,
  which CuPy refuses (no implicit device-to-host copies);
* Python constants and index arrays an implementation builds go next to the data
  through NEP 35's ``like=`` (:func:`asarray_like`, :func:`arange_like`): NumPy hands
  the creation to the array type of ``like``, so CuPy makes them on the device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ir import dtypes
from ir.dispatch import PY_NUMBERS, apply, is_array, is_scalar, type_of
from ir.dtypes import CATEGORY_FLOAT, DType, result_type
from ir.fperr import quiet_call
from ir.opdef import OpDef, OpKind, register
from ir.types import CPU, Device, TensorType, broadcast_shapes, scalar_type

__all__ = [
    "apply", "type_of", "is_scalar", "common_device", "promote", "float_result_dtype",
    "np_type_of", "promoted_np_dtype", "cast", "elementwise_rule", "register_elementwise",
    "check_dtype_arg", "promote_operands", "reject_out", "as_int_tuple", "is_float", "OpKind",
    "OpDef", "register", "is_array", "asarray_like", "arange_like", "flat_positions",
    "ufunc_at", "index_grid", "float_direct",
]


def asarray_like(values, like, dtype=None):
    """``values`` (Python numbers or nested lists of them) as an array on the device of
    the array ``like``.

    NEP 35: NumPy passes the creation to ``like``'s type, so CuPy makes the array on the
    current device (where the eager interpreter runs the op); for a NumPy ``like`` this
    is ``np.asarray``. Index arrays are better made on the device from the start
    (:func:`arange_like` and arithmetic) than computed on the host and copied over."""
    if type(like) is np.ndarray or not is_array(like):
        return np.asarray(values, dtype=dtype)
    return np.asarray(values, dtype=dtype, like=like)


def arange_like(stop, like, dtype=None):
    """``np.arange(stop, dtype=dtype)`` made on the device of the array ``like``."""
    if type(like) is np.ndarray or not is_array(like):
        return np.arange(stop, dtype=dtype)
    return np.arange(stop, dtype=dtype, like=like)


def flat_positions(shape: tuple[int, ...], index: tuple, like):
    """The C-order flat position, in an array of ``shape``, of every element that
    ``array[index]`` selects (an int64 array of that result's shape, on ``like``'s device).

    CuPy's ``ufunc.at`` takes one index array where NumPy's takes a tuple of them, so a
    scatter through a tuple index runs as ``np.add.at(out.reshape(-1), positions, v)``.
    Each dim's coordinates are a broadcast view of an ``arange`` (no memory of the full
    shape), indexed like the data."""
    positions = 0
    stride = 1
    for d in reversed(range(len(shape))):
        coords = arange_like(shape[d], like, np.int64).reshape((-1,) + (1,) * (len(shape) - d - 1))
        positions = positions + np.broadcast_to(coords, shape)[index] * stride
        stride *= shape[d]
    return positions


def ufunc_at(ufunc: np.ufunc, out, index: tuple, values) -> None:
    """``ufunc.at(out, index, values)`` (unbuffered, duplicates accumulate) for ``out``
    on any device.

    NumPy's takes the tuple ``index`` as it is. CuPy's takes one index array, so a device
    array is updated through the :func:`flat_positions` of a C-contiguous ``out``; CuPy
    has ``at`` only for the ufuncs and dtypes CUDA's atomics cover (add on int32, uint32,
    uint64 and floats; maximum/minimum without float16 and int64; no multiply) and raises
    for the others, which sends the op through the host (compgrad.device_arrays)."""
    if type(out) is np.ndarray:
        ufunc.at(out, index, values)
        return
    flat = out if out.flags.c_contiguous else out.copy(order="C")
    positions = flat_positions(out.shape, index, out)
    if is_array(values):
        values = np.broadcast_to(values, positions.shape)
    ufunc.at(flat.reshape(-1), positions, values)
    if flat is not out:
        out[...] = flat


def index_grid(shape: tuple[int, ...], like) -> list:
    """``np.indices(shape, sparse=True)`` (one broadcastable int64 ``arange`` per dim) on
    the device of the array ``like``."""
    n = len(shape)
    return [arange_like(size, like, np.int64).reshape((1,) * d + (size,) + (1,) * (n - d - 1))
            for d, size in enumerate(shape)]


def common_device(types) -> Device:
    """The device of the tensors among ``types``; PyTorch's error when they differ.

    Weak scalars never decide the device, and 0-d CPU tensors may meet tensors
    of another device, as in PyTorch.
    """
    device = None
    cpu_scalar_seen = False
    for t in types:
        if t.weak:
            continue
        if t.ndim == 0 and t.device.type == "cpu":
            cpu_scalar_seen = True
            continue
        if device is None:
            device = t.device
        elif t.device != device:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, {device} and {t.device}!")
    if device is None:
        device = CPU if cpu_scalar_seen or not types else next(
            (t.device for t in types if not t.weak), CPU)
    return device


def promote(types) -> DType:
    """``torch.result_type`` over operand types."""
    return result_type(*types)


def float_result_dtype(dtype: DType) -> DType:
    """Integer and bool inputs of float-valued ops give the default float dtype."""
    return dtype if dtype.category == CATEGORY_FLOAT else dtypes.default_float_dtype()


def is_float(t: TensorType) -> bool:
    return t.dtype.category == CATEGORY_FLOAT


def np_type_of(x) -> TensorType:
    """The type of a reference-impl argument (an array or a Python scalar; the device is
    not the reference's business: CPU)."""
    if is_array(x):
        return TensorType(x.shape, dtypes.from_numpy_dtype(x.dtype), CPU)
    return scalar_type(x)


_PROMOTED: dict[tuple, np.dtype] = {}


def _promotion_key(a):
    # what decides promotion: the dtype and whether it is 0-d, or the Python scalar type
    if type(a) is np.ndarray or is_array(a):
        return (a.dtype, a.ndim == 0)
    return type(a)


def _promoted_uncached(args) -> np.dtype:
    if not any(is_array(a) for a in args):
        # Python numbers only: Python's arithmetic (see elementwise_rule)
        return _python_scalar_result(tuple(scalar_type(a) for a in args), "promote",
                                     "").dtype.np_dtype
    types = tuple(
        TensorType((1,) * min(a.ndim, 1), dtypes.from_numpy_dtype(a.dtype))
        if is_array(a) else scalar_type(a) for a in args)
    return result_type(*types).np_dtype


def _common_array_dtype(args, scalars_ok: bool) -> np.dtype | None:
    """The dtype ``args`` are computed in when no cast is needed, else None.

    That is when all ndarrays share one dtype and, if ``scalars_ok``, the rest
    are Python numbers next to a floating dtype: NumPy (NEP 50) then treats a
    number as weak and casts it to that dtype, as PyTorch's promotion does.
    """
    dt = None
    number = False
    for a in args:
        ta = type(a)
        if ta is not np.ndarray:
            if scalars_ok and ta in PY_NUMBERS:
                number = True
                continue
            if not is_array(a):   # a device array computes as a NumPy array does
                return None
        if dt is None:
            dt = a.dtype
        elif a.dtype != dt:
            return None
    if number and (dt is None or dt.kind != "f"):
        return None
    return dt


def _common_type_dtype(types: tuple, scalars_ok: bool) -> np.dtype | None:
    """:func:`_common_array_dtype` for operands of ``types`` (tensors and weak Python
    numbers): the NumPy dtype they are computed in without a cast, else None."""
    dt = None
    number = False
    for t in types:
        if t.weak:
            if not scalars_ok:
                return None
            number = True
            continue
        if dt is None:
            dt = t.dtype
        elif t.dtype is not dt:
            return None
    if dt is None:
        return None
    np_dt = dt.np_dtype
    if number and np_dt.kind != "f":
        return None
    return np_dt


def float_direct(np_fn: np.ufunc) -> Callable[[tuple], Callable | None]:
    """An ``OpDef.direct`` giving ``np_fn`` for operands that share one floating dtype
    (Python numbers beside them, which the ufunc casts itself): the case where an impl
    that promotes and casts first would call ``np_fn`` on its arguments unchanged."""

    def direct(types: tuple) -> Callable | None:
        dt = _common_type_dtype(types, True)
        return np_fn if dt is not None and dt.kind == "f" else None

    return direct


def ufunc_into(np_fn: np.ufunc, out: np.ndarray, *operands) -> None:
    """``np_fn(*operands)`` written into ``out`` (an in-place op's own storage).

    NumPy's floating-point errors are ignored, as for the out-of-place op."""
    quiet_call(np_fn, *operands, out=out)


def promoted_np_dtype(*args) -> np.dtype:
    """The NumPy dtype PyTorch computes ``args`` in (ndarrays and Python scalars)."""
    key = tuple(map(_promotion_key, args))
    try:
        return _PROMOTED[key]
    except KeyError:
        dt = _PROMOTED[key] = _promoted_uncached(args)
        return dt


def cast(x, np_dtype: np.dtype):
    """Cast an array (no copy when it already has the dtype) or a scalar to ``np_dtype``."""
    if type(x) is np.ndarray or is_array(x):
        return x.astype(np_dtype, copy=False)
    return np_dtype.type(x)


def promote_operands(*xs) -> DType:
    """``torch.result_type`` of values (tensors, IR values, scalars), under the active
    interpreter."""
    return result_type(*(type_of(x) for x in xs))


def reject_out(out) -> None:
    """compgrad's functions are functional: ``out=`` is refused with a clear TypeError."""
    if out is not None:
        raise TypeError("compgrad ops do not support out=; assign the result instead "
                        "(or use out.copy_(result))")


def check_dtype_arg(dtype) -> DType | None:
    return None if dtype is None else dtypes.as_dtype(dtype)


def as_int_tuple(values, what: str = "size") -> tuple[int, ...]:
    """Accept an int or a sequence of ints (``Size``, list, tuple); TypeError otherwise."""
    if isinstance(values, int) and not isinstance(values, bool):
        return (values,)
    if hasattr(values, "__index__") and not isinstance(values, bool):
        return (values.__index__(),)
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints, but got {type(values).__name__}") \
            from None
    out = []
    for v in items:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{what} must be a tuple of ints, but found element of type "
                            f"{type(v).__name__}")
        out.append(v.__index__())
    return tuple(out)


def elementwise_rule(mode: str = "promote", float_only: bool = False,
                     allow_bool: bool = True, name: str = "") -> Callable:
    """A type rule for a broadcasting elementwise op.

    ``mode``: ``promote`` (result_type), ``float`` (result_type, ints become the
    default float), ``bool`` (comparisons and predicates: result is bool).
    ``float_only`` rejects integer inputs; ``allow_bool`` False rejects bool.
    """

    def rule(types, **_attrs):
        device = common_device(types)
        shape = broadcast_shapes(*(t.shape for t in types))
        if types and all(t.weak for t in types):
            # Python numbers only (scalars lifted into a graph, or a VJP's ``b - 1``):
            # Python's arithmetic, a Python float (float64) / int / bool, still weak
            return _python_scalar_result(types, mode, name)
        dtype = promote(types)
        if float_only and dtype.category != CATEGORY_FLOAT:
            raise RuntimeError(f'"{name}" not implemented for \'{dtype.torch_name}\'')
        if not allow_bool and dtype is dtypes.bool_:
            raise RuntimeError(f'"{name}" not implemented for \'Bool\'')
        if mode == "float":
            dtype = float_result_dtype(dtype)
        elif mode == "bool":
            dtype = dtypes.bool_
        return TensorType(shape, dtype, device)

    rule.__name__ = f"{name or 'elementwise'}_type_rule"
    return rule


def _python_scalar_result(types, mode: str, name: str) -> TensorType:
    cats = {t.dtype.category for t in types}
    if mode == "bool":
        dtype = dtypes.bool_
    elif CATEGORY_FLOAT in cats or mode == "float":
        dtype = dtypes.float64
    elif all(t.dtype is dtypes.bool_ for t in types):
        dtype = dtypes.bool_
    else:
        dtype = dtypes.int64
    return TensorType((), dtype, types[0].device, weak=True)


def register_elementwise(name: str, np_fn: Callable, vjp: Callable | None, samples: Callable,
                         mode: str = "promote", float_only: bool = False,
                         allow_bool: bool = True, public: str | None = None,
                         compute: str = "promote", doc: str = "") -> OpDef:
    """Register an n-ary elementwise op computed as ``np_fn(*args cast to the compute dtype)``.

    ``compute`` is the dtype the reference computes in: ``promote`` (the
    promoted input dtype) or ``result`` (the output dtype, e.g. float for
    ``exp`` of ints).
    """

    # a ufunc casts weak Python numbers itself; another function might not accept them
    scalars_ok = isinstance(np_fn, np.ufunc)

    def impl(*args, **attrs):
        # NumPy's floating-point warnings (log(0), inf - inf) are silenced by the filter in
        # ir/ops/__init__.py: a per-call np.errstate would cost more than the add itself
        dt = _common_array_dtype(args, scalars_ok)
        if dt is not None and (compute == "promote" or dt.kind == "f"):
            return np_fn(*args, **attrs)  # already in the compute dtype: nothing to cast
        dt = promoted_np_dtype(*args)
        if compute == "result" and dt.kind not in "f":
            dt = dtypes.default_float_dtype().np_dtype
        return np_fn(*(cast(a, dt) for a in args), **attrs)

    def direct(types: tuple) -> Callable | None:
        # impl's cast-free case, decided from the operands' types once per types
        dt = _common_type_dtype(types, scalars_ok)
        if dt is not None and (compute == "promote" or dt.kind == "f"):
            return np_fn
        return None

    impl.__name__ = f"{name}_impl"
    return register(OpDef(
        name=name, kind=OpKind.ELEMENTWISE,
        type_rule=elementwise_rule(mode, float_only, allow_bool, name),
        impl=impl, vjp=vjp, samples=samples, public=public,
        differentiable=vjp is not None and mode != "bool", doc=doc,
        fresh_result=scalars_ok, direct=direct))
