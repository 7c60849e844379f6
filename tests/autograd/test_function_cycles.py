"""A custom Function's call leaves no reference cycle (the ctx holds its node weakly),
so eager steps that use one are freed by reference counting, without the cyclic GC."""

from __future__ import annotations

import gc

import compgrad
from compgrad.autograd import Function


class _Square(Function):
    @staticmethod
    def forward(ctx, x):
        y = x * x
        ctx.save_for_backward(x, y)      # an input and an output
        return y

    @staticmethod
    def backward(ctx, g):
        x, _ = ctx.saved_tensors
        return 2 * x * g


def _step():
    x = compgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = _Square.apply(x)
    y.sum().backward()
    return x.grad.tolist()


def test_a_custom_function_leaves_nothing_in_cycles():
    assert _step() == [2.0, 4.0, 6.0]
    gc.collect()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(5):
            assert _step() == [2.0, 4.0, 6.0]
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def test_the_ctx_reaches_its_node_while_the_outputs_live():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = _Square.apply(x)
    ctx = y.grad_fn.ctx
    assert ctx._node is y.grad_fn
    x2, y2 = ctx.saved_tensors          # the saved output unpacks with its grad_fn
    assert y2.grad_fn is y.grad_fn and x2 is x
