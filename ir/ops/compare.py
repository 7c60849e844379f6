"""Comparisons, logical and bitwise ops, where, isclose/allclose/equal.

Comparisons and predicates return bool tensors and are not differentiable;
``where`` is differentiable in ``input`` and ``other``.
"""

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
    is_array,
    is_scalar,
    promote,
    promoted_np_dtype,
    register,
    register_elementwise,
    reject_out,
    type_of,
)
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType, broadcast_shapes

__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal",
           "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
           "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
           "bitwise_right_shift", "where", "isclose", "allclose", "equal"]
_COMPARE = ("eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less",
            "less_equal", "not_equal")
_LOGICAL = ("logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
            "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
            "bitwise_right_shift")
METHODS = _COMPARE + _LOGICAL + ("isclose", "allclose", "equal")
INPLACE = _COMPARE + _LOGICAL
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()


# --- comparisons -------------------------------------------------------------------------

def _compare_samples():
    yield Sample((arr(3, 4), arr(3, 4, seed=1)), grad=False)
    yield Sample((arr(2, 1, 4), arr(3, 1, seed=1)), grad=False, note="broadcast both ways")
    yield Sample((arr(), arr(5, seed=1)), grad=False, note="0-d with 1-d")
    yield Sample((noncontig(3, 4), arr(4, seed=2)), grad=False, note="non-contiguous")
    yield Sample((arr(0, 3), arr(3, seed=1)), grad=False, note="empty")
    yield Sample((arr(3, 4), 0.5), grad=False)
    yield Sample((ints(3, 4), ints(3, 4, seed=1)), grad=False)
    yield Sample((ints(6), 0.5), grad=False, note="int tensor vs float scalar")
    yield Sample((ints(6, dtype=np.int32), 1), grad=False)
    yield Sample((arr(4), ints(4, seed=1)), grad=False, note="float vs int tensor")
    yield Sample((bools(5), bools(5, seed=1)), grad=False)
    yield Sample((bools(5), 0.5), grad=False)
    yield Sample((np.array([np.nan, 1.0, np.inf, -np.inf], np.float32),
                  np.array([np.nan, 1.0, np.inf, 0.0], np.float32)), grad=False, note="nan/inf")
    yield Sample((arr(3, dtype=np.float16), arr(3, dtype=np.float64, seed=1)), grad=False)


def _binary_function(op: OpDef, name: str, doc: str | None = None):
    """The public function ``name(input, other, *, out=None)`` of the binary op ``op``
    (``out=`` refused), with the docstring ``doc``."""
    def fn(input, other, *, out=None):
        reject_out(out)
        return apply(op, input, other)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _register_compare(name: str, np_fn):
    op = register_elementwise(name, np_fn, None, _compare_samples, mode="bool")
    return op, _binary_function(op, name)


EQ, eq = _register_compare("eq", np.equal)
NE, ne = _register_compare("ne", np.not_equal)
LT, lt = _register_compare("lt", np.less)
LE, le = _register_compare("le", np.less_equal)
GT, gt = _register_compare("gt", np.greater)
GE, ge = _register_compare("ge", np.greater_equal)
eq.__doc__ = "``input == other`` elementwise (a bool tensor)."
ne.__doc__ = "``input != other`` elementwise (a bool tensor)."
lt.__doc__ = "``input < other`` elementwise (a bool tensor)."
le.__doc__ = "``input <= other`` elementwise (a bool tensor)."
gt.__doc__ = "``input > other`` elementwise (a bool tensor)."
ge.__doc__ = "``input >= other`` elementwise (a bool tensor)."
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


# --- logical -----------------------------------------------------------------------------

def _logical_samples():
    yield Sample((bools(3, 4), bools(3, 4, seed=1)), grad=False)
    yield Sample((bools(2, 1, 4), bools(3, 1, seed=1)), grad=False, note="broadcast")
    yield Sample((arr(5), ints(5, low=-1, high=1, seed=1)), grad=False, note="mixed dtypes")
    yield Sample((noncontig(3, 4), bools(4, seed=2)), grad=False, note="non-contiguous")
    yield Sample((arr(0, 3), bools(3)), grad=False, note="empty")
    yield Sample((np.array([np.nan, 0.0, -0.0, 2.0], np.float32), bools(4)), grad=False,
                 note="nan is true, -0.0 is false")
    yield Sample((np.array(True), bools(4, seed=1)), grad=False, note="0-d")


def _register_logical(name: str, np_fn):
    op = register_elementwise(name, np_fn, None, _logical_samples, mode="bool")
    doc = f"Elementwise {name.split('_')[1].upper()} of the truth values (a bool tensor)."
    return op, _binary_function(op, name, doc)


LOGICAL_AND, logical_and = _register_logical("logical_and", np.logical_and)
LOGICAL_OR, logical_or = _register_logical("logical_or", np.logical_or)
LOGICAL_XOR, logical_xor = _register_logical("logical_xor", np.logical_xor)


def _unary_pred_samples():
    yield Sample((arr(3, 4),), grad=False)
    yield Sample((ints(5, low=-1, high=1),), grad=False)
    yield Sample((bools(5),), grad=False)
    yield Sample((noncontig(3, 4),), grad=False)
    yield Sample((arr(),), grad=False)
    yield Sample((arr(0),), grad=False)


LOGICAL_NOT = register_elementwise("logical_not", np.logical_not, None, _unary_pred_samples,
                                   mode="bool")


def logical_not(input, *, out=None):
    """Elementwise NOT of the truth values (a bool tensor)."""
    reject_out(out)
    return apply(LOGICAL_NOT, input)


# --- bitwise -----------------------------------------------------------------------------

def _bitwise_rule(kernel: str, allow_bool: bool = True):
    def rule(types, **_attrs):
        device = common_device(types)
        shape = broadcast_shapes(*(t.shape for t in types))
        dtype = promote(types)
        if dtype.category == dtypes.CATEGORY_FLOAT or (dtype is dtypes.bool_ and not allow_bool):
            raise NotImplementedError(f'"{kernel}_cpu" not implemented for '
                                      f"'{dtype.torch_name}'")
        return TensorType(shape, dtype, device)

    rule.__name__ = f"_{kernel}_rule"
    return rule


def _bitwise_impl(np_fn):
    def impl(*args):
        dt = promoted_np_dtype(*args)
        return np_fn(*(cast(a, dt) for a in args))

    impl.__name__ = f"_{np_fn.__name__}_impl"
    return impl


def _bitwise_samples(kernel: str):
    def samples():
        yield Sample((ints(3, 4, low=-20, high=20), ints(3, 4, low=-20, high=20, seed=1)),
                     grad=False)
        yield Sample((ints(2, 1, 4, low=0, high=20), ints(3, 1, low=0, high=20, seed=1)),
                     grad=False, note="broadcast")
        yield Sample((bools(5), bools(5, seed=1)), grad=False)
        yield Sample((ints(5, dtype=np.uint8, low=0, high=255), ints(5, dtype=np.int8, seed=1)),
                     grad=False, note="uint8 with int8 -> int16")
        yield Sample((ints(5, dtype=np.int32, low=0, high=100), 6), grad=False)
        yield Sample((bools(5), True), grad=False)
        yield Sample((bools(5), 3), grad=False, note="bool tensor, int scalar -> int64")
        yield Sample((12, ints(5, low=0, high=3)), grad=False, note="scalar first")
        yield Sample((ints(0), ints(3)[:0]), grad=False, note="empty")
        yield ErrorSample((arr(3), ints(3)), {}, NotImplementedError,
                          f'"{kernel}_cpu" not implemented for \'Float\'')
        yield ErrorSample((ints(3), 1.5), {}, NotImplementedError, "not implemented for 'Float'")

    samples.__name__ = "_bitwise_samples"
    return samples


def _register_bitwise(name: str, np_fn):
    op = register(OpDef(name, OpKind.ELEMENTWISE, _bitwise_rule(name), _bitwise_impl(np_fn),
                        None, _bitwise_samples(name), differentiable=False))
    doc = f"Elementwise {name.split('_')[1].upper()} of the bits (integer and bool tensors)."
    return op, _binary_function(op, name, doc)


BITWISE_AND, bitwise_and = _register_bitwise("bitwise_and", np.bitwise_and)
BITWISE_OR, bitwise_or = _register_bitwise("bitwise_or", np.bitwise_or)
BITWISE_XOR, bitwise_xor = _register_bitwise("bitwise_xor", np.bitwise_xor)


def _bitwise_not_samples():
    yield Sample((ints(3, 4, low=-20, high=20),), grad=False)
    yield Sample((bools(5),), grad=False)
    yield Sample((ints(5, dtype=np.uint8, low=0, high=255),), grad=False)
    yield Sample((ints(),), grad=False)
    yield Sample((ints(0),), grad=False)
    yield ErrorSample((arr(3),), {}, NotImplementedError,
                      "\"bitwise_not_cpu\" not implemented for 'Float'")


BITWISE_NOT = register(OpDef("bitwise_not", OpKind.ELEMENTWISE, _bitwise_rule("bitwise_not"),
                             _bitwise_impl(np.invert), None, _bitwise_not_samples,
                             differentiable=False))


def bitwise_not(input, *, out=None):
    """Elementwise bit inversion (``~input``); logical NOT for bool tensors."""
    reject_out(out)
    return apply(BITWISE_NOT, input)


def _shift_impl(left: bool):
    def impl(a, b):
        dt = promoted_np_dtype(a, b)
        a, b = cast(a, dt), cast(b, dt)   # arrays stay where they are, numbers NumPy scalars
        bits = dt.itemsize * 8
        valid = (b >= 0) & (b < bits)
        count = np.where(valid, b, 0).astype(dt) if is_array(b) else (b if valid else dt.type(0))
        if left:
            return np.where(valid, np.left_shift(a, count), 0).astype(dt)
        # shifting right by the width or more (or by a negative count) fills with the sign
        fill = np.right_shift(a, bits - 1) if dt.kind == "i" else dt.type(0)
        return np.where(valid, np.right_shift(a, count), fill).astype(dt)

    impl.__name__ = "_lshift_impl" if left else "_rshift_impl"
    return impl


def _shift_samples(kernel: str):
    def samples():
        yield Sample((ints(3, 4, low=-20, high=20), ints(3, 4, low=0, high=5, seed=1)),
                     grad=False)
        yield Sample((ints(2, 1, 4, low=-20, high=20), ints(3, 1, low=0, high=5, seed=1)),
                     grad=False, note="broadcast")
        yield Sample((np.array([1, -8, 5, -5], np.int64), np.array([64, 70, -1, 63], np.int64)),
                     grad=False, note="counts out of range")
        yield Sample((np.array([1, -8, 100], np.int8), 9), grad=False)
        yield Sample((np.array([100, 8, 255], np.uint8), np.array([9, 1, 7], np.uint8)),
                     grad=False)
        yield Sample((ints(5, dtype=np.int32, low=-9, high=9), 2), grad=False)
        yield Sample((bools(5), 1), grad=False, note="bool tensor, int scalar -> int64")
        yield Sample((1, ints(5, low=0, high=10)), grad=False, note="scalar first")
        yield Sample((ints(0), 1), grad=False, note="empty")
        yield ErrorSample((arr(3), 1), {}, NotImplementedError,
                          f'"{kernel}_cpu" not implemented for \'Float\'')
        yield ErrorSample((bools(3), bools(3, seed=1)), {}, NotImplementedError,
                          f'"{kernel}_cpu" not implemented for \'Bool\'')

    samples.__name__ = "_shift_samples"
    return samples


LSHIFT = register(OpDef("bitwise_left_shift", OpKind.ELEMENTWISE, _bitwise_rule("lshift", False),
                        _shift_impl(True), None, _shift_samples("lshift"), differentiable=False))
RSHIFT = register(OpDef("bitwise_right_shift", OpKind.ELEMENTWISE,
                        _bitwise_rule("rshift", False), _shift_impl(False), None,
                        _shift_samples("rshift"), differentiable=False))


def bitwise_left_shift(input, other, *, out=None):
    """``input << other`` (0 where the count is negative or at least the bit width)."""
    reject_out(out)
    return apply(LSHIFT, input, other)


def bitwise_right_shift(input, other, *, out=None):
    """``input >> other`` (arithmetic shift for signed types)."""
    reject_out(out)
    return apply(RSHIFT, input, other)


# --- where -------------------------------------------------------------------------------

def _where_rule(types):
    cond, a, b = types
    if cond.dtype is not dtypes.bool_:
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {cond.dtype.torch_name}")
    device = common_device(types)
    shape = broadcast_shapes(cond.shape, a.shape, b.shape)
    return TensorType(shape, promote((a, b)), device)


def _where_impl(cond, a, b):
    dt = promoted_np_dtype(a, b)
    return np.where(cond, cast(a, dt), cast(b, dt))


def _where_vjp(ctx, g):
    need = ctx.needs_input_grad
    if not (need[1] or need[2]):
        return None, None, None
    cond = ctx.inputs[0]
    ga = where(cond, g, 0) if need[1] else None
    gb = where(cond, 0, g) if need[2] else None
    return None, ga, gb


def _where_samples():
    yield Sample((bools(3, 4), arr(3, 4), arr(3, 4, seed=1)))
    yield Sample((bools(3, 1), arr(1, 4), arr(3, 4, seed=1)), note="broadcast")
    yield Sample((bools(4), arr(2, 1, 4), arr(3, 1, seed=1)), note="broadcast all three")
    yield Sample((bools(3, 4), noncontig(3, 4), 0.0), note="scalar other")
    yield Sample((bools(4), 1.5, arr(4)), note="scalar input")
    yield Sample((bools(4), 1.0, 0.0), grad=False, note="two float scalars -> default float")
    yield Sample((bools(4), 1, 0), grad=False, note="two int scalars -> int64")
    yield Sample((bools(4), True, 0), grad=False)
    yield Sample((np.array(True), arr(5), arr(5, seed=1)), note="0-d condition")
    yield Sample((bools(0, 3), arr(0, 3), arr(3, seed=1)), note="empty")
    yield Sample((bools(5), ints(5), 2.5), grad=False, note="int tensor with float scalar")
    yield Sample((bools(5), arr(5), arr(5, dtype=np.float64, seed=1)), note="promotion")
    yield Sample((bools(5), ints(5, dtype=np.int32), ints(5, seed=1)), grad=False)
    yield ErrorSample((ints(3), arr(3), arr(3)), {}, RuntimeError,
                      "where expected condition to be a boolean tensor, but got a tensor with "
                      "dtype Long")
    yield ErrorSample((bools(3), arr(3), arr(4)), {}, RuntimeError, "must match the size")


WHERE = register(OpDef("where", OpKind.ELEMENTWISE, _where_rule, _where_impl, _where_vjp,
                       _where_samples))


def where(condition, input=None, other=None, *, out=None):
    """``input`` where ``condition`` holds, else ``other``; ``where(condition)`` is
    ``nonzero(condition, as_tuple=True)``."""
    reject_out(out)
    if is_scalar(condition):
        raise TypeError("where(): argument 'condition' (position 1) must be Tensor, not "
                        f"{type(condition).__name__}")
    if input is None and other is None:
        from ir import ops
        return ops.nonzero(condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where() missing required argument: 'input' and 'other' must both be "
                        "given (or neither)")
    return apply(WHERE, condition, input, other)


# --- isclose / allclose / equal ----------------------------------------------------------

def _isclose_rule(types, rtol, atol, equal_nan):
    a, b = types
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{a.dtype.torch_name} did not match {b.dtype.torch_name}")
    return TensorType(broadcast_shapes(a.shape, b.shape), dtypes.bool_, common_device(types))


def _isclose_impl(a, b, rtol, atol, equal_nan):
    # a and b are arrays: the public function refuses numbers
    with np.errstate(all="ignore"):
        close = a == b
        floating = a.dtype.kind == "f"
        if equal_nan and floating:
            close = close | (np.isnan(a) & np.isnan(b))
        if rtol == 0 and atol == 0:
            return close
        if a.dtype.kind == "b":
            a = a.astype(dtypes.default_float_dtype().np_dtype)
            b = b.astype(dtypes.default_float_dtype().np_dtype)
        fdt = a.dtype if floating else dtypes.default_float_dtype().np_dtype
        allowed = fdt.type(atol) + np.abs(fdt.type(rtol) * b.astype(fdt))
        actual = np.abs(a - b)
        if not floating:
            actual = actual.astype(fdt)
        return close | (np.isfinite(actual) & (actual <= allowed))


def _isclose_samples():
    near = arr(3, 4, seed=1)
    yield Sample((near, near + np.float32(1e-6) * arr(3, 4, seed=2)), grad=False)
    yield Sample((arr(3, 4), arr(3, 4, seed=1)), {"atol": 1.0}, grad=False)
    yield Sample((arr(3, 4), arr(3, 4, seed=1)), {"rtol": 0.5, "atol": 0.0}, grad=False)
    yield Sample((arr(2, 1, 4), arr(3, 1, seed=1)), {"atol": 0.5}, grad=False, note="broadcast")
    nans = np.array([np.nan, 1.0, np.inf, -np.inf, np.inf], np.float32)
    other = np.array([np.nan, 1.0, np.inf, np.inf, 1.0], np.float32)
    yield Sample((nans, other), grad=False)
    yield Sample((nans, other), {"equal_nan": True}, grad=False)
    yield Sample((nans, other), {"rtol": 0.0, "atol": 0.0}, grad=False)
    yield Sample((ints(6), ints(6, seed=1)), {"atol": 1.0}, grad=False)
    yield Sample((bools(5), bools(5, seed=1)), grad=False)
    yield Sample((noncontig(3, 4), arr(4)), {"atol": 0.5}, grad=False)
    yield Sample((arr(0, 3), arr(3)), grad=False, note="empty")
    yield ErrorSample((arr(3), arr(3, dtype=np.float64)), {}, RuntimeError,
                      "Float did not match Double")
    yield ErrorSample((arr(3), arr(3)), {"rtol": -1.0}, RuntimeError,
                      "rtol must be greater than or equal to zero, but got -1")
    yield ErrorSample((arr(3), arr(3)), {"atol": -1.0}, RuntimeError,
                      "atol must be greater than or equal to zero")
    yield ErrorSample((arr(3), 1.0), {}, TypeError, "must be Tensor")


ISCLOSE = register(OpDef("isclose", OpKind.ELEMENTWISE, _isclose_rule, _isclose_impl, None,
                         _isclose_samples, differentiable=False))


def _check_tolerances(fn: str, input, other, rtol, atol) -> None:
    if is_scalar(input) or is_scalar(other):
        which, pos, x = ("input", 1, input) if is_scalar(input) else ("other", 2, other)
        raise TypeError(f"{fn}(): argument '{which}' (position {pos}) must be Tensor, not "
                        f"{type(x).__name__}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol:g}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol:g}")


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """``|input - other| <= atol + rtol * |other|`` elementwise (same dtypes required)."""
    _check_tolerances("isclose", input, other, rtol, atol)
    return apply(ISCLOSE, input, other, rtol=float(rtol), atol=float(atol),
                 equal_nan=bool(equal_nan))


def _all_true(mask) -> bool:
    from ir.ops.reduce import sum as reduce_sum
    return not bool(reduce_sum(logical_not(mask)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether every element of ``input`` is close to ``other`` (a Python bool)."""
    return _all_true(isclose(input, other, rtol, atol, equal_nan))


def equal(input, other) -> bool:
    """True if ``input`` and ``other`` have the same shape and the same values."""
    if is_scalar(input) or is_scalar(other):
        which, pos, x = ("input", 1, input) if is_scalar(input) else ("other", 2, other)
        raise TypeError(f"equal(): argument '{which}' (position {pos}) must be Tensor, not "
                        f"{type(x).__name__}")
    if type_of(input).shape != type_of(other).shape:
        return False
    return _all_true(eq(input, other))

