"""Reproducers of the bugs the random-program generator (test_random_programs.py) steers
around: one strict xfail each, expected results are PyTorch's. When a fix lands its test
fails: remove the xfail and the generator's ``# BUG n`` workaround together."""

from __future__ import annotations

import functools

import pytest

import compgrad

# --------------------------------------------------------------------------- known bugs
# One reproducer per bug the generator steers around (the BUG comments above); the
# expected results are PyTorch's. strict=True: when a fix lands its test fails, so remove
# the xfail and the generator's workaround together.

def _bug1(x):
    x.index_select(0, compgrad.tensor([5])).sum().backward()   # compiled: a lazy .grad


def _bug2(x):
    return (x * 2).copy_(x).requires_grad


def _bug4(x, w):
    y = x * 1
    y.copy_(y * w)   # mul saved y, which copy_ overwrites
    y.sum().backward()


def _bug6(x):
    z = x.exp()      # saves its output z
    z.detach().zero_()
    z.sum().backward()


def _bug7(x):
    y = x * 2
    with compgrad.no_grad():
        y.clamp_(max=0.5)
    return y.requires_grad


def _bug8(x, w):
    (x / w).add_(1).sum().backward()


def _bug9(x):
    return (x * 2).fill_(2.0).requires_grad


def _bug10(x):
    x.sum().backward()
    y = x * 2
    y[y > 0].sum()   # data-dependent shape: a graph break
    x.sum().backward()


def _bug11_view(x, into_view: bool = True):
    s = x * 1
    r = s[0:1]
    repr(r)          # a graph break: r and s get their data
    (r if into_view else s).mul_(0.0)
    (s if into_view else r).sum().backward()


def _bug12(x, c):
    e = c * 2
    r = e.reshape(-1)
    e.add_(x)
    return r.requires_grad


def _bug13(x):
    y = x * 2
    y.expand(3).add_(1.0)
    return y.tolist()


def _bug19(x):
    y = x.exp()       # saves its output y
    y.copy_(x * 2)    # PyTorch's CopyBackwards still reaches exp's node, which then raises
    y.sum().backward()


def _bug13_one_element(x):
    y = x * 2
    y.expand(1, 1).add_(1.0)   # a read-only broadcast view of one element: writes through
    return y.tolist()


def _bug14(x):
    (x ** True).sum().backward()


def _bug17(x):
    s = x * 1
    repr(s)          # a graph break: s gets its data
    s.clamp_(min=2.0)
    repr(s)          # another: the write lands in s's array, which clamp's VJP reads
    s.sum().backward()


def _bug18(x):
    a = x + x
    v = a.reshape(1)
    a.add_(1.0)
    m = v * v        # saves v as re-read after the write
    a.add_(1.0)      # which this write changes again
    m.sum().backward()


def _known(n, what: str, fn, values, grad, expected, grads=None, name=None):
    return pytest.param(fn, values, grad, (expected, grads), id=name or fn.__name__[1:],
                        marks=pytest.mark.xfail(strict=True, reason=f"BUG {n}: {what}"))


def _fixed(fn, values, grad, expected, grads=None, name=None):
    # a fixed bug's reproducer stays as a regression test
    return pytest.param(fn, values, grad, (expected, grads), id=name or fn.__name__[1:])


_X2 = [3.0, 1.0]


@pytest.mark.parametrize("fn, values, grad, expected", [
    _fixed(_bug1, [[1.0, 2.0]], (True,), IndexError, [None]),
    _fixed(_bug2, [0.5], (True,), True),
    _fixed(_bug4, [[0.5], [2.0]], (True, True), RuntimeError),
    _fixed(_bug6, [[0.1, 0.9]], (True,), RuntimeError),
    _fixed(_bug7, [[0.1, 0.9]], (True,), True),
    _fixed(_bug8, [1.0, 2.0], (True, True), None, [0.5, -0.25]),
    _fixed(_bug9, [0.5], (True,), True),
    _fixed(_bug10, [[0.5, -1.0]], (True,), None, [[2.0, 2.0]]),
    _fixed(_bug11_view, [_X2], (True,), None, [[0.0, 1.0]]),
    _fixed(functools.partial(_bug11_view, into_view=False), [_X2], (True,), None,
           [[0.0, 0.0]], name="bug11_base"),
    _fixed(_bug12, [0.5, 1.0], (True, False), True),
    _fixed(_bug13, [[1.0, 2.0, 3.0]], (False,), [3.0, 5.0, 7.0]),
    _fixed(_bug13_one_element, [[1.5]], (False,), [4.0]),
    _fixed(_bug14, [_X2], (True,), None, [[1.0, 1.0]]),
    _fixed(_bug17, [[1.0, 3.0]], (True,), None, [[0.0, 1.0]]),
    _fixed(_bug18, [0.5], (True,), RuntimeError, [None]),
    _fixed(_bug19, [[0.5]], (True,), RuntimeError),
])
def test_known_bug(fn, values, grad, expected):
    """Eager and compiled both give PyTorch's result (and input grads, when given)."""
    for f in (fn, compgrad.compile(fn, backend="interpret")):
        ts = [compgrad.tensor(v, dtype=compgrad.float64, requires_grad=g)
              for v, g in zip(values, grad)]
        try:
            result = f(*ts)
        except Exception as e:  # noqa: BLE001 - compared with what PyTorch does
            result = type(e)
        grads = None if expected[1] is None else [
            None if t.grad is None else t.grad.tolist() for t in ts]
        assert (result, grads) == expected, f"{'compiled' if f is not fn else 'eager'}"
