"""Movement, rearranging and joining ops: what the registry sweep cannot express
(thin wrappers such as flatten/transpose/chunk, storage sharing of views, copies that
must not alias, ``contiguous`` returning ``self``, gradients through the autograd
engine with unused outputs of split/unbind)."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import compgrad.nn.functional as CF  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)
X1 = RNG.standard_normal((1, 3, 1)).astype(np.float32)


def _pair(a):
    a = np.asarray(a)
    return compgrad.from_numpy(a.copy()), torch.from_numpy(a.copy())


def _close(ours, theirs):
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            _close(o, t)
        return
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(np.asarray(ours._data), theirs.detach().numpy(), rtol=1e-6,
                               atol=1e-7)


def _lib(lib):
    return compgrad if lib == "c" else torch


# (name, input, f(lib, x)) for the functions that are thin wrappers over other ops
WRAPPERS = [
    ("flatten", X3, lambda L, x: L.flatten(x)),
    ("flatten-1-2", X3, lambda L, x: L.flatten(x, 1, 2)),
    ("flatten-method", X3, lambda L, x: x.flatten(0, 1)),
    ("flatten-0d", np.float32(2.0) * np.ones((), np.float32), lambda L, x: x.flatten()),
    ("unflatten", X3, lambda L, x: L.unflatten(x, -1, (2, -1))),
    ("unflatten-method", X3, lambda L, x: x.unflatten(1, (3, 1))),
    ("squeeze", X1, lambda L, x: L.squeeze(x)),
    ("squeeze-dim", X1, lambda L, x: x.squeeze(0)),
    ("squeeze-tuple", X1, lambda L, x: x.squeeze((0, 1, 2))),
    ("squeeze-varargs", X1, lambda L, x: x.squeeze(0, 2)),
    ("unsqueeze", X, lambda L, x: L.unsqueeze(x, -1)),
    ("unsqueeze-method", X, lambda L, x: x.unsqueeze(1)),
    ("transpose", X3, lambda L, x: L.transpose(x, 0, 2)),
    ("swapaxes", X3, lambda L, x: L.swapaxes(x, 0, 1)),
    ("swapdims", X3, lambda L, x: x.swapdims(-1, 1)),
    ("t", X, lambda L, x: L.t(x)),
    ("t-1d", X[0], lambda L, x: x.t()),
    ("T", X3, lambda L, x: x.T),
    ("mT", X3, lambda L, x: x.mT),
    ("permute-varargs", X3, lambda L, x: x.permute(2, 0, 1)),
    ("movedim", X3, lambda L, x: L.movedim(x, 0, -1)),
    ("movedim-tuple", X3, lambda L, x: x.movedim((0, 1), (2, 0))),
    ("moveaxis", X3, lambda L, x: L.moveaxis(x, (2,), (0,))),
    ("fliplr", X, lambda L, x: L.fliplr(x)),
    ("flipud", X, lambda L, x: x.flipud()),
    ("flip-varargs", X3, lambda L, x: x.flip(0, 2)),
    ("tile", X, lambda L, x: L.tile(x, (2,))),
    ("tile-method", X, lambda L, x: x.tile(2, 1, 2)),
    ("repeat-method", X, lambda L, x: x.repeat(2, 1, 3)),
    ("diag-1d", X[0], lambda L, x: L.diag(x, 1)),
    ("diag-2d", X, lambda L, x: L.diag(x, -1)),
    ("diag-method", X, lambda L, x: x.diag()),
    ("contiguous", X3, lambda L, x: x.transpose(0, 1).contiguous()),
    ("hstack", X, lambda L, x: L.hstack([x, x[:, :2]])),
    ("hstack-1d", X[0], lambda L, x: L.hstack((x, x))),
    ("vstack", X, lambda L, x: L.vstack([x, x[0]])),
    ("row_stack", X[0], lambda L, x: L.row_stack([x, x])),
    ("dstack", X, lambda L, x: L.dstack([x, x])),
    ("column_stack", X[0], lambda L, x: L.column_stack([x, x, x.reshape(4, 1)])),
    ("concat", X, lambda L, x: L.concat([x, x], dim=1)),
    ("concatenate", X, lambda L, x: L.concatenate([x, x], axis=1)),
    ("chunk", X, lambda L, x: L.chunk(x, 3, 1)),
    ("chunk-uneven", X[0], lambda L, x: x.chunk(3)),
    ("chunk-empty", X[:, :0], lambda L, x: x.chunk(2, 1)),
    ("tensor_split-n", X3, lambda L, x: L.tensor_split(x, 3, dim=2)),
    ("tensor_split-idx", X3, lambda L, x: x.tensor_split([1, 3], 2)),
    ("tensor_split-odd", X3, lambda L, x: x.tensor_split([3, 1, 9, -1], -1)),
    ("hsplit", X, lambda L, x: L.hsplit(x, 2)),
    ("hsplit-1d", X[0], lambda L, x: x.hsplit([1])),
    ("vsplit", X, lambda L, x: L.vsplit(x, [1, 2])),
    ("dsplit", X3, lambda L, x: L.dsplit(x, 2)),
    ("split-method", X, lambda L, x: x.split([1, 3], dim=1)),
    ("unbind-method", X, lambda L, x: x.unbind(1)),
    ("iter", X, lambda L, x: tuple(x)),
    ("pad-list", X, lambda L, x: (CF if L is compgrad else TF).pad(x, [1, 1])),
    ("roll-method", X, lambda L, x: x.roll((1, 2), (0, 1))),
    ("repeat_interleave-method", X, lambda L, x: x.repeat_interleave(2, 0)),
    ("repeat_interleave-flat", X, lambda L, x: L.repeat_interleave(x, 2)),
    ("tril-method", X, lambda L, x: x.tril(1)),
    ("triu-method", X, lambda L, x: x.triu(-1)),
    ("diag_embed-method", X, lambda L, x: x.diag_embed()),
    ("narrow-method", X, lambda L, x: x.narrow(1, 1, 2)),
    ("select-method", X, lambda L, x: x.select(0, -1)),
    ("diagonal-method", X3, lambda L, x: x.diagonal(0, -1, 0)),
    ("unfold-method", X, lambda L, x: x.unfold(1, 2, 2)),
    ("broadcast_to", X[0], lambda L, x: L.broadcast_to(x, (2, 4))),
]


@pytest.mark.parametrize("name,data,fn", WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_wrappers_match_torch(name, data, fn):
    c, t = _pair(data)
    _close(fn(compgrad, c), fn(torch, t))


# (name, f) for ops that return views in PyTorch
VIEWS = [
    ("reshape", lambda x: x.reshape(4, 3)),
    ("view", lambda x: x.view(12)),
    ("flatten", lambda x: x.flatten()),
    ("unflatten", lambda x: x.unflatten(1, (2, 2))),
    ("squeeze", lambda x: x.unsqueeze(0).squeeze(0)),
    ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("permute", lambda x: x.permute(1, 0)),
    ("transpose", lambda x: x.transpose(0, 1)),
    ("t", lambda x: x.t()),
    ("T", lambda x: x.T),
    ("mT", lambda x: x.mT),
    ("movedim", lambda x: x.movedim(0, 1)),
    ("narrow", lambda x: x.narrow(1, 1, 2)),
    ("select", lambda x: x.select(1, 2)),
    ("diagonal", lambda x: x.diagonal(1)),
    ("unfold", lambda x: x.unfold(1, 2, 2)),
    ("split", lambda x: x.split(2, 1)[1]),
    ("chunk", lambda x: x.chunk(2, 0)[0]),
    ("unbind", lambda x: x.unbind(1)[3]),
    ("tensor_split", lambda x: x.tensor_split([1], 1)[1]),
    ("iter", lambda x: next(iter(x))),
    ("contiguous-self", lambda x: x.contiguous()),
]


@pytest.mark.parametrize("name,fn", VIEWS, ids=[v[0] for v in VIEWS])
def test_views_share_storage(name, fn):
    c, t = _pair(X)
    yc, yt = fn(c), fn(t)
    assert yc._is_view or yc is c
    yc.mul_(10.0)
    yt.mul_(10.0)
    _close(c, t)
    c.add_(1.0)
    t.add_(1.0)
    _close(yc, yt)


# (name, f) for ops that copy in PyTorch: writes to the result must not reach the input
COPIES = [
    ("clone", lambda L, x: x.clone()),
    ("contiguous-copy", lambda L, x: x.t().contiguous()),
    ("flatten-noncontig", lambda L, x: x.t().flatten()),
    ("flip", lambda L, x: x.flip(0)),
    ("roll", lambda L, x: x.roll(1, 0)),
    ("repeat", lambda L, x: x.repeat(1, 1)),
    ("tile", lambda L, x: x.tile((1,))),
    ("repeat_interleave", lambda L, x: x.repeat_interleave(1, 0)),
    ("tril", lambda L, x: x.tril(5)),
    ("diag", lambda L, x: L.diag(x)),
    ("diag_embed", lambda L, x: L.diag_embed(x)),
    ("pad", lambda L, x: (CF if L is compgrad else TF).pad(x, (0, 0))),
    ("cat", lambda L, x: L.cat([x])),
    ("stack", lambda L, x: L.stack([x])),
    ("hstack", lambda L, x: L.hstack([x])),
]


@pytest.mark.parametrize("name,fn", COPIES, ids=[v[0] for v in COPIES])
def test_copies_do_not_alias(name, fn):
    c, t = _pair(X)
    yc, yt = fn(compgrad, c), fn(torch, t)
    assert not yc._is_view
    yc.mul_(0.0)
    yt.mul_(0.0)
    _close(c, t)
    np.testing.assert_array_equal(np.asarray(c._data), X)


def test_contiguous_returns_self_only_when_contiguous():
    c = compgrad.from_numpy(X.copy())
    assert c.contiguous() is c
    ct = c.t()
    y = ct.contiguous()
    assert y is not ct and y.is_contiguous() and not y._is_view


def test_view_of_view_shares_one_version_counter():
    c = compgrad.from_numpy(X.copy())
    v = c.t().narrow(0, 1, 2).select(1, 0)
    v.fill_(5.0)
    assert np.all(np.asarray(c._data)[0, 1:3] == 5.0)
    assert v._version_value == c._version_value == 1


@pytest.mark.parametrize("name", ["tril_", "triu_"])
def test_inplace_tril_triu(name):
    c, t = _pair(X)
    getattr(c, name)(1)
    getattr(t, name)(1)
    _close(c, t)


def _grad_pair(data, fn, cot_seed=1):
    """Gradient of <fn(x), cotangent> through both autograd engines."""
    c, t = _pair(data)
    c.requires_grad_()
    t.requires_grad_()
    outs_c, outs_t = fn(compgrad, c), fn(torch, t)
    outs_c = outs_c if isinstance(outs_c, (tuple, list)) else (outs_c,)
    outs_t = outs_t if isinstance(outs_t, (tuple, list)) else (outs_t,)
    rng = np.random.default_rng(cot_seed)
    loss_c, loss_t = None, None
    for oc, ot in zip(outs_c, outs_t):
        w = rng.standard_normal(tuple(ot.shape)).astype(np.float32)
        lc, lt = (oc * compgrad.from_numpy(w)).sum(), (ot * torch.from_numpy(w)).sum()
        loss_c = lc if loss_c is None else loss_c + lc
        loss_t = lt if loss_t is None else loss_t + lt
    loss_c.backward()
    loss_t.backward()
    np.testing.assert_allclose(np.asarray(c.grad._data), t.grad.numpy(), rtol=1e-5, atol=1e-5)


GRADS = [
    ("split-partial", X, lambda L, x: x.split([1, 2, 1], 1)[1]),
    ("split-two-of-three", X, lambda L, x: x.split(1, 0)[::2]),
    ("unbind-partial", X, lambda L, x: x.unbind(1)[2]),
    ("unbind-all", X, lambda L, x: x.unbind(0)),
    ("iter-sum", X, lambda L, x: sum(row * (i + 1) for i, row in enumerate(x))),
    ("chunk", X, lambda L, x: x.chunk(2, 1)[0]),
    ("tensor_split-overlap", X, lambda L, x: x.tensor_split([3, 1], 1)),
    ("cat-stack", X, lambda L, x: L.stack([L.cat([x, x.flip(0)], 1), L.cat([x.t().t(), x], 1)])),
    ("pad-reflect-2d", X3, lambda L, x: (CF if L is compgrad else TF).pad(
        x, (3, 2, 1, 2), mode="reflect")),
    ("pad-replicate-neg", X3, lambda L, x: (CF if L is compgrad else TF).pad(
        x, (-1, 3, 2, 0), mode="replicate")),
    ("pad-circular-neg", X3, lambda L, x: (CF if L is compgrad else TF).pad(
        x, (2, -1, -1, 1), mode="circular")),
    ("diagonal-offset", X3, lambda L, x: x.diagonal(2, 2, 1)),
    ("diag-2d", X, lambda L, x: L.diag(x, 1)),
    ("unfold-overlap", X3, lambda L, x: x.unfold(2, 3, 1)),
    ("repeat_interleave-tensor", X, lambda L, x: L.repeat_interleave(
        x, L.tensor([2, 0, 3]) if L is compgrad else torch.tensor([2, 0, 3]), dim=0)),
    ("tile", X, lambda L, x: x.tile(2, 1, 2)),
    ("hstack-vstack", X, lambda L, x: L.vstack([L.hstack([x, x]), L.hstack([x, x])])),
]


@pytest.mark.parametrize("name,data,fn", GRADS, ids=[g[0] for g in GRADS])
def test_gradients_through_autograd(name, data, fn):
    _grad_pair(data, fn)


ERRORS = [
    ("t-3d", X3, lambda L, x: x.t(), RuntimeError, "<= 2 dimensions, but self is 3D"),
    ("flatten-order", X3, lambda L, x: x.flatten(2, 1), RuntimeError, "cannot come after"),
    ("unflatten-sizes", X3, lambda L, x: x.unflatten(2, (3, 2)), RuntimeError,
     "don't multiply up to the size of dim 2 (4)"),
    ("unflatten-empty", X3, lambda L, x: x.unflatten(2, ()), RuntimeError, "non-empty"),
    ("squeeze-range", X3, lambda L, x: x.squeeze(3), IndexError, "Dimension out of range"),
    ("unsqueeze-range", X, lambda L, x: x.unsqueeze(3), IndexError, "Dimension out of range"),
    ("transpose-range", X, lambda L, x: x.transpose(0, 2), IndexError, "out of range"),
    ("movedim-count", X3, lambda L, x: x.movedim((0, 1), (1,)), RuntimeError,
     "same number of dims"),
    ("movedim-repeat", X3, lambda L, x: x.movedim((0, 1), (1, 1)), RuntimeError, "repeated dim"),
    ("fliplr-1d", X[0], lambda L, x: L.fliplr(x), RuntimeError, ">= 2-d"),
    ("diag-3d", X3, lambda L, x: L.diag(x), RuntimeError, "Supports 1D or 2D tensors. Got 3D"),
    ("chunk-0", X, lambda L, x: x.chunk(0), RuntimeError, "greater than 0"),
    ("tensor_split-0", X, lambda L, x: x.tensor_split(0), RuntimeError, "larger than 0"),
    ("hsplit-divisible", X, lambda L, x: L.hsplit(x, 3), RuntimeError, "not divisible"),
    ("vsplit-1d", X[0], lambda L, x: L.vsplit(x, 2), RuntimeError, "at least 2 dimension"),
    ("cat-tensor", X, lambda L, x: L.cat(x), TypeError, "tuple of Tensors"),
    ("cat-scalar", X, lambda L, x: L.cat([x, 1]), TypeError, "expected Tensor as element 1"),
    ("hstack-empty", X, lambda L, x: L.hstack([]), RuntimeError, "non-empty"),
    ("unbind-0d", X[0, 0], lambda L, x: x.unbind(), IndexError, "no dimensions"),
]


@pytest.mark.parametrize("name,data,fn,error,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_wrapper_errors_match_torch(name, data, fn, error, match):
    c, t = _pair(data)
    with pytest.raises(error, match=None) as info:
        fn(compgrad, c)
    assert match in str(info.value)
    with pytest.raises(error):
        fn(torch, t)


def test_cat_skips_legacy_empty_but_promotes_with_it():
    a, ta = _pair(np.zeros((0,), np.float64))
    b, tb = _pair(X)
    _close(compgrad.cat([a, b], 1), torch.cat([ta, tb], 1))
    _close(compgrad.cat([a, a]), torch.cat([ta, ta]))


def test_repeat_interleave_with_tensor_repeats():
    c, t = _pair(X)
    rc, rt = _pair(np.array([1, 0, 2, 1]))
    _close(compgrad.repeat_interleave(c, rc, dim=1), torch.repeat_interleave(t, rt, dim=1))
    _close(c.repeat_interleave(compgrad.tensor(2)), t.repeat_interleave(torch.tensor(2)))
