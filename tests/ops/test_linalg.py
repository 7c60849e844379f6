"""Focused tests for linalg / contract / norms / nnfunc: the compositions the registry
sweep cannot see (wrappers over several ops), gradients vs PyTorch, warnings, dropout."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import compgrad
import compgrad.nn.functional as CF
from ir import ops
from ir.samples import arr

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _run(fn_c, fn_t, *arrays, grad=True, rtol=1e-5, atol=1e-6):
    """Call both libraries on the same float arrays; compare values and input gradients."""
    cs = [compgrad.from_numpy(a.copy()) for a in arrays]
    ts = [torch.from_numpy(a.copy()) for a in arrays]
    if grad:
        for c, t in zip(cs, ts):
            if a_float(t):
                c.requires_grad_(True)
                t.requires_grad_(True)
    oc, ot = fn_c(*cs), fn_t(*ts)
    np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), rtol=rtol, atol=atol)
    assert str(ot.dtype).replace("torch.", "") == oc.dtype.name
    if grad:
        cot = np.random.default_rng(0).standard_normal(tuple(ot.shape)).astype(
            str(ot.dtype).replace("torch.", ""))
        (oc * compgrad.from_numpy(cot)).sum().backward()
        (ot * torch.from_numpy(cot)).sum().backward()
        for c, t in zip(cs, ts):
            if t.grad is not None:
                np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=1e-4,
                                           atol=1e-5)
    return oc


def a_float(t):
    return t.is_floating_point()


def _raises_like(fn_c, fn_t, exc, match):
    with pytest.raises(exc) as info:
        fn_c()
    assert match in str(info.value)
    with pytest.raises(exc):
        fn_t()


@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                   ((2, 2, 3), (3, 4)), ((2, 2, 3), (3,)), ((3,), (2, 3, 4)),
                                   ((2, 1, 2, 3), (3, 3, 4))])
def test_matmul_operator_and_grads(sa, sb):
    _run(lambda a, b: a @ b, lambda a, b: a @ b, arr(*sa), arr(*sb, seed=1))


def test_methods_and_aliases():
    a, b, v = arr(2, 3), arr(3, 4, seed=1), arr(3, seed=2)
    _run(lambda x, y: x.mm(y), lambda x, y: x.mm(y), a, b)
    _run(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), a, b)
    _run(lambda x, y: x.mv(y), lambda x, y: x.mv(y), a, v)
    _run(lambda x, y: x.dot(y), lambda x, y: x.dot(y), v, arr(3, seed=3))
    _run(compgrad.vdot, torch.vdot, v, arr(3, seed=3))
    _run(lambda x, y: x.vdot(y), lambda x, y: x.vdot(y), v, arr(3, seed=3))
    _run(compgrad.ger, torch.ger, v, arr(2, seed=3))
    _run(lambda x, y: x.outer(y), lambda x, y: x.outer(y), v, arr(2, seed=3))
    _run(lambda x, y: x.bmm(y), lambda x, y: x.bmm(y), arr(2, 2, 3), arr(2, 3, 4, seed=1))
    _run(lambda c, x, y: c.addmm(x, y, beta=0.5), lambda c, x, y: c.addmm(x, y, beta=0.5),
         arr(2, 4), a, b)
    _run(lambda c, x, y: c.baddbmm(x, y, alpha=2), lambda c, x, y: c.baddbmm(x, y, alpha=2),
         arr(2, 2, 4), arr(2, 2, 3), arr(2, 3, 4, seed=1))
    _run(lambda c, x, y: c.addmv(x, y), lambda c, x, y: c.addmv(x, y), arr(2), a, v)


def test_addmm_inplace():
    c, a, b = arr(2, 4), arr(2, 3, seed=1), arr(3, 4, seed=2)
    x = compgrad.from_numpy(c.copy())
    r = x.addmm_(compgrad.from_numpy(a), compgrad.from_numpy(b), alpha=2.0)
    assert r is x
    expected = torch.from_numpy(c.copy()).addmm_(torch.from_numpy(a), torch.from_numpy(b),
                                                 alpha=2.0)
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims,sb", [(2, (4, 5, 2)), (1, (5, 2)), (0, (2, 2)),
                                     (([1, 2], [0, 1]), (4, 5, 2)), (([2], [1]), (2, 5)),
                                     ([[0], [2]], (2, 2, 3)),
                                     (([-1, 0], [0, 1]), (5, 3))])
def test_tensordot(dims, sb):
    _run(lambda x, y: compgrad.tensordot(x, y, dims=dims),
         lambda x, y: torch.tensordot(x, y, dims=dims), arr(3, 4, 5), arr(*sb, seed=1))


def test_tensordot_errors():
    a, b = arr(3, 4, 5), arr(4, 5, 6, seed=1)
    ca, cb, ta, tb = compgrad.from_numpy(a), compgrad.from_numpy(b), torch.from_numpy(a), \
        torch.from_numpy(b)
    _raises_like(lambda: compgrad.tensordot(ca, cb, -1), lambda: torch.tensordot(ta, tb, -1),
                 RuntimeError, "tensordot expects dims >= 0, but got dims=-1")
    _raises_like(lambda: compgrad.tensordot(ca, cb, ([1, 2], [0])),
                 lambda: torch.tensordot(ta, tb, ([1, 2], [0])),
                 RuntimeError, "both dimension lists should have same length")
    _raises_like(lambda: compgrad.tensordot(ca, cb, ([1], [1])),
                 lambda: torch.tensordot(ta, tb, ([1], [1])), RuntimeError,
                 "contracted dimensions need to match, but first has size 4 in dim 1 and second "
                 "has size 5 in dim 1")


@pytest.mark.parametrize("kwargs", [{}, {"ord": 1}, {"ord": "fro"}, {"ord": math.inf},
                                    {"ord": -1}, {"ord": -math.inf}, {"dim": 1},
                                    {"ord": 3, "dim": 1}, {"dim": (0, 1), "ord": 1},
                                    {"dim": (1, 0), "ord": math.inf, "keepdim": True},
                                    {"ord": "fro", "dim": (0, 1), "keepdim": True}])
def test_linalg_norm_matrix(kwargs):
    _run(lambda x: compgrad.linalg.norm(x, **kwargs), lambda x: torch.linalg.norm(x, **kwargs),
         arr(3, 4))


def test_linalg_norm_vectors_and_batches():
    _run(lambda x: compgrad.linalg.norm(x), lambda x: torch.linalg.norm(x), arr(2, 3, 4))
    _run(lambda x: compgrad.linalg.norm(x, 3), lambda x: torch.linalg.norm(x, 3), arr(5))
    _run(lambda x: compgrad.linalg.matrix_norm(x, 1), lambda x: torch.linalg.matrix_norm(x, 1),
         arr(2, 3, 4))
    _run(lambda x: compgrad.linalg.vector_norm(x, 2, (0, 2)),
         lambda x: torch.linalg.vector_norm(x, 2, (0, 2)), arr(2, 3, 4))


def test_linalg_norm_errors():
    c3, t3 = compgrad.from_numpy(arr(2, 3, 4)), torch.from_numpy(arr(2, 3, 4))
    c2, t2 = compgrad.from_numpy(arr(3, 4)), torch.from_numpy(arr(3, 4))
    _raises_like(lambda: compgrad.linalg.norm(c3, ord=1), lambda: torch.linalg.norm(t3, ord=1),
                 RuntimeError, "If dim is not specified but ord is, the input must be 1D or 2D. "
                 "Got 3D.")
    _raises_like(lambda: compgrad.linalg.norm(c2, ord=3), lambda: torch.linalg.norm(t2, ord=3),
                 RuntimeError, "linalg.matrix_norm: Order 3 not supported.")
    _raises_like(lambda: compgrad.linalg.norm(c2, ord="fro", dim=1),
                 lambda: torch.linalg.norm(t2, ord="fro", dim=1),
                 RuntimeError, "dim must be a 2-tuple")
    _raises_like(lambda: compgrad.linalg.norm(c2, dim=(0, 1, 1)),
                 lambda: torch.linalg.norm(t2, dim=(0, 1, 1)),
                 RuntimeError, "it must be of length 1 or 2")
    with pytest.raises(NotImplementedError):
        compgrad.linalg.norm(c2, ord="nuc")


def test_vector_norm_zero_gradient_is_finite():
    for ord in (2, 3, 1.5, math.inf):
        x = np.zeros((2, 3), dtype=np.float32)
        x[1] = [1.0, -2.0, 0.5]
        _run(lambda t, o=ord: compgrad.linalg.vector_norm(t, o, dim=1),
             lambda t, o=ord: torch.linalg.vector_norm(t, o, dim=1), x)


def test_linear():
    x, w, b = arr(2, 3), arr(4, 3, seed=1), arr(4, seed=2)
    _run(CF.linear, TF.linear, x, w)
    _run(CF.linear, TF.linear, x, w, b)
    _run(CF.linear, TF.linear, arr(2, 5, 3), w, b)
    _run(CF.linear, TF.linear, arr(3), w, b)
    _run(CF.linear, TF.linear, arr(3), arr(3, seed=1))
    cx, cw = compgrad.from_numpy(arr(2, 2, 3)), compgrad.from_numpy(arr(4, 5))
    _raises_like(lambda: CF.linear(cx, cw),
                 lambda: TF.linear(torch.from_numpy(arr(2, 2, 3)), torch.from_numpy(arr(4, 5))),
                 RuntimeError, "mat1 and mat2 shapes cannot be multiplied (4x3 and 5x4)")


def test_normalize_cosine_pairwise():
    _run(CF.normalize, TF.normalize, arr(3, 4))
    _run(lambda x: CF.normalize(x, p=1.0, dim=0), lambda x: TF.normalize(x, p=1.0, dim=0),
         arr(3, 4))
    _run(lambda x: CF.normalize(x, dim=0), lambda x: TF.normalize(x, dim=0), arr(4))
    _run(CF.cosine_similarity, TF.cosine_similarity, arr(3, 4), arr(3, 4, seed=1))
    _run(CF.cosine_similarity, TF.cosine_similarity, arr(2, 3), arr(3, seed=1))
    _run(lambda a, b: CF.cosine_similarity(a, b, dim=0),
         lambda a, b: TF.cosine_similarity(a, b, dim=0), arr(3), arr(3, seed=1))
    _run(CF.pairwise_distance, TF.pairwise_distance, arr(3, 4), arr(3, 4, seed=1))
    _run(lambda a, b: CF.pairwise_distance(a, b, p=1.0, keepdim=True),
         lambda a, b: TF.pairwise_distance(a, b, p=1.0, keepdim=True), arr(3, 4), arr(4, seed=1))
    _run(CF.pairwise_distance, TF.pairwise_distance, arr(), arr(seed=1))
    i1, i2 = np.ones((2, 3), np.int64), np.zeros((2, 3), np.int64)
    _run(CF.pairwise_distance, TF.pairwise_distance, i1, i2, grad=False)
    _raises_like(lambda: CF.cosine_similarity(compgrad.from_numpy(i1), compgrad.from_numpy(i2)),
                 lambda: TF.cosine_similarity(torch.from_numpy(i1), torch.from_numpy(i2)),
                 RuntimeError, "expected common dtype to be floating point")


def test_softmax_default_dim_warns():
    for shape, dim in (((3,), 0), ((3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4, 5), 1)):
        x = compgrad.from_numpy(arr(*shape))
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            y = CF.softmax(x)
        np.testing.assert_allclose(y.numpy(), TF.softmax(torch.from_numpy(arr(*shape)),
                                                          dim).numpy(), rtol=1e-6)
    with pytest.warns(UserWarning, match="log_softmax"):
        CF.log_softmax(compgrad.from_numpy(arr(3, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compgrad.softmax(compgrad.from_numpy(arr(3, 4)), 1)
        compgrad.from_numpy(arr(3, 4)).log_softmax(-1)


def test_softmax_double_backward():
    x = arr(3, 4)
    cx, tx = compgrad.from_numpy(x).requires_grad_(True), torch.from_numpy(x).requires_grad_(True)
    for lib, t, f in ((compgrad, cx, CF.log_softmax), (torch, tx, TF.log_softmax)):
        y = (f(t, 1) ** 2).sum()
        (g,) = lib.autograd.grad(y, t, create_graph=True)
        (g * g).sum().backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_one_hot_infers_classes():
    idx = np.array([[0, 3], [2, 2]])
    np.testing.assert_array_equal(CF.one_hot(compgrad.from_numpy(idx)).numpy(),
                                  TF.one_hot(torch.from_numpy(idx)).numpy())
    _raises_like(lambda: CF.one_hot(compgrad.from_numpy(np.array([1, -1]))),
                 lambda: TF.one_hot(torch.from_numpy(np.array([1, -1]))),
                 RuntimeError, "Class values must be non-negative.")


@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_grads(padding_idx):
    idx = np.array([[0, 1, 3], [1, 1, 2]])
    w = arr(4, 3)
    ci, ti = compgrad.from_numpy(idx), torch.from_numpy(idx)
    _run(lambda x: CF.embedding(ci, x, padding_idx=padding_idx),
         lambda x: TF.embedding(ti, x, padding_idx=padding_idx), w)
    with pytest.raises(NotImplementedError):
        CF.embedding(ci, compgrad.from_numpy(w), max_norm=1.0)


def test_dropout():
    gen = compgrad.Generator().manual_seed(0)
    x = compgrad.from_numpy(np.ones((200, 50), np.float32)).requires_grad_(True)
    y = ops.dropout(x, 0.3, True, generator=gen)
    vals = np.unique(y.detach().numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    kept = float((y.detach().numpy() != 0).mean())
    assert abs(kept - 0.7) < 0.03
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy())  # grad = mask / (1 - p)
    # the same seed gives the same mask
    y2 = ops.dropout(x, 0.3, True, generator=compgrad.Generator().manual_seed(0))
    np.testing.assert_array_equal(y.detach().numpy(), y2.detach().numpy())
    assert ops.dropout(x, 0.3, False, generator=gen) is x
    assert float(ops.dropout(x, 1.0, True, generator=gen).detach().numpy().sum()) == 0.0
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        ops.dropout(x, 1.5, True, generator=gen)
    with pytest.raises(RuntimeError, match="can't be cast"):
        ops.dropout(compgrad.from_numpy(np.ones(3, np.int64)), 0.5, True, generator=gen)
