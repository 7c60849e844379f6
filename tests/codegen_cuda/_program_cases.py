"""Whole programs for :class:`codegen.cuda_runtime.CudaProgram` on the simulator.

Each case builds a list of programs, each a captured Graph with the arguments it ran
on: small training steps captured through ``compgrad.compile`` on CPU tensors (the
graphs the compiler hands a runtime, mutations of parameters, ``.grad`` and optimizer
state included), or IR text with random inputs. Shapes are tiny: the simulator runs
Python per GPU thread.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import compgrad
from compgrad.compile import api
from ir.graph import Graph
from ir.parser import parse
from tests.codegen_cuda._cases import random_feeds

Programs = list[tuple[Graph, list]]


def capture(fn: Callable, calls: list[tuple]) -> Programs:
    """The programs ``compgrad.compile(fn)`` runs over ``calls`` (argument tuples), each with
    a copy of the arguments it was given (the run's mutations write into them after)."""
    seen: Programs = []
    original = api.Program.run

    def recording(program, args, inplace=()):
        seen.append((program.graph, [np.copy(a) if isinstance(a, np.ndarray) else a
                                     for a in args]))
        return original(program, args, inplace)

    api.Program.run = recording
    try:
        compiled = compgrad.compile(fn, backend="interpret")
        for call in calls:
            compiled(*call)
    finally:
        api.Program.run = original
    return seen


def _tensor(rng, *shape) -> compgrad.Tensor:
    return compgrad.from_numpy(rng.standard_normal(shape).astype(np.float32))


def _labels(rng, n: int, classes: int) -> compgrad.Tensor:
    return compgrad.from_numpy(rng.integers(0, classes, n, dtype=np.int64))


def mlp_cross_entropy_momentum() -> Programs:
    """Linear-ReLU-Linear, cross-entropy, SGD with momentum: two steps (the first creates
    the momentum buffers, so each is its own program)."""
    compgrad.manual_seed(0)
    nn = compgrad.nn
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    loss_fn = nn.CrossEntropyLoss()
    opt = compgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(1)
    return capture(step, [(_tensor(rng, 4, 6), _labels(rng, 4, 4)) for _ in range(2)])


def mlp_mse_sgd() -> Programs:
    """Linear-ReLU-Linear, MSE, plain SGD."""
    compgrad.manual_seed(1)
    nn = compgrad.nn
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    loss_fn = nn.MSELoss()
    opt = compgrad.optim.SGD(model.parameters(), lr=0.05)

    def step(x, t):
        opt.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(2)
    return capture(step, [(_tensor(rng, 4, 5), _tensor(rng, 4, 3))])


def layer_norm_forward_backward() -> Programs:
    """LayerNorm forward, a weighted sum, and the gradients of input, weight and bias."""
    compgrad.manual_seed(2)
    norm = compgrad.nn.LayerNorm(12)

    def step(x, w):
        x.grad = None
        norm.zero_grad()
        loss = (norm(x) * w).sum()
        loss.backward()
        return loss

    rng = np.random.default_rng(3)
    x = _tensor(rng, 5, 12).requires_grad_(True)
    return capture(step, [(x, _tensor(rng, 5, 12))])


def log_softmax_nll() -> Programs:
    """log_softmax over classes, NLL loss, the logits' gradient."""
    F = compgrad.nn.functional

    def step(logits, y):
        logits.grad = None
        loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
        loss.backward()
        return loss

    rng = np.random.default_rng(4)
    return capture(step, [(_tensor(rng, 6, 7).requires_grad_(True), _labels(rng, 6, 7))])


# prod has no CUDA form (codegen.cuda.REDUCTIONS): its group runs node by node, between
# groups that run as kernels
NO_CUDA_FORM = """
graph f(%x: f32[4,6], %y: f32[4,6], %b: f32[6]) {
  %0 = mul(%x, %y) : f32[4,6]
  %1 = add(%0, 1.0) : f32[4,6]
  %2 = prod(%1)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  %3 = add(%x, %b) : f32[4,6]
  %4 = tanh(%3) : f32[4,6]
  %5 = sum(%4)[dim=(0,), keepdim=False, dtype=None] : f32[6]
  return %2, %5
}
"""


def group_without_cuda_form() -> Programs:
    graph = parse(NO_CUDA_FORM)
    return [(graph, random_feeds(graph, seed=5))]


CASES: dict[str, Callable[[], Programs]] = {
    "mlp-cross-entropy-momentum": mlp_cross_entropy_momentum,
    "mlp-mse-sgd": mlp_mse_sgd,
    "layer-norm-forward-backward": layer_norm_forward_backward,
    "log-softmax-nll": log_softmax_nll,
    "group-without-cuda-form": group_without_cuda_form,
}
