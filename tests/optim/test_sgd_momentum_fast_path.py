"""SGD's momentum update without Tensor-method dispatch (compgrad.optim.sgd._momentum_step)
gives what the three in-place calls give: the same bits, storage and version counts; and
it steps aside wherever those calls would do something it does not."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
import compgrad.optim.sgd as sgd_module


def _run(monkeypatch, fast: bool, shape=(300, 7), steps=4, **hyper):
    real = sgd_module._momentum_step
    taken = []

    def spy(*args):
        done = real(*args) if fast else False
        taken.append(done)
        return done

    monkeypatch.setattr(sgd_module, "_momentum_step", spy)
    rng = np.random.default_rng(0)
    w = compgrad.from_numpy(rng.standard_normal(shape).astype(np.float32))
    w.requires_grad_(True)
    storage = w._data
    opt = compgrad.optim.SGD([w], **hyper)
    versions = []
    for _ in range(steps):
        w.grad = compgrad.from_numpy(rng.standard_normal(shape).astype(np.float32))
        opt.step()
        buf = opt.state[w]["momentum_buffer"]
        versions.append((w._version[0], buf._version[0]))
    monkeypatch.undo()
    assert w._data is storage   # updated in place
    return w.detach().numpy().copy(), buf.numpy().copy(), versions, taken


@pytest.mark.parametrize("hyper", [
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.2},
    {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1},
    {"lr": 0.01, "momentum": 0.9, "maximize": True},
    {"lr": 1, "momentum": 0.9, "dampening": 0},
])
def test_the_fast_update_matches_the_three_calls(monkeypatch, hyper):
    w1, b1, v1, fast = _run(monkeypatch, True, **hyper)
    w2, b2, v2, generic = _run(monkeypatch, False, **hyper)
    assert fast == [True] * 3 and generic == [False] * 3   # the first step sets buf
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(b1, b2)
    assert v1 == v2


def test_nesterov_and_grad_mode_take_the_generic_path(monkeypatch):
    *_, taken = _run(monkeypatch, True, lr=0.1, momentum=0.9, nesterov=True)
    assert taken == []   # nesterov never asks
    w = compgrad.ones(3, requires_grad=True)
    buf = compgrad.zeros(3)
    with compgrad.enable_grad():
        assert not sgd_module._momentum_step(w, buf, compgrad.ones(3), 0.9, 1, -0.1)
    with compgrad.no_grad():
        # a factor that is a tensor, a shared buffer: the generic calls handle them
        assert not sgd_module._momentum_step(w, buf, compgrad.ones(3),
                                             compgrad.tensor(0.9), 1, -0.1)
        assert not sgd_module._momentum_step(w, w.detach(), compgrad.ones(3), 0.9, 1, -0.1)
        assert w.tolist() == [1.0, 1.0, 1.0] and buf.tolist() == [0.0, 0.0, 0.0]
        assert sgd_module._momentum_step(w, buf, compgrad.ones(3), 0.9, 1, -0.1)
    np.testing.assert_allclose(w.tolist(), [0.9, 0.9, 0.9])
