"""Binary ops, comparisons and where: operators with scalars on both sides, in-place
variants, aliases and gradients the registry sweep cannot express."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad

torch = pytest.importorskip("torch")


def _pair(values, dtype=np.float32, requires_grad=False):
    a = np.array(values, dtype=dtype)
    c = compgrad.from_numpy(a.copy())
    t = torch.from_numpy(a.copy())
    if requires_grad:
        c.requires_grad_()
        t.requires_grad_()
    return c, t


def _both(op, *args):
    """Run ``op`` in torch and compgrad: the same result, or the same exception type."""
    targs = tuple(torch.from_numpy(np.array(a._data)) if isinstance(a, compgrad.Tensor) else a
                  for a in args)
    try:
        theirs = op(*targs)
    except Exception as exc:  # noqa: BLE001 - any torch error must be matched
        with pytest.raises(type(exc)):
            op(*args)
        return
    _same(op(*args), theirs)


def _same(ours, theirs, rtol=1e-5, atol=1e-6):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, compgrad.Tensor), type(ours)
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), (ours.dtype,
                                                                            theirs.dtype)
        np.testing.assert_allclose(np.array(ours._data), theirs.detach().numpy(), rtol=rtol,
                                   atol=atol, equal_nan=True)
    else:
        assert ours == theirs


FLOATS = [1.5, -2.25, 3.0, 0.5]
INTS = [7, -7, 3, -2]

OPERATORS = [
    lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x * y, lambda x, y: x / y,
    lambda x, y: x // y, lambda x, y: x % y, lambda x, y: x ** y,
    lambda x, y: x == y, lambda x, y: x != y, lambda x, y: x < y, lambda x, y: x <= y,
    lambda x, y: x > y, lambda x, y: x >= y,
]
INT_OPERATORS = [lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y,
                 lambda x, y: x << y, lambda x, y: x >> y]


@pytest.mark.parametrize("k", range(len(OPERATORS)))
@pytest.mark.parametrize("scalar", [2, 2.5, -3, True])
def test_float_operators_with_scalars_on_both_sides(k, scalar):
    op = OPERATORS[k]
    c, _ = _pair(FLOATS)
    _both(op, c, scalar)
    _both(lambda x, y: op(y, x), c, scalar)
    c2, _ = _pair([0.5, 2.0, -1.0, 3.0])
    _both(op, c, c2)


@pytest.mark.parametrize("k", range(len(OPERATORS)))
@pytest.mark.parametrize("scalar", [2, 2.5, 3])
def test_int_operators_with_scalars_on_both_sides(k, scalar):
    op = OPERATORS[k]
    c, t = _pair(INTS, np.int64)
    _same(op(c, scalar), op(t, scalar))
    _same(op(scalar, c), op(scalar, t))


@pytest.mark.parametrize("k", range(len(INT_OPERATORS)))
@pytest.mark.parametrize("scalar", [1, 3, True])
def test_bitwise_operators(k, scalar):
    op = INT_OPERATORS[k]
    for dtype in (np.int64, np.int32, np.uint8):
        c, t = _pair([5, 3, 12, 1], dtype)
        _same(op(c, scalar), op(t, scalar))
        _same(op(scalar, c), op(scalar, t))
    cb, tb = _pair([True, False, True, False], np.bool_)
    if k < 3:
        cb2, tb2 = _pair([True, True, False, False], np.bool_)
        _same(op(cb, cb2), op(tb, tb2))
    _same(~cb, ~tb)
    ci, ti = _pair(INTS, np.int64)
    _same(~ci, ~ti)


def test_invert_of_float_raises():
    c, _ = _pair(FLOATS)
    with pytest.raises(NotImplementedError, match="bitwise_not"):
        _ = ~c


def test_eq_with_none_and_other_objects():
    c, _ = _pair(FLOATS)
    assert (c == None) is False  # noqa: E711 - the operator is what is tested
    assert (c == "a") is False


def test_integer_division_by_zero():
    c, _ = _pair(INTS, np.int64)
    for fn in (lambda: c // 0, lambda: c % 0, lambda: compgrad.fmod(c, 0),
               lambda: compgrad.floor_divide(c, compgrad.zeros(4, dtype=compgrad.int64)),
               lambda: compgrad.div(c, 0, rounding_mode="trunc")):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn()
    _same(c / 0, torch.tensor(INTS) / 0)  # true division gives inf


def test_pow_negative_int_exponent():
    c, t = _pair(INTS, np.int64)
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed."):
        c ** -1
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        compgrad.pow(c, -2)
    _same(c ** -1.0, t ** -1.0)
    e, te = _pair([-1, -2, 0, 3], np.int64)
    _same(c ** e, t ** te)
    _same(compgrad.pow(2, e), torch.pow(2, te))


@pytest.mark.parametrize("name,args", [
    ("add_", (2.5,)), ("sub_", (1.0,)), ("mul_", (-2,)), ("div_", (4.0,)), ("pow_", (2,)),
    ("clamp_", (-1.0, 1.0)), ("clip_", (None, 0.5)), ("clamp_min_", (0.0,)),
    ("clamp_max_", (0.0,)), ("remainder_", (1.5,)), ("fmod_", (1.5,)),
    ("floor_divide_", (0.7,)), ("subtract_", (3,)), ("multiply_", (0.5,)), ("divide_", (3,)),
    ("eq_", (3.0,)), ("lt_", (1.0,)), ("ge_", (0.5,)), ("logical_not_", ()),
    ("logical_and_", ("T",)), ("atan2_", ("T",)), ("hypot_", ("T",)), ("lerp_", ("T", 0.3)),
    ("addcmul_", ("T", "T")), ("addcdiv_", ("T", "T")),
])
def test_inplace_methods(name, args):
    c, t = _pair(FLOATS)
    c2, t2 = _pair([0.5, 2.0, -1.0, 3.0])
    cargs = tuple(c2 if a == "T" else a for a in args)
    targs = tuple(t2 if a == "T" else a for a in args)
    version = c._version_value
    r = getattr(c, name)(*cargs)
    getattr(t, name)(*targs)
    assert r is c
    assert c._version_value == version + 1
    _same(c, t)


def test_inplace_int_errors_like_torch():
    c, _ = _pair(INTS, np.int64)
    with pytest.raises(RuntimeError, match="result type Float can't be cast"):
        c.pow_(2.5)
    with pytest.raises(RuntimeError, match="result type Float can't be cast"):
        c.div_(2)
    c //= 2
    _same(c, torch.tensor(INTS) // 2)
    c, _ = _pair(INTS, np.int64)
    c %= 3
    _same(c, torch.tensor(INTS) % 3)
    c <<= 1
    _same(c, (torch.tensor(INTS) % 3) << 1)


def test_bitwise_inplace():
    c, t = _pair([5, 3, 12, 1], np.int64)
    c.bitwise_and_(6)
    t.bitwise_and_(6)
    _same(c, t)
    c &= 3
    t &= 3
    _same(c, t)


def test_aliases():
    assert compgrad.subtract is compgrad.sub and compgrad.multiply is compgrad.mul
    assert compgrad.divide is compgrad.div and compgrad.clip is compgrad.clamp
    assert compgrad.arctan2 is compgrad.atan2 and compgrad.greater is compgrad.gt
    assert compgrad.less_equal is compgrad.le and compgrad.not_equal is compgrad.ne
    c, t = _pair(FLOATS)
    _same(compgrad.rsub(c, 2, alpha=3), torch.rsub(t, 2, alpha=3))
    _same(compgrad.float_power(c, 2), torch.float_power(t, 2))
    _same(c.float_power(compgrad.tensor([1, 2, 3, 2])), t.float_power(torch.tensor([1, 2, 3, 2])))
    _same(compgrad.clamp_min(c, 0.0), torch.clamp_min(t, 0.0))
    _same(c.clamp_max(compgrad.tensor(1.0)), t.clamp_max(torch.tensor(1.0)))


def test_where_one_argument_form():
    cond = np.array([[True, False], [False, True]])
    ours = compgrad.where(compgrad.from_numpy(cond))
    theirs = torch.where(torch.from_numpy(cond))
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        _same(o, t)


def test_where_errors():
    c, _ = _pair(FLOATS)
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        compgrad.where(c, c, 0.0)
    with pytest.raises(TypeError):
        compgrad.where(True, c, 0.0)


def test_allclose_and_equal():
    c, t = _pair(FLOATS)
    c2, t2 = _pair([x + 1e-7 for x in FLOATS])
    for args in ((c, c2), (c, c2 + 1e-3)):
        targs = tuple(torch.from_numpy(np.array(a._data)) for a in args)
        assert compgrad.allclose(*args) is torch.allclose(*targs)
        assert compgrad.equal(*args) is torch.equal(*targs)
    assert compgrad.equal(c, c) is True
    assert compgrad.equal(c, c[:2]) is False
    ci = compgrad.tensor([1, 2, 3])
    assert compgrad.equal(ci, compgrad.tensor([1.0, 2.0, 3.0])) is True
    nan = compgrad.tensor([1.0, float("nan")])
    assert compgrad.equal(nan, nan) is False
    assert compgrad.allclose(nan, nan, equal_nan=True) is True
    with pytest.raises(RuntimeError, match="Long did not match Float"):
        compgrad.allclose(ci, compgrad.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError):
        compgrad.equal(c, 1.0)


def _grads(fn, *values):
    cs, ts = zip(*(_pair(v, requires_grad=True) for v in values))
    fn(*cs).sum().backward()
    fn(*ts).sum().backward()
    for c, t in zip(cs, ts):
        _same(c.grad, t.grad)


def test_pow_gradients_at_zero_base():
    _grads(lambda a, b: a ** b, [0.0, 0.0, 1.0, 2.0, 0.0], [0.0, 2.0, -1.0, 1.5, 1.0])
    _grads(lambda b: compgrad.pow(0.0, b) if isinstance(b, compgrad.Tensor)
           else torch.pow(0.0, b), [0.0, 2.0, 1.0])
    _grads(lambda a: a ** 0, [0.0, 1.0, -2.0])
    _grads(lambda a: a ** 2, [0.0, 1.0, -2.0])


def test_minmax_tie_gradients():
    ours = lambda f: (lambda a, b: getattr(  # noqa: E731
        compgrad if isinstance(a, compgrad.Tensor) else torch, f)(a, b))
    for f in ("maximum", "minimum", "fmax", "fmin"):
        _grads(ours(f), [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])


def test_clamp_gradients_at_bounds():
    _grads(lambda x: x.clamp(1.0, 3.0), [1.0, 2.0, 3.0, 4.0, 0.0])
    _grads(lambda x, lo, hi: x.clamp(lo, hi), [1.0, 2.0, 3.0], [1.0, 2.5, 0.0], [3.0, 2.0, 1.0])
