"""codegen.small_runs: in a program too large to be one function, each run of small steps
(between its large steps) becomes one Numba function that gives the step runner's
results, falls back to the run's own steps for a call it was not written for (and raises
the step runner's error), leaves large steps, large products and trailing views alone,
and keeps a compiled training step equal to eager."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.compiled import programs
from codegen import small_runs, tiering, whole
from codegen.runtime import CompiledProgram
from codegen.small_runs import RunStep, find_runs, install_small_runs
from ir.parser import parse

# small steps (a product, a loss), one large step (exp and sum of 40,000 elements), then
# small steps again reading the large step's sum
MIXED = """
graph f(%x: f32[8,16], %w: f32[16,4], %big: f32[200,200], %s: f64[] weak, %t: i64[8]) {
  %0 = mm(%x, %w) : f32[8,4]
  %1 = relu(%0) : f32[8,4]
  %2 = mul(%1, %s) : f32[8,4]
  %3 = log_softmax(%2)[dim=1, dtype=None] : f32[8,4]
  %4 = nll_loss(%3, %t)[reduction="mean", ignore_index=-100, has_weight=False] : f32[]
  %5 = exp(%big) : f32[200,200]
  %6 = sum(%5)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %7 = add(%2, %6) : f32[8,4]
  %8 = permute(%w)[dims=(1, 0)] : f32[4,16]
  %9 = mm(%7, %8) : f32[8,16]
  %10 = tanh(%9) : f32[8,16]
  return %10, %4, %6
}
"""


def _feeds(graph, seed: int) -> list:
    feeds = whole.sample_inputs(graph, seed=seed)
    feeds[4] = np.random.default_rng(seed).integers(0, 4, 8)
    return feeds


def _large_step(program: CompiledProgram) -> int:
    """The index of the step that reads the 40,000-element input."""
    big = program.graph.inputs[2]
    return next(i for i, n in enumerate(program.graph.nodes) if big in n.inputs)


@pytest.fixture(scope="module")
def mixed():
    """The program on the step runner and the same program with its runs installed."""
    plain = CompiledProgram(parse(MIXED))
    runs = CompiledProgram(parse(MIXED))
    plan = install_small_runs(runs)
    return plain, runs, plan


def test_runs_are_the_small_steps_around_the_large_one(mixed):
    plain, runs, plan = mixed
    large = _large_step(plain)
    found = find_runs(plain.graph, plain.steps)
    assert found and plan.built == found and plan.refused == []
    for start, stop in found:
        assert stop - start >= small_runs.MIN_RUN_STEPS
        assert not start <= large < stop
    # the installed program: one RunStep per run, the large step kept as it was
    assert sum(isinstance(s, RunStep) for s in runs.steps) == len(found)
    assert type(runs.steps[large - sum(stop - start - 1 for start, stop in found
                                       if stop <= large)]) is type(plain.steps[large])
    assert len(runs.release) == len(runs.steps)


@pytest.mark.parametrize("seed", range(3))
def test_results_are_the_step_runners(mixed, seed):
    plain, runs, _ = mixed
    feeds = _feeds(plain.graph, seed)
    want, got = plain.run(feeds)[0], runs.run(feeds)[0]
    for a, b in zip(want, got):
        # the same kernels, NumPy's sums, the same BLAS: bit for bit here
        np.testing.assert_array_equal(b, a)
    for step in runs.steps:
        if isinstance(step, RunStep):
            assert step.one.calls >= 1 and step.one.fallbacks == 0


def test_a_strided_input_runs_the_steps_of_the_run(mixed):
    plain, runs, _ = mixed
    feeds = _feeds(plain.graph, 7)
    # a 2-d input of the program that a run reads, given in Fortran order (the functions
    # were written for C arrays)
    first, k = next((s, k) for s in runs.steps if isinstance(s, RunStep)
                    for k, v in enumerate(runs.graph.inputs)
                    if v in s.sub.inputs and v.type.ndim == 2)
    feeds[k] = np.asfortranarray(feeds[k])
    before = first.one.fallbacks
    for a, b in zip(plain.run(feeds)[0], runs.run(feeds)[0]):
        np.testing.assert_array_equal(b, a)
    assert first.one.fallbacks == before + 1


def test_a_failing_call_raises_the_step_runners_error(mixed):
    plain, runs, _ = mixed
    feeds = _feeds(plain.graph, 3)
    feeds[4] = np.full(8, 9)   # a class index out of range
    with pytest.raises(IndexError) as want:
        plain.run(feeds)
    with pytest.raises(IndexError) as got:
        runs.run(feeds)
    assert str(got.value) == str(want.value)


def test_large_values_large_products_and_trailing_views_stay_out(monkeypatch):
    program = CompiledProgram(parse(MIXED))
    graph, steps = program.graph, program.steps
    large = _large_step(program)
    assert not small_runs.small_step(steps[large], graph.nodes[large])
    # every product of MIXED is small; with the serial-BLAS limit below them none is
    monkeypatch.setattr(small_runs, "OPENBLAS_SERIAL_MNK", 8 * 4 * 16 - 1)
    assert all(not small_runs.small_step(s, n) for s, n in zip(steps, graph.nodes)
               if n.op.name in ("mm", "addmm") or any(
                   b.op.name == "mm" for b in getattr(n.attrs.get("body"), "nodes", ())))
    monkeypatch.undo()
    for _, stop in find_runs(graph, steps):
        assert not graph.nodes[stop - 1].op.is_view


def test_a_large_compiled_step_keeps_eager_results(monkeypatch):
    """A W2-shaped training step counted as large (MAX_ELEMENTS lowered): after its
    tier-up its runs of small steps are functions, and every step equals eager's."""
    monkeypatch.setattr(tiering, "MAX_ELEMENTS", 16)
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 3)
    monkeypatch.setattr(tiering, "_runs_cached", lambda compiled: False)
    params = {"sizes": (2, 4, 1), "batch": 8, "loss": "mse", "lr": 0.01, "momentum": 0.9}
    eager = programs.mlp_instance("compgrad", params)
    compiled = programs.mlp_instance("compgrad.compile", params)
    for _ in range(6):
        a, b = eager.step(), compiled.step()
        np.testing.assert_allclose(programs.to_numpy(b), programs.to_numpy(a), rtol=1e-6)
        for (name, want), got in zip(eager.state().items(), compiled.state().values()):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
    fn = compiled.fn
    runs = [p.tiering.small_runs for p in fn.programs.values()
            if p.tiering is not None and p.tiering.small_runs is not None]
    assert runs and any(plan.built for plan in runs)
    assert "run(s) of small steps" in str(fn.explain())
    for p in fn.programs.values():
        for step in p.compiled.steps:
            if isinstance(step, RunStep):
                assert step.one.calls >= 1 and step.one.fallbacks == 0


# a run with a step the whole-program lowering cannot write (argmax) in its second half
SPLIT = """
graph h(%x: f32[8,16], %w: f32[16,4], %v: f32[4,16], %s: f64[] weak) {
  %0 = mm(%x, %w) : f32[8,4]
  %1 = mul(%0, %s) : f32[8,4]
  %2 = mm(%1, %v) : f32[8,16]
  %3 = argmax(%2)[dim=1, keepdim=False] : i64[8]
  %4 = tanh(%2) : f32[8,16]
  %5 = mm(%4, %w) : f32[8,4]
  %6 = relu(%5) : f32[8,4]
  %7 = mm(%6, %v) : f32[8,16]
  return %3, %7
}
"""


def test_a_refused_run_is_split_and_its_lowerable_half_built():
    plain, runs = CompiledProgram(parse(SPLIT)), CompiledProgram(parse(SPLIT))
    (whole_run,) = find_runs(plain.graph, plain.steps)
    plan = install_small_runs(runs)
    assert plan.built and all(whole_run[0] <= a < b <= whole_run[1] for a, b in plan.built)
    assert plan.built != [whole_run]
    assert any("argmax" in reason for _, reason in plan.refused)
    for seed in range(2):
        feeds = whole.sample_inputs(plain.graph, seed=seed)
        for a, b in zip(plain.run(feeds)[0], runs.run(feeds)[0]):
            np.testing.assert_array_equal(b, a)
