"""Running an op's VJP rule: the one place where gradients of broadcast inputs
are summed back to the input's shape and cast to the input's dtype.

The eager autograd engine, double backward and the symbolic backward graph
all call :func:`call_vjp`, so these conventions hold for every op.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir.dispatch import current_interpreter, is_scalar, type_of
from ir.dtypes import CATEGORY_FLOAT
from ir.opdef import OpDef, VJPContext
from ir.ops.elementwise import to_device, to_dtype
from ir.ops.reduce import sum_to_size

__all__ = ["call_vjp", "differentiable_input"]


def differentiable_input(x) -> bool:
    """Whether a gradient can flow into ``x`` (a floating tensor, not a Python scalar)."""
    return not is_scalar(x) and type_of(x).dtype.category == CATEGORY_FLOAT


def call_vjp(op: OpDef, inputs: Sequence, outputs: Sequence, attrs: dict,
             grads: Sequence, input_types: Sequence | None = None,
             needs_input_grad: Sequence[bool] | None = None) -> tuple:
    """Input cotangents of ``op`` given output cotangents ``grads`` (None where none flows).

    Returns one entry per input: a value of the input's shape and dtype, or
    None for inputs that take no gradient (scalars, integer tensors, and
    inputs the rule leaves out). ``inputs`` may be a lazy sequence (autograd
    checks saved versions on access); ``input_types`` (None for scalars)
    then spares reading inputs the rule does not use. ``needs_input_grad``
    (default: every float tensor input) lets rules skip unwanted gradients.
    """
    if op.vjp is None:
        raise RuntimeError(f"the derivative for '{op.name}' is not implemented")
    if input_types is None:
        input_types = tuple([None if is_scalar(x) else type_of(x) for x in inputs])
    if needs_input_grad is None:
        wanted = tuple([t is not None and t.dtype.category == CATEGORY_FLOAT
                        for t in input_types])
    else:
        wanted = tuple([t is not None and bool(n) and t.dtype.category == CATEGORY_FLOAT
                        for t, n in zip(input_types, needs_input_grad)])
    ctx = VJPContext(op, inputs, outputs, attrs, tuple(input_types), wanted)
    raw = op.vjp(ctx, *grads)
    if len(raw) != len(input_types):
        raise AssertionError(f"VJP of {op.name} returned {len(raw)} gradients for "
                             f"{len(input_types)} inputs")
    result = []
    # the interpreter the rule ran under, looked up once for every gradient's type
    type_of_g = current_interpreter().type_of
    for xt, g, want in zip(input_types, raw, wanted):
        if g is None or not want:
            result.append(None)
            continue
        gt = type_of_g(g)
        if gt.shape != xt.shape:
            g = sum_to_size(g, xt.shape)
            gt = type_of_g(g)
        if gt.dtype is not xt.dtype:
            g = to_dtype(g, xt.dtype)
        if gt.device is not xt.device and gt.device != xt.device:
            g = to_device(g, xt.device)   # a 0-d CPU tensor that met CUDA tensors
        result.append(g)
    return tuple(result)
