"""autograd.functional and gradcheck/gradgradcheck."""

import numpy as np
import pytest

import compgrad
from compgrad.autograd import functional as AF


def f64(*values):
    return compgrad.tensor(list(values), dtype=compgrad.float64)


def test_vjp_jvp_jacobian_hessian_hvp():
    x = f64(1.0, 2.0)
    out, v = AF.vjp(lambda a: a * a, x, f64(1.0, 1.0))
    assert np.allclose(v.numpy(), [2.0, 4.0]) and not v.requires_grad
    out, jv = AF.jvp(lambda a: a * a * a, x, f64(1.0, 0.0))
    assert np.allclose(jv.numpy(), [3.0, 0.0])
    jac = AF.jacobian(lambda a: a * a, x)
    assert np.allclose(jac.numpy(), np.diag([2.0, 4.0]))
    hes = AF.hessian(lambda a: (a * a * a).sum(), x)
    assert np.allclose(hes.numpy(), np.diag([6.0, 12.0]))
    val, hv = AF.hvp(lambda a: (a * a * a).sum(), x, f64(1.0, 1.0))
    assert np.isclose(val.item(), 9.0) and np.allclose(hv.numpy(), [6.0, 12.0])


def test_jacobian_of_several_inputs():
    a, b = f64(1.0, 2.0), f64(3.0)
    ja, jb = AF.jacobian(lambda x, y: x * y, (a, b))
    assert np.allclose(ja.numpy(), np.diag([3.0, 3.0])) and np.allclose(jb.numpy(), [[1.0], [2.0]])


def test_gradcheck_passes_and_catches_a_wrong_backward():
    x = f64(0.5, -1.5).requires_grad_()
    assert compgrad.autograd.gradcheck(lambda t: (t * t).exp(), (x,))
    assert compgrad.autograd.gradgradcheck(lambda t: (t * t).exp(), (x,))

    class Wrong(compgrad.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * t

        @staticmethod
        def backward(ctx, g):
            return g * 3

    with pytest.raises(compgrad.autograd.GradcheckError, match="Jacobian mismatch"):
        compgrad.autograd.gradcheck(Wrong.apply, (x,))
    assert not compgrad.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False)


def test_anomaly_mode_names_the_forward_line():
    class Boom(compgrad.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 1

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("boom in backward")

    x = compgrad.ones(2, requires_grad=True)
    with compgrad.autograd.detect_anomaly():
        y = Boom.apply(x).sum()  # the line anomaly mode must name
        with pytest.warns(RuntimeWarning, match="Error detected in BoomBackward"):
            with pytest.raises(RuntimeError, match="test_functional_and_gradcheck.py"):
                y.backward()
