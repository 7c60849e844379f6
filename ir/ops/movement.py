"""Movement and view ops. ``reshape`` and ``expand`` are the pattern: view
ops set ``is_view=True`` and return NumPy views, so eager tensors share
storage with their base exactly where PyTorch's do."""

from __future__ import annotations

import numpy as np

from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, as_int_tuple, register, type_of
from ir.samples import arr, noncontig
from ir.types import TensorType, infer_size, shape_str

__all__ = ["reshape", "broadcast_to"]
METHODS = ("broadcast_to",)
INTERNAL = ("view", "expand")


def _reshape_rule(types, shape):
    (t,) = types
    return TensorType(shape, t.dtype, t.device)


def _reshape_impl(a, shape):
    return np.reshape(a, shape)  # a view where NumPy (and PyTorch) can make one


def _reshape_vjp(ctx, g):
    return (reshape(g, type_of(ctx.inputs[0]).shape),)


def _reshape_samples():
    yield Sample((arr(3, 4), (4, 3)))
    yield Sample((arr(3, 4), (-1,)))
    yield Sample((noncontig(3, 4), (2, -1)))
    yield Sample((arr(), (1, 1)))
    yield Sample((arr(0, 4), (4, 0)))
    yield ErrorSample((arr(3, 4), (5, -1)), {}, RuntimeError, "is invalid for input")
    yield ErrorSample((arr(3, 4), (-1, -1)), {}, RuntimeError, "only one dimension")


RESHAPE = register(OpDef("reshape", OpKind.MOVEMENT, _reshape_rule, _reshape_impl,
                         _reshape_vjp, _reshape_samples, is_view=True))


def reshape(input, shape):
    """The same data with a new shape: a view when the strides allow, else a copy."""
    t = type_of(input)
    target = infer_size(as_int_tuple(shape, "shape"), t.numel)
    return apply(RESHAPE, input, shape=target)


def _view_impl(a, shape):
    try:
        return np.reshape(a, shape, copy=False)
    except ValueError:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        ) from None


def _view_samples():
    yield Sample((arr(3, 4), (2, 6)), torch=False)
    yield Sample((arr(2, 3, 4), (6, -1)), torch=False)


VIEW = register(OpDef("view", OpKind.MOVEMENT, _reshape_rule, _view_impl, _reshape_vjp,
                      _view_samples, public="Tensor.view", is_view=True))


def view(input, shape):
    """A view with a new shape; RuntimeError when the strides do not allow one."""
    t = type_of(input)
    return apply(VIEW, input, shape=infer_size(as_int_tuple(shape, "shape"), t.numel))


def _expand_rule(types, shape):
    (t,) = types
    return TensorType(shape, t.dtype, t.device)


def _expand_impl(a, shape):
    return np.broadcast_to(a, shape)  # read-only view with zero strides, like PyTorch's


def _expand_vjp(ctx, g):
    return (g,)  # call_vjp sums the gradient back to the input's shape


def _expand_samples():
    yield Sample((arr(3, 1), (3, 4)))
    yield Sample((arr(4), (2, 3, 4)))
    yield Sample((arr(3, 1), (-1, 5)))
    yield Sample((arr(), (2,)))
    yield ErrorSample((arr(3, 2), (3, 4)), {}, RuntimeError, "must match the existing")
    yield ErrorSample((arr(3, 2), (2,)), {}, RuntimeError, "number of sizes provided")


EXPAND = register(OpDef("expand", OpKind.MOVEMENT, _expand_rule, _expand_impl, _expand_vjp,
                        _expand_samples, public="Tensor.expand", is_view=True))


def expand(input, size):
    """A broadcast view of ``input`` to ``size`` (``-1`` keeps a dim)."""
    t = type_of(input)
    size = as_int_tuple(size, "size")
    if len(size) < t.ndim:
        raise RuntimeError(
            f"expand({t.dtype.torch_name}Type{{{shape_str(t.shape)}}}, size={shape_str(size)}): "
            "the number of sizes provided (" + str(len(size)) + ") must be greater or equal to "
            "the number of dimensions in the tensor (" + str(t.ndim) + ")")
    lead = len(size) - t.ndim
    out = []
    for i, s in enumerate(size):
        if i < lead:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    "non-existing dimension " + str(i))
            out.append(s)
            continue
        cur = t.shape[i - lead]
        if s == -1:
            out.append(cur)
        elif cur == s or cur == 1:
            out.append(s)
        else:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                f"non-singleton dimension {i}.  Target sizes: {shape_str(size)}.  Tensor sizes: "
                f"{shape_str(t.shape)}")
    out = tuple(out)
    return apply(EXPAND, input, shape=out)


def broadcast_to(input, size):
    """``input`` broadcast to ``size`` (an alias of ``expand``)."""
    return expand(input, size)
