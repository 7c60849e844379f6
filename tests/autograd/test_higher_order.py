"""create_graph=True: gradients are differentiable to any order."""

import numpy as np

import compgrad
from compgrad import autograd


def test_gradients_have_grad_fn_and_go_to_third_order():
    x = compgrad.tensor(2.0, dtype=compgrad.float64, requires_grad=True)
    y = x * x * x * x                        # x^4
    (g1,) = autograd.grad(y, x, create_graph=True)
    assert g1.grad_fn is not None and np.isclose(g1.item(), 32.0)
    (g2,) = autograd.grad(g1, x, create_graph=True)
    assert np.isclose(g2.item(), 48.0)
    (g3,) = autograd.grad(g2, x, create_graph=True)
    assert np.isclose(g3.item(), 48.0)
    (g4,) = autograd.grad(g3, x)
    assert np.isclose(g4.item(), 24.0)


def test_retain_graph_defaults_to_create_graph():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x * x).sum()
    y.backward(create_graph=True)
    first = x.grad
    assert first.grad_fn is not None
    y.backward(create_graph=True)             # the graph was retained
    assert np.allclose(x.grad.detach().numpy(), 2 * np.array([3.0, 12.0]))


def test_hessian_vector_product():
    x = compgrad.tensor([1.0, 2.0, 3.0], dtype=compgrad.float64, requires_grad=True)
    v = compgrad.tensor([1.0, 0.0, -1.0], dtype=compgrad.float64)
    f = (x * x * x).sum()                     # H = diag(6x)
    (g,) = autograd.grad(f, x, create_graph=True)
    (hv,) = autograd.grad((g * v).sum(), x)
    assert np.allclose(hv.numpy(), [6.0, 0.0, -18.0])


def test_gradient_penalty():
    w = compgrad.tensor([0.5, -1.0], dtype=compgrad.float64, requires_grad=True)
    x = compgrad.tensor([1.0, 2.0], dtype=compgrad.float64, requires_grad=True)
    out = (w * x * x).sum()
    (gx,) = autograd.grad(out, x, create_graph=True)     # 2 w x
    penalty = (gx * gx).sum()                             # 4 w^2 x^2
    penalty.backward()
    assert np.allclose(w.grad.numpy(), 8 * np.array([0.5, -1.0]) * np.array([1.0, 4.0]))
