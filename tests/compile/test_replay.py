"""compile(mode="reduce-overhead"): a stable step is replayed without its Python,
and every replayed call has the eager call's results and effects.

Each test runs the same step eagerly and compiled on twin models and compares
parameters, gradients, optimizer state and returned values after every call;
between calls it changes what a replay must notice (learning rates, module
attributes, .grad, arguments, globals) and checks the replay noticed.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad as torch
from compgrad.compile.replay import Plan

SCALE = 1.0   # read by _scaled_step: a global a replay must guard


def _twins(seed: int = 0, momentum: float = 0.9):
    models, optimizers = [], []
    for _ in range(2):
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
        models.append(m)
        optimizers.append(torch.optim.SGD(m.parameters(), lr=0.1, momentum=momentum))
    return models, optimizers


def _step(model, loss_fn, opt, x, y):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


def _scaled_step(model, loss_fn, opt, x, y):
    opt.zero_grad()
    loss = loss_fn(model(x), y) * SCALE
    loss.backward()
    opt.step()
    return loss


def _data(n: int = 4, batch: int = 6):
    torch.manual_seed(123)
    return [(torch.randn(batch, 3), torch.randn(batch, 2)) for _ in range(n)]


def _same_state(m1, m2, o1, o2) -> None:
    for (name, p), q in zip(m1.named_parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=name)
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)
    for p, q in zip(m1.parameters(), m2.parameters()):
        s1, s2 = o1.state[p], o2.state[q]
        assert s1.keys() == s2.keys()
        for k in s1:
            np.testing.assert_array_equal(s1[k].numpy(), s2[k].numpy())


def _run(step, calls: int, between=None, backend: str = "numba"):
    (m1, m2), (o1, o2) = _twins()
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(step, mode="reduce-overhead", backend=backend)
    data = _data()
    for i in range(calls):
        x, y = data[i % len(data)]
        if between is not None:
            between(i, (m1, o1), (m2, o2))
        expected = step(m1, loss_fn, o1, x, y)
        got = compiled(m2, loss_fn, o2, x, y)
        np.testing.assert_array_equal(expected.detach().numpy(), got.detach().numpy())
        assert got.requires_grad and got.grad_fn is not None
        _same_state(m1, m2, o1, o2)
    return compiled


@pytest.mark.parametrize("backend", ["numba", "interpret"])
def test_a_stable_step_is_replayed_with_eager_results(backend):
    compiled = _run(_step, 10, backend=backend)
    report = compiled.explain()
    # call 0 makes the momentum buffers (not replayable), calls 1 and 2 agree: 7 replays
    assert report.replays == 7, (report.replay_status, compiled._stats["replay_stops"])
    assert report.replay_status is None
    assert "Replayed calls (reduce-overhead): 7" in str(report)
    assert isinstance(compiled._plan, Plan)


def test_default_mode_never_replays():
    (m, _), (opt, _) = _twins()
    compiled = torch.compile(_step)
    for x, y in _data() * 2:
        compiled(m, torch.nn.MSELoss(), opt, x, y)
    assert compiled.explain().replays == 0


def test_a_changed_learning_rate_stops_the_replay():
    def between(i, *pairs):
        if i in (5, 6):
            for _, opt in pairs:
                for g in opt.param_groups:
                    g["lr"] *= 0.5   # a plain dict write, as schedulers do

    compiled = _run(_step, 12, between)
    assert compiled.explain().replays > 0


def test_a_scheduler_stepping_each_call_stays_correct():
    sched = {}

    def between(i, *pairs):
        for k, (_, opt) in enumerate(pairs):
            if i == 0:
                sched[k] = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
            else:
                sched[k].step()

    _run(_step, 8, between)


def test_module_attribute_and_mode_changes_stop_the_replay():
    def between(i, *pairs):
        if i == 5:
            for model, _ in pairs:
                model[0].weight.requires_grad_(False)
        if i == 8:
            for model, _ in pairs:
                model[0].weight.requires_grad_(True)

    compiled = _run(_step, 12, between)
    assert compiled.explain().replays > 0


def test_grads_changed_between_calls_are_seen():
    def between(i, *pairs):
        for model, opt in pairs:
            if i == 5:   # no zero_grad in the step below: these accumulate
                model[2].bias.grad = torch.ones(2)
            if i == 7:
                opt.zero_grad()

    def accumulating(model, loss_fn, opt, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    _run(accumulating, 10, between)


def test_a_changed_global_stops_the_replay():
    global SCALE

    def between(i, *pairs):
        global SCALE
        if i == 6:
            SCALE = 3.0

    try:
        compiled = _run(_scaled_step, 10, between)
    finally:
        SCALE = 1.0
    assert compiled.explain().replays > 0


def test_a_new_input_shape_is_traced_again():
    (m1, m2), (o1, o2) = _twins()
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(_step, mode="reduce-overhead")
    for batch in (4, 4, 4, 4, 7, 7, 4):
        x, y = torch.randn(batch, 3), torch.randn(batch, 2)
        np.testing.assert_array_equal(_step(m1, loss_fn, o1, x, y).detach().numpy(),
                                      compiled(m2, loss_fn, o2, x, y).detach().numpy())
        _same_state(m1, m2, o1, o2)


def test_results_held_by_the_user_are_not_overwritten():
    (_, m), (_, opt) = _twins()
    compiled = torch.compile(_step, mode="reduce-overhead")
    loss_fn = torch.nn.MSELoss()
    held = []
    for x, y in _data() * 2:
        loss = compiled(m, loss_fn, opt, x, y)
        held.append((loss, loss.detach().numpy().copy(), m[0].weight.grad,
                     m[0].weight.grad.numpy().copy()))
    assert compiled.explain().replays > 0
    for loss, loss_then, grad, grad_then in held:
        np.testing.assert_array_equal(loss.detach().numpy(), loss_then)
        np.testing.assert_array_equal(grad.numpy(), grad_then)


def test_outside_views_of_parameters_see_every_update():
    (m1, m2), (o1, o2) = _twins()
    view = m2[0].weight.detach()[1]         # a view made outside the step
    array = m2[2].bias.detach().numpy()     # a NumPy array over the storage
    _ = (view, array)
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(_step, mode="reduce-overhead")
    for x, y in _data() * 2:
        _step(m1, loss_fn, o1, x, y)
        compiled(m2, loss_fn, o2, x, y)
        np.testing.assert_array_equal(view.numpy(), m1[0].weight.detach().numpy()[1])
        np.testing.assert_array_equal(array, m1[2].bias.detach().numpy())
    assert compiled.explain().replays > 0


def test_replayed_updates_are_written_into_the_parameters_own_storage():
    # codegen.inplace through the one function (codegen.whole): parameters and momentum
    # buffers keep their arrays from one replay to the next
    (m1, m2), (o1, o2) = _twins()
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(_step, mode="reduce-overhead")
    data = _data()
    last, replays = None, 0
    for i in range(10):
        x, y = data[i % len(data)]
        _step(m1, loss_fn, o1, x, y)
        compiled(m2, loss_fn, o2, x, y)
        _same_state(m1, m2, o1, o2)
        arrays = [t._data for p in m2.parameters() for t in (p, *o2.state[p].values())]
        replayed = compiled.explain().replays > replays
        if replayed and last is not None:
            assert all(a is b for a, b in zip(arrays, last))
        last, replays = (arrays if replayed else None), compiled.explain().replays
    plan = compiled._plan
    assert replays == 7 and plan.one is not None and plan.one.fallbacks == 0
    assert set(plan.one.targets) == plan.inplace and len(plan.inplace) == 8


def test_the_returned_loss_behaves_as_eagerly():
    (_, m), (_, opt) = _twins()
    compiled = torch.compile(_step, mode="reduce-overhead")
    loss_fn = torch.nn.MSELoss()   # (a new loss module each call would be a new argument)
    for x, y in _data() * 2:
        loss = compiled(m, loss_fn, opt, x, y)
    assert compiled.explain().replays > 0
    assert loss.requires_grad and not loss.is_leaf
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_grad_mode_change_is_guarded():
    (_, m), (_, opt) = _twins()
    compiled = torch.compile(_step, mode="reduce-overhead")
    data = _data()
    loss_fn = torch.nn.MSELoss()
    for x, y in data:
        compiled(m, loss_fn, opt, x, y)
    assert compiled._plan is not None
    with torch.no_grad(), pytest.raises(RuntimeError):
        compiled(m, loss_fn, opt, *data[0])   # backward without grad: as eagerly
    assert compiled._plan is None


@pytest.mark.parametrize("case", ["print", "random"])
def test_steps_with_python_effects_are_not_replayed(case, capsys):
    import random

    def noisy(model, loss_fn, opt, x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        if case == "print":
            print("step")
        else:
            loss = loss * (1 + 0 * random.random())
        loss.backward()
        opt.step()
        return loss

    (m1, m2), (o1, o2) = _twins()
    compiled = torch.compile(noisy, mode="reduce-overhead")
    for x, y in _data() * 2:
        noisy(m1, torch.nn.MSELoss(), o1, x, y)
        compiled(m2, torch.nn.MSELoss(), o2, x, y)
        _same_state(m1, m2, o1, o2)
    report = compiled.explain()
    assert report.replays == 0
    assert report.replay_status.startswith("not replayed")
    if case == "print":
        assert capsys.readouterr().out.count("step") == 16


def test_random_ops_are_not_replayed():
    def dropout_step(model, loss_fn, opt, x, y):
        opt.zero_grad()
        loss = loss_fn(torch.nn.functional.dropout(model(x), 0.5), y)
        loss.backward()
        opt.step()
        return loss

    (_, m), (_, opt) = _twins()
    compiled = torch.compile(dropout_step, mode="reduce-overhead")
    for x, y in _data() * 2:
        compiled(m, torch.nn.MSELoss(), opt, x, y)
    assert compiled.explain().replays == 0


def _gelu_grad(x):
    x.grad = None
    y = (x * torch.tanh(x)).sum()
    y.backward()
    return y, x.grad, x


def test_an_argument_gets_its_grad_each_call_and_comes_back():
    compiled = torch.compile(_gelu_grad, mode="reduce-overhead")
    for _ in range(6):
        x = torch.randn(5, requires_grad=True)   # a new argument each call
        x_eager = x.detach().clone().requires_grad_(True)
        y, g, same = compiled(x)
        y_e, g_e, _ = _gelu_grad(x_eager)
        assert same is x and x.grad is g
        # (the compiled tanh is the inline one of codegen.mathfns: within 2e-7)
        np.testing.assert_allclose(g.numpy(), g_e.numpy(), rtol=1e-6)
        np.testing.assert_allclose(y.detach().numpy(), y_e.detach().numpy(), rtol=1e-6)
    assert compiled.explain().replays > 0


def test_a_scheduler_stepped_inside_the_step_is_not_replayed():
    # StepLR keeps the lr for 3 steps while its epoch counter moves: two traced calls
    # agree, but a replay skipping the scheduler's step would never lower the lr
    def scheduled(model, loss_fn, opt, x, y, sched):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    (m1, m2), (o1, o2) = _twins()
    s1 = torch.optim.lr_scheduler.StepLR(o1, step_size=3, gamma=0.1)
    s2 = torch.optim.lr_scheduler.StepLR(o2, step_size=3, gamma=0.1)
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(scheduled, mode="reduce-overhead")
    x, y = _data()[0]
    for _ in range(10):
        scheduled(m1, loss_fn, o1, x, y, s1)
        compiled(m2, loss_fn, o2, x, y, s2)
        _same_state(m1, m2, o1, o2)
        assert s1.last_epoch == s2.last_epoch
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
    assert compiled.explain().replays == 0


def test_a_failing_replay_fails_as_eagerly():
    def indexed(model, loss_fn, opt, x, y, idx):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss + x[idx].sum()   # idx out of range only in the last call

    (m1, m2), (o1, o2) = _twins()
    loss_fn = torch.nn.MSELoss()
    compiled = torch.compile(indexed, mode="reduce-overhead")
    x, y = _data()[0]
    ok = torch.tensor([0, 1])
    for _ in range(5):
        indexed(m1, loss_fn, o1, x, y, ok)
        compiled(m2, loss_fn, o2, x, y, ok)
    assert compiled.explain().replays > 0
    bad = torch.tensor([0, 99])
    with pytest.raises(IndexError):
        indexed(m1, loss_fn, o1, x, y, bad)
    with pytest.raises(IndexError):
        compiled(m2, loss_fn, o2, x, y, bad)
    _same_state(m1, m2, o1, o2)   # the optimizer step before the failure happened


def test_a_gc_callback_inside_the_call_does_not_stop_replay():
    # (hypothesis registers a gc callback timing collections with time.perf_counter;
    # when a collection fell inside a watched call, the step was refused replay)
    import gc
    import time

    def timing(phase, info):
        time.perf_counter()

    threshold = gc.get_threshold()
    gc.callbacks.append(timing)
    gc.set_threshold(1)   # a collection at (nearly) every allocation
    try:
        compiled = _run(_step, 6)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(timing)
    assert compiled.explain().replays == 3, compiled.explain().replay_status


def test_watched_calls_leave_no_garbage_cycle_holding_the_trace():
    # pyreads' traced frames and their shadows referenced each other (f_trace): a cycle
    # only a full collection frees, holding the trace of the call and through it the
    # parameters' old arrays, so replayed steps copied their writes instead of handing
    # buffers over. With the collector off, nothing of a finished call may survive.
    import gc

    from compgrad.compile.trace import Trace
    gc.collect()
    gc.disable()
    try:
        _run(_step, 6)
        # type(), not isinstance(): the collector also lists dead weakref proxies, which
        # raise ReferenceError when isinstance asks them for their class
        alive = [o for o in gc.get_objects() if type(o) is Trace]
    finally:
        gc.enable()
    assert not alive, f"{len(alive)} traces of finished calls are still alive"
