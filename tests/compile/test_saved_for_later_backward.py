"""A compiled call whose results leave it with a history keeps, for their backward, what
a min-cut chooses (compgrad/compile/saving.py): fewer values than eager autograd saves,
the rest recomputed in front of the backward; the gradients stay eager's, and an input
modified in place before a backward that would recompute from it raises."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import nn
from tests.compile._common import BACKENDS, assert_same


def _mlp(seed: int):
    compgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32),
                         nn.GELU(approximate="tanh"), nn.Linear(32, 4))


def _x(seed: int, requires_grad: bool = False):
    data = np.random.default_rng(seed).standard_normal((8, 16)).astype(np.float32)
    return compgrad.tensor(data, requires_grad=requires_grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_forward_keeps_only_the_cut(backend):
    eager, model = _mlp(0), _mlp(0)
    compiled = compgrad.compile(model, backend=backend)
    for seed in range(3):
        x1, x2 = _x(seed, True), _x(seed, True)
        out1, out2 = eager(x1), compiled(x2)
        assert_same(out1, out2, atol=1e-6)
        (out1 * out1).sum().backward()
        (out2 * out2).sum().backward()
        assert_same(x1.grad, x2.grad, atol=1e-5)
        for p, q in zip(eager.parameters(), model.parameters()):
            assert_same(p.grad, q.grad, atol=1e-5)
    fn = compiled._compiled_call
    program = fn.programs[fn._order[0]]   # the forward (the backward is a program too)
    # the output and the two activations the backward cannot recompute cheaply
    # (tanh's output and the product GELU reads): not every intermediate
    assert [tuple(v.type.shape) for v in program.graph.outputs] == [(8, 4), (8, 32), (8, 32)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_recomputation_reads_inputs_that_must_be_unchanged(backend):
    def f(x, w):
        # exp's output (30 values) costs more to keep than x (6): x is kept and the
        # backward recomputes exp from it
        return (x.expand(5, 6).exp() * w).sum()

    cf = compgrad.compile(f, backend=backend)
    x = compgrad.tensor(np.linspace(-1, 1, 6, dtype=np.float32))
    w = compgrad.tensor(np.ones((5, 6), np.float32), requires_grad=True)
    out = cf(x, w)
    program = cf.programs[cf._order[0]]
    assert [tuple(v.type.shape) for v in program.graph.outputs] == [()]
    out.backward()
    assert_same(w.grad, x.expand(5, 6).exp(), atol=1e-6)
    w.grad = None
    out = cf(x, w)
    with compgrad.no_grad():
        x.add_(1)
    # eagerly exp's output was saved and this backward would run; recomputing from the
    # changed x would be wrong, so it raises (as torch.compile's partitioner does)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saved_intermediate_needs_no_unchanged_input(backend):
    def f(x, w):
        return ((x * 2).tanh() * w).sum()   # tanh's output is kept: x is not read again

    cf = compgrad.compile(f, backend=backend)
    x = compgrad.tensor(np.linspace(-1, 1, 6, dtype=np.float32))
    w = compgrad.tensor(np.ones(6, np.float32), requires_grad=True)
    want = compgrad.tanh(x * 2)
    out = cf(x, w)
    with compgrad.no_grad():
        x.add_(1)
    out.backward()
    assert_same(w.grad, want, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_output_with_a_history_is_freed_without_the_cyclic_gc(backend):
    # a cycle (output -> grad_fn -> region -> trace -> output) would keep the call's
    # arrays alive until a collection, and the buffer pool could not reuse them
    import gc
    import weakref

    cf = compgrad.compile(lambda x, w: (x @ w).tanh(), backend=backend)
    x = compgrad.tensor(np.ones((4, 3), np.float32))
    w = compgrad.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    gc.disable()
    try:
        out = cf(x, w)
        ref = weakref.ref(out)
        del out
        assert ref() is None
    finally:
        gc.enable()
