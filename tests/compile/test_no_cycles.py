"""A compiled call leaves no reference cycles behind: what it recorded (the Graph's
nodes and values, the trace, the grad_fn of an escaping result) is freed by reference
counting when the last reference goes, as eager mode's objects are, so the cyclic GC
has nothing to collect (it would otherwise run every few steps, and its full
collections walk the whole heap)."""

from __future__ import annotations

import gc
import weakref
from collections import Counter

import pytest

import compgrad
import compgrad.nn as nn

from ._common import BACKENDS


def _left_in_cycles(step, calls: int = 3) -> Counter:
    """Objects that only the cyclic GC would free after ``calls`` more calls of
    ``step`` (a warm one: its programs compiled), counted by type."""
    for _ in range(2):
        step()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)   # what a collection finds stays in gc.garbage
    try:
        for _ in range(calls):
            step()
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def _training_step(backend: str, classes: int, momentum: float):
    """W1/W2's program on a small MLP: zero_grad, forward, loss, backward, SGD step."""
    compgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, classes))
    loss_fn = nn.CrossEntropyLoss() if classes > 1 else nn.MSELoss()
    opt = compgrad.optim.SGD(model.parameters(), lr=0.01, momentum=momentum)
    x = compgrad.randn(5, 6)
    y = compgrad.randint(0, classes, (5,)) if classes > 1 else compgrad.randn(5, 1)

    @compgrad.compile(backend=backend)
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("classes,momentum", [(1, 0.0), (3, 0.9)], ids=["mse", "ce-momentum"])
def test_training_step_leaves_no_cycles(backend, classes, momentum):
    assert _left_in_cycles(_training_step(backend, classes, momentum)) == Counter()


@pytest.mark.parametrize("backend", BACKENDS)
def test_escaping_forward_leaves_no_cycles(backend):
    # the output leaves with a CompiledFunctionBackward whose backward runs eagerly later
    compgrad.manual_seed(0)
    model = compgrad.compile(nn.Linear(6, 3), backend=backend)
    x = compgrad.randn(4, 6)

    def forward_backward():
        model(x).sum().backward()

    def forward_only():
        model(x)

    assert _left_in_cycles(forward_backward) == Counter()
    assert _left_in_cycles(forward_only) == Counter()


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_break_views_and_hooks_leave_no_cycles(backend):
    compgrad.manual_seed(0)
    model = nn.Linear(6, 1)
    opt = compgrad.optim.SGD(model.parameters(), lr=0.01)
    w = compgrad.randn(6, 3, requires_grad=True)
    x = compgrad.randn(4, 6)

    @compgrad.compile(backend=backend)
    def graph_break():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        if loss.item() > -1:   # a Python read of a value: a flush in the middle
            loss = loss * 2
        loss.backward()
        opt.step()

    @compgrad.compile(backend=backend)
    def views():
        y = x * 2
        v = y[1:3]
        v.add_(1)   # a write through a view made in the call
        return y.sum(), v

    @compgrad.compile(backend=backend)
    def hooked():
        h = x @ w
        h.register_hook(_double)
        h.sum().backward()

    for step in (graph_break, views, hooked):
        assert _left_in_cycles(step) == Counter(), step.__name__


def _double(g):
    return g * 2


def test_a_finished_trace_is_freed_at_once(monkeypatch):
    # reference counting alone frees the call's trace: nothing refers back to it
    from compgrad.compile.trace import Trace
    step = _training_step("interpret", 1, 0.0)
    step()
    made = []
    init = Trace.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(Trace, "__init__", spy)
    enabled = gc.isenabled()
    gc.disable()
    try:
        step()
    finally:
        if enabled:
            gc.enable()
    assert len(made) == 1 and made[0]() is None
