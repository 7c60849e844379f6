"""Recording: requires_grad propagation, grad_fn, next_functions, leaves."""

import pytest

import compgrad


def test_outputs_require_grad_iff_an_input_does():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    c = compgrad.tensor([3.0, 4.0])
    assert (x * c).requires_grad and not (c * c).requires_grad
    with compgrad.no_grad():
        assert not (x * c).requires_grad
    assert (x > 1).requires_grad is False            # comparisons are not differentiable


def test_grad_fn_names_and_next_functions():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y.exp().sum()
    assert x.is_leaf and x.grad_fn is None and not y.is_leaf
    assert type(y.grad_fn).__name__ == "MulBackward0" and y.grad_fn.name() == "MulBackward0"
    assert z.grad_fn.name() == "SumBackward0"
    (exp_node, _), = z.grad_fn.next_functions
    assert exp_node.name() == "ExpBackward0"
    (mul_node, _), = exp_node.next_functions
    assert mul_node is y.grad_fn
    (acc, nr), (none, _) = mul_node.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is x and none is None
    assert "grad_fn=<MulBackward0>" in repr(y)


def test_integer_tensors_refuse_requires_grad():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require"):
        compgrad.tensor([1, 2], requires_grad=True)
    t = compgrad.tensor([1, 2])
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        t.requires_grad_()
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        t.requires_grad = True


def test_requires_grad_flag_only_changes_on_leaves():
    x = compgrad.tensor([1.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf"):
        y.requires_grad_(False)
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert d.numpy().tolist() == [2.0]
    assert x.requires_grad_(False) is x and not x.requires_grad
