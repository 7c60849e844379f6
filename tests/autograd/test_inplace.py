"""In-place safety: version counters, leaves, rebasing, .data and detach."""

import pytest

import compgrad


def test_modifying_a_saved_tensor_is_caught_at_backward():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()                      # exp saves its output
    z = y.sum()
    y.add_(1)
    with pytest.raises(RuntimeError, match="one of the variables needed for gradient "
                                           "computation has been modified by an inplace "
                                           "operation.*is at version 1; expected version 0"):
        z.backward()


def test_in_place_on_a_tensor_not_needed_by_backward_is_fine():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = a + 1                         # add does not read its inputs in backward
    a.add_(5)
    b.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_in_place_on_a_leaf_that_requires_grad():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        x.add_(1)
    assert x.tolist() == [1.0, 2.0]
    with compgrad.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 3.0] and x.requires_grad and x.is_leaf


def test_in_place_on_a_non_leaf_rebases_its_grad_fn():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.mul_(3)
    assert y.grad_fn.name() == "MulBackward0" and not y.is_leaf
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    x.grad = None
    z = x * 2
    z.pow_(2)            # pow's backward reads the original z: it is saved before the write
    z.sum().backward()
    assert x.grad.tolist() == [8.0, 16.0]
    a = compgrad.tensor([3.0], requires_grad=True)
    b = a * 1
    b.exp_()
    assert b.grad_fn.name() == "ExpBackward0"


def test_data_and_detach_share_storage():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    d.add_(1)
    assert x.tolist() == [2.0, 3.0] and not d.requires_grad
    x.data.mul_(2)
    assert x.tolist() == [4.0, 6.0] and x.requires_grad
    x.data = compgrad.tensor([0.0, 0.0])
    assert x.tolist() == [0.0, 0.0] and x.requires_grad


def test_detach_in_place():
    x = compgrad.tensor([1.0], requires_grad=True)
    y = x * 2
    y.detach_()
    assert y.is_leaf and not y.requires_grad


def test_setitem_with_a_value_that_requires_grad():
    w = compgrad.tensor([1.0, 2.0], requires_grad=True)
    buf = compgrad.zeros(3)
    buf[1:] = w * 3
    assert buf.requires_grad and buf.grad_fn is not None
    buf.sum().backward()
    assert w.grad.tolist() == [3.0, 3.0]


def _both(fn):
    """Run ``fn(lib)`` with compgrad and with torch; return both results as lists."""
    torch = pytest.importorskip("torch")
    return fn(compgrad), fn(torch)


def test_write_through_a_view_of_a_non_leaf_matches_torch():
    def run(lib):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        y = x * 2
        y[1:3].mul_(y[0:2] * 1)          # write through a slice view
        y[0].add_(x[3])                  # and through a 0-d view
        (y * lib.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
        return y.tolist(), x.grad.tolist()

    ours, theirs = _both(run)
    assert ours == theirs


def test_views_made_before_a_write_see_the_new_base():
    def run(lib):
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * 1
        col = y[:, 1]                    # made before the write
        y[0, 1] = x[1, 0] * 5            # write through the base
        (col * col).sum().backward()
        return col.tolist(), x.grad.tolist()

    ours, theirs = _both(run)
    assert ours == theirs


def test_write_through_a_transposed_view_into_a_buffer():
    def run(lib):
        w = lib.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        buf = lib.zeros(3, 2)
        buf.t()[1].copy_(w[0] * 3)       # a row of the transpose is a column of buf
        (buf * lib.arange(6.0).reshape(3, 2)).sum().backward()
        return buf.tolist(), w.grad.tolist()

    ours, theirs = _both(run)
    assert ours == theirs


def test_view_of_a_leaf_that_requires_grad_cannot_be_written():
    x = compgrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        x[1:].mul_(2)
    assert x.tolist() == [1.0, 1.0, 1.0]
    with compgrad.no_grad():
        x[1:].mul_(2)
    assert x.tolist() == [1.0, 2.0, 2.0]


def test_copy_into_a_tensor_with_history_keeps_an_edge_to_it():
    # PyTorch's CopyBackwards: the old history gets a zero gradient (so it still runs,
    # and a saved value the copy overwrote is caught), the copied value the whole one
    x = compgrad.tensor([0.5], dtype=compgrad.float64, requires_grad=True)
    y = x.exp()                      # saves its output, which the copy overwrites
    y.copy_(x * 2)
    assert y.grad_fn.name() == "CopyBackwards"
    assert [type(n).__name__ for n, _ in y.grad_fn.next_functions] == ["ExpBackward0",
                                                                      "MulBackward0"]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_copy_into_a_tensor_whose_history_saved_nothing_matches_torch():
    def run(lib):
        x = lib.tensor([0.5, 1.0], requires_grad=True)
        w = lib.tensor([1.5, 2.0], requires_grad=True)
        y = x + 1
        y.copy_(w * 3)
        (y * lib.tensor([1.0, 2.0])).sum().backward()
        return type(y.grad_fn).__name__, y.tolist(), x.grad.tolist(), w.grad.tolist()

    ours, theirs = _both(run)
    assert ours == theirs


def test_copy_into_a_tensor_with_history_compiled_matches_eager():
    def run(x, w):
        y = x + 1
        y.copy_(w * 3)
        (y * 2).sum().backward()
        return y

    results = []
    for fn in (run, compgrad.compile(run, backend="interpret")):
        x = compgrad.tensor([0.5, 1.0], requires_grad=True)
        w = compgrad.tensor([1.5, 2.0], requires_grad=True)
        y = fn(x, w)
        results.append((y.tolist(), x.grad.tolist(), w.grad.tolist()))
    assert results[0] == results[1] == ([4.5, 6.0], [0.0, 0.0], [6.0, 6.0])
