"""Writes that land without a copy: computed by the program into the written tensor's own
storage (codegen.inplace), or handed over (trace._hand_over: at the end of a compiled
call, a parameter or optimizer buffer written in place takes the kernel's result buffer
and the program's pool takes its old storage). Only where nothing can
tell: every alias of the storage the user or the call holds must still see the write,
and no result the user holds may share memory with the parameter."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn
from codegen import buffers, runtime

from ._common import assert_same, class_batch, to_np, train_step

ATOL = 1e-6   # products and sums in another order than eagerly

# large enough for the buffer pool (below POOL_MIN_BYTES results are plain arrays)
N_IN, N_OUT = 256, 512
assert N_IN * N_OUT * 4 >= buffers.POOL_MIN_BYTES


def _model(seed: int = 0):
    compgrad.manual_seed(seed)
    return nn.Linear(N_IN, N_OUT)


def _batch(seed: int):
    return class_batch(8, N_IN, N_OUT, seed)


@pytest.fixture
def count_exchanges(monkeypatch):
    """How many writes landed by exchanging buffers."""
    done = []
    original = buffers.BufferPool.exchange

    def exchange(self, buf, other):
        ok = original(self, buf, other)
        done.append(ok)
        return ok

    monkeypatch.setattr(buffers.BufferPool, "exchange", exchange)
    return done


@pytest.fixture
def count_inplace(monkeypatch):
    """Per mutation a compiled program returned: whether its value is its target's own
    array (the update was written in place, codegen.inplace)."""
    done = []
    original = runtime.CompiledProgram.run

    def run(self, args, inplace=()):
        outs, muts = original(self, args, inplace)
        position = {v: i for i, v in enumerate(self.graph.inputs)}
        done.extend(m is args[position[mu.target]]
                    for m, mu in zip(muts, self.graph.mutations) if mu.field == "data")
        return outs, muts

    monkeypatch.setattr(runtime.CompiledProgram, "run", run)
    return done


def _pair():
    """The same model and optimizer twice: eager and compiled."""
    runs = []
    for _ in range(2):
        model = _model()
        runs.append((model, compgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)))
    return runs


def test_a_training_loop_lands_its_large_writes_without_copies_and_matches_eager(
        count_exchanges, count_inplace):
    (m_e, o_e), (m_c, o_c) = _pair()
    step = compgrad.compile(train_step)
    weight_ids = set()
    for i in range(6):
        x, y = _batch(i)
        assert_same(train_step(m_e, o_e, x, y), step(m_c, o_c, x, y), atol=ATOL)
        weight_ids.add(id(m_c.weight))
        assert_same(m_e.weight, m_c.weight, atol=ATOL, msg=f"step {i}")
        assert_same(m_e.bias, m_c.bias, atol=ATOL)
        assert_same(o_e.state[m_e.weight]["momentum_buffer"],
                    o_c.state[m_c.weight]["momentum_buffer"], atol=ATOL)
    # the weight and its momentum buffer: written into their own storage by the program
    # (codegen.inplace) at every step once the program runs
    assert count_inplace.count(True) >= 2 * 4
    assert weight_ids == {id(m_c.weight)}   # the Parameter object stays the same


def test_a_numpy_array_of_the_parameter_still_sees_the_update(count_exchanges):
    (m_e, o_e), (m_c, o_c) = _pair()
    step = compgrad.compile(train_step)
    x, y = _batch(0)
    step(m_c, o_c, x, y)
    train_step(m_e, o_e, x, y)
    held = m_c.weight.detach().numpy()     # shares the parameter's storage
    for i in range(1, 3):
        x, y = _batch(i)
        step(m_c, o_c, x, y)
        train_step(m_e, o_e, x, y)
        np.testing.assert_array_equal(held, to_np(m_c.weight))
        assert_same(m_e.weight, m_c.weight, atol=ATOL)


def test_a_view_made_outside_the_call_still_sees_the_update():
    (m_e, o_e), (m_c, o_c) = _pair()
    step = compgrad.compile(train_step)
    views = (m_e.weight.detach().t(), m_c.weight.detach().t())
    for i in range(3):
        x, y = _batch(i)
        train_step(m_e, o_e, x, y)
        step(m_c, o_c, x, y)
        assert_same(views[0], views[1], atol=ATOL, msg=f"step {i}")
        np.testing.assert_array_equal(to_np(views[1]), to_np(m_c.weight).T)


@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_a_result_holding_the_written_value_does_not_share_the_parameter_memory(mode):
    rng = np.random.default_rng(0)
    w = compgrad.tensor(rng.standard_normal((N_OUT, N_IN)).astype(np.float32))

    def write_and_return(x):     # w captured, so that the step can be replayed
        with compgrad.no_grad():
            new = w * 0.5 + x
            w.copy_(new)
        return new

    step = compgrad.compile(write_and_return, mode=mode)
    for _ in range(6):
        x = compgrad.tensor(rng.standard_normal((N_OUT, N_IN)).astype(np.float32))
        before = to_np(w)
        new = step(x)
        np.testing.assert_allclose(to_np(new), before * 0.5 + to_np(x), rtol=1e-6)
        np.testing.assert_array_equal(to_np(w), to_np(new))
        written = to_np(w)
        new.add_(1.0)          # the result is its own tensor: the parameter keeps its value
        np.testing.assert_array_equal(to_np(w), written)
    if mode is not None:
        assert step.explain().replays >= 2


def test_an_earlier_result_is_not_overwritten_by_the_next_call():
    def scale(w):
        with compgrad.no_grad():
            w.mul_(2.0)
        return w.detach().clone()

    step = compgrad.compile(scale)
    w = compgrad.ones(N_OUT, N_IN)
    results = [step(w) for _ in range(4)]
    for i, r in enumerate(results):
        np.testing.assert_array_equal(to_np(r), np.full((N_OUT, N_IN), 2.0 ** (i + 1)))
    np.testing.assert_array_equal(to_np(w), np.full((N_OUT, N_IN), 16.0))


def test_replayed_steps_land_their_writes_without_copies(count_exchanges, count_inplace):
    # the program also exports the written weight and momentum buffer (the traced call's
    # tensors): a replay hands those outputs out nowhere, so the writes are computed in
    # place rather than copied
    (m_e, o_e), (m_c, o_c) = _pair()
    step = compgrad.compile(train_step, mode="reduce-overhead")
    for i in range(8):
        x, y = _batch(i)
        if i == 5:
            count_exchanges.clear()   # replays from here on
            count_inplace.clear()
        assert_same(train_step(m_e, o_e, x, y), step(m_c, o_c, x, y), atol=ATOL)
        assert_same(m_e.weight, m_c.weight, atol=ATOL, msg=f"step {i}")
        assert_same(o_e.state[m_e.weight]["momentum_buffer"],
                    o_c.state[m_c.weight]["momentum_buffer"], atol=ATOL)
    assert step.explain().replays >= 3
    assert count_inplace.count(True) >= 2 * 3

