"""Memory: a long eager training loop does not grow, and the graph's saved tensors are freed
after backward, kept by retain_graph=True until the graph is dropped, and freed with a graph
dropped without backward."""

import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import compgrad
from compgrad.autograd import Function


def _count(cls) -> int:
    # issubclass(type(o)) rather than isinstance(o): isinstance reads ``__class__``, which
    # some lazily deprecated objects (torch's, once imported) answer with a warning
    return sum(1 for o in gc.get_objects() if issubclass(type(o), cls))


def live_tensors() -> int:
    return _count(compgrad.Tensor)


def live_nodes() -> int:
    return _count(compgrad.autograd.Node)


class _TinyMLP:
    """4 -> 8 -> 1 with a ReLU, squared-error loss, plain SGD: a few eager ops per step."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.x = compgrad.from_numpy(rng.standard_normal((8, 4)).astype(np.float32))
        self.y = compgrad.from_numpy(rng.standard_normal((8, 1)).astype(np.float32))
        self.params = [
            compgrad.from_numpy((0.3 * rng.standard_normal(s)).astype(np.float32))
            .requires_grad_() for s in ((4, 8), (8, 1))]
        self.losses = []

    def step(self, lr=1e-3):
        w1, w2 = self.params
        loss = (self.x.mm(w1).relu().mm(w2) - self.y).pow(2).sum()
        loss.backward()
        with compgrad.no_grad():
            for p in self.params:
                p -= lr * p.grad
                p.grad = None
        return loss

    def run(self, steps):
        for _ in range(steps):
            loss = self.step()
        self.losses.append(loss.item())


def test_ten_thousand_step_training_loop_does_not_grow():
    """10,000 steps; the memory after warm-up (step 500) and at the end must match.

    tracemalloc makes every step several times slower, so it traces a 1,000-step window
    right after warm-up (a per-step leak of even ~50 bytes would show), while the live
    Tensor count, the count of gc-tracked objects and the interpreter's allocated-block
    count are compared across the whole run (step 500 vs step 10,000).
    """
    model = _TinyMLP()
    model.run(500)                                        # warm-up: caches, compiled kernels
    gc.collect()
    tensors_0, nodes_0 = live_tensors(), live_nodes()
    objects_0, blocks_0 = len(gc.get_objects()), sys.getallocatedblocks()

    tracemalloc.start()
    try:
        gc.collect()
        traced_0 = tracemalloc.get_traced_memory()[0]
        model.run(1000)                                   # steps 500 .. 1,500, traced
        gc.collect()
        traced_1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert traced_1 - traced_0 < 50_000, f"traced memory grew by {traced_1 - traced_0} bytes"

    model.run(8500)                                       # steps 1,500 .. 10,000
    gc.collect()
    assert live_tensors() <= tensors_0
    assert live_nodes() <= nodes_0
    assert len(gc.get_objects()) - objects_0 < 100
    assert sys.getallocatedblocks() - blocks_0 < 1000
    assert model.losses[-1] < model.losses[0]             # it trained all along
    for p in model.params:
        assert p.is_leaf and p.grad is None and p.grad_fn is None


def test_training_step_leaves_no_graph_behind():
    model = _TinyMLP(seed=1)
    model.run(3)
    gc.collect()
    before = live_tensors()
    loss = model.step()
    node = weakref.ref(loss.grad_fn)
    del loss
    gc.collect()
    assert node() is None
    assert live_tensors() == before


# ---------------------------------------------------------------------------------------------
# saved tensors and backward
# ---------------------------------------------------------------------------------------------

def _graph():
    """A small graph whose intermediates are saved for backward; only weak refs escape."""
    x = compgrad.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h1 = x * x                 # saved by MulBackward0 of h1 * h2
    h2 = h1.exp()              # saved (as output) by ExpBackward0 and as input of the mul
    out = (h1 * h2).sum()
    return x, out, [weakref.ref(h1), weakref.ref(h2)]


def test_saved_tensors_are_released_after_backward():
    x, out, refs = _graph()
    gc.collect()
    assert all(r() is not None for r in refs)             # kept alive by the graph only
    out.backward()
    gc.collect()
    assert all(r() is None for r in refs)
    h = x.detach().numpy() ** 2
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy() * np.exp(h) * (1 + h),
                               rtol=1e-5)


def test_saved_tensors_are_released_after_autograd_grad():
    x, out, refs = _graph()
    (g,) = compgrad.autograd.grad(out, x)
    gc.collect()
    assert all(r() is None for r in refs)
    assert g.grad_fn is None and x.grad is None


def test_retain_graph_keeps_saved_tensors_until_the_graph_is_dropped():
    x, out, refs = _graph()
    out.backward(retain_graph=True)
    gc.collect()
    assert all(r() is not None for r in refs)
    out.backward(retain_graph=True)                       # the graph is still usable
    gc.collect()
    assert all(r() is not None for r in refs)
    first = x.grad.numpy().copy()
    node = weakref.ref(out.grad_fn)
    del out                                               # drop the graph
    gc.collect()
    assert node() is None
    assert all(r() is None for r in refs)
    np.testing.assert_array_equal(x.grad.numpy(), first)  # the grads stay


def test_last_backward_without_retain_graph_frees_a_retained_graph():
    x, out, refs = _graph()
    out.backward(retain_graph=True)
    out.backward()                                        # frees, though `out` is still alive
    gc.collect()
    assert all(r() is None for r in refs)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.backward()


def test_graph_dropped_without_backward_frees_its_tensors():
    x, out, refs = _graph()
    node = weakref.ref(out.grad_fn)
    gc.collect()
    assert all(r() is not None for r in refs)
    del out
    gc.collect()
    assert node() is None
    assert all(r() is None for r in refs)
    assert x.grad is None


def test_graph_dropped_without_backward_is_freed_by_reference_counting_alone():
    gc.collect()
    gc.disable()
    try:
        _, out, refs = _graph()
        del out
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_torch_frees_a_dropped_graph_by_reference_counting_alone():
    torch = pytest.importorskip("torch")
    gc.collect()
    gc.disable()
    try:
        x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
        h1 = x * x
        h2 = h1.exp()
        out = (h1 * h2).sum()
        refs = [weakref.ref(h1), weakref.ref(h2)]
        del h1, h2
        assert all(r() is not None for r in refs)
        del out
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_graph_is_freed_by_reference_counting_after_backward():
    gc.collect()
    gc.disable()
    try:
        _, out, refs = _graph()
        out.backward()
        assert all(r() is None for r in refs)             # released values need no gc
    finally:
        gc.enable()


def test_create_graph_gradients_keep_their_graph_until_dropped():
    x, out, refs = _graph()
    (g,) = compgrad.autograd.grad(out, x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    gc.collect()
    assert all(r() is not None for r in refs)             # the double-backward graph needs them
    del out, g
    gc.collect()
    assert all(r() is None for r in refs)


def test_custom_function_saved_tensors_are_released():
    class Cube(Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t * t * t

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return 3 * g * t * t

    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    out = Cube.apply(h).sum()
    del h
    gc.collect()
    assert ref() is not None
    out.backward()
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(x.grad.numpy(), [24.0, 96.0])

    h = x * 2
    ref = weakref.ref(h)
    out = Cube.apply(h).sum()
    del h, out                                            # dropped without backward
    gc.collect()
    assert ref() is None


def test_grads_do_not_keep_the_graph_alive():
    x, out, refs = _graph()
    out.backward()
    assert x.grad.grad_fn is None and not x.grad.requires_grad
    node = weakref.ref(out.grad_fn)
    del out
    gc.collect()
    assert node() is None and all(r() is None for r in refs)
