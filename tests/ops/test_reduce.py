"""Reductions, scans and sorting: semantics the registry sweep cannot express
(the three forms of max/min, named-tuple results, torch.norm's dispatch, in-place
scans, gradients through the autograd engine, double backward)."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad

torch = pytest.importorskip("torch")


def _pair(a):
    a = np.asarray(a)
    return compgrad.from_numpy(a.copy()), torch.from_numpy(a.copy())


def _close(ours, theirs, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(ours._data), theirs.detach().numpy(), rtol=rtol,
                               atol=atol, equal_nan=True)
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")


X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_three_forms(name):
    c, t = _pair(X)
    _close(getattr(compgrad, name)(c), getattr(torch, name)(t))
    r, tr = getattr(compgrad, name)(c, 1, keepdim=True), getattr(torch, name)(t, 1, keepdim=True)
    _close(r.values, tr.values)
    _close(r.indices, tr.indices)
    values, indices = getattr(c, name)(dim=0)
    _close(values, getattr(t, name)(dim=0)[0])
    _close(indices, getattr(t, name)(dim=0)[1])
    o, to = _pair(X[0])
    _close(getattr(compgrad, name)(c, o), getattr(torch, name)(t, to))
    _close(getattr(c, name)(o), getattr(t, name)(to))


def test_named_tuples():
    c, _ = _pair(X)
    for res in (compgrad.max(c, 0), compgrad.sort(c), compgrad.topk(c, 2), compgrad.mode(c),
                compgrad.kthvalue(c, 1), compgrad.median(c, 1)):
        values, indices = res
        assert res.values is values and res.indices is indices
        assert indices.dtype is compgrad.int64
    res = compgrad.aminmax(c)
    mn, mx = res
    assert res.min is mn and res.max is mx and float(mx) == float(X.max())


@pytest.mark.parametrize("kwargs", [{}, {"p": "fro"}, {"p": 3, "dim": 1}, {"p": float("inf")},
                                    {"p": float("-inf"), "dim": 0, "keepdim": True},
                                    {"p": 1, "dim": (0, 1)}, {"p": "fro", "dim": (0, 1)},
                                    {"p": 2, "dtype": compgrad.float64}, {"p": 0}])
def test_norm(kwargs):
    c, t = _pair(X)
    tk = dict(kwargs)
    if "dtype" in tk:
        tk["dtype"] = torch.float64
    _close(compgrad.norm(c, **kwargs), torch.norm(t, **tk))
    _close(c.norm(**kwargs), t.norm(**tk))


def test_norm_errors():
    c, t = _pair(np.ones((2, 3, 4), np.float32))
    with pytest.raises(RuntimeError):
        torch.norm(t, "fro", (0, 1, 2))
    with pytest.raises(RuntimeError, match="dim must be a 2-tuple"):
        compgrad.norm(c, "fro", (0, 1, 2))
    with pytest.raises(RuntimeError, match="floating point"):
        compgrad.norm(compgrad.from_numpy(np.arange(3)))


def test_nansum_nanmean():
    a = X.copy()
    a[0, 1] = np.nan
    a[2, 3] = np.nan
    c, t = _pair(a)
    _close(compgrad.nansum(c), torch.nansum(t))
    _close(compgrad.nansum(c, 1, keepdim=True), torch.nansum(t, 1, keepdim=True))
    _close(compgrad.nanmean(c, 0), torch.nanmean(t, 0))
    _close(c.nanmean(), t.nanmean())
    ci, ti = _pair(np.arange(6).reshape(2, 3))
    _close(compgrad.nansum(ci, 0), torch.nansum(ti, 0))


def test_inplace_scans():
    c, t = _pair(np.arange(6).reshape(2, 3))
    out = c.cumsum_(1)
    assert out is c
    t.cumsum_(1)
    _close(c, t)
    c, t = _pair(X)
    c.cumprod_(0)
    t.cumprod_(0)
    _close(c, t)


def test_unique_forms():
    c, t = _pair(np.array([3, 1, 3, 2, 1]))
    _close(compgrad.unique(c), torch.unique(t))
    assert not isinstance(compgrad.unique(c), tuple)
    v, inv = c.unique(return_inverse=True)
    tv, tinv = t.unique(return_inverse=True)
    _close(v, tv)
    _close(inv, tinv)


def _grads(fn_c, fn_t, a):
    c = compgrad.from_numpy(a.copy()).requires_grad_()
    t = torch.from_numpy(a.copy()).requires_grad_()
    fn_c(c).sum().backward()
    fn_t(t).sum().backward()
    _close(c.grad, t.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", [
    ("max_dim", lambda m, x: m.max(x, 1).values * 2),
    ("max_all", lambda m, x: m.max(x) * 3),
    ("amax_ties", lambda m, x: m.amax(m.round(x), 1)),
    ("sort", lambda m, x: m.sort(x, 0, descending=True).values * m.arange(3.0)[:, None]),
    ("topk", lambda m, x: m.topk(x, 2).values ** 2),
    ("median", lambda m, x: m.median(x)),
    ("median_dim", lambda m, x: m.median(x, 0, keepdim=True).values),
    ("kthvalue", lambda m, x: m.kthvalue(x, 3).values),
    ("mode", lambda m, x: m.mode(x, 1).values),
    ("prod", lambda m, x: m.prod(x, 1)),
    ("cumsum", lambda m, x: m.cumsum(x, 1) ** 2),
    ("cumprod", lambda m, x: m.cumprod(x, 0) * x),
    ("logsumexp", lambda m, x: m.logsumexp(x, (0, 1)) * 2),
    ("var", lambda m, x: m.var(x, 1).sum() + m.std(x, 0, correction=0).sum()),
    ("norm", lambda m, x: m.norm(x, 3, 1)),
])
def test_backward_matches_torch(case):
    _, fn = case
    a = (X * 2.0).astype(np.float64)
    _grads(lambda x: fn(compgrad, x), lambda x: fn(torch, x), a)


def test_prod_zero_gradient():
    a = np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0], [1.0, 2.0, -1.0]])
    _grads(lambda x: compgrad.prod(x, 1), lambda x: torch.prod(x, 1), a)
    _grads(lambda x: compgrad.prod(x), lambda x: torch.prod(x), a[2])


def test_double_backward():
    a = (X * 0.7).astype(np.float64)
    for fn in (lambda m, x: m.logsumexp(x, 1), lambda m, x: m.var(x, 0),
               lambda m, x: m.cumsum(x, 1) ** 2, lambda m, x: m.sort(x, 1).values ** 3,
               lambda m, x: m.prod(x, 1), lambda m, x: m.max(x, 0).values ** 2):
        c = compgrad.from_numpy(a.copy()).requires_grad_()
        t = torch.from_numpy(a.copy()).requires_grad_()
        (gc,) = compgrad.autograd.grad(fn(compgrad, c).sum(), c, create_graph=True)
        (gt,) = torch.autograd.grad(fn(torch, t).sum(), t, create_graph=True)
        (ggc,) = compgrad.autograd.grad((gc * gc).sum(), c)
        (ggt,) = torch.autograd.grad((gt * gt).sum(), t)
        _close(ggc, ggt, rtol=1e-4, atol=1e-6)


_ZEROS = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [1.5, -1.0, 0.0, 2.0, 0.5],
                   [0.0, 0.0, 0.0, 1.0, 2.0], [1.0, -2.0, 0.5, 3.0, 0.0]])


@pytest.mark.parametrize("fn", [
    lambda m, x: m.prod(x, 1), lambda m, x: m.prod(x, 0, keepdim=True), lambda m, x: m.prod(x),
    lambda m, x: m.prod(x[0]), lambda m, x: m.prod(x[:, 1:].reshape(2, 2, 4), 1),
    lambda m, x: m.cumprod(x, 1), lambda m, x: m.cumprod(x, 0), lambda m, x: m.cumprod(x[0], 0),
    lambda m, x: m.cumprod(x.reshape(2, 2, 5), 1) * x.reshape(2, 2, 5),
], ids=["prod1", "prod0k", "prod_all", "prod_row", "prod_3d", "cumprod1", "cumprod0",
        "cumprod_row", "cumprod_3d"])
def test_prod_cumprod_zero_safe_derivatives(fn):
    # first, second and third derivatives at inputs with one, two and three zeros per slice
    rng = np.random.default_rng(5)
    c = compgrad.from_numpy(_ZEROS.copy()).requires_grad_()
    t = torch.from_numpy(_ZEROS.copy()).requires_grad_()
    oc, ot = fn(compgrad, c), fn(torch, t)
    w = rng.standard_normal(tuple(ot.shape))
    (gc,) = compgrad.autograd.grad((oc * compgrad.from_numpy(w)).sum(), c, create_graph=True)
    (gt,) = torch.autograd.grad((ot * torch.from_numpy(w)).sum(), t, create_graph=True)
    _close(gc, gt, 1e-10, 1e-10)
    v = rng.standard_normal(_ZEROS.shape)
    (ggc,) = compgrad.autograd.grad((gc * compgrad.from_numpy(v)).sum(), c, create_graph=True)
    (ggt,) = torch.autograd.grad((gt * torch.from_numpy(v)).sum(), t, create_graph=True)
    _close(ggc, ggt, 1e-10, 1e-10)
    if ggt.requires_grad:
        u = rng.standard_normal(_ZEROS.shape)
        (g3c,) = compgrad.autograd.grad((ggc * compgrad.from_numpy(u)).sum(), c)
        (g3t,) = torch.autograd.grad((ggt * torch.from_numpy(u)).sum(), t)
        _close(g3c, g3t, 1e-10, 1e-10)


def test_std_gradient_is_zero_on_constant_slices_like_torch():
    torch = pytest.importorskip("torch")
    data = [[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]
    ours = compgrad.tensor(data, requires_grad=True)
    theirs = torch.tensor(data, requires_grad=True)
    ours.std(dim=1).sum().backward()
    theirs.std(dim=1).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-7)
