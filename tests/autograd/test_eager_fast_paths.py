"""The eager fast paths give the generic paths' results and never alias what they must not.

- In-place float arithmetic (``add_``/``sub_``/``mul_``/``div_`` and ``+=`` ...) writes
  straight into the storage when autograd has nothing to do (compgrad/_methods.py).
- A matrix product's right factor stored transposed (Linear's ``weight.t()``) gets its
  gradient in that layout, and a leaf's gradient view whose base nothing else holds is
  stored as ``.grad`` without a copy (ir/ops/linalg.py, compgrad/autograd/engine.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import nn

RNG = np.random.default_rng(7)


def _arr(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _generic(t, name, *args, **kwargs):
    """The result the generic path computes: the out-of-place op, then a copy-in."""
    out = compgrad.from_numpy(t.numpy().copy())
    return out._write(getattr(compgrad, name.rstrip("_"))(out, *args, **kwargs))


# --- in-place arithmetic -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add_", "sub_", "mul_", "div_", "subtract_", "multiply_",
                                  "divide_", "true_divide_"])
@pytest.mark.parametrize("other_shape", [(3, 4), (4,), (1, 4), (3, 1), ()])
def test_inplace_methods_match_the_generic_path(name, other_shape):
    base = _arr(3, 4)
    other = compgrad.from_numpy(np.asarray(_arr(*other_shape) + 2.0))
    t = compgrad.from_numpy(base.copy())
    before = t._version[0]
    data = t._data
    assert getattr(t, name)(other) is t
    expected = _generic(compgrad.from_numpy(base), name, other)
    np.testing.assert_array_equal(t.numpy(), expected.numpy())
    assert t._data is data            # written in place, same storage
    assert t._version[0] == before + 1


@pytest.mark.parametrize("alpha", [2, -0.5, True])
@pytest.mark.parametrize("name", ["add_", "sub_"])
def test_alpha_matches_the_generic_path(name, alpha):
    base, other = _arr(5), compgrad.from_numpy(_arr(5))
    t = compgrad.from_numpy(base.copy())
    getattr(t, name)(other, alpha=alpha)
    expected = _generic(compgrad.from_numpy(base), name, other, alpha=alpha)
    np.testing.assert_array_equal(t.numpy(), expected.numpy())


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
@pytest.mark.parametrize("other", [1.5, 3, "tensor"])
def test_augmented_operators(op, other):
    base = _arr(2, 3)
    other = compgrad.from_numpy(_arr(2, 3)) if other == "tensor" else other
    t = compgrad.from_numpy(base.copy())
    ref = compgrad.from_numpy(base.copy())
    same = t
    exec(f"t {op} other")  # noqa: S102 - the augmented operator under test
    expected = {"+=": ref + other, "-=": ref - other, "*=": ref * other, "/=": ref / other}[op]
    assert t is same
    np.testing.assert_array_equal(same.numpy(), expected.numpy())


def test_eligible_writes_skip_the_generic_copy(monkeypatch):
    calls = []
    generic = compgrad.Tensor._write

    def counting_write(self, value):
        calls.append(value)
        return generic(self, value)

    monkeypatch.setattr(compgrad.Tensor, "_write", counting_write)
    t = compgrad.from_numpy(_arr(3, 4))
    t.add_(compgrad.from_numpy(_arr(4)), alpha=0.5)
    t.mul_(2.0)
    t /= compgrad.from_numpy(_arr(3, 1))
    p = compgrad.from_numpy(_arr(3, 4)).requires_grad_()
    with compgrad.no_grad():
        p.sub_(t, alpha=0.1)          # an optimizer update
    assert calls == []
    t.add_(compgrad.from_numpy(_arr(3, 4).astype(np.float64)))   # mixed dtypes: generic
    assert len(calls) == 1


def test_views_see_the_write_and_share_the_version():
    t = compgrad.from_numpy(_arr(4, 4))
    row = t[1]
    col = t[:, 2]
    expected = t.numpy().copy()
    expected[1] *= 3.0
    row.mul_(3.0)
    np.testing.assert_array_equal(t.numpy(), expected)
    assert col._version[0] == t._version[0] == row._version[0] == 1


def test_overlapping_operands_are_read_before_written():
    base = _arr(6)
    t = compgrad.from_numpy(base.copy())
    t.add_(t)
    np.testing.assert_array_equal(t.numpy(), base + base)
    t = compgrad.from_numpy(base.copy())
    t[1:].add_(t[:-1])                # other overlaps the target, shifted by one
    expected = base.copy()
    expected[1:] = base[1:] + base[:-1]
    np.testing.assert_array_equal(t.numpy(), expected)


def test_bad_input_raises_the_generic_errors_and_changes_nothing():
    t = compgrad.from_numpy(_arr(3, 4))
    before = t.numpy().copy()
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        t.add_(compgrad.from_numpy(_arr(2, 3, 4)))
    with pytest.raises(RuntimeError):
        t.add_(compgrad.from_numpy(_arr(5)))
    ints = compgrad.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        ints.div_(2)                  # int true division: the generic path's error
    np.testing.assert_array_equal(t.numpy(), before)
    assert t._version[0] == 0


def test_other_dtypes_take_the_generic_path():
    t = compgrad.from_numpy(np.arange(4, dtype=np.float32))
    t.add_(compgrad.from_numpy(np.ones(4, np.float64)))   # float64 into float32: allowed
    np.testing.assert_array_equal(t.numpy(), np.arange(4, dtype=np.float32) + 1)
    i = compgrad.tensor([1, 2, 3])
    i.mul_(2)
    assert i.tolist() == [2, 4, 6] and i.dtype is compgrad.int64


def test_autograd_rules_still_apply():
    w = compgrad.from_numpy(_arr(3)).requires_grad_()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        w.add_(1.0)
    with compgrad.no_grad():
        w.add_(compgrad.ones(3))      # the optimizer case: allowed, not recorded
    assert w.grad_fn is None and w.is_leaf
    x = compgrad.from_numpy(_arr(3)).requires_grad_()
    y = x * 2
    y.mul_(3.0)                       # recorded: the gradient flows through it
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 6.0))
    a = compgrad.from_numpy(_arr(3))
    a.add_(x)                          # a requires grad afterwards, as in PyTorch
    assert a.requires_grad and a.grad_fn is not None


def test_modifying_a_saved_tensor_in_place_is_still_caught():
    x = compgrad.from_numpy(_arr(3)).requires_grad_()
    y = x.exp()                       # saves its output
    with compgrad.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_inside_compile_is_recorded():
    @compgrad.compile
    def scale(t, s):
        t.mul_(s)
        t += 1.0
        return t.sum()

    base = _arr(4)
    t = compgrad.from_numpy(base.copy())
    total = scale(t, 2.0)
    np.testing.assert_allclose(t.numpy(), base * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(float(total), float((base * 2 + 1).sum()), rtol=1e-5)


# --- gradients of transposed right factors ---------------------------------------------------

def _linear_net():
    compgrad.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def test_linear_weight_grads_are_row_major_and_own_their_memory():
    net = _linear_net()
    x = compgrad.from_numpy(_arr(4, 6))
    net(x).square().sum().backward()
    grads = [p.grad for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        assert g.shape == p.shape
        assert g._data.flags.c_contiguous and g._data.flags.writeable
        assert g._base is None
        for other in grads:
            if other is not g:
                assert not np.shares_memory(g._data, other._data)
    # the values: the same products in NumPy
    w1, b1, w2, b2 = (p.detach().numpy() for p in net.parameters())
    xn = x.numpy()
    h_pre = xn @ w1.T + b1
    h = np.maximum(h_pre, 0)
    out = h @ w2.T + b2
    d_out = 2 * out
    np.testing.assert_allclose(grads[2].numpy(), d_out.T @ h, rtol=1e-5, atol=1e-6)
    d_h = (d_out @ w2) * (h_pre > 0)
    np.testing.assert_allclose(grads[0].numpy(), d_h.T @ xn, rtol=1e-5, atol=1e-6)


def test_grads_accumulate_over_steps_without_aliasing():
    net = _linear_net()
    x = compgrad.from_numpy(_arr(4, 6))
    net(x).sum().backward()
    first = net[0].weight.grad.numpy().copy()
    net(x).sum().backward()
    np.testing.assert_allclose(net[0].weight.grad.numpy(), 2 * first, rtol=1e-6)


def test_a_hooked_gradient_is_not_shared_with_grad():
    net = _linear_net()
    seen = []
    net[0].weight.register_hook(seen.append)
    net(compgrad.from_numpy(_arr(4, 6))).sum().backward()
    grad = net[0].weight.grad
    assert not np.shares_memory(grad._data, seen[0]._data)
    kept = seen[0].numpy().copy()
    net(compgrad.from_numpy(_arr(4, 6))).sum().backward()   # accumulates into .grad in place
    np.testing.assert_array_equal(seen[0].numpy(), kept)


def test_a_retained_gradient_is_not_shared_with_the_leaf_grad():
    w = compgrad.from_numpy(_arr(3, 5)).requires_grad_()
    wt = w.t()
    wt.retain_grad()
    x = compgrad.from_numpy(_arr(2, 5))
    (x @ wt).sum().backward()
    assert not np.shares_memory(w.grad._data, wt.grad._data)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy().T)


def test_a_users_root_gradient_is_not_taken_over():
    w = compgrad.from_numpy(_arr(3, 4)).requires_grad_()
    g = compgrad.from_numpy(_arr(3, 4))
    w.t().t().backward(g)             # reaches w as a row-major view of g
    assert not np.shares_memory(w.grad._data, g._data)
    np.testing.assert_array_equal(w.grad.numpy(), g.numpy())


def test_symbolic_and_double_backward_are_unchanged():
    w = compgrad.from_numpy(_arr(3, 4).astype(np.float64)).requires_grad_()
    x = compgrad.from_numpy(_arr(2, 4).astype(np.float64)).requires_grad_()
    (gw,) = compgrad.autograd.grad((x @ w.t()).square().sum(), (w,), create_graph=True)
    gw.sum().backward()
    xn, wn = x.detach().numpy(), w.detach().numpy()
    np.testing.assert_allclose(gw.detach().numpy(), 2 * (xn @ wn.T).T @ xn, rtol=1e-10)
    # d/dx sum(2 (x W^T)^T x) = 2 (ones W... ) checked against finite differences
    assert compgrad.autograd.gradgradcheck(
        lambda a, b: (a @ b.t()).square().sum(), (x.detach().requires_grad_(),
                                                  w.detach().requires_grad_()))
