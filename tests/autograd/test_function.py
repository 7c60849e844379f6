"""Custom autograd.Function."""

import numpy as np
import pytest

import compgrad
from compgrad.autograd import Function, once_differentiable


class Square(Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x * ctx.scale, None


def test_forward_backward_and_non_tensor_arguments():
    x = compgrad.tensor([1.0, 3.0], requires_grad=True)
    y = Square.apply(x, 2.0)
    assert y.grad_fn.name() == "SquareBackward" and y.tolist() == [2.0, 18.0]
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 12.0]


def test_needs_input_grad_and_double_backward():
    seen = []

    class Cube(Function):
        @staticmethod
        def forward(ctx, x, y):
            seen.append(ctx.needs_input_grad)
            ctx.save_for_backward(x)
            return x * x * x + y

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x, g

    x = compgrad.tensor([2.0], dtype=compgrad.float64, requires_grad=True)
    y = compgrad.tensor([1.0], dtype=compgrad.float64)
    out = Cube.apply(x, y)
    assert seen == [(True, False)]
    (g,) = compgrad.autograd.grad(out.sum(), x, create_graph=True)
    (gg,) = compgrad.autograd.grad(g.sum(), x)
    assert np.isclose(g.item(), 12.0) and np.isclose(gg.item(), 12.0)


def test_wrong_number_of_gradients():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    a = compgrad.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="returned an incorrect number of gradients "
                                           r"\(expected 2, got 1\)"):
        Bad.apply(a, a).sum().backward()


def test_mark_non_differentiable_and_materialize_grads():
    class SortLike(Function):
        @staticmethod
        def forward(ctx, x):
            idx = compgrad.tensor([1, 0])
            ctx.mark_non_differentiable(idx)
            ctx.set_materialize_grads(True)
            return x * 1, idx

        @staticmethod
        def backward(ctx, g, gidx):
            assert gidx is None or gidx.numel() == 2
            return g * 5

    x = compgrad.ones(2, requires_grad=True)
    v, i = SortLike.apply(x)
    assert not i.requires_grad and v.requires_grad
    v.sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_mark_dirty_on_a_leaf_is_refused():
    class AddOne(Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    leaf = compgrad.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        AddOne.apply(leaf)
    y = leaf * 2
    out = AddOne.apply(y)
    assert out is y and y.grad_fn.name() == "AddOneBackward"
    out.sum().backward()
    assert leaf.grad.tolist() == [2.0, 2.0]


def test_once_differentiable_and_saved_tensors_freed():
    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            return g * 2

    x = compgrad.ones(2, requires_grad=True)
    y = Double.apply(x).sum()
    y.backward()
    assert x.grad.tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
