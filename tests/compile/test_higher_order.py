"""Higher-order autograd inside compiled functions, and autograd's errors.

``autograd.grad(..., create_graph=True)`` inside a compiled function appends a
differentiable symbolic backward to the trace, so differentiating again works:
gradient penalties, Hessian-vector products, MAML-style inner steps and third
derivatives equal eager ones. Autograd's misuse errors (second backward,
non-scalar implicit grad, in-place change of a saved tensor, in-place on a
leaf that requires grad) are raised with eager's types and messages.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn
import compgrad.nn.functional as F
from compgrad import autograd

from ._common import BACKENDS, assert_same, module_state

BACKEND_PARAMS = [pytest.param(b, id=b) for b in BACKENDS]


def _randn(*shape, seed: int = 0, requires_grad: bool = False, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return compgrad.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def _critic(seed: int = 0):
    compgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _both(fn, make_args, backend):
    """fn run eagerly and compiled on separately made (identical) arguments."""
    cf = compgrad.compile(fn, backend=backend)
    a1, a2 = make_args(), make_args()
    return (fn(*a1), a1), (cf(*a2), a2), cf


# ------------------------------------------------------------------ gradient penalty

def _gradient_penalty_step(critic, opt, real, fake, eps, lam):
    opt.zero_grad()
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(mixed)
    (g,) = autograd.grad(score.sum(), mixed, create_graph=True)
    penalty = ((g.pow(2).sum(dim=1) + 1e-12).sqrt() - 1).pow(2).mean()
    loss = critic(fake).mean() - critic(real).mean() + lam * penalty
    loss.backward()
    opt.step()
    return loss.detach(), penalty.detach()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_gradient_penalty(backend):
    def make():
        critic = _critic()
        return critic, compgrad.optim.Adam(critic.parameters(), lr=1e-3)

    (c1, o1), (c2, o2) = make(), make()
    step = compgrad.compile(_gradient_penalty_step, backend=backend)
    for i in range(3):
        real, fake = _randn(6, 4, seed=i), _randn(6, 4, seed=100 + i)
        eps = compgrad.tensor(np.random.default_rng(i).random((6, 1)).astype(np.float32))
        out1 = _gradient_penalty_step(c1, o1, real, fake, eps, 10.0)
        out2 = step(c2, o2, real, fake, eps, 10.0)
        assert_same(out1, out2, atol=1e-6, msg=f"step {i}")
    s1, s2 = module_state(c1), module_state(c2)
    for k in s1:
        np.testing.assert_allclose(s1[k], s2[k], rtol=1e-5, atol=1e-6, err_msg=k)
    report = step.explain()
    assert report.total_graph_break_count == 0
    assert report.program_count <= 2


# ----------------------------------------------------------- Hessian-vector product

def _hvp(w, x, v):
    loss = (x @ w).tanh().pow(2).sum()
    (g,) = autograd.grad(loss, w, create_graph=True)
    (hv,) = autograd.grad((g * v).sum(), w)
    return g.detach(), hv


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_hessian_vector_product(backend):
    def args():
        return (_randn(5, 3, seed=1, requires_grad=True, dtype=np.float64),
                _randn(7, 5, seed=2, dtype=np.float64), _randn(5, 3, seed=3, dtype=np.float64))

    (r1, _), (r2, _), cf = _both(_hvp, args, backend)
    assert_same(r1, r2, atol=1e-12)
    # against the explicit Hessian from compgrad.autograd.functional (eager)
    w, x, v = args()
    h = autograd.functional.hessian(lambda w: (x @ w).tanh().pow(2).sum(), w)
    expected = (h.reshape(15, 15) @ v.reshape(15)).reshape(5, 3)
    np.testing.assert_allclose(r2[1].numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)
    assert cf.explain().total_graph_break_count == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_hvp_with_backward_create_graph(backend):
    # the same through backward(create_graph=True) and .grad
    def f(w, x, v):
        loss = (x @ w).sin().sum()
        loss.backward(create_graph=True)
        g = w.grad
        w.grad = None
        (g * v).sum().backward()
        return g.detach(), w.grad

    def args():
        return (_randn(4, 2, seed=4, requires_grad=True, dtype=np.float64),
                _randn(3, 4, seed=5, dtype=np.float64), _randn(4, 2, seed=6, dtype=np.float64))

    (r1, a1), (r2, a2), _ = _both(f, args, backend)
    assert_same(r1, r2, atol=1e-12)
    assert a2[0].grad is r2[1]


# ----------------------------------------------------------------------------- MAML

def _maml_step(params, opt, xs, ys, xq, yq, inner_lr):
    opt.zero_grad()
    w, b = params
    support = F.mse_loss(xs @ w + b, ys)
    gw, gb = autograd.grad(support, (w, b), create_graph=True)
    fw, fb = w - inner_lr * gw, b - inner_lr * gb
    query = F.mse_loss(xq @ fw + fb, yq)
    query.backward()
    opt.step()
    return support.detach(), query.detach()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_maml_inner_step(backend):
    def make():
        w = _randn(3, 1, seed=7, requires_grad=True)
        b = compgrad.zeros(1, requires_grad=True)
        return [w, b], compgrad.optim.SGD([w, b], lr=0.1, momentum=0.9)

    (p1, o1), (p2, o2) = make(), make()
    step = compgrad.compile(_maml_step, backend=backend)
    for i in range(4):
        task = [_randn(5, 3, seed=10 * i + k) if k % 2 == 0 else _randn(5, 1, seed=10 * i + k)
                for k in range(4)]
        r1 = _maml_step(p1, o1, *task, 0.05 * (i + 1))
        r2 = step(p2, o2, *task, 0.05 * (i + 1))
        assert_same(r1, r2, atol=1e-6, msg=f"task {i}")
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-6)
    report = step.explain()
    assert report.total_graph_break_count == 0
    # the inner lr is a lifted scalar: changing it compiles nothing new
    assert report.program_count <= 2


# -------------------------------------------------------------------- third derivative

def _third(x):
    y = (x.pow(4) + x.sin() * x).sum()
    (d1,) = autograd.grad(y, x, create_graph=True)
    (d2,) = autograd.grad(d1.sum(), x, create_graph=True)
    (d3,) = autograd.grad(d2.sum(), x)
    return d1.detach(), d2.detach(), d3


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_third_derivative(backend):
    def args():
        return (_randn(6, seed=8, requires_grad=True, dtype=np.float64),)

    (r1, _), (r2, (x,)), cf = _both(_third, args, backend)
    assert_same(r1, r2, atol=1e-12)
    xv = x.detach().numpy()
    # d3/dx3 (x^4 + x sin x) = 24 x - 3 sin x - x cos x
    np.testing.assert_allclose(r2[2].numpy(), 24 * xv - 3 * np.sin(xv) - xv * np.cos(xv),
                               rtol=1e-10)
    assert cf.explain().total_graph_break_count == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_double_backward_through_compiled_forward_output(backend):
    # grad-of-grad reaching a compiled call's output from eager code
    def f(x):
        return (x * x * x).sum()

    cf = compgrad.compile(f, backend=backend)
    x1 = _randn(4, seed=9, requires_grad=True, dtype=np.float64)
    x2 = _randn(4, seed=9, requires_grad=True, dtype=np.float64)
    (g1,) = autograd.grad(f(x1), x1, create_graph=True)
    (g2,) = autograd.grad(cf(x2), x2)
    assert_same(g1.detach(), g2.detach(), atol=1e-12)


# ------------------------------------------------- leaves inside the compiled function

def _args_w_x():
    return _randn(3, seed=30, requires_grad=True), _randn(3, seed=31)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_backward_after_no_grad_update_of_a_leaf(backend):
    # w is updated outside autograd, then used again: its new value is the same leaf,
    # and the update itself is not differentiated
    def f(w, x):
        a = (w * x).sum()          # uses w before the update
        a.backward()
        with compgrad.no_grad():
            w.sub_(0.1 * w.grad)
        b = (w * w).sum() + (w * x).sum()
        b.backward()
        return a.detach(), b.detach(), w.grad, w.is_leaf

    (r1, a1), (r2, a2), _ = _both(f, _args_w_x, backend)
    assert_same(r1, r2, atol=1e-6)
    assert_same(a1, a2, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_old_and_new_values_of_a_leaf_in_one_backward(backend):
    def f(w, x):
        a = (w * x).sum()
        with compgrad.no_grad():
            w.mul_(2)
        b = (w * x).sum()
        (a + b).backward()         # both versions accumulate into w.grad
        return w.grad

    (g1, _), (g2, _), _ = _both(f, _args_w_x, backend)
    assert_same(g1, g2, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_autograd_grad_of_a_leaf_used_at_two_versions(backend):
    def f(w, x):
        calls = []
        w.register_post_accumulate_grad_hook(lambda t: calls.append(1))
        a = (w * x).sum()
        with compgrad.no_grad():
            w.mul_(2)
        b = (w * w * x).sum()
        (g,) = autograd.grad(a + b, w, retain_graph=True)
        (a + b).backward()
        return g, w.grad, len(calls)

    (r1, _), (r2, _), _ = _both(f, _args_w_x, backend)
    assert_same(r1, r2, atol=1e-6)
    assert r2[2] == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_detach_requires_grad_is_a_new_leaf(backend):
    def f(w, x):
        d = (w * 2).detach().requires_grad_()
        e = w.detach().requires_grad_()
        ((d * x).sum() + (e * e).sum() + w.sum()).backward()
        return d.grad, e.grad, w.grad, d.is_leaf, e.is_leaf

    (r1, _), (r2, _), _ = _both(f, _args_w_x, backend)
    assert_same(r1, r2, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_no_gradient_through_detach(backend):
    def f(w, x):
        y = w * x
        target = y.detach() * 0.5 + 1      # a fixed target built from the prediction
        ((y - target) ** 2).sum().backward(retain_graph=True)
        (y * y.detach()).sum().backward()
        return w.grad

    (g1, _), (g2, _), _ = _both(f, _args_w_x, backend)
    assert_same(g1, g2, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_detached_alias_shares_the_version_counter(backend):
    def f(w):
        y = w * 2
        z = y * y.detach()     # mul saves the alias
        y.mul_(3)              # bumps the version the alias shares
        z.sum().backward()

    e1, _ = _assert_same_error(f, lambda: (_randn(3, seed=37, requires_grad=True),), backend,
                               contains="modified by an inplace operation")
    assert isinstance(e1, RuntimeError)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_requires_grad_on_a_computed_tensor(backend):
    def f(w, x):
        with compgrad.no_grad():
            y = w * x              # no history
        y.requires_grad_()
        (y * y).sum().backward()
        return y.grad, w.grad

    (r1, _), (r2, _), _ = _both(f, _args_w_x, backend)
    assert_same(r1, r2, atol=1e-6)
    assert r2[1] is None


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_write_through_detached_alias_keeps_the_leaf(backend):
    def f(w):
        w.detach().mul_(3)         # outside autograd, seen by w
        (w * w).sum().backward()
        return w.grad, w.is_leaf, w.grad_fn

    def args():
        return (_randn(3, seed=32, requires_grad=True),)

    (r1, a1), (r2, a2), _ = _both(f, args, backend)
    assert_same(r1, r2, atol=1e-6)
    assert_same(a1, a2)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_output_after_detached_write_requires_grad(backend):
    def f(w):
        w.detach().mul_(3)
        return w * 1

    def args():
        return (_randn(3, seed=33, requires_grad=True),)

    (r1, _), (r2, _), _ = _both(f, args, backend)
    assert_same(r1, r2)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_output_depending_on_leaf_made_inside_requires_grad(backend):
    def f(x):
        w = compgrad.ones(3, requires_grad=True)
        return w * x

    (r1, _), (r2, _), _ = _both(f, lambda: (_randn(3, seed=36),), backend)
    assert_same(r1, r2)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_in_place_op_reads_its_own_original_target(backend):
    # x.mul_(w): the gradient of w needs x before the write (PyTorch's original_self)
    def f(x, w):
        x.mul_(w)
        x.sum().backward()
        return w.grad, x.requires_grad, x.grad_fn is not None

    def args():
        return _randn(3, seed=34), _randn(3, seed=35, requires_grad=True)

    (r1, a1), (r2, a2), _ = _both(f, args, backend)
    assert_same(r1, r2, atol=1e-6)
    assert_same(a1[0].detach(), a2[0].detach(), atol=1e-6)


# ------------------------------------------------------------------- autograd errors

def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the exception is the result
        return e
    raise AssertionError(f"{fn.__name__} raised nothing")


def _assert_same_error(fn, make_args, backend, contains: str | None = None):
    e1 = _error_of(fn, *make_args())
    e2 = _error_of(compgrad.compile(fn, backend=backend), *make_args())
    assert type(e1) is type(e2), (e1, e2)
    assert str(e1) == str(e2) if contains is None else contains in str(e2), (str(e1), str(e2))
    return e1, e2


def _second_backward(x):
    y = (x.exp() * x).sum()
    y.backward()
    y.backward()


def _implicit_nonscalar(x):
    (x * 2).backward()


def _saved_modified(x):
    y = x.exp()
    z = y * 3
    y.add_(1)
    z.sum().backward()


def _saved_modified_sigmoid(x):
    y = x.sigmoid()     # saves its own output
    y.mul_(2)
    y.sum().backward()


def _leaf_inplace(x):
    x.add_(1)


def _leaf_view_inplace(x):
    x[0].mul_(2)


def _leaf_arg():
    return (_randn(3, seed=11, requires_grad=True),)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("fn", [_second_backward, _implicit_nonscalar, _leaf_inplace,
                                _leaf_view_inplace],
                         ids=["second_backward", "implicit_nonscalar", "leaf_inplace",
                              "leaf_view_inplace"])
def test_backward_errors_match_eager(fn, backend):
    e1, _ = _assert_same_error(fn, _leaf_arg, backend)
    assert isinstance(e1, RuntimeError)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("fn", [_saved_modified, _saved_modified_sigmoid],
                         ids=["input_saved", "output_saved"])
def test_inplace_on_saved_tensor_error(fn, backend):
    # the same error type and the same leading text; eager names its autograd node
    # (ExpBackward0) where the compiled engine names the recorded value
    e1, e2 = _assert_same_error(fn, _leaf_arg, backend,
                                contains="one of the variables needed for gradient computation "
                                         "has been modified by an inplace operation")
    assert isinstance(e1, RuntimeError)
    assert str(e1).startswith("one of the variables needed for gradient computation")


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_second_backward_with_retain_graph_accumulates(backend):
    def f(x):
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
        return x.grad

    def args():
        return (_randn(3, seed=12, requires_grad=True),)

    (g1, _), (g2, _), _ = _both(f, args, backend)
    assert_same(g1, g2, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_inplace_on_leaf_allowed_under_no_grad(backend):
    def f(x):
        with compgrad.no_grad():
            x.add_(1)
        return (x * x).sum()

    def args():
        return (_randn(3, seed=13, requires_grad=True),)

    (r1, a1), (r2, a2), _ = _both(f, args, backend)
    assert_same(r1.detach(), r2.detach())
    assert_same(a1[0], a2[0])
    assert a1[0]._version_value == a2[0]._version_value


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_backward_inside_flows_into_eager_history(backend):
    """An argument computed eagerly before the call (it has an eager grad_fn): a
    backward inside the compiled function continues through the eager graph into the
    leaves, as eagerly; a second backward through the freed eager graph raises."""
    def f(h, target):
        loss = ((h.tanh() - target) ** 2).mean()
        loss.backward()
        return loss.detach()

    cf = compgrad.compile(f, backend=backend)
    layer1, layer2 = compgrad.nn.Linear(4, 3), compgrad.nn.Linear(4, 3)
    layer2.load_state_dict(layer1.state_dict())
    x, target = _randn(5, 4, seed=40), _randn(5, 3, seed=41)
    for _ in range(2):
        assert_same(f(layer1(x), target), cf(layer2(x), target))
        for p1, p2 in zip(layer1.parameters(), layer2.parameters()):
            assert_same(p1.grad, p2.grad, atol=1e-6)
    h1, h2 = layer1(x), layer2(x)
    f(h1, target)
    cf(h2, target)
    errors = []
    for fn, h in ((f, h1), (cf, h2)):
        with pytest.raises(RuntimeError) as e:
            fn(h, target)
        errors.append(str(e.value))
    assert errors[0] == errors[1]
