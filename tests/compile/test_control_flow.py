"""Data-dependent Python inside compiled functions, guards and fallbacks.

Python runs every call, so a branch or loop on a tensor's value reads the
value (the pending graph runs as its own cached program) and takes the eager
path; each path is compiled once and cached. Also: Python reads inside the
function, changing argument metadata and Python scalars, grad modes, the
recompile limit, ``fullgraph=True``, ``COMPGRAD_DISABLE=1``,
``backend="eager"`` and exceptions raised inside.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import compgrad
from compgrad.compile.lazy import user_location

from ._common import BACKENDS, assert_same

BACKEND_PARAMS = [pytest.param(b, id=b) for b in BACKENDS]

# Tensors above this many elements cannot be read on the side (trace.SIDE_MAX_NUMEL):
# reading their value runs the pending graph, a graph break.
BIG = (20, 30)


def _randn(*shape, seed: int = 0, requires_grad: bool = False, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return compgrad.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def _line_of(fn, text: str) -> str:
    """``file:line`` of the line of ``fn`` that contains ``text``."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return f"{inspect.getsourcefile(fn).rsplit('/', 1)[-1]}:{start + i}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


# -------------------------------------------------------------------------- branches

def _branchy(x, w):
    y = x @ w
    if y.sum() > 0:
        z = y.relu() * 2
    else:
        z = y.tanh() - 1
    return z.mean()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_branch_on_tensor_both_paths(backend):
    cf = compgrad.compile(_branchy, backend=backend)
    w = _randn(30, 30, seed=1)
    signs = [1, -1, 1, -1, -1, 1]
    for i, s in enumerate(signs):
        x = compgrad.ones(*BIG) * s + _randn(*BIG, seed=i) * 0.01
        assert_same(_branchy(x, w), cf(x, w), msg=f"call {i}")
    report = cf.explain()
    assert len(report.paths) == 2 and sum(report.paths.values()) == len(signs)
    # the prefix up to the branch, then one program per branch: compiled once each
    assert report.program_count == 3
    assert report.cache_misses == 3 and report.cache_hits == 2 * len(signs) - 3
    # each call breaks once, at the user's `if`
    assert report.total_graph_break_count == len(signs)
    (reason,) = report.all_break_reasons
    assert _line_of(_branchy, "if y.sum() > 0") in reason.reason
    assert "__bool__" in reason.reason
    ops = {tuple(n.op.name for n in g.nodes) for g in report.programs}
    assert any("relu" in o for o in ops) and any("tanh" in o for o in ops)
    # the last call alone (torch._dynamo.explain's view): two graphs, one break
    assert report.graph_count == 2 and report.graph_break_count == 1
    assert [r.reason for r in report.break_reasons] == [reason.reason]
    assert all(any(g is p for p in report.programs) for g in report.graphs)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_branch_on_small_tensor_is_read_on_the_side(backend):
    # a small value read by Python is computed apart: no graph break, and the path
    # through the function is still the eager one
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    cf = compgrad.compile(f, backend=backend)
    for s in (1.0, -1.0, 1.0, -1.0):
        x = compgrad.full((3,), s)
        assert_same(f(x), cf(x))
    report = cf.explain()
    assert report.total_graph_break_count == 0
    assert report.program_count == 2 and len(report.paths) == 2


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("shape", [(4,), BIG], ids=["small", "big"])
def test_while_loop_until_tensor_condition(shape, backend):
    def halve_until_small(x):
        n = 0
        while x.abs().max() > 0.01:
            x = x * 0.5
            n += 1
        return x, n

    cf = compgrad.compile(halve_until_small, backend=backend)
    for scale in (1.0, 8.0, 1.0, 0.001):
        x = _randn(*shape, seed=2) * scale
        assert_same(halve_until_small(x), cf(x), msg=f"scale {scale}")
    programs = cf.explain().program_count
    for scale in (1.0, 8.0):
        x = _randn(*shape, seed=2) * scale
        assert_same(halve_until_small(x), cf(x))
    assert cf.explain().program_count == programs, "a repeated path compiled again"


# ------------------------------------------------------------------ Python reads inside

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("shape", [(2, 3), BIG], ids=["small", "big"])
def test_python_reads_inside(shape, backend, capsys):
    def f(x):
        total = x.sum().item()
        first = x[0].tolist()
        print(x[:2, :3])
        scale = float(x.abs().max())
        idx = int(x.argmax())
        flag = bool((x > 0).any())
        print(f"{x.mean():.4f}")
        return x / scale + total, first, scale, idx, flag, x.numpy().shape

    cf = compgrad.compile(f, backend=backend)
    x = _randn(*shape, seed=3)
    eager = f(x)
    eager_out = capsys.readouterr().out
    for _ in range(2):
        assert_same(eager, cf(x))
        assert capsys.readouterr().out == eager_out


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_print_of_tensor_requiring_grad(backend, capsys):
    def f(x):
        y = x * 2
        print(y)
        return y.sum()

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, seed=4, requires_grad=True)
    f(x)
    eager_out = capsys.readouterr().out
    cf(x)
    assert capsys.readouterr().out == eager_out
    assert "grad_fn=<MulBackward0>" in eager_out


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_write_after_a_break_keeps_autograd_history(backend, capsys):
    # y is given its data at a graph break, written in place, given its data again,
    # then differentiated: the gradient still reaches x through y's history
    def f(x):
        y = x * 2
        print(y)
        y[0] = y[1] * 3
        print(y)
        (y * y).sum().backward()
        return x.grad, y.detach()

    def args():
        return (_randn(3, 2, seed=40, requires_grad=True),)

    cf = compgrad.compile(f, backend=backend)
    assert_same(f(*args()), cf(*args()))
    assert cf.explain().total_graph_break_count == 2


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_metadata_reads_do_not_break(backend):
    def f(x):
        n = x.shape[0] * x.size(1) + x.dim() + len(x) + x.numel()
        return x.T @ x.mT.mT * n, x.dtype, x.requires_grad, x.is_leaf

    cf = compgrad.compile(f, backend=backend)
    x = _randn(*BIG, seed=41)
    assert_same(f(x), cf(x))
    assert cf.explain().total_graph_break_count == 0


# ------------------------------------------------------ arguments changing between calls

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_changing_shapes(backend):
    def f(x):
        return (x * x).sum(dim=0).sqrt()

    cf = compgrad.compile(f, backend=backend)
    shapes = [(3, 4), (5, 4), (3, 4), (2, 7), (5, 4)]
    for i, s in enumerate(shapes):
        x = _randn(*s, seed=i)
        assert_same(f(x), cf(x))
    report = cf.explain()
    assert report.program_count == 3   # one per distinct shape
    assert report.cache_hits == 2
    assert any("changed type" in r for r in report.recompiles)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_changing_dtypes(backend):
    def f(x, y):
        return x * y + 1

    cf = compgrad.compile(f, backend=backend)
    cases = [(np.float32, np.float32), (np.float64, np.float32), (np.int64, np.float32),
             (np.int32, np.int64), (np.float32, np.float32)]
    for a, b in cases:
        x = compgrad.tensor(np.arange(6).reshape(2, 3).astype(a))
        y = compgrad.tensor(np.arange(3).astype(b))
        assert_same(f(x, y), cf(x, y), msg=f"{a.__name__} {b.__name__}")
    assert cf.explain().program_count == 4


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_changing_requires_grad(backend):
    def f(x, w):
        return (x @ w).tanh().sum()

    cf = compgrad.compile(f, backend=backend)
    for rg in (False, True, False, True):
        x1, w1 = _randn(3, 4, seed=5), _randn(4, 2, seed=6, requires_grad=rg)
        x2, w2 = _randn(3, 4, seed=5), _randn(4, 2, seed=6, requires_grad=rg)
        out1, out2 = f(x1, w1), cf(x2, w2)
        assert_same(out1, out2)
        if rg:
            out1.backward()
            out2.backward()
            assert_same(w1.grad, w2.grad, atol=1e-7)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_python_scalars_do_not_recompile(backend):
    def f(x, alpha, beta, k):
        return (x * alpha + beta) ** k

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, 2, seed=7)
    for alpha, beta in [(0.5, 1.0), (1.5, -2.0), (2.5, 3.25), (-1.0, 0.0)]:
        assert_same(f(x, alpha, beta, 2), cf(x, alpha, beta, 2))
    assert cf.explain().program_count == 1
    # an int scalar where a float was is another type (int scalars are exact)
    assert_same(f(x, 3, 1, 2), cf(x, 3, 1, 2))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_ints_used_as_shapes(backend):
    def f(x, n):
        return x.reshape(n, -1).sum(dim=1)

    cf = compgrad.compile(f, backend=backend)
    x = _randn(12, seed=8)
    for n in (2, 3, 4, 2, 3):
        assert_same(f(x, n), cf(x, n))
    assert cf.explain().program_count == 3


# ------------------------------------------------------------------------- grad modes

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_grad_mode_outside(backend):
    def f(x):
        return (x * 3).exp().sum()

    cf = compgrad.compile(f, backend=backend)
    x = _randn(4, seed=9, requires_grad=True)
    with compgrad.no_grad():
        a, b = f(x), cf(x)
    assert_same(a, b)
    assert not b.requires_grad
    a, b = f(x), cf(x)
    assert_same(a, b)
    assert b.requires_grad
    with compgrad.set_grad_enabled(False):
        assert not cf(x).requires_grad


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_grad_mode_inside(backend):
    def f(x, w):
        with compgrad.no_grad():
            scale = (w * w).sum()
        y = (x * w).sum() * scale
        with compgrad.no_grad():
            with compgrad.enable_grad():
                z = (w * 2).sum()
        y.backward()
        return y.detach(), scale, z.requires_grad, w.grad

    cf = compgrad.compile(f, backend=backend)
    for _ in range(2):
        args1 = _randn(3, seed=10), _randn(3, seed=11, requires_grad=True)
        args2 = _randn(3, seed=10), _randn(3, seed=11, requires_grad=True)
        assert_same(f(*args1), cf(*args2), atol=1e-7)
    assert cf.explain().program_count == 1


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_no_grad_decorated_function(backend):
    @compgrad.no_grad()
    def f(x):
        return x * 2

    cf = compgrad.compile(f, backend=backend)
    x = _randn(3, seed=12, requires_grad=True)
    assert_same(f(x), cf(x))
    assert not cf(x).requires_grad


# ---------------------------------------------------------------------- recompile limit

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_recompile_limit_warns_once_then_runs_eagerly(backend, monkeypatch):
    monkeypatch.setenv("COMPGRAD_RECOMPILE_LIMIT", "2")

    def f(x):
        return x.sin() + 1

    cf = compgrad.compile(f, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 7):
            x = _randn(n, seed=n)
            assert_same(f(x), cf(x), msg=f"n={n}")
    ours = [w for w in caught if "recompile limit" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert issubclass(ours[0].category, RuntimeWarning)
    message = str(ours[0].message)
    assert "runs eagerly" in message and "changed type" in message
    report = cf.explain()
    assert report.gave_up is not None
    assert report.program_count == 3
    assert report.calls == 3 and report.eager_calls == 3
    assert "Gave up compiling" in str(report)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_recompile_limit_default_is_eight(backend, monkeypatch):
    monkeypatch.delenv("COMPGRAD_RECOMPILE_LIMIT", raising=False)
    cf = compgrad.compile(lambda x: x + 1, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 9):
            cf(compgrad.zeros(n))
        assert not [w for w in caught if "recompile limit" in str(w.message)]
        cf(compgrad.zeros(9))
        assert [w for w in caught if "recompile limit" in str(w.message)]


# ------------------------------------------------------------------------- fullgraph

def _breaks(x):
    y = x * 2
    if y.sum() > 0:  # the break
        return y
    return -y


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_fullgraph_raises_on_a_break_naming_the_line(backend):
    cf = compgrad.compile(_breaks, backend=backend, fullgraph=True)
    x = _randn(*BIG, seed=13)
    with pytest.raises(RuntimeError, match="fullgraph=True") as info:
        cf(x)
    assert _line_of(_breaks, "if y.sum() > 0") in str(info.value)
    # no trace is left active: eager code keeps working
    assert_same(x * 2, _randn(*BIG, seed=13) * 2)
    # a function without breaks is fine under fullgraph=True
    ok = compgrad.compile(lambda x: (x * 2).sum(), backend=backend, fullgraph=True)
    assert_same(ok(x), (x * 2).sum())


def test_user_location_names_test_files():
    # the file:line attached to nodes is the caller's (this file), not compgrad's
    assert user_location(1).startswith("test_control_flow.py:")


# ------------------------------------------------------------------ turning it off

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compgrad_disable_env(backend, monkeypatch):
    monkeypatch.setenv("COMPGRAD_DISABLE", "1")
    cf = compgrad.compile(_branchy, backend=backend, fullgraph=True)
    x, w = _randn(*BIG, seed=14), _randn(30, 30, seed=15)
    assert_same(_branchy(x, w), cf(x, w))
    report = cf.explain()
    assert report.calls == 0 and report.program_count == 0
    # read at each call: turning it back on compiles (and fullgraph=True applies again)
    monkeypatch.setenv("COMPGRAD_DISABLE", "0")
    with pytest.raises(RuntimeError, match="fullgraph=True"):
        cf(x, w)
    assert cf.explain().calls == 1


@pytest.mark.parametrize("kwargs", [{"backend": "eager"}, {"disable": True}],
                         ids=["backend_eager", "disable"])
def test_eager_backend_runs_the_plain_function(kwargs):
    seen = []

    def f(x):
        seen.append(x._lazy)   # eager tensors are never recorded
        return _branchy(x, x.T)

    cf = compgrad.compile(f, fullgraph=True, **kwargs)
    x = _randn(*BIG, seed=16)
    assert_same(f(x), cf(x))
    assert seen == [None, None]
    assert cf.explain().calls == 0


def test_bad_compile_arguments():
    with pytest.raises(ValueError, match="backend"):
        compgrad.compile(lambda x: x, backend="inductor")
    with pytest.raises(ValueError, match="mode"):
        compgrad.compile(lambda x: x, mode="fast")
    with pytest.raises(TypeError, match="callable"):
        compgrad.compile(3)


def test_compile_decorator_forms():
    def f(x):
        return x + 1

    x = compgrad.ones(2)
    forms = (compgrad.compile(f), compgrad.compile()(f), compgrad.compile(backend="interpret")(f))
    for cf in forms:
        assert_same(cf(x), f(x))
        assert cf.__name__ == "f" and cf.__wrapped__ is f

    @compgrad.compile
    def g(x):
        return x * 3

    assert_same(g(x), x * 3)


# -------------------------------------------------------------- exceptions inside

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_exception_after_in_place_update(backend):
    log = []

    def f(state, x, fail):
        state.add_(x)
        log.append("updated")
        y = state * 2
        if fail:
            raise ValueError("boom")
        return y

    cf = compgrad.compile(f, backend=backend)
    s1, s2 = compgrad.zeros(3), compgrad.zeros(3)
    s2_before = s2
    x = _randn(3, seed=17)
    for fail in (False, True, False, True):
        e1 = e2 = None
        try:
            f(s1, x, fail)
        except ValueError as e:
            e1 = e
        try:
            cf(s2, x, fail)
        except ValueError as e:
            e2 = e
        assert (e1 is None) == (e2 is None)
        # the work done before the exception happened, as eagerly
        assert_same(s1, s2)
        assert s2._version_value == s1._version_value
    assert s2 is s2_before and log == ["updated"] * 8
    # nothing is left recording: eager ops are eager
    assert (s2 * 1)._lazy is None


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_op_errors_are_eager_errors(backend):
    def f(x, y):
        z = x * 2
        return z @ y

    cf = compgrad.compile(f, backend=backend)
    x, y = _randn(3, 4, seed=18), _randn(3, 4, seed=19)
    with pytest.raises(RuntimeError) as eager:
        f(x, y)
    with pytest.raises(RuntimeError) as compiled:
        cf(x, y)
    assert str(eager.value) == str(compiled.value)
    # and the function works afterwards
    assert_same(f(x, y.T), cf(x, y.T))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_exception_in_backward_leaves_grads_as_eager(backend):
    def f(w, x):
        (w * x).sum().backward()
        (w * x * 2).backward()     # non-scalar: raises after the first backward
        return w.grad

    cf = compgrad.compile(f, backend=backend)
    w1, w2 = _randn(3, seed=20, requires_grad=True), _randn(3, seed=20, requires_grad=True)
    x = _randn(3, seed=21)
    with pytest.raises(RuntimeError) as e1:
        f(w1, x)
    with pytest.raises(RuntimeError) as e2:
        cf(w2, x)
    assert str(e1.value) == str(e2.value)
    assert_same(w1.grad, w2.grad)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_error_found_when_a_segment_runs(backend):
    """An index out of range is only seen when the program runs (it depends on data):
    the call raises eager's error, naming the IR node and the user's line; what was
    recorded before the failing op happened and nothing after it did, as eagerly."""
    def f(w, state, index):
        state.add_(1.0)
        (w * 3).sum().backward()
        (w.index_select(0, index) * 2).sum().backward()
        state.mul_(5.0)
        return state.sum().item()

    cf = compgrad.compile(f, backend=backend)
    runs = []
    for fn in (f, cf):
        w = _randn(3, seed=22, requires_grad=True)
        state = compgrad.zeros(3)
        with pytest.raises(IndexError) as error:
            fn(w, state, compgrad.tensor([5]))
        runs.append((w, state, error.value))
    (w1, s1, e1), (w2, s2, e2) = runs
    assert str(e1) == str(e2)
    notes = "\n".join(getattr(e2, "__notes__", []))
    assert "index_select" in notes and "test_control_flow.py:" in notes
    assert_same(w1.grad, w2.grad)
    assert_same(s1, s2)
    assert s2._lazy is None and w2.grad._lazy is None and (s2 * 1)._lazy is None
    # the function works afterwards, as eagerly
    assert f(w1, s1, compgrad.tensor([2])) == cf(w2, s2, compgrad.tensor([2]))
    assert_same(w1.grad, w2.grad)
