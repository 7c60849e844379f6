"""autograd.grad: tuples, unused inputs, materialize_grads, create_graph."""

import pytest

import compgrad
from compgrad import autograd


def test_grad_returns_a_tuple_and_touches_no_grad():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    w = compgrad.tensor([3.0, 4.0], requires_grad=True)
    gx, gw = autograd.grad((x * w).sum(), (x, w))
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None
    (g,) = autograd.grad((x * x).sum(), x)
    assert isinstance(autograd.grad((x * 1).sum(), [x]), tuple) and g.tolist() == [2.0, 4.0]


def test_unused_inputs():
    x = compgrad.tensor([1.0], requires_grad=True)
    u = compgrad.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        autograd.grad((x * 2).sum(), (x, u))
    gx, gu = autograd.grad((x * 2).sum(), (x, u), allow_unused=True)
    assert gu is None and gx.tolist() == [2.0]
    gx, gu = autograd.grad((x * 2).sum(), (x, u), materialize_grads=True)
    assert gu.tolist() == [0.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        autograd.grad((x * 2).sum(), compgrad.ones(1))


def test_grad_of_non_leaf_inputs():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    (gh,) = autograd.grad((h * h).sum(), h)
    assert gh.tolist() == [6.0, 12.0]


def test_grad_outputs():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    (g,) = autograd.grad(x * 2, x, grad_outputs=compgrad.tensor([1.0, -1.0]))
    assert g.tolist() == [2.0, -2.0]
