"""VJP rules read saved inputs only when a wanted gradient needs them, as PyTorch's
derivative formulas save only what they use: a second backward without
``retain_graph`` and in-place writes to inputs backward does not need behave as in torch."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad

torch = pytest.importorskip("torch")

X = np.arange(1.0, 7.0).reshape(2, 3)


def _outcome(lib, fn):
    """fn's result (gradients as lists), or the kind of error it raised."""
    try:
        out = fn(lib)
    except RuntimeError as e:
        msg = str(e)
        if "backward through the graph a second time" in msg:
            return "freed"
        if "modified by an inplace operation" in msg:
            return "modified"
        raise
    return [None if t is None else np.asarray(t.tolist()) for t in out]


def _same(fn):
    ours, theirs = _outcome(compgrad, fn), _outcome(torch, fn)
    if isinstance(theirs, str) or isinstance(ours, str):
        assert ours == theirs
        return ours
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6)
    return ours


# compgrad is more permissive than torch in two places, not tested here: a Python scalar
# operand stays saved after backward (torch frees its wrapped-number tensor, so a second
# backward through ``x * 2`` raises there), and gather's backward reads only the input's
# shape (torch saves the input itself).


def _twice(f):
    """Backward twice through the graph of ``f(x)`` (a scalar), without retain_graph."""
    def run(lib):
        x = lib.tensor(X.copy(), requires_grad=True)
        y = f(lib, x)
        y.backward()
        y.backward()
        return [x.grad]
    return run


@pytest.mark.parametrize("f", [
    lambda m, x: x.sum(),
    lambda m, x: (x + x).sum(),
    lambda m, x: (x - 1).mean(),
    lambda m, x: x.reshape(3, 2).sum(),
    lambda m, x: x[:1].expand(4, 3).sum(),
    lambda m, x: x.t().sum(),
    lambda m, x: x.transpose(0, 1).reshape(6)[1:].sum(),
    lambda m, x: m.cat([x, x], 0).sum(),
], ids=["sum", "add", "sub_mean", "reshape", "expand", "t", "transpose_slice", "cat"])
def test_second_backward_without_saved_tensors_works(f):
    grads = _same(_twice(f))
    assert not isinstance(grads, str)


@pytest.mark.parametrize("f", [
    lambda m, x: (x * x).sum(),
    lambda m, x: x.exp().sum(),
    lambda m, x: (x * m.ones(2, 3)).sum(),
    lambda m, x: x.prod(),
    lambda m, x: (x @ m.ones(3, 2, dtype=x.dtype)).sum(),
], ids=["mul", "exp", "mul_constant", "prod", "matmul"])
def test_second_backward_with_saved_tensors_raises(f):
    assert _same(_twice(f)) == "freed"


def _write_after(f, target):
    """Record ``f``, write in place into one of its tensors (``target`` names it), then
    backward."""
    def run(lib):
        x = lib.tensor(X.copy(), requires_grad=True)
        a = x * 1                              # a non-leaf that requires grad
        w = lib.tensor(X.copy() + 1)           # a constant
        idx = lib.tensor([1, 0, 1])
        out = f(lib, a, w, idx)
        t = {"a": a, "w": w, "out": out, "idx": idx}[target]
        t.add_(1)
        out.sum().backward()
        return [x.grad]
    return run


@pytest.mark.parametrize("f,target", [
    (lambda m, a, w, i: a * 2, "a"),
    (lambda m, a, w, i: a + 1, "a"),
    (lambda m, a, w, i: a * w, "a"),              # only w is needed (for a's gradient)
    (lambda m, a, w, i: w * a, "a"),
    (lambda m, a, w, i: a / w, "a"),
    (lambda m, a, w, i: a @ w.t(), "a"),
    (lambda m, a, w, i: a.exp(), "a"),            # exp reads its result only
    (lambda m, a, w, i: a.index_select(1, i), "a"),
    (lambda m, a, w, i: m.where(w > 3, a, w), "a"),
    (lambda m, a, w, i: a.sum(1), "a"),
    (lambda m, a, w, i: a.reshape(6).clone(), "a"),
], ids=["mul_scalar", "add", "mul_a", "rmul_a", "div_a", "matmul_a", "exp", "index_select",
        "where", "sum", "reshape_clone"])
def test_write_into_an_input_backward_does_not_need(f, target):
    grads = _same(_write_after(f, target))
    assert not isinstance(grads, str)


@pytest.mark.parametrize("f,target", [
    (lambda m, a, w, i: a * w, "w"),
    (lambda m, a, w, i: a @ w.t(), "w"),
    (lambda m, a, w, i: a / w, "w"),
    (lambda m, a, w, i: a.sin(), "a"),
    (lambda m, a, w, i: a.exp(), "out"),
    (lambda m, a, w, i: a * a, "a"),
    (lambda m, a, w, i: a.index_select(1, i), "idx"),
], ids=["mul_w", "matmul_w", "div_w", "sin", "exp_out", "square", "index"])
def test_write_into_a_needed_input_raises(f, target):
    assert _same(_write_after(f, target)) == "modified"


def test_embedding_weight_written_under_no_grad():
    def run(lib):
        w = lib.tensor(X.copy(), requires_grad=True)
        idx = lib.tensor([[0, 1], [1, 1]])
        out = lib.nn.functional.embedding(idx, w)
        with lib.no_grad():
            w.mul_(3)                          # embedding's backward needs the indices only
        (out * out.detach()).sum().backward()
        return [w.grad]

    grads = _same(run)
    assert not isinstance(grads, str)
