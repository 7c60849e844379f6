"""Ops never warn or raise on inf/nan results, as in PyTorch, even under ``-W error`` and
``np.seterr(all='raise')`` (ir/fperr.py), in eager, reference and compiled runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad
from compgrad import nn
from ir import ops
from ir.dispatch import ReferenceInterpreter, interpreter


@pytest.fixture
def strict_numpy():
    old = np.seterr(all="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    np.seterr(**old)


def _inf_nan_programs(lib):
    zero = lib.zeros(3)
    big = lib.full((3,), 1e30)
    return {
        "log(0)": lib.log(zero),
        "exp overflow": (big * 1e10).exp(),
        "0/0": zero / zero,
        "x/0": lib.ones(3) / 0,
        "sigmoid(-1000)": lib.sigmoid(lib.full((3,), -1000.0)),
        "softplus(1e30)": nn.functional.softplus(big),
        "sqrt(-1)": lib.sqrt(-lib.ones(3)),
        "in-place x/=0": lib.ones(3).div_(0.0),
        "in-place x*=inf": lib.ones(3).mul_(lib.full((3,), float("inf"))),
        "sum overflow": big.mul(1e10).sum(),
    }


def test_eager_ops_stay_quiet(strict_numpy):
    results = _inf_nan_programs(compgrad)
    assert np.isinf(results["log(0)"].numpy()).all()
    assert np.isnan(results["0/0"].numpy()).all()
    assert np.isinf(results["in-place x/=0"].numpy()).all()


def test_backward_through_inf_stays_quiet(strict_numpy):
    x = compgrad.zeros(3, requires_grad=True)
    compgrad.log(x).sum().backward()
    assert np.isinf(x.grad.numpy()).all()


def test_reference_interpreter_stays_quiet(strict_numpy):
    with interpreter(ReferenceInterpreter()):
        out = ops.log(np.zeros(3, np.float32))
        assert np.isinf(out).all()


def test_compiled_programs_stay_quiet(strict_numpy):
    @compgrad.compile(backend="interpret")
    def f(x):
        return (x / 0).sum(), compgrad.log(x)

    total, logs = f(compgrad.zeros(3))
    assert np.isnan(total.item()) and np.isinf(logs.numpy()).all()


def test_numpy_state_is_restored():
    before = np.geterr()
    compgrad.log(compgrad.zeros(3))
    assert np.geterr() == before
