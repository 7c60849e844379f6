"""The symbolic backward is derived once per forward structure (DESIGN.md, "A compiled
call") and replayed on later calls: same gradients, same errors, no derivation when
hooks call back into Python."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from tests.compile._common import assert_same


def _inputs(seed: int):
    rng = np.random.default_rng(seed)
    x = compgrad.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = compgrad.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    return x, w


def _step(x, w):
    y = (x @ w).tanh()
    loss = (y * y).mean()
    loss.backward()
    return loss.detach(), w.grad


def test_a_repeated_forward_derives_its_backward_once():
    cf = compgrad.compile(_step, backend="interpret")
    for seed in range(4):
        assert_same(_step(*_inputs(seed)), cf(*_inputs(seed)))
    cache = cf._backward_cache
    assert (cache.misses, cache.hits) == (1, 3)


def test_a_different_forward_derives_again():
    def f(x, w, square):
        y = x @ w
        loss = (y * y).sum() if square else y.sum()
        loss.backward()
        return w.grad

    cf = compgrad.compile(f, backend="interpret")
    for square in (True, False, True, False):
        assert_same(f(*_inputs(1), square), cf(*_inputs(1), square))
    assert (cf._backward_cache.misses, cf._backward_cache.hits) == (2, 2)


def test_a_replayed_backward_still_checks_saved_values():
    def f(x, w):
        h = x * 2
        loss = (h * w.sum()).sum()
        h.add_(1)             # h is saved by the mul's VJP: backward must refuse
        loss.backward()

    cf = compgrad.compile(f, backend="interpret")
    for _ in range(3):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            cf(*_inputs(2))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        f(*_inputs(2))


def test_a_second_backward_through_a_freed_graph_raises_on_replay():
    def f(x, w):
        loss = (x @ w).tanh().sum()
        loss.backward()
        loss.backward()

    cf = compgrad.compile(f, backend="interpret")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            cf(*_inputs(3))


def test_hooks_run_on_every_call():
    seen = []

    def f(x, w):
        y = x @ w
        y.register_hook(lambda g: seen.append(1) or g * 2)
        y.sum().backward()
        return w.grad

    cf = compgrad.compile(f, backend="interpret")
    for _ in range(3):
        assert_same(f(*_inputs(4)), cf(*_inputs(4)))
    assert len(seen) == 6
    assert cf._backward_cache.hits == 0
