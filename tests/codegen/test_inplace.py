"""codegen.inplace: a program's elementwise update of an input written into that input's own
array, only where nothing can tell (the caller allows it, nothing later reads the old
value or may raise, the array owns writable C-contiguous memory no other input views)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.inplace import writable_alone
from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.parser import parse

N = 4096   # big enough for a parallel kernel, not that it matters here


def sgd_momentum(n: int) -> str:
    """An SGD-with-momentum update of an ``n``-element parameter, as IR text."""
    return f"""
graph step(%p: f32[{n}] param, %buf: f32[{n}] state, %g: f32[{n}] grad) {{
  %0 = mul(%buf, 0.9) : f32[{n}]
  %1 = add(%0, %g) : f32[{n}]
  %2 = mul(%1, -0.01) : f32[{n}]
  %3 = add(%p, %2) : f32[{n}]
  return
  mutate %buf <- %1
  mutate %p <- %3
}}
"""


SGD_MOMENTUM = sgd_momentum(N)


def _feeds(graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(v.type.shape).astype(v.type.dtype.np_dtype)
            if v.type.dtype.np_dtype.kind == "f" else
            rng.integers(0, v.type.shape[0] if v.type.shape else 1, v.type.shape)
            for v in graph.inputs]


def _expected(graph, feeds: list) -> list:
    copies = [f.copy() for f in feeds]
    result = interpret(graph, copies)
    return [np.array(arr) for _, arr in result.mutations]


def test_an_optimizer_update_is_written_into_its_inputs_when_the_caller_allows_it():
    graph = parse(SGD_MOMENTUM)
    program = CompiledProgram(graph)
    assert sorted(program.inplace_targets) == [0, 1]
    feeds = _feeds(graph)
    expected = _expected(graph, feeds)
    outs, muts = program.run(feeds, inplace={0, 1})
    # the mutation values are the inputs' own arrays, holding the new values
    assert muts[0] is feeds[1] and muts[1] is feeds[0]
    for got, want in zip(muts, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_without_permission_the_inputs_are_left_alone():
    graph = parse(SGD_MOMENTUM)
    program = CompiledProgram(graph)
    feeds = _feeds(graph)
    before = [f.copy() for f in feeds]
    expected = _expected(graph, feeds)
    for allowed in ((), {2}):      # none, or only an input that is not updated
        _, muts = program.run(feeds, inplace=allowed)
        assert all(m is not f for m in muts for f in feeds)
        for f, b in zip(feeds, before):
            np.testing.assert_array_equal(f, b)
        for got, want in zip(muts, expected):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    # permission for one of the two: that one only
    _, muts = program.run(feeds, inplace={1})
    assert muts[0] is feeds[1] and muts[1] is not feeds[0]
    np.testing.assert_array_equal(feeds[0], before[0])


def _aliased(feeds):
    n = feeds[1].size
    base = np.zeros(2 * n, np.float32)
    base[:n] = feeds[1]
    return [feeds[0], base[:n], feeds[2]]          # the buffer does not own its memory


def _grad_is_param(feeds):
    return [feeds[0], feeds[1], feeds[0]]          # the same array twice


def _read_only(feeds):
    ro = feeds[0].copy()
    ro.flags.writeable = False
    return [ro, feeds[1], feeds[2]]


# the input each refuses (the parameter, input 0, is mutation 1; the buffer, 1, is 0)
@pytest.mark.parametrize("make, refused", [(_aliased, 1), (_grad_is_param, 0), (_read_only, 0)])
def test_arrays_that_cannot_be_written_alone_get_a_new_buffer(make, refused):
    graph = parse(SGD_MOMENTUM)
    program = CompiledProgram(graph)
    feeds = make(_feeds(graph))
    before = [f.copy() for f in feeds]
    expected = _expected(graph, feeds)
    _, muts = program.run(feeds, inplace={0, 1})
    for got, want in zip(muts, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    mutation_of = {0: 1, 1: 0}
    assert muts[mutation_of[refused]] is not feeds[refused]
    np.testing.assert_array_equal(feeds[refused], before[refused])
    other = 1 - refused
    if make is not _grad_is_param:    # (there the gradient is the parameter itself)
        assert muts[mutation_of[other]] is feeds[other]


def test_writable_alone_wants_owned_contiguous_writable_unshared_memory():
    a = np.zeros(8, np.float32)
    b = np.zeros(8, np.float32)
    assert writable_alone([a, b], [0, 1]) == {id(a), id(b)}
    assert writable_alone([a, a[2:]], [0]) == frozenset()        # viewed by another input
    assert writable_alone([a, a], [0]) == frozenset()            # passed twice
    assert writable_alone([a[::2], b], [0]) == frozenset()       # a view: not its own memory
    c = np.zeros((4, 4), np.float32, order="F")
    assert writable_alone([c, b], [0]) == frozenset()            # not C-contiguous
    assert writable_alone([a, 0.5], [0]) == {id(a)}              # scalars do not alias


def test_a_step_that_may_raise_after_the_update_keeps_it_out_of_place():
    # the gather after the update may raise (an index out of range): a failed program
    # must leave its inputs as they were
    graph = parse(f"""
graph step(%p: f32[{N}] param, %g: f32[{N}] grad, %i: i64[1]) {{
  %0 = mul(%g, -0.01) : f32[{N}]
  %1 = add(%p, %0) : f32[{N}]
  %2 = index_select(%1, %i)[dim=0] : f32[1]
  return %2
  mutate %p <- %1
}}
""")
    program = CompiledProgram(graph)
    assert program.inplace_targets == ()
    feeds = _feeds(graph)
    feeds[2] = np.array([N + 5])
    before = feeds[0].copy()
    with pytest.raises(IndexError):
        program.run(feeds, inplace={0})
    np.testing.assert_array_equal(feeds[0], before)


@pytest.mark.parametrize("head, tail, ret", [
    # the old value is returned
    ("", "", "%p"),
    # a view of it made before the update is read after it
    ("  %v = reshape(%p)[shape=(64, 64)] : f32[64,64]\n",
     "  %w = reshape(%1)[shape=(64, 64)] : f32[64,64]\n"
     "  %3 = matmul(%v, %w) : f32[64,64]\n", "%3"),
    # a view of it is read after the update
    ("", "  %v = reshape(%p)[shape=(64, 64)] : f32[64,64]\n"
     "  %w = reshape(%1)[shape=(64, 64)] : f32[64,64]\n"
     "  %3 = add(%v, %w) : f32[64,64]\n", "%3"),
])
def test_a_later_read_of_the_old_value_keeps_the_update_out_of_place(head, tail, ret):
    graph = parse(f"""
graph step(%p: f32[{N}] param, %g: f32[{N}] grad) {{
{head}  %0 = mul(%g, -0.01) : f32[{N}]
  %1 = add(%p, %0) : f32[{N}]
{tail}  return {ret}
  mutate %p <- %1
}}
""")
    program = CompiledProgram(graph)
    feeds = _feeds(graph)
    before = feeds[0].copy()
    want = interpret(graph, [f.copy() for f in feeds])
    outs, muts = program.run(feeds, inplace={0})
    assert muts[0] is not feeds[0]
    np.testing.assert_array_equal(feeds[0], before)
    np.testing.assert_allclose(outs[0], want.outputs[0], rtol=1e-6)
