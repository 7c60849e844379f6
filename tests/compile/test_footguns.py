"""tinygrad's TinyJit footguns, each giving the eager result under @compile.

A trace-and-replay JIT freezes what Python did while tracing. compgrad runs
the user's Python on every call (tensors are recorded lazily), so none of
these can go wrong; each test runs the pattern eagerly and compiled.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn

from ._common import BACKENDS, assert_same

BACKEND_PARAMS = [pytest.param(b, id=b) for b in BACKENDS]


def _randn(*shape, seed: int = 0, requires_grad: bool = False):
    rng = np.random.default_rng(seed)
    return compgrad.tensor(rng.standard_normal(shape).astype(np.float32),
                           requires_grad=requires_grad)


# ------------------------------------------------------ a method shared by instances

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compiled_method_shared_across_instances(backend):
    class Scaler:
        def __init__(self, w, bias):
            self.w = w
            self.bias = bias

        def plain(self, x):
            return x @ self.w + self.bias

        compiled = compgrad.compile(plain, backend=backend)

    a = Scaler(_randn(3, 2, seed=1), 1.0)
    b = Scaler(_randn(3, 2, seed=2), -5.0)
    x = _randn(4, 3, seed=3)
    for _ in range(2):
        for obj in (a, b, a):
            assert_same(obj.plain(x), obj.compiled(x))
    # one program serves both instances: their tensors are inputs, never constants
    assert Scaler.compiled.explain().program_count == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compiled_module_method_shared_across_instances(backend):
    class Net(nn.Module):
        def __init__(self, seed):
            super().__init__()
            compgrad.manual_seed(seed)
            self.fc = nn.Linear(3, 2)

        @compgrad.compile(backend=backend)
        def forward(self, x):
            return self.fc(x).relu()

    n1, n2 = Net(1), Net(2)
    x = _randn(4, 3, seed=4)
    with compgrad.no_grad():
        expected = [n.fc(x).relu() for n in (n1, n2)]
        assert_same(expected, [n1(x), n2(x)])
        assert_same(expected, [n1(x), n2(x)])


# ------------------------------------------------------ Python constants and branches

SCALE = 1.0


def _uses_global(x):
    return x * SCALE + OFFSET


OFFSET = 0.0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_global_constants_changing_between_calls(backend):
    global SCALE, OFFSET
    cf = compgrad.compile(_uses_global, backend=backend)
    x = _randn(3, seed=5)
    try:
        for scale, offset in [(1.0, 0.0), (2.0, 0.5), (-3.0, 7.0), (2, 1)]:
            SCALE, OFFSET = scale, offset
            assert_same(_uses_global(x), cf(x))
    finally:
        SCALE, OFFSET = 1.0, 0.0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_closure_cell_changing_between_calls(backend):
    factor = [1.0]

    def f(x):
        return x * factor[0]

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, seed=6)
    for v in (1.0, 4.0, -2.0):
        factor[0] = v
        assert_same(f(x), cf(x))
    assert cf.explain().program_count == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_branch_on_python_value(backend):
    def f(x, mode):
        if mode == "double":
            return x * 2
        if mode == "square":
            return x * x
        return x.neg()

    cf = compgrad.compile(f, backend=backend)
    x = _randn(4, seed=7)
    for mode in ("double", "square", "neg", "double", "neg"):
        assert_same(f(x, mode), cf(x, mode), msg=mode)
    assert cf.explain().program_count == 3


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_python_loop_count_from_argument(backend):
    def f(x, n):
        for _ in range(n):
            x = x * 0.5 + 1
        return x

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, seed=8)
    for n in (1, 3, 0, 3):
        assert_same(f(x, n), cf(x, n))


# ----------------------------------------------------------- outputs and inputs

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_outputs_are_not_overwritten_by_later_calls(backend):
    def f(x):
        y = x * 2
        return y, y + 1, y.sum()

    cf = compgrad.compile(f, backend=backend)
    x1, x2 = _randn(5, seed=9), _randn(5, seed=10)
    first = cf(x1)
    kept = [np.array(t.numpy()) for t in first]
    second = cf(x2)
    for t, k in zip(first, kept):
        np.testing.assert_array_equal(t.numpy(), k)
    assert_same(first, f(x1))
    assert_same(second, f(x2))
    # different storage, as two eager calls would give
    assert not np.shares_memory(first[0].numpy(), second[0].numpy())


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_returned_input_and_in_place_on_output(backend):
    def f(x):
        return x, x * 1

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, seed=11)
    a, b = cf(x)
    assert a is x
    b.add_(100)         # owns its memory: the input is untouched
    assert_same(x, _randn(3, seed=11))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_list_of_tensor_inputs(backend):
    def f(xs, weights):
        return sum(w * x for w, x in zip(weights, xs))

    cf = compgrad.compile(f, backend=backend)
    for n in (2, 3, 2):
        xs = [_randn(4, seed=20 + i) for i in range(n)]
        ws = [0.5 * (i + 1) for i in range(n)]
        assert_same(f(xs, ws), cf(xs, ws))
    # a changed list element is read again
    xs = [_randn(4, seed=30), _randn(4, seed=31)]
    assert_same(f(xs, [1.0, 2.0]), cf(xs, [1.0, 2.0]))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_dict_and_tuple_inputs_and_outputs(backend):
    def f(batch):
        x, (a, b) = batch["x"], batch["pair"]
        return {"sum": x + a, "prod": (x * b, None, 3)}

    cf = compgrad.compile(f, backend=backend)
    batch = {"x": _randn(3, seed=40), "pair": (_randn(3, seed=41), _randn(3, seed=42))}
    assert_same(f(batch), cf(batch))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_duplicate_inputs(backend):
    def f(a, b):
        return a * 2 + b, (a - b).sum()

    cf = compgrad.compile(f, backend=backend)
    x, y = _randn(3, seed=12), _randn(3, seed=13)
    # same tensor twice, then distinct, then twice again: never confused
    for a, b in [(x, x), (x, y), (y, y), (x, y)]:
        assert_same(f(a, b), cf(a, b))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_duplicate_inputs_written_in_place(backend):
    def f(a, b):
        a.mul_(2)
        b.add_(1)     # b is a: sees the doubled values
        return a + b

    cf = compgrad.compile(f, backend=backend)
    e, c = _randn(3, seed=14), _randn(3, seed=14)
    assert_same(f(e, e), cf(c, c))
    assert_same(e, c)
    assert e._version_value == c._version_value


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_duplicate_inputs_with_grad(backend):
    def f(a, b):
        (a * b).sum().backward()
        return a.grad

    cf = compgrad.compile(f, backend=backend)
    e, c = _randn(3, seed=15, requires_grad=True), _randn(3, seed=15, requires_grad=True)
    assert_same(f(e, e), cf(c, c))


# ----------------------------------------------------------------- in-place writes

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_in_place_on_inputs(backend):
    def f(x, y):
        x.mul_(2)
        y[1:] = x[:-1]
        x.clamp_(min=0)
        return x.sum() + y.sum()

    cf = compgrad.compile(f, backend=backend)
    for i in range(3):
        e = (_randn(4, seed=i), _randn(4, seed=100 + i))
        c = (_randn(4, seed=i), _randn(4, seed=100 + i))
        objs = c
        assert_same(f(*e), cf(*c))
        assert_same(e, c)
        assert c[0] is objs[0] and c[1] is objs[1]
        assert [t._version_value for t in e] == [t._version_value for t in c]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_in_place_on_views_of_inputs(backend):
    def f(x):
        row = x[1]
        row.add_(10)          # writes through to x
        col = x[:, 0]
        col.mul_(-1)          # and so does this; row sees it
        x.t()[2].zero_()
        return row * 1, col * 1, x.sum()

    cf = compgrad.compile(f, backend=backend)
    e, c = _randn(3, 3, seed=16), _randn(3, 3, seed=16)
    assert_same(f(e), cf(c))
    assert_same(e, c)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_in_place_on_view_made_outside(backend):
    def f(view, x):
        view.mul_(3)
        return x.sum()

    cf = compgrad.compile(f, backend=backend)
    e, c = _randn(3, 4, seed=17), _randn(3, 4, seed=17)
    assert_same(f(e[:, 1], e), cf(c[:, 1], c))
    assert_same(e, c)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_views_returned_alias_the_input(backend):
    def f(x):
        return x[0], x.view(-1)

    cf = compgrad.compile(f, backend=backend)
    x = _randn(2, 3, seed=18)
    row, flat = cf(x)
    x.add_(1)             # later eager writes are seen through the returned views
    assert_same(row, x[0])
    assert_same(flat, x.view(-1))


# ----------------------------------------------------------- module attributes

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_swapping_a_layer_between_calls(backend):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 3)
            self.scale = 1.0

        def forward(self, x):
            return self.body(x) * self.scale

    compgrad.manual_seed(0)
    net = Net()
    cf = compgrad.compile(lambda x: net(x), backend=backend)
    x = _randn(2, 3, seed=19)
    with compgrad.no_grad():
        assert_same(net(x), cf(x))
        net.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
        assert_same(net(x), cf(x))
        net.scale = -2.5
        assert_same(net(x), cf(x))
        net.body = nn.Identity()
        assert_same(net(x), cf(x))
        net.train(False)
        assert_same(net(x), cf(x))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_replacing_a_parameter_between_calls(backend):
    compgrad.manual_seed(0)
    lin = nn.Linear(3, 2)
    cf = compgrad.compile(lin, backend=backend)
    x = _randn(4, 3, seed=20)
    with compgrad.no_grad():
        assert_same(lin(x), cf(x))
        lin.weight = nn.Parameter(_randn(2, 3, seed=21))
        assert_same(lin(x), cf(x))
        lin.weight.data = _randn(2, 3, seed=22)
        assert_same(lin(x), cf(x))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_train_eval_switch(backend):
    compgrad.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
    x = _randn(6, 3, seed=23)
    compgrad.manual_seed(1)
    with compgrad.no_grad():
        eager = [net(x)]
        net.eval()
        eager.append(net(x))
        net.train()
    # a fresh twin (the eager calls updated the running stats)
    compgrad.manual_seed(0)
    net2 = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
    cf = compgrad.compile(net2, backend=backend)
    compgrad.manual_seed(1)
    with compgrad.no_grad():
        compiled = [cf(x)]
        net2.eval()
        compiled.append(cf(x))
    assert_same(eager, compiled, atol=1e-6)
    assert_same(net[2].running_mean, net2[2].running_mean)


# ------------------------------------------------------------------- Python randomness

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_random_depth_each_call(backend):
    compgrad.manual_seed(0)
    layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(4)])

    def f(x):
        depth = random.randint(1, 4)
        for layer in layers[:depth]:
            x = layer(x).tanh()
        return x, depth

    cf = compgrad.compile(f, backend=backend)
    x = _randn(2, 4, seed=24)
    random.seed(5)
    eager = [f(x) for _ in range(12)]
    random.seed(5)
    compiled = [cf(x) for _ in range(12)]
    assert_same(eager, compiled)
    depths = {d for _, d in eager}
    assert len(depths) > 1
    assert cf.explain().program_count == len(depths)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_python_side_effects_happen_every_call(backend):
    seen = []

    def f(x):
        seen.append(len(seen))
        return x + len(seen)

    cf = compgrad.compile(f, backend=backend)
    x = compgrad.zeros(2)
    outs = [cf(x) for _ in range(3)]
    assert seen == [0, 1, 2]
    assert [o.tolist() for o in outs] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("transposed", [True, False])
def test_reshape_views_or_copies_as_eagerly(backend, transposed):
    """reshape() is a view where the strides allow one and a copy elsewhere; a write
    into its result reaches the base exactly when it does eagerly."""
    def f(x):
        z = x.reshape(-1)
        z.add_(100.0)
        w = x.t().reshape(-1)
        w.add_(1.0)
        made = (x * 1).t().reshape(-1)   # a copy: x * 1 is contiguous
        made.mul_(0.0)
        return z, w, made

    def make():
        base = compgrad.arange(6.0)
        return base.reshape(2, 3).t() if transposed else base.reshape(3, 2)

    cf = compgrad.compile(f, backend=backend)
    x1, x2 = make(), make()
    assert_same(f(x1), cf(x2))
    assert_same(x1, x2)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_outside_aliases_read_before_and_after_a_write(backend):
    """Views made outside the call of a tensor the call writes in place (and the base
    of a written view) read the new values after the write, as eagerly."""
    def f(p, v, base, part):
        a = v * 1
        p.add_(1.0)
        b = v * 1
        c = base.sum()
        part.mul_(3.0)
        return a, b, c, base * 1

    def make():
        base = compgrad.zeros(6)
        p = base[0:4]
        return p, p[1:3], base, base[3:5]

    cf = compgrad.compile(f, backend=backend)
    for _ in range(2):
        args1, args2 = make(), make()
        assert_same(f(*args1), cf(*args2))
        assert_same(args1[2], args2[2])
