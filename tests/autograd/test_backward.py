"""backward(): roots, implicit and explicit gradients, inputs=, retain_graph, accumulation."""

import gc
import weakref

import numpy as np
import pytest

import compgrad


def leaf(*values, dtype=None):
    return compgrad.tensor(list(values), dtype=dtype, requires_grad=True)


def test_scalar_backward_and_implicit_gradient_only_for_scalars():
    x = leaf(1.0, 2.0, 3.0)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0]
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar"):
        (x * 2).backward()


def test_explicit_gradient_shape_is_checked():
    x = leaf(1.0, 2.0)
    y = x * 3
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of "
                                           r"\[3\] and output\[0\] has a shape of \[2\]"):
        y.backward(compgrad.ones(3))
    y.backward(compgrad.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [3.0, 30.0]


def test_several_roots_at_once():
    x = leaf(1.0, 2.0)
    a, b = x * 2, x * x
    compgrad.autograd.backward([a.sum(), b.sum()])
    assert x.grad.tolist() == [4.0, 6.0]
    y = leaf(1.0)
    compgrad.autograd.backward([y * 2, y * 3], [compgrad.tensor([1.0]), compgrad.tensor([2.0])])
    assert y.grad.tolist() == [8.0]


def test_inputs_limits_accumulation():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None and w.grad.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="cannot be empty"):
        (x * w).sum().backward(inputs=[])


def test_gradients_accumulate_and_can_be_reset():
    x = leaf(1.0, 2.0)
    for _ in range(3):
        (x * 2).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    g = x.grad
    (x * 1).sum().backward()
    assert x.grad is g and g.tolist() == [7.0, 7.0]       # accumulated in place
    x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0]
    x.grad = None
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    x.grad = compgrad.tensor([5.0, 5.0])
    with pytest.raises(RuntimeError, match="different size"):
        x.grad = compgrad.tensor([1.0])


def test_reading_grad_of_a_non_leaf_warns_and_retain_grad_keeps_it():
    x = leaf(1.0, 2.0)
    y = x * 2
    z = y * y
    y.retain_grad()
    w = z * 1
    z.sum().backward(retain_graph=True)
    assert y.retains_grad and y.grad.tolist() == [4.0, 8.0]
    with pytest.warns(UserWarning, match="not a leaf Tensor is being accessed"):
        assert w.grad is None


def test_diamond_graph_runs_each_node_once_with_summed_gradient():
    x = leaf(2.0)
    a = x * 3
    calls = []
    a.register_hook(lambda g: calls.append(g.item()))
    b, c = a * a, a.exp()
    (b + c).sum().backward()
    expected = 3 * (2 * 6.0 + np.exp(6.0))
    assert np.isclose(x.grad.item(), expected, rtol=1e-6)
    assert len(calls) == 1 and np.isclose(calls[0], 12.0 + np.exp(6.0), rtol=1e-6)


def test_broadcast_inputs_get_gradients_of_their_own_shape():
    w = compgrad.ones(3, 1, requires_grad=True)
    b = compgrad.ones(4, requires_grad=True)
    (w * b).sum().backward()
    assert w.grad.shape == (3, 1) and w.grad.tolist() == [[4.0]] * 3
    assert b.grad.shape == (4,) and b.grad.tolist() == [3.0] * 4
    s = compgrad.tensor(2.0, dtype=compgrad.float64, requires_grad=True)
    v = leaf(1.0, 2.0)
    (v * s).sum().backward()
    assert s.grad.dtype is compgrad.float64 and s.grad.item() == 3.0


def test_second_backward_through_freed_graph_raises():
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_graph_that_saved_nothing_can_be_backpropagated_again():
    x = leaf(1.0, 2.0)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_retain_graph_allows_a_second_backward():
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_saved_tensors_are_released_after_backward():
    x = leaf(1.0, 2.0)
    h = x * 2
    ref = weakref.ref(h)
    y = (h * h).sum()
    del h
    gc.collect()
    assert ref() is not None          # saved by the graph
    y.backward()
    gc.collect()
    assert ref() is None              # released by backward


def test_failing_backward_leaves_grads_unchanged():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    (x * w).sum().backward()
    before = (x.grad.tolist(), w.grad.tolist())
    h = x * w
    out = (h * x).sum()
    x.grad.add_(0)  # unrelated in-place on a grad is fine
    with compgrad.no_grad():
        h.mul_(2)     # modifies a tensor saved for backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    assert (x.grad.tolist(), w.grad.tolist()) == before


def test_root_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        compgrad.ones(2).sum().backward()
