"""Factories with PyTorch's signatures: ``zeros``, ``ones``, ``full``, ``arange``, ...

Each wrapper checks the device (a CUDA device on a machine without one
raises), accepts sizes as varargs or one sequence (``zeros(2, 3)`` and
``zeros((2, 3))``), calls the op in ``ir.ops.creation`` and applies
``requires_grad``. The values come from the ops, so they trace like any op.
"""

from __future__ import annotations

import numbers

from compgrad.device import check_device
from compgrad.tensor import Tensor
from ir.ops import creation as _c
from ir.ops._util import check_dtype_arg, reject_out

__all__ = ["zeros", "ones", "full", "empty", "arange", "range", "linspace", "logspace", "eye",
           "zeros_like", "ones_like", "full_like", "empty_like", "scalar_tensor"]

def parse_size(fname: str, args: tuple, size=None) -> tuple[int, ...]:
    """``f(2, 3)``, ``f((2, 3))``, ``f([2, 3])``, ``f(Size)`` and ``f(size=(2, 3))``."""
    if size is not None:
        if args:
            raise TypeError(f"{fname}() got multiple values for argument 'size'")
        args = (size,)
    if not args:
        raise TypeError(f'{fname}() missing 1 required positional arguments: "size"')
    if len(args) == 1 and not isinstance(args[0], (numbers.Integral, Tensor)):
        seq = args[0]
        if isinstance(seq, (float, str)) or not hasattr(seq, "__iter__"):
            raise TypeError(f"{fname}(): argument 'size' (position 1) must be tuple of ints, "
                            f"not {type(seq).__name__}")
        args = tuple(seq)
    out = []
    for i, s in enumerate(args):
        if isinstance(s, bool) or not hasattr(s, "__index__") or (
                isinstance(s, Tensor) and s.numel() != 1):
            raise TypeError(f"{fname}(): argument 'size' (position {i + 1}) must be tuple of "
                            f"ints, but found element of type {type(s).__name__} at pos {i}")
        out.append(s.__index__())
    return tuple(out)


def check_layout(layout) -> None:
    if layout is not None and str(layout).rsplit(".", 1)[-1] != "strided":
        raise RuntimeError(f"compgrad only supports the strided layout, got {layout}")


def _device(device):
    return None if device is None else check_device(device)


def _finish(out: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        out.requires_grad_(True)
    return out


def _check_like_input(fname: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fname}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False, **kwargs) -> Tensor:
    """A tensor filled with 0 (``zeros(2, 3)`` or ``zeros((2, 3))``)."""
    reject_out(out)
    check_layout(layout)
    shape = parse_size("zeros", size, kwargs.pop("size", None))
    _no_extra("zeros", kwargs)
    return _finish(_c.zeros(shape, dtype, _device(device)), requires_grad)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False, **kwargs) -> Tensor:
    """A tensor filled with 1."""
    reject_out(out)
    check_layout(layout)
    shape = parse_size("ones", size, kwargs.pop("size", None))
    _no_extra("ones", kwargs)
    return _finish(_c.ones(shape, dtype, _device(device)), requires_grad)


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False, memory_format=None, **kwargs) -> Tensor:
    """An uninitialised tensor (compgrad fills it with zeros)."""
    reject_out(out)
    check_layout(layout)
    shape = parse_size("empty", size, kwargs.pop("size", None))
    _no_extra("empty", kwargs)
    return _finish(_c.empty(shape, dtype, _device(device)), requires_grad)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None,
         requires_grad=False, pin_memory=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; the dtype is inferred from the
    value (bool, int64 or the default float dtype) unless given."""
    reject_out(out)
    check_layout(layout)
    shape = parse_size("full", (size,))
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()  # PyTorch takes the fill value as a Scalar
    if not isinstance(fill_value, (numbers.Number,)):
        raise TypeError(f"full(): argument 'fill_value' must be Number, not "
                        f"{type(fill_value).__name__}")
    return _finish(_c.full(shape, fill_value, dtype, _device(device)), requires_grad)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, requires_grad=False,
                  pin_memory=False) -> Tensor:
    """A 0-d tensor holding ``s`` (float32 unless ``dtype`` is given)."""
    check_layout(layout)
    if isinstance(s, Tensor):
        s = s.item()
    return _finish(_c.scalar_tensor(s, dtype, _device(device)), requires_grad)


def arange(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad=False, pin_memory=False) -> Tensor:
    """Values in ``[start, end)`` spaced by ``step``; ``arange(end)`` starts at 0."""
    reject_out(out)
    check_layout(layout)
    return _finish(_c.arange(start, end, step, dtype, _device(device)), requires_grad)


def range(start=0, end=None, step=1, *, out=None, dtype=None, layout=None,  # noqa: A001
          device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """Deprecated in PyTorch: values in ``[start, end]`` (end included), float32 by default."""
    import warnings
    warnings.warn("torch.range is deprecated and will be removed in a future release because "
                  "its behavior is inconsistent with Python's range builtin. Instead, use "
                  "torch.arange, which produces values in [start, end).", UserWarning,
                  stacklevel=2)
    reject_out(out)
    check_layout(layout)
    if end is None:
        start, end = 0, start
    d = check_dtype_arg(dtype)
    if d is None:
        from ir import dtypes
        d = dtypes.default_float_dtype()
    n = int((float(end) - float(start)) // float(step)) + 1 if step else 0
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if n <= 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    stop = start + (n - 0.5) * step  # between the last value and the next one
    return _finish(_c.arange(start, stop, step, d, _device(device)), requires_grad)


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, pin_memory=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` (both included)."""
    reject_out(out)
    check_layout(layout)
    return _finish(_c.linspace(start, end, steps, dtype, _device(device)), requires_grad)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, pin_memory=False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    reject_out(out)
    check_layout(layout)
    return _finish(_c.logspace(start, end, steps, base, dtype, _device(device)), requires_grad)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False,
        pin_memory=False) -> Tensor:
    """The identity matrix of ``n`` rows and ``m`` (default ``n``) columns."""
    reject_out(out)
    check_layout(layout)
    return _finish(_c.eye(n, m, dtype, _device(device)), requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad=False,
               memory_format=None) -> Tensor:
    """Zeros with the shape, dtype and device of ``input`` (unless given)."""
    _check_like_input("zeros_like", input)
    check_layout(layout)
    return _finish(_c.zeros_like(input, dtype, _device(device)), requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad=False,
              memory_format=None) -> Tensor:
    """Ones with the shape, dtype and device of ``input`` (unless given)."""
    _check_like_input("ones_like", input)
    check_layout(layout)
    return _finish(_c.ones_like(input, dtype, _device(device)), requires_grad)


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad=False,
               memory_format=None) -> Tensor:
    """An uninitialised (zero-filled) tensor like ``input``."""
    _check_like_input("empty_like", input)
    check_layout(layout)
    return _finish(_c.empty_like(input, dtype, _device(device)), requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None,
              requires_grad=False, memory_format=None) -> Tensor:
    """``fill_value`` in the shape, dtype and device of ``input`` (unless given)."""
    _check_like_input("full_like", input)
    check_layout(layout)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _finish(_c.full_like(input, fill_value, dtype, _device(device)), requires_grad)


def _no_extra(fname: str, kwargs: dict) -> None:
    if kwargs:
        raise TypeError(f"{fname}() got an unexpected keyword argument '{next(iter(kwargs))}'")
