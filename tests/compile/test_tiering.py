"""codegen.tiering: in the default compile mode a small program run often enough moves from
the step runner to one Numba function (at once when the disk cache already holds it), with
the eager results before and after; a large program, or one that cannot be lowered, stays
on the step runner and says why."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from benchmarks.compiled import programs
from codegen import tiering

W2 = {"sizes": (2, 4, 1), "batch": 8, "loss": "mse", "lr": 0.01, "momentum": 0.0}
W2_MOMENTUM = dict(W2, momentum=0.9)


def _programs(fn) -> list:
    return [fn.programs[k] for k in fn._order]


def _twin_steps(params: dict, steps: int) -> object:
    """Eager and default-mode compiled instances of a benchmark MLP step, equal bit for
    bit after every step (MSE: the one function runs the runner's kernels and sums)."""
    eager = programs.mlp_instance("compgrad", params)
    compiled = programs.mlp_instance("compgrad.compile", params)
    for _ in range(steps):
        a, b = eager.step(), compiled.step()
        np.testing.assert_array_equal(programs.to_numpy(b), programs.to_numpy(a))
        for (name, want), got in zip(eager.state().items(), compiled.state().values()):
            np.testing.assert_array_equal(got, want, err_msg=name)
    return compiled.fn


@pytest.mark.parametrize("params", [W2, W2_MOMENTUM], ids=["sgd", "momentum"])
def test_a_small_step_moves_to_one_function_and_keeps_eager_results(monkeypatch, params):
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 3)
    monkeypatch.setattr(tiering, "_cached", lambda compiled: False)
    fn = _twin_steps(params, 8)
    states = [p.tiering.state for p in _programs(fn)]
    assert any(s.startswith("one function (after 3 runs") for s in states), states
    for p in _programs(fn):
        if p.tiering.one is not None:
            assert p.tiering.one.calls >= 1 and p.tiering.one.fallbacks == 0
    assert "runs as one Numba function (after 3 runs on the step runner)" in str(fn.explain())


def test_a_program_run_fewer_times_stays_on_the_step_runner(monkeypatch):
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 1000)
    monkeypatch.setattr(tiering, "_cached", lambda compiled: False)
    built = []
    monkeypatch.setattr(tiering.Tiering, "_build", lambda self, how: built.append(how))
    fn = _twin_steps(W2, 5)
    assert built == []
    assert all(p.tiering.state == "step runner" for p in _programs(fn))


def test_the_disk_cache_moves_a_program_at_its_second_run(monkeypatch):
    # a first compiled function builds the one function (its machine code is then on
    # disk); a second one, as in a later process, finds it at its program's second run
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 2)
    _twin_steps(W2, 3)
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 1000)
    fn = _twin_steps(W2, 4)
    states = [p.tiering.state for p in _programs(fn)]
    assert "one function (its machine code was in the disk cache)" in states, states


def test_nothing_on_disk_means_no_move_at_the_second_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 1000)
    fn = _twin_steps(W2, 4)
    assert all(p.tiering.one is None for p in _programs(fn))


def test_a_large_program_is_never_tried(monkeypatch):
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 1)
    tried = []
    monkeypatch.setattr(tiering, "_cached", lambda compiled: tried.append(compiled) or False)

    @compgrad.compile
    def double(x):
        return x * 2.0

    x = compgrad.ones(300, 300)   # 90,000 elements: more than codegen.whole.MAX_ELEMENTS
    for _ in range(3):
        np.testing.assert_array_equal(double(x).numpy(), np.full((300, 300), 2.0, np.float32))
    (program,) = _programs(double)
    # no run of small steps either: decided before its first run, nothing built
    assert program.tiering.decided and program.tiering.runs == 0
    assert program.tiering.one is None and program.tiering.small_runs is None and tried == []
    assert program.compiled.one_function_reason is None   # not even built


def test_a_program_that_cannot_be_lowered_says_why_and_stays_right(monkeypatch):
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 2)
    monkeypatch.setattr(tiering, "_cached", lambda compiled: False)

    @compgrad.compile
    def flipped(x):
        return x.flip(0) * 3.0   # flip has no lowering in the one function

    x = compgrad.arange(6.0).reshape(2, 3)
    want = np.flip(np.arange(6.0, dtype=np.float32).reshape(2, 3), 0) * 3
    for _ in range(4):
        np.testing.assert_array_equal(flipped(x).numpy(), want)
    (program,) = _programs(flipped)
    assert program.tiering.one is None
    assert program.tiering.state.startswith("step runner (") and "flip" in program.tiering.state
    assert "runs step by step, not as one function: " in str(flipped.explain())


def test_a_call_the_function_was_not_written_for_falls_back(monkeypatch):
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 2)
    monkeypatch.setattr(tiering, "_cached", lambda compiled: False)

    @compgrad.compile
    def scaled(x):
        return (x * 2.0 + 1.0).relu()

    base = np.arange(-6.0, 6.0, dtype=np.float32).reshape(3, 4)
    for _ in range(3):
        scaled(compgrad.from_numpy(base.copy()))
    (program,) = _programs(scaled)
    one = program.tiering.one
    assert one is not None, program.tiering.state
    # a transposed (non-C-contiguous) input of the same shape and dtype: the step runner
    wide = np.arange(-6.0, 6.0, dtype=np.float32).reshape(4, 3)
    x = compgrad.from_numpy(wide).t()
    np.testing.assert_array_equal(scaled(x).numpy(), np.maximum(wide.T * 2 + 1, 0))
    assert one.fallbacks == 1


def test_a_program_whose_sizes_come_from_the_data_is_checked_without_error():
    # the second segment's boolean-mask count comes from the first call's data: the disk
    # cache check, which runs the program on sample inputs, must not raise into the call
    @compgrad.compile
    def positives(x):
        return x[x > 0].sum() * 2.0

    for _ in range(3):
        x = compgrad.tensor([1.0, -2.0, 3.0])
        assert positives(x).item() == 8.0
