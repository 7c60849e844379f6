"""A whole training step under @compile gives the eager results.

Each test runs the same step eagerly and compiled (``backend="interpret"`` and
the default backend) from identical initial state and compares losses,
parameters, gradients, buffers and optimizer state, then checks what
``explain()`` says was captured (graphs, breaks, cache hits).
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn
import compgrad.nn.functional as F

from ._common import (
    BACKENDS,
    assert_same,
    assert_states_equal,
    class_batch,
    module_state,
    optimizer_state,
    train_step,
)

BACKEND_PARAMS = [pytest.param(b, id=b) for b in BACKENDS]


def _mlp(sizes, seed: int = 0):
    compgrad.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _optimizer(kind: str, params):
    if kind == "sgd":
        return compgrad.optim.SGD(params, lr=0.05, momentum=0.9)
    if kind == "adam":
        return compgrad.optim.Adam(params, lr=1e-3)
    raise ValueError(kind)


def _same_loss(a, b, msg: str = "") -> None:
    """Equal loss values (within 1e-6; requires_grad of a returned loss is tested
    apart, see test_returned_loss_is_like_eager)."""
    assert_same(a, b, atol=1e-6, msg=msg, requires_grad=False)


def _twins(sizes, kind: str):
    """Two identical (model, optimizer) pairs."""
    out = []
    for _ in range(2):
        model = _mlp(sizes)
        out.append((model, _optimizer(kind, model.parameters())))
    return out


# --------------------------------------------------------------------- the MLP step

@pytest.fixture
def one_blas_thread():
    """One BLAS thread: on a small, shared machine OpenBLAS's threads spin against each
    other and make the 784-512-512-10 matmuls ten times slower (results are unchanged)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.usefixtures("one_blas_thread")
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_mlp_784_512_512_10_twenty_steps(kind, backend):
    (m1, o1), (m2, o2) = _twins((784, 512, 512, 10), kind)
    step = compgrad.compile(train_step, backend=backend)
    batches = [class_batch(32, 784, 10, seed=s) for s in range(4)]
    for i in range(20):
        x, y = batches[i % len(batches)]
        l1 = train_step(m1, o1, x, y)
        l2 = step(m2, o2, x, y)
        _same_loss(l1, l2, f"loss at step {i}")
        if i == 1:
            # the first call compiles; the second sees .grad / optimizer state exist
            programs_after_two = step.explain().program_count
    # Adam divides by sqrt(v): where a gradient is ~eps (a near-dead unit), a few-ulp
    # difference of a generated kernel moves the update by up to ~1% of lr per step
    atol = 1e-4 if (kind, backend) == ("adam", "numba") else 1e-6
    assert_states_equal(module_state(m1), module_state(m2), atol=atol)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=atol)
    assert o1.state_dict()["state"].keys() == o2.state_dict()["state"].keys()
    report = step.explain()
    # torch._dynamo.explain's view of one call: the whole step is one graph, no break
    assert report.graph_count == 1 and report.graph_break_count == 0, report
    assert report.break_reasons == [] and len(report.graphs) == 1
    assert report.total_graph_break_count == 0, report
    assert report.all_break_reasons == []
    assert report.program_count == programs_after_two, "later calls compiled new programs"
    assert report.program_count <= 2
    assert report.calls == 20 and report.eager_calls == 0
    assert report.cache_misses == report.program_count
    assert report.cache_hits == 20 - report.program_count
    # every call is one program: one graph per call
    assert sum(report.paths.values()) == 20
    assert all(len(path) == 1 for path in report.paths)
    assert "Graph Count" in str(report) and "Graph Break Count: 0" in str(report)


# ------------------------------------------------------- variations of the step (small)

SMALL = (12, 16, 5)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_zero_grad_set_to_none_false(backend):
    def step(model, opt, x, y):
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    (m1, o1), (m2, o2) = _twins(SMALL, "sgd")
    cstep = compgrad.compile(step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=1)
    grads_before = None
    for i in range(5):
        _same_loss(step(m1, o1, x, y), cstep(m2, o2, x, y), f"step {i}")
        grads = [p.grad for p in m2.parameters()]
        if grads_before is not None:
            # zeroed and accumulated in place: the same .grad objects every step
            assert all(a is b for a, b in zip(grads, grads_before))
        grads_before = grads
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)
    assert cstep.explain().total_graph_break_count == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_gradient_accumulation_two_micro_batches(backend):
    def step(model, opt, xs, ys):
        opt.zero_grad()
        total = 0.0
        for x, y in zip(xs, ys):
            loss = F.cross_entropy(model(x), y) / len(xs)
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    (m1, o1), (m2, o2) = _twins(SMALL, "adam")
    cstep = compgrad.compile(step, backend=backend)
    for i in range(4):
        batches = [class_batch(6, 12, 5, seed=10 * i + k) for k in range(2)]
        xs = [b[0] for b in batches]
        ys = [b[1] for b in batches]
        _same_loss(step(m1, o1, xs, ys), cstep(m2, o2, xs, ys), f"step {i}")
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)
    report = cstep.explain()
    assert report.total_graph_break_count == 0
    assert report.program_count <= 2


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_lr_scheduler_changes_lr_without_recompiling(backend):
    (m1, o1), (m2, o2) = _twins(SMALL, "sgd")
    s1 = compgrad.optim.lr_scheduler.ExponentialLR(o1, gamma=0.7)
    s2 = compgrad.optim.lr_scheduler.ExponentialLR(o2, gamma=0.7)
    cstep = compgrad.compile(train_step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=2)
    lrs = []
    for i in range(6):
        _same_loss(train_step(m1, o1, x, y), cstep(m2, o2, x, y), f"step {i}")
        s1.step()
        s2.step()
        lrs.append(o2.param_groups[0]["lr"])
    assert len(set(lrs)) == 6
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)
    report = cstep.explain()
    # the first call (no momentum buffers yet) and the steady state: the lr is an input
    assert report.program_count <= 2, report.recompiles
    assert report.cache_hits == 6 - report.program_count


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_lr_set_inside_the_step(backend):
    # the lr written into param_groups by the step itself (a warmup rule)
    def step(model, opt, x, y, it):
        for g in opt.param_groups:
            g["lr"] = 0.1 * min(1.0, (it + 1) / 3)
        return train_step(model, opt, x, y)

    (m1, o1), (m2, o2) = _twins(SMALL, "sgd")
    cstep = compgrad.compile(step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=3)
    for it in range(5):
        _same_loss(step(m1, o1, x, y, it), cstep(m2, o2, x, y, it))
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert cstep.explain().program_count <= 2


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_two_optimizer_steps_in_one_call(kind, backend):
    # the second forward reads the parameters optimizer.step() just wrote (under
    # no_grad): they are still leaves, so the second backward reaches them, and only
    # through the second forward
    def two_steps(model, opt, batches):
        losses = []
        for x, y in batches:
            losses.append(train_step(model, opt, x, y).detach())
        return losses

    (m1, o1), (m2, o2) = _twins(SMALL, kind)
    cstep = compgrad.compile(two_steps, backend=backend)
    for i in range(3):
        batches = [class_batch(8, 12, 5, seed=50 + 2 * i + k) for k in range(2)]
        assert_same(two_steps(m1, o1, batches), cstep(m2, o2, batches), atol=1e-6,
                    msg=f"call {i}")
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)
    assert all(p.is_leaf for p in m2.parameters())
    assert cstep.explain().total_graph_break_count == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_freezing_and_unfreezing_a_layer_between_calls(backend):
    (m1, o1), (m2, o2) = _twins(SMALL, "adam")
    cstep = compgrad.compile(train_step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=60)
    for i in range(6):
        if i in (2, 4):
            for m in (m1, m2):
                m[0].weight.requires_grad_(i == 4)
        _same_loss(train_step(m1, o1, x, y), cstep(m2, o2, x, y), f"step {i}")
        assert (m2[0].weight.grad is None) == (m1[0].weight.grad is None)
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_param_group_added_between_calls(backend):
    def build():
        model = _mlp(SMALL)
        return model, compgrad.optim.SGD(model[0].parameters(), lr=0.1, momentum=0.9)

    (m1, o1), (m2, o2) = build(), build()
    cstep = compgrad.compile(train_step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=61)
    for i in range(4):
        if i == 2:
            for m, o in ((m1, o1), (m2, o2)):
                o.add_param_group({"params": m[2].parameters(), "lr": 0.01})
        _same_loss(train_step(m1, o1, x, y), cstep(m2, o2, x, y), f"step {i}")
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)


# ------------------------------------------------------------- compiled modules

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compile_module_forward_only(backend):
    eager = _mlp(SMALL)
    ours = _mlp(SMALL)
    compiled = compgrad.compile(ours, backend=backend)
    x, _ = class_batch(8, 12, 5, seed=4)
    with compgrad.no_grad():
        for _ in range(3):
            assert_same(eager(x), compiled(x))
    # parameters are shared with the original module, under _orig_mod. as in PyTorch
    assert [k for k in compiled.state_dict()] == ["_orig_mod." + k for k in ours.state_dict()]
    assert compiled._orig_mod is ours
    report = compiled.explain()
    assert report.program_count == 1 and report.total_graph_break_count == 0
    assert report.cache_hits == 2
    # a weight changed between calls is read again, never baked in
    with compgrad.no_grad():
        ours[0].weight.mul_(2.0)
        eager[0].weight.mul_(2.0)
        assert_same(eager(x), compiled(x))
    assert compiled.explain().program_count == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_module_compile_method(backend):
    eager = _mlp(SMALL)
    ours = _mlp(SMALL)
    ours.compile(backend=backend)
    x, y = class_batch(8, 12, 5, seed=5)
    for _ in range(3):
        out1, out2 = eager(x), ours(x)
        assert_same(out1, out2, atol=1e-7)
        # the compiled forward's output is used by eager autograd outside
        F.cross_entropy(out1, y).backward()
        F.cross_entropy(out2, y).backward()
    assert_states_equal(module_state(eager), module_state(ours), atol=1e-6)
    report = ours._compiled_call_impl.explain()
    # the forward and, run by eager autograd, its compiled backward; both reused
    assert report.program_count == 2 and report.total_graph_break_count == 0
    assert report.cache_hits == 4


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compiled_forward_in_eager_training_loop(backend):
    (m1, o1), (m2, o2) = _twins(SMALL, "sgd")
    fwd = compgrad.compile(m2, backend=backend)
    for i in range(4):
        x, y = class_batch(8, 12, 5, seed=20 + i)
        for model, opt in ((m1, o1), (fwd, o2)):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert_states_equal(optimizer_state(o1), optimizer_state(o2), atol=1e-6)


# ------------------------------------------------------------- buffers and randomness

class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.fc(x))))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_batchnorm_running_stats_written_back(backend):
    models = []
    for _ in range(2):
        compgrad.manual_seed(0)
        model = _BNNet()
        models.append((model, _optimizer("sgd", model.parameters())))
    (m1, o1), (m2, o2) = models
    cstep = compgrad.compile(train_step, backend=backend)
    mean_obj, var_obj = m2.bn.running_mean, m2.bn.running_var
    for i in range(4):
        x, y = class_batch(10, 6, 3, seed=30 + i)
        _same_loss(train_step(m1, o1, x, y), cstep(m2, o2, x, y), f"step {i}")
    # the buffers are updated in place: same objects, the eager values
    assert m2.bn.running_mean is mean_obj and m2.bn.running_var is var_obj
    assert int(m2.bn.num_batches_tracked) == 4
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert cstep.explain().total_graph_break_count == 0
    # eval mode uses the running statistics (a new path, compiled once)
    m1.eval()
    m2.eval()
    ev = compgrad.compile(lambda m, x: m(x), backend=backend)
    x, _ = class_batch(10, 6, 3, seed=40)
    with compgrad.no_grad():
        assert_same(m1(x), ev(m2, x), atol=1e-6)
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_dropout_matches_eager_with_the_same_seed(backend):
    def step(model, opt, x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def build():
        compgrad.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 5))
        return model, _optimizer("sgd", model.parameters())

    (m1, o1), (m2, o2) = build(), build()
    cstep = compgrad.compile(step, backend=backend)
    x, y = class_batch(8, 12, 5, seed=6)
    compgrad.manual_seed(123)
    eager_losses = [step(m1, o1, x, y) for _ in range(4)]
    eager_state = compgrad.get_rng_state()
    compgrad.manual_seed(123)
    compiled_losses = [cstep(m2, o2, x, y) for _ in range(4)]
    assert_same(eager_losses, compiled_losses, atol=1e-6, requires_grad=False)
    # each call drew new numbers (the losses differ between calls) ...
    assert len({float(v) for v in compiled_losses}) == 4
    # ... and the generator advanced exactly as eagerly
    assert_same(eager_state, compgrad.get_rng_state())
    assert_states_equal(module_state(m1), module_state(m2), atol=1e-6)
    assert cstep.explain().total_graph_break_count == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_random_ops_inside_compiled_function(backend):
    def f(x):
        return x + compgrad.randn(3, 4) * 0.1, compgrad.rand(2)

    cf = compgrad.compile(f, backend=backend)
    x = compgrad.ones(3, 4)
    compgrad.manual_seed(7)
    eager = [f(x) for _ in range(3)]
    compgrad.manual_seed(7)
    compiled = [cf(x) for _ in range(3)]
    assert_same(eager, compiled)
    assert not np.array_equal(compiled[0][0].numpy(), compiled[1][0].numpy())
    assert cf.explain().program_count == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_returned_loss_is_like_eager(backend):
    """The loss a step returns still requires grad (its grad_fn leads to the
    parameters, as eagerly), and a second backward through it raises eager's error;
    the compiled call keeps none of its values alive for it."""
    (m1, o1), (m2, o2) = _twins((6, 5, 3), "sgd")
    step = compgrad.compile(train_step, backend=backend)
    x, y = class_batch(4, 6, 3, seed=0)
    losses = [train_step(m1, o1, x, y), step(m2, o2, x, y)]
    for loss in losses:
        assert loss.requires_grad and loss.grad_fn is not None and not loss.is_leaf
    errors = []
    for loss in losses:
        with pytest.raises(RuntimeError) as e:
            loss.backward()
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "second time" in errors[0]
    assert losses[1].grad_fn.name() == "CompiledFunctionBackward"
