"""codegen.whole with codegen.inplace: the one function writes each update the step runner
may write in place into a buffer the call passes -- the input's own array where the caller
allows it and nothing else holds that memory, else a new array -- and leaves its inputs
untouched whenever it does not write in place (no permission, shared or read-only memory,
a call that fails). It also checks its inputs' shapes itself, and compiles for a call
Numba refuses only where it was written for it (read-only arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import whole
from codegen.runtime import CompiledProgram
from codegen.tiering import Tiering
from codegen.whole_lower import lower_program
from ir.parser import parse
from tests.codegen.test_inplace import _aliased, _grad_is_param, sgd_momentum

N = 64   # small: a program for the one function

SGD_MOMENTUM = sgd_momentum(N)

# a class index check (it may raise) before an update
CHECKED = f"""
graph step(%p: f32[{N}] param, %g: f32[{N}] grad, %y: i64[2]) {{
  %0 = nll_target(%y)[num_classes=4, ignore_index=-100] : i64[2]
  %1 = to_dtype(%0)[dtype=float32] : f32[2]
  %2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %3 = mul(%g, -0.01) : f32[{N}]
  %4 = add(%p, %3) : f32[{N}]
  return %2
  mutate %p <- %4
}}
"""


def _program(text: str) -> tuple[CompiledProgram, whole.OneFunction]:
    program = CompiledProgram(parse(text))
    one = program.as_one_function()
    assert one is not None, program.one_function_reason
    return program, one


@pytest.fixture(scope="module")
def sgd():
    return _program(SGD_MOMENTUM)


def _feeds(graph, seed: int = 0) -> list:
    return whole.sample_inputs(graph, seed=seed)


def _expected(program: CompiledProgram, feeds: list) -> list:
    """The step runner's mutation values, on copies of ``feeds``."""
    _, muts = program.run([f.copy() for f in feeds])
    return muts


def _assert_values(got: list, want: list) -> None:
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)   # the same phase kernels: bit for bit


def test_the_updates_are_buffers_not_results(sgd):
    program, one = sgd
    assert sorted(one.targets) == sorted(program.inplace_targets) == [0, 1]
    lowered = lower_program(program.graph, program.steps, _feeds(program.graph), program._load)
    assert sorted(i for i, _, _ in lowered.buffers) == [0, 1]
    assert "return ()" in lowered.source   # nothing left to return


def test_an_allowed_update_is_written_into_the_inputs_own_array(sgd):
    program, one = sgd
    for seed in range(3):
        feeds = _feeds(program.graph, seed)
        want = _expected(program, feeds)
        calls, fallbacks = one.calls, one.fallbacks
        _, muts = one(feeds, {0, 1})
        assert muts[0] is feeds[1] and muts[1] is feeds[0]
        _assert_values(muts, want)
        assert one.calls == calls + 1 and one.fallbacks == fallbacks


def test_a_view_of_an_updated_input_sees_the_new_values(sgd):
    program, one = sgd
    feeds = _feeds(program.graph, 5)
    want = _expected(program, feeds)
    p = feeds[0]
    view = p[4:12]   # a view the caller holds (as a tensor's view would), not an input
    _, muts = one(feeds, {0})
    assert muts[1] is p
    np.testing.assert_array_equal(view, want[1][4:12])


def test_without_permission_the_inputs_are_left_alone(sgd):
    program, one = sgd
    feeds = _feeds(program.graph, 1)
    before = [f.copy() for f in feeds]
    want = _expected(program, feeds)
    for allowed in ((), {2}):      # none, or only an input that is not updated
        _, muts = one(feeds, allowed)
        assert all(m is not f for m in muts for f in feeds)
        _assert_values(feeds, before)
        _assert_values(muts, want)
    _, muts = one(feeds, {1})      # one of the two: that one only
    assert muts[0] is feeds[1] and muts[1] is not feeds[0]
    _assert_values(feeds[:1], before[:1])
    _assert_values(muts, want)


def _param_viewed_as_grad(feeds):
    return [feeds[0], feeds[1], feeds[0][::-1]]   # another input views the parameter


@pytest.mark.parametrize("make, kept", [
    (_aliased, 1), (_grad_is_param, 0), (_param_viewed_as_grad, 0)])
def test_memory_something_else_holds_gets_a_new_buffer(sgd, make, kept):
    program, one = sgd
    feeds = make(_feeds(program.graph, 2))
    want = _expected(program, feeds)
    before = feeds[kept].copy()
    _, muts = one(feeds, {0, 1})
    assert all(m is not feeds[kept] for m in muts)
    np.testing.assert_array_equal(feeds[kept], before)
    _assert_values(muts, want)


def test_a_read_only_input_is_compiled_for_and_left_alone():
    program, one = _program(SGD_MOMENTUM)
    feeds = _feeds(program.graph, 3)
    feeds[0].flags.writeable = False
    want = _expected(program, feeds)
    _, muts = one(feeds, {0, 1})
    assert muts[1] is not feeds[0] and muts[0] is feeds[1]
    _assert_values(muts, want)
    assert one.fallbacks == 0   # compiled for the read-only array, as a new Numba type


def test_an_input_of_another_shape_runs_on_the_step_runner(sgd):
    program, one = sgd
    feeds = _feeds(program.graph, 4)
    feeds[2] = np.ones(N + 8, np.float32)   # same dtype and rank: only the function's check
    before = [f.copy() for f in feeds]
    fallbacks = one.fallbacks
    got = one(feeds)
    assert one.fallbacks == fallbacks + 1
    _assert_values(got[1], program.run(before)[1])


def test_a_call_that_fails_writes_nothing_in_place():
    program, one = _program(CHECKED)
    # the check comes first, so the update may be written in place
    assert one.targets == program.inplace_targets == (0,)
    feeds = [np.ones(N, np.float32), np.full(N, 2.0, np.float32), np.array([1, 7])]
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        one(feeds, {0})
    np.testing.assert_array_equal(feeds[0], np.ones(N, np.float32))
    assert one.fallbacks == 1
    feeds[2] = np.array([1, -100])
    outs, muts = one(feeds, {0})
    assert muts[0] is feeds[0] and one.fallbacks == 1
    np.testing.assert_allclose(feeds[0], np.float32(1) - np.float32(0.02))
    assert outs[0] == 1.0


def test_a_call_the_function_refuses_runs_on_the_step_runner_with_the_permission(sgd):
    program, one = sgd
    feeds = _feeds(program.graph, 6)
    feeds[2] = np.repeat(feeds[2], 2)[::2]   # a strided gradient: not the function's layout
    want = _expected(program, feeds)
    fallbacks = one.fallbacks
    _, muts = one(feeds, {0, 1})
    assert one.fallbacks == fallbacks + 1
    assert muts[0] is feeds[1] and muts[1] is feeds[0]   # the step runner wrote in place
    _assert_values(muts, want)


def test_a_tiered_up_program_writes_in_place_when_the_caller_allows_it():
    program = CompiledProgram(parse(SGD_MOMENTUM))
    tiering = Tiering(program, after=1)
    feeds = _feeds(program.graph, 7)
    want = _expected(program, feeds)
    _, muts = tiering.run(feeds, {0, 1})
    assert tiering.one is not None and tiering.one.calls == 1
    assert muts[0] is feeds[1] and muts[1] is feeds[0]
    _assert_values(muts, want)
