"""Running an op's VJP rule: the one place where gradients of broadcast inputs
are summed back to the input's shape and cast to the input's dtype.

The eager autograd engine, double backward and the symbolic backward graph
all call :func:`call_vjp`, so these conventions hold for every op.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir.dispatch import is_scalar, type_of
from ir.dtypes import CATEGORY_FLOAT
from ir.opdef import OpDef, VJPContext

__all__ = ["call_vjp", "differentiable_input"]


def differentiable_input(x) -> bool:
    """Whether a gradient can flow into ``x`` (a floating tensor, not a Python scalar)."""
    return not is_scalar(x) and type_of(x).dtype.category == CATEGORY_FLOAT


def call_vjp(op: OpDef, inputs: Sequence, outputs: Sequence, attrs: dict,
             grads: Sequence) -> tuple:
    """Input cotangents of ``op`` given output cotangents ``grads`` (None where none flows).

    Returns one entry per input: a value of the input's shape and dtype, or
    None for inputs that take no gradient (scalars, integer tensors, and
    inputs the rule leaves out).
    """
    if op.vjp is None:
        raise RuntimeError(f"the derivative for '{op.name}' is not implemented")
    from ir.ops.elementwise import to_dtype
    from ir.ops.reduce import sum_to_size

    ctx = VJPContext(op, tuple(inputs), tuple(outputs), attrs)
    raw = op.vjp(ctx, *grads)
    if len(raw) != len(inputs):
        raise AssertionError(f"VJP of {op.name} returned {len(raw)} gradients for "
                             f"{len(inputs)} inputs")
    result = []
    for x, g in zip(inputs, raw):
        if g is None or not differentiable_input(x):
            result.append(None)
            continue
        xt = type_of(x)
        g = sum_to_size(g, xt.shape)
        if type_of(g).dtype is not xt.dtype:
            g = to_dtype(g, xt.dtype)
        result.append(g)
    return tuple(result)
