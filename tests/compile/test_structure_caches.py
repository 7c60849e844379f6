"""What a compiled call caches per structure (to record less each call) is what it
would have computed afresh: a replayed backward's segment key equals the key of its
nodes built from scratch."""

from __future__ import annotations

import importlib

import numpy as np

import compgrad
from compgrad.compile.segment import segment_key
from tests.compile._common import assert_same

_api = importlib.import_module("compgrad.compile.api")


def _inputs(seed: int):
    rng = np.random.default_rng(seed)
    x = compgrad.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = compgrad.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    seed_grad = compgrad.tensor(rng.standard_normal((4, 2)).astype(np.float32))
    return x, w, seed_grad


def _step(x, w, seed_grad):
    y = (x @ w).tanh() * 3
    y.backward(seed_grad)            # the seed: an outside value only the backward reads
    with compgrad.no_grad():
        w.sub_(w.grad * 0.1)
    return y.detach(), w.grad


def test_a_replayed_backward_keys_its_nodes_as_extend_would(monkeypatch):
    run_segment = _api.CompiledFunction._run_segment
    checked = []

    def checking(self, trace, nodes, outputs, writes, reason):
        assert trace.segment_keys().key(outputs, writes) == segment_key(nodes, outputs, writes)
        checked.append(reason)
        return run_segment(self, trace, nodes, outputs, writes, reason)

    monkeypatch.setattr(_api.CompiledFunction, "_run_segment", checking)
    cf = compgrad.compile(_step, backend="interpret")
    for seed in range(4):
        assert_same(_step(*_inputs(seed)), cf(*_inputs(seed)))
    assert len(checked) == 4
    assert cf._backward_cache.hits == 3
    assert cf.explain().program_count == 1


def test_a_leaf_the_root_does_not_reach_gets_no_grad():
    # (every leaf of the call is differentiated: one off the root's paths gets None)
    def step(x, w, v):
        other = v.mul(2).sum()   # a leaf read before the backward, not by the loss
        (x @ w).sum().backward()
        return w.grad, v.grad, other.detach()

    def fresh():
        x, w, _ = _inputs(0)
        v = compgrad.tensor(np.ones(3, np.float32), requires_grad=True)
        return x, w, v

    cf = compgrad.compile(step, backend="interpret")
    for _ in range(3):
        want, got = step(*fresh()), cf(*fresh())
        assert got[1] is None and want[1] is None
        assert_same(want[0], got[0])
        assert_same(want[2], got[2])
