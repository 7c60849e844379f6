"""The IR @compile captures: printed text, roles, mutations, dumps, and the
verifier and parser on every captured graph."""

from __future__ import annotations

import inspect
import os
import re

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn
import compgrad.nn.functional as F
from compgrad import autograd
from ir.parser import parse
from ir.printer import print_graph
from ir.verify import verify

from ._common import BACKENDS

BACKEND_PARAMS = [pytest.param(b, id=b) for b in BACKENDS]
HERE = os.path.basename(__file__)


def _line_of(fn, text: str) -> str:
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return f"{HERE}:{start + i}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def _data(n=6, n_in=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return (compgrad.tensor(rng.standard_normal((n, n_in)).astype(np.float32)),
            compgrad.tensor(rng.integers(0, n_out, n), dtype=compgrad.int64))


def _net():
    compgrad.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(5, 3))


def _step(model, opt, x, y):
    opt.zero_grad(set_to_none=False)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    return loss.detach()


def _steady_state_graph(opt_cls, backend, **kw):
    model = _net()
    opt = opt_cls(model.parameters(), lr=0.01, **kw)
    cstep = compgrad.compile(_step, backend=backend)
    x, y = _data()
    for _ in range(3):
        cstep(model, opt, x, y)
    report = cstep.explain()
    assert report.total_graph_break_count == 0
    return report.graphs[-1], report


def _input_roles(text: str) -> dict[str, str]:
    header = text.split("\n", 1)[0]
    return {m.group(1): (m.group(3) or "arg").strip()
            for m in re.finditer(r"%([\w.]+): ([a-z0-9]+\[[0-9,]*\])( weak| \w+)?", header)}


# --------------------------------------------------------------------- printed IR

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_printed_training_step(backend):
    graph, _ = _steady_state_graph(compgrad.optim.SGD, backend, momentum=0.9)
    text = print_graph(graph)
    roles = _input_roles(text)
    # captured tensors carry the names and roles a user knows
    assert roles["m.0.weight"] == "param" and roles["m.4.bias"] == "param"
    assert roles["m.1.running_mean"] == "buffer" and roles["m.1.num_batches_tracked"] == "buffer"
    assert roles["m.0.weight.momentum_buffer"] == "state"
    assert roles["m.0.weight.grad"] == "grad"
    assert "rng" in roles.values()
    assert "weak" in roles.values()   # lifted Python scalars (lr, momentum)
    # typed values on every line
    assert "%m.0.weight: f32[5,4] param" in text
    assert re.search(r"= addmm\(.*\)\[beta=1, alpha=1\] : f32\[6,5\]", text)
    assert re.search(r"= nll_loss\(%\d+, %\w+\)\[.*\] : f32\[\]", text)
    # the user's file:line on the nodes
    for code in ("logits = model(x)", "loss = F.cross_entropy", "opt.step()",
                 "opt.zero_grad(set_to_none=False)"):
        assert f"# {_line_of(_step, code)}" in text, code
    # mutation records for parameters, grads, optimizer state and buffers
    mutated = set(re.findall(r"^  mutate %([\w.]+) <- %\d+$", text, flags=re.M))
    assert {"m.0.weight", "m.0.weight.grad", "m.0.weight.momentum_buffer",
            "m.1.running_mean", "m.1.running_var", "m.1.num_batches_tracked"} <= mutated
    assert {m.target.name for m in graph.mutations} == mutated
    assert all(m.field == "data" for m in graph.mutations)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_printed_adam_state(backend):
    graph, _ = _steady_state_graph(compgrad.optim.Adam, backend)
    roles = _input_roles(print_graph(graph))
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert roles[f"m.0.weight.{key}"] == "state"
    mutated = {m.target.name for m in graph.mutations}
    assert {"m.0.weight.exp_avg", "m.0.weight.exp_avg_sq", "m.0.weight.step"} <= mutated


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_explain_prints_the_graphs(backend):
    _, report = _steady_state_graph(compgrad.optim.SGD, backend, momentum=0.9)
    text = str(report)
    for g in report.programs:
        assert print_graph(g).split("\n", 1)[0] in text
    assert report.ops_per_graph[-1] == [n.op.name for n in report.graphs[-1].nodes]
    assert len(report.guards) == report.program_count
    assert all(isinstance(t, dict) and "capture" in t for t in report.compile_times)


def test_in_place_on_argument_is_a_mutation():
    def f(x, y):
        x.mul_(2)
        y[0] = 5.0
        return x + y

    cf = compgrad.compile(f, backend="interpret")
    cf(compgrad.ones(3), compgrad.ones(3))
    (graph,) = cf.explain().graphs
    text = print_graph(graph)
    assert len(graph.mutations) == 2
    assert len(re.findall(r"^  mutate %\w+ <- %\d+$", text, flags=re.M)) == 2


# ------------------------------------------------------------------------- dumps

@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_compgrad_dump_writes_capture_files(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPGRAD_DUMP", str(tmp_path / "dump"))

    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y.exp()
        return y.tanh()

    cf = compgrad.compile(f, backend=backend)
    big = (20, 30)
    for s in (1.0, -1.0, 1.0):
        cf(compgrad.full(big, s))
    every = sorted(os.listdir(tmp_path / "dump"))
    files = [name for name in every if name.endswith(".capture.ir")]
    report = cf.explain()
    assert len(files) == report.program_count == 3
    texts = {print_graph(g) for g in report.programs}
    for name in files:
        text = (tmp_path / "dump" / name).read_text()
        assert text in texts
        assert print_graph(parse(text)) == text
    # the numba backend also dumps the IR after each pass of its pipeline
    stages = {name.split(".")[-2] for name in every if name not in files}
    numba_stages = {"01-decompose", "02-simplify", "03-fuse", "04-schedule"}
    assert stages == (set() if backend == "interpret" else numba_stages)
    for name in set(every) - set(files):
        text = (tmp_path / "dump" / name).read_text().rstrip("\n")
        assert print_graph(parse(text)) == text


def test_no_dump_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPGRAD_DUMP", raising=False)
    monkeypatch.chdir(tmp_path)
    cf = compgrad.compile(lambda x: x + 1, backend="interpret")
    cf(compgrad.ones(2))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------ verify and round trip, every graph

def _scenarios(backend):
    """Compiled functions covering the capture features; yields each after running."""
    for opt_cls, kw in ((compgrad.optim.SGD, {"momentum": 0.9}), (compgrad.optim.Adam, {}),
                        (compgrad.optim.AdamW, {}), (compgrad.optim.RMSprop, {})):
        yield _steady_state_graph(opt_cls, backend, **kw)[1]

    def higher(w, x):
        (g,) = autograd.grad((x @ w).tanh().sum(), w, create_graph=True)
        (h,) = autograd.grad(g.pow(2).sum(), w)
        return h

    cf = compgrad.compile(higher, backend=backend)
    cf(compgrad.randn(3, 2, requires_grad=True), compgrad.randn(4, 3))
    yield cf.explain()

    def branchy(x):
        y = x.sin()
        while y.abs().sum() > 1:
            y = y * 0.5
        y[0, 0] = 3.0
        return y.view(-1)[:5], y.t(), y.argmax()

    cf = compgrad.compile(branchy, backend=backend)
    cf(compgrad.randn(20, 30))
    cf(compgrad.randn(3, 3))
    yield cf.explain()

    compgrad.manual_seed(0)
    fwd = compgrad.compile(nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.LayerNorm(3)),
                           backend=backend)
    fwd(compgrad.randn(2, 4)).sum().backward()
    yield fwd.explain()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_every_captured_graph_verifies_and_round_trips(backend):
    count = 0
    for report in _scenarios(backend):
        for graph in report.programs:
            verify(graph, roundtrip=True)
            text = print_graph(graph)
            again = parse(text)
            assert print_graph(again) == text
            verify(again)
            count += 1
    assert count >= 10


def test_compile_runs_the_verifier(monkeypatch):
    import ir.verify
    seen = []
    real = ir.verify.verify

    def spy(graph, **kw):
        seen.append(graph)
        return real(graph, **kw)

    monkeypatch.setattr(ir.verify, "verify", spy)
    cf = compgrad.compile(lambda x: x.exp().sum(), backend="interpret")
    cf(compgrad.ones(3))
    cf(compgrad.ones(3))
    assert seen == cf.explain().programs
    # the test-suite checks the printed form of every verified graph round-trips
    assert os.environ.get("COMPGRAD_VERIFY_ROUNDTRIP") == "1"
