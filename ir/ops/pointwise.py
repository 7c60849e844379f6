"""Pointwise ops beyond arithmetic: atan2, hypot, minimum/maximum, fmin/fmax, clamp, lerp,
addcmul and addcdiv (split from ``elementwise.py``, same patterns)."""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    cast,
    common_device,
    elementwise_rule,
    is_array,
    is_scalar,
    promote,
    promoted_np_dtype,
    register,
    register_elementwise,
    reject_out,
)
from ir.ops.compare import eq, ge, gt, le, logical_and, logical_or, lt, ne, where
from ir.ops.elementwise import add, div, mul, neg, sub
from ir.samples import arr, bools, ints, noncontig, positive
from ir.types import TensorType, broadcast_shapes

__all__ = ["atan2", "arctan2", "hypot", "minimum", "maximum", "fmin", "fmax", "clamp", "clip",
           "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv"]
METHODS = tuple(__all__)
INPLACE = ("atan2", "arctan2", "hypot", "clamp", "clip", "clamp_min", "clamp_max", "lerp",
           "addcmul", "addcdiv")


def _require_tensor(fn: str, name: str, position: int, x) -> None:
    if is_scalar(x):
        raise TypeError(f"{fn}(): argument '{name}' (position {position}) must be Tensor, not "
                        f"{type(x).__name__}")


def _apply_to_tensors(op: OpDef, fn: str, input, other, out):
    """``op(input, other)`` for the public function ``fn`` that, as in PyTorch, takes no
    ``out=`` here and refuses a Python number as ``other``."""
    reject_out(out)
    _require_tensor(fn, "other", 2, other)
    return apply(op, input, other)


def _binary_float_samples(low=-2.0, high=2.0):
    def samples():
        yield Sample((arr(3, 4, low=low, high=high), arr(3, 4, low=low, high=high, seed=1)))
        yield Sample((arr(2, 1, 4, low=low, high=high), arr(3, 1, low=low, high=high, seed=1)),
                     note="broadcast both ways")
        yield Sample((arr(low=low, high=high), arr(5, low=low, high=high, seed=1)), note="0-d")
        yield Sample((noncontig(3, 4, low=low, high=high), arr(4, low=low, high=high, seed=2)),
                     note="non-contiguous")
        yield Sample((arr(0, 3), arr(3, seed=1)), note="empty")
        yield Sample((arr(4, dtype=np.float64, low=low, high=high),
                      arr(4, low=low, high=high, seed=1)), note="float64 with float32")

    samples.__name__ = "_binary_float_samples"
    return samples


# --- atan2 / hypot -----------------------------------------------------------------------

def _atan2_vjp(ctx, g):
    a, b = ctx.inputs
    denom = add(mul(a, a), mul(b, b))
    return div(mul(g, b), denom), div(mul(g, neg(a)), denom)


def _atan2_samples():
    yield from _binary_float_samples()()
    yield Sample((ints(5), ints(5, seed=1)), grad=False, note="ints give the default float")
    yield Sample((bools(4), bools(4, seed=1)), grad=False)
    yield ErrorSample((arr(3), 2.0), {}, TypeError, "must be Tensor")


ATAN2 = register_elementwise("atan2", np.arctan2, _atan2_vjp, _atan2_samples, mode="float",
                             compute="result")


def atan2(input, other, *, out=None):
    """The angle of the point ``(other, input)``: ``atan(input / other)`` by quadrant."""
    return _apply_to_tensors(ATAN2, "atan2", input, other, out)


arctan2 = atan2


def _hypot_vjp(ctx, g):
    need = ctx.needs_input_grad
    out = ctx.output
    return (mul(g, div(ctx.inputs[0], out)) if need[0] else None,
            mul(g, div(ctx.inputs[1], out)) if need[1] else None)


def _hypot_samples():
    yield from _binary_float_samples()()
    yield ErrorSample((ints(3), ints(3)), {}, NotImplementedError,
                      "\"hypot_cpu\" not implemented for 'Long'")


def _hypot_rule(types):
    out = elementwise_rule("promote", name="hypot")(types)
    if out.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"hypot_cpu\" not implemented for '{out.dtype.torch_name}'")
    return out


def _hypot_impl(a, b):
    dt = promoted_np_dtype(a, b)
    return np.hypot(cast(a, dt), cast(b, dt))


HYPOT = register(OpDef("hypot", OpKind.ELEMENTWISE, _hypot_rule, _hypot_impl, _hypot_vjp,
                       _hypot_samples))


def hypot(input, other, *, out=None):
    """``sqrt(input**2 + other**2)`` elementwise."""
    return _apply_to_tensors(HYPOT, "hypot", input, other, out)


# --- minimum / maximum / fmin / fmax -----------------------------------------------------

def _minmax_vjp(pick_a):
    """maximum (pick_a=gt) / minimum (pick_a=lt): ties split the gradient in half."""

    def vjp(ctx, g):
        a, b = ctx.inputs
        half = where(eq(a, b), div(g, 2), g)
        ga = where(pick_a(b, a), 0, half)
        gb = where(pick_a(a, b), 0, half)
        return ga, gb

    vjp.__name__ = "_minmax_vjp"
    return vjp


def _fminmax_vjp(a_wins):
    """fmax (a_wins=ge) / fmin (a_wins=le): a takes the gradient where it is chosen."""

    def vjp(ctx, g):
        a, b = ctx.inputs
        take_a = logical_or(a_wins(a, b), ne(b, b))  # b is nan: a is chosen
        return where(take_a, g, 0), where(take_a, 0, g)

    vjp.__name__ = "_fminmax_vjp"
    return vjp


def _minmax_samples():
    yield from _binary_float_samples()()
    yield Sample((np.array([1.0, 2.0, 3.0, np.nan, 5.0], np.float32),
                  np.array([1.0, 3.0, 2.0, 1.0, np.nan], np.float32)), grad=False,
                 note="ties and nan")
    yield Sample((ints(6), ints(6, seed=1)), grad=False)
    yield Sample((ints(6), arr(6, seed=1)), grad=False, note="promotion")
    yield Sample((bools(5), bools(5, seed=1)), grad=False)


MAXIMUM = register_elementwise("maximum", np.maximum, _minmax_vjp(gt), _minmax_samples)
MINIMUM = register_elementwise("minimum", np.minimum, _minmax_vjp(lt), _minmax_samples)
FMAX = register_elementwise("fmax", np.fmax, _fminmax_vjp(ge), _minmax_samples)
FMIN = register_elementwise("fmin", np.fmin, _fminmax_vjp(le), _minmax_samples)


def maximum(input, other, *, out=None):
    """Elementwise maximum (nan propagates)."""
    return _apply_to_tensors(MAXIMUM, "maximum", input, other, out)


def minimum(input, other, *, out=None):
    """Elementwise minimum (nan propagates)."""
    return _apply_to_tensors(MINIMUM, "minimum", input, other, out)


def fmax(input, other, *, out=None):
    """Elementwise maximum that ignores nan where the other value is a number."""
    return _apply_to_tensors(FMAX, "fmax", input, other, out)


def fmin(input, other, *, out=None):
    """Elementwise minimum that ignores nan where the other value is a number."""
    return _apply_to_tensors(FMIN, "fmin", input, other, out)


# --- clamp -------------------------------------------------------------------------------
# inputs: (input, [min], [max]); attributes say which bounds are present

def _clamp_rule(types, has_min, has_max):
    device = common_device(types)
    shape = broadcast_shapes(*(t.shape for t in types))
    dtype = promote(types)
    if dtype is dtypes.bool_:
        kernel = "clamp_scalar_cpu" if all(t.weak for t in types[1:]) else "clamp_cpu"
        raise NotImplementedError(f"\"{kernel}\" not implemented for 'Bool'")
    return TensorType(shape, dtype, device)


def _clamp_impl(x, *bounds, has_min, has_max):
    dt = promoted_np_dtype(x, *bounds)
    bounds = [cast(b, dt) for b in bounds]
    out = cast(x, dt)
    with np.errstate(invalid="ignore"):
        if has_min:
            out = np.maximum(out, bounds.pop(0))
        if has_max:
            out = np.minimum(out, bounds.pop(0))
    return out


def _clamp_vjp(ctx, g):
    x, *bounds = ctx.inputs
    lo = bounds.pop(0) if ctx.attrs["has_min"] else None
    hi = bounds.pop(0) if ctx.attrs["has_max"] else None
    if lo is not None and hi is not None:
        gx = where(logical_and(ge(x, lo), le(x, hi)), g, 0)
        glo = None if is_scalar(lo) else where(logical_and(lt(x, lo), lt(lo, hi)), g, 0)
        ghi = None if is_scalar(hi) else where(logical_or(gt(x, hi), lt(hi, lo)), g, 0)
        return gx, glo, ghi
    if lo is not None:
        return where(ge(x, lo), g, 0), (None if is_scalar(lo) else where(lt(x, lo), g, 0))
    return where(le(x, hi), g, 0), (None if is_scalar(hi) else where(gt(x, hi), g, 0))


def _clamp_samples():
    yield Sample((arr(3, 4),), {"min": -0.5, "max": 0.5})
    yield Sample((arr(3, 4),), {"min": -0.5})
    yield Sample((arr(3, 4),), {"max": 0.5})
    yield Sample((noncontig(3, 4),), {"min": -1.0, "max": 1.0})
    yield Sample((arr(),), {"min": 0.1})
    yield Sample((arr(0, 3),), {"min": 0.1, "max": 0.2})
    yield Sample((arr(5),), {"min": 1.0, "max": -1.0}, note="min > max gives max")
    yield Sample((arr(3, 4),), {"min": arr(4, seed=1) - 0.5, "max": arr(3, 1, seed=2) + 2.5},
                 note="tensor bounds, broadcast")
    yield Sample((arr(3, 4),), {"min": arr(3, 4, seed=1)})
    yield Sample((arr(2, 4),), {"max": arr(3, 1, 1, seed=1)}, note="bound broadcasts input")
    yield Sample((arr(6),), {"min": arr(6, seed=1), "max": arr(6, seed=2)},
                 note="some min > max")
    yield Sample((np.array([1.0, np.nan, -3.0], np.float32),), {"min": -1.0, "max": 2.0},
                 grad=False, note="nan propagates")
    yield Sample((ints(6),), {"min": -1, "max": 2}, grad=False)
    yield Sample((ints(6),), {"min": 0.5}, grad=False, note="float bound promotes ints")
    yield Sample((ints(6, dtype=np.int32),), {"max": ints(6, seed=1)}, grad=False)
    yield Sample((bools(4),), {"min": 0, "max": True}, grad=False, note="bool -> int64")
    yield ErrorSample((arr(3),), {}, RuntimeError,
                      "torch.clamp: At least one of 'min' or 'max' must not be None")
    yield ErrorSample((bools(3),), {"min": False, "max": True}, NotImplementedError,
                      "not implemented for 'Bool'")


CLAMP = register(OpDef("clamp", OpKind.ELEMENTWISE, _clamp_rule, _clamp_impl, _clamp_vjp,
                       _clamp_samples))


def clamp(input, min=None, max=None, *, out=None):  # noqa: A002 - PyTorch's names
    """Clamp every element into ``[min, max]`` (bounds are scalars, tensors, or None)."""
    reject_out(out)
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    bounds = tuple(b for b in (min, max) if b is not None)
    return apply(CLAMP, input, *bounds, has_min=min is not None, has_max=max is not None)


clip = clamp


def clamp_min(input, min, *, out=None):  # noqa: A002 - PyTorch's name
    """``clamp(input, min=min)``."""
    return clamp(input, min=min, out=out)


def clamp_max(input, max, *, out=None):  # noqa: A002 - PyTorch's name
    """``clamp(input, max=max)``."""
    return clamp(input, max=max, out=out)


# --- lerp --------------------------------------------------------------------------------

_LOWER_NAMES = {dtypes.float16: "half", dtypes.float32: "float", dtypes.float64: "double",
                dtypes.int64: "long", dtypes.int32: "int", dtypes.int16: "short",
                dtypes.int8: "signed char", dtypes.uint8: "unsigned char", dtypes.bool_: "bool"}


def _lerp_rule(types):
    start, end, weight = types
    kernel = "lerp_kernel_scalar" if weight.weak else "lerp_kernel_tensor"
    if end.dtype is not start.dtype:
        raise RuntimeError(f"expected dtype {_LOWER_NAMES[start.dtype]} for `end` but got dtype "
                           f"{_LOWER_NAMES[end.dtype]}")
    if not weight.weak and weight.ndim > 0 and weight.dtype is not start.dtype:
        raise RuntimeError(f"expected dtype {_LOWER_NAMES[start.dtype]} for `weight` but got "
                           f"dtype {_LOWER_NAMES[weight.dtype]}")
    if start.dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{start.dtype.torch_name}'")
    device = common_device(types)
    shape = broadcast_shapes(start.shape, end.shape, weight.shape)
    return TensorType(shape, start.dtype, device)


def _lerp_impl(start, end, weight):
    dt = start.dtype if is_array(start) else np.asarray(start).dtype
    start, end, weight = cast(start, dt), cast(end, dt), cast(weight, dt)
    diff = end - start
    # PyTorch's formula: exact at both ends
    return np.where(np.abs(weight) < 0.5, start + weight * diff, end - diff * (1 - weight))


def _one_minus(w):
    return 1 - w if is_scalar(w) else sub(1, w)


def _lerp_vjp(ctx, g):
    need = ctx.needs_input_grad
    ga = gb = gw = None
    if need[0] or need[1]:
        weight = ctx.inputs[2]
        ga = mul(g, _one_minus(weight)) if need[0] else None
        gb = mul(g, weight) if need[1] else None
    if need[2]:
        gw = mul(g, sub(ctx.inputs[1], ctx.inputs[0]))
    return ga, gb, gw


def _lerp_samples():
    yield Sample((arr(3, 4), arr(3, 4, seed=1), 0.3))
    yield Sample((arr(3, 4), arr(3, 4, seed=1), 0.8))
    yield Sample((arr(3, 4), arr(3, 4, seed=1), arr(3, 4, low=0, high=1, seed=2)))
    yield Sample((arr(2, 1, 4), arr(3, 1, seed=1), arr(4, seed=2)), note="broadcast")
    yield Sample((arr(), arr(3, seed=1), arr(3, seed=2)), note="0-d start broadcasts")
    yield Sample((noncontig(3, 4), arr(4, seed=1), 2), note="int weight")
    yield Sample((arr(0, 3), arr(3, seed=1), 0.5), note="empty")
    yield Sample((arr(3, dtype=np.float64), arr(3, dtype=np.float64, seed=1), 1.5))
    yield Sample((arr(3), arr(3, seed=1), np.array(0.25)), note="0-d float64 weight")
    yield ErrorSample((arr(3), arr(3, dtype=np.float64), 0.5), {}, RuntimeError,
                      "expected dtype float for `end` but got dtype double")
    yield ErrorSample((arr(3), arr(3), arr(3, dtype=np.float64)), {}, RuntimeError,
                      "expected dtype float for `weight` but got dtype double")
    yield ErrorSample((ints(3), ints(3), 0.5), {}, NotImplementedError,
                      "\"lerp_kernel_scalar\" not implemented for 'Long'")


LERP = register(OpDef("lerp", OpKind.ELEMENTWISE, _lerp_rule, _lerp_impl, _lerp_vjp,
                      _lerp_samples))


def lerp(input, end, weight, *, out=None):
    """``input + weight * (end - input)`` (weight a scalar or a tensor)."""
    reject_out(out)
    return apply(LERP, input, end, weight)


# --- addcmul / addcdiv -------------------------------------------------------------------
# inputs: (input, tensor1, tensor2, value); value is a scalar input like a learning rate

def _addc_rule(name):
    def rule(types):
        *ts, value = types
        if value.ndim > 0:
            raise RuntimeError(f"{name}: value must be a number or a 0-dim tensor, got a tensor "
                               f"with {value.ndim} dimensions")
        if name == "addcdiv" and all(t.dtype.category != dtypes.CATEGORY_FLOAT for t in ts[1:]):
            raise RuntimeError(
                "Integer division with addcdiv is no longer supported, and in a future  release "
                "addcdiv will perform a true division of tensor1 and tensor2. The historic "
                "addcdiv behavior can be implemented as (input + value * torch.trunc(tensor1 / "
                "tensor2)).to(input.dtype) for integer inputs and as (input + value * tensor1 / "
                "tensor2) for float inputs. The future addcdiv behavior is just the latter "
                "implementation: (input + value * tensor1 / tensor2), for all dtypes.")
        shape = broadcast_shapes(*(t.shape for t in ts))
        return TensorType(shape, promote(ts), common_device(types))

    rule.__name__ = f"_{name}_rule"
    return rule


def _number(value):
    """``value`` (a number, or a 0-d array on any device) as a Python number."""
    return value.item() if is_array(value) else value


def _addcmul_impl(x, t1, t2, value):
    dt = promoted_np_dtype(x, t1, t2)
    v = dt.type(_number(value))  # value is converted to the result type first
    with np.errstate(all="ignore"):
        return cast(x, dt) + v * cast(t1, dt) * cast(t2, dt)


def _addcdiv_impl(x, t1, t2, value):
    dt = promoted_np_dtype(x, t1, t2)
    v = dt.type(_number(value))
    with np.errstate(all="ignore"):
        return cast(x, dt) + v * cast(t1, dt) / cast(t2, dt)


def _addcmul_vjp(ctx, g):
    need = ctx.needs_input_grad
    if not (need[1] or need[2]):
        return g, None, None, None
    value = ctx.inputs[3]
    return (g, mul(mul(g, ctx.inputs[2]), value) if need[1] else None,
            mul(mul(g, ctx.inputs[1]), value) if need[2] else None, None)


def _addcdiv_vjp(ctx, g):
    need = ctx.needs_input_grad
    if not (need[1] or need[2]):
        return g, None, None, None
    gv, t2 = mul(g, ctx.inputs[3]), ctx.inputs[2]
    return (g, div(gv, t2) if need[1] else None,
            neg(div(mul(gv, ctx.inputs[1]), mul(t2, t2))) if need[2] else None, None)


def _addc_samples(name):
    def samples():
        t2 = (lambda *s, seed=0: arr(*s, seed=seed)) if name == "addcmul" else (
            lambda *s, seed=0: positive(*s, low=0.5, high=2.0, seed=seed))
        yield Sample((arr(3, 4), arr(3, 4, seed=1), t2(3, 4, seed=2)))
        yield Sample((arr(3, 4), arr(3, 4, seed=1), t2(3, 4, seed=2)), {"value": 0.5})
        yield Sample((arr(3, 4), arr(3, 1, seed=1), t2(4, seed=2)), {"value": -2},
                     note="broadcast")
        yield Sample((arr(4), arr(3, 1, seed=1), t2(4, seed=2)), note="output bigger than input")
        yield Sample((noncontig(3, 4), arr(3, 4, seed=1), t2(3, 4, seed=2)), {"value": 2.0})
        yield Sample((arr(), arr(seed=1), t2(seed=2)), note="0-d")
        yield Sample((arr(0, 3), arr(3, seed=1), t2(3, seed=2)), note="empty")
        yield Sample((arr(3, dtype=np.float64), arr(3, seed=1), t2(3, seed=2)), {"value": 3},
                     note="promotion")
        yield Sample((ints(3), arr(3, seed=1), t2(3, seed=2)), {"value": 2}, grad=False,
                     note="int input, float tensors")
        if name == "addcmul":
            yield Sample((ints(5), ints(5, seed=1), ints(5, seed=2)), {"value": 3}, grad=False)
            yield Sample((ints(5), ints(5, seed=1), ints(5, seed=2)), {"value": 0.5},
                         grad=False, note="float value truncated for ints, as torch")
        else:
            yield ErrorSample((arr(3), ints(3), ints(3, low=1, high=3)), {}, RuntimeError,
                              "Integer division with addcdiv is no longer supported")

    samples.__name__ = f"_{name}_samples"
    return samples


ADDCMUL = register(OpDef("addcmul", OpKind.ELEMENTWISE, _addc_rule("addcmul"), _addcmul_impl,
                         _addcmul_vjp, _addc_samples("addcmul")))
ADDCDIV = register(OpDef("addcdiv", OpKind.ELEMENTWISE, _addc_rule("addcdiv"), _addcdiv_impl,
                         _addcdiv_vjp, _addc_samples("addcdiv")))


def addcmul(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 * tensor2``."""
    reject_out(out)
    return apply(ADDCMUL, input, tensor1, tensor2, value)


def addcdiv(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 / tensor2``."""
    reject_out(out)
    return apply(ADDCDIV, input, tensor1, tensor2, value)

